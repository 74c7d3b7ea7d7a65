import pg from 'pg';
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
  VERSION_COLUMNS_JOINED,
  VERSION_META_COLUMNS,
  versionFrom,
  versionMetaFrom,
} from './rows.ts';
import { POSTGRES_SCHEMA, SECRETS_SCHEMA_VERSION } from './schema.ts';
import type { SecretsStore, StoreMeta } from './store.ts';

/**
 * The PostgreSQL store: the same tables and the same compare-and-set writes as the SQLite store. A write
 * is one transaction that first locks the secret's row (`SELECT … FOR UPDATE`; for a new secret the
 * insert itself takes the lock, and a racing insert waits and then conflicts), so two control planes
 * writing the same secret serialise and the loser gets SEC_ERR_CONFLICT. KEK rotation locks the versions
 * table against writers for its one transaction.
 */
export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database`. */
  connectionString: string;
  /** Schema holding the tables (created if missing). Default `rampart_secrets`. */
  schema?: string;
  maxConnections?: number;
}

/** A schema name we are willing to interpolate (identifiers cannot be bound as parameters). */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

type Query = (sql: string, params?: unknown[]) => Promise<Row[]>;

export async function openPostgresSecretsStore(options: PostgresStoreOptions): Promise<SecretsStore> {
  const schema = options.schema ?? SECRETS_DEFAULTS.postgresSchema;
  if (!SCHEMA_NAME.test(schema)) throw secError(SEC_ERRORS.config, { reason: 'postgres schema', schema });
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? SECRETS_DEFAULTS.postgresMaxConnections,
    options: `-c search_path=${schema}`,
  });
  // An error on an idle pooled client must not crash the process; the next query reports the failure.
  pool.on('error', () => {});

  try {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      // Two control planes starting at once must not race on CREATE TABLE IF NOT EXISTS (not atomic).
      await client.query("SELECT pg_advisory_xact_lock(hashtext('rampart_secrets_schema'))");
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(`SET LOCAL search_path TO ${schema}`);
      await client.query(POSTGRES_SCHEMA);
      const { rows } = await client.query('SELECT schema_version FROM store_meta WHERE id = 1');
      if (rows.length === 0) {
        await client.query('INSERT INTO store_meta (id, schema_version) VALUES (1, $1)', [SECRETS_SCHEMA_VERSION]);
      } else if (num(rows[0].schema_version) !== SECRETS_SCHEMA_VERSION) {
        throw secError(SEC_ERRORS.schema, { found: rows[0].schema_version, expected: SECRETS_SCHEMA_VERSION });
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end().catch(() => {});
    if (isSecretsError(err)) throw err;
    throw secError(SEC_ERRORS.store, { reason: 'prepare', schema }, err);
  }

  let closed = false;
  const guard = () => {
    if (closed) throw secError(SEC_ERRORS.closed);
  };
  const query: Query = async (sql, params = []) => {
    guard();
    try {
      return (await pool.query(sql, params)).rows as Row[];
    } catch (err) {
      throw storeError(err);
    }
  };
  const transaction = async <T>(fn: (q: Query) => Promise<T>): Promise<T> => {
    guard();
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw storeError(err);
    }
    try {
      await client.query('BEGIN');
      const result = await fn(async (sql, params = []) => (await client.query(sql, params)).rows as Row[]);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw storeError(err);
    } finally {
      client.release();
    }
  };
  const labelsOf = async (q: Query, name: string): Promise<Labels> =>
    labelsFrom(await q('SELECT label, version FROM labels WHERE name = $1', [name]));
  const writeLabels = async (q: Query, name: string, labels: Labels) => {
    await q('DELETE FROM labels WHERE name = $1', [name]);
    for (const [label, version] of labelRows(labels)) {
      await q('INSERT INTO labels (name, label, version) VALUES ($1, $2, $3)', [name, label, version]);
    }
  };

  const store: SecretsStore = {
    kind: 'postgres',

    async readMeta() {
      const [row] = await query('SELECT kek_id, kek_check, wrapped_audit_key FROM store_meta WHERE id = 1');
      if (!row || row['kek_id'] === null) return null;
      return {
        kekId: String(row['kek_id']),
        kekCheck: bytes(row['kek_check']),
        wrappedAuditKey: bytes(row['wrapped_audit_key']),
      };
    },

    async initMeta(meta: StoreMeta, now: number) {
      return transaction(async (q) => {
        const updated = await q(
          `UPDATE store_meta SET kek_id = $1, kek_check = $2, wrapped_audit_key = $3
           WHERE id = 1 AND kek_id IS NULL AND NOT EXISTS (SELECT 1 FROM versions) RETURNING id`,
          [meta.kekId, Buffer.from(meta.kekCheck), Buffer.from(meta.wrappedAuditKey)],
        );
        if (updated.length !== 1) return false;
        await q('INSERT INTO kek_history (kek_id, activated_at) VALUES ($1, $2)', [meta.kekId, now]);
        return true;
      });
    },

    async secret(name) {
      // One snapshot for the row and its labels (READ COMMITTED gives each statement its own otherwise).
      const rows = await query(
        `SELECT s.*, l.label, l.version FROM secrets s LEFT JOIN labels l ON l.name = s.name WHERE s.name = $1`,
        [name],
      );
      const [first] = rows;
      return first ? secretFrom(first, labelsFrom(rows)) : null;
    },

    async listSecrets() {
      const rows = await query(
        'SELECT s.*, l.label, l.version FROM secrets s LEFT JOIN labels l ON l.name = s.name ORDER BY s.name',
      );
      const byName = new Map<string, Row[]>();
      for (const row of rows) {
        const name = String(row['name']);
        byName.set(name, [...(byName.get(name) ?? []), row]);
      }
      return [...byName.values()].map((group) => secretFrom(group[0]!, labelsFrom(group)));
    },

    async versionByLabel(name, label) {
      const [row] = await query(
        `SELECT ${VERSION_COLUMNS_JOINED} FROM labels l JOIN versions v ON v.name = l.name AND v.version = l.version
         WHERE l.name = $1 AND l.label = $2`,
        [name, label],
      );
      return row ? versionFrom(row) : null;
    },

    async version(name, version) {
      const [row] = await query(`SELECT ${VERSION_COLUMNS} FROM versions WHERE name = $1 AND version = $2`, [
        name,
        version,
      ]);
      return row ? versionFrom(row) : null;
    },

    async history(name) {
      return (await query(`SELECT ${VERSION_META_COLUMNS} FROM versions WHERE name = $1 ORDER BY version`, [name])).map(
        versionMetaFrom,
      );
    },

    async commitVersion(w) {
      await transaction(async (q) => {
        if (w.version === 1) {
          // A new secret: the insert takes the row lock; a concurrent creator waits here, then finds the row.
          const inserted = await q(
            `INSERT INTO secrets (name, created_by, created_at, updated_at, latest_version) VALUES ($1, $2, $3, $3, 1)
             ON CONFLICT (name) DO NOTHING RETURNING name`,
            [w.name, w.createdBy, w.createdAt],
          );
          if (inserted.length !== 1) throw secError(SEC_ERRORS.conflict, { name: w.name, version: w.version });
        }
        const [row] = await q('SELECT * FROM secrets WHERE name = $1 FOR UPDATE', [w.name]);
        const latest = w.version === 1 ? 0 : row ? num(row['latest_version']) : 0;
        if (!row || latest !== w.version - 1 || !sameLabels(await labelsOf(q, w.name), w.expectedLabels)) {
          throw secError(SEC_ERRORS.conflict, { name: w.name, version: w.version, latest });
        }
        const interval =
          w.rotationIntervalMs === undefined ? numOrNull(row['rotation_interval_ms']) : w.rotationIntervalMs;
        const due = rotationDue(
          interval,
          numOrNull(row['rotation_due_at']),
          w.labels.current !== w.expectedLabels.current,
          w.createdAt,
        );
        await q(
          `UPDATE secrets SET latest_version = $1, updated_at = $2, rotation_interval_ms = $3, rotation_due_at = $4
           WHERE name = $5`,
          [w.version, w.createdAt, interval, due, w.name],
        );
        await q(
          `INSERT INTO versions (name, version, format, kek_id, wrapped_key, nonce, ciphertext, created_by, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          [
            w.name,
            w.version,
            w.format,
            w.kekId,
            Buffer.from(w.wrappedKey),
            Buffer.from(w.nonce),
            Buffer.from(w.ciphertext),
            w.createdBy,
            w.createdAt,
          ],
        );
        await writeLabels(q, w.name, w.labels);
      });
    },

    async commitLabels(w) {
      await transaction(async (q) => {
        const [row] = await q('SELECT * FROM secrets WHERE name = $1 FOR UPDATE', [w.name]);
        if (!row || !sameLabels(await labelsOf(q, w.name), w.expected)) {
          throw secError(SEC_ERRORS.conflict, { name: w.name });
        }
        const due = rotationDue(
          numOrNull(row['rotation_interval_ms']),
          numOrNull(row['rotation_due_at']),
          w.next.current !== w.expected.current,
          w.now,
        );
        await q('UPDATE secrets SET updated_at = $1, rotation_due_at = $2 WHERE name = $3', [w.now, due, w.name]);
        await writeLabels(q, w.name, w.next);
      });
    },

    async rewrapAll(rewrap, next, now) {
      return transaction(async (q) => {
        // Writers wait for the rotation; readers keep reading the old wrapped keys until it commits.
        await q('LOCK TABLE store_meta, versions IN SHARE ROW EXCLUSIVE MODE');
        const [meta] = await q('SELECT kek_id FROM store_meta WHERE id = 1');
        const rows = await q('SELECT name, version, wrapped_key, kek_id FROM versions ORDER BY name, version');
        for (const row of rows) {
          const name = String(row['name']);
          const version = num(row['version']);
          const wrapped = rewrap({
            name,
            version,
            wrappedKey: bytes(row['wrapped_key']),
            kekId: String(row['kek_id']),
          });
          await q('UPDATE versions SET wrapped_key = $1, kek_id = $2 WHERE name = $3 AND version = $4', [
            Buffer.from(wrapped),
            next.kekId,
            name,
            version,
          ]);
        }
        await q('UPDATE store_meta SET kek_id = $1, kek_check = $2, wrapped_audit_key = $3 WHERE id = 1', [
          next.kekId,
          Buffer.from(next.kekCheck),
          Buffer.from(next.wrappedAuditKey),
        ]);
        if (meta && meta['kek_id'] !== null) {
          await q('UPDATE kek_history SET retired_at = $1 WHERE retired_at IS NULL', [now]);
        }
        await q('INSERT INTO kek_history (kek_id, activated_at) VALUES ($1, $2)', [next.kekId, now]);
        return rows.length;
      });
    },

    async kekHistory() {
      return (await query('SELECT kek_id, activated_at, retired_at FROM kek_history ORDER BY seq')).map((row) => ({
        kekId: String(row['kek_id']),
        activatedAt: num(row['activated_at']),
        retiredAt: numOrNull(row['retired_at']),
      }));
    },

    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
  return store;
}

/**
 * A SEC_ERR_* error passes through; a unique violation (two writers of one version) is a conflict;
 * any other database error is SEC_ERR_STORE. PostgreSQL's error `detail` can quote key values: only
 * names and version numbers are keys here, never values.
 */
function storeError(err: unknown): Error {
  if (isSecretsError(err)) return err;
  if ((err as { code?: string }).code === '23505') return secError(SEC_ERRORS.conflict, undefined, err);
  return secError(SEC_ERRORS.store, undefined, err);
}
