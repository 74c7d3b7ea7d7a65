import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { applyVersionedSchema, useDurableJournal } from '../../core/durable-sqlite.ts';
import { AUDIT_DEFAULTS } from './defaults.ts';
import { AUDIT_ERRORS, auditError } from './errors.ts';
import type { SubtreeSource } from './merkle.ts';

/**
 * The audit log's durable state: one SQLite file (DESIGN.md "Storage": WAL, `synchronous=FULL`, since
 * a lost acknowledged event is not acceptable).
 *
 * Layout, and why:
 * - `entries`: one row per event: leaf index, event id (UNIQUE: exactly-once delivery deduplicates by
 *   it), the canonical bytes, and the leaf hash. The bytes are the record; everything else is derived
 *   from them and checked by the verifier.
 * - `tree_nodes`: the hash of every perfect, aligned subtree, level 0 (leaves) included, keyed by
 *   (level, index) in a WITHOUT ROWID table. Append writes each node once when its subtree completes
 *   (n − popcount(n) interior nodes in all: one more row per event on average); any subtree hash an
 *   RFC 9162 proof needs is one primary-key lookup, so proofs and roots at any size cost O(log n)
 *   lookups. Level 0 is kept here as well as in `entries` so that moving, deleting or inserting whole
 *   entry rows (hash column and all) still disagrees with the tree at the exact index.
 *   Alternatives weighed: leaves only (proofs O(n): too slow at a million entries), 8-level tiles as in
 *   C2SP tlog-tiles (fewer rows, but partial tiles are rewritten on every append: more bytes written
 *   per event and a format nobody here reads).
 * - `checkpoints`: every signed checkpoint (C2SP tlog-checkpoint note), by tree size.
 * - `signing_keys`: the log's Ed25519 key: public key in clear, private key wrapped by the KEK.
 * - `meta`: schema version and the log's origin.
 */

/** Version of the schema below. */
export const AUDIT_SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS entries (
  idx INTEGER PRIMARY KEY CHECK (idx >= 0),
  event_id TEXT NOT NULL UNIQUE,
  entry BLOB NOT NULL,
  leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
) STRICT;

CREATE TABLE IF NOT EXISTS tree_nodes (
  level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 52),
  idx INTEGER NOT NULL CHECK (idx >= 0),
  hash BLOB NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS checkpoints (
  size INTEGER PRIMARY KEY CHECK (size >= 0),
  root BLOB NOT NULL CHECK (length(root) = 32),
  note TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS signing_keys (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  key_id TEXT NOT NULL CHECK (length(key_id) = 8),
  public_key BLOB NOT NULL CHECK (length(public_key) = 32),
  wrapped_key BLOB,
  state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
  created_at INTEGER NOT NULL,
  UNIQUE (name, key_id)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
`;

/** Options of {@link openAuditDatabase}. */
export interface OpenAuditDatabaseOptions {
  /** Open for reading only (the verifier and the CLI): no schema is created, nothing is written. */
  readOnly?: boolean;
}

/**
 * Opens (creating if needed, unless read-only) the audit database with its pragmas and schema. In a
 * launched process `node:sqlite` is the launcher's guarded module (data directory only).
 */
export function openAuditDatabase(path: string, options: OpenAuditDatabaseOptions = {}): DatabaseSync {
  const readOnly = options.readOnly === true;
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { readOnly, timeout: AUDIT_DEFAULTS.busyTimeoutMs });
  } catch (cause) {
    throw auditError(AUDIT_ERRORS.storage, { reason: 'open', path }, cause);
  }
  try {
    if (readOnly) {
      checkSchema(db);
      return db;
    }
    // WAL + synchronous=FULL: the verifier and the CLI read while the log writes, and an acknowledged
    // event survives a crash or power loss.
    const kept = useDurableJournal(db, path);
    if (kept !== null) throw auditError(AUDIT_ERRORS.schema, { reason: 'journal_mode', got: kept });
    applyVersionedSchema(db, {
      sql: SCHEMA,
      version: AUDIT_SCHEMA_VERSION,
      onMismatch: (found) => {
        throw auditError(AUDIT_ERRORS.schema, { found, expected: AUDIT_SCHEMA_VERSION });
      },
    });
    return db;
  } catch (err) {
    db.close();
    if (err instanceof Error && 'code' in err && String(err.code).startsWith('AUDIT_ERR_')) throw err;
    throw auditError(AUDIT_ERRORS.storage, { reason: 'open', path }, err);
  }
}

function checkSchema(db: DatabaseSync): void {
  let row: { value: string } | undefined;
  try {
    row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
  } catch (cause) {
    throw auditError(AUDIT_ERRORS.schema, { reason: 'not_an_audit_database' }, cause);
  }
  if (row === undefined || Number(row.value) !== AUDIT_SCHEMA_VERSION) {
    throw auditError(AUDIT_ERRORS.schema, { found: row?.value ?? null, expected: AUDIT_SCHEMA_VERSION });
  }
}

/** A stored checkpoint row. */
export interface CheckpointRow {
  size: number;
  root: Buffer;
  note: string;
  createdAt: number;
}

/** A stored signing key row. */
export interface SigningKeyRow {
  name: string;
  keyId: string;
  publicKey: Buffer;
  wrappedKey: Buffer | null;
  state: 'active' | 'retired';
  createdAt: number;
}

/** One stored entry. */
export interface EntryRow {
  index: number;
  eventId: string;
  entry: Buffer;
  leafHash: Buffer;
}

const asBuffer = (value: unknown): Buffer => Buffer.from(value as Uint8Array);

/**
 * Typed statements over the audit tables. Every write runs inside a transaction the caller opens;
 * nothing here awaits, so no other code in the process can interleave with a transaction.
 */
export class AuditStore {
  readonly db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  #stmt(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  meta(key: string): string | null {
    const row = this.#stmt('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.#stmt(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ).run(key, value);
  }

  /** Entries stored (the highest index + 1; the verifier checks there are no gaps). */
  entryCount(): number {
    const row = this.#stmt('SELECT max(idx) AS top FROM entries').get() as { top: number | null };
    return row.top === null ? 0 : Number(row.top) + 1;
  }

  /** Leaves in the tree (the highest level-0 index + 1). */
  leafCount(): number {
    const row = this.#stmt('SELECT max(idx) AS top FROM tree_nodes WHERE level = 0').get() as { top: number | null };
    return row.top === null ? 0 : Number(row.top) + 1;
  }

  entryByEventId(eventId: string): EntryRow | null {
    const row = this.#stmt('SELECT idx, event_id, entry, leaf_hash FROM entries WHERE event_id = ?').get(eventId);
    return row === undefined ? null : toEntry(row);
  }

  entryAt(index: number): EntryRow | null {
    const row = this.#stmt('SELECT idx, event_id, entry, leaf_hash FROM entries WHERE idx = ?').get(index);
    return row === undefined ? null : toEntry(row);
  }

  /** Inserts the entry unless its event id is already stored; true when inserted. */
  insertEntryIfNew(index: number, eventId: string, entry: Uint8Array, leaf: Uint8Array): boolean {
    const result = this.#stmt(
      'INSERT INTO entries (idx, event_id, entry, leaf_hash) VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING',
    ).run(index, eventId, entry, leaf);
    return Number(result.changes) === 1;
  }

  /** Undo of an insert inside the same transaction (a request that turned out to conflict). */
  deleteEntry(index: number): void {
    this.#stmt('DELETE FROM entries WHERE idx = ?').run(index);
  }

  deleteNode(level: number, index: number): void {
    this.#stmt('DELETE FROM tree_nodes WHERE level = ? AND idx = ?').run(level, index);
  }

  insertNode(level: number, index: number, hash: Uint8Array): void {
    this.#stmt('INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)').run(level, index, hash);
  }

  node(level: number, index: number): Buffer | null {
    const row = this.#stmt('SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?').get(level, index) as
      | { hash: Uint8Array }
      | undefined;
    return row === undefined ? null : asBuffer(row.hash);
  }

  /** The stored tree as a proof source; a missing node is a damaged store (AUDIT_ERR_TAMPERED). */
  source(): SubtreeSource {
    return {
      perfect: (level, index) => {
        const hash = this.node(level, index);
        if (hash === null) throw auditError(AUDIT_ERRORS.tampered, { reason: 'missing_node', level, index });
        return hash;
      },
    };
  }

  insertCheckpoint(row: CheckpointRow): void {
    this.#stmt('INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)').run(
      row.size,
      row.root,
      row.note,
      row.createdAt,
    );
  }

  latestCheckpoint(): CheckpointRow | null {
    const row = this.#stmt('SELECT size, root, note, created_at FROM checkpoints ORDER BY size DESC LIMIT 1').get();
    return row === undefined ? null : toCheckpoint(row);
  }

  /** Checkpoints in increasing size. */
  *checkpoints(): Generator<CheckpointRow> {
    for (const row of this.#stmt('SELECT size, root, note, created_at FROM checkpoints ORDER BY size').iterate()) {
      yield toCheckpoint(row);
    }
  }

  /** The smallest checkpoint covering `size` leaves, if any. */
  checkpointCovering(size: number): CheckpointRow | null {
    const row = this.#stmt(
      'SELECT size, root, note, created_at FROM checkpoints WHERE size >= ? ORDER BY size LIMIT 1',
    ).get(size);
    return row === undefined ? null : toCheckpoint(row);
  }

  checkpointAt(size: number): CheckpointRow | null {
    const row = this.#stmt('SELECT size, root, note, created_at FROM checkpoints WHERE size = ?').get(size);
    return row === undefined ? null : toCheckpoint(row);
  }

  signingKeys(): SigningKeyRow[] {
    return this.#stmt('SELECT name, key_id, public_key, wrapped_key, state, created_at FROM signing_keys ORDER BY id')
      .all()
      .map((row) => ({
        name: String(row.name),
        keyId: String(row.key_id),
        publicKey: asBuffer(row.public_key),
        wrappedKey: row.wrapped_key === null ? null : asBuffer(row.wrapped_key),
        state: row.state as 'active' | 'retired',
        createdAt: Number(row.created_at),
      }));
  }

  insertSigningKey(row: SigningKeyRow): void {
    this.#stmt(
      'INSERT INTO signing_keys (name, key_id, public_key, wrapped_key, state, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(row.name, row.keyId, row.publicKey, row.wrappedKey, row.state, row.createdAt);
  }

  /** KEK rotation: replaces one signing key's wrapped private key (inside the caller's transaction). */
  replaceWrappedSigningKey(name: string, keyId: string, wrappedKey: Uint8Array): void {
    const result = this.#stmt(
      'UPDATE signing_keys SET wrapped_key = ? WHERE name = ? AND key_id = ? AND wrapped_key IS NOT NULL',
    ).run(wrappedKey, name, keyId);
    if (Number(result.changes) !== 1) throw auditError(AUDIT_ERRORS.schema, { reason: 'rewrap', keyId });
  }

  /** Runs `fn` in one IMMEDIATE transaction; rolls back and rethrows on error. */
  transaction<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    let result: T;
    try {
      result = fn();
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // the transaction may already be gone (an I/O error rolls back by itself)
      }
      throw err;
    }
    try {
      this.db.exec('COMMIT');
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // as above
      }
      throw err;
    }
    return result;
  }
}

function toEntry(row: Record<string, unknown>): EntryRow {
  return {
    index: Number(row.idx),
    eventId: String(row.event_id),
    entry: asBuffer(row.entry),
    leafHash: asBuffer(row.leaf_hash),
  };
}

function toCheckpoint(row: Record<string, unknown>): CheckpointRow {
  return {
    size: Number(row.size),
    root: asBuffer(row.root),
    note: String(row.note),
    createdAt: Number(row.created_at),
  };
}
