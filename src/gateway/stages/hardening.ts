import type { Stage } from '../stage.ts';

/** HSTS for one year with subdomains (RFC 6797; the value browsers' preload lists require). */
const HSTS = 'max-age=31536000; includeSubDomains';

/** Upstream headers that disclose the software behind the gateway. */
const LEAKY = ['server', 'x-powered-by', 'x-aspnet-version', 'x-aspnetmvc-version'] as const;

/**
 * Response hardening. It is the first stage so that its response side runs last and applies to every
 * response, denials included: no server banner, no MIME sniffing, no referrer leak, and HSTS on TLS.
 */
export function createHardening(): Stage {
  return {
    name: 'hardening',
    request: () => {},
    respond: (ctx, headers) => {
      for (const name of LEAKY) delete headers[name];
      headers['x-content-type-options'] = 'nosniff';
      headers['referrer-policy'] ??= 'no-referrer';
      // RFC 6797 §7.2: HSTS is only meaningful (and only sent) over a secure transport.
      if (ctx.secure) headers['strict-transport-security'] = HSTS;
    },
  };
}
