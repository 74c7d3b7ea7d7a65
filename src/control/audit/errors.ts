import { AUDIT_EVENT_ERROR } from '../../core/audit-event.ts';
import { RampartError } from '../../core/errors.ts';

/**
 * Stable codes of the audit log. Messages are fixed and boring; what went wrong is in `detail`.
 */
export const AUDIT_ERRORS = {
  /** An event failed validation (src/core/audit-event.ts): unknown field, bad format, secret-looking value. */
  event: AUDIT_EVENT_ERROR,
  /** An event id already in the log with different content: a replay cannot rewrite history. */
  conflict: 'AUDIT_ERR_ID_CONFLICT',
  /** More events wait for the disk than the log holds in memory: retry later (503). */
  overloaded: 'AUDIT_ERR_OVERLOADED',
  /** The database refused a write or a read (disk full, I/O error, locked beyond the busy timeout). */
  storage: 'AUDIT_ERR_STORAGE',
  /**
   * Another audit log process holds this PostgreSQL log's writer lock (two control planes on one
   * database): at open, or when this one reconnects after losing its writer connection. For SQLite:
   * another log holds the file's writer lock (writer-lock.ts) at open, or the stored tree grew under
   * this writer (`detail.reason` `tree_moved`), which then refuses to write.
   */
  locked: 'AUDIT_ERR_LOCKED',
  /**
   * An audit spool directory holds something its owner cannot place (a cursor it cannot read, a
   * `.spool` file that is not a segment): refused at open rather than skipped; `detail.file` names it.
   */
  spool: 'AUDIT_ERR_SPOOL',
  /** The log was closed. */
  closed: 'AUDIT_ERR_CLOSED',
  /** Options are invalid (origin, paths, intervals). */
  config: 'AUDIT_ERR_CONFIG',
  /** The database was written by another schema version, or belongs to another origin. */
  schema: 'AUDIT_ERR_SCHEMA',
  /** The stored tree contradicts the last signed checkpoint at open: the log refuses to extend it. */
  tampered: 'AUDIT_ERR_TAMPERED',
  /** The signing key cannot be unwrapped with this KEK (wrong key, altered row): the log stays sealed. */
  sealed: 'AUDIT_ERR_SEALED',
  /** A signed note or checkpoint is malformed, or no trusted signature on it verifies. */
  note: 'AUDIT_ERR_NOTE',
  /** A verifier key string is malformed. */
  verifierKey: 'AUDIT_ERR_VERIFIER_KEY',
  /** A proof was asked for sizes or indexes outside the log. */
  range: 'AUDIT_ERR_RANGE',
} as const;

const STATUS: Record<string, number> = {
  [AUDIT_ERRORS.event]: 400,
  [AUDIT_ERRORS.conflict]: 409,
  [AUDIT_ERRORS.overloaded]: 503,
  [AUDIT_ERRORS.closed]: 503,
  [AUDIT_ERRORS.locked]: 503,
  [AUDIT_ERRORS.note]: 400,
  [AUDIT_ERRORS.verifierKey]: 400,
  [AUDIT_ERRORS.range]: 400,
};

const MESSAGES: Record<string, string> = {
  [AUDIT_ERRORS.conflict]: 'audit event id already used by another event',
  [AUDIT_ERRORS.overloaded]: 'audit log is overloaded',
  [AUDIT_ERRORS.storage]: 'audit log storage failed',
  [AUDIT_ERRORS.closed]: 'audit log is closed',
  [AUDIT_ERRORS.spool]: 'audit spool is not usable',
  [AUDIT_ERRORS.locked]: 'audit log has another writer',
  [AUDIT_ERRORS.config]: 'invalid audit log configuration',
  [AUDIT_ERRORS.schema]: 'audit database is not usable by this version',
  [AUDIT_ERRORS.tampered]: 'audit log does not match its last signed checkpoint',
  [AUDIT_ERRORS.sealed]: 'audit signing key cannot be unwrapped',
  [AUDIT_ERRORS.note]: 'signed note is invalid',
  [AUDIT_ERRORS.verifierKey]: 'verifier key is invalid',
  [AUDIT_ERRORS.range]: 'requested range is outside the log',
};

/** A RampartError with the audit code's status and fixed message. */
export function auditError(code: string, detail?: Record<string, unknown>, cause?: unknown): RampartError {
  return new RampartError(code, MESSAGES[code] ?? 'audit log error', { status: STATUS[code] ?? 500, detail, cause });
}
