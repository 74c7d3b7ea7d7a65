import pg from 'pg';
import { IDP_ERRORS, idpError } from '../errors.ts';
import { decodeAccount, decodeArtifact, decodeClient, decodeKey, decodeThrottle, type Row } from './rows.ts';
import { accountSets } from './sqlite-store.ts';
import type { ArtifactWrite, ClientPatch, IdentityStore, SigningKeyRecord, ThrottleRecord } from './store.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS oidc_artifacts (
  model TEXT NOT NULL,
  id TEXT NOT NULL,
  payload TEXT NOT NULL,
  grant_id TEXT,
  uid TEXT,
  user_code TEXT,
  expires_at BIGINT,
  consumed_at BIGINT,
  PRIMARY KEY (model, id)
);
CREATE INDEX IF NOT EXISTS oidc_artifacts_grant ON oidc_artifacts (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_artifacts_uid ON oidc_artifacts (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_artifacts_user_code ON oidc_artifacts (model, user_code) WHERE user_code IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_artifacts_expiry ON oidc_artifacts (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS accounts (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  roles TEXT NOT NULL,
  disabled BOOLEAN NOT NULL,
  mfa_required BOOLEAN NOT NULL,
  totp_secret BYTEA,
  totp_enrolled_at BIGINT,
  totp_last_step BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS recovery_codes (
  account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  code_hash TEXT NOT NULL,
  PRIMARY KEY (account_id, code_hash)
);
CREATE TABLE IF NOT EXISTS clients (
  client_id TEXT PRIMARY KEY,
  metadata TEXT NOT NULL,
  secret BYTEA,
  disabled BOOLEAN NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
  kid TEXT PRIMARY KEY,
  alg TEXT NOT NULL,
  state TEXT NOT NULL,
  public_jwk TEXT NOT NULL,
  private_jwk BYTEA NOT NULL,
  created_at BIGINT NOT NULL,
  state_since BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS throttle (
  key TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  last_failure_at BIGINT NOT NULL,
  not_before BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
  name TEXT PRIMARY KEY,
  value BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value BIGINT NOT NULL
);
INSERT INTO meta (name, value) VALUES ('keys_version', 0) ON CONFLICT (name) DO NOTHING;
`;

/** A schema name we are willing to interpolate into SQL (identifiers cannot be bound as parameters). */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Default schema: the identity's tables never mix with an application's in `public`. */
export const DEFAULT_POSTGRES_SCHEMA = 'rampart_identity';

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database`. */
  connectionString: string;
  /** Schema holding the tables (created if missing). Default {@link DEFAULT_POSTGRES_SCHEMA}. */
  schema?: string;
  /** Pool size. Default 10. */
  maxConnections?: number;
}

/** `?` placeholders (as the SQLite store writes them) → `$1, $2, …`. Our SQL has no `?` in literals. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * The PostgreSQL store: the same tables and the same atomicity as the SQLite store (single-statement
 * updates guarded by their WHERE clause; under READ COMMITTED a concurrent UPDATE of the same row waits
 * and then re-checks the condition, so exactly one of racing consumers wins).
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<IdentityStore> {
  const schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
  if (!SCHEMA_NAME.test(schema)) {
    throw idpError(IDP_ERRORS.config, 'invalid PostgreSQL schema name', { status: 500, detail: { schema } });
  }
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    options: `-c search_path=${schema}`,
  });
  // A pool error on an idle client must not crash the process; the next query reports the failure.
  pool.on('error', () => {});

  const migrate = await pool.connect();
  try {
    await migrate.query('BEGIN');
    // Two replicas starting at once must not race on CREATE TABLE IF NOT EXISTS (it is not atomic).
    await migrate.query("SELECT pg_advisory_xact_lock(hashtext('rampart_identity_schema'))");
    await migrate.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await migrate.query(`SET LOCAL search_path TO ${schema}`);
    await migrate.query(SCHEMA);
    await migrate.query('COMMIT');
  } catch (err) {
    await migrate.query('ROLLBACK').catch(() => {});
    migrate.release();
    await pool.end();
    throw idpError(IDP_ERRORS.store, 'cannot prepare the PostgreSQL store', { status: 500, cause: err });
  }
  migrate.release();

  const query = async (sql: string, params: unknown[] = []) => (await pool.query(numbered(sql), params)).rows as Row[];
  const one = async (sql: string, params: unknown[] = []) => (await query(sql, params))[0];
  const count = async (sql: string, params: unknown[] = []) => (await pool.query(numbered(sql), params)).rowCount ?? 0;
  const transaction = async <T>(
    fn: (q: (sql: string, params?: unknown[]) => Promise<pg.QueryResult>) => Promise<T>,
  ) => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn((sql, params = []) => client.query(numbered(sql), params));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  };
  const unique = async <T>(fn: () => Promise<T>, what: string): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw idpError(IDP_ERRORS.conflict, `${what} already exists`, { status: 409, cause: err });
      }
      throw err;
    }
  };
  const bool = (value: boolean) => value;

  const store: IdentityStore = {
    kind: 'postgres',

    async upsertArtifact(a: ArtifactWrite) {
      const consumed = typeof a.payload['consumed'] === 'number' ? (a.payload['consumed'] as number) * 1000 : null;
      await query(
        `INSERT INTO oidc_artifacts (model, id, payload, grant_id, uid, user_code, expires_at, consumed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
           uid = excluded.uid, user_code = excluded.user_code, expires_at = excluded.expires_at,
           consumed_at = COALESCE(oidc_artifacts.consumed_at, excluded.consumed_at)`,
        [a.model, a.id, JSON.stringify(a.payload), a.grantId, a.uid, a.userCode, a.expiresAt, consumed],
      );
    },
    async findArtifact(model, id, now) {
      return decodeArtifact(
        await one(
          'SELECT payload, consumed_at FROM oidc_artifacts WHERE model = ? AND id = ? AND (expires_at IS NULL OR expires_at > ?)',
          [model, id, now],
        ),
      );
    },
    async findArtifactByUid(model, uid, now) {
      return decodeArtifact(
        await one(
          'SELECT payload, consumed_at FROM oidc_artifacts WHERE model = ? AND uid = ? AND (expires_at IS NULL OR expires_at > ?)',
          [model, uid, now],
        ),
      );
    },
    async findArtifactByUserCode(model, userCode, now) {
      return decodeArtifact(
        await one(
          'SELECT payload, consumed_at FROM oidc_artifacts WHERE model = ? AND user_code = ? AND (expires_at IS NULL OR expires_at > ?)',
          [model, userCode, now],
        ),
      );
    },
    async consumeArtifact(model, id, now) {
      const row = await one(
        'UPDATE oidc_artifacts SET consumed_at = ? WHERE model = ? AND id = ? AND consumed_at IS NULL RETURNING grant_id',
        [now, model, id],
      );
      if (row) return { consumed: true, grantId: (row['grant_id'] as string | null) ?? null };
      const existing = await one('SELECT grant_id FROM oidc_artifacts WHERE model = ? AND id = ?', [model, id]);
      return { consumed: false, grantId: (existing?.['grant_id'] as string | null | undefined) ?? null };
    },
    async destroyArtifact(model, id) {
      await query('DELETE FROM oidc_artifacts WHERE model = ? AND id = ?', [model, id]);
    },
    async revokeGrant(grantId, includeGrant) {
      return includeGrant
        ? count("DELETE FROM oidc_artifacts WHERE grant_id = ? OR (model = 'Grant' AND id = ?)", [grantId, grantId])
        : count('DELETE FROM oidc_artifacts WHERE grant_id = ?', [grantId]);
    },
    async purgeExpired(now) {
      return count('DELETE FROM oidc_artifacts WHERE expires_at IS NOT NULL AND expires_at <= ?', [now]);
    },

    async createAccount(a) {
      await unique(
        () =>
          query(
            `INSERT INTO accounts (id, username, password_hash, roles, disabled, mfa_required, totp_secret,
               totp_enrolled_at, totp_last_step, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            [
              a.id,
              a.username,
              a.passwordHash,
              JSON.stringify(a.roles),
              a.disabled,
              a.mfaRequired,
              a.totpSecret,
              a.totpEnrolledAt,
              a.totpLastStep,
              a.createdAt,
              a.updatedAt,
            ],
          ),
        'account',
      );
    },
    async findAccount(id) {
      return decodeAccount(await one('SELECT * FROM accounts WHERE id = ?', [id]));
    },
    async findAccountByUsername(username) {
      return decodeAccount(await one('SELECT * FROM accounts WHERE username = ?', [username]));
    },
    async listAccounts() {
      return (await query('SELECT * FROM accounts ORDER BY username')).map((row) => decodeAccount(row)!);
    },
    async updateAccount(id, patch) {
      const { sets, values } = accountSets(patch, bool);
      if (sets.length === 0) return (await one('SELECT 1 AS x FROM accounts WHERE id = ?', [id])) !== undefined;
      return (
        (await count(`UPDATE accounts SET ${sets.join(', ')}, updated_at = ? WHERE id = ?`, [
          ...values,
          Date.now(),
          id,
        ])) > 0
      );
    },
    async useTotpStep(accountId, step) {
      return (
        (await count(
          'UPDATE accounts SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)',
          [step, accountId, step],
        )) === 1
      );
    },
    async replaceRecoveryCodes(accountId, hashes) {
      await transaction(async (q) => {
        await q('DELETE FROM recovery_codes WHERE account_id = ?', [accountId]);
        for (const hash of hashes)
          await q('INSERT INTO recovery_codes (account_id, code_hash) VALUES (?, ?)', [accountId, hash]);
      });
    },
    async useRecoveryCode(accountId, hash) {
      return (
        (await count('DELETE FROM recovery_codes WHERE account_id = ? AND code_hash = ?', [accountId, hash])) === 1
      );
    },
    async countRecoveryCodes(accountId) {
      return Number(
        (await one('SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = ?', [accountId]))?.['n'] ?? 0,
      );
    },

    async createClient(c) {
      await unique(
        () =>
          query(
            'INSERT INTO clients (client_id, metadata, secret, disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
            [c.clientId, JSON.stringify(c.metadata), c.secret, c.disabled, c.createdAt, c.updatedAt],
          ),
        'client',
      );
    },
    async findClient(clientId) {
      return decodeClient(await one('SELECT * FROM clients WHERE client_id = ?', [clientId]));
    },
    async listClients() {
      return (await query('SELECT * FROM clients ORDER BY client_id')).map((row) => decodeClient(row)!);
    },
    async updateClient(clientId, patch: ClientPatch) {
      const sets: string[] = [];
      const values: unknown[] = [];
      if (patch.metadata !== undefined) {
        sets.push('metadata = ?');
        values.push(JSON.stringify(patch.metadata));
      }
      if (patch.secret !== undefined) {
        sets.push('secret = ?');
        values.push(patch.secret);
      }
      if (patch.disabled !== undefined) {
        sets.push('disabled = ?');
        values.push(patch.disabled);
      }
      if (sets.length === 0)
        return (await one('SELECT 1 AS x FROM clients WHERE client_id = ?', [clientId])) !== undefined;
      return (
        (await count(`UPDATE clients SET ${sets.join(', ')}, updated_at = ? WHERE client_id = ?`, [
          ...values,
          Date.now(),
          clientId,
        ])) > 0
      );
    },

    async listKeys() {
      return (await query('SELECT * FROM signing_keys ORDER BY created_at, kid')).map((row) => decodeKey(row));
    },
    async replaceKeys(keys: readonly SigningKeyRecord[], expectedVersion) {
      return transaction(async (q) => {
        const { rows } = await q("SELECT value FROM meta WHERE name = 'keys_version' FOR UPDATE");
        const version = Number(rows[0]?.['value'] ?? 0);
        if (version !== expectedVersion) return null;
        await q('DELETE FROM signing_keys');
        for (const k of keys) {
          await q(
            'INSERT INTO signing_keys (kid, alg, state, public_jwk, private_jwk, created_at, state_since) VALUES (?, ?, ?, ?, ?, ?, ?)',
            [k.kid, k.alg, k.state, JSON.stringify(k.publicJwk), k.privateJwk, k.createdAt, k.stateSince],
          );
        }
        await q("UPDATE meta SET value = ? WHERE name = 'keys_version'", [version + 1]);
        return version + 1;
      });
    },
    async keysVersion() {
      return Number((await one("SELECT value FROM meta WHERE name = 'keys_version'"))?.['value'] ?? 0);
    },

    async getThrottle(key) {
      return decodeThrottle(await one('SELECT * FROM throttle WHERE key = ?', [key]));
    },
    async casThrottle(key, expectedFailures, next: ThrottleRecord) {
      if (expectedFailures === 0) {
        return (
          (await count(
            `INSERT INTO throttle (key, failures, last_failure_at, not_before) VALUES (?, ?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure_at = excluded.last_failure_at,
               not_before = excluded.not_before WHERE throttle.failures = 0`,
            [key, next.failures, next.lastFailureAt, next.notBefore],
          )) === 1
        );
      }
      return (
        (await count(
          'UPDATE throttle SET failures = ?, last_failure_at = ?, not_before = ? WHERE key = ? AND failures = ?',
          [next.failures, next.lastFailureAt, next.notBefore, key, expectedFailures],
        )) === 1
      );
    },
    async clearThrottle(key) {
      await query('DELETE FROM throttle WHERE key = ?', [key]);
    },

    async initSetting(name, value) {
      await query('INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING', [name, value]);
      return (await one('SELECT value FROM settings WHERE name = ?', [name]))!['value'] as Buffer;
    },

    async close() {
      await pool.end();
    },
  };
  return Object.freeze(store);
}
