import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { openPostgresSecretsStore } from '../../src/control/secrets/postgres-store.ts';
import { openSqliteSecretsStore } from '../../src/control/secrets/sqlite-store.ts';
import type { SecretsStore } from '../../src/control/secrets/store.ts';
import { requireService } from '../helpers/require-service.ts';

/**
 * The two storage backends behind one shape, so test/secrets/store-suite.ts runs the same tests against
 * both: `open` gives a new connection to the same store (call it twice for two "processes"), `exec`
 * runs raw SQL the way an attacker with database access would (`?` placeholders), and `dump` returns
 * every byte the database holds for the plaintext grep.
 */
export interface Backend {
  readonly kind: 'sqlite' | 'postgres';
  open(): Promise<SecretsStore>;
  exec(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  dump(): Promise<Buffer>;
}

export type BackendFactory = (t: TestContext) => Promise<Backend | null>;

/** A fresh SQLite file in a temporary directory, removed after the test. */
export const sqliteBackend: BackendFactory = async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-secrets-'));
  const path = join(dir, 'secret.db');
  const raw: DatabaseSync[] = [];
  t.after(() => {
    for (const db of raw) db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const rawDb = () => {
    if (raw.length === 0) {
      const db = new DatabaseSync(path);
      db.exec('PRAGMA busy_timeout = 5000');
      raw.push(db);
    }
    return raw[0]!;
  };
  return {
    kind: 'sqlite',
    async open() {
      return openSqliteSecretsStore({ path });
    },
    async exec(sql, params = []) {
      return rawDb()
        .prepare(sql)
        .all(...(params as never[])) as Record<string, unknown>[];
    },
    async dump() {
      // Every file SQLite keeps for the database, as raw bytes: the main file, the WAL and its index.
      return Buffer.concat(
        [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]
          .filter((p) => existsSync(p))
          .map((p) => readFileSync(p)),
      );
    },
  };
};

/** A unique schema on the machine's PostgreSQL, dropped after the test; null (skipped) when unreachable. */
export const postgresBackend: BackendFactory = async (t) => {
  const url = await requireService(t, 'postgres');
  if (url === null) return null;
  const schema = `rampart_secrets_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const stores: SecretsStore[] = [];
  t.after(async () => {
    for (const store of stores) await store.close().catch(() => {});
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });
  const numbered = (sql: string) => {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  };
  return {
    kind: 'postgres',
    async open() {
      const store = await openPostgresSecretsStore({ connectionString: url, schema, maxConnections: 4 });
      stores.push(store);
      return store;
    },
    async exec(sql, params = []) {
      await admin.query(`SET search_path TO ${schema}`);
      return (await admin.query(numbered(sql), params)).rows;
    },
    async dump() {
      // The dump query: every column of every table of the schema, bytea as raw bytes, text as UTF-8.
      await admin.query(`SET search_path TO ${schema}`);
      const parts: Buffer[] = [];
      const tables = await admin.query(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
        [schema],
      );
      for (const { table_name } of tables.rows as { table_name: string }[]) {
        const { rows } = await admin.query(`SELECT * FROM ${schema}.${table_name}`);
        for (const row of rows as Record<string, unknown>[]) {
          for (const value of Object.values(row)) {
            parts.push(Buffer.isBuffer(value) ? value : Buffer.from(String(value)));
          }
        }
        // And the server's own text rendering of each row (bytea as \x hex), as a SQL dump would print it.
        const text = await admin.query(`SELECT t::text AS line FROM ${schema}.${table_name} t`);
        for (const { line } of text.rows as { line: string }[]) parts.push(Buffer.from(line));
      }
      const pgDump = await pgDumpOf(url, schema);
      if (pgDump) parts.push(pgDump);
      return Buffer.concat(parts);
    },
  };
};

/** `pg_dump` of the schema when the binary is installed (its version may not match the server's: then null). */
async function pgDumpOf(url: string, schema: string): Promise<Buffer | null> {
  try {
    const { stdout } = await promisify(execFile)('pg_dump', ['--schema', schema, '--data-only', url], {
      encoding: 'buffer',
      maxBuffer: 64 * 1024 * 1024,
      timeout: 30_000,
    });
    return stdout;
  } catch {
    return null;
  }
}
