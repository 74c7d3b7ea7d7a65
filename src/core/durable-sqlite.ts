import type { DatabaseSync } from 'node:sqlite';

/**
 * Puts a database in WAL mode with `synchronous = FULL`: readers never block the writer, and COMMIT
 * returns only after the WAL is fsync'd, so an acknowledged write survives a crash or power loss (in WAL
 * mode NORMAL may lose the last commits on power loss). Returns the journal mode SQLite reports when it
 * could not switch (another mode kept by a read-only file system, say), `null` when all is set.
 */
export function useDurableJournal(db: DatabaseSync, path: string): string | null {
  const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string };
  if (path !== ':memory:' && mode.journal_mode !== 'wal') return mode.journal_mode;
  db.exec('PRAGMA synchronous = FULL');
  return null;
}

export interface VersionedSchema {
  /** `CREATE … IF NOT EXISTS` statements, including a `meta (key TEXT PRIMARY KEY, value TEXT)` table. */
  sql: string;
  version: number;
  /** Runs in the same transaction when the database is new (after the version is recorded). */
  onCreate?: (db: DatabaseSync) => void;
  /** Called with the stored version when it is not `version`; must throw the module's own error. */
  onMismatch: (found: string) => never;
}

/**
 * Creates the schema, or checks the stored `schema_version` of an existing database, in one immediate
 * transaction: two processes opening the same new file cannot both initialize it.
 */
export function applyVersionedSchema(db: DatabaseSync, schema: VersionedSchema): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(schema.sql);
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
      | { value: string }
      | undefined;
    if (row === undefined) {
      db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(String(schema.version));
      schema.onCreate?.(db);
    } else if (Number(row.value) !== schema.version) {
      schema.onMismatch(row.value);
    }
    db.exec('COMMIT');
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
