/**
 * An in-process Rampart gateway in front of an echo upstream, trusting a given issuer (the way
 * src/gateway/gateway.test.ts builds one): the proof that tokens from the identity provider open
 * protected routes.
 */
import { pino } from 'pino';
import { parseManifest } from '../../src/config/load.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import { createMemoryDecisionSink } from '../../src/gateway/decision-sink.ts';
import { createGateway, type Gateway } from '../../src/gateway/gateway.ts';
import { createGatewayMetrics } from '../../src/gateway/metrics.ts';
import { type EchoUpstream, startEchoUpstream } from '../helpers/http.ts';

export interface TestGateway {
  base: string;
  upstream: EchoUpstream;
  close(): Promise<void>;
}

/** Routes like the shop's: `/orders/**` needs scope `orders`; `/admin` needs `catalog:write` and role `admin`. */
export async function startGatewayFor(issuer: string, audience: string): Promise<TestGateway> {
  const upstream = await startEchoUpstream();
  const manifest = parseManifest(
    `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18080 }
  tls: off
identity:
  external: { issuer: "${issuer}", jwksUri: "${issuer}/jwks" }
  audience: ${audience}
services:
  shop:
    run: ${import.meta.filename}
    routes:
      - { id: orders, path: /orders/**, methods: [GET], auth: { scopes: [orders] } }
      - { id: admin, path: /admin, methods: [GET], auth: { scopes: [catalog:write], roles: [admin] } }
`,
    '/tmp/identity-gateway-test/rampart.yaml',
  );
  const registry = createMetrics('identity-gateway-test');
  const gateway: Gateway = createGateway({
    manifest,
    upstreams: { shop: upstream.url },
    logger: pino({ level: 'silent' }),
    registry,
    metrics: createGatewayMetrics(registry),
    decisions: createMemoryDecisionSink(),
    now: Date.now,
  });
  const port = await gateway.listen('127.0.0.1', 0);
  return {
    base: `http://127.0.0.1:${port}`,
    upstream,
    async close() {
      await gateway.close(100);
      await upstream.close();
    },
  };
}
