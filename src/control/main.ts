import { startAdminServer } from '../core/admin-server.ts';
import { onShutdown } from '../core/lifecycle.ts';
import { createLogger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import { readRuntime } from '../core/runtime.ts';

/**
 * The control plane process. Its modules (certificate authority, policy, secrets, audit log) arrive in
 * their own issues; today it is a supervised process with its own data directory and health endpoints,
 * so the launcher, the readiness order and the shutdown path are exercised for real from the start.
 */
const runtime = readRuntime('control');
const logger = createLogger({ name: runtime.name });
const registry = createMetrics('control');
const admin = await startAdminServer({ port: runtime.adminPort, registry, logger });
logger.info({ dataDir: runtime.dataDir, adminPort: admin.port }, 'control plane ready (modules: none yet)');
onShutdown(logger, async () => {
  admin.drain();
  await admin.close();
});
