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
  /** 8444: beside the gateway's 8443 (the design brief's builtin identity port). */
  identityPort: 8444,
  /**
   * `all`: listing a scope means requiring it. `any` is the weaker form, so it has to be written out.
   */
  scopeMatch: 'all',
  /** Descriptions are for people; a secret without one is still a secret. */
  secretDescription: '',
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
