import { join } from 'node:path';
import { loadManifest } from '../../config/load.ts';
import { isRampartError, RampartError } from '../../core/errors.ts';
import type { Kek } from '../../core/kek.ts';
import type { Logger } from '../../core/logger.ts';
import { type AclManifest, compileSecretsAcl } from './acl.ts';
import type { AuditSink } from './audit.ts';
import { SECRETS_FILES } from './defaults.ts';
import { SEC_ERRORS } from './errors.ts';
import { openPostgresSecretsStore } from './postgres-store.ts';
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
  /**
   * Where read and write events go: the control plane's audit log (control-audit.ts `append`, which
   * rejects when the event is not durable, so a read without its record fails closed).
   */
  audit: AuditSink;
  /** Where a store that cannot be opened is reported. */
  logger: Logger;
  /**
   * A PostgreSQL database (manifest `control.store`) instead of `<dataDir>/secrets.db`: the store in its
   * own schema (SECRETS_DEFAULTS.postgresSchema). Never logged: the URL may carry a password.
   */
  postgres?: string;
}

/** What the operator routes use (api/operator-secrets-routes.ts): `rampart secrets` while the control plane runs. */
export type OperatorSecrets = Pick<SecretsService, 'set' | 'promote' | 'rollback' | 'reveal' | 'history' | 'list'>;

/**
 * What the control plane serves from: the service's reads and the operator's commands, or a refusal of
 * every one of them.
 */
export interface ServedSecrets extends Pick<SecretsService, 'read' | 'close'>, OperatorSecrets {
  /** Why every operation is refused (the store could not be opened), or null when they are served. */
  readonly unavailable: string | null;
}

/**
 * Opens the secrets service the control plane serves (`POST /v1/secrets/read` for workloads, the
 * operator routes for `rampart secrets` while it runs): the SQLite store in the control plane's data
 * directory, under the control plane's KEK, with the manifest's grants (deny by default). Every event
 * goes to `audit`, the control plane's audit log. While the control plane runs the CLI asks it rather
 * than opening the store, so the audit log keeps one writer; the store itself would tolerate a second
 * writer (WAL, one `BEGIN IMMEDIATE` transaction per write with a busy timeout, and a compare-and-set
 * on the labels it read: SEC_ERR_CONFLICT rather than a lost change). Grants are read once, at start:
 * a changed manifest takes effect when the control plane restarts.
 *
 * A store that cannot be opened (sealed under another KEK, damaged, a manifest that no longer loads)
 * does not stop the control plane: the CA keeps serving and every operation is refused with the failure's
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
    return {
      read: (...args) => service.read(...args),
      set: (...args) => service.set(...args),
      promote: (...args) => service.promote(...args),
      rollback: (...args) => service.rollback(...args),
      reveal: (...args) => service.reveal(...args),
      history: (...args) => service.history(...args),
      list: (...args) => service.list(...args),
      close: () => service.close(),
      unavailable: null,
    };
  } catch (err) {
    const code = isRampartError(err) && err.code.startsWith('SEC_ERR_') ? err.code : SEC_ERRORS.config;
    options.logger.error(
      { err, code },
      'secrets store unavailable: every secret operation is refused until it is fixed',
    );
    const refuse = async (): Promise<never> => {
      // 503 whatever the cause: the store is down, the request is not wrong.
      throw new RampartError(code, 'secrets store unavailable', {
        status: 503,
        detail: { reason: 'store unavailable' },
      });
    };
    return {
      read: refuse,
      set: refuse,
      promote: refuse,
      rollback: refuse,
      reveal: refuse,
      history: refuse,
      list: refuse,
      close: async () => {},
      unavailable: code,
    };
  }
}
