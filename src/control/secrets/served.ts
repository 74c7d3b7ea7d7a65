import { join } from 'node:path';
import { loadManifest } from '../../config/load.ts';
import type { Kek } from '../../core/kek.ts';
import { type AclManifest, compileSecretsAcl } from './acl.ts';
import type { AuditSink } from './audit.ts';
import { SECRETS_FILES } from './defaults.ts';
import { openSecretsService, type SecretsService } from './service.ts';
import { openSqliteSecretsStore } from './sqlite-store.ts';

/** What the control plane needs to serve secrets to workloads. */
export interface ServedSecretsOptions {
  /** The control plane's data directory: the store is `<dataDir>/secrets.db`, the one `rampart secrets` writes. */
  dataDir: string;
  /** The manifest whose services' `secrets:` lists are the grants (loaded here), or the manifest itself. */
  manifest: string | AclManifest;
  /** The control plane's KEK (the caller keeps ownership; the service does not destroy it). */
  kek: Kek;
  /** Where read and write events go (today the stand-in trail; the audit log's client later). */
  audit: AuditSink;
}

/**
 * Opens the secrets service the control plane serves (`POST /v1/secrets/read`): the SQLite store in the
 * control plane's data directory, under the control plane's KEK, with the manifest's grants (deny by
 * default). The CLI opens the same file at the same time; that is safe because the store runs in WAL
 * mode (reads never wait for a writer), every write is one `BEGIN IMMEDIATE` transaction with a busy
 * timeout (writers queue), and a write commits with a compare-and-set on the labels it read, so two
 * writers never lose each other's change (SEC_ERR_CONFLICT instead). Grants are read once, at start:
 * a changed manifest takes effect when the control plane restarts.
 */
export async function openServedSecrets(options: ServedSecretsOptions): Promise<SecretsService> {
  const manifest = typeof options.manifest === 'string' ? loadManifest(options.manifest) : options.manifest;
  const store = openSqliteSecretsStore({ path: join(options.dataDir, SECRETS_FILES.database) });
  return openSecretsService({ store, kek: options.kek, audit: options.audit, acl: compileSecretsAcl(manifest) });
}
