/**
 * Every default of the manifest, in one place, each with the reason it is that value (oidc-provider
 * `defaults.js`). The JSON Schema publishes the same values as `default` annotations.
 */
export const DEFAULTS = Object.freeze({
  /** The only manifest format so far; a later format bumps it and old files keep their meaning. */
  version: 1,
  /** The file `rampart check` and `rampart start` read when none is named: one obvious place. */
  manifestFile: 'rampart.yaml',
  /**
   * Loopback: a fresh system is reachable from this machine only, until someone decides otherwise in
   * writing. Binding every interface by default is how development servers end up on the internet.
   */
  listenHost: '127.0.0.1',
  /** 8443: the conventional unprivileged HTTPS port (no root needed to bind it, unlike 443). */
  listenPort: 8443,
  /**
   * 0: the launcher picks a free port and prints it, so two systems on one laptop never collide on an
   * admin port nobody chose. The admin listener is loopback-only whatever the port.
   */
  adminPort: 0,
  /**
   * Nobody's X-Forwarded-For is believed until a proxy is listed: otherwise any client can forge its
   * address and dodge per-ip rate limits and audit attribution.
   */
  trustedProxies: Object.freeze([] as string[]),
  /** In memory: nothing to install, and exact for one gateway. Redis when several gateways share limits. */
  rateLimitStore: 'memory',
  /** deny: fail closed while Redis is away. A limit that disappears during an outage is no limit. */
  onStoreDown: 'deny',
  /**
   * `sqlite` for the identity provider's and the control plane's stores: files in each process's own
   * data directory, nothing to install or operate. PostgreSQL is the choice once the data must outlive
   * the machine or be shared.
   */
  databaseStore: 'sqlite',
  /** 8444: beside the gateway's 8443 (the design brief's builtin identity port). */
  identityPort: 8444,
  /**
   * `all`: listing a scope means requiring it. `any` is the weaker form, so it has to be written out.
   */
  scopeMatch: 'all',
  /** Descriptions are for people; a secret without one is still a secret. */
  secretDescription: '',
  /**
   * No cookies or HTTP authentication across origins unless written: a credentialed CORS grant lets
   * the listed sites act as the signed-in user, so it has to be a decision (Fetch, CORS protocol).
   */
  corsCredentials: false,
  /** No extra request headers across origins unless listed: the CORS-safelisted ones need no grant. */
  corsHeaders: Object.freeze([] as string[]),
  /**
   * 10 minutes of preflight caching: saves a round trip per request while a changed policy still
   * reaches browsers soon (Chromium caps any value at 2 hours, Firefox at 24 hours).
   */
  corsMaxAgeSeconds: 600,
  /** 0: one gateway worker thread per available core; the listener is shared with SO_REUSEPORT. */
  gatewayWorkers: 0,
  /**
   * HSTS `max-age`: one year, the least that browsers' preload lists accept and what RFC 6797 §11.2's
   * "long" means in practice; localhost and IP literals are never pinned whatever it is (core/hsts.ts).
   */
  hstsMaxAgeSeconds: 31_536_000,
  /** Longest HSTS `max-age` accepted: two years; a typo of extra digits would pin browsers for decades. */
  hstsMaxAgeLimitSeconds: 63_072_000,
  /**
   * Limits of the public listener. Node's own defaults are not safe for an edge (headersTimeout 60 s,
   * requestTimeout 300 s, no connection cap, 120 s TLS handshake: DESIGN.md).
   */
  gatewayLimits: Object.freeze({
    /** 1 MiB request bodies (nginx's client_max_body_size default); APIs that take uploads raise it per system. */
    maxBodyBytes: 1_048_576,
    /** 16 KiB of request headers: Node's default, the order of nginx's large_client_header_buffers. */
    maxHeaderBytes: 16_384,
    /** 100 header lines: more is abuse, not an application. */
    maxHeadersCount: 100,
    /** Request-target length; longer answers 414 (common proxies cap near 8 KiB). */
    maxTargetLength: 8_192,
    /** Slowloris bound: 10 s to send the request headers (nginx allows 60 s; an API client needs far less). */
    headersTimeoutMs: 10_000,
    /** Whole-request bound, body included. */
    requestTimeoutMs: 30_000,
    /** Idle keep-alive connections close after 5 s (Node's default; below common load balancers' 60 s). */
    keepAliveTimeoutMs: 5_000,
    /** A TLS handshake gets 10 s (Node allows 120 s, which lets idle half-open handshakes pile up). */
    tlsHandshakeTimeoutMs: 10_000,
    /** Open connections per gateway worker. */
    maxConnections: 10_000,
    /** Open connections from one client address: one host cannot take every slot. */
    maxConnectionsPerClient: 256,
  }),
} as const);

/**
 * Issuer of the builtin identity provider on `port`: the loopback address the launcher binds it to, over
 * plain HTTP because that is what the process serves today (TLS for it arrives with the identity
 * provider). The issuer is compared byte for byte (OpenID Connect Discovery §4.3, RFC 9068 §4), so set
 * `identity.builtin.issuer` when clients reach it under another name.
 */
export function defaultIssuer(port: number): string {
  return `http://127.0.0.1:${port}`;
}

/**
 * The `aud` tokens must carry: the system's trust domain as an https URI, unique per system, so a token
 * minted for one Rampart system is refused by another that trusts the same issuer (RFC 9068 §4).
 */
export function defaultAudience(trustDomain: string): string {
  return `https://${trustDomain}`;
}

/**
 * Route id when none is written: `<service>.<index>` (0-based, declaration order). Stable while routes
 * are only appended, bounded (one per route), and always a valid id since service names are.
 */
export function defaultRouteId(service: string, index: number): string {
  return `${service}.${index}`;
}
