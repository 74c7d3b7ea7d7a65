/**
 * The shared rate-limit table across worker threads: the gateway runs one HTTP server per worker
 * thread on one port (SO_REUSEPORT), and a limit must hold for the gateway as a whole. Here several
 * threads hammer one table at once and the admitted totals must be exactly what GCRA allows: not about
 * right, exactly (a lost update between two threads would admit one request too many).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { SharedRateLimitTable } from '../src/gateway/rate-limit/shared-table.ts';

const WORKERS = 4;
const ROUTE = 'orders';
// 1 ms interval: burst 10,000, then exactly one more per elapsed millisecond.
const POLICY = { limit: 10_000, periodMs: 10_000 };
const T0 = 1_700_000_000_000;

describe('shared rate-limit table across worker threads', () => {
  const table = SharedRateLimitTable.create({ capacity: 10_000 });
  const gate = new Int32Array(new SharedArrayBuffer(8));
  const workers: Worker[] = [];
  let go = 0;

  before(async () => {
    for (let i = 0; i < WORKERS; i++) {
      const worker = new Worker(new URL('./fixtures/rate-limit-worker.ts', import.meta.url), {
        workerData: { table: table.transferable, gate, routeId: ROUTE, policy: POLICY },
      });
      workers.push(worker);
    }
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once('online', resolve))));
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.terminate()));
  });

  /** One round in every worker at once; the admitted counts per key, summed over workers. */
  async function round(now: number, attempts: number, keysOf: (worker: number) => string[]) {
    go++;
    const answers = workers.map(
      (worker, i) =>
        new Promise<Record<string, number>>((resolve, reject) => {
          worker.once('message', (m: { admitted: Record<string, number> }) => resolve(m.admitted));
          worker.once('error', reject);
          worker.postMessage({ now, attempts, keys: keysOf(i), go });
        }),
    );
    while (Atomics.load(gate, 1) < WORKERS * go) await delay(1);
    Atomics.store(gate, 0, go);
    Atomics.notify(gate, 0);
    const totals: Record<string, number> = {};
    for (const admitted of await Promise.all(answers)) {
      for (const [key, n] of Object.entries(admitted)) totals[key] = (totals[key] ?? 0) + n;
    }
    return totals;
  }

  test('one hot key: exactly the burst is admitted, then exactly one per elapsed interval', async () => {
    // 4 × 50,000 attempts at one instant against a burst of 10,000.
    assert.deepEqual(await round(T0, 50_000, () => ['hot']), { hot: 10_000 });
    // Nothing more at the same instant, from any thread.
    assert.deepEqual(await round(T0, 5_000, () => ['hot']), { hot: 0 });
    // 2,500 ms later exactly 2,500 more (interval 1 ms), however the threads interleave.
    assert.deepEqual(await round(T0 + 2_500, 50_000, () => ['hot']), { hot: 2_500 });
    // Main thread shares the same state: still exhausted at that instant.
    assert.equal(table.take(ROUTE, 'hot', POLICY, T0 + 2_500).allowed, false);
  });

  test('shared and private keys at once: every key gets exactly its own budget', async () => {
    const shared = ['s1', 's2', 's3'];
    const totals = await round(T0, 120_000, (i) => [...shared, `own-${i}`]);
    // 120,000 attempts over 4 keys per worker: 30,000 per key per worker, far above the burst.
    for (const key of shared) assert.equal(totals[key], POLICY.limit, key);
    for (let i = 0; i < WORKERS; i++) assert.equal(totals[`own-${i}`], POLICY.limit, `own-${i}`);
    assert.equal(table.stats().evictions, 0);
  });

  test('a table attached in another thread is the same table, not a copy', async () => {
    // Spend one key from the main thread; the workers see it spent.
    for (let i = 0; i < POLICY.limit; i++) table.take(ROUTE, 'from-main', POLICY, T0);
    assert.deepEqual(await round(T0, 1_000, () => ['from-main']), { 'from-main': 0 });
  });
});
