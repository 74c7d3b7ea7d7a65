import type { ServerResponse } from 'node:http';
import { DEFAULTS } from '../config/defaults.ts';
import { hstsHeader, hstsPolicy } from '../core/hsts.ts';

/**
 * The provider's `Strict-Transport-Security`, decided once: it serves its issuer's host only (other
 * Host headers are refused with 421), so the issuer decides, by the same rules as the gateway
 * (core/hsts.ts): none over http or for an IP literal, `max-age=0` for `localhost` names, else the
 * manifest's `max-age` (`gateway.hsts.maxAge`) with `includeSubDomains` (the issuer's name is the one
 * the manifest gives it).
 */
export function issuerHsts(issuer: URL, maxAgeSeconds: number = DEFAULTS.hstsMaxAgeSeconds): string | null {
  if (issuer.protocol !== 'https:') return null;
  return hstsHeader(issuer.host, hstsPolicy(maxAgeSeconds, [issuer.hostname]));
}

/**
 * Response headers of every answer of the provider, and the Content-Security-Policy of its pages.
 *
 * Pages carry no script at all (`script-src 'none'`; oidc-provider's form_post page adds the hash of
 * its one auto-submit script itself), styles only from the provider's stylesheet, no framing
 * (`frame-ancestors 'none'`: clickjacking of the login and consent forms), forms only to the provider
 * itself and to the redirect target of the request being served (browsers apply `form-action` to the
 * redirects that follow a form submission, and a login ends in a redirect to the client).
 */
export function setBaseHeaders(res: ServerResponse, hsts: string | null): void {
  res.setHeader('x-content-type-options', 'nosniff');
  // same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on the pages' own form
  // posts, and the CSRF check needs the real origin. Nothing leaks to other sites either way.
  res.setHeader('referrer-policy', 'same-origin');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('cross-origin-opener-policy', 'same-origin');
  res.setHeader('content-security-policy', pageCsp([]));
  if (hsts !== null) res.setHeader('strict-transport-security', hsts);
}

/** CSP of a page that may submit forms to `formTargets` (origins) besides itself. */
export function pageCsp(formTargets: readonly string[], scriptHashes: readonly string[] = []): string {
  const scripts = scriptHashes.length > 0 ? scriptHashes.join(' ') : "'none'";
  return [
    "default-src 'none'",
    `script-src ${scripts}`,
    "style-src 'self'",
    "img-src 'self' data:",
    `form-action 'self'${formTargets.map((o) => ` ${o}`).join('')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

/**
 * Origins a page's forms may lead to: the redirect URI (or post-logout redirect URI) of the request,
 * when it is an http(s) URL. Only the origin, never a path (CSP source expressions with paths are
 * ignored across redirects anyway).
 */
export function formTargetsOf(...uris: unknown[]): string[] {
  const out = new Set<string>();
  for (const uri of uris) {
    if (typeof uri !== 'string') continue;
    const url = URL.parse(uri);
    if (url && (url.protocol === 'https:' || url.protocol === 'http:')) out.add(url.origin);
    // A private-use scheme (native apps, RFC 8252 §7.1) is allowed by its scheme.
    else if (url && /^[a-z][a-z0-9+.-]*:$/.test(url.protocol)) out.add(url.protocol);
  }
  return [...out];
}

/** Extracts the `'sha256-…'` sources oidc-provider added to a CSP it was given. */
export function scriptHashesOf(csp: string): string[] {
  return csp.match(/'sha256-[A-Za-z0-9+/=]+'/g) ?? [];
}
