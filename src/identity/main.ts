import { createServer } from 'node:http';
import { startAdminServer } from '../core/admin-server.ts';
import { onShutdown } from '../core/lifecycle.ts';
import { createLogger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import { readRuntime } from '../core/runtime.ts';

/**
 * The built-in identity provider process. The OpenID provider (oidc-provider, accounts, login pages,
 * MFA) arrives in its own issue; until then the process holds the issuer port and answers every protocol
 * request with 503 `temporarily_unavailable` (RFC 6749 §4.1.2.1), so tokens fail closed at the gateway
 * instead of being faked.
 */
const runtime = readRuntime('identity');
const logger = createLogger({ name: runtime.name });
const registry = createMetrics('identity');
const issuer = createServer((_req, res) => {
  const body = JSON.stringify({ error: 'temporarily_unavailable' });
  res
    .writeHead(503, { 'content-type': 'application/json', 'cache-control': 'no-store', 'retry-after': '60' })
    .end(body);
});
await new Promise<void>((resolve) => issuer.listen(runtime.port, '127.0.0.1', resolve));
const admin = await startAdminServer({
  port: runtime.adminPort,
  registry,
  logger,
  readiness: { issuer: () => issuer.listening },
});
logger.info({ port: runtime.port }, 'identity placeholder listening (OpenID provider not built yet)');
onShutdown(logger, async () => {
  admin.drain();
  await new Promise<void>((resolve) => issuer.close(() => resolve()));
  await admin.close();
});
