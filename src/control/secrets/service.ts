import { createSecretKey, type KeyObject } from 'node:crypto';
import sodium from 'sodium-native';
import type { AuditDecision } from '../../core/audit-event.ts';
import { isRampartError } from '../../core/errors.ts';
import { type Kek, type KekSource, loadKek } from '../../core/kek.ts';
import { parseSpiffeId } from '../../core/spiffe.ts';
import type { SecretsAcl } from './acl.ts';
import {
  AUDIT_KEY_BYTES,
  type AuditSink,
  appendOrRefuse,
  buildSecretsEvent,
  SECRETS_ACTIONS,
  type SecretsAction,
  type SecretsActor,
  type SecretsEventInput,
  secretRef,
} from './audit.ts';
import { MAX_VERSION, SECRET_NAME, SECRETS_DEFAULTS } from './defaults.ts';
import { AUDIT_KEY_CONTEXT, makeKekCheck, openVersion, rewrapKey, sealVersion, verifyKekCheck } from './envelope.ts';
import { isSecretsError, SEC_ERRORS, secError } from './errors.ts';
import { isLabel, type Label, type LabelMove, type Labels, moveLabels, NO_LABELS } from './labels.ts';
import type { SecretRecord, SecretsStore, StoreMeta, VersionMeta, VersionRecord } from './store.ts';

/**
 * The secrets service: envelope encryption (envelope.ts), versions and labels (labels.ts), the manifest's
 * access list (acl.ts) and audit (audit.ts) over one store (store.ts). It is the whole of the module's
 * behaviour; a network front end only authenticates the caller (mTLS, SPIFFE ID from the verified
 * certificate, src/core/spiffe.ts svidIdentity) and maps results and SEC_ERR_* codes to responses.
 *
 * Two kinds of callers:
 * - services: {@link SecretsService.read} with the caller's SPIFFE ID, checked against the ACL (deny by
 *   default) before anything else, so a refused caller learns nothing, not even whether the secret exists;
 * - operators (CLI, admin API): set, stage, promote, roll back, reveal, history, list, KEK rotation. The
 *   front end is responsible for authorising operators; the service records who acted.
 *
 * Every operation is audited. A read returns a value only after the audit log acknowledged the event
 * (fail closed); a write is audited before it commits, so nothing changes without a record.
 */
export interface SecretsServiceOptions {
  /** The store. The service owns it from then on: `close()` closes it, and so does a failed open. */
  store: SecretsStore;
  /**
   * The key-encryption key, loaded (the caller keeps ownership) or where to load it from (the service
   * owns it and destroys it on close). A missing or wrong KEK fails the open with SEC_ERR_SEALED.
   */
  kek: Kek | KekSource;
  /** Where audit events go; see {@link AuditSink}. */
  audit: AuditSink;
  /** Who may read what (compileSecretsAcl). */
  acl: SecretsAcl;
  now?: () => number;
  /** Default {@link SECRETS_DEFAULTS.auditTimeoutMs}. */
  auditTimeoutMs?: number;
  /** Default {@link SECRETS_DEFAULTS.maxValueBytes}. */
  maxValueBytes?: number;
}

/** Request correlation, copied into audit events. */
export interface RequestContext {
  requestId?: string;
  traceId?: string;
}

/** A decrypted value. The caller owns `value` and should zero it after use ({@link wipeSecret}). */
export interface SecretValue {
  name: string;
  version: number;
  /** The label it was read by, or null when read by version number. */
  label: Label | null;
  createdAt: number;
  value: Buffer;
}

/** What a write produced. */
export interface WriteResult {
  name: string;
  version: number;
  labels: Labels;
  createdAt: number;
}

/** A version's metadata and the label it carries, if any. */
export interface VersionInfo extends VersionMeta {
  label: Label | null;
}

/** Which version an operator reads: a label, or a number. */
export type VersionSelector = { label: Label } | { version: number };

export interface SetOptions extends RequestContext {
  /** Make the new version `pending` instead of `current` (two-phase rotation). */
  stage?: boolean;
  /** Allow a direct set while a version is pending (that version loses its label). */
  discardPending?: boolean;
  /** Rotation interval in ms (null clears it; undefined keeps it). Sets `rotationDueAt`. */
  rotationIntervalMs?: number | null;
}

export interface SecretsService {
  /** Id (key check value) of the KEK in use. */
  readonly kekId: string;
  /**
   * A service reads a secret, by label (default `current`). Order: the ACL (SEC_ERR_FORBIDDEN, audited,
   * for anything not granted, existing or not), the selector (SEC_ERR_SELECTOR), the lookup
   * (SEC_ERR_NOT_FOUND), decryption (SEC_ERR_DECRYPT; SEC_ERR_SEALED when the store was re-keyed by
   * another process), then the audit append: the value is returned only after it is acknowledged,
   * else it is zeroed and the read fails with SEC_ERR_AUDIT_UNAVAILABLE.
   */
  read(callerSpiffeId: string, name: string, options?: { label?: Label } & RequestContext): Promise<SecretValue>;
  /** An operator reads a value (`get --reveal`), by label or version; audited and fail closed like `read`. */
  reveal(actor: SecretsActor, name: string, selector?: VersionSelector, context?: RequestContext): Promise<SecretValue>;
  /** A new version, `current` (or `pending` with `stage`). `value` is not modified; the caller zeroes it. */
  set(actor: SecretsActor, name: string, value: Uint8Array, options?: SetOptions): Promise<WriteResult>;
  /** `pending` becomes `current`, `current` becomes `previous` (SEC_ERR_LABEL without a pending version). */
  promote(actor: SecretsActor, name: string, context?: RequestContext): Promise<Labels>;
  /** `previous` and `current` swap (SEC_ERR_LABEL without a previous version). */
  rollback(actor: SecretsActor, name: string, context?: RequestContext): Promise<Labels>;
  /** A secret's metadata and every version's (no values). */
  history(
    actor: SecretsActor,
    name: string,
    context?: RequestContext,
  ): Promise<{ secret: SecretRecord; versions: VersionInfo[] }>;
  /** Every secret's metadata (no values). */
  list(actor: SecretsActor, context?: RequestContext): Promise<SecretRecord[]>;
  /**
   * Re-wraps every data key under `next` in one transaction (ciphertexts untouched), re-keys the store's
   * check value and audit key, records the old KEK id as retired, and continues under `next` (which stays
   * the caller's). The old KEK is destroyed if the service loaded it.
   */
  rotateKek(
    actor: SecretsActor,
    next: Kek,
    context?: RequestContext,
  ): Promise<{ previousKekId: string; kekId: string; versions: number }>;
  /** Replaces the ACL (a reloaded manifest). */
  setAcl(acl: SecretsAcl): void;
  /** The audit reference of a secret (version 0: the secret as a whole), to search the audit log. */
  auditRef(name: string, version?: number): string;
  /** Zeroes the audit key, destroys an owned KEK, closes the store. */
  close(): Promise<void>;
}

/** Zeroes a value returned by read/reveal. */
export function wipeSecret(secret: { value: Buffer }): void {
  sodium.sodium_memzero(secret.value);
}

/** Control characters: refused in recorded user names (terminal escapes in a history listing). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Longest operator user name recorded as `created_by`. */
const MAX_USER_BYTES = 256;
/** Audit references a service remembers (well under a MiB: names are short, references 64 hex digits). */
const MAX_CACHED_REFS = 4096;
/** Largest rotation interval accepted: ten years, in ms. */
const MAX_ROTATION_INTERVAL_MS = 10 * 366 * 24 * 3600 * 1000;

/**
 * Opens the service: loads the KEK, initialises a fresh store (KEK check value, audit key) or verifies
 * the store's check value. Throws SEC_ERR_SEALED (with `detail.reason`) when the KEK is missing, cannot
 * be read, or is not the store's; nothing else works until that is fixed.
 */
export async function openSecretsService(options: SecretsServiceOptions): Promise<SecretsService> {
  const { store } = options;
  let kek: Kek | null = null;
  let ownsKek = false;
  let auditKey: Buffer | null = null;
  try {
    if (typeof options.audit?.append !== 'function') throw secError(SEC_ERRORS.config, { reason: 'audit sink' });
    if (typeof options.acl?.allows !== 'function') throw secError(SEC_ERRORS.config, { reason: 'acl' });
    const auditTimeoutMs = options.auditTimeoutMs ?? SECRETS_DEFAULTS.auditTimeoutMs;
    const maxValueBytes = options.maxValueBytes ?? SECRETS_DEFAULTS.maxValueBytes;
    if (!Number.isFinite(auditTimeoutMs) || auditTimeoutMs <= 0)
      throw secError(SEC_ERRORS.config, { reason: 'audit timeout' });
    if (!Number.isSafeInteger(maxValueBytes) || maxValueBytes <= 0)
      throw secError(SEC_ERRORS.config, { reason: 'max value' });
    const now = options.now ?? Date.now;

    if (isKek(options.kek)) {
      kek = options.kek;
    } else {
      try {
        kek = loadKek(options.kek);
        ownsKek = true;
      } catch (cause) {
        const code = isRampartError(cause) ? cause.code : 'unknown';
        throw secError(SEC_ERRORS.sealed, { reason: 'kek_unavailable', kekError: code }, cause);
      }
    }

    let meta = await store.readMeta();
    if (meta === null) {
      const fresh = Buffer.alloc(AUDIT_KEY_BYTES);
      sodium.randombytes_buf(fresh);
      try {
        const init: StoreMeta = {
          kekId: kek.id,
          kekCheck: makeKekCheck(kek),
          wrappedAuditKey: kek.wrap(fresh, AUDIT_KEY_CONTEXT),
        };
        await store.initMeta(init, now());
      } finally {
        sodium.sodium_memzero(fresh);
      }
      // Read back either way: another opener may have initialised it first, under its own KEK.
      meta = await store.readMeta();
      if (meta === null) throw secError(SEC_ERRORS.sealed, { reason: 'meta_missing' });
    }
    const refused = verifyKekCheck(kek, meta.kekCheck);
    if (refused !== null) {
      throw secError(SEC_ERRORS.sealed, { reason: refused, kekId: kek.id, storeKekId: meta.kekId });
    }
    try {
      auditKey = kek.unwrap(meta.wrappedAuditKey, AUDIT_KEY_CONTEXT);
    } catch (cause) {
      throw secError(SEC_ERRORS.sealed, { reason: 'audit_key', kekId: kek.id }, cause);
    }
    return new Service({ ...options, kek, ownsKek, auditKey, now, auditTimeoutMs, maxValueBytes });
  } catch (err) {
    if (auditKey) sodium.sodium_memzero(auditKey);
    if (ownsKek) kek?.destroy();
    await store.close().catch(() => {});
    throw err;
  }
}

function isKek(value: Kek | KekSource): value is Kek {
  return typeof (value as Kek)?.wrap === 'function' && typeof (value as Kek)?.unwrap === 'function';
}

interface ServiceInit {
  store: SecretsStore;
  kek: Kek;
  ownsKek: boolean;
  auditKey: Buffer;
  audit: AuditSink;
  acl: SecretsAcl;
  now: () => number;
  auditTimeoutMs: number;
  maxValueBytes: number;
}

class Service implements SecretsService {
  readonly #store: SecretsStore;
  readonly #audit: AuditSink;
  readonly #now: () => number;
  readonly #auditTimeoutMs: number;
  readonly #maxValueBytes: number;
  #kek: Kek;
  #ownsKek: boolean;
  /** The KEK a rotation is moving to, between its commit and the switch (reads may see re-wrapped rows). */
  #nextKek: Kek | null = null;
  #auditKey: Buffer;
  /**
   * The same key as an OpenSSL key object for HMAC (importing the raw key on every HMAC costs ~8 µs of a
   * ~90 µs read). Node cannot zero a KeyObject; it is freed with the service. The key only links audit
   * references to names; it protects no value.
   */
  #auditHmacKey: KeyObject;
  #acl: SecretsAcl;
  /** Audit references computed so far ({@link Service.#ref}), by version and name. */
  readonly #refs = new Map<string, string>();
  /** Writes of this process, one at a time (compare-and-set in the store covers other processes). */
  #writes: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Reads in progress: close() waits for them before zeroing the audit key. */
  readonly #running = new Set<Promise<unknown>>();

  constructor(init: ServiceInit) {
    this.#store = init.store;
    this.#audit = init.audit;
    this.#now = init.now;
    this.#auditTimeoutMs = init.auditTimeoutMs;
    this.#maxValueBytes = init.maxValueBytes;
    this.#kek = init.kek;
    this.#ownsKek = init.ownsKek;
    this.#auditKey = init.auditKey;
    this.#auditHmacKey = createSecretKey(init.auditKey);
    this.#acl = init.acl;
  }

  get kekId(): string {
    return this.#kek.id;
  }

  setAcl(acl: SecretsAcl): void {
    if (typeof acl?.allows !== 'function') throw secError(SEC_ERRORS.config, { reason: 'acl' });
    this.#acl = acl;
  }

  auditRef(name: string, version = 0): string {
    this.#guard();
    return secretRef(this.#auditHmacKey, name, version);
  }

  read(callerSpiffeId: string, name: string, options: { label?: Label } & RequestContext = {}): Promise<SecretValue> {
    return this.#track(() => this.#read(callerSpiffeId, name, options));
  }

  reveal(
    actor: SecretsActor,
    name: string,
    selector: VersionSelector = { label: 'current' },
    context: RequestContext = {},
  ): Promise<SecretValue> {
    return this.#track(async () => {
      checkActor(actor);
      checkName(name);
      checkSelector(selector);
      return this.#readValue(actor, SECRETS_ACTIONS.reveal, name, selector, context);
    });
  }

  async #read(callerSpiffeId: string, name: string, options: { label?: Label } & RequestContext): Promise<SecretValue> {
    const actor: SecretsActor = { spiffeId: typeof callerSpiffeId === 'string' ? callerSpiffeId.slice(0, 2048) : '' };
    const label = options.label ?? 'current';
    if (!this.#acl.allows(callerSpiffeId, name)) {
      throw await this.#refuse(
        this.#event(actor, SECRETS_ACTIONS.read, name, 0, 'deny', SEC_ERRORS.forbidden, options),
        secError(SEC_ERRORS.forbidden, { caller: actor.spiffeId }),
      );
    }
    if (!isLabel(label)) {
      throw await this.#refuse(
        this.#event(actor, SECRETS_ACTIONS.read, name, 0, 'deny', SEC_ERRORS.selector, options),
        secError(SEC_ERRORS.selector),
      );
    }
    return this.#readValue(actor, SECRETS_ACTIONS.read, name, { label }, options);
  }

  async set(actor: SecretsActor, name: string, value: Uint8Array, options: SetOptions = {}): Promise<WriteResult> {
    this.#guard();
    checkActor(actor);
    checkName(name);
    if (!(value instanceof Uint8Array)) throw secError(SEC_ERRORS.value, { reason: 'not_bytes' });
    if (value.byteLength === 0) throw secError(SEC_ERRORS.value, { reason: 'empty' });
    if (value.byteLength > this.#maxValueBytes) {
      throw secError(SEC_ERRORS.value, { reason: 'too_large', size: value.byteLength, max: this.#maxValueBytes });
    }
    const interval = options.rotationIntervalMs;
    if (
      interval !== undefined &&
      interval !== null &&
      (!Number.isSafeInteger(interval) || interval <= 0 || interval > MAX_ROTATION_INTERVAL_MS)
    ) {
      throw secError(SEC_ERRORS.config, { reason: 'rotation interval' });
    }
    return this.#serially(async () => {
      const record = await this.#store.secret(name);
      const version = (record?.latestVersion ?? 0) + 1;
      if (version > MAX_VERSION) throw secError(SEC_ERRORS.conflict, { reason: 'version space exhausted' });
      const expected = record?.labels ?? NO_LABELS;
      const move: LabelMove = options.stage
        ? { op: 'stage', version }
        : { op: 'set', version, discardPending: options.discardPending === true };
      const event = (decision: AuditDecision, reason: string) =>
        this.#event(
          actor,
          SECRETS_ACTIONS.write,
          name,
          version,
          decision,
          reason,
          options,
          move.op === 'stage' ? 'pending' : 'current',
        );
      let labels: Labels;
      try {
        labels = moveLabels(expected, move);
      } catch (err) {
        throw await this.#refuse(event('deny', codeOf(err)), err);
      }
      const sealed = sealVersion(this.#kek, name, version, value);
      const createdAt = this.#now();
      await this.#append(event('allow', 'ok'));
      try {
        await this.#store.commitVersion({
          name,
          version,
          createdBy: actorName(actor),
          createdAt,
          ...sealed,
          expectedLabels: expected,
          labels,
          ...(interval === undefined ? {} : { rotationIntervalMs: interval }),
        });
      } catch (err) {
        throw await this.#refuse(event('error', codeOf(err)), err);
      }
      return { name, version, labels, createdAt };
    });
  }

  promote(actor: SecretsActor, name: string, context: RequestContext = {}): Promise<Labels> {
    return this.#moveLabels(actor, name, { op: 'promote' }, SECRETS_ACTIONS.promote, context);
  }

  rollback(actor: SecretsActor, name: string, context: RequestContext = {}): Promise<Labels> {
    return this.#moveLabels(actor, name, { op: 'rollback' }, SECRETS_ACTIONS.rollback, context);
  }

  history(actor: SecretsActor, name: string, context: RequestContext = {}) {
    return this.#track(() => this.#history(actor, name, context));
  }

  async #history(actor: SecretsActor, name: string, context: RequestContext) {
    checkActor(actor);
    checkName(name);
    const secret = await this.#store.secret(name);
    if (secret === null) {
      throw await this.#refuse(
        this.#event(actor, SECRETS_ACTIONS.history, name, 0, 'error', SEC_ERRORS.notFound, context),
        secError(SEC_ERRORS.notFound),
      );
    }
    const labelOf = new Map<number, Label>();
    for (const label of ['current', 'previous', 'pending'] as const) {
      const version = secret.labels[label];
      if (version !== null) labelOf.set(version, label);
    }
    const versions = (await this.#store.history(name)).map((v) => ({ ...v, label: labelOf.get(v.version) ?? null }));
    await this.#append(this.#event(actor, SECRETS_ACTIONS.history, name, 0, 'allow', 'ok', context));
    return { secret, versions };
  }

  list(actor: SecretsActor, context: RequestContext = {}): Promise<SecretRecord[]> {
    return this.#track(async () => {
      checkActor(actor);
      return this.#list(actor, context);
    });
  }

  async #list(actor: SecretsActor, context: RequestContext): Promise<SecretRecord[]> {
    const secrets = await this.#store.listSecrets();
    await this.#append({
      ...this.#context(context),
      actor,
      action: SECRETS_ACTIONS.list,
      decision: 'allow',
      reason: 'ok',
      resource: 'secret:*',
    });
    return secrets;
  }

  async rotateKek(actor: SecretsActor, next: Kek, context: RequestContext = {}) {
    this.#guard();
    checkActor(actor);
    if (!isKek(next)) throw secError(SEC_ERRORS.kekRotation, { reason: 'not_a_kek' });
    return this.#serially(async () => {
      const previous = this.#kek;
      if (next.id === previous.id) throw secError(SEC_ERRORS.kekRotation, { reason: 'same_key', kekId: next.id });
      const event = (decision: AuditDecision, reason: string): SecretsEventInput => ({
        ...this.#context(context),
        actor,
        action: SECRETS_ACTIONS.rotateKek,
        decision,
        reason,
        resource: `kek:${next.id}`,
        detail: { previousKekId: previous.id },
      });
      let meta: StoreMeta;
      try {
        meta = {
          kekId: next.id,
          kekCheck: makeKekCheck(next),
          wrappedAuditKey: next.wrap(this.#auditKey, AUDIT_KEY_CONTEXT),
        };
      } catch (cause) {
        throw secError(SEC_ERRORS.kekRotation, { reason: 'new_key_unusable' }, cause);
      }
      await this.#append(event('allow', 'ok'));
      let versions: number;
      this.#nextKek = next;
      try {
        versions = await this.#store.rewrapAll(
          (row) => {
            try {
              return rewrapKey(previous, next, row.name, row.version, row.wrappedKey);
            } catch (cause) {
              throw secError(
                SEC_ERRORS.kekRotation,
                { reason: 'unwrap', version: row.version, rowKekId: row.kekId },
                cause,
              );
            }
          },
          meta,
          this.#now(),
        );
      } catch (err) {
        this.#nextKek = null;
        throw await this.#refuse(event('error', codeOf(err)), err);
      }
      this.#kek = next;
      this.#nextKek = null;
      if (this.#ownsKek) previous.destroy();
      this.#ownsKek = false;
      return { previousKekId: previous.id, kekId: next.id, versions };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Operations already running finish with the keys they started with; new ones are refused.
    await Promise.allSettled([this.#writes, ...this.#running]);
    sodium.sodium_memzero(this.#auditKey);
    if (this.#ownsKek) this.#kek.destroy();
    await this.#store.close();
  }

  // ---------------------------------------------------------------------------------------------------

  async #readValue(
    actor: SecretsActor,
    action: SecretsAction,
    name: string,
    selector: VersionSelector,
    context: RequestContext,
  ): Promise<SecretValue> {
    const label = 'label' in selector ? selector.label : null;
    const event = (version: number, decision: AuditDecision, reason: string) =>
      this.#event(actor, action, name, version, decision, reason, context, label ?? undefined);
    let value: Buffer | null = null;
    let row: VersionRecord | null = null;
    try {
      // A KEK rotation by this process may commit between the fetch and the decryption; the row then
      // names a KEK this process no longer holds, and one more fetch gets the re-wrapped row.
      for (let attempt = 0; value === null; attempt++) {
        row =
          'label' in selector
            ? await this.#store.versionByLabel(name, selector.label)
            : await this.#store.version(name, selector.version);
        if (row === null) throw secError(SEC_ERRORS.notFound);
        const kek = this.#kekFor(row.kekId);
        if (kek === null) {
          if (attempt === 0) continue;
          throw secError(SEC_ERRORS.sealed, { reason: 'kek_rotated', rowKekId: row.kekId, kekId: this.#kek.id });
        }
        value = openVersion(kek, name, row.version, row);
      }
    } catch (err) {
      throw await this.#refuse(event(row?.version ?? 0, 'error', codeOf(err)), err);
    }
    const version = row!.version;
    try {
      await this.#append(event(version, 'allow', 'ok'));
    } catch (err) {
      sodium.sodium_memzero(value);
      throw err;
    }
    return { name, version, label, createdAt: row!.createdAt, value };
  }

  #kekFor(kekId: string): Kek | null {
    if (kekId === this.#kek.id) return this.#kek;
    if (this.#nextKek !== null && kekId === this.#nextKek.id) return this.#nextKek;
    return null;
  }

  async #moveLabels(
    actor: SecretsActor,
    name: string,
    move: LabelMove,
    action: SecretsAction,
    context: RequestContext,
  ): Promise<Labels> {
    this.#guard();
    checkActor(actor);
    checkName(name);
    return this.#serially(async () => {
      const record = await this.#store.secret(name);
      const event = (version: number, decision: AuditDecision, reason: string) =>
        this.#event(actor, action, name, version, decision, reason, context, 'current');
      if (record === null)
        throw await this.#refuse(event(0, 'error', SEC_ERRORS.notFound), secError(SEC_ERRORS.notFound));
      let next: Labels;
      try {
        next = moveLabels(record.labels, move);
      } catch (err) {
        throw await this.#refuse(event(0, 'deny', codeOf(err)), err);
      }
      const version = next.current ?? 0;
      await this.#append(event(version, 'allow', 'ok'));
      try {
        await this.#store.commitLabels({ name, expected: record.labels, next, now: this.#now() });
      } catch (err) {
        throw await this.#refuse(event(version, 'error', codeOf(err)), err);
      }
      return next;
    });
  }

  /** Runs a read-side operation, refused once closed, and remembered until it settles. */
  #track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(secError(SEC_ERRORS.closed));
    const run = fn();
    this.#running.add(run);
    const done = () => this.#running.delete(run);
    run.then(done, done);
    return run;
  }

  /** Runs `fn` after every earlier write of this service. */
  #serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#writes.then(fn, fn);
    this.#writes = run.catch(() => {});
    return run;
  }

  #guard(): void {
    if (this.#closed) throw secError(SEC_ERRORS.closed);
  }

  #context(context: RequestContext): Pick<SecretsEventInput, 'requestId' | 'traceId'> {
    return {
      requestId: typeof context.requestId === 'string' ? context.requestId : undefined,
      traceId: typeof context.traceId === 'string' ? context.traceId : undefined,
    };
  }

  /** The event of an operation on secret `name` (version 0: the secret as a whole). */
  #event(
    actor: SecretsActor,
    action: SecretsAction,
    name: string,
    version: number,
    decision: AuditDecision,
    reason: string,
    context: RequestContext,
    label?: Label,
  ): SecretsEventInput {
    const nameRef = this.#ref(name, 0);
    return {
      ...this.#context(context),
      actor,
      action,
      decision,
      reason,
      resource: `secret:${version === 0 ? nameRef : this.#ref(name, version)}`,
      detail: { nameRef, ...(version === 0 ? {} : { version }), ...(label ? { label } : {}) },
    };
  }

  /**
   * {@link secretRef} under this store's audit key, remembered: the key never changes for the life of
   * the service (a KEK rotation re-wraps it), and two HMACs per read were a tenth of the library's cost of
   * a read. Only for names a manifest can declare (anything else is computed each time: a refused read
   * may name anything); at most {@link MAX_CACHED_REFS} are kept, then the cache starts over.
   */
  #ref(name: string, version: number): string {
    if (typeof name !== 'string' || !SECRET_NAME.test(name)) return secretRef(this.#auditHmacKey, name, version);
    const key = `${version}\0${name}`;
    let ref = this.#refs.get(key);
    if (ref === undefined) {
      ref = secretRef(this.#auditHmacKey, name, version);
      if (this.#refs.size >= MAX_CACHED_REFS) this.#refs.clear();
      this.#refs.set(key, ref);
    }
    return ref;
  }

  /** Appends, or throws SEC_ERR_AUDIT_UNAVAILABLE; an event the schema refuses counts as not appended. */
  async #append(input: SecretsEventInput): Promise<void> {
    let event: ReturnType<typeof buildSecretsEvent>;
    try {
      event = buildSecretsEvent(input, this.#now);
    } catch (cause) {
      throw secError(SEC_ERRORS.auditUnavailable, { action: input.action, reason: 'event_refused' }, cause);
    }
    await appendOrRefuse(this.#audit, event, this.#auditTimeoutMs);
  }

  /**
   * Audits a refusal or failure and returns the error to throw. The refusal stands whether or not the
   * audit log took the event (nothing is returned either way); a failed append is recorded on the error.
   */
  async #refuse(event: SecretsEventInput, err: unknown): Promise<unknown> {
    try {
      await this.#append(event);
    } catch (auditErr) {
      // secError always creates a detail object, so the failed append can be recorded on the refusal.
      if (isSecretsError(err) && err.detail) err.detail['auditError'] = codeOf(auditErr);
    }
    return err;
  }
}

function codeOf(err: unknown): string {
  return isRampartError(err) ? err.code : SEC_ERRORS.store;
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !SECRET_NAME.test(name)) throw secError(SEC_ERRORS.name);
}

function checkSelector(selector: VersionSelector): void {
  if (typeof selector !== 'object' || selector === null) throw secError(SEC_ERRORS.selector);
  if ('label' in selector) {
    if (!isLabel(selector.label)) throw secError(SEC_ERRORS.selector);
    return;
  }
  const { version } = selector as { version: unknown };
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1 || version > MAX_VERSION) {
    throw secError(SEC_ERRORS.selector);
  }
}

function checkActor(actor: SecretsActor): void {
  if (typeof actor !== 'object' || actor === null) throw secError(SEC_ERRORS.config, { reason: 'actor' });
  if ('spiffeId' in actor) {
    try {
      parseSpiffeId(actor.spiffeId);
    } catch (cause) {
      throw secError(SEC_ERRORS.config, { reason: 'actor' }, cause);
    }
    return;
  }
  const { subject } = actor as { subject: unknown };
  if (
    typeof subject !== 'string' ||
    subject === '' ||
    Buffer.byteLength(subject) > MAX_USER_BYTES ||
    CONTROL.test(subject)
  ) {
    throw secError(SEC_ERRORS.config, { reason: 'actor' });
  }
}

/** `created_by`: the SPIFFE ID of a workload, `user:<subject>` for a person. */
function actorName(actor: SecretsActor): string {
  return 'spiffeId' in actor ? actor.spiffeId : `user:${actor.subject}`;
}
