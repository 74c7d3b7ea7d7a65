import { closeSync, openSync } from 'node:fs';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { IDP_ERRORS, idpError } from '../errors.ts';
import { decodeAccount, decodeArtifact, decodeClient, decodeKey, decodeThrottle, type Row } from './rows.ts';
import type {
  AccountPatch,
  AccountRecord,
  ArtifactWrite,
  ClientPatch,
  ClientRecord,
  IdentityStore,
  SigningKeyRecord,
  ThrottleRecord,
} from './store.ts';

/** Schema of the SQLite store; `IF NOT EXISTS` so opening an existing database is a no-op. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS oidc_artifacts (
  model TEXT NOT NULL,
  id TEXT NOT NULL,
  payload TEXT NOT NULL,
  grant_id TEXT,
  uid TEXT,
  user_code TEXT,
  expires_at INTEGER,
  consumed_at INTEGER,
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
  disabled INTEGER NOT NULL,
  mfa_required INTEGER NOT NULL,
  totp_secret BLOB,
  totp_enrolled_at INTEGER,
  totp_last_step INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS recovery_codes (
  account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  code_hash TEXT NOT NULL,
  PRIMARY KEY (account_id, code_hash)
);
CREATE TABLE IF NOT EXISTS clients (
  client_id TEXT PRIMARY KEY,
  metadata TEXT NOT NULL,
  secret BLOB,
  disabled INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
  kid TEXT PRIMARY KEY,
  alg TEXT NOT NULL,
  state TEXT NOT NULL,
  public_jwk TEXT NOT NULL,
  private_jwk BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  state_since INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS throttle (
  key TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  last_failure_at INTEGER NOT NULL,
  not_before INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
  name TEXT PRIMARY KEY,
  value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
`;

export interface SqliteStoreOptions {
  /** Database file (inside the identity's data directory), or `:memory:` in tests. */
  file: string;
}

/**
 * The default store: one SQLite file in the identity's data directory, WAL with `synchronous=FULL` (a
 * consumed code or a lockout counter must survive a crash: DESIGN.md "Storage"). node:sqlite is
 * synchronous, so every statement runs to completion before another starts in this process; the
 * atomic operations are single statements (or IMMEDIATE transactions) so they also hold against
 * another process on the same file.
 */
export function openSqliteStore(options: SqliteStoreOptions): IdentityStore {
  // Create the file 0600 before SQLite does (it would use 0644); its -wal and -shm files copy the mode.
  if (options.file !== ':memory:') closeSync(openSync(options.file, 'a', 0o600));
  const db = new DatabaseSync(options.file);
  db.exec(
    'PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;',
  );
  db.exec(SCHEMA);

  const statements = new Map<string, ReturnType<DatabaseSync['prepare']>>();
  const stmt = (sql: string) => {
    let s = statements.get(sql);
    if (!s) {
      s = db.prepare(sql);
      statements.set(sql, s);
    }
    return s;
  };
  const get = (sql: string, ...params: SQLInputValue[]) => stmt(sql).get(...params) as Row | undefined;
  const all = (sql: string, ...params: SQLInputValue[]) => stmt(sql).all(...params) as Row[];
  const run = (sql: string, ...params: SQLInputValue[]) => Number(stmt(sql).run(...params).changes);
  const transaction = <T>(fn: () => T): T => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const result = fn();
      db.exec('COMMIT');
      return result;
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  };
  const unique = <T>(fn: () => T, what: string): T => {
    try {
      return fn();
    } catch (err) {
      if ((err as { errcode?: number }).errcode === 2067 || /UNIQUE constraint/.test(String(err))) {
        throw idpError(IDP_ERRORS.conflict, `${what} already exists`, { status: 409, cause: err });
      }
      throw err;
    }
  };
  const bool = (value: boolean) => (value ? 1 : 0);

  const store: IdentityStore = {
    kind: 'sqlite',

    async upsertArtifact(a: ArtifactWrite) {
      const consumed = typeof a.payload['consumed'] === 'number' ? (a.payload['consumed'] as number) * 1000 : null;
      run(
        `INSERT INTO oidc_artifacts (model, id, payload, grant_id, uid, user_code, expires_at, consumed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
           uid = excluded.uid, user_code = excluded.user_code, expires_at = excluded.expires_at,
           consumed_at = COALESCE(oidc_artifacts.consumed_at, excluded.consumed_at)`,
        a.model,
        a.id,
        JSON.stringify(a.payload),
        a.grantId,
        a.uid,
        a.userCode,
        a.expiresAt,
        consumed,
      );
    },
    async findArtifact(model, id, now) {
      return decodeArtifact(
        get(
          'SELECT payload, consumed_at FROM oidc_artifacts WHERE model = ? AND id = ? AND (expires_at IS NULL OR expires_at > ?)',
          model,
          id,
          now,
        ),
      );
    },
    async findArtifactByUid(model, uid, now) {
      return decodeArtifact(
        get(
          'SELECT payload, consumed_at FROM oidc_artifacts WHERE model = ? AND uid = ? AND (expires_at IS NULL OR expires_at > ?)',
          model,
          uid,
          now,
        ),
      );
    },
    async findArtifactByUserCode(model, userCode, now) {
      return decodeArtifact(
        get(
          'SELECT payload, consumed_at FROM oidc_artifacts WHERE model = ? AND user_code = ? AND (expires_at IS NULL OR expires_at > ?)',
          model,
          userCode,
          now,
        ),
      );
    },
    async consumeArtifact(model, id, now) {
      const row = get(
        'UPDATE oidc_artifacts SET consumed_at = ? WHERE model = ? AND id = ? AND consumed_at IS NULL RETURNING grant_id',
        now,
        model,
        id,
      );
      if (row) return { consumed: true, grantId: (row['grant_id'] as string | null) ?? null };
      const existing = get('SELECT grant_id FROM oidc_artifacts WHERE model = ? AND id = ?', model, id);
      return { consumed: false, grantId: (existing?.['grant_id'] as string | null | undefined) ?? null };
    },
    async destroyArtifact(model, id) {
      run('DELETE FROM oidc_artifacts WHERE model = ? AND id = ?', model, id);
    },
    async revokeGrant(grantId, includeGrant) {
      return transaction(
        () =>
          run('DELETE FROM oidc_artifacts WHERE grant_id = ?', grantId) +
          (includeGrant ? run("DELETE FROM oidc_artifacts WHERE model = 'Grant' AND id = ?", grantId) : 0),
      );
    },
    async purgeExpired(now) {
      return run('DELETE FROM oidc_artifacts WHERE expires_at IS NOT NULL AND expires_at <= ?', now);
    },

    async createAccount(a: AccountRecord) {
      unique(
        () =>
          run(
            `INSERT INTO accounts (id, username, password_hash, roles, disabled, mfa_required, totp_secret,
               totp_enrolled_at, totp_last_step, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            a.id,
            a.username,
            a.passwordHash,
            JSON.stringify(a.roles),
            bool(a.disabled),
            bool(a.mfaRequired),
            a.totpSecret,
            a.totpEnrolledAt,
            a.totpLastStep,
            a.createdAt,
            a.updatedAt,
          ),
        'account',
      );
    },
    async findAccount(id) {
      return decodeAccount(get('SELECT * FROM accounts WHERE id = ?', id));
    },
    async findAccountByUsername(username) {
      return decodeAccount(get('SELECT * FROM accounts WHERE username = ?', username));
    },
    async listAccounts() {
      return all('SELECT * FROM accounts ORDER BY username').map((row) => decodeAccount(row)!);
    },
    async updateAccount(id, patch: AccountPatch) {
      const { sets, values } = accountSets(patch, bool);
      if (sets.length === 0) return get('SELECT 1 AS x FROM accounts WHERE id = ?', id) !== undefined;
      return run(`UPDATE accounts SET ${sets.join(', ')}, updated_at = ? WHERE id = ?`, ...values, Date.now(), id) > 0;
    },
    async useTotpStep(accountId, step) {
      return (
        run(
          'UPDATE accounts SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)',
          step,
          accountId,
          step,
        ) === 1
      );
    },
    async replaceRecoveryCodes(accountId, hashes) {
      transaction(() => {
        run('DELETE FROM recovery_codes WHERE account_id = ?', accountId);
        for (const hash of hashes)
          run('INSERT INTO recovery_codes (account_id, code_hash) VALUES (?, ?)', accountId, hash);
      });
    },
    async useRecoveryCode(accountId, hash) {
      return run('DELETE FROM recovery_codes WHERE account_id = ? AND code_hash = ?', accountId, hash) === 1;
    },
    async countRecoveryCodes(accountId) {
      return Number(get('SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = ?', accountId)?.['n'] ?? 0);
    },

    async createClient(c: ClientRecord) {
      unique(
        () =>
          run(
            'INSERT INTO clients (client_id, metadata, secret, disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
            c.clientId,
            JSON.stringify(c.metadata),
            c.secret,
            bool(c.disabled),
            c.createdAt,
            c.updatedAt,
          ),
        'client',
      );
    },
    async findClient(clientId) {
      return decodeClient(get('SELECT * FROM clients WHERE client_id = ?', clientId));
    },
    async listClients() {
      return all('SELECT * FROM clients ORDER BY client_id').map((row) => decodeClient(row)!);
    },
    async updateClient(clientId, patch: ClientPatch) {
      const sets: string[] = [];
      const values: SQLInputValue[] = [];
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
        values.push(bool(patch.disabled));
      }
      if (sets.length === 0) return get('SELECT 1 AS x FROM clients WHERE client_id = ?', clientId) !== undefined;
      return (
        run(
          `UPDATE clients SET ${sets.join(', ')}, updated_at = ? WHERE client_id = ?`,
          ...values,
          Date.now(),
          clientId,
        ) > 0
      );
    },

    async listKeys() {
      return all('SELECT * FROM signing_keys ORDER BY created_at, kid').map((row) => decodeKey(row));
    },
    async replaceKeys(keys: readonly SigningKeyRecord[], expectedVersion) {
      return transaction(() => {
        const version = Number(get("SELECT value FROM meta WHERE name = 'keys_version'")?.['value'] ?? 0);
        if (version !== expectedVersion) return null;
        run('DELETE FROM signing_keys');
        for (const k of keys) {
          run(
            'INSERT INTO signing_keys (kid, alg, state, public_jwk, private_jwk, created_at, state_since) VALUES (?, ?, ?, ?, ?, ?, ?)',
            k.kid,
            k.alg,
            k.state,
            JSON.stringify(k.publicJwk),
            k.privateJwk,
            k.createdAt,
            k.stateSince,
          );
        }
        run(
          "INSERT INTO meta (name, value) VALUES ('keys_version', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
          version + 1,
        );
        return version + 1;
      });
    },
    async keysVersion() {
      return Number(get("SELECT value FROM meta WHERE name = 'keys_version'")?.['value'] ?? 0);
    },

    async getThrottle(key) {
      return decodeThrottle(get('SELECT * FROM throttle WHERE key = ?', key));
    },
    async casThrottle(key, expectedFailures, next: ThrottleRecord) {
      if (expectedFailures === 0) {
        // No row yet (or a row someone reset to zero): insert, or take over a zero row.
        const changed = run(
          `INSERT INTO throttle (key, failures, last_failure_at, not_before) VALUES (?, ?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure_at = excluded.last_failure_at,
             not_before = excluded.not_before WHERE throttle.failures = 0`,
          key,
          next.failures,
          next.lastFailureAt,
          next.notBefore,
        );
        return changed === 1;
      }
      return (
        run(
          'UPDATE throttle SET failures = ?, last_failure_at = ?, not_before = ? WHERE key = ? AND failures = ?',
          next.failures,
          next.lastFailureAt,
          next.notBefore,
          key,
          expectedFailures,
        ) === 1
      );
    },
    async clearThrottle(key) {
      run('DELETE FROM throttle WHERE key = ?', key);
    },

    async initSetting(name, value) {
      run('INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING', name, value);
      return Buffer.from(get('SELECT value FROM settings WHERE name = ?', name)!['value'] as Uint8Array);
    },

    async close() {
      statements.clear();
      if (db.isOpen) db.close();
    },
  };
  return Object.freeze(store);
}

/** SET clauses for an account patch; shared with the PostgreSQL store (placeholders differ). */
export function accountSets<V>(
  patch: AccountPatch,
  bool: (value: boolean) => V,
): { sets: string[]; values: (string | number | Buffer | null | V)[] } {
  const sets: string[] = [];
  const values: (string | number | Buffer | null | V)[] = [];
  const add = (column: string, value: string | number | Buffer | null | V) => {
    sets.push(`${column} = ?`);
    values.push(value);
  };
  if (patch.passwordHash !== undefined) add('password_hash', patch.passwordHash);
  if (patch.roles !== undefined) add('roles', JSON.stringify(patch.roles));
  if (patch.disabled !== undefined) add('disabled', bool(patch.disabled));
  if (patch.mfaRequired !== undefined) add('mfa_required', bool(patch.mfaRequired));
  if (patch.totpSecret !== undefined) add('totp_secret', patch.totpSecret);
  if (patch.totpEnrolledAt !== undefined) add('totp_enrolled_at', patch.totpEnrolledAt);
  if (patch.totpLastStep !== undefined) add('totp_last_step', patch.totpLastStep);
  return { sets, values };
}
