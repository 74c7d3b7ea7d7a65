import pg from 'pg';
import { parseAuditEntry } from '../../core/audit-event.ts';
import { isRampartError } from '../../core/errors.ts';
import { signCheckpoint } from './checkpoint.ts';
import type { CheckpointRow } from './database.ts';
import { AUDIT_ERRORS, auditError } from './errors.ts';
import { withFetchedNodes } from './fetched-source.ts';
import {
  type AnyAuditLog,
  type AppendReceipt,
  type AuditLogOptions,
  type AuditLogStats,
  admitEvents,
  auditLogSettings,
  type ConsistencyProofResult,
  checkLatestCheckpoint,
  checkLatestRoot,
  consistencyTarget,
  type InclusionProofResult,
  type LoggedEvent,
  type Pending,
  refuseEarlyCheckpoint,
  type Settings,
  type SignedCheckpoint,
  takeBatch,
  toSigned,
} from './log.ts';
import { consistencyProof, Frontier, inclusionProof, rootAt } from './merkle.ts';
import {
  openPostgresAuditDatabase,
  type PostgresAuditDatabase,
  PostgresAuditQueries,
  type PostgresAuditTarget,
} from './postgres-database.ts';
import { createSigningKey, type LogSigningKey, unwrapSigningKey } from './signing-key.ts';

/**
 * The audit log on PostgreSQL: the same tree, checkpoints, proofs and checks as the SQLite log
 * (log.ts), with every read and write a round trip, so the calls that touch storage return promises.
 *
 * Writes go through one connection, one transaction at a time (the writer chain below): a batch of
 * appends, or a checkpoint. Appends that arrive while a transaction is in flight wait in the queue and
 * all go into the next one (group commit: one COMMIT, one WAL flush, for everything that arrived during
 * the previous round trip). The in-memory frontier runs ahead of the database only inside the writer's
 * transaction; `size()`, proofs and reads use the committed size.
 */

/** Options of {@link openPostgresAuditLog}: those of the SQLite log, with the database instead of a file. */
export type PostgresAuditLogOptions = Omit<AuditLogOptions, 'path'> & { postgres: PostgresAuditTarget };

/** The PostgreSQL log: {@link AnyAuditLog} with its storage calls as promises. */
export interface PostgresAuditLog extends AnyAuditLog {
  /** Signs a checkpoint at the committed size unless the latest already has it (then returns that). */
  checkpoint(): Promise<SignedCheckpoint>;
  proveInclusion(eventIdOrIndex: string | number): Promise<InclusionProofResult>;
  proveConsistency(fromSize: number): Promise<ConsistencyProofResult>;
  entry(index: number): Promise<LoggedEvent | null>;
}

function storageError(cause: unknown, reason: string): Error {
  return isRampartError(cause) ? cause : auditError(AUDIT_ERRORS.storage, { reason }, cause);
}

/**
 * Opens (creating on first start) the log in PostgreSQL. The same checks at open as `openAuditLog`
 * (schema and origin, the signing key unwrapped with the KEK, the stored tree against the latest
 * signed checkpoint), plus the writer lock: AUDIT_ERR_LOCKED while another process has this log open.
 */
export async function openPostgresAuditLog(options: PostgresAuditLogOptions): Promise<PostgresAuditLog> {
  const settings = auditLogSettings(options);
  if (options.postgres === null || typeof options.postgres !== 'object') {
    throw auditError(AUDIT_ERRORS.config, { option: 'postgres' });
  }
  const db = await openPostgresAuditDatabase(options.postgres);
  try {
    const now = (options.now ?? Date.now)();
    const writer = new PostgresAuditQueries(db.writer);
    const key = await inTransaction(db, async () => {
      const origin = await writer.meta('origin');
      if (origin === null) await writer.setMeta('origin', options.origin);
      else if (origin !== options.origin) throw auditError(AUDIT_ERRORS.schema, { reason: 'origin', stored: origin });
      const active = (await writer.signingKeys()).find((k) => k.state === 'active');
      if (active !== undefined) return unwrapSigningKey(active, options.origin, options.kek);
      const created = createSigningKey(options.origin, options.kek, now);
      await writer.insertSigningKey(created.row);
      return created.key;
    });
    const { frontier, latest } = await loadTree(writer, options.origin, key.publicKey);
    return new PgAuditLog(db, options, settings, key, frontier, latest);
  } catch (err) {
    await db.close();
    throw storageError(err, 'open');
  }
}

async function inTransaction<T>(db: PostgresAuditDatabase, fn: () => Promise<T>): Promise<T> {
  await db.writer.query('BEGIN');
  let result: T;
  try {
    result = await fn();
    await db.writer.query('COMMIT');
  } catch (err) {
    // The transaction may already be gone (a dropped connection).
    await db.writer.query('ROLLBACK').catch(() => {});
    throw err;
  }
  return result;
}

/**
 * The stored tree as the log continues it: its frontier and latest checkpoint, after the checks at
 * open (entries and tree agree in size; the latest checkpoint is this log's, not beyond the tree, and
 * its root is the stored tree's). Also run after a lost writer connection, on the new one.
 */
async function loadTree(
  writer: PostgresAuditQueries,
  origin: string,
  publicKey: Buffer,
): Promise<{ frontier: Frontier; latest: CheckpointRow | null }> {
  const size = await writer.leafCount();
  const entries = await writer.entryCount();
  if (entries !== size) throw auditError(AUDIT_ERRORS.tampered, { reason: 'entries_and_tree_differ', entries, size });
  const frontier = await withFetchedNodes(writer.nodes, (source) => Frontier.fromSource(source, size));
  const latest = await writer.latestCheckpoint();
  if (latest !== null) {
    checkLatestCheckpoint(latest, size, origin, publicKey);
    checkLatestRoot(latest, await withFetchedNodes(writer.nodes, (source) => rootAt(source, latest.size)));
  }
  return { frontier, latest };
}

class PgAuditLog implements PostgresAuditLog {
  readonly origin: string;
  readonly verifierKey: string;
  readonly #db: PostgresAuditDatabase;
  #writer: PostgresAuditQueries;
  readonly #reader: PostgresAuditQueries;
  readonly #key: LogSigningKey;
  readonly #now: () => number;
  readonly #settings: Settings;
  readonly #onError: (err: Error) => void;
  /** Runs ahead of `#committed` only inside the writer's transaction. */
  #frontier: Frontier;
  #committed: number;
  #latest: CheckpointRow | null;
  #queue: Pending[] = [];
  #queuedEvents = 0;
  #scheduled: NodeJS.Immediate | null = null;
  #flushing: Promise<void> | null = null;
  /** The end of the writer chain: the next write starts when it settles. */
  #writerTail: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /**
   * Set when the writer connection is lost, and the writer lock with it: the next write first connects
   * again, takes the lock again and reloads the tree (another process may have written meanwhile).
   */
  #writerLost = false;
  #stats = { commits: 0, committedEvents: 0, duplicates: 0, lastBatchEvents: 0, checkpoints: 0, checkpointFailures: 0 };

  constructor(
    db: PostgresAuditDatabase,
    options: PostgresAuditLogOptions,
    settings: Settings,
    key: LogSigningKey,
    frontier: Frontier,
    latest: CheckpointRow | null,
  ) {
    this.#db = db;
    this.#writer = new PostgresAuditQueries(db.writer);
    this.#reader = new PostgresAuditQueries(db.pool);
    this.origin = options.origin;
    this.verifierKey = key.verifierKey;
    this.#key = key;
    this.#now = options.now ?? Date.now;
    this.#settings = settings;
    this.#onError = options.onError ?? (() => {});
    this.#frontier = frontier;
    this.#committed = frontier.size;
    this.#latest = latest;
    this.#watch(db.writer);
    if (settings.checkpointIntervalMs > 0) {
      this.#timer = setInterval(() => {
        if (this.#latest === null || this.#committed > this.#latest.size) void this.#tryCheckpoint();
      }, settings.checkpointIntervalMs);
      this.#timer.unref();
    }
  }

  /** Notes the loss of `client` while it is the writer (the server restarted, the network broke). */
  #watch(client: pg.Client): void {
    const lost = (cause?: unknown) => {
      if (client === this.#db.writer) this.#markLost(cause);
    };
    client.on('error', lost);
    client.on('end', () => lost());
  }

  #markLost(cause?: unknown): void {
    if (this.#closed || this.#writerLost) return;
    this.#writerLost = true;
    this.#onError(auditError(AUDIT_ERRORS.storage, { reason: 'writer_connection_lost' }, cause));
  }

  /**
   * After a failed write: unless the server refused a statement on a live session, the connection is
   * treated as lost even before it says so (a COMMIT cut off may or may not have committed: only the
   * database can say, so the tree is reloaded from it before the next write).
   */
  #afterFailure(cause: unknown): void {
    const sqlState = cause instanceof pg.DatabaseError ? String(cause.code ?? '') : '';
    const statementRefused = sqlState !== '' && !sqlState.startsWith('08') && !sqlState.startsWith('57P');
    if (!statementRefused) this.#markLost(cause);
  }

  /**
   * Before a write, inside the writer chain: after a lost connection, a new one holding the writer
   * lock, and the tree as stored (a batch whose COMMIT was cut off may or may not be in it; its
   * callers were refused and retry, and what was stored answers as duplicates).
   */
  async #ensureWriter(): Promise<void> {
    if (!this.#writerLost) return;
    const client = await this.#db.reconnectWriter((c) => this.#watch(c));
    this.#writer = new PostgresAuditQueries(client);
    const { frontier, latest } = await loadTree(this.#writer, this.origin, this.#key.publicKey);
    this.#frontier = frontier;
    this.#committed = frontier.size;
    this.#latest = latest;
    this.#writerLost = false;
  }

  size(): number {
    return this.#committed;
  }

  append(events: readonly unknown[]): Promise<AppendReceipt[]> {
    const items = admitEvents(events, this.#closed, this.#queuedEvents, this.#settings.maxQueuedEvents);
    if (items instanceof Error) return Promise.reject(items);
    if (items.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#queue.push({ items, resolve, reject });
      this.#queuedEvents += items.length;
      // Every append of this event-loop turn joins the batch; while a transaction is in flight the
      // flush loop below picks up whatever queued meanwhile as soon as it commits.
      if (this.#flushing === null) this.#scheduled ??= setImmediate(() => this.#startFlushing());
    });
  }

  /** Runs `fn` after every earlier write: one writer transaction at a time. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#writerTail.then(fn);
    this.#writerTail = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  #startFlushing(): void {
    this.#scheduled = null;
    this.#flushing ??= this.#flushAll().finally(() => {
      this.#flushing = null;
      // An append made between the loop's last look at the queue and now saw a flush running.
      if (this.#queue.length > 0 && !this.#closed) this.#scheduled ??= setImmediate(() => this.#startFlushing());
    });
  }

  async #flushAll(): Promise<void> {
    while (this.#queue.length > 0) {
      await this.#exclusive(async () => {
        const batch = this.#takeBatch();
        if (batch.length > 0) await this.#commit(batch);
      });
    }
  }

  #takeBatch(): Pending[] {
    const { batch, events } = takeBatch(this.#queue, this.#settings.maxBatchEvents);
    this.#queuedEvents -= events;
    return batch;
  }

  /**
   * One transaction for the batch: look up which of its event ids are stored (one query; the writer
   * lock means nobody else inserts meanwhile), decide every request in memory (new, duplicate, or a
   * conflict that fails that request only and rolls the frontier back to before it), then insert all
   * new entries and completed tree nodes in two statements, and COMMIT. Nothing resolves before the
   * COMMIT returned.
   */
  async #commit(batch: Pending[]): Promise<void> {
    try {
      await this.#ensureWriter();
    } catch (cause) {
      const err = storageError(cause, 'reconnect');
      for (const request of batch) request.reject(err);
      return;
    }
    const snapshot = this.#frontier.clone();
    const outcomes: (AppendReceipt[] | Error)[] = [];
    let written = 0;
    let duplicates = 0;
    try {
      await this.#db.writer.query('BEGIN');
      const ids = [...new Set(batch.flatMap((request) => request.items.map((item) => item.id)))];
      const stored = await this.#writer.entriesByEventIds(ids);
      const inBatch = new Map<string, { index: number; bytes: Buffer }>();
      const entries: { index: number; eventId: string; bytes: Buffer; leaf: Buffer }[] = [];
      const nodes: { level: number; index: number; hash: Buffer }[] = [];
      for (const request of batch) {
        const before = this.#frontier.clone();
        const receipts: AppendReceipt[] = [];
        const added: { index: number; eventId: string; bytes: Buffer; leaf: Buffer }[] = [];
        const addedNodes: { level: number; index: number; hash: Buffer }[] = [];
        let conflict: Error | null = null;
        for (const item of request.items) {
          const known = inBatch.get(item.id) ?? stored.get(item.id);
          if (known === undefined) {
            const index = this.#frontier.size;
            addedNodes.push(...this.#frontier.push(item.leaf));
            inBatch.set(item.id, { index, bytes: item.bytes });
            added.push({ index, eventId: item.id, bytes: item.bytes, leaf: item.leaf });
            receipts.push({ eventId: item.id, index, duplicate: false });
          } else if (known.bytes.equals(item.bytes)) {
            receipts.push({ eventId: item.id, index: known.index, duplicate: true });
          } else {
            conflict = auditError(AUDIT_ERRORS.conflict, { eventId: item.id });
            break;
          }
        }
        if (conflict !== null) {
          for (const entry of added) inBatch.delete(entry.eventId);
          this.#frontier = before;
          outcomes.push(conflict);
          continue;
        }
        entries.push(...added);
        nodes.push(...addedNodes);
        written += added.length;
        duplicates += receipts.length - added.length;
        outcomes.push(receipts);
      }
      await this.#writer.insertAppended(entries, nodes);
      await this.#db.writer.query('COMMIT');
    } catch (cause) {
      this.#frontier = snapshot;
      this.#afterFailure(cause);
      await this.#db.writer.query('ROLLBACK').catch(() => {});
      const err = storageError(cause, 'commit');
      for (const request of batch) request.reject(err);
      return;
    }
    this.#committed = this.#frontier.size;
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

  /** Signs and stores a checkpoint at the committed size; only inside the writer chain. */
  async #sign(now: number): Promise<CheckpointRow> {
    const size = this.#frontier.size;
    const root = this.#frontier.root();
    const note = signCheckpoint({ origin: this.origin, size, root }, this.#key.signer);
    const row: CheckpointRow = { size, root, note, createdAt: now };
    try {
      await this.#writer.insertCheckpoint(row);
    } catch (cause) {
      this.#afterFailure(cause);
      throw storageError(cause, 'checkpoint');
    }
    this.#latest = row;
    this.#stats.checkpoints++;
    return row;
  }

  checkpoint(): Promise<SignedCheckpoint> {
    if (this.#closed) return Promise.reject(auditError(AUDIT_ERRORS.closed));
    return this.#exclusive(async () => {
      await this.#ensureWriter();
      if (this.#latest !== null && this.#latest.size === this.#frontier.size) return toSigned(this.#latest);
      return toSigned(await this.#sign(this.#now()));
    });
  }

  async #tryCheckpoint(): Promise<void> {
    try {
      await this.checkpoint();
    } catch (err) {
      // The next period tries again; meanwhile the unsigned tail grows, which someone must know.
      this.#stats.checkpointFailures++;
      this.#onError(err as Error);
    }
  }

  latestCheckpoint(): SignedCheckpoint | null {
    return this.#latest === null ? null : toSigned(this.#latest);
  }

  async #coveringCheckpoint(size: number): Promise<CheckpointRow> {
    const covering = await this.#reader.checkpointCovering(size);
    if (covering !== null) return covering;
    return this.#exclusive(async () => {
      await this.#ensureWriter();
      // Another caller may have signed one while this one waited for the writer.
      if (this.#latest !== null && this.#latest.size >= size) return this.#latest;
      const now = this.#now();
      refuseEarlyCheckpoint(this.#latest, now, this.#settings.minCheckpointIntervalMs);
      return this.#sign(now);
    });
  }

  async proveInclusion(eventIdOrIndex: string | number): Promise<InclusionProofResult> {
    if (this.#closed) throw auditError(AUDIT_ERRORS.closed);
    try {
      const row =
        typeof eventIdOrIndex === 'number'
          ? Number.isSafeInteger(eventIdOrIndex) && eventIdOrIndex >= 0
            ? await this.#reader.entryAt(eventIdOrIndex)
            : null
          : await this.#reader.entryByEventId(String(eventIdOrIndex));
      if (row === null || row.index >= this.#committed)
        throw auditError(AUDIT_ERRORS.range, { reason: 'unknown_event' });
      const checkpoint = await this.#coveringCheckpoint(row.index + 1);
      const proof = await withFetchedNodes(this.#reader.nodes, (source) =>
        inclusionProof(source, row.index, checkpoint.size).map((h) => Buffer.from(h)),
      );
      return { checkpoint: toSigned(checkpoint), index: row.index, leafHash: row.leafHash, proof };
    } catch (cause) {
      throw storageError(cause, 'read');
    }
  }

  async proveConsistency(fromSize: number): Promise<ConsistencyProofResult> {
    if (this.#closed) throw auditError(AUDIT_ERRORS.closed);
    const latest = consistencyTarget(this.#latest, fromSize);
    try {
      const proof = await withFetchedNodes(this.#reader.nodes, (source) =>
        consistencyProof(source, fromSize, latest.size).map((h) => Buffer.from(h)),
      );
      return { checkpoint: toSigned(latest), fromSize, proof };
    } catch (cause) {
      throw storageError(cause, 'read');
    }
  }

  async entry(index: number): Promise<LoggedEvent | null> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.#committed) return null;
    let row: Awaited<ReturnType<PostgresAuditQueries['entryAt']>>;
    try {
      row = await this.#reader.entryAt(index);
    } catch (cause) {
      throw storageError(cause, 'read');
    }
    return row === null ? null : { index, event: parseAuditEntry(row.entry) };
  }

  stats(): AuditLogStats {
    return { size: this.#committed, queuedEvents: this.#queuedEvents, ...this.#stats };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    if (this.#scheduled !== null) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    try {
      await this.#flushing;
      while (this.#queue.length > 0) await this.#flushAll();
      await this.#exclusive(async () => {
        await this.#ensureWriter();
        if (this.#latest === null || this.#latest.size !== this.#frontier.size) await this.#sign(this.#now());
      });
    } finally {
      // Ending the writer's session releases the writer lock.
      await this.#db.close();
    }
  }
}
