/**
 * Stable codes of {@link ConfigIssue}s. Tests, docs and tooling match on these; the messages are for people
 * and may change. One code per kind of mistake, so a user can search for it.
 */
export const ISSUE = {
  /** The manifest file is missing or unreadable. */
  FILE: 'CFG_ERR_FILE',
  /** YAML syntax error (also: unresolved tags, several documents in one file). */
  YAML: 'CFG_ERR_YAML',
  /** The same key twice in one YAML map (YAML would silently keep one of them). */
  DUPLICATE_KEY: 'CFG_ERR_DUPLICATE_KEY',
  /** A key the schema does not know. Unknown keys are errors everywhere. */
  UNKNOWN_KEY: 'CFG_ERR_UNKNOWN_KEY',
  /** A value of the wrong type (a number where a string is expected, a scalar where a list is...). */
  TYPE: 'CFG_ERR_TYPE',
  /** A required key is missing. */
  REQUIRED: 'CFG_ERR_REQUIRED',
  /** Keys that exclude each other given together (`identity.builtin` and `identity.external`). */
  EXCLUSIVE: 'CFG_ERR_EXCLUSIVE',
  /** A value of the right type outside what is allowed (enum, range, empty list, malformed domain...). */
  VALUE: 'CFG_ERR_VALUE',
  /** An invalid or reserved name: service (not `control`, `identity`, `gateway`, `rampart`), secret or route id. */
  NAME: 'CFG_ERR_NAME',
  /** An invalid or reserved environment variable name. */
  ENV: 'CFG_ERR_ENV',
  /** The same entry twice in a list (methods, scopes, secrets...). */
  DUPLICATE_ITEM: 'CFG_ERR_DUPLICATE_ITEM',
  /** A malformed path pattern (route or call). */
  PATTERN: 'CFG_ERR_PATTERN',
  /** A malformed rate limit. */
  RATE: 'CFG_ERR_RATE',
  /** A rate limit keyed by something the route cannot have (a subject on an `auth: none` route...). */
  RATE_KEY: 'CFG_ERR_RATE_KEY',
  /** Not an HTTP method Rampart routes (or not in upper case). */
  METHOD: 'CFG_ERR_METHOD',
  /** A call to a service the manifest does not declare. */
  UNKNOWN_SERVICE: 'CFG_ERR_UNKNOWN_SERVICE',
  /** A service that lists a call to itself (in-process calls need no policy). */
  SELF_CALL: 'CFG_ERR_SELF_CALL',
  /** Two routes that some request would match both (overlapping patterns and methods). */
  ROUTE_CONFLICT: 'CFG_ERR_ROUTE_CONFLICT',
  /** A service reads a secret that is not declared under top-level `secrets`. */
  UNKNOWN_SECRET: 'CFG_ERR_UNKNOWN_SECRET',
  /** A declared secret that no service may read. */
  UNUSED_SECRET: 'CFG_ERR_UNUSED_SECRET',
  /** A service's `run` file does not exist. */
  RUN_MISSING: 'CFG_ERR_RUN_MISSING',
  /** An unsafe or unavailable TLS setting (`off` on a non-loopback host, `auto`). */
  TLS: 'CFG_ERR_TLS',
  /** A TLS certificate or key file that does not exist. */
  TLS_FILE: 'CFG_ERR_TLS_FILE',
  /** A malformed or unsafe CIDR. */
  CIDR: 'CFG_ERR_CIDR',
  /** A listen host that is neither an IP address nor a host name. */
  HOST: 'CFG_ERR_HOST',
  /** A malformed or unsafe URL (issuer, JWKS URI, Redis URL). */
  URL: 'CFG_ERR_URL',
  /** Two routes with the same id. */
  DUPLICATE_ID: 'CFG_ERR_DUPLICATE_ID',
  /** Two listeners (gateway, admin, redirect, builtin identity) on one port. */
  PORT_CONFLICT: 'CFG_ERR_PORT_CONFLICT',
  /** A redirect listener (`gateway.redirectHttp`) without TLS: there would be nothing to redirect to. */
  REDIRECT: 'CFG_ERR_REDIRECT',
  /** Gateway limits that contradict each other (a per-client cap above the total, headers timeout above request timeout...). */
  LIMITS: 'CFG_ERR_LIMITS',
  /** A CORS origin that is not an exact serialized origin (`https://host[:port]`), or an unsafe one (`null`, http). */
  CORS_ORIGIN: 'CFG_ERR_CORS_ORIGIN',
  /** A CORS header name that is malformed, a wildcard, or one browsers never let pages send (`cookie`, `host`). */
  CORS_HEADER: 'CFG_ERR_CORS_HEADER',
  /** A CORS policy that contradicts itself: `*` with `credentials: true`, or `*` beside other origins. */
  CORS: 'CFG_ERR_CORS',
  /** A schema violation without a more specific code (should not happen; report it as a bug). */
  SCHEMA: 'CFG_ERR_SCHEMA',
} as const;

export type IssueCode = (typeof ISSUE)[keyof typeof ISSUE];
