import { isLabel, type Label, type Labels, NO_LABELS } from './labels.ts';
import type { SecretRecord, VersionMeta, VersionRecord } from './store.ts';

/**
 * Decoding of database rows, shared by both stores. PostgreSQL returns BIGINT as a string and BYTEA as a
 * Buffer; SQLite returns INTEGER as a number and BLOB as a Uint8Array. Both become numbers and Buffers.
 */
export type Row = Record<string, unknown>;

/** AEAD tag length: the stored ciphertext is the value plus this. */
const TAG_BYTES = 16;

export function num(value: unknown): number {
  const n = typeof value === 'string' || typeof value === 'bigint' ? Number(value) : (value as number);
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new TypeError('expected an integer column');
  return n;
}

export function numOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : num(value);
}

export function bytes(value: unknown): Buffer {
  if (!(value instanceof Uint8Array)) throw new TypeError('expected a binary column');
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** Labels from `label, version` rows. */
export function labelsFrom(rows: readonly Row[]): Labels {
  const labels: Record<Label, number | null> = { ...NO_LABELS };
  for (const row of rows) {
    if (isLabel(row['label'])) labels[row['label']] = num(row['version']);
  }
  return Object.freeze(labels);
}

export function secretFrom(row: Row, labels: Labels): SecretRecord {
  return {
    name: String(row['name']),
    createdBy: String(row['created_by']),
    createdAt: num(row['created_at']),
    updatedAt: num(row['updated_at']),
    latestVersion: num(row['latest_version']),
    rotationIntervalMs: numOrNull(row['rotation_interval_ms']),
    rotationDueAt: numOrNull(row['rotation_due_at']),
    labels,
  };
}

export function versionMetaFrom(row: Row): VersionMeta {
  return {
    name: String(row['name']),
    version: num(row['version']),
    createdBy: String(row['created_by']),
    createdAt: num(row['created_at']),
    kekId: String(row['kek_id']),
    format: num(row['format']),
    size: num(row['ciphertext_length']) - TAG_BYTES,
  };
}

export function versionFrom(row: Row): VersionRecord {
  return {
    ...versionMetaFrom(row),
    wrappedKey: bytes(row['wrapped_key']),
    nonce: bytes(row['nonce']),
    ciphertext: bytes(row['ciphertext']),
  };
}

/** The rotation due date after a write: restarts when `current` moves, else unchanged. */
export function rotationDue(
  intervalMs: number | null,
  previousDue: number | null,
  currentMoved: boolean,
  now: number,
): number | null {
  if (intervalMs === null) return null;
  return currentMoved || previousDue === null ? now + intervalMs : previousDue;
}

/** `label, version` pairs to insert for `labels`. */
export function labelRows(labels: Labels): Array<[Label, number]> {
  const rows: Array<[Label, number]> = [];
  for (const label of ['current', 'previous', 'pending'] as const) {
    const version = labels[label];
    if (version !== null) rows.push([label, version]);
  }
  return rows;
}

/** Columns of a version row (the ciphertext length for metadata-only reads). */
export const VERSION_META_COLUMNS =
  'name, version, created_by, created_at, kek_id, format, length(ciphertext) AS ciphertext_length';
export const VERSION_COLUMNS = `${VERSION_META_COLUMNS}, wrapped_key, nonce, ciphertext`;
/** {@link VERSION_COLUMNS} of a `versions v` joined with `labels l`. */
export const VERSION_COLUMNS_JOINED = VERSION_COLUMNS.split(',')
  .map((c) => c.trim())
  .map((c) => (c.startsWith('length(') ? c.replace('length(', 'length(v.') : `v.${c}`))
  .join(', ');
