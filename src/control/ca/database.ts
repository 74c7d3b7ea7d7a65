import { closeSync, constants, openSync } from 'node:fs';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { applyVersionedSchema, useDurableJournal } from '../../core/durable-sqlite.ts';
import { CA_ERRORS, caError } from './errors.ts';

/**
 * The CA's durable state: one SQLite file in the control plane's data directory (DESIGN.md "Storage":
 * WAL, `synchronous=FULL` because a lost issuance record or a lost CA key is not acceptable).
 *
 * Tables:
 * - `authorities`: every signing CA ever made, by generation. A and B are slots: at most one non-retired
 *   authority per slot, at most one `active`, at most one `prepared` (partial unique indexes, so the
 *   database itself refuses a third live CA). Retired rows keep their certificate (history) and lose
 *   their wrapped key.
 * - `issuance_log`: every SVID issued, and every edge certificate (its `spiffe_id` is `edge:<names>`,
 *   edge-certificate.ts); the serial is the primary key (unique by construction).
 * - `join_tokens`: a selector and the SHA-256 of the whole token; never the token.
 * - `bundle_acks`: the highest bundle sequence each live SVID holder confirmed it installed (an SVID
 *   issued after a bundle was published came with it and needs no acknowledgement).
 * - `meta`: schema version, trust domain, bundle sequence.
 *
 * Times are integers in milliseconds since the epoch.
 */

/** Version of the schema below; bumped with a migration when it changes. */
export const CA_SCHEMA_VERSION = 1;

/** A/B slots. */
export type SlotName = 'A' | 'B';
/** Life of a signing CA: published → signing → still trusted for its SVIDs → gone from the bundle. */
export type AuthorityState = 'prepared' | 'active' | 'retiring' | 'retired';

/** One signing CA as stored. */
export interface AuthorityRow {
  generation: number;
  slot: SlotName;
  state: AuthorityState;
  certificate: Uint8Array;
  wrappedKey: Uint8Array | null;
  notBefore: number;
  notAfter: number;
  createdAt: number;
  /** Bundle sequence at which this CA entered the bundle. */
  publishedSequence: number;
  /** Earliest activation (prepared CAs). */
  activateAt: number | null;
  /** Prepared by a forced rotation: may activate as soon as every live SVID holder has the bundle. */
  forced: boolean;
  activatedAt: number | null;
  retiringAt: number | null;
  retiredAt: number | null;
}

/** One issuance record. */
export interface IssuanceRow {
  serial: string;
  generation: number;
  spiffeId: string;
  notBefore: number;
  notAfter: number;
  publicKeySha256: string;
  issuedAt: number;
  attestation: 'join-token' | 'svid' | 'direct';
  renewsSerial: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS authorities (
  generation INTEGER PRIMARY KEY CHECK (generation > 0),
  slot TEXT NOT NULL CHECK (slot IN ('A', 'B')),
  state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retiring', 'retired')),
  certificate BLOB NOT NULL,
  wrapped_key BLOB,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL CHECK (not_after > not_before),
  created_at INTEGER NOT NULL,
  published_sequence INTEGER NOT NULL,
  activate_at INTEGER,
  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
  activated_at INTEGER,
  retiring_at INTEGER,
  retired_at INTEGER,
  CHECK ((state = 'retired') = (wrapped_key IS NULL))
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS authorities_live_slot ON authorities (slot) WHERE state <> 'retired';
CREATE UNIQUE INDEX IF NOT EXISTS authorities_one_active ON authorities (state) WHERE state = 'active';
CREATE UNIQUE INDEX IF NOT EXISTS authorities_one_prepared ON authorities (state) WHERE state = 'prepared';
CREATE INDEX IF NOT EXISTS authorities_live ON authorities (generation) WHERE state <> 'retired';

CREATE TABLE IF NOT EXISTS issuance_log (
  serial TEXT PRIMARY KEY CHECK (length(serial) = 32),
  generation INTEGER NOT NULL REFERENCES authorities (generation),
  spiffe_id TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  public_key_sha256 TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  attestation TEXT NOT NULL CHECK (attestation IN ('join-token', 'svid', 'direct')),
  renews_serial TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS issuance_by_generation ON issuance_log (generation, not_after);
CREATE INDEX IF NOT EXISTS issuance_by_expiry ON issuance_log (not_after);
CREATE INDEX IF NOT EXISTS issuance_by_renewed ON issuance_log (renews_serial) WHERE renews_serial IS NOT NULL;

CREATE TABLE IF NOT EXISTS join_tokens (
  selector TEXT PRIMARY KEY,
  token_sha256 BLOB NOT NULL,
  service_name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
) STRICT;

CREATE TABLE IF NOT EXISTS bundle_acks (
  serial TEXT PRIMARY KEY,
  sequence INTEGER NOT NULL,
  acked_at INTEGER NOT NULL
) STRICT;
`;

/**
 * Opens (creating if needed) the CA database at `path` with the pragmas set explicitly, and the schema.
 * In a launched process `node:sqlite` is the launcher's guarded module, which only opens paths inside
 * the control plane's own data directory.
 */
export function openCaDatabase(path: string): DatabaseSync {
  if (path !== ':memory:') {
    // Created owner-only before SQLite opens it: SQLite gives the -wal and -shm files the database
    // file's mode. Their content is wrapped or hashed, but nobody else needs to read it.
    closeSync(openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600));
  }
  const db = new DatabaseSync(path);
  try {
    // WAL + synchronous=FULL: readers never block the writer, and an issued serial is on disk when the
    // commit returns.
    const kept = useDurableJournal(db, path);
    if (kept !== null) throw caError(CA_ERRORS.schema, { reason: 'journal_mode', got: kept });
    db.exec('PRAGMA foreign_keys = ON');
    // Deleted pages (a retired CA's wrapped key) are overwritten, not left in free pages.
    db.exec('PRAGMA secure_delete = ON');
    db.exec('PRAGMA busy_timeout = 5000');
    applyVersionedSchema(db, {
      sql: SCHEMA,
      version: CA_SCHEMA_VERSION,
      onCreate: (created) => created.prepare("INSERT INTO meta (key, value) VALUES ('bundle_sequence', '0')").run(),
      onMismatch: (found) => {
        throw caError(CA_ERRORS.schema, { found, expected: CA_SCHEMA_VERSION });
      },
    });
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

type Row = Record<string, SQLInputValue>;

function toAuthority(row: Row): AuthorityRow {
  return {
    generation: Number(row.generation),
    slot: row.slot as SlotName,
    state: row.state as AuthorityState,
    certificate: row.certificate as Uint8Array,
    wrappedKey: (row.wrapped_key as Uint8Array | null) ?? null,
    notBefore: Number(row.not_before),
    notAfter: Number(row.not_after),
    createdAt: Number(row.created_at),
    publishedSequence: Number(row.published_sequence),
    activateAt: row.activate_at === null ? null : Number(row.activate_at),
    forced: Number(row.forced) === 1,
    activatedAt: row.activated_at === null ? null : Number(row.activated_at),
    retiringAt: row.retiring_at === null ? null : Number(row.retiring_at),
    retiredAt: row.retired_at === null ? null : Number(row.retired_at),
  };
}

/** Outcome of an atomic join-token redemption. */
export type RedeemRow = { serviceName: string } | { state: 'unknown' | 'used' | 'expired' };

/**
 * Typed access to the CA tables. Every method is one statement or one synchronous transaction: no
 * `await` ever runs inside a transaction, so concurrent async callers in this process cannot interleave
 * statements into it, and `BEGIN IMMEDIATE` serializes against any other process on the file.
 */
export class CaStore {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  #sql(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs `fn` in one IMMEDIATE transaction; rolls back when it throws. `fn` must be synchronous. */
  transaction<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = fn();
      this.#db.exec('COMMIT');
      return result;
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  meta(key: string): string | null {
    const row = this.#sql('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.#sql('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(
      key,
      value,
    );
  }

  bundleSequence(): number {
    return Number(this.meta('bundle_sequence') ?? 0);
  }

  /** Increments the bundle sequence (the bundle's content changed) and returns the new value. */
  bumpBundleSequence(now: number): number {
    const next = this.bundleSequence() + 1;
    this.setMeta('bundle_sequence', String(next));
    this.setMeta('bundle_changed_at', String(now));
    return next;
  }

  /** Authorities that are not retired, oldest first. */
  liveAuthorities(): AuthorityRow[] {
    return (this.#sql("SELECT * FROM authorities WHERE state <> 'retired' ORDER BY generation").all() as Row[]).map(
      toAuthority,
    );
  }

  authority(generation: number): AuthorityRow | null {
    const row = this.#sql('SELECT * FROM authorities WHERE generation = ?').get(generation) as Row | undefined;
    return row ? toAuthority(row) : null;
  }

  authorityInState(state: 'active' | 'prepared'): AuthorityRow | null {
    // Literal states, so SQLite uses the partial unique indexes instead of scanning the CA history.
    const sql =
      state === 'active'
        ? "SELECT * FROM authorities WHERE state = 'active'"
        : "SELECT * FROM authorities WHERE state = 'prepared'";
    const row = this.#sql(sql).get() as Row | undefined;
    return row ? toAuthority(row) : null;
  }

  nextGeneration(): number {
    const row = this.#sql('SELECT COALESCE(MAX(generation), 0) + 1 AS next FROM authorities').get() as { next: number };
    return Number(row.next);
  }

  insertAuthority(row: AuthorityRow): void {
    this.#sql(
      `INSERT INTO authorities (generation, slot, state, certificate, wrapped_key, not_before, not_after, created_at,
         published_sequence, activate_at, forced, activated_at, retiring_at, retired_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      row.generation,
      row.slot,
      row.state,
      row.certificate,
      row.wrappedKey,
      row.notBefore,
      row.notAfter,
      row.createdAt,
      row.publishedSequence,
      row.activateAt,
      row.forced ? 1 : 0,
      row.activatedAt,
      row.retiringAt,
      row.retiredAt,
    );
  }

  /** Makes the prepared CA `generation` active and the current active one retiring. */
  activate(generation: number, now: number): void {
    this.#sql("UPDATE authorities SET state = 'retiring', retiring_at = ? WHERE state = 'active'").run(now);
    const result = this.#sql(
      "UPDATE authorities SET state = 'active', activated_at = ?, activate_at = NULL WHERE generation = ? AND state = 'prepared'",
    ).run(now, generation);
    if (Number(result.changes) !== 1) throw caError(CA_ERRORS.schema, { reason: 'activate', generation });
  }

  /** Retires a retiring CA: out of the bundle, wrapped key erased. */
  retire(generation: number, now: number): void {
    this.#sql(
      "UPDATE authorities SET state = 'retired', wrapped_key = NULL, retired_at = ? WHERE generation = ? AND state = 'retiring'",
    ).run(now, generation);
  }

  /**
   * KEK rotation (src/control/kek-rotation.ts): in one IMMEDIATE transaction, replaces the wrapped key
   * of every CA that has one (prepared, active, retiring) with `rewrap(row)`, or keeps it when that
   * returns null. Certificates and states are not touched. If `rewrap` throws, nothing changes.
   * Returns how many keys were replaced and how many kept.
   */
  rewrapKeys(rewrap: (row: { slot: SlotName; generation: number; wrappedKey: Uint8Array }) => Uint8Array | null): {
    rewrapped: number;
    kept: number;
  } {
    return this.transaction(() => {
      let rewrapped = 0;
      let kept = 0;
      for (const row of this.liveAuthorities()) {
        if (row.wrappedKey === null) continue;
        const next = rewrap({ slot: row.slot, generation: row.generation, wrappedKey: row.wrappedKey });
        if (next === null) {
          kept++;
          continue;
        }
        const result = this.#sql(
          "UPDATE authorities SET wrapped_key = ? WHERE generation = ? AND state <> 'retired'",
        ).run(next, row.generation);
        if (Number(result.changes) !== 1)
          throw caError(CA_ERRORS.schema, { reason: 'rewrap', generation: row.generation });
        rewrapped++;
      }
      return { rewrapped, kept };
    });
  }

  /** Marks the prepared CA for a forced activation no later than `activateAt`. */
  forcePrepared(generation: number, activateAt: number): void {
    this.#sql("UPDATE authorities SET forced = 1, activate_at = ? WHERE generation = ? AND state = 'prepared'").run(
      activateAt,
      generation,
    );
  }

  /** Latest expiry among the SVIDs `generation` signed, or null when it signed none. */
  lastLeafNotAfter(generation: number): number | null {
    const row = this.#sql('SELECT MAX(not_after) AS last FROM issuance_log WHERE generation = ?').get(generation) as {
      last: number | null;
    };
    return row.last === null ? null : Number(row.last);
  }

  /** SVIDs of `generation` still valid at `now`. */
  liveLeafCount(generation: number, now: number): number {
    const row = this.#sql('SELECT COUNT(*) AS n FROM issuance_log WHERE generation = ? AND not_after > ?').get(
      generation,
      now,
    ) as { n: number };
    return Number(row.n);
  }

  /**
   * Records a batch of issuances in one transaction (one durable commit for all: group commit). Each
   * row is inserted only if its CA still signs (active or retiring) and its serial is new; the result
   * says, per row, whether it was recorded. A CA retired while the SVID was being signed, or a serial
   * collision, leaves no record, and the caller signs again.
   */
  recordIssuances(batch: readonly IssuanceRow[]): boolean[] {
    return this.transaction(() =>
      batch.map((row) => {
        const result = this.#sql(
          `INSERT INTO issuance_log (serial, generation, spiffe_id, not_before, not_after, public_key_sha256, issued_at,
             attestation, renews_serial)
           SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?
           WHERE EXISTS (SELECT 1 FROM authorities WHERE generation = ? AND state IN ('active', 'retiring'))
           ON CONFLICT (serial) DO NOTHING`,
        ).run(
          row.serial,
          row.generation,
          row.spiffeId,
          row.notBefore,
          row.notAfter,
          row.publicKeySha256,
          row.issuedAt,
          row.attestation,
          row.renewsSerial,
          row.generation,
        );
        if (Number(result.changes) !== 1) return false;
        return true;
      }),
    );
  }

  issuance(serial: string): IssuanceRow | null {
    const row = this.#sql('SELECT * FROM issuance_log WHERE serial = ?').get(serial) as Row | undefined;
    if (!row) return null;
    return {
      serial: String(row.serial),
      generation: Number(row.generation),
      spiffeId: String(row.spiffe_id),
      notBefore: Number(row.not_before),
      notAfter: Number(row.not_after),
      publicKeySha256: String(row.public_key_sha256),
      issuedAt: Number(row.issued_at),
      attestation: row.attestation as IssuanceRow['attestation'],
      renewsSerial: row.renews_serial === null ? null : String(row.renews_serial),
    };
  }

  /** Records that SVID `serial` installed bundle `sequence` (never lowers a recorded sequence). */
  acknowledgeBundle(serial: string, sequence: number, now: number): void {
    this.#sql(
      `INSERT INTO bundle_acks (serial, sequence, acked_at) VALUES (?, ?, ?)
       ON CONFLICT (serial) DO UPDATE SET sequence = MAX(sequence, excluded.sequence), acked_at = excluded.acked_at`,
    ).run(serial, sequence, now);
  }

  /**
   * Live SVID holders that have not confirmed bundle `sequence`, published at `publishedAt`: unexpired
   * SVIDs (not edge certificates: their relying parties are browsers, which read bundle.pem) issued up to the publication (an SVID issued after it came with that bundle), that no renewal
   * has superseded, and whose acknowledged sequence is lower.
   */
  holdersBehind(sequence: number, publishedAt: number, now: number): number {
    const row = this.#sql(
      `SELECT COUNT(*) AS n FROM issuance_log l
       LEFT JOIN bundle_acks a ON a.serial = l.serial
       WHERE l.not_after > ?
         AND l.spiffe_id LIKE 'spiffe://%'
         AND l.issued_at <= ?
         AND COALESCE(a.sequence, 0) < ?
         AND NOT EXISTS (SELECT 1 FROM issuance_log r WHERE r.renews_serial = l.serial)`,
    ).get(now, publishedAt, sequence) as { n: number };
    return Number(row.n);
  }

  insertJoinToken(
    selector: string,
    tokenSha256: Uint8Array,
    serviceName: string,
    now: number,
    expiresAt: number,
  ): void {
    this.#sql(
      'INSERT INTO join_tokens (selector, token_sha256, service_name, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
    ).run(selector, tokenSha256, serviceName, now, expiresAt);
  }

  joinToken(
    selector: string,
  ): { tokenSha256: Uint8Array; serviceName: string; usedAt: number | null; expiresAt: number } | null {
    const row = this.#sql(
      'SELECT token_sha256, service_name, used_at, expires_at FROM join_tokens WHERE selector = ?',
    ).get(selector) as Row | undefined;
    if (!row) return null;
    return {
      tokenSha256: row.token_sha256 as Uint8Array,
      serviceName: String(row.service_name),
      usedAt: row.used_at === null ? null : Number(row.used_at),
      expiresAt: Number(row.expires_at),
    };
  }

  /**
   * Marks the token used if, at this instant, it is unused and unexpired: one UPDATE with the conditions
   * in its WHERE clause, so of two concurrent redemptions (in this process or another) exactly one wins.
   */
  consumeJoinToken(selector: string, now: number): string | null {
    const row = this.#sql(
      'UPDATE join_tokens SET used_at = ? WHERE selector = ? AND used_at IS NULL AND expires_at > ? RETURNING service_name',
    ).get(now, selector, now) as { service_name: string } | undefined;
    return row?.service_name ?? null;
  }

  /** Housekeeping: drops tokens long expired and acknowledgements of expired SVIDs. */
  purge(now: number, tokenRetentionMs: number): void {
    this.#sql('DELETE FROM join_tokens WHERE expires_at < ?').run(now - tokenRetentionMs);
    this.#sql('DELETE FROM bundle_acks WHERE serial IN (SELECT serial FROM issuance_log WHERE not_after <= ?)').run(
      now,
    );
  }

  close(): void {
    this.#statements.clear();
    if (this.#db.isOpen) this.#db.close();
  }
}
