import type { GatewayConfig } from './model.ts';
import { isLoopbackHost } from './net.ts';

/**
 * The names a `tls: auto` edge certificate carries for this gateway: the manifest's
 * `tls: { auto: [names] }`, then the listen host when it is a name or an address (not a wildcard),
 * then `localhost` when the gateway listens on loopback or on every address (a developer types
 * `https://localhost:<port>`). Empty when the gateway is not in `tls: auto` mode. The control plane
 * asks its CA for exactly these (control/api/edge-routes.ts); `rampart check` shows them.
 */
export function edgeCertificateNames(gateway: Pick<GatewayConfig, 'tls' | 'listen'>): string[] {
  if (gateway.tls.mode !== 'auto') return [];
  const host = gateway.listen.host;
  const wildcard = host === '0.0.0.0' || host === '::' || host === '';
  const names = [...gateway.tls.names];
  if (!wildcard) names.push(host);
  if (wildcard || isLoopbackHost(host)) names.push('localhost');
  return [...new Set(names.map((n) => n.toLowerCase()))];
}
