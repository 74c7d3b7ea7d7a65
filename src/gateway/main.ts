import { join } from 'node:path';
import { loadManifest } from '../config/load.ts';
import { startAdminServer } from '../core/admin-server.ts';
import { onShutdown } from '../core/lifecycle.ts';
import { createLogger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import { readRuntime } from '../core/runtime.ts';
import { createFileDecisionSink } from './decision-sink.ts';
import { createGateway } from './gateway.ts';
import { createGatewayMetrics } from './metrics.ts';

/** The gateway process, as the launcher starts it. */
const runtime = readRuntime('gateway');
const logger = createLogger({ name: runtime.name });
const manifest = loadManifest(runtime.manifestFile);
const registry = createMetrics('gateway');
const gateway = createGateway({
  manifest,
  upstreams: runtime.upstreams,
  logger,
  registry,
  metrics: createGatewayMetrics(registry),
  decisions: createFileDecisionSink(join(runtime.dataDir, 'decisions.jsonl')),
  now: Date.now,
});
const { host, port } = manifest.gateway.listen;
const bound = await gateway.listen(host, port);
const admin = await startAdminServer({
  port: runtime.adminPort,
  registry,
  logger,
  readiness: { listening: () => gateway.server.listening },
});
logger.info({ host, port: bound, stages: gateway.stageNames }, 'gateway listening');

onShutdown(logger, async () => {
  admin.drain();
  await gateway.close();
  await admin.close();
});
