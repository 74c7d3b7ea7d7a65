import type { CaStore, IssuanceRow } from './database.ts';
import { CA_ERRORS, caError } from './errors.ts';

/**
 * Group commit for the issuance log. Every SVID must be on disk (synchronous=FULL) before it is
 * returned, and one fsync per SVID caps issuance at the disk's fsync rate (a few hundred per second on
 * a busy disk). Records that arrive in the same event-loop turn are written in one transaction on the
 * next turn; each caller's promise settles when its batch is durable. While a commit blocks, the
 * signatures finishing meanwhile queue up, so batches grow exactly when the disk is the bottleneck.
 */
export interface IssuanceJournal {
  /** Resolves true once durable, false when the row was refused (its CA no longer signs, or serial taken). */
  record(row: IssuanceRow): Promise<boolean>;
  /** Writes what is queued now, synchronously (before closing the database). */
  flush(): void;
}

interface Pending {
  row: IssuanceRow;
  resolve: (recorded: boolean) => void;
  reject: (error: unknown) => void;
}

export function createIssuanceJournal(store: CaStore): IssuanceJournal {
  let queue: Pending[] = [];
  let scheduled = false;
  let closed = false;

  const flush = () => {
    scheduled = false;
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    let results: boolean[];
    try {
      results = store.recordIssuances(batch.map((item) => item.row));
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    batch.forEach((item, i) => {
      item.resolve(results[i] === true);
    });
  };

  return {
    record(row) {
      if (closed) return Promise.reject(caError(CA_ERRORS.closed));
      return new Promise<boolean>((resolve, reject) => {
        queue.push({ row, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
    flush() {
      flush();
      closed = true;
    },
  };
}
