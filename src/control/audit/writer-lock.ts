import { hostname } from 'node:os';
import type { DatabaseSync } from 'node:sqlite';
import { isRampartError } from '../../core/errors.ts';
import { type FileLock, tryLockFile } from '../../core/file-lock.ts';
import { AuditStore, openAuditDatabase } from './database.ts';
import { AUDIT_ERRORS, auditError } from './errors.ts';

/**
 * The SQLite audit log's one-writer guard (the PostgreSQL log's advisory lock, for a file). Two
 * processes appending to one `audit.db` would each extend the tree from their own in-memory
 * frontier; the control plane's endpoint file is a check the CLI makes, not a lock.
 *
 * The lock is an exclusive operating-system lock on a sibling file, `<audit.db>.lock`
 * (core/file-lock.ts: dropped by the kernel when the holder dies, refused to a second holder in this
 * process or another). The log's own file is not locked: `rampart audit verify|tail|query` and the
 * verifier read it (WAL) while the writer runs.
 *
 * The holder records itself in the log's `meta` (`writer`: pid, host, since) once it holds the lock,
 * so that a refused writer can name it. The lock file holds no data; removing it while a writer runs
 * would let a second writer lock a new file, which the log's check of the stored tree at every commit
 * still catches (log.ts).
 */
export interface AuditWriterLock {
  /** The lock file. */
  readonly file: string;
  /** Releases the lock (closes its connection). Idempotent. */
  release(): void;
}

/** What a writer records about itself in `meta`, and a refusal names. */
export interface AuditWriterHolder {
  pid: number;
  host: string;
  /** When it took the lock (ISO 8601). */
  since: string;
}

/** The `meta` key of {@link AuditWriterHolder}. */
export const WRITER_META_KEY = 'writer';

/** The lock file of the audit database at `path`. */
export const writerLockFile = (path: string): string => `${path}.lock`;

/**
 * Takes the writer lock of the audit database at `path`, without waiting: AUDIT_ERR_LOCKED (with
 * `detail.lock`, and `detail.holder` when the holder recorded itself) while another connection holds
 * it; AUDIT_ERR_STORAGE naming the lock file when it cannot be used at all.
 */
export function lockAuditWriter(path: string): AuditWriterLock {
  const file = writerLockFile(path);
  let lock: FileLock | null;
  try {
    lock = tryLockFile(file);
  } catch (cause) {
    throw auditError(AUDIT_ERRORS.storage, { reason: 'writer_lock', file }, cause);
  }
  if (lock === null) throw auditError(AUDIT_ERRORS.locked, { path, lock: file, holder: readWriterHolder(path) });
  return lock;
}

/** This process, as the holder to record. */
export function currentWriterHolder(now: number = Date.now()): AuditWriterHolder {
  return { pid: process.pid, host: hostname(), since: new Date(now).toISOString() };
}

/**
 * The last holder recorded in the database at `path` (opened read-only), or null when there is no
 * database yet, no record, or an unreadable one: the name is for the refusal's message only.
 */
function readWriterHolder(path: string): AuditWriterHolder | null {
  let db: DatabaseSync;
  try {
    db = openAuditDatabase(path, { readOnly: true });
  } catch (err) {
    if (isRampartError(err)) return null;
    throw err;
  }
  try {
    const value = JSON.parse(new AuditStore(db).meta(WRITER_META_KEY) ?? 'null') as Partial<AuditWriterHolder> | null;
    if (
      value === null ||
      typeof value !== 'object' ||
      !Number.isSafeInteger(value.pid) ||
      typeof value.host !== 'string' ||
      typeof value.since !== 'string'
    ) {
      return null;
    }
    return { pid: value.pid as number, host: value.host, since: value.since };
  } catch {
    return null;
  } finally {
    db.close();
  }
}
