import type { Stage } from '../stage.ts';

/** HSTS for one year with subdomains (RFC 6797; the value browsers' preload lists require). */
const HSTS = 'max-age=31536000; includeSubDomains';

/** Upstream headers that disclose the software behind the gateway. */
const LEAKY = [
  'server',
  'x-powered-by',
  'x-aspnet-version',
  'x-aspnetmvc-version',
  'x-runtime',
  'x-generator',
] as const;

/**
 * Response hardening. It is the first stage so that its response side runs last and applies to every
 * response, denials included: no server banner, no MIME sniffing, no referrer leak, no framing unless
 * the service says otherwise (OWASP REST Security: APIs are not meant to be framed), and HSTS on TLS.
 */
export function createHardening(): Stage {
  return {
    name: 'hardening',
    request: () => {},
    respond: (ctx, headers) => {
      for (const name of LEAKY) delete headers[name];
      headers['x-content-type-options'] = 'nosniff';
      headers['referrer-policy'] ??= 'no-referrer';
      headers['x-frame-options'] ??= 'DENY';
      // RFC 6797 §7.2: HSTS is only meaningful (and only sent) over a secure transport; a plain-HTTP
      // response must never carry it (a network attacker could inject one to pin a host).
      if (ctx.secure) headers['strict-transport-security'] = HSTS;
      else delete headers['strict-transport-security'];
    },
  };
}
