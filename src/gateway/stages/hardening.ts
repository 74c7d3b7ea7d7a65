import { DEFAULTS } from '../../config/defaults.ts';
import { edgeCertificateNames } from '../../config/edge-certificate-names.ts';
import type { GatewayConfig } from '../../config/model.ts';
import { type HstsPolicy, hstsHeader, hstsPolicy } from '../../core/hsts.ts';
import type { GatewayDeps, Stage } from '../stage.ts';

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
 * The gateway's HSTS policy: the manifest's `max-age`; `includeSubDomains` for the names of a `tls: auto`
 * certificate, or for any DNS name with certificate files (their names are the certificate's).
 */
function gatewayHstsPolicy(gateway: Pick<GatewayConfig, 'tls' | 'listen' | 'hsts'>): HstsPolicy {
  const maxAge = gateway.hsts?.maxAgeSeconds ?? DEFAULTS.hstsMaxAgeSeconds;
  return hstsPolicy(maxAge, gateway.tls.mode === 'auto' ? edgeCertificateNames(gateway) : null);
}

/**
 * Response hardening. It is the first stage so that its response side runs last and applies to every
 * response, denials included: no server banner, no MIME sniffing, no referrer leak, no framing unless
 * the service says otherwise (OWASP REST Security: APIs are not meant to be framed), and HSTS on TLS
 * for the host asked (core/hsts.ts: DNS names only; `localhost` gets `max-age=0`, IP literals nothing).
 */
export function createHardening(deps: Pick<GatewayDeps, 'manifest'>): Stage {
  const policy = gatewayHstsPolicy(deps.manifest.gateway);
  // Traffic mostly names one host: the last answer is kept, so parsing runs when the Host header changes.
  let lastHost: string | undefined;
  let lastHsts: string | null = null;
  const hstsFor = (host: string | undefined): string | null => {
    if (host !== lastHost) {
      lastHsts = hstsHeader(host, policy);
      lastHost = host;
    }
    return lastHsts;
  };
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
      // A service's own value is never passed on: HSTS is the edge's, per host.
      const hsts = ctx.secure ? hstsFor(ctx.req.headers.host) : null;
      if (hsts !== null) headers['strict-transport-security'] = hsts;
      else delete headers['strict-transport-security'];
    },
  };
}
