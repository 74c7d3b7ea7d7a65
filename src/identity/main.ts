import { dirname, join } from 'node:path';
import { ConfigError } from '../config/config-error.ts';
import { formatIssues } from '../config/format.ts';
import { loadManifest } from '../config/load.ts';
import type { Manifest } from '../config/model.ts';
import { startAdminServer } from '../core/admin-server.ts';
import { onShutdown } from '../core/lifecycle.ts';
import { createLogger } from '../core/logger.ts';
import { createMetrics } from '../core/metrics.ts';
import { readRuntime } from '../core/runtime.ts';
import { createFileAudit, withMetrics } from './audit.ts';
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
const audit = createFileAudit(join(runtime.dataDir, 'audit.jsonl'));
const identity = await createIdentity({
  issuer: config.issuer,
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
  kek.destroy();
  await admin.close();
});
