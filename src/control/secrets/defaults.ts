/**
 * Defaults of the secrets module, each with the reason for its value. One place, so a reviewer can see
 * every number the module depends on.
 */
export const SECRETS_DEFAULTS = {
  /**
   * Largest value, in bytes: 64 KiB, AWS Secrets Manager's limit for a secret value. Secrets are keys,
   * passwords and certificates; a larger blob belongs in encrypted storage with its key here.
   */
  maxValueBytes: 64 * 1024,
  /**
   * How long an audit append may take before the operation is refused (fail closed). The audit log
   * acknowledges after a group-commit fsync (milliseconds); 2 s leaves a wide margin on a busy disk and
   * still refuses a read well inside an SDK request deadline when the log is stalled.
   */
  auditTimeoutMs: 2_000,
  /** SQLite busy timeout: the CLI and the control plane may open the same file; wait for a writer, briefly. */
  sqliteBusyTimeoutMs: 5_000,
  /** PostgreSQL schema holding the tables, apart from an application's `public`. */
  postgresSchema: 'rampart_secrets',
  /** PostgreSQL pool size: reads are single statements, writes are rare. */
  postgresMaxConnections: 10,
  /**
   * SDK cache lifetime of a value. A rotation (promote) reaches every service within this time; a miss
   * costs one read through the control plane (a few milliseconds), so 30 s keeps the control plane's
   * load at one read per secret per service per 30 s and rotation visible within half a minute.
   */
  cacheTtlMs: 30_000,
  /**
   * How long the SDK cache may keep serving a value after its lifetime when refreshing FAILS (control
   * plane restarting, network): 5 minutes covers a control-plane restart. Never used after an
   * authoritative answer: a refused or missing secret is dropped from the cache at once.
   */
  cacheMaxStaleMs: 5 * 60_000,
} as const;

/**
 * Limits of the control plane's secrets routes (api/secrets-routes.ts). A read request is a name and a
 * label; everything is sized for exactly that.
 */
export const SECRETS_API_DEFAULTS = {
  /** Largest request body: `{"name": <63 chars>, "label": "previous"}` is under 100 bytes. */
  maxBodyBytes: 1024,
  /**
   * Longest name read from a request: one more than SECRET_NAME allows, so a too-long name still reaches
   * the ACL (refused and audited like any name not granted) and anything longer is a plain 400.
   */
  maxNameLength: 64,
  /** Longest label read from a request (`previous` is 8). */
  maxLabelLength: 16,
  /** Longest `x-request-id` copied into audit events (the gateway's ids are 32 characters). */
  maxRequestIdLength: 128,
  /**
   * Longest base64 value an operator sends (api/operator-secrets-routes.ts): exactly the base64 length
   * of the largest value, so an oversized one is a 400 before it is decoded.
   */
  maxOperatorValueChars: Math.ceil(SECRETS_DEFAULTS.maxValueBytes / 3) * 4,
  /** Largest operator request body: that value plus the name and a few flags (under 200 bytes). */
  maxOperatorBodyBytes: Math.ceil(SECRETS_DEFAULTS.maxValueBytes / 3) * 4 + 1024,
} as const;

/**
 * A secret's name: the manifest's rule (src/config/schema.ts SECRET_NAME), so every declared secret can
 * be stored and nothing else can. The alphabet leaves no room for separators, NUL or path tricks, which
 * keeps the associated data and the key-wrapping contexts unambiguous.
 */
export const SECRET_NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** Highest version number (versions are stored as 32-bit integers and bound into the AEAD as uint32). */
export const MAX_VERSION = 0x7fff_ffff;

/**
 * File names in the control plane's data directory (`.rampart/control`): the store the control plane
 * serves, which `rampart secrets` opens itself when no control plane runs. Events go to the audit log
 * (`audit.db`, src/control/audit/defaults.ts).
 */
export const SECRETS_FILES = {
  database: 'secrets.db',
} as const;
