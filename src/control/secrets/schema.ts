/**
 * The secrets tables, in the two SQL dialects. Kept side by side so a change to one is seen next to the
 * other; store.ts describes what each table holds. The column sets and constraints are the same; only
 * the types differ (SQLite STRICT `INTEGER`/`BLOB`, PostgreSQL `BIGINT`/`BYTEA`).
 */

/** Version of the schema below; bumped with a migration when it changes. */
export const SECRETS_SCHEMA_VERSION = 1;

export const SQLITE_SCHEMA = `
CREATE TABLE IF NOT EXISTS store_meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  schema_version INTEGER NOT NULL,
  kek_id TEXT,
  kek_check BLOB,
  wrapped_audit_key BLOB
) STRICT;

CREATE TABLE IF NOT EXISTS secrets (
  name TEXT PRIMARY KEY,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  latest_version INTEGER NOT NULL CHECK (latest_version > 0),
  rotation_interval_ms INTEGER CHECK (rotation_interval_ms > 0),
  rotation_due_at INTEGER
) STRICT;

CREATE TABLE IF NOT EXISTS versions (
  name TEXT NOT NULL REFERENCES secrets (name),
  version INTEGER NOT NULL CHECK (version > 0),
  format INTEGER NOT NULL,
  kek_id TEXT NOT NULL,
  wrapped_key BLOB NOT NULL,
  nonce BLOB NOT NULL CHECK (length(nonce) = 24),
  ciphertext BLOB NOT NULL CHECK (length(ciphertext) > 16),
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE IF NOT EXISTS labels (
  name TEXT NOT NULL,
  label TEXT NOT NULL CHECK (label IN ('current', 'previous', 'pending')),
  version INTEGER NOT NULL,
  PRIMARY KEY (name, label),
  UNIQUE (name, version),
  FOREIGN KEY (name, version) REFERENCES versions (name, version)
) STRICT;

CREATE TABLE IF NOT EXISTS kek_history (
  seq INTEGER PRIMARY KEY,
  kek_id TEXT NOT NULL,
  activated_at INTEGER NOT NULL,
  retired_at INTEGER
) STRICT;
`;

export const POSTGRES_SCHEMA = `
CREATE TABLE IF NOT EXISTS store_meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  schema_version INTEGER NOT NULL,
  kek_id TEXT,
  kek_check BYTEA,
  wrapped_audit_key BYTEA
);

CREATE TABLE IF NOT EXISTS secrets (
  name TEXT PRIMARY KEY,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  latest_version INTEGER NOT NULL CHECK (latest_version > 0),
  rotation_interval_ms BIGINT CHECK (rotation_interval_ms > 0),
  rotation_due_at BIGINT
);

CREATE TABLE IF NOT EXISTS versions (
  name TEXT NOT NULL REFERENCES secrets (name),
  version INTEGER NOT NULL CHECK (version > 0),
  format INTEGER NOT NULL,
  kek_id TEXT NOT NULL,
  wrapped_key BYTEA NOT NULL,
  nonce BYTEA NOT NULL CHECK (length(nonce) = 24),
  ciphertext BYTEA NOT NULL CHECK (length(ciphertext) > 16),
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS labels (
  name TEXT NOT NULL,
  label TEXT NOT NULL CHECK (label IN ('current', 'previous', 'pending')),
  version INTEGER NOT NULL,
  PRIMARY KEY (name, label),
  UNIQUE (name, version),
  FOREIGN KEY (name, version) REFERENCES versions (name, version)
);

CREATE TABLE IF NOT EXISTS kek_history (
  seq BIGSERIAL PRIMARY KEY,
  kek_id TEXT NOT NULL,
  activated_at BIGINT NOT NULL,
  retired_at BIGINT
);
`;
