import { MAX_EDGE_NAMES } from '../core/edge-name.ts';
import { CORS_MAX_AGE_MAX, HEADER_NAME_REGEX_SOURCE, ORIGIN_REGEX_SOURCE } from './cors.ts';
import { DEFAULTS, defaultIssuer } from './defaults.ts';
import { LIMIT_KEYS, LIMIT_SPECS, WORKERS_MAX } from './gateway-limits.ts';
import { HTTP_METHODS } from './model.ts';
import { RATE_LIMIT_EXAMPLE, RATE_LIMIT_REGEX_SOURCE, RATE_LIMIT_SYNTAX } from './rate-limit.ts';
import { RESERVED_ENV_REGEX_SOURCE, RESERVED_SERVICE_NAMES } from './reserved.ts';

/**
 * The JSON Schema (draft-07, what editors' YAML plugins support best) of `rampart.yaml`: the source of
 * truth for the manifest's structure. `loadManifest` validates with it, and `scripts/write-schema.ts`
 * publishes it as `rampart.schema.json` for editor completion and hover help.
 *
 * Checks the schema cannot express (files exist, patterns are canonical, services called exist...) live
 * in normalize.ts and cross-checks.ts. Where the schema has a pattern for a value that code also parses
 * (rate limits, path patterns, CIDRs), the code's message wins (see load.ts).
 */

/** What a schema node validates, for choosing an issue code and hint (see schema-issues.ts). */
export type SchemaKind =
  | 'method'
  | 'rate'
  | 'pattern'
  | 'cidr'
  | 'name'
  | 'env'
  | 'tls'
  | 'auth'
  | 'host'
  | 'url'
  | 'trustDomain'
  | 'scope'
  | 'origin'
  | 'header'
  | 'store';

type Json = { [key: string]: unknown };

const kinds = new WeakMap<object, SchemaKind>();
const kind = <T extends Json>(k: SchemaKind, node: T): T => {
  kinds.set(node, k);
  return node;
};

/** The kind of a schema node (identity: Ajv reports the very objects built here as `parentSchema`). */
export function schemaKind(node: unknown): SchemaKind | undefined {
  return node !== null && typeof node === 'object' ? kinds.get(node) : undefined;
}

const SERVICE_NAME = '^[a-z][a-z0-9-]{0,62}$';
const SECRET_NAME = '^[a-z][a-z0-9-]{0,62}$';
const ROUTE_ID = '^[a-z0-9][a-z0-9._-]*$';
const ENV_NAME = '^[A-Z_][A-Z0-9_]*$';
const TRUST_DOMAIN = '^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$';
/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE = '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$';
/** Characters a canonical path pattern may contain (the path rules themselves are checked in code). */
const PATH_PATTERN = "^/[A-Za-z0-9\\-._~!$&'()*+,=:@%/]*$";

const port = (title: string, description: string, fallback: number, minimum = 0): Json => ({
  title,
  description:
    minimum === 0
      ? `${description} 0 to 65535; 0 lets the operating system or launcher choose.`
      : `${description} ${minimum} to 65535.`,
  type: 'integer',
  minimum,
  maximum: 65535,
  default: fallback,
});

const method = kind('method', {
  title: 'HTTP method',
  description: `One of ${HTTP_METHODS.join(', ')}, in upper case.`,
  type: 'string',
  enum: [...HTTP_METHODS],
});

const methods = (what: string): Json => ({
  title: 'Methods',
  description: `The HTTP methods ${what}. At least one; nothing is allowed by default.`,
  type: 'array',
  minItems: 1,
  uniqueItems: true,
  items: method,
});

const pathPattern = (what: string): Json =>
  kind('pattern', {
    title: 'Path pattern',
    description:
      `${what} A canonical path: literal segments, \`*\` for exactly one segment, and a final \`**\` for ` +
      'zero or more segments (`/orders/**` matches `/orders` and `/orders/a/b`).',
    type: 'string',
    pattern: PATH_PATTERN,
    examples: ['/catalog/products', '/orders/*', '/orders/**'],
  });

const cors: Json = {
  title: 'CORS',
  description:
    'Lets web pages from other origins call this route from a browser (Fetch standard, CORS protocol). ' +
    'Omitted: no CORS headers at all, so browsers keep cross-origin pages out.',
  type: 'object',
  additionalProperties: false,
  required: ['origins'],
  properties: {
    origins: {
      title: 'Allowed origins',
      description:
        'Exact origins as browsers send them (`https://app.example.com`, `http://localhost:5173`): scheme, ' +
        'host and port only, https (http for loopback hosts). Or the single entry `*`: any origin, never ' +
        'with `credentials`.',
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: kind('origin', {
        title: 'Origin',
        description: '`scheme://host[:port]` with no path or trailing slash, or `*`.',
        type: 'string',
        pattern: ORIGIN_REGEX_SOURCE,
        examples: ['https://app.example.com', 'http://localhost:5173', '*'],
      }),
      examples: [['https://app.example.com'], ['*']],
    },
    credentials: {
      title: 'Credentials',
      description:
        'Let the browser send cookies and HTTP authentication, and read the response ' +
        '(`Access-Control-Allow-Credentials: true`). Not with `*`. Default false.',
      type: 'boolean',
      default: DEFAULTS.corsCredentials,
    },
    headers: {
      title: 'Allowed request headers',
      description:
        'Request headers a page may send beyond the CORS-safelisted ones (`authorization`, `content-type` ' +
        'for JSON...). Case-insensitive. Default none.',
      type: 'array',
      uniqueItems: true,
      items: kind('header', {
        title: 'Header name',
        description:
          'A request header name, e.g. `authorization`; not one browsers forbid pages to set (`cookie`, `host`...).',
        type: 'string',
        pattern: HEADER_NAME_REGEX_SOURCE,
        maxLength: 128,
      }),
      default: [...DEFAULTS.corsHeaders],
    },
    maxAge: {
      title: 'Preflight cache',
      description: `Seconds a browser may cache the preflight answer (\`Access-Control-Max-Age\`). 0 to ${CORS_MAX_AGE_MAX}. Default ${DEFAULTS.corsMaxAgeSeconds}.`,
      type: 'integer',
      minimum: 0,
      maximum: CORS_MAX_AGE_MAX,
      default: DEFAULTS.corsMaxAgeSeconds,
    },
  },
};

const route: Json = {
  title: 'Route',
  description: 'A request the gateway forwards to this service: path pattern, methods, who may call it, how often.',
  type: 'object',
  additionalProperties: false,
  required: ['path', 'methods'],
  properties: {
    path: pathPattern('The request paths this route matches.'),
    methods: methods('this route accepts'),
    auth: kind('auth', {
      title: 'Authentication',
      description:
        'Who may call the route. Omitted: a valid access token is required (secure by default). `none`: ' +
        'anyone, no token. A map: a valid token that also carries the listed scopes and one of the roles.',
      oneOf: [
        kind('auth', {
          title: 'Public',
          description: 'No token required: anyone on the network may call this route.',
          type: 'string',
          enum: ['none'],
        }),
        {
          title: 'Token with scopes and roles',
          description: 'A valid access token, plus the scopes and roles listed here.',
          type: 'object',
          additionalProperties: false,
          properties: {
            scopes: {
              title: 'Scopes',
              description: 'OAuth scopes the access token must carry (see `scopeMatch`).',
              type: 'array',
              uniqueItems: true,
              items: kind('scope', {
                title: 'Scope',
                description: 'An OAuth scope token (RFC 6749 §3.3): printable ASCII, no spaces or quotes.',
                type: 'string',
                pattern: SCOPE,
              }),
              default: [],
            },
            scopeMatch: {
              title: 'Scope match',
              description: '`all`: the token carries every scope listed; `any`: at least one of them.',
              type: 'string',
              enum: ['all', 'any'],
              default: DEFAULTS.scopeMatch,
            },
            roles: {
              title: 'Roles',
              description:
                "Roles (the token's `roles` claim) of which the caller needs at least one. Empty: none needed.",
              type: 'array',
              uniqueItems: true,
              items: { title: 'Role', description: 'A role name.', type: 'string', minLength: 1 },
              default: [],
            },
          },
        },
      ],
    }),
    rateLimit: kind('rate', {
      title: 'Rate limit',
      description:
        `Requests admitted per period and per key: ${RATE_LIMIT_SYNTAX}. Periods: s, sec, second, m, min, ` +
        'minute, h, hour, d, day, optionally with a count (`100/10s`). Omitted: no per-route limit.',
      type: 'string',
      pattern: RATE_LIMIT_REGEX_SOURCE,
      examples: [RATE_LIMIT_EXAMPLE, '20/10s per subject', '1000/h per header:X-Api-Key'],
    }),
    id: kind('name', {
      title: 'Route id',
      description:
        'Stable identifier: the metrics label and audit resource. Lower case, digits, `.`, `_`, `-`; unique. ' +
        'Default: `<service>.<index>` (0-based, in declaration order).',
      type: 'string',
      pattern: ROUTE_ID,
      maxLength: 128,
    }),
    cors,
  },
};

const call: Json = {
  title: 'Call',
  description: 'A request this service may make to another service (least privilege: nothing else is allowed).',
  type: 'object',
  additionalProperties: false,
  required: ['service', 'methods', 'paths'],
  properties: {
    service: {
      title: 'Callee',
      description: 'Name of the service called (declared under `services`).',
      type: 'string',
      minLength: 1,
    },
    methods: methods('this service may use'),
    paths: {
      title: 'Paths',
      description: 'Path patterns on the callee this service may call. At least one.',
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: pathPattern('A path on the callee.'),
    },
  },
};

const envName = kind('env', {
  title: 'Variable name',
  description:
    'Upper case, digits and `_`, not starting with a digit. Reserved: `RAMPART_*`, `NODE_*` (except ' +
    '`NODE_ENV` and `NODE_EXTRA_CA_CERTS`), `LD_*` and `DYLD_*`: they would change how the process starts.',
  type: 'string',
  pattern: ENV_NAME,
  not: { pattern: RESERVED_ENV_REGEX_SOURCE },
});

const service: Json = {
  title: 'Service',
  description: 'A service Rampart runs as its own process, with its own identity and only the access listed here.',
  type: 'object',
  additionalProperties: false,
  required: ['run'],
  properties: {
    run: {
      title: 'Entry file',
      description: "Path of the service's entry file (TypeScript or JavaScript), relative to the manifest. Must exist.",
      type: 'string',
      minLength: 1,
      examples: ['services/catalog.ts'],
    },
    env: {
      title: 'Environment',
      description: 'Plain, non-secret settings passed to the service as environment variables. Values are strings.',
      type: 'object',
      propertyNames: envName,
      additionalProperties: {
        title: 'Value',
        description: 'A string (quote numbers: "20").',
        type: 'string',
      },
    },
    routes: {
      title: 'Routes',
      description: 'Requests the gateway forwards to this service. Omitted: not reachable from outside.',
      type: 'array',
      items: route,
      default: [],
    },
    calls: {
      title: 'Calls',
      description: 'Other services this service may call, with methods and paths. Omitted: none.',
      type: 'array',
      items: call,
      default: [],
    },
    secrets: {
      title: 'Secrets',
      description: 'Secrets (declared under top-level `secrets`) this service may read. Omitted: none.',
      type: 'array',
      uniqueItems: true,
      items: { title: 'Secret', description: 'Name of a declared secret.', type: 'string', minLength: 1 },
      default: [],
    },
  },
};

const tlsOff = kind('tls', {
  title: 'Off or auto',
  description:
    '`off`: plain HTTP, only allowed when `listen.host` is a loopback address. `auto`: a certificate from ' +
    "the system's local CA for the listen host (and `localhost` on loopback), renewed automatically.",
  type: 'string',
  enum: ['off', 'auto'],
});

const tlsAuto: Json = {
  title: 'Certificate from the local CA',
  description:
    "A certificate from the system's local CA for these names plus the listen host, renewed automatically. " +
    'Clients trust it with `.rampart/control/bundle.pem`.',
  type: 'object',
  additionalProperties: false,
  required: ['auto'],
  properties: {
    auto: {
      title: 'Names',
      description: 'DNS names and IP addresses the certificate is for. No wildcards.',
      type: 'array',
      minItems: 1,
      maxItems: MAX_EDGE_NAMES,
      uniqueItems: true,
      items: {
        title: 'Name',
        description: 'A DNS name (shop.example.test) or an IP address (127.0.0.1, ::1).',
        type: 'string',
        minLength: 1,
        maxLength: 253,
      },
    },
  },
};

const tlsFiles: Json = {
  title: 'Certificate files',
  description: 'A PEM certificate chain and its private key, relative to the manifest.',
  type: 'object',
  additionalProperties: false,
  required: ['cert', 'key'],
  properties: {
    cert: {
      title: 'Certificate',
      description: 'PEM certificate chain file, relative to the manifest.',
      type: 'string',
      minLength: 1,
    },
    key: {
      title: 'Private key',
      description: 'PEM private key file, relative to the manifest.',
      type: 'string',
      minLength: 1,
    },
  },
};

const gateway: Json = {
  title: 'Gateway',
  description: 'The single public entry point: TLS, authentication, authorization, rate limits, proxying.',
  type: 'object',
  additionalProperties: false,
  required: ['tls'],
  properties: {
    listen: {
      title: 'Listen address',
      description: 'Where the gateway accepts requests.',
      type: 'object',
      additionalProperties: false,
      properties: {
        host: kind('host', {
          title: 'Host',
          description: 'IP address or host name to bind. Default loopback: reachable from this machine only.',
          type: 'string',
          minLength: 1,
          default: DEFAULTS.listenHost,
        }),
        port: port('Port', 'TCP port of the gateway.', DEFAULTS.listenPort),
      },
    },
    admin: {
      title: 'Admin listener',
      description: 'Loopback-only listener for health and metrics.',
      type: 'object',
      additionalProperties: false,
      properties: {
        port: port('Port', 'TCP port of the admin listener.', DEFAULTS.adminPort),
      },
    },
    tls: kind('tls', {
      title: 'TLS',
      description:
        '`auto` (a certificate from the local CA, renewed automatically; `{ auto: [names] }` adds names), ' +
        '`{ cert, key }` PEM files relative to the manifest, or `off` (plain HTTP, loopback hosts only).',
      oneOf: [tlsOff, tlsFiles, tlsAuto],
    }),
    workers: {
      title: 'Workers',
      description: `Worker threads serving the public listener. 0 to ${WORKERS_MAX}; 0 (the default) means one per available core.`,
      type: 'integer',
      minimum: 0,
      maximum: WORKERS_MAX,
      default: DEFAULTS.gatewayWorkers,
    },
    redirectHttp: {
      title: 'HTTP redirect listener',
      description:
        'A plain-HTTP listener on the same host that only redirects to the HTTPS listener. Needs TLS on. ' +
        'Omitted: none.',
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      properties: {
        port: {
          title: 'Port',
          description: 'TCP port of the redirect listener (80 in production). 1 to 65535; its own port.',
          type: 'integer',
          minimum: 1,
          maximum: 65535,
          examples: [80, 8080],
        },
      },
    },
    hsts: {
      title: 'HSTS',
      description:
        'Strict-Transport-Security on HTTPS responses of the gateway (and of the identity provider when its ' +
        'issuer is https). Sent to DNS names only: never to IP literals, and `localhost` names get `max-age=0` ' +
        '(HSTS ignores ports: a pin would force HTTPS on every local development server). `includeSubDomains` ' +
        'is added for the names of a `tls: auto` certificate, and for every name with certificate files.',
      type: 'object',
      additionalProperties: false,
      properties: {
        maxAge: {
          title: 'max-age',
          description:
            `Seconds browsers keep using HTTPS only. 0 to ${DEFAULTS.hstsMaxAgeLimitSeconds} (two years); ` +
            `0 tells them to forget. Default ${DEFAULTS.hstsMaxAgeSeconds} (one year).`,
          type: 'integer',
          minimum: 0,
          maximum: DEFAULTS.hstsMaxAgeLimitSeconds,
          default: DEFAULTS.hstsMaxAgeSeconds,
          examples: [86_400, 31_536_000],
        },
      },
      default: {},
    },
    limits: {
      title: 'Listener limits',
      description:
        'Request size limits, timeouts and connection caps of the public listener. Each key is optional; ' +
        'omitted keys keep their defaults.',
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(
        LIMIT_KEYS.map((key) => [
          key,
          {
            title: LIMIT_SPECS[key].title,
            description: `${LIMIT_SPECS[key].description} Default ${DEFAULTS.gatewayLimits[key]}.`,
            type: 'integer',
            minimum: LIMIT_SPECS[key].minimum,
            maximum: LIMIT_SPECS[key].maximum,
            default: DEFAULTS.gatewayLimits[key],
          },
        ]),
      ),
      default: {},
    },
    trustedProxies: {
      title: 'Trusted proxies',
      description:
        'CIDRs (or single addresses) of proxies whose X-Forwarded-For is believed. Default none: nobody can ' +
        'forge a client address.',
      type: 'array',
      uniqueItems: true,
      items: kind('cidr', {
        title: 'CIDR',
        description: 'An IPv4 or IPv6 network with zero host bits (`10.0.0.0/8`), or one address.',
        type: 'string',
        pattern: '^[0-9A-Fa-f.:]+(/[0-9]+)?$',
      }),
      default: [],
    },
    rateLimit: {
      title: 'Rate-limit store',
      description: 'Where rate-limit counters live: `memory` (one gateway) or `redis` (shared by several gateways).',
      oneOf: [
        {
          title: 'Memory',
          description: 'Counters in the gateway process. Exact for one gateway; nothing to install.',
          type: 'object',
          additionalProperties: false,
          required: ['store'],
          properties: {
            store: { title: 'Store', description: 'In-process counters.', type: 'string', enum: ['memory'] },
          },
        },
        {
          title: 'Redis',
          description: 'Counters in Redis, updated atomically, so several gateways share one limit exactly.',
          type: 'object',
          additionalProperties: false,
          required: ['store', 'url'],
          properties: {
            store: { title: 'Store', description: 'Redis-backed counters.', type: 'string', enum: ['redis'] },
            url: kind('url', {
              title: 'Redis URL',
              description: '`redis://host:port` or `rediss://` (TLS).',
              type: 'string',
              pattern: '^rediss?://',
            }),
            onStoreDown: {
              title: 'When Redis is down',
              description: '`deny`: refuse requests (fail closed); `local`: fall back to per-gateway memory counters.',
              type: 'string',
              enum: ['deny', 'local'],
              default: DEFAULTS.onStoreDown,
            },
          },
        },
      ],
      default: { store: DEFAULTS.rateLimitStore },
    },
  },
};

/**
 * A module's store: `sqlite` (files in the process's own data directory) or `{ postgres: <url> }`. One
 * shape for every module that offers both, so the manifest reads the same wherever a store is chosen.
 */
const databaseStore = (description: string, sqlite: string, postgres: string): Json => ({
  title: 'Store',
  description: `${description} Keep passwords out of the manifest: use trust, peer or certificate authentication for the database.`,
  default: DEFAULTS.databaseStore,
  oneOf: [
    kind('store', { title: 'SQLite', description: sqlite, type: 'string', const: DEFAULTS.databaseStore }),
    {
      title: 'PostgreSQL',
      description: postgres,
      type: 'object',
      additionalProperties: false,
      required: ['postgres'],
      properties: {
        postgres: kind('url', {
          title: 'PostgreSQL URL',
          description: '`postgres://user@host:port/database`.',
          type: 'string',
          pattern: '^postgres(ql)?://',
        }),
      },
    },
  ],
});

const identity: Json = {
  title: 'Identity',
  description: 'Who issues the access tokens the gateway accepts: the builtin provider or an external OIDC issuer.',
  type: 'object',
  additionalProperties: false,
  oneOf: [{ required: ['builtin'] }, { required: ['external'] }],
  properties: {
    builtin: {
      title: 'Builtin provider',
      description: 'Run the builtin OAuth 2.0 / OpenID Connect provider.',
      type: 'object',
      additionalProperties: false,
      properties: {
        port: port('Port', 'TCP port of the builtin provider (part of its issuer URL).', DEFAULTS.identityPort, 1),
        issuer: kind('url', {
          title: 'Issuer',
          // Derived from defaults.ts so the published help cannot drift from the code.
          description: `Issuer URL as clients reach the provider. Default \`${defaultIssuer(0).replace(/:0$/, ':<port>')}\`.`,
          type: 'string',
          pattern: '^https?://',
        }),
        store: databaseStore(
          "Where accounts, clients, grants and keys live: `sqlite` (default: a file in the provider's data " +
            'directory) or `{ postgres: <url> }` (shared by several providers).',
          "A file in the provider's own data directory.",
          'A PostgreSQL database, shared by every provider that names it.',
        ),
      },
    },
    external: {
      title: 'External provider',
      description: 'Accept tokens from an external OpenID Connect issuer.',
      type: 'object',
      additionalProperties: false,
      required: ['issuer'],
      properties: {
        issuer: kind('url', {
          title: 'Issuer',
          description: 'The exact `iss` of its tokens: an https URL (http only for loopback hosts).',
          type: 'string',
          pattern: '^https?://',
        }),
        jwksUri: kind('url', {
          title: 'JWKS URI',
          description: "Where its signing keys are. Default: the `jwks_uri` of the issuer's discovery document.",
          type: 'string',
          pattern: '^https?://',
        }),
      },
    },
    audience: {
      title: 'Audience',
      description: 'The `aud` access tokens must carry. Default `https://<trustDomain>`.',
      type: 'string',
      minLength: 1,
      pattern: '^\\S+$',
    },
  },
};

const control: Json = {
  title: 'Control plane',
  description: 'Settings of the control plane: where it keeps its audit log and the secrets it serves.',
  type: 'object',
  additionalProperties: false,
  properties: {
    store: databaseStore(
      "Where the audit log and the secrets live: `sqlite` (default: files in the control plane's data " +
        'directory) or `{ postgres: <url> }` (schemas `rampart_audit` and `rampart_secrets` in that database; ' +
        'one control plane writes an audit log at a time). The CA stays in its own data directory. ' +
        '`rampart secrets` and `rampart audit` take the same URL with `--postgres`.',
      "Files in the control plane's own data directory (`audit.db`, `secrets.db`).",
      'A PostgreSQL database: the audit log in schema `rampart_audit`, the secrets in `rampart_secrets`.',
    ),
  },
  default: {},
};

const secrets: Json = {
  title: 'Secrets',
  description: 'Secrets the system uses. Values are never in the manifest: set them with `rampart secrets`.',
  type: 'object',
  propertyNames: kind('name', {
    title: 'Secret name',
    description: 'Lower case letters, digits and `-`, starting with a letter, at most 63 characters.',
    type: 'string',
    pattern: SECRET_NAME,
  }),
  additionalProperties: {
    title: 'Secret',
    description: 'A secret declaration. Which services may read it is listed under each service.',
    type: 'object',
    additionalProperties: false,
    properties: {
      description: {
        title: 'Description',
        description: 'What the secret is, for people.',
        type: 'string',
        default: DEFAULTS.secretDescription,
      },
    },
  },
  default: {},
};

export const manifestSchema: Readonly<Json> = deepFreeze({
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Rampart system manifest',
  description:
    'rampart.yaml: the services of a system, what the gateway exposes of them, who may call whom, and ' +
    'which secrets each may read. Unknown keys are errors.',
  type: 'object',
  additionalProperties: false,
  required: ['trustDomain', 'gateway', 'identity', 'services'],
  properties: {
    $schema: {
      title: 'Schema',
      description: 'The JSON Schema of this file, for editors. Ignored by Rampart.',
      type: 'string',
    },
    version: {
      title: 'Manifest version',
      description: 'Version of the manifest format. Only 1 exists.',
      type: 'integer',
      enum: [DEFAULTS.version],
      default: DEFAULTS.version,
    },
    trustDomain: kind('trustDomain', {
      title: 'Trust domain',
      description:
        'Name of this system: the SPIFFE trust domain of its workload identities (`spiffe://<trustDomain>/svc/<name>`). ' +
        'A lower-case DNS name.',
      type: 'string',
      pattern: TRUST_DOMAIN,
      examples: ['shop.local'],
    }),
    gateway,
    identity,
    control,
    secrets,
    services: {
      title: 'Services',
      description: 'The services of the system, by name.',
      type: 'object',
      minProperties: 1,
      propertyNames: kind('name', {
        title: 'Service name',
        description:
          'Lower case letters, digits and `-`, starting with a letter, at most 63 characters. Reserved for ' +
          `Rampart's components: ${RESERVED_SERVICE_NAMES.map((n) => `\`${n}\``).join(', ')}.`,
        type: 'string',
        pattern: SERVICE_NAME,
        not: { enum: [...RESERVED_SERVICE_NAMES] },
      }),
      additionalProperties: service,
    },
  },
});

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
