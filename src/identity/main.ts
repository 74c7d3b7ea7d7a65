import { dirname, join } from 'node:path';
import { ConfigError } from '../config/config-error.ts';
import { formatIssues } from '../config/format.ts';
import { loadManifest } from '../config/load.ts';
import type { Manifest } from '../config/model.ts';
import { createSvidSource } from '../control/api/index.ts';
import { createAuditClient } from '../control/audit/client.ts';
import { AUDIT_CLIENT_DEFAULTS } from '../control/audit/client-defaults.ts';
import { startAdminServer } from '../core/admin-server.ts';
import { onShutdown } from '../core/lifecycle.ts';
import { createLogger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import { readRuntime } from '../core/runtime.ts';
import { serviceSpiffeId } from '../core/spiffe.ts';
import { createFileAudit, withMetrics } from './audit.ts';
import { createDeliveredAudit } from './audit-delivery.ts';
import { IDENTITY_NAMES } from './defaults.ts';
import { createIdentity } from './identity.ts';
import { listenIssuer } from './listen.ts';
import { openKeyFile } from './sealing.ts';
import { openConfiguredStore } from './store/open.ts';

/**
 * The built-in identity provider process, as the launcher starts it: loads the manifest, opens its
 * store (SQLite in its own data directory), its key-encryption key and its audit file, and serves the
 * issuer on 127.0.0.1:<identity.builtin.port> plus the loopback admin listener.
 *
 * The key-encryption key is the key file `kek.key` (mode 0600) in the data directory, created on first
 * start (sealing.ts): it protects private keys, client and TOTP secrets in the database file and in
 * backups of it, not against someone who can read the whole directory. Production mounts its own.
 */
const runtime = readRuntime('identity');
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
const config = manifest.identity;
if (config.mode !== 'builtin') {
  logger.fatal('the manifest does not use the built-in identity provider');
  process.exit(2);
}

/** Every scope a route requires: what API access tokens may carry. */
const apiScopes = [...new Set(manifest.routes.flatMap((r) => (r.auth.kind === 'token' ? r.auth.scopes : [])))];

const registry = createMetrics('identity');
const { sealer: kek, created } = openKeyFile(join(runtime.dataDir, 'kek.key'));
if (created) logger.warn('created a development key-encryption key (kek.key); mount your own in production');
const store = await openConfiguredStore(config.store, runtime.dataDir);
// With a control plane (`rampart start`), events go through the audit client to the audit log, with
// this process's own SVID (`svc/identity`: no service may take the name) as its client certificate;
// without one (tests of the provider alone), to the JSON-lines file in the data directory.
const control = runtime.control;
const svidSource = control
  ? createSvidSource({
      control,
      joinToken: runtime.joinToken ?? '',
      expectedId: serviceSpiffeId(control.trustDomain, 'identity').id,
      logger,
      registry,
    })
  : null;
try {
  await svidSource?.start();
} catch (err) {
  logger.fatal({ err }, 'the identity provider could not obtain its SVID');
  process.exit(1);
}
const auditClient =
  control && svidSource
    ? await createAuditClient({
        dir: join(runtime.dataDir, AUDIT_CLIENT_DEFAULTS.spoolDirectory),
        target: () => {
          const svid = svidSource.current();
          return {
            control: { ...control, bundle: svid.bundlePem },
            cert: svid.certificatePem,
            key: svid.keyPem,
          };
        },
        logger,
        registry,
      })
    : null;
const audit = auditClient
  ? { ...createDeliveredAudit(auditClient), close: () => {} }
  : createFileAudit(join(runtime.dataDir, 'audit.jsonl'));
const identity = await createIdentity({
  issuer: config.issuer,
  hstsMaxAgeSeconds: manifest.gateway.hsts?.maxAgeSeconds,
  audience: config.audience,
  apiScopes,
  store,
  kek,
  logger,
  audit: withMetrics(audit, registry),
  bootstrapFile: join(runtime.dataDir, IDENTITY_NAMES.bootstrapFile),
});
const listener = await listenIssuer(identity.handler, runtime.port);
const admin = await startAdminServer({
  port: runtime.adminPort,
  registry,
  logger,
  readiness: {
    issuer: () => listener.server.listening,
    store: async () => (await store.keysVersion()) > 0,
  },
});
logger.info({ issuer: config.issuer, port: listener.port }, 'identity provider listening');

onShutdown(logger, async () => {
  admin.drain();
  await listener.close();
  await identity.close();
  await store.close();
  audit.close();
  svidSource?.close();
  await auditClient?.close();
  kek.destroy();
  await admin.close();
});
