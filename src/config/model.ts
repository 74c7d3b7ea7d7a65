/**
 * The validated, normalized system manifest. `loadManifest` (load.ts) is the only producer: every
 * component receives this frozen shape and never parses `rampart.yaml` itself a second way.
 */

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Who a rate limit counts: the client IP, the token subject, the token's client_id, or a request header. */
export type RateLimitKey = { kind: 'ip' } | { kind: 'subject' } | { kind: 'client' } | { kind: 'header'; name: string };

export interface RateLimit {
  /** Requests admitted per period. */
  limit: number;
  /** Period length in milliseconds. */
  periodMs: number;
  key: RateLimitKey;
  /** The text as written (`100/min per ip`), for summaries and the RateLimit-Policy field. */
  source: string;
}

/**
 * A path pattern: literal segments, `*` for exactly one segment, and a trailing `**` for zero or more
 * segments. Patterns are canonical paths themselves (see core/canonical-path.ts).
 */
export interface PathPattern {
  source: string;
  /** The segments as written, a final `**` included (`/orders/**` → `['orders', '**']`; `/` → `[]`). */
  segments: readonly string[];
}

export type RouteAuth =
  | { kind: 'none' }
  | {
      kind: 'token';
      /** Scopes the access token must carry. */
      scopes: readonly string[];
      /** `all`: every scope listed; `any`: at least one. */
      scopeMatch: 'all' | 'any';
      /** Roles (the token's `roles` claim) of which the caller needs at least one; empty: no role needed. */
      roles: readonly string[];
    };

export interface Route {
  /** Stable, bounded identifier: the metric label and the audit resource. */
  id: string;
  service: string;
  path: PathPattern;
  methods: readonly HttpMethod[];
  auth: RouteAuth;
  rateLimit: RateLimit | null;
  /** Where the route was declared, for messages at run time. */
  where: SourceLocation;
  /** Cross-origin access for browsers; null (the default) sends no CORS headers at all. */
  cors: CorsPolicy | null;
}

/** CORS for one route (Fetch standard, CORS protocol). Exact origins only; `*` is never combined with credentials. */
export interface CorsPolicy {
  /** Exact origins (`https://app.example.com`), or the single entry `*` for any origin without credentials. */
  origins: readonly string[];
  /** Send `Access-Control-Allow-Credentials: true` (never with `*`). */
  credentials: boolean;
  /** Request headers a preflight may ask for, lower case. */
  headers: readonly string[];
  /** Preflight cache lifetime in seconds. */
  maxAgeSeconds: number;
}

export interface Call {
  service: string;
  methods: readonly HttpMethod[];
  paths: readonly PathPattern[];
}

export interface Service {
  name: string;
  /** Absolute path of the service's entry file. */
  run: string;
  routes: readonly Route[];
  calls: readonly Call[];
  secrets: readonly string[];
  /** Plain, non-secret settings passed to the service's environment. */
  env: Readonly<Record<string, string>>;
}

/**
 * Edge TLS: `off` (loopback only), certificate and key files (absolute paths; reloaded when they change),
 * or `auto`: a certificate issued by the system's local certificate authority for `names`.
 */
export type TlsConfig =
  | { mode: 'off' }
  | { mode: 'files'; cert: string; key: string }
  | { mode: 'auto'; names: readonly string[] };

/** Request limits and timeouts of the public listener. Defaults and their reasons: src/config/defaults.ts. */
export interface GatewayLimits {
  maxBodyBytes: number;
  maxHeaderBytes: number;
  maxHeadersCount: number;
  maxTargetLength: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  tlsHandshakeTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerClient: number;
}

export type RateLimitStore = { store: 'memory' } | { store: 'redis'; url: string; onStoreDown: 'deny' | 'local' };

export interface GatewayConfig {
  listen: { host: string; port: number };
  /** Loopback admin listener (health, metrics); port 0 lets the launcher choose. */
  admin: { port: number };
  tls: TlsConfig;
  /** CIDRs whose X-Forwarded-For / Forwarded headers are believed. */
  trustedProxies: readonly string[];
  rateLimit: RateLimitStore;
  /** Worker threads serving the listener (SO_REUSEPORT); 0 means one per available core. */
  workers: number;
  /** A plain-HTTP listener that only redirects to HTTPS; null for none. Only with TLS on. */
  redirectHttp: { port: number } | null;
  limits: GatewayLimits;
  /**
   * Strict-Transport-Security of the system's HTTPS origins (gateway, and the identity provider when
   * its issuer is https); which hosts get it: core/hsts.ts. Absent in hand-built configurations (tests):
   * `DEFAULTS.hstsMaxAgeSeconds` then.
   */
  hsts?: { maxAgeSeconds: number };
}

/** A module's durable store: SQLite files in the process's own data directory, or a PostgreSQL database. */
export type DatabaseStoreConfig = { kind: 'sqlite' } | { kind: 'postgres'; url: string };

/** Where the builtin provider keeps accounts, clients, grants and keys. */
export type IdentityStoreConfig = DatabaseStoreConfig;

/**
 * The control plane's settings. `store` holds its audit log and secrets (each module in its own
 * PostgreSQL schema); the CA stays in a SQLite file in the control plane's data directory.
 */
export interface ControlConfig {
  store: DatabaseStoreConfig;
}

export type IdentityConfig =
  | { mode: 'builtin'; port: number; issuer: string; audience: string; store: IdentityStoreConfig }
  | { mode: 'external'; issuer: string; jwksUri: string | null; audience: string };

export interface SecretDeclaration {
  name: string;
  description: string;
}

export interface Manifest {
  /** Absolute path of the manifest file. */
  file: string;
  /** Directory of the manifest; relative paths in it resolve from here. */
  dir: string;
  trustDomain: string;
  gateway: GatewayConfig;
  identity: IdentityConfig;
  control: ControlConfig;
  secrets: Readonly<Record<string, SecretDeclaration>>;
  services: Readonly<Record<string, Service>>;
  /** Every route of every service, in declaration order. */
  routes: readonly Route[];
}

export interface SourceLocation {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
}

/** One problem found in a manifest. `code` is stable (tests match on it); the rest is for people. */
export interface ConfigIssue extends SourceLocation {
  code: string;
  /** Dotted path to the offending value, e.g. `services.orders.routes[1].rateLimit`. */
  path: string;
  message: string;
  hint?: string;
}
