import { checkHost, isLoopbackHost } from './net.ts';

/**
 * What a CORS origin in the manifest may look like, for editors: `*`, or `http(s)://` and a host with
 * no path, query or fragment. {@link parseOrigin} decides exactly; it rejects everything this rejects.
 */
export const ORIGIN_REGEX_SOURCE = '^(\\*|https?://[^/?#\\s]+)$';

/** Longest preflight cache a route may ask for, in seconds: one day (Firefox's cap; Chromium's is 2 hours). */
export const CORS_MAX_AGE_MAX = 86_400;

/** RFC 9110 §5.6.2 token: the characters of a header name. */
export const HEADER_NAME_REGEX_SOURCE = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const HEADER_NAME = new RegExp(HEADER_NAME_REGEX_SOURCE);

/**
 * Request headers no page can set (Fetch standard, "forbidden request-header"), so allowing them in a
 * preflight means nothing and usually reveals a misunderstanding (cookies travel with `credentials`).
 */
const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'accept-charset',
  'accept-encoding',
  'access-control-request-headers',
  'access-control-request-method',
  'connection',
  'content-length',
  'cookie',
  'cookie2',
  'date',
  'dnt',
  'expect',
  'host',
  'keep-alive',
  'origin',
  'referer',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'via',
]);

/**
 * Prefixes of forbidden request-header names (Fetch), and `x-rampart-`: the gateway strips inbound
 * internal headers, so a browser sending them could never reach a service with them.
 */
const FORBIDDEN_PREFIXES = ['proxy-', 'sec-', 'x-rampart-'] as const;

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string; hint: string };

/**
 * Checks a CORS origin: `*`, or an exact serialized origin (`scheme://host[:port]`, as browsers send
 * it in the `Origin` header, RFC 6454 §6.2) with scheme https, or http for a loopback host. The value
 * is compared byte for byte at run time, so a non-canonical spelling (upper case, a default port, a
 * trailing slash, a Unicode host) would never match: it is refused with the canonical form as hint.
 */
export function parseOrigin(text: string): Parsed<string> {
  if (text === '*') return { ok: true, value: text };
  const fail = (reason: string, hint: string): Parsed<string> => ({ ok: false, reason, hint });
  if (text.toLowerCase() === 'null') {
    return fail(
      'the `null` origin is sent by sandboxed frames, local files and redirects: anyone can have it',
      'list the real origins of your web app',
    );
  }
  const url = URL.parse(text);
  if (url === null || !/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    return fail('not an origin', 'write scheme://host[:port], e.g. https://app.example.com');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return fail(`the scheme is ${url.protocol.slice(0, -1)}`, 'use https (http only for loopback hosts)');
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host.startsWith('*') || host.includes('*')) {
    return fail('wildcard subdomains are not supported', 'list each origin, e.g. https://app.example.com');
  }
  if (url.username !== '' || url.password !== '') {
    return fail('an origin has no user name or password', `write ${url.origin}`);
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || /[/?#]$/.test(text)) {
    return fail('an origin has no path, query, fragment or trailing slash', `write ${url.origin}`);
  }
  const problem = checkHost(host);
  if (problem !== undefined) return fail(problem, 'write scheme://host[:port], e.g. https://app.example.com');
  if (url.protocol === 'http:' && !isLoopbackHost(host)) {
    return fail(
      'plain http is only allowed for loopback origins',
      `use ${url.origin.replace(/^http:/, 'https:')} (http only for localhost, 127.0.0.1, [::1])`,
    );
  }
  if (url.origin !== text) {
    // Upper case, a default port (`:443`), a Unicode host: browsers send the serialized form.
    return fail('not in the form browsers send', `write ${url.origin}`);
  }
  return { ok: true, value: text };
}

/**
 * Checks a request-header name a preflight may ask for; returns it in lower case (header names are
 * case-insensitive, RFC 9110 §5.1, and browsers send them lower case in
 * `Access-Control-Request-Headers`).
 */
export function parseCorsHeader(text: string): Parsed<string> {
  if (text === '*') {
    return {
      ok: false,
      reason: 'a wildcard is not supported',
      hint: 'list the header names the web app sends, e.g. [authorization, content-type]',
    };
  }
  if (!HEADER_NAME.test(text)) {
    return { ok: false, reason: 'not a header name', hint: 'letters, digits and - (an RFC 9110 token)' };
  }
  const name = text.toLowerCase();
  const prefix = FORBIDDEN_PREFIXES.find((p) => name.startsWith(p));
  if (FORBIDDEN_HEADERS.has(name) || prefix !== undefined) {
    return {
      ok: false,
      reason:
        prefix === 'x-rampart-'
          ? 'x-rampart-* headers are internal: the gateway removes them from every request'
          : 'browsers never let a page set it (a forbidden request-header, Fetch standard)',
      hint:
        name === 'cookie'
          ? 'cookies are sent when `credentials: true`; remove it from `headers`'
          : 'remove it from `headers`',
    };
  }
  return { ok: true, value: name };
}
