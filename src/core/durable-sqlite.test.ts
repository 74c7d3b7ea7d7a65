import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { applyVersionedSchema, useDurableJournal } from './durable-sqlite.ts';

const SQL = 'CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);';

test('WAL with synchronous=FULL; the schema is created once and its version checked on every open', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-durable-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'x.db');
  let created = 0;
  const schema = (version: number) => ({
    sql: SQL,
    version,
    onCreate: () => {
      created += 1;
    },
    onMismatch: (found: string): never => {
      throw Object.assign(new Error('mismatch'), { code: 'TEST_MISMATCH', found });
    },
  });

  const db = new DatabaseSync(path);
  assert.equal(useDurableJournal(db, path), null);
  assert.equal((db.prepare('PRAGMA synchronous').get() as { synchronous: number }).synchronous, 2);
  applyVersionedSchema(db, schema(3));
  applyVersionedSchema(db, schema(3));
  assert.equal(created, 1, 'onCreate runs for a new database only');
  assert.throws(() => applyVersionedSchema(db, schema(4)), { code: 'TEST_MISMATCH', found: '3' });
  assert.equal(db.isTransaction, false, 'a refused open leaves no transaction behind');
  db.close();
});
