import { type AuditEvent, encodeAuditEvent, parseAuditEntry } from '../../core/audit-event.ts';
import { isRampartError } from '../../core/errors.ts';
import type { Kek } from '../../core/kek.ts';
import { isOrigin, openCheckpoint, signCheckpoint } from './checkpoint.ts';
import { AuditStore, type CheckpointRow, type EntryRow, openAuditDatabase } from './database.ts';
import { AUDIT_DEFAULTS } from './defaults.ts';
import { AUDIT_ERRORS, auditError } from './errors.ts';
import { consistencyProof, Frontier, inclusionProof, leafHash, rootAt } from './merkle.ts';
import { ed25519Verifier } from './note.ts';
import type { PostgresAuditTarget } from './postgres-database.ts';
import { type LogSigningKey, loadOrCreateSigningKey } from './signing-key.ts';
import { type AuditWriterLock, currentWriterHolder, lockAuditWriter, WRITER_META_KEY } from './writer-lock.ts';

/** Options of {@link openAuditLog}. */
export interface AuditLogOptions {
  /** The SQLite file (created when missing); `<control data dir>/audit.db` in the control plane. */
  path: string;
  /**
   * The log's identity: the checkpoint origin line and the signing key's name (tlog-checkpoint: the
   * key name SHOULD match the origin), e.g. `shop.local/rampart/audit`. Fixed for the life of the log.
   */
  origin: string;
  /** Wraps the signing key at rest (src/core/kek.ts). */
  kek: Kek;
  /** Clock (ms since the epoch); tests. */
  now?: () => number;
  /** Periodic checkpoints; 0 turns the timer off (on-demand and close() still sign). */
  checkpointIntervalMs?: number;
  minCheckpointIntervalMs?: number;
  maxBatchEvents?: number;
  maxQueuedEvents?: number;
  /** Told about failures no caller sees (a periodic checkpoint that could not be signed or stored). */
  onError?: (err: Error) => void;
}

/** What `append` resolves with, per event, in order. */
export interface AppendReceipt {
  eventId: string;
  /** The event's leaf index. */
  index: number;
  /** True when the event id was already in the log (with identical content): nothing was written. */
  duplicate: boolean;
}

/** A signed checkpoint as stored. */
export interface SignedCheckpoint {
  size: number;
  root: Buffer;
  /** The C2SP signed note, byte for byte what was signed. */
  note: string;
  createdAt: number;
}

/** An inclusion proof against a signed checkpoint: everything a client needs to check it alone. */
export interface InclusionProofResult {
  checkpoint: SignedCheckpoint;
  index: number;
  leafHash: Buffer;
  proof: Buffer[];
}

/** A consistency proof from an older tree size to a signed checkpoint. */
export interface ConsistencyProofResult {
  checkpoint: SignedCheckpoint;
  fromSize: number;
  proof: Buffer[];
}

/** A stored event with its index. */
export interface LoggedEvent {
  index: number;
  event: AuditEvent;
}

/** Counters for metrics and the bench. */
export interface AuditLogStats {
  size: number;
  queuedEvents: number;
  commits: number;
  committedEvents: number;
  duplicates: number;
  lastBatchEvents: number;
  checkpoints: number;
  /** Periodic checkpoints that failed (each also reported to `onError`). */
  checkpointFailures: number;
}

/**
 * The audit log: an append-only, durable RFC 9162 Merkle tree of audit events with signed checkpoints.
 * One instance per database file, in one process: it holds the file's writer lock (writer-lock.ts)
 * from open to close, and a second writer is refused at open with AUDIT_ERR_LOCKED.
 *
 * A network front end (mTLS, authorized by SPIFFE ID) plugs in by calling `append` with the events a
 * component sent and answering with the receipts once the promise resolves: the receipt is the
 * acknowledgement that lets the component drop its spooled copy. `proveInclusion`/`proveConsistency`
 * return everything a client needs to check a proof offline against the signed checkpoint.
 */
export interface AuditLog {
  readonly origin: string;
  /** The signing key as a verifier key string: pin it where `rampart audit verify --key` can read it. */
  readonly verifierKey: string;
  /** Entries durably committed. */
  size(): number;
  /**
   * Appends events. Each is validated (AUDIT_ERR_EVENT for any invalid one: nothing of the call is
   * appended). Resolves once the transaction holding them is durable (fsync'd); concurrent calls share
   * one transaction (group commit). An event id already logged with the same bytes is a duplicate:
   * its receipt carries the original index. The same id with other bytes rejects the call with
   * AUDIT_ERR_ID_CONFLICT, nothing of it appended. AUDIT_ERR_OVERLOADED when too much waits already.
   */
  append(events: readonly unknown[]): Promise<AppendReceipt[]>;
  /**
   * Signs a checkpoint at the current size now, unless the latest one already has this size (then it
   * is returned). Periodic checkpoints call this; so does close().
   */
  checkpoint(): SignedCheckpoint;
  latestCheckpoint(): SignedCheckpoint | null;
  /**
   * Inclusion proof of an event (by id or index) against the smallest checkpoint covering it; signs
   * one on demand when none does and the last is older than `minCheckpointIntervalMs`, else
   * AUDIT_ERR_RANGE with `detail.retryAfterMs`. AUDIT_ERR_RANGE for an unknown event.
   */
  proveInclusion(eventIdOrIndex: string | number): InclusionProofResult;
  /** Consistency proof from `fromSize` to the latest checkpoint (AUDIT_ERR_RANGE if beyond it). */
  proveConsistency(fromSize: number): ConsistencyProofResult;
  /** The stored event at `index`, or null. */
  entry(index: number): LoggedEvent | null;
  stats(): AuditLogStats;
  /** Commits what is queued, signs a final checkpoint if the log grew, closes the database. */
  close(): Promise<void>;
}

/**
 * The audit log over either store: SQLite ({@link AuditLog}, whose reads and checkpoints return at
 * once) or PostgreSQL (postgres-log.ts, where they return promises). Code that must work with both
 * awaits every call; {@link connectAuditLog} opens one or the other.
 */
export interface AnyAuditLog {
  readonly origin: string;
  readonly verifierKey: string;
  size(): number;
  append(events: readonly unknown[]): Promise<AppendReceipt[]>;
  checkpoint(): SignedCheckpoint | Promise<SignedCheckpoint>;
  latestCheckpoint(): SignedCheckpoint | null;
  proveInclusion(eventIdOrIndex: string | number): InclusionProofResult | Promise<InclusionProofResult>;
  proveConsistency(fromSize: number): ConsistencyProofResult | Promise<ConsistencyProofResult>;
  entry(index: number): LoggedEvent | null | Promise<LoggedEvent | null>;
  stats(): AuditLogStats;
  close(): Promise<void>;
}

/** Options of {@link connectAuditLog}: those of {@link openAuditLog}, with the store to use. */
export type ConnectAuditLogOptions = Omit<AuditLogOptions, 'path'> &
  (
    | { /** The SQLite file (the default store). */ path: string; postgres?: undefined }
    | {
        path?: undefined /** A PostgreSQL database instead of a file (postgres-log.ts). */;
        postgres: PostgresAuditTarget;
      }
  );

/**
 * Opens the audit log on the store the options name: `path` (SQLite, as {@link openAuditLog}) or
 * `postgres`. The PostgreSQL module (and `pg`) is loaded only when asked for.
 */
export async function connectAuditLog(options: ConnectAuditLogOptions): Promise<AnyAuditLog> {
  if (options.postgres !== undefined) {
    if (options.path !== undefined) throw auditError(AUDIT_ERRORS.config, { option: 'path' });
    const { openPostgresAuditLog } = await import('./postgres-log.ts');
    return openPostgresAuditLog(options);
  }
  return openAuditLog(options as AuditLogOptions);
}

/** The validated tuning options; shared with the PostgreSQL log. */
export interface Settings {
  checkpointIntervalMs: number;
  minCheckpointIntervalMs: number;
  maxBatchEvents: number;
  maxQueuedEvents: number;
}

/** An event ready to append: its id, canonical bytes and leaf hash. */
export interface Prepared {
  id: string;
  bytes: Buffer;
  leaf: Buffer;
}

/** One append call waiting for its transaction. */
export interface Pending {
  items: Prepared[];
  resolve(receipts: AppendReceipt[]): void;
  reject(err: unknown): void;
}

/** Validates the tuning options (AUDIT_ERR_CONFIG on a bad one). */
export function auditLogSettings(options: Omit<AuditLogOptions, 'path'>): Settings {
  if (typeof options.origin !== 'string' || !isOrigin(options.origin)) {
    throw auditError(AUDIT_ERRORS.config, { option: 'origin' });
  }
  return {
    checkpointIntervalMs: positiveInteger(
      'checkpointIntervalMs',
      options.checkpointIntervalMs,
      AUDIT_DEFAULTS.checkpointIntervalMs,
      true,
    ),
    minCheckpointIntervalMs: positiveInteger(
      'minCheckpointIntervalMs',
      options.minCheckpointIntervalMs,
      AUDIT_DEFAULTS.minCheckpointIntervalMs,
      true,
    ),
    maxBatchEvents: positiveInteger('maxBatchEvents', options.maxBatchEvents, AUDIT_DEFAULTS.maxBatchEvents),
    maxQueuedEvents: positiveInteger('maxQueuedEvents', options.maxQueuedEvents, AUDIT_DEFAULTS.maxQueuedEvents),
  };
}

function positiveInteger(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < (allowZero ? 0 : 1)) throw auditError(AUDIT_ERRORS.config, { option: name });
  return v;
}

function storedAsPrior(row: EntryRow | null): { index: number; bytes: Buffer } | null {
  return row === null ? null : { index: row.index, bytes: row.entry };
}

/**
 * Checks at open that the latest stored checkpoint is one this log signed, over this origin, and that
 * the log is not shorter than it (AUDIT_ERR_TAMPERED otherwise): a log must never sign a checkpoint
 * inconsistent with one it signed before. The root is checked by {@link checkLatestRoot}.
 */
export function checkLatestCheckpoint(latest: CheckpointRow, size: number, origin: string, publicKey: Buffer): void {
  const verifier = ed25519Verifier(origin, publicKey);
  let checkpoint: ReturnType<typeof openCheckpoint>;
  try {
    checkpoint = openCheckpoint(latest.note, [verifier], origin);
  } catch (cause) {
    throw auditError(AUDIT_ERRORS.tampered, { reason: 'checkpoint_signature', checkpointSize: latest.size }, cause);
  }
  if (checkpoint.size !== latest.size || !checkpoint.root.equals(latest.root)) {
    throw auditError(AUDIT_ERRORS.tampered, { reason: 'checkpoint_row', checkpointSize: latest.size });
  }
  if (latest.size > size) {
    throw auditError(AUDIT_ERRORS.tampered, { reason: 'truncated', checkpointSize: latest.size, size });
  }
}

/** The stored tree's root at the latest checkpoint's size must be the signed one. */
export function checkLatestRoot(latest: CheckpointRow, storedRoot: Uint8Array): void {
  if (!Buffer.from(storedRoot).equals(latest.root)) {
    throw auditError(AUDIT_ERRORS.tampered, { reason: 'root', checkpointSize: latest.size });
  }
}

/**
 * Validates and hashes events in the caller's turn, so a commit only writes: AUDIT_ERR_EVENT for any
 * invalid one (thrown before anything is queued). An event core/audit-event.ts made and validated in
 * this process (frozen, unchanged since) is not validated again: its canonical bytes were kept.
 */
function prepareEvents(events: readonly unknown[]): Prepared[] {
  if (!Array.isArray(events)) throw auditError(AUDIT_ERRORS.event, { field: '', reason: 'not_an_array' });
  return events.map((value) => {
    const { event, bytes } = encodeAuditEvent(value);
    return { id: event.id, bytes, leaf: leafHash(bytes) };
  });
}

/**
 * What an `append` may queue: its prepared events, or the error to reject with (log closed, an
 * invalid event, or more queued than `maxQueued`). Nothing is queued here.
 */
export function admitEvents(
  events: readonly unknown[],
  closed: boolean,
  queued: number,
  maxQueued: number,
): Prepared[] | Error {
  if (closed) return auditError(AUDIT_ERRORS.closed);
  let items: Prepared[];
  try {
    items = prepareEvents(events);
  } catch (err) {
    return err as Error;
  }
  if (items.length > 0 && queued + items.length > maxQueued) return auditError(AUDIT_ERRORS.overloaded, { queued });
  return items;
}

/**
 * Takes whole requests off the front of `queue` for one transaction: at most `maxEvents` events,
 * except that a first request larger than that goes alone.
 */
export function takeBatch(queue: Pending[], maxEvents: number): { batch: Pending[]; events: number } {
  const batch: Pending[] = [];
  let events = 0;
  while (queue.length > 0) {
    const next = queue[0]!;
    if (batch.length > 0 && events + next.items.length > maxEvents) break;
    batch.push(queue.shift()!);
    events += next.items.length;
  }
  return { batch, events };
}

/**
 * A checkpoint signed on demand (for a proof) is rate-limited: AUDIT_ERR_RANGE with `retryAfterMs`
 * while the latest one is younger than `minIntervalMs`.
 */
export function refuseEarlyCheckpoint(latest: CheckpointRow | null, now: number, minIntervalMs: number): void {
  const since = latest === null ? Number.POSITIVE_INFINITY : now - latest.createdAt;
  if (since < minIntervalMs) {
    throw auditError(AUDIT_ERRORS.range, { reason: 'not_yet_checkpointed', retryAfterMs: minIntervalMs - since });
  }
}

/** The checkpoint a consistency proof from `fromSize` ends at (the latest), or AUDIT_ERR_RANGE. */
export function consistencyTarget(latest: CheckpointRow | null, fromSize: number): CheckpointRow {
  if (latest === null || !Number.isSafeInteger(fromSize) || fromSize < 0 || fromSize > latest.size) {
    throw auditError(AUDIT_ERRORS.range, { reason: 'size', fromSize: String(fromSize) });
  }
  return latest;
}

/** A stored checkpoint row as the API returns it. */
export function toSigned(row: CheckpointRow): SignedCheckpoint {
  return { size: row.size, root: row.root, note: row.note, createdAt: row.createdAt };
}

/**
 * Opens (creating on first start) the audit log. First takes the file's writer lock, without waiting
 * (AUDIT_ERR_LOCKED, naming the holder, while another log has the file open for writing). Checks at
 * open, before anything can be appended or signed: the schema and origin, the signing key (unwrapped with the KEK: AUDIT_ERR_SEALED when it
 * does not), the stored tree against the latest signed checkpoint (AUDIT_ERR_TAMPERED when the root
 * at that size differs or the log is shorter: a log must never sign a checkpoint inconsistent with
 * one it signed before, tlog-checkpoint "Signatures"). The full check is `verifyLog`.
 */
export function openAuditLog(options: AuditLogOptions): AuditLog {
  if (typeof options.origin !== 'string' || !isOrigin(options.origin)) {
    throw auditError(AUDIT_ERRORS.config, { option: 'origin' });
  }
  if (typeof options.path !== 'string' || options.path.length === 0) {
    throw auditError(AUDIT_ERRORS.config, { option: 'path' });
  }
  const settings = auditLogSettings(options);
  // The lock first: nothing is read to append from (the tree's frontier) before this process is the
  // only one that can append.
  const lock = options.path === ':memory:' ? null : lockAuditWriter(options.path);
  let db: ReturnType<typeof openAuditDatabase>;
  try {
    db = openAuditDatabase(options.path);
  } catch (err) {
    lock?.release();
    throw err;
  }
  try {
    return new SqliteAuditLog(new AuditStore(db), options, settings, lock);
  } catch (err) {
    db.close();
    lock?.release();
    throw err;
  }
}

class SqliteAuditLog implements AuditLog {
  readonly origin: string;
  readonly verifierKey: string;
  readonly #store: AuditStore;
  readonly #key: LogSigningKey;
  readonly #now: () => number;
  readonly #settings: Settings;
  #frontier: Frontier;
  #latest: CheckpointRow | null;
  #queue: Pending[] = [];
  #queuedEvents = 0;
  #scheduled: NodeJS.Immediate | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  readonly #onError: (err: Error) => void;
  readonly #lock: AuditWriterLock | null;
  #stats = { commits: 0, committedEvents: 0, duplicates: 0, lastBatchEvents: 0, checkpoints: 0, checkpointFailures: 0 };

  constructor(store: AuditStore, options: AuditLogOptions, settings: Settings, lock: AuditWriterLock | null) {
    this.#store = store;
    this.#lock = lock;
    this.origin = options.origin;
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError ?? (() => {});
    this.#settings = settings;
    const now = this.#now();
    this.#key = store.transaction(() => {
      const origin = store.meta('origin');
      if (origin === null) store.setMeta('origin', options.origin);
      else if (origin !== options.origin) {
        throw auditError(AUDIT_ERRORS.schema, { reason: 'origin', stored: origin });
      }
      return loadOrCreateSigningKey(store, options.origin, options.kek, now);
    });
    this.verifierKey = this.#key.verifierKey;

    const size = store.leafCount();
    if (store.entryCount() !== size) {
      throw auditError(AUDIT_ERRORS.tampered, { reason: 'entries_and_tree_differ', entries: store.entryCount(), size });
    }
    this.#frontier = Frontier.fromSource(store.source(), size);
    this.#latest = store.latestCheckpoint();
    if (this.#latest !== null) this.#checkLatest(this.#latest, size);
    // Recorded once every check passed, so that a writer refused by the lock can name this one.
    if (lock !== null) store.transaction(() => store.setMeta(WRITER_META_KEY, JSON.stringify(currentWriterHolder())));

    if (settings.checkpointIntervalMs > 0) {
      this.#timer = setInterval(() => {
        if (this.#latest === null || this.#frontier.size > this.#latest.size) this.#tryCheckpoint();
      }, settings.checkpointIntervalMs);
      this.#timer.unref();
    }
  }

  #checkLatest(latest: CheckpointRow, size: number): void {
    checkLatestCheckpoint(latest, size, this.origin, this.#key.publicKey);
    checkLatestRoot(latest, rootAt(this.#store.source(), latest.size));
  }

  size(): number {
    return this.#frontier.size;
  }

  /**
   * Inside a write transaction (BEGIN IMMEDIATE: no other connection writes until it ends): the stored
   * tree must still end where the frontier does. The writer lock keeps other processes from appending,
   * but one that takes no lock (a hand-run sqlite3, a lock file removed under a running writer) could
   * have; a tree extended from a stale frontier would store nodes over the wrong leaves, so the log
   * refuses to write (AUDIT_ERR_LOCKED) rather than trust its memory. Two index lookups per commit.
   */
  #checkStoredTree(): void {
    const leaves = this.#store.leafCount();
    const entries = this.#store.entryCount();
    if (leaves !== this.#frontier.size || entries !== this.#frontier.size) {
      throw auditError(AUDIT_ERRORS.locked, { reason: 'tree_moved', size: this.#frontier.size, leaves, entries });
    }
  }

  append(events: readonly unknown[]): Promise<AppendReceipt[]> {
    const items = admitEvents(events, this.#closed, this.#queuedEvents, this.#settings.maxQueuedEvents);
    if (items instanceof Error) return Promise.reject(items);
    if (items.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#queue.push({ items, resolve, reject });
      this.#queuedEvents += items.length;
      // setImmediate: every append made in this turn of the event loop (and every message read from
      // the network in it) joins the same transaction: one fsync for all of them.
      this.#scheduled ??= setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    this.#scheduled = null;
    const { batch, events } = takeBatch(this.#queue, this.#settings.maxBatchEvents);
    this.#queuedEvents -= events;
    this.#commit(batch);
    if (this.#queue.length > 0) this.#scheduled ??= setImmediate(() => this.#flush());
  }

  /**
   * One transaction for the whole batch. Each event is inserted unless its id is known (INSERT … ON
   * CONFLICT DO NOTHING: no lookup on the hot path); a known id is looked up and compared. A conflict
   * undoes what its request inserted (rows deleted, frontier restored) and fails that request only.
   */
  #commit(batch: Pending[]): void {
    const snapshot = this.#frontier.clone();
    const store = this.#store;
    const outcomes: (AppendReceipt[] | Error)[] = [];
    let written = 0;
    let duplicates = 0;
    try {
      store.transaction(() => {
        this.#checkStoredTree();
        const inBatch = new Map<string, { index: number; bytes: Buffer }>();
        for (const request of batch) {
          const before = this.#frontier.clone();
          const receipts: AppendReceipt[] = [];
          const added: string[] = [];
          const nodes: [number, number][] = [];
          let conflict: Error | null = null;
          for (const item of request.items) {
            const prior = inBatch.get(item.id);
            if (prior === undefined && store.insertEntryIfNew(this.#frontier.size, item.id, item.bytes, item.leaf)) {
              const index = this.#frontier.size;
              for (const node of this.#frontier.push(item.leaf)) {
                store.insertNode(node.level, node.index, node.hash);
                nodes.push([node.level, node.index]);
              }
              inBatch.set(item.id, { index, bytes: item.bytes });
              added.push(item.id);
              receipts.push({ eventId: item.id, index, duplicate: false });
              continue;
            }
            const known = prior ?? storedAsPrior(store.entryByEventId(item.id));
            if (known === null || !known.bytes.equals(item.bytes)) {
              conflict = auditError(AUDIT_ERRORS.conflict, { eventId: item.id });
              break;
            }
            receipts.push({ eventId: item.id, index: known.index, duplicate: true });
          }
          if (conflict !== null) {
            for (const [level, index] of nodes) store.deleteNode(level, index);
            for (const id of added) {
              store.deleteEntry(inBatch.get(id)!.index);
              inBatch.delete(id);
            }
            this.#frontier = before;
            outcomes.push(conflict);
            continue;
          }
          written += added.length;
          duplicates += receipts.length - added.length;
          outcomes.push(receipts);
        }
      });
    } catch (cause) {
      this.#frontier = snapshot;
      const err = isRampartError(cause) ? cause : auditError(AUDIT_ERRORS.storage, { reason: 'commit' }, cause);
      for (const request of batch) request.reject(err);
      return;
    }
    this.#stats.commits++;
    this.#stats.committedEvents += written;
    this.#stats.duplicates += duplicates;
    this.#stats.lastBatchEvents = written;
    batch.forEach((request, i) => {
      const outcome = outcomes[i]!;
      if (outcome instanceof Error) request.reject(outcome);
      else request.resolve(outcome);
    });
  }

  #sign(now: number): CheckpointRow {
    const size = this.#frontier.size;
    const root = this.#frontier.root();
    const note = signCheckpoint({ origin: this.origin, size, root }, this.#key.signer);
    const row: CheckpointRow = { size, root, note, createdAt: now };
    this.#store.transaction(() => {
      this.#checkStoredTree();
      this.#store.insertCheckpoint(row);
    });
    this.#latest = row;
    this.#stats.checkpoints++;
    return row;
  }

  checkpoint(): SignedCheckpoint {
    if (this.#closed) throw auditError(AUDIT_ERRORS.closed);
    if (this.#latest !== null && this.#latest.size === this.#frontier.size) return toSigned(this.#latest);
    try {
      return toSigned(this.#sign(this.#now()));
    } catch (cause) {
      throw isRampartError(cause) ? cause : auditError(AUDIT_ERRORS.storage, { reason: 'checkpoint' }, cause);
    }
  }

  #tryCheckpoint(): void {
    try {
      this.checkpoint();
    } catch (err) {
      // The next period tries again; meanwhile the unsigned tail grows, which someone must know.
      this.#stats.checkpointFailures++;
      this.#onError(err as Error);
    }
  }

  latestCheckpoint(): SignedCheckpoint | null {
    return this.#latest === null ? null : toSigned(this.#latest);
  }

  #coveringCheckpoint(size: number): CheckpointRow {
    const covering = this.#store.checkpointCovering(size);
    if (covering !== null) return covering;
    const now = this.#now();
    refuseEarlyCheckpoint(this.#latest, now, this.#settings.minCheckpointIntervalMs);
    return this.#sign(now);
  }

  proveInclusion(eventIdOrIndex: string | number): InclusionProofResult {
    if (this.#closed) throw auditError(AUDIT_ERRORS.closed);
    const row =
      typeof eventIdOrIndex === 'number'
        ? Number.isSafeInteger(eventIdOrIndex)
          ? this.#store.entryAt(eventIdOrIndex)
          : null
        : this.#store.entryByEventId(String(eventIdOrIndex));
    if (row === null || row.index >= this.#frontier.size)
      throw auditError(AUDIT_ERRORS.range, { reason: 'unknown_event' });
    const checkpoint = this.#coveringCheckpoint(row.index + 1);
    const proof = inclusionProof(this.#store.source(), row.index, checkpoint.size).map((h) => Buffer.from(h));
    return { checkpoint: toSigned(checkpoint), index: row.index, leafHash: row.leafHash, proof };
  }

  proveConsistency(fromSize: number): ConsistencyProofResult {
    if (this.#closed) throw auditError(AUDIT_ERRORS.closed);
    const latest = consistencyTarget(this.#latest, fromSize);
    const proof = consistencyProof(this.#store.source(), fromSize, latest.size).map((h) => Buffer.from(h));
    return { checkpoint: toSigned(latest), fromSize, proof };
  }

  entry(index: number): LoggedEvent | null {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.#frontier.size) return null;
    const row = this.#store.entryAt(index);
    return row === null ? null : { index, event: parseAuditEntry(row.entry) };
  }

  stats(): AuditLogStats {
    return { size: this.#frontier.size, queuedEvents: this.#queuedEvents, ...this.#stats };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    while (this.#queue.length > 0) this.#flush();
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    try {
      if (this.#latest === null || this.#latest.size !== this.#frontier.size) this.#sign(this.#now());
    } finally {
      try {
        this.#store.db.close();
      } finally {
        // Only once nothing more can be written through this connection.
        this.#lock?.release();
      }
    }
  }
}
