import { chmodSync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { SECRETS_DEFAULTS } from './defaults.ts';
import { isSecretsError, SEC_ERRORS, secError } from './errors.ts';
import { type Labels, sameLabels } from './labels.ts';
import {
  bytes,
  labelRows,
  labelsFrom,
  num,
  numOrNull,
  type Row,
  rotationDue,
  secretFrom,
  VERSION_COLUMNS,
  VERSION_META_COLUMNS,
  versionFrom,
  versionMetaFrom,
} from './rows.ts';
import { SECRETS_SCHEMA_VERSION, SQLITE_SCHEMA } from './schema.ts';
import type { SecretsStore, StoreMeta } from './store.ts';

/**
 * The default store: one SQLite file (node:sqlite) in the control plane's data directory. WAL so reads
 * never wait for a writer; `synchronous=FULL` because an acknowledged secret version must survive a
 * power cut (DESIGN.md "Storage"); `secure_delete` so overwritten wrapped keys (KEK rotation) do not
 * linger in free pages. Every write is one `BEGIN IMMEDIATE` transaction with no await inside, so two
 * operations of this process never interleave in one transaction, and another process waits on the lock.
 */
export interface SqliteStoreOptions {
  /** Database file, or `:memory:` (tests). Created with mode 0600. */
  path: string;
  busyTimeoutMs?: number;
}

export function openSqliteSecretsStore(options: SqliteStoreOptions): SecretsStore {
  const { path } = options;
  if (typeof path !== 'string' || path === '') throw secError(SEC_ERRORS.config, { reason: 'sqlite path' });
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path);
  } catch (cause) {
    throw secError(SEC_ERRORS.store, { reason: 'open', path }, cause);
  }
  try {
    if (path !== ':memory:') chmodSync(path, 0o600);
    const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string };
    if (path !== ':memory:' && mode.journal_mode !== 'wal') {
      throw secError(SEC_ERRORS.store, { reason: 'journal_mode', got: mode.journal_mode });
    }
    db.exec('PRAGMA synchronous = FULL');
    db.exec('PRAGMA foreign_keys = ON');
    db.exec('PRAGMA secure_delete = ON');
    db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? SECRETS_DEFAULTS.sqliteBusyTimeoutMs)}`);
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(SQLITE_SCHEMA);
      const row = db.prepare('SELECT schema_version FROM store_meta WHERE id = 1').get() as Row | undefined;
      if (row === undefined) {
        db.prepare('INSERT INTO store_meta (id, schema_version) VALUES (1, ?)').run(SECRETS_SCHEMA_VERSION);
      } else if (num(row['schema_version']) !== SECRETS_SCHEMA_VERSION) {
        throw secError(SEC_ERRORS.schema, { found: row['schema_version'], expected: SECRETS_SCHEMA_VERSION });
      }
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  } catch (err) {
    db.close();
    if (isSecretsError(err)) throw err;
    throw secError(SEC_ERRORS.store, { reason: 'prepare', path }, err);
  }

  // Each statement is compiled once: compiling cost more than running the indexed read of a secret
  // (issue 6, the read on a cache miss). The SQL texts are this file's constants, so the map is bounded;
  // `get` and `all` reset the statement when they return, and close() finalizes them all.
  const statements = new Map<string, StatementSync>();
  const prepared = (sql: string): StatementSync => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
  const all = (sql: string, ...params: Array<string | number | null | Uint8Array>) =>
    prepared(sql).all(...params) as Row[];
  const get = (sql: string, ...params: Array<string | number | null | Uint8Array>) =>
    prepared(sql).get(...params) as Row | undefined;
  const run = (sql: string, ...params: Array<string | number | null | Uint8Array>) => prepared(sql).run(...params);

  /** Runs `fn` in one immediate transaction; maps database failures to SEC_ERR_STORE. */
  const transaction = <T>(fn: () => T): T => {
    guard();
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (cause) {
      throw secError(SEC_ERRORS.store, { reason: 'begin' }, cause);
    }
    try {
      const result = fn();
      db.exec('COMMIT');
      return result;
    } catch (err) {
      rollback();
      throw storeError(err);
    }
  };
  const rollback = () => {
    try {
      if (db.isTransaction) db.exec('ROLLBACK');
    } catch {
      // The transaction is already gone (SQLite rolls back by itself on some errors); nothing to undo.
    }
  };
  const read = <T>(fn: () => T): T => {
    guard();
    try {
      return fn();
    } catch (err) {
      throw storeError(err);
    }
  };
  let closed = false;
  const guard = () => {
    if (closed) throw secError(SEC_ERRORS.closed);
  };

  const labelsOf = (name: string): Labels => labelsFrom(all('SELECT label, version FROM labels WHERE name = ?', name));
  const writeLabels = (name: string, labels: Labels) => {
    run('DELETE FROM labels WHERE name = ?', name);
    for (const [label, version] of labelRows(labels)) {
      run('INSERT INTO labels (name, label, version) VALUES (?, ?, ?)', name, label, version);
    }
  };

  const store: SecretsStore = {
    kind: 'sqlite',

    async readMeta() {
      return read(() => {
        const row = get('SELECT kek_id, kek_check, wrapped_audit_key FROM store_meta WHERE id = 1');
        if (!row || row['kek_id'] === null) return null;
        return {
          kekId: String(row['kek_id']),
          kekCheck: bytes(row['kek_check']),
          wrappedAuditKey: bytes(row['wrapped_audit_key']),
        };
      });
    },

    async initMeta(meta: StoreMeta, now: number) {
      return transaction(() => {
        const changed = run(
          `UPDATE store_meta SET kek_id = ?, kek_check = ?, wrapped_audit_key = ?
           WHERE id = 1 AND kek_id IS NULL AND NOT EXISTS (SELECT 1 FROM versions)`,
          meta.kekId,
          meta.kekCheck,
          meta.wrappedAuditKey,
        ).changes;
        if (Number(changed) !== 1) return false;
        run('INSERT INTO kek_history (kek_id, activated_at) VALUES (?, ?)', meta.kekId, now);
        return true;
      });
    },

    async secret(name) {
      return read(() => {
        const row = get('SELECT * FROM secrets WHERE name = ?', name);
        return row ? secretFrom(row, labelsOf(name)) : null;
      });
    },

    async listSecrets() {
      return read(() => {
        const labels = new Map<string, Row[]>();
        for (const row of all('SELECT name, label, version FROM labels')) {
          const name = String(row['name']);
          labels.set(name, [...(labels.get(name) ?? []), row]);
        }
        return all('SELECT * FROM secrets ORDER BY name').map((row) =>
          secretFrom(row, labelsFrom(labels.get(String(row['name'])) ?? [])),
        );
      });
    },

    async versionByLabel(name, label) {
      return read(() => {
        // One statement (one snapshot), the label's version as a scalar subquery: the same two index
        // lookups as a join, at a third of the join's cost in SQLite (issue 6, the read on a cache miss).
        const row = get(
          `SELECT ${VERSION_COLUMNS} FROM versions
           WHERE name = ?1 AND version = (SELECT version FROM labels WHERE name = ?1 AND label = ?2)`,
          name,
          label,
        );
        return row ? versionFrom(row) : null;
      });
    },

    async version(name, version) {
      return read(() => {
        const row = get(`SELECT ${VERSION_COLUMNS} FROM versions WHERE name = ? AND version = ?`, name, version);
        return row ? versionFrom(row) : null;
      });
    },

    async history(name) {
      return read(() =>
        all(`SELECT ${VERSION_META_COLUMNS} FROM versions WHERE name = ? ORDER BY version`, name).map(versionMetaFrom),
      );
    },

    async commitVersion(w) {
      transaction(() => {
        const row = get('SELECT * FROM secrets WHERE name = ?', w.name);
        const latest = row ? num(row['latest_version']) : 0;
        if (latest !== w.version - 1 || !sameLabels(labelsOf(w.name), w.expectedLabels)) {
          throw secError(SEC_ERRORS.conflict, { name: w.name, version: w.version, latest });
        }
        const interval =
          w.rotationIntervalMs === undefined
            ? row
              ? numOrNull(row['rotation_interval_ms'])
              : null
            : w.rotationIntervalMs;
        const due = rotationDue(
          interval,
          row ? numOrNull(row['rotation_due_at']) : null,
          w.labels.current !== w.expectedLabels.current,
          w.createdAt,
        );
        if (row) {
          run(
            'UPDATE secrets SET latest_version = ?, updated_at = ?, rotation_interval_ms = ?, rotation_due_at = ? WHERE name = ?',
            w.version,
            w.createdAt,
            interval,
            due,
            w.name,
          );
        } else {
          run(
            `INSERT INTO secrets (name, created_by, created_at, updated_at, latest_version, rotation_interval_ms, rotation_due_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
            w.name,
            w.createdBy,
            w.createdAt,
            w.createdAt,
            w.version,
            interval,
            due,
          );
        }
        run(
          `INSERT INTO versions (name, version, format, kek_id, wrapped_key, nonce, ciphertext, created_by, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          w.name,
          w.version,
          w.format,
          w.kekId,
          w.wrappedKey,
          w.nonce,
          w.ciphertext,
          w.createdBy,
          w.createdAt,
        );
        writeLabels(w.name, w.labels);
      });
    },

    async commitLabels(w) {
      transaction(() => {
        const row = get('SELECT rotation_interval_ms, rotation_due_at FROM secrets WHERE name = ?', w.name);
        if (!row || !sameLabels(labelsOf(w.name), w.expected)) {
          throw secError(SEC_ERRORS.conflict, { name: w.name });
        }
        const due = rotationDue(
          numOrNull(row['rotation_interval_ms']),
          numOrNull(row['rotation_due_at']),
          w.next.current !== w.expected.current,
          w.now,
        );
        run('UPDATE secrets SET updated_at = ?, rotation_due_at = ? WHERE name = ?', w.now, due, w.name);
        writeLabels(w.name, w.next);
      });
    },

    async rewrapAll(rewrap, next, now) {
      return transaction(() => {
        const meta = get('SELECT kek_id FROM store_meta WHERE id = 1');
        const previous = meta ? (meta['kek_id'] as string | null) : null;
        const rows = all('SELECT name, version, wrapped_key, kek_id FROM versions ORDER BY name, version');
        const update = db.prepare('UPDATE versions SET wrapped_key = ?, kek_id = ? WHERE name = ? AND version = ?');
        for (const row of rows) {
          const name = String(row['name']);
          const version = num(row['version']);
          const wrapped = rewrap({
            name,
            version,
            wrappedKey: bytes(row['wrapped_key']),
            kekId: String(row['kek_id']),
          });
          update.run(wrapped, next.kekId, name, version);
        }
        run(
          'UPDATE store_meta SET kek_id = ?, kek_check = ?, wrapped_audit_key = ? WHERE id = 1',
          next.kekId,
          next.kekCheck,
          next.wrappedAuditKey,
        );
        if (previous !== null) run('UPDATE kek_history SET retired_at = ? WHERE retired_at IS NULL', now);
        run('INSERT INTO kek_history (kek_id, activated_at) VALUES (?, ?)', next.kekId, now);
        return rows.length;
      });
    },

    async kekHistory() {
      return read(() =>
        all('SELECT kek_id, activated_at, retired_at FROM kek_history ORDER BY seq').map((row) => ({
          kekId: String(row['kek_id']),
          activatedAt: num(row['activated_at']),
          retiredAt: row['retired_at'] === null ? null : num(row['retired_at']),
        })),
      );
    },

    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
  return store;
}

/** A SEC_ERR_* error passes through; a database error becomes SEC_ERR_STORE (a unique violation: conflict). */
function storeError(err: unknown): Error {
  if (isSecretsError(err)) return err;
  const message = err instanceof Error ? err.message : '';
  if (/UNIQUE constraint failed|PRIMARY KEY/.test(message)) return secError(SEC_ERRORS.conflict, undefined, err);
  return secError(SEC_ERRORS.store, undefined, err);
}
