import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type AuditActor, createAuditEvent } from '../core/audit-event.ts';
import { RampartError } from '../core/errors.ts';
import { KEK_ERRORS, type Kek, rewrapSealed } from '../core/kek.ts';
import { AuditStore, openAuditDatabase, type SigningKeyRow } from './audit/database.ts';
import { AUDIT_DEFAULTS } from './audit/defaults.ts';
import { AUDIT_ERRORS } from './audit/errors.ts';
import { type AnyAuditLog, connectAuditLog } from './audit/log.ts';
import { rewrapSigningKeys, signingKeyContext } from './audit/signing-key.ts';
import { lockAuditWriter } from './audit/writer-lock.ts';
import { CaStore, openCaDatabase } from './ca/database.ts';
import { caKeyContext, rewrapCaKeys } from './ca/signing-ca.ts';
import { CONTROL_FILES } from './files.ts';
import { compileSecretsAcl } from './secrets/acl.ts';
import type { AuditSink, SecretsActor } from './secrets/audit.ts';
import { SECRETS_FILES } from './secrets/defaults.ts';
import { verifyKekCheck } from './secrets/envelope.ts';
import { SEC_ERRORS, secError } from './secrets/errors.ts';
import { openPostgresSecretsStore } from './secrets/postgres-store.ts';
import { openSecretsService } from './secrets/service.ts';
import { openSqliteSecretsStore } from './secrets/sqlite-store.ts';
import type { SecretsStore } from './secrets/store.ts';

/**
 * KEK rotation of the whole control plane (`rampart kek rotate`, issue #6). The one key-encryption key
 * wraps three kinds of keys in three stores, and each store is re-wrapped under the new KEK; nothing
 * else changes (ciphertexts, certificates, log entries):
 *
 * 1. secrets — every version's data key, the store's check value and audit key (secrets.db, or schema
 *    `rampart_secrets`): the secrets service's `rotateKek`, one transaction;
 * 2. the CA — the signing key of every CA that still has one (ca.db): one transaction;
 * 3. the audit log — its Ed25519 checkpoint signing key (audit.db, or schema `rampart_audit`): one
 *    transaction, last, once the log that recorded the rotation is closed.
 *
 * Crash safety without a journal: every wrapped value names the KEK that sealed it (its key check value
 * in the kek.ts header), so the stores are their own journal. A store is re-wrapped all at once or not
 * at all, and a run classifies each stored key as under the new KEK (kept), under the current one
 * (re-wrapped) or under neither (KEK_ERR_FOREIGN_KEY, refused before anything changes). An interrupted
 * rotation leaves every store under one of the two keys, never a value neither opens; the recovery
 * rule is to run the same command again with the same two keys, which re-wraps what is left. Until it
 * reports done, no store under the other key opens, and each refusal names the KEK id that sealed it:
 * a CA or audit log under the other key stops the control plane's start; a secrets store does not (the
 * control plane runs with it unavailable, every secret operation 503 SEC_ERR_SEALED: secrets/served.ts),
 * so after an interruption that re-wrapped only the secrets it does start under the old key. The new
 * key is installed only afterwards and the old one kept until then.
 *
 * Audited: before any change, `kek.rotate` (the operator as actor) goes to the audit log, opened under
 * the KEK its signing key is sealed by (no record, no rotation); the secrets service adds its own
 * `secret.rotate_kek`; after the last store, the log is opened again under the new KEK (proving it
 * opens) and `kek.rotated` closes the operation with a signed checkpoint. A failure is recorded as
 * `kek.rotate` with decision `error` when the log is still open.
 *
 * Offline only: the caller makes sure no control plane runs on the data directory (it holds the stores
 * under the old key); a PostgreSQL log held by a control plane elsewhere refuses the second writer
 * (AUDIT_ERR_LOCKED) before anything changes.
 */

/** Stable codes of a refused rotation (the stores' own codes pass through: CA_ERR_SEALED, …). */
export const KEK_ROTATION_ERRORS = {
  /** The new key is the key in use: nothing to do, and re-wrapping under it would prove nothing. */
  sameKey: 'KEK_ERR_SAME_KEY',
  /** A store holds a key sealed by neither KEK (`detail.store`, `detail.sealedBy`): nothing was changed. */
  foreignKey: 'KEK_ERR_FOREIGN_KEY',
  /** After re-wrapping, a store still does not open under the new KEK (`detail.store`). */
  incomplete: 'KEK_ERR_ROTATION_INCOMPLETE',
} as const;

/** The three stores, in the order they are re-wrapped. */
export const KEK_STORES = ['secrets', 'ca', 'audit'] as const;
export type KekStoreName = (typeof KEK_STORES)[number];

/** Where a store stands: no keys yet, every key under the current KEK, under the new one, or both. */
export type KekStoreState = 'absent' | 'current' | 'next' | 'mixed';

/** One store after the rotation. */
export interface KekStoreResult {
  store: KekStoreName;
  /** Where it stood before this run (`next`: an earlier, interrupted run had finished it). */
  before: KekStoreState;
  /** Keys re-wrapped by this run (secrets: data keys; the check value and audit key come with them). */
  rewrapped: number;
}

export interface KekRotationResult {
  previousKekId: string;
  kekId: string;
  stores: KekStoreResult[];
}

export interface KekRotationOptions {
  /** The control plane's data directory (ca.db, and secrets.db and audit.db unless `postgres`). */
  dataDir: string;
  /** The PostgreSQL database holding the secrets and the audit log (the manifest's `control.store`). */
  postgres?: string;
  /** The audit log's origin (`<trust domain>/rampart/audit`). */
  origin: string;
  /** The KEK the stores are under now (the caller keeps ownership). */
  current: Kek;
  /** The KEK to move to (the caller keeps ownership). */
  next: Kek;
  /** Who rotates (recorded as the events' actor). */
  actor: SecretsActor;
  /** Called after each store's transaction committed (tests interrupt the rotation here). */
  afterStore?: (store: KekStoreName) => void | Promise<void>;
}

function rotationError(code: string, message: string, detail: Record<string, unknown>, cause?: unknown): RampartError {
  return new RampartError(code, message, { status: 500, detail, cause });
}

/**
 * How the events' detail names each store: where it stood (`kek.rotate`), then how many keys this run
 * re-wrapped (`kek.rotated`). Not `secrets`: the audit schema refuses detail fields named like secrets.
 */
const DETAIL_KEYS: Record<KekStoreName, string> = { secrets: 'dataKeys', ca: 'caKeys', audit: 'auditKeys' };

/** File of a store in the data directory. */
const FILES = { secrets: SECRETS_FILES.database, ca: CONTROL_FILES.ca, audit: AUDIT_DEFAULTS.databaseFile } as const;

/**
 * Where each store stands under `current` and `next`, read without writing (a missing store is not
 * created). Refuses with KEK_ERR_FOREIGN_KEY when a key opens under neither, and with the store's
 * sealed code when one fails authentication.
 */
export async function inspectKekStores(
  options: Pick<KekRotationOptions, 'dataDir' | 'postgres' | 'current' | 'next'>,
): Promise<Record<KekStoreName, KekStoreState> & { auditActive: 'current' | 'next' | null }> {
  const { current, next } = options;
  const secrets = await inspectSecrets(options);
  const ca = inspectCa(options.dataDir, current, next);
  const audit = await inspectAudit(options);
  return { secrets, ca, audit: audit.state, auditActive: audit.active };
}

/**
 * Re-wraps every key of the control plane from `current` to `next`; see the module comment for the
 * order, the audit and the recovery rule. Resolves once every store opens under `next`.
 */
export async function rotateControlPlaneKek(options: KekRotationOptions): Promise<KekRotationResult> {
  const { current, next, actor } = options;
  if (current.id === next.id) {
    throw rotationError(KEK_ROTATION_ERRORS.sameKey, 'the new key-encryption key is the one in use', {
      kekId: next.id,
    });
  }
  // Every store checked before anything changes: a key neither KEK opens refuses the whole rotation.
  const before = await inspectKekStores(options);
  const results = new Map<KekStoreName, KekStoreResult>(
    KEK_STORES.map((store) => [store, { store, before: before[store], rewrapped: 0 }]),
  );
  const stateDetail = Object.fromEntries(KEK_STORES.map((store) => [DETAIL_KEYS[store], before[store]]));
  /** Stores under the new KEK so far (told to the operator when a later one fails). */
  const done: KekStoreName[] = KEK_STORES.filter((store) => before[store] === 'next');
  const finished = async (store: KekStoreName) => {
    if (!done.includes(store) && before[store] !== 'absent') done.push(store);
    await options.afterStore?.(store);
  };
  const auditActor: AuditActor = 'spiffeId' in actor ? { spiffeId: actor.spiffeId } : { subject: actor.subject };

  // The log as it is now: under the KEK its signing key is sealed by (a new log: the current KEK; it is
  // re-wrapped with the rest).
  let log: AnyAuditLog | null = await openLog(options, before.auditActive === 'next' ? next : current);
  try {
    await log.append([
      createAuditEvent({
        component: 'admin',
        action: 'kek.rotate',
        decision: 'allow',
        resource: `kek:${next.id}`,
        actor: auditActor,
        detail: { previousKekId: current.id, controlPlane: false, ...stateDetail },
      }),
    ]);

    if (before.secrets === 'current') {
      results.get('secrets')!.rewrapped = await rewrapSecrets(options, log);
    }
    await finished('secrets');

    if (before.ca === 'current' || before.ca === 'mixed') {
      const store = new CaStore(openCaDatabase(join(options.dataDir, FILES.ca)));
      try {
        results.get('ca')!.rewrapped = rewrapCaKeys(store, current, next).rewrapped;
      } finally {
        store.close();
      }
    }
    await finished('ca');
  } catch (err) {
    const failed = log;
    log = null;
    await failed
      .append([
        createAuditEvent({
          component: 'admin',
          action: 'kek.rotate',
          decision: 'error',
          reason: err instanceof RampartError ? err.code : 'error',
          resource: `kek:${next.id}`,
          actor: auditActor,
          detail: { previousKekId: current.id, controlPlane: false },
        }),
      ])
      .catch(() => {});
    await failed.close().catch(() => {});
    throw withProgress(err, done);
  } finally {
    // Closing signs a checkpoint over the events with the key in memory, whatever the KEK is now.
    await log?.close();
  }

  // The log's own key last: the log that recorded the rotation is closed, nothing else writes to it.
  try {
    results.get('audit')!.rewrapped = await rewrapAudit(options);
  } catch (err) {
    throw withProgress(err, done);
  }
  await finished('audit');

  // Proof that every store opens under the new KEK, and the end of the operation on record.
  const after = await inspectKekStores(options);
  for (const store of KEK_STORES) {
    if (after[store] !== 'next' && after[store] !== 'absent') {
      throw rotationError(KEK_ROTATION_ERRORS.incomplete, 'a store is not under the new key-encryption key', {
        store,
        state: after[store],
      });
    }
  }
  const closing = await openLog(options, next);
  try {
    await closing.append([
      createAuditEvent({
        component: 'admin',
        action: 'kek.rotated',
        decision: 'allow',
        resource: `kek:${next.id}`,
        actor: auditActor,
        detail: {
          previousKekId: current.id,
          ...Object.fromEntries([...results.values()].map((r) => [DETAIL_KEYS[r.store], r.rewrapped])),
        },
      }),
    ]);
  } finally {
    await closing.close();
  }
  return { previousKekId: current.id, kekId: next.id, stores: [...results.values()] };
}

/**
 * Names, on a RampartError, the stores already under the new KEK (`detail.rewrappedStores`): the
 * operator runs the same command again to finish.
 */
function withProgress(err: unknown, done: readonly KekStoreName[]): unknown {
  if (err instanceof RampartError && err.detail !== undefined && done.length > 0) {
    err.detail['rewrappedStores'] = done.join(',');
  }
  return err;
}

function openLog(options: KekRotationOptions, kek: Kek): Promise<AnyAuditLog> {
  return connectAuditLog({
    ...(options.postgres === undefined
      ? { path: join(options.dataDir, FILES.audit) }
      : // The default wait for the writer lock: a run killed a moment ago may still hold it.
        { postgres: { connectionString: options.postgres } }),
    origin: options.origin,
    kek,
    // One short-lived writer: no timer; close() signs the checkpoint.
    checkpointIntervalMs: 0,
  });
}

/** The secrets store where the control plane keeps it, or null when there is none yet (nothing is created). */
async function openSecrets(options: Pick<KekRotationOptions, 'dataDir' | 'postgres'>): Promise<SecretsStore | null> {
  if (options.postgres !== undefined) return openPostgresSecretsStore({ connectionString: options.postgres });
  const path = join(options.dataDir, FILES.secrets);
  return existsSync(path) ? openSqliteSecretsStore({ path }) : null;
}

async function inspectSecrets(
  options: Pick<KekRotationOptions, 'dataDir' | 'postgres' | 'current' | 'next'>,
): Promise<KekStoreState> {
  const store = await openSecrets(options);
  if (store === null) return 'absent';
  try {
    const meta = await store.readMeta();
    if (meta === null) return 'absent';
    // The check value is sealed with the data keys in one transaction: it says where the whole store is.
    for (const [state, kek] of [
      ['next', options.next],
      ['current', options.current],
    ] as const) {
      const refused = verifyKekCheck(kek, meta.kekCheck);
      if (refused === null) return state;
      if (refused !== 'wrong_key') {
        throw secError(SEC_ERRORS.sealed, { reason: refused, kekId: kek.id, storeKekId: meta.kekId });
      }
    }
    throw foreign('secrets', meta.kekId, options);
  } finally {
    await store.close();
  }
}

function foreign(store: KekStoreName, sealedBy: unknown, keys: { current: Kek; next: Kek }, cause?: unknown) {
  return rotationError(
    KEK_ROTATION_ERRORS.foreignKey,
    'a store is sealed by another key-encryption key',
    { store, sealedBy, kekId: keys.current.id, newKekId: keys.next.id },
    cause,
  );
}

/** Which of the two KEKs opens `sealed` (authenticated), or KEK_ERR_FOREIGN_KEY. */
function sealedUnder(
  store: KekStoreName,
  keys: { current: Kek; next: Kek },
  sealed: Uint8Array,
  context: string,
): 'current' | 'next' {
  let rewrapped: Buffer | null;
  try {
    rewrapped = rewrapSealed(keys.current, keys.next, sealed, context);
  } catch (cause) {
    if (cause instanceof RampartError && cause.code === KEK_ERRORS.wrongKey) {
      throw foreign(store, cause.detail?.['sealedBy'], keys, cause);
    }
    throw cause;
  }
  return rewrapped === null ? 'next' : 'current';
}

function stateOf(states: readonly ('current' | 'next')[]): KekStoreState {
  if (states.length === 0) return 'absent';
  if (states.every((s) => s === 'next')) return 'next';
  if (states.every((s) => s === 'current')) return 'current';
  return 'mixed';
}

function inspectCa(dataDir: string, current: Kek, next: Kek): KekStoreState {
  const path = join(dataDir, FILES.ca);
  if (!existsSync(path)) return 'absent';
  const store = new CaStore(openCaDatabase(path));
  try {
    const states: ('current' | 'next')[] = [];
    for (const row of store.liveAuthorities()) {
      if (row.wrappedKey === null) continue;
      states.push(sealedUnder('ca', { current, next }, row.wrappedKey, caKeyContext(row.slot, row.generation)));
    }
    return stateOf(states);
  } finally {
    store.close();
  }
}

async function inspectAudit(
  options: Pick<KekRotationOptions, 'dataDir' | 'postgres' | 'current' | 'next'>,
): Promise<{ state: KekStoreState; active: 'current' | 'next' | null }> {
  const rows = await readSigningKeys(options);
  let active: 'current' | 'next' | null = null;
  const states: ('current' | 'next')[] = [];
  for (const row of rows) {
    if (row.wrappedKey === null) continue;
    const state = sealedUnder('audit', options, row.wrappedKey, signingKeyContext(row.name, row.keyId));
    states.push(state);
    if (row.state === 'active') active = state;
  }
  return { state: stateOf(states), active };
}

/** The log's signing keys, read without writing; none when there is no log yet. */
async function readSigningKeys(options: Pick<KekRotationOptions, 'dataDir' | 'postgres'>): Promise<SigningKeyRow[]> {
  if (options.postgres === undefined) {
    const path = join(options.dataDir, FILES.audit);
    if (!existsSync(path)) return [];
    const db = openAuditDatabase(path, { readOnly: true });
    try {
      return new AuditStore(db).signingKeys();
    } finally {
      db.close();
    }
  }
  const { openPostgresAuditReader, PostgresAuditQueries } = await import('./audit/postgres-database.ts');
  let reader: Awaited<ReturnType<typeof openPostgresAuditReader>>;
  try {
    reader = await openPostgresAuditReader({ connectionString: options.postgres });
  } catch (err) {
    // No log in that database yet (its schema or tables do not exist).
    if (
      err instanceof RampartError &&
      err.code === AUDIT_ERRORS.schema &&
      err.detail?.['reason'] === 'not_an_audit_database'
    ) {
      return [];
    }
    throw err;
  }
  try {
    return await new PostgresAuditQueries(reader.client).signingKeys();
  } finally {
    await reader.close();
  }
}

/** Secrets under `current`: the service re-wraps the store in one transaction and records it in `log`. */
async function rewrapSecrets(options: KekRotationOptions, log: AnyAuditLog): Promise<number> {
  const store = await openSecrets(options);
  if (store === null) return 0;
  const audit: AuditSink = {
    async append(event) {
      await log.append([event]);
    },
  };
  // The operator acts; services read over mTLS, so the ACL grants nothing here.
  const acl = compileSecretsAcl({ trustDomain: 'kek.invalid', services: {}, secrets: {} });
  const service = await openSecretsService({ store, kek: options.current, audit, acl });
  try {
    return (await service.rotateKek(options.actor, options.next)).versions;
  } finally {
    await service.close();
  }
}

/** The log's signing keys re-wrapped in one transaction, under the log's writer lock (file or PostgreSQL). */
async function rewrapAudit(options: KekRotationOptions): Promise<number> {
  const { current, next } = options;
  if (options.postgres === undefined) {
    const path = join(options.dataDir, FILES.audit);
    if (!existsSync(path)) return 0;
    // The log's one-writer lock, as the log itself takes it: AUDIT_ERR_LOCKED if a writer started meanwhile.
    const lock = lockAuditWriter(path);
    try {
      const store = new AuditStore(openAuditDatabase(path));
      try {
        return store.transaction(() => {
          const { rewrapped } = rewrapSigningKeys(store.signingKeys(), current, next);
          for (const r of rewrapped) store.replaceWrappedSigningKey(r.name, r.keyId, r.wrappedKey);
          return rewrapped.length;
        });
      } finally {
        store.db.close();
      }
    } finally {
      lock.release();
    }
  }
  if ((await readSigningKeys(options)).length === 0) return 0;
  const { openPostgresAuditDatabase, PostgresAuditQueries } = await import('./audit/postgres-database.ts');
  const db = await openPostgresAuditDatabase({ connectionString: options.postgres, maxConnections: 1 });
  try {
    const queries = new PostgresAuditQueries(db.writer);
    await db.writer.query('BEGIN');
    try {
      const { rewrapped } = rewrapSigningKeys(await queries.signingKeys(), current, next);
      for (const r of rewrapped) await queries.replaceWrappedSigningKey(r.name, r.keyId, r.wrappedKey);
      await db.writer.query('COMMIT');
      return rewrapped.length;
    } catch (err) {
      await db.writer.query('ROLLBACK').catch(() => {});
      throw err;
    }
  } finally {
    await db.close();
  }
}
