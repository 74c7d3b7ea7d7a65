import { join } from 'node:path';
import { loadManifest } from '../../config/load.ts';
import { manifestIssueFields } from '../../config/watch-manifest.ts';
import { isRampartError, RampartError } from '../../core/errors.ts';
import type { Kek } from '../../core/kek.ts';
import type { Logger } from '../../core/logger.ts';
import { Counter, Gauge, type Registry } from '../../core/metrics.ts';
import { type AclManifest, compileSecretsAcl, type SecretsAcl } from './acl.ts';
import { type AuditSink, buildSecretsEvent, SECRETS_ACTIONS } from './audit.ts';
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
  /** Where the grants' reload metrics are registered (the control plane's registry); none when absent. */
  registry?: Registry;
  /** Loads the manifest file, at start and at every reload. Default: `loadManifest` (full validation). */
  load?: (file: string) => AclManifest;
}

/** What set off a reload of the grants (logged). */
export type GrantsReloadTrigger = 'signal' | 'file' | 'manual';

/**
 * Outcome of one reload of the grants: `updated` (another set of grants is in force), `unchanged`, or
 * `error` (the manifest did not load, changed the trust domain, or the store is unavailable: the grants
 * in force stay).
 */
export type GrantsReloadResult = 'updated' | 'unchanged' | 'error';

/** What the operator routes use (api/operator-secrets-routes.ts): `rampart secrets` while the control plane runs. */
export type OperatorSecrets = Pick<SecretsService, 'set' | 'promote' | 'rollback' | 'reveal' | 'history' | 'list'>;

/**
 * What the control plane serves from: the service's reads and the operator's commands, or a refusal of
 * every one of them.
 */
export interface ServedSecrets extends Pick<SecretsService, 'read' | 'close'>, OperatorSecrets {
  /** Why every operation is refused (the store could not be opened), or null when they are served. */
  readonly unavailable: string | null;
  /**
   * Loads the manifest file again and puts its grants in force for the next read (a revoked grant is
   * refused, a new one served), keeping the grants in force when it does not load. Synchronous: reloads
   * never interleave, and a revocation does not wait for its audit event. A manifest given as an object
   * has nothing to reload: `unchanged`.
   */
  reloadGrants(trigger?: GrantsReloadTrigger): GrantsReloadResult;
}

/** One grant: a service's SPIFFE ID may read the secret `name`. */
interface Grant {
  spiffeId: string;
  name: string;
}

/** The grants of `after` that `before` lacks. */
function grantsAdded(before: SecretsAcl, after: SecretsAcl): Grant[] {
  const added: Grant[] = [];
  for (const [spiffeId, names] of after.grants) {
    for (const name of names) if (!before.allows(spiffeId, name)) added.push({ spiffeId, name });
  }
  return added;
}

/** The grants' reload metrics, registered once per served instance. */
function grantsMetrics(registry: Registry | undefined) {
  if (registry === undefined) return { reloaded: () => {} };
  const registers = [registry];
  const reloads = new Counter({
    name: 'rampart_control_secret_grants_reloads_total',
    help: 'Manifest reloads for the secrets grants, by result: updated, unchanged, error (kept the grants in force).',
    labelNames: ['result'],
    registers,
  });
  for (const result of ['updated', 'unchanged', 'error'] as const) reloads.inc({ result }, 0);
  const lastSuccessful = new Gauge({
    name: 'rampart_control_secret_grants_last_reload_successful',
    help: '1 when the last manifest load for the secrets grants succeeded, 0 when the grants in force were kept.',
    registers,
  });
  lastSuccessful.set(1);
  return {
    reloaded(result: GrantsReloadResult): void {
      reloads.inc({ result });
      lastSuccessful.set(result === 'error' ? 0 : 1);
    },
  };
}

/**
 * Opens the secrets service the control plane serves (`POST /v1/secrets/read` for workloads, the
 * operator routes for `rampart secrets` while it runs): the SQLite store in the control plane's data
 * directory, under the control plane's KEK, with the manifest's grants (deny by default). Every event
 * goes to `audit`, the control plane's audit log. While the control plane runs the CLI asks it rather
 * than opening the store, so the audit log keeps one writer; the store itself would tolerate a second
 * writer (WAL, one `BEGIN IMMEDIATE` transaction per write with a busy timeout, and a compare-and-set
 * on the labels it read: SEC_ERR_CONFLICT rather than a lost change).
 *
 * Grants follow the manifest like the policy does (`reloadGrants`, called on SIGHUP or a change of the
 * file: control/manifest-reloads.ts): a manifest that loads puts its grants in force for the next read,
 * each grant added or revoked is logged and audited (`secret.grant` / `secret.revoke`, the secret by its
 * HMAC reference); one that does not load, or that changes the trust domain, is refused with its issues
 * logged and the grants in force stay. Metrics: `rampart_control_secret_grants_reloads_total{result}`,
 * `rampart_control_secret_grants_last_reload_successful`.
 *
 * A store that cannot be opened (sealed under another KEK, damaged, a manifest that no longer loads)
 * does not stop the control plane: the CA keeps serving and every operation is refused with the failure's
 * code (503 SEC_ERR_SEALED, SEC_ERR_STORE, SEC_ERR_SCHEMA, or SEC_ERR_CONFIG), logged once here.
 */
export async function openServedSecrets(options: ServedSecretsOptions): Promise<ServedSecrets> {
  const metrics = grantsMetrics(options.registry);
  const load = options.load ?? ((file: string) => loadManifest(file));
  try {
    const manifest = typeof options.manifest === 'string' ? load(options.manifest) : options.manifest;
    const store =
      options.postgres === undefined
        ? openSqliteSecretsStore({ path: join(options.dataDir, SECRETS_FILES.database) })
        : await openPostgresSecretsStore({ connectionString: options.postgres });
    let acl = compileSecretsAcl(manifest);
    const service = await openSecretsService({ store, kek: options.kek, audit: options.audit, acl });
    const { logger } = options;
    const trustDomain = manifest.trustDomain;
    const record = (
      action: typeof SECRETS_ACTIONS.grant | typeof SECRETS_ACTIONS.revoke,
      grant: Grant,
      trigger: string,
    ) => {
      // The grants are already in force: a revocation never waits for (or depends on) its record.
      void Promise.resolve()
        .then(() =>
          options.audit.append(
            buildSecretsEvent(
              {
                action,
                decision: 'allow',
                reason: 'manifest_reload',
                resource: `secret:${service.auditRef(grant.name)}`,
                actor: null,
                detail: { grantee: grant.spiffeId, trigger },
              },
              Date.now,
            ),
          ),
        )
        .catch((err: unknown) =>
          logger.error({ err, action, grantee: grant.spiffeId }, 'secret grant change not recorded in the audit log'),
        );
    };
    const reloadGrants = (trigger: GrantsReloadTrigger = 'manual'): GrantsReloadResult => {
      if (typeof options.manifest !== 'string') return 'unchanged';
      const file = options.manifest;
      let next: SecretsAcl;
      try {
        const reloaded = load(file);
        if (reloaded.trustDomain !== trustDomain) {
          metrics.reloaded('error');
          logger.error(
            { trigger, trustDomain: reloaded.trustDomain, running: trustDomain },
            'the manifest changes the trust domain, which takes a restart: keeping the secret grants in force',
          );
          return 'error';
        }
        next = compileSecretsAcl(reloaded);
      } catch (err) {
        metrics.reloaded('error');
        const issues = manifestIssueFields(err, file);
        if (issues) logger.error({ trigger, ...issues }, 'manifest refused: keeping the secret grants in force');
        else logger.error({ trigger, err }, 'manifest load failed: keeping the secret grants in force');
        return 'error';
      }
      const added = grantsAdded(acl, next);
      const revoked = grantsAdded(next, acl);
      if (added.length === 0 && revoked.length === 0) {
        metrics.reloaded('unchanged');
        logger.info({ trigger }, 'manifest reloaded: secret grants unchanged');
        return 'unchanged';
      }
      service.setAcl(next);
      acl = next;
      metrics.reloaded('updated');
      // Who gained or lost a grant, not which secret: names stay out of logs as they stay out of events.
      const services = (grants: Grant[]) => [...new Set(grants.map((g) => g.spiffeId))].sort();
      logger.info(
        {
          event: 'secrets.grants.updated',
          trigger,
          granted: added.length,
          revoked: revoked.length,
          grantedTo: services(added),
          revokedFrom: services(revoked),
        },
        'secret grants updated',
      );
      for (const grant of revoked) record(SECRETS_ACTIONS.revoke, grant, trigger);
      for (const grant of added) record(SECRETS_ACTIONS.grant, grant, trigger);
      return 'updated';
    };
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
      reloadGrants,
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
      reloadGrants: (trigger = 'manual') => {
        // Nothing is served to put grants in force for; the store opens at the next start.
        metrics.reloaded('error');
        options.logger.error(
          { trigger, code },
          'secrets store unavailable: grants not reloaded (restart the control plane once it is fixed)',
        );
        return 'error';
      },
    };
  }
}
