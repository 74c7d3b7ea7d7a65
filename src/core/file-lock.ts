import { DatabaseSync } from 'node:sqlite';
import { RampartError } from './errors.ts';

/**
 * An exclusive operating-system lock on a file, held until released or until the process dies. Node
 * has no flock, so it is taken through SQLite: the file is opened as a database with `locking_mode =
 * EXCLUSIVE` and one empty `BEGIN EXCLUSIVE`/`COMMIT`, after which SQLite keeps its exclusive lock
 * until the connection closes (sqlite.org/pragma.html#pragma_locking_mode). It is a POSIX record lock,
 * which the kernel drops when the holder dies (a holder killed with SIGKILL never blocks the next
 * start); SQLite tracks its locks per file within a process, so a second lock in the same process is
 * refused too. The file holds no data. Filesystems that do not honour fcntl locks (some NFS setups)
 * do not honour this either.
 */
export interface FileLock {
  readonly file: string;
  /** Releases the lock (closes its connection). Idempotent. */
  release(): void;
}

/** Stable codes of lock failures. */
export const FILE_LOCK_ERRORS = {
  /** The file cannot be used as a lock (a directory, not a lock file, no permission). */
  unusable: 'LOCK_ERR_UNUSABLE',
} as const;

/** SQLITE_BUSY and SQLITE_LOCKED: another connection holds the file. */
const BUSY = new Set([5, 6]);

/**
 * Takes the lock without waiting: the lock, or null while another holder has it. Throws
 * LOCK_ERR_UNUSABLE naming the file when it cannot be a lock at all.
 */
export function tryLockFile(file: string): FileLock | null {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(file, { timeout: 0 });
  } catch (cause) {
    throw new RampartError(FILE_LOCK_ERRORS.unusable, 'lock file unusable', { detail: { file }, cause });
  }
  try {
    db.exec('PRAGMA locking_mode = EXCLUSIVE');
    // No journal file beside the lock file: nothing is ever written to it.
    db.exec('PRAGMA journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
  } catch (cause) {
    db.close();
    if (BUSY.has(Number((cause as { errcode?: unknown }).errcode))) return null;
    throw new RampartError(FILE_LOCK_ERRORS.unusable, 'lock file unusable', { detail: { file }, cause });
  }
  let held = true;
  return {
    file,
    release() {
      if (!held) return;
      held = false;
      db.close();
    },
  };
}
