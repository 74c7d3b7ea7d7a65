import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import { ConfigError } from '../config/config-error.ts';
import { formatIssues } from '../config/format.ts';
import { loadManifest } from '../config/load.ts';
import type { Manifest } from '../config/model.ts';
import { COMPONENT_SERVICE_NAMES, type CurrentSvid, createSvidSource } from '../control/api/index.ts';
import { createAuditClient } from '../control/audit/client.ts';
import { AUDIT_CLIENT_DEFAULTS } from '../control/audit/client-defaults.ts';
import { startAdminServer } from '../core/admin-server.ts';
import { onShutdown } from '../core/lifecycle.ts';
import { createLogger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import {
  type EdgeCertificatePem,
  GATEWAY_EDGE_CERTIFICATE_CHANNEL,
  GATEWAY_SVID_CHANNEL,
  type GatewayRuntime,
  readRuntime,
  type WorkloadSvid,
} from '../core/runtime.ts';
import { serviceSpiffeId } from '../core/spiffe.ts';
import { createEdgeCertificateSource, type EdgeCertificate } from './edge-certificate-source.ts';
import { GATEWAY_PROCESS_DEFAULTS } from './process/defaults.ts';
import { GatewayProcessRegistry } from './process/metrics.ts';
import { ConfigReloader } from './process/reload.ts';
import { WorkerPool, workerPlan } from './process/worker-pool.ts';
import { SharedRateLimitTable } from './rate-limit/shared-table.ts';

/**
 * The gateway process, as the launcher starts it. The main thread loads and validates the manifest,
 * creates the gateway-wide rate-limit table (shared memory), runs the workers that serve
 * (process/worker-pool.ts: worker threads, or with `workers: 1` the one worker in this thread, which
 * saves a V8 isolate), writes their decision events durably, reloads the configuration (SIGHUP, file
 * changes) and serves the loopback admin listener, whose `/metrics` aggregates every worker's registry.
 */
const runtime = readRuntime('gateway');
const logger = createLogger({ name: runtime.name });

let manifest: Manifest;
try {
  manifest = loadManifest(runtime.manifestFile);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  logger.fatal(
    { issues: formatIssues(err.issues, { color: false, cwd: dirname(runtime.manifestFile) }) },
    'invalid manifest',
  );
  process.exit(2);
}

// `tls: auto` takes its certificate from the control plane's CA. Without a control plane (the gateway
// started by hand, or by the Launcher API with workload identity off) no certificate can ever come:
// refuse once, as a configuration error, instead of starting workers that fail one after another.
if (manifest.gateway.tls.mode === 'auto' && !runtime.control) {
  logger.fatal(
    { code: 'GW_ERR_TLS_AUTO' },
    '`tls: auto` needs the control plane, and this gateway has none: run it with `rampart start`, or use ' +
      'certificate files (`tls: { cert, key }`)',
  );
  process.exit(2);
}

const registry = createMetrics('gateway');
/**
 * The gateway's X509-SVID, `spiffe://<td>/svc/gateway` (the CA issues `svc/` IDs only, and no service
 * may be named `gateway`), obtained before any worker starts. Absent without a control plane (the
 * gateway's own tests).
 */
const identity = runtime.control
  ? createSvidSource({
      control: runtime.control,
      joinToken: runtime.joinToken ?? '',
      expectedId: serviceSpiffeId(runtime.control.trustDomain, COMPONENT_SERVICE_NAMES.gateway).id,
      logger,
      registry,
    })
  : null;
// What the worker threads start with. The pool reads it at every worker (re)start, so a worker that
// is restarted after a renewal starts with the current SVID, not the first one. The join token is
// spent: the workers never see it.
const workerRuntime: GatewayRuntime = { ...runtime, joinToken: undefined };
try {
  const svid = await identity?.start();
  if (svid && runtime.control) {
    const trustDomain = runtime.control.trustDomain;
    const share = (s: CurrentSvid): WorkloadSvid => ({
      keyPem: s.keyPem,
      certificatePem: s.certificatePem,
      bundlePem: s.bundlePem,
      trustDomain,
    });
    workerRuntime.workloadSvid = share(svid);
    const channel = new BroadcastChannel(GATEWAY_SVID_CHANNEL);
    channel.unref();
    identity?.onRenewed((next) => {
      workerRuntime.workloadSvid = share(next);
      channel.postMessage(workerRuntime.workloadSvid);
    });
  }
} catch (err) {
  logger.fatal({ err }, 'the gateway could not obtain its SVID');
  process.exit(1);
}
// `tls: auto`: the edge certificate from the local CA, asked for with the SVID, before any worker
// starts; renewals go to the workers like SVIDs, and each installs them without dropping connections.
const edge =
  identity && runtime.control && manifest.gateway.tls.mode === 'auto'
    ? createEdgeCertificateSource({
        control: () => ({ ...runtime.control!, bundle: identity.current().bundlePem }),
        credentials: () => ({ cert: identity.current().certificatePem, key: identity.current().keyPem }),
        // Waiting for an unreachable control plane makes sense only while the SVID can still authenticate.
        credentialsValid: () => identity.current().notAfter > Date.now(),
        logger,
        registry,
      })
    : null;
try {
  const first = await edge?.start();
  if (first && edge) {
    const share = (c: EdgeCertificate): EdgeCertificatePem => ({ certPem: c.certificatePem, keyPem: c.keyPem });
    workerRuntime.edgeCertificate = share(first);
    const channel = new BroadcastChannel(GATEWAY_EDGE_CERTIFICATE_CHANNEL);
    channel.unref();
    edge.onRenewed((next) => {
      workerRuntime.edgeCertificate = share(next);
      channel.postMessage(workerRuntime.edgeCertificate);
    });
  }
} catch (err) {
  logger.fatal({ err }, 'the gateway could not obtain its edge certificate (tls: auto)');
  process.exit(1);
}
// Decision events (from the workers, already audit events) go through the audit client: spooled
// durably in the data directory, delivered to the control plane's audit log over mTLS with the
// current SVID. Without a control plane (the gateway's own tests) they only spool.
const audit = await createAuditClient({
  dir: join(runtime.dataDir, AUDIT_CLIENT_DEFAULTS.spoolDirectory),
  target: () => {
    if (!identity || !runtime.control) return null;
    const svid = identity.current();
    return {
      control: { ...runtime.control, bundle: svid.bundlePem },
      cert: svid.certificatePem,
      key: svid.keyPem,
    };
  },
  logger,
  registry,
});
const plan = workerPlan(manifest.gateway.workers, availableParallelism(), process.platform);
if (plan.note) logger.warn({ workers: manifest.gateway.workers }, plan.note);
const workers = plan.size;
let failed = false;
const pool = new WorkerPool({
  size: workers,
  reusePort: plan.reusePort,
  // One worker serves from this thread: a second V8 isolate would cost tens of MB for nothing.
  inThread: workers === 1,
  runtime: workerRuntime,
  manifest,
  rateLimitTable: SharedRateLimitTable.create().transferable,
  logger,
  registry,
  onDecisions: (lines, count) => audit.emitLines(lines, count),
  onGiveUp: () => {
    failed = true;
    void stop('worker-crashes').finally(() => process.exit(1));
  },
});
const reloader = new ConfigReloader({
  file: runtime.manifestFile,
  initial: manifest,
  apply: (next) => pool.reconfigure(next, GATEWAY_PROCESS_DEFAULTS.reconfigureTimeoutMs),
  logger,
  registry,
});
const admin = await startAdminServer({
  port: runtime.adminPort,
  registry: new GatewayProcessRegistry(registry, () => pool.collectMetrics(GATEWAY_PROCESS_DEFAULTS.metricsTimeoutMs)),
  logger,
  readiness: {
    workers: () => pool.ready(),
    // An expired SVID cannot reach any upstream: not ready (renewals keep being retried).
    svid: () => identity === null || identity.current().notAfter > Date.now(),
    // `tls: auto`: serving an expired edge certificate is serving nothing a client accepts.
    edgeCertificate: () => edge === null || edge.current().notAfter > Date.now(),
  },
});

let stopping: Promise<void> | null = null;
function stop(reason: string): Promise<void> {
  stopping ??= (async () => {
    logger.info({ reason }, 'gateway draining');
    admin.drain();
    identity?.close();
    edge?.close();
    await reloader.close();
    await pool.drain(GATEWAY_PROCESS_DEFAULTS.drainGraceMs);
    await audit.close();
    await admin.close();
  })();
  return stopping;
}
onShutdown(logger, stop);
// Installed before the workers start: Node's default for SIGHUP would end the process. The launcher stops
// itself on SIGHUP; this process is signalled on its own (`kill -HUP <gateway pid>`).
process.on('SIGHUP', () => void reloader.reload('signal'));

try {
  await pool.start();
} catch (err) {
  if (!failed) logger.fatal({ err }, 'gateway workers did not start');
  await stop('start-failed');
  process.exit(1);
}
reloader.watch();
const { host, port } = manifest.gateway.listen;
logger.info({ host, port, workers, sha256: reloader.hash }, 'gateway listening');
