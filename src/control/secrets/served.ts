import { join } from 'node:path';
import { loadManifest } from '../../config/load.ts';
import { isRampartError, RampartError } from '../../core/errors.ts';
import type { Kek } from '../../core/kek.ts';
import type { Logger } from '../../core/logger.ts';
import { type AclManifest, compileSecretsAcl } from './acl.ts';
import type { AuditSink } from './audit.ts';
import { SECRETS_FILES } from './defaults.ts';
import { SEC_ERRORS } from './errors.ts';
import { openSecretsService, type SecretsService } from './service.ts';
import { openPostgresSecretsStore } from './postgres-store.ts';
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
  /** Where a store that cannot be opened is reported. */
  logger: Logger;
  /**
   * A PostgreSQL database (manifest `control.store`) instead of `<dataDir>/secrets.db`: the store in its
   * own schema (SECRETS_DEFAULTS.postgresSchema). Never logged: the URL may carry a password.
   */
  postgres?: string;
}

/** What the control plane serves from: the service's reads, or a refusal of every read. */
export interface ServedSecrets extends Pick<SecretsService, 'read' | 'close'> {
  /** Why every read is refused (the store could not be opened), or null when reads are served. */
  readonly unavailable: string | null;
}

/**
 * Opens the secrets service the control plane serves (`POST /v1/secrets/read`): the SQLite store in the
 * control plane's data directory, under the control plane's KEK, with the manifest's grants (deny by
 * default). The CLI opens the same file at the same time; that is safe because the store runs in WAL
 * mode (reads never wait for a writer), every write is one `BEGIN IMMEDIATE` transaction with a busy
 * timeout (writers queue), and a write commits with a compare-and-set on the labels it read, so two
 * writers never lose each other's change (SEC_ERR_CONFLICT instead). Grants are read once, at start:
 * a changed manifest takes effect when the control plane restarts.
 *
 * A store that cannot be opened (sealed under another KEK, damaged, a manifest that no longer loads)
 * does not stop the control plane: the CA keeps serving and every read is refused with the failure's
 * code (503 SEC_ERR_SEALED, SEC_ERR_STORE, SEC_ERR_SCHEMA, or SEC_ERR_CONFIG), logged once here.
 */
export async function openServedSecrets(options: ServedSecretsOptions): Promise<ServedSecrets> {
  try {
    const manifest = typeof options.manifest === 'string' ? loadManifest(options.manifest) : options.manifest;
    const store =
      options.postgres === undefined
        ? openSqliteSecretsStore({ path: join(options.dataDir, SECRETS_FILES.database) })
        : await openPostgresSecretsStore({ connectionString: options.postgres });
    const service = await openSecretsService({
      store,
      kek: options.kek,
      audit: options.audit,
      acl: compileSecretsAcl(manifest),
    });
    return { read: (...args) => service.read(...args), close: () => service.close(), unavailable: null };
  } catch (err) {
    const code = isRampartError(err) && err.code.startsWith('SEC_ERR_') ? err.code : SEC_ERRORS.config;
    options.logger.error({ err, code }, 'secrets store unavailable: every secret read is refused until it is fixed');
    return {
      read: async () => {
        // 503 whatever the cause: the store is down, the request is not wrong.
        throw new RampartError(code, 'secrets store unavailable', {
          status: 503,
          detail: { reason: 'store unavailable' },
        });
      },
      close: async () => {},
      unavailable: code,
    };
  }
}
