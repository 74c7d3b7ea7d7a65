import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadManifest } from '../config/load.ts';
import { startAdminServer } from '../core/admin-server.ts';
import { isRampartError } from '../core/errors.ts';
import { tryLockFile } from '../core/file-lock.ts';
import { KEK_ENV, loadKek } from '../core/kek.ts';
import { onShutdown } from '../core/lifecycle.ts';
import { createLogger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import { readRuntime } from '../core/runtime.ts';
import { createAuditRoutes } from './api/audit-routes.ts';
import { createEdgeRoutes } from './api/edge-routes.ts';
import { CONTROL_API_DEFAULTS, createControlApi, createServerCertificate } from './api/index.ts';
import {
  readControlEndpoint,
  removeOperatorFiles,
  writeControlEndpoint,
  writeOperatorCredential,
} from './api/operator-access.ts';
import { createOperatorRoutes } from './api/operator-routes.ts';
import { createOperatorSecretsRoutes, localOperator } from './api/operator-secrets-routes.ts';
import { policyRoutes } from './api/policy-routes.ts';
import { createSecretsRoutes } from './api/secrets-routes.ts';
import { AUDIT_DEFAULTS } from './audit/defaults.ts';
import { connectAuditLog } from './audit/log.ts';
import { openCertificateAuthority } from './ca/index.ts';
import { createControlAudit } from './control-audit.ts';
import { CONTROL_FILES } from './files.ts';
import { followManifest } from './manifest-reloads.ts';
import { PolicyStore } from './policy/policy-store.ts';
import { openServedSecrets } from './secrets/served.ts';

/**
 * The control plane process: the certificate authority behind a loopback HTTPS API (join tokens,
 * SVIDs, renewals, bundle), rotation driven every few seconds. The KEK comes from `RAMPART_KEK` when
 * set (production), else from the key file the launcher created.
 */
const runtime = readRuntime('control');
const logger = createLogger({ name: runtime.name });
const registry = createMetrics('control');
// One control plane per data directory, decided before anything is written there: a second one would
// overwrite the first's endpoint file and operator credential (the CLI would lose the running one) and
// race it for the stores. An offline `rampart ca|secrets|kek` command holds the same lock while it
// works on the stores (cli/control-plane-client.ts holdDataDir).
const instanceLock = tryLockFile(join(runtime.dataDir, CONTROL_FILES.lock));
if (instanceLock === null) {
  const running = readControlEndpoint(runtime.dataDir);
  logger.fatal(
    { code: 'CONTROL_ERR_RUNNING', dataDir: runtime.dataDir, pid: running?.pid ?? null },
    'the data directory is in use by another control plane or an offline rampart command',
  );
  process.exit(1);
}
// `rampart ca` finds the API here; written before the CA opens, so while this process lives the CLI
// never opens ca.db itself (api/operator-access.ts).
const endpoint = { pid: process.pid, port: runtime.port, trustDomain: runtime.trustDomain };
writeControlEndpoint(runtime.dataDir, endpoint);
const operatorCredential = writeOperatorCredential(runtime.dataDir);

/**
 * Opens one of the stores; one that does not open (a KEK that is missing or does not open its keys, a
 * log another process writes, a PostgreSQL server that refuses) stops the start with its stable code
 * and detail in one log line, not a stack trace, and the operator files go (nothing runs behind them).
 */
async function opening<T>(what: string, open: () => T | Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    logger.fatal(
      { err, code: isRampartError(err) ? err.code : undefined, what },
      `the control plane cannot open ${what}`,
    );
    removeOperatorFiles(runtime.dataDir);
    process.exit(1);
  }
}

const kek = await opening('its key-encryption key', () =>
  process.env[KEK_ENV] ? loadKek({ env: KEK_ENV }) : loadKek({ file: join(runtime.dataDir, CONTROL_FILES.kek) }),
);
// The audit log (issue 6): its signing key wrapped by the KEK; opened before the CA so that the CA's
// first events are recorded. Components deliver over the API (audit-routes.ts); the control plane's
// own events (CA decisions, API refusals) are appended directly (control-audit.ts).
// Where (manifest `control.store`): files in the data directory, or PostgreSQL, whose URL is never logged.
const store = runtime.store ?? { kind: 'sqlite' };
const auditLog = await opening('the audit log', () =>
  connectAuditLog({
    ...(store.kind === 'postgres'
      ? { postgres: { connectionString: store.url } }
      : { path: join(runtime.dataDir, AUDIT_DEFAULTS.databaseFile) }),
    origin: `${runtime.trustDomain}/rampart/audit`,
    kek,
    onError: (err) => logger.error({ err }, 'audit log checkpoint failed'),
  }),
);
const controlAudit = createControlAudit({ log: auditLog, trustDomain: runtime.trustDomain, logger });
const ca = await opening('the certificate authority', () =>
  openCertificateAuthority({
    trustDomain: runtime.trustDomain,
    databasePath: join(runtime.dataDir, CONTROL_FILES.ca),
    kek,
    ...runtime.ca,
    onEvent: (event) => {
      logger.info({ event: event.type, ...event }, 'certificate authority event');
      controlAudit.caEvent(event);
    },
  }),
);

// Secrets served to workloads (POST /v1/secrets/read) and to the operator (`rampart secrets` while this
// runs), with the manifest's grants. Events go to the audit log with this process as reporter;
// controlAudit.append rejects when an event is not durable, so such a read fails closed.
const secrets = await opening('the secrets store', () =>
  openServedSecrets({
    dataDir: runtime.dataDir,
    manifest: runtime.manifestFile,
    kek,
    ...(store.kind === 'postgres' ? { postgres: store.url } : {}),
    audit: controlAudit,
    logger,
    registry,
  }),
);

// The system's inbound policy (POST /v1/policy), reloaded on SIGHUP or a change of the manifest;
// versions are persisted in the data directory (policy/policy-store.ts).
const policy = new PolicyStore({
  manifestFile: runtime.manifestFile,
  dataDir: runtime.dataDir,
  trustDomain: runtime.trustDomain,
  logger,
  registry,
});
// One watcher and one SIGHUP handler for both: the policy, then the secrets' grants (manifest-reloads.ts).
const manifestReloads = followManifest({
  file: runtime.manifestFile,
  logger,
  followers: [
    { name: 'policy', reload: (trigger) => policy.reload(trigger) },
    { name: 'secret grants', reload: (trigger) => secrets.reloadGrants(trigger) },
  ],
});

let writtenSequence = -1;
const writeBundle = () => {
  const bundle = ca.bundle();
  if (bundle.sequence === writtenSequence) return false;
  const file = join(runtime.dataDir, CONTROL_FILES.bundle);
  // Written whole, then renamed: a reader never sees half a bundle.
  writeFileSync(`${file}.tmp`, bundle.pem, { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
  writtenSequence = bundle.sequence;
  return true;
};

let api: ReturnType<typeof createControlApi> | null = null;
const operatorRoutes = createOperatorRoutes({
  ca,
  credential: operatorCredential,
  onRotated: (result) => {
    logger.info({ event: 'ca.rotation.forced', ...result }, 'certificate authority rotation forced by the operator');
    // The admin action, by the local operator (the operator credential's owner); the CA's steps follow.
    void controlAudit.record({
      component: 'ca',
      action: 'ca.rotate',
      decision: 'allow',
      resource: `spiffe://${runtime.trustDomain}`,
      actor: localOperator(),
      detail: { generation: result.generation, activated: result.activated, controlPlane: true },
    });
    writeBundle();
    refreshTls();
  },
});
// The gateway's `tls: auto` certificate; names from the manifest as it is on disk when asked.
const edgeRoutes = createEdgeRoutes({
  ca: controlAudit.authority(ca),
  trustDomain: runtime.trustDomain,
  gateway: () => loadManifest(runtime.manifestFile).gateway,
  logger,
});
/**
 * New connections get the current certificate and bundle, and the CA learns that this process (the
 * holder of its own SVIDs) installed the bundle, so a forced rotation is not held back by it.
 */
const refreshTls = () => {
  api?.refreshTls();
  serverCertificate.acknowledge(ca.bundle().sequence);
};
const serverCertificate = await createServerCertificate({ ca, logger, onRenewed: refreshTls });
api = createControlApi({
  ca: controlAudit.authority(ca),
  launcherCredential: runtime.launcherCredential,
  credentials: () => serverCertificate.current(),
  logger,
  routes: [
    operatorRoutes,
    createOperatorSecretsRoutes({ secrets, credential: operatorCredential }),
    createSecretsRoutes({ secrets, trustDomain: runtime.trustDomain }),
    policyRoutes({ policy, trustDomain: runtime.trustDomain }),
    edgeRoutes,
    createAuditRoutes({ log: auditLog, trustDomain: runtime.trustDomain }),
  ],
  onRefusal: (refusal) => {
    logger.warn({ event: 'control.api.refused', ...refusal }, 'control plane request refused');
    controlAudit.refusal(refusal);
  },
});
writeBundle();
const port = await api.listen(runtime.port);
if (port !== endpoint.port) writeControlEndpoint(runtime.dataDir, { ...endpoint, port });

const ticker = setInterval(() => {
  void ca
    .tick()
    .then((events) => {
      if (writeBundle() || events.length > 0) refreshTls();
    })
    .catch((err) => logger.error({ err }, 'certificate authority tick failed'));
}, CONTROL_API_DEFAULTS.tickIntervalMs);
ticker.unref();

const admin = await startAdminServer({
  port: runtime.adminPort,
  registry,
  logger,
  readiness: { api: () => api?.server.listening === true },
});
logger.info(
  { port, trustDomain: ca.trustDomain, bundleSequence: ca.bundle().sequence, store: store.kind },
  'control plane ready',
);
onShutdown(logger, async () => {
  admin.drain();
  clearInterval(ticker);
  serverCertificate.close();
  await api?.close();
  await admin.close();
  manifestReloads.close();
  ca.close();
  await secrets.close();
  await auditLog.close();
  removeOperatorFiles(runtime.dataDir);
  kek.destroy();
  instanceLock.release();
});
