import { isIP } from 'node:net';
import { parseEdgeName } from './edge-name.ts';

/**
 * What an HTTPS origin of the system says in `Strict-Transport-Security` (RFC 6797), decided per host
 * by {@link hstsHeader}: the gateway's hardening stage and the identity provider both ask it.
 */
export interface HstsPolicy {
  /** `max-age` in seconds (manifest `gateway.hsts.maxAge`). */
  readonly maxAgeSeconds: number;
  /**
   * DNS names whose subdomains are ours too (`includeSubDomains`): the names the manifest gives the
   * edge. `null`: every DNS name (certificate files, whose names the manifest does not list: a browser
   * acts on the header only after it accepted the certificate for that very host, RFC 6797 §8.1).
   */
  readonly subdomainNames: ReadonlySet<string> | null;
}

/** Builds a policy; `names` are lower-cased (DNS names compare case-insensitively). */
export function hstsPolicy(maxAgeSeconds: number, names: readonly string[] | null): HstsPolicy {
  return {
    maxAgeSeconds,
    subdomainNames: names === null ? null : new Set(names.map((n) => n.toLowerCase())),
  };
}

/**
 * `max-age=0`: tells a browser to forget what it knew (RFC 6797 §6.1.1). Sent to `localhost` names
 * instead of a pin: HSTS ignores ports (§8.3), so a year-long pin on `localhost` (with
 * `includeSubDomains`, on every `*.localhost` too) would force HTTPS on every other development server
 * of the machine; and releasing a pin that an earlier Rampart version set does no harm.
 */
const FORGET = 'max-age=0';

/**
 * The `Strict-Transport-Security` value for a response over TLS to a request for `host` (the Host
 * header as received, port included), or null for none:
 * - IP literals: none. Browsers must ignore it there (RFC 6797 §8.1.1), so sending it only misleads.
 * - `localhost` and `*.localhost` (RFC 6761 §6.3, loopback by definition): `max-age=0` (see FORGET).
 * - A DNS name: `max-age=<policy>`, with `includeSubDomains` only for the names of the policy.
 * - Anything else (absent, malformed, not a host name): none; such a request is refused anyway.
 * Never call it for plain HTTP: the header must not be sent there (§7.2).
 */
export function hstsHeader(host: string | undefined, policy: HstsPolicy): string | null {
  const name = hostName(host);
  if (name === null || isIP(name) !== 0) return null;
  if (name === 'localhost' || name.endsWith('.localhost')) return FORGET;
  const parsed = parseEdgeName(name);
  if (!parsed.ok || parsed.name.type !== 'dns') return null;
  if (policy.maxAgeSeconds === 0) return FORGET;
  const subdomains = policy.subdomainNames === null || policy.subdomainNames.has(parsed.name.value);
  return `max-age=${policy.maxAgeSeconds}${subdomains ? '; includeSubDomains' : ''}`;
}

/**
 * The host part of a Host header value: lower case, without the port and one trailing dot (the
 * absolute form names the same host). Null when there is nothing usable, and for IPv6 literals
 * (bracketed, or bare and so malformed): no header goes to an IP literal either way.
 */
function hostName(host: string | undefined): string | null {
  if (host === undefined || host.includes('[')) return null;
  const colon = host.indexOf(':');
  if (colon >= 0 && (host.indexOf(':', colon + 1) >= 0 || !/^[0-9]{1,5}$/.test(host.slice(colon + 1)))) return null;
  let name = (colon < 0 ? host : host.slice(0, colon)).toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name === '' ? null : name;
}
