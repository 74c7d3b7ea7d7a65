import type { Label, Labels } from './labels.ts';

/**
 * The secrets module's storage interface, implemented by SQLite (sqlite-store.ts, the default) and
 * PostgreSQL (postgres-store.ts). One shared test suite runs against both (test/secrets/store-suite.ts).
 *
 * Tables (the same in both):
 * - `meta`: schema version, the KEK check value, the KEK's id, the wrapped audit HMAC key.
 * - `secrets`: one row per name: who created it and when, the highest version, the rotation interval and
 *   when the next rotation is due.
 * - `versions`: one row per (name, version): the wrapped data key, nonce, ciphertext, format, the id of
 *   the KEK that wrapped the data key, who created it and when. Never plaintext.
 * - `labels`: (name, label) → version; a version holds at most one label (unique), labels point at
 *   existing versions (foreign key).
 * - `kek_history`: every KEK id the store was ever under, with when it took over and when it retired.
 *
 * Writes are compare-and-set: the service computes the new state from what it read (labels.ts) and the
 * store commits it only if nothing changed in between, atomically (SEC_ERR_CONFLICT otherwise). Times
 * are milliseconds since the epoch.
 */
export interface SecretsStore {
  readonly kind: 'sqlite' | 'postgres';
  /** The store's keys and check value, or null before initialisation. */
  readMeta(): Promise<StoreMeta | null>;
  /** Writes the meta of a fresh store unless it exists; false when another opener got there first. */
  initMeta(meta: StoreMeta, now: number): Promise<boolean>;
  /** One secret's metadata and labels, or null. */
  secret(name: string): Promise<SecretRecord | null>;
  /** Every secret's metadata and labels, by name. */
  listSecrets(): Promise<SecretRecord[]>;
  /** The version a label names, or null (no secret, or no version under that label). */
  versionByLabel(name: string, label: Label): Promise<VersionRecord | null>;
  /** One version by number, or null. */
  version(name: string, version: number): Promise<VersionRecord | null>;
  /** Every version's metadata (no key material), oldest first. */
  history(name: string): Promise<VersionMeta[]>;
  /**
   * Inserts `write.version` (which must be one more than the stored highest, or 1 for a new secret) and
   * sets the labels to `write.labels`, if the stored labels still equal `write.expectedLabels`.
   * Throws SEC_ERR_CONFLICT otherwise; nothing is written then.
   */
  commitVersion(write: VersionWrite): Promise<void>;
  /** Sets the labels to `next` if they still equal `expected` (SEC_ERR_CONFLICT otherwise). */
  commitLabels(write: LabelsWrite): Promise<void>;
  /**
   * KEK rotation, in one transaction: replaces every version's wrapped key with `rewrap(row)` and its KEK
   * id with `next.kekId`, replaces the meta (check value, KEK id, audit key) with `next`, and records the
   * old KEK id as retired. Ciphertexts and nonces are not touched. If `rewrap` throws, nothing changes.
   * Returns the number of versions re-wrapped.
   */
  rewrapAll(rewrap: (row: WrappedKeyRow) => Uint8Array, next: StoreMeta, now: number): Promise<number>;
  /** Every KEK id the store was under, oldest first. */
  kekHistory(): Promise<KekHistoryRow[]>;
  close(): Promise<void>;
}

/** The store-wide values sealed under the KEK. */
export interface StoreMeta {
  /** Id (key check value) of the KEK everything is wrapped under. */
  kekId: string;
  /** The known constant sealed under the KEK (envelope.ts makeKekCheck). */
  kekCheck: Uint8Array;
  /** The audit HMAC key, wrapped by the KEK. */
  wrappedAuditKey: Uint8Array;
}

/** One secret's metadata. */
export interface SecretRecord {
  name: string;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
  /** Highest version number. */
  latestVersion: number;
  /** How often the secret should be rotated, or null. */
  rotationIntervalMs: number | null;
  /** When the current value is due for rotation (last time `current` moved + interval), or null. */
  rotationDueAt: number | null;
  labels: Labels;
}

/** A version's metadata. */
export interface VersionMeta {
  name: string;
  version: number;
  createdBy: string;
  createdAt: number;
  kekId: string;
  format: number;
  /** Value length in bytes (the ciphertext minus its tag; lengths are not secret here). */
  size: number;
}

/** A version with its encrypted parts. */
export interface VersionRecord extends VersionMeta {
  wrappedKey: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** A new version, its labels afterwards, and the labels the writer saw. */
export interface VersionWrite {
  name: string;
  version: number;
  createdBy: string;
  createdAt: number;
  wrappedKey: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
  kekId: string;
  format: number;
  expectedLabels: Labels;
  labels: Labels;
  /** Set the secret's rotation interval (undefined: keep it; null: clear it). */
  rotationIntervalMs?: number | null;
}

/** A label move. `currentMoved`: the current label changed, so the rotation due date restarts. */
export interface LabelsWrite {
  name: string;
  expected: Labels;
  next: Labels;
  now: number;
}

/** The row fields a KEK rotation needs. */
export interface WrappedKeyRow {
  name: string;
  version: number;
  wrappedKey: Uint8Array;
  kekId: string;
}

/** A KEK the store was under. */
export interface KekHistoryRow {
  kekId: string;
  activatedAt: number;
  /** null for the KEK in use. */
  retiredAt: number | null;
}
