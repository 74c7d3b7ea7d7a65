import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CaStore, IssuanceRow } from './database.ts';
import { createIssuanceJournal } from './issuance-journal.ts';

/** A store double that records how rows arrive (the real store is covered in database.test.ts). */
function fakeStore(decide: (row: IssuanceRow) => boolean | Error) {
  const batches: string[][] = [];
  const store = {
    recordIssuances(batch: readonly IssuanceRow[]) {
      batches.push(batch.map((row) => row.serial));
      return batch.map((row) => {
        const verdict = decide(row);
        if (verdict instanceof Error) throw verdict;
        return verdict;
      });
    },
  };
  return { store: store as unknown as CaStore, batches };
}

const row = (serial: string) => ({ serial }) as IssuanceRow;

describe('issuance journal (group commit)', () => {
  test('records made in the same turn share one transaction; later ones get the next', async () => {
    const { store, batches } = fakeStore(() => true);
    const journal = createIssuanceJournal(store);
    const first = await Promise.all(['a', 'b', 'c'].map((s) => journal.record(row(s))));
    const second = await journal.record(row('d'));
    assert.deepEqual(first, [true, true, true]);
    assert.equal(second, true);
    assert.deepEqual(batches, [['a', 'b', 'c'], ['d']]);
  });

  test('each caller learns its own row’s fate; a failed commit rejects the whole batch', async () => {
    const { store } = fakeStore((r) => (r.serial === 'boom' ? new Error('disk full') : r.serial !== 'retired'));
    const journal = createIssuanceJournal(store);
    assert.deepEqual(await Promise.all([journal.record(row('ok')), journal.record(row('retired'))]), [true, false]);
    const results = await Promise.allSettled([journal.record(row('x')), journal.record(row('boom'))]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
  });

  test('flush writes what is queued synchronously; afterwards records are refused', async () => {
    const { store, batches } = fakeStore(() => true);
    const journal = createIssuanceJournal(store);
    const pending = journal.record(row('last'));
    journal.flush();
    assert.deepEqual(batches, [['last']]);
    assert.equal(await pending, true);
    await assert.rejects(journal.record(row('late')), { code: 'CA_ERR_CLOSED' });
  });
});
