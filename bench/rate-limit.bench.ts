/**
 * Benchmarks of the rate-limit stores. Not a test: `node bench/rate-limit.bench.ts` prints
 *
 * - memory: the shared table sized for 1,000,000 keys (issue 3: ≤ 200 MB), its SharedArrayBuffer size,
 *   RSS before and after filling it with 1,000,000 live keys, bytes per key, and how many were kept;
 * - ns per `take` on one thread: one hot key, 4,000 rotating keys (digest cache hits), 1,000,000
 *   distinct keys (an HMAC per take);
 * - ns per `take` with 2 worker threads on one table: the same key (every take contends for one
 *   bucket lock) and distinct keys;
 * - Redis (when 127.0.0.1:6379 answers, or RAMPART_TEST_REDIS_URL): round trips per second, one at a
 *   time and 64 in flight.
 */
import { randomBytes } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { RedisRateLimitStore } from '../src/gateway/rate-limit/redis-store.ts';
import { SharedRateLimitTable, type SharedTableTransferable } from '../src/gateway/rate-limit/shared-table.ts';

const NOW = Date.now();
const WIDE = { limit: 1_000_000_000, periodMs: 1_000_000 }; // never refuses: measures the full admit path
const MB = 1024 * 1024;

interface Job {
  table: SharedTableTransferable;
  keys: 'same' | 'distinct';
  count: number;
  id: number;
}

function run(table: SharedRateLimitTable, job: Omit<Job, 'table'>): number {
  const key = job.keys === 'same' ? () => 'hot' : (i: number) => `w${job.id}-${i % 4_000}`;
  const start = process.hrtime.bigint();
  for (let i = 0; i < job.count; i++) table.take('bench', key(i), WIDE, NOW + i * 1e-3);
  return Number(process.hrtime.bigint() - start) / job.count;
}

if (!isMainThread) {
  const job = workerData as Job;
  const table = SharedRateLimitTable.attach(job.table);
  run(table, { ...job, count: 100_000 }); // warm up
  parentPort!.postMessage(run(table, job));
} else {
  const out = (line: string) => process.stdout.write(`${line}\n`);

  // Memory: 1,000,000 keys.
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const big = SharedRateLimitTable.create({ capacity: 1_000_000 });
  const rssCreated = process.memoryUsage().rss;
  const fill = 1_000_000;
  const minute = { limit: 100, periodMs: 60_000 };
  let start = process.hrtime.bigint();
  for (let i = 0; i < fill; i++) big.take('r', `198.51.${(i >>> 16) & 255}.${i & 65535}`, minute, NOW);
  const nsFill = Number(process.hrtime.bigint() - start) / fill;
  global.gc?.();
  const { rss: rssFull, heapUsed } = process.memoryUsage();
  const stats = big.stats();
  const kept = big.liveKeys(NOW);
  out('## memory (shared table, capacity 1,000,000 keys)');
  out(
    `SharedArrayBuffer            ${(stats.bytes / MB).toFixed(1)} MiB (${(stats.bytes / 1_000_000).toFixed(1)} bytes per key of capacity)`,
  );
  out(
    `RSS before / created / full  ${(rss0 / MB).toFixed(0)} / ${(rssCreated / MB).toFixed(0)} / ${(rssFull / MB).toFixed(0)} MiB (process total)`,
  );
  out(
    `RSS growth for 1,000,000 keys ${((rssFull - rss0) / MB).toFixed(1)} MiB (the table, plus the JS heap's high-water mark from 1,000,000 key strings; heap in use after GC ${(heapUsed / MB).toFixed(0)} MiB)`,
  );
  out(`keys kept                    ${kept} of ${fill} (${stats.evictions} evicted from full buckets)`);
  out(`insert (distinct keys)       ${nsFill.toFixed(0)} ns per take`);

  // One thread.
  out('\n## ns per take, one thread');
  const table = SharedRateLimitTable.create({ capacity: 1_000_000 });
  for (const [name, keys, count] of [
    ['one hot key', 'same', 2_000_000],
    ['4,000 rotating keys (cached)', 'distinct', 2_000_000],
  ] as const) {
    run(table, { keys, count: 200_000, id: 0 });
    const best = Math.min(...[0, 1, 2].map(() => run(table, { keys, count, id: 0 })));
    out(`${name.padEnd(28)} ${best.toFixed(0).padStart(6)} ns`);
  }
  const misses = 1_000_000;
  start = process.hrtime.bigint();
  for (let i = 0; i < misses; i++) table.take('miss', `k${i}-${NOW}`, WIDE, NOW);
  out(
    `${'1,000,000 distinct keys'.padEnd(28)} ${(Number(process.hrtime.bigint() - start) / misses).toFixed(0).padStart(6)} ns (HMAC each)`,
  );

  // Two threads on one table.
  out('\n## ns per take, 2 worker threads on one table');
  for (const keys of ['same', 'distinct'] as const) {
    const count = 2_000_000;
    const began = process.hrtime.bigint();
    const perThread = await Promise.all(
      [0, 1].map(
        (id) =>
          new Promise<number>((resolve, reject) => {
            const worker = new Worker(new URL(import.meta.url), {
              workerData: { table: table.transferable, keys, count, id } satisfies Job,
            });
            worker.once('message', (ns: number) => {
              resolve(ns);
              void worker.terminate();
            });
            worker.once('error', reject);
          }),
      ),
    );
    const wallNs = Number(process.hrtime.bigint() - began);
    out(
      `${(keys === 'same' ? 'one hot key' : '4,000 keys per thread').padEnd(28)} ` +
        `${perThread.map((ns) => ns.toFixed(0)).join(' / ')} ns per take per thread; ` +
        `${((2 * count) / (wallNs / 1e9) / 1e6).toFixed(2)} M takes/s together (wall clock incl. start-up)`,
    );
  }

  // Redis.
  const url = process.env['RAMPART_TEST_REDIS_URL'] || 'redis://127.0.0.1:6379';
  const prefix = `rampart-bench:${randomBytes(4).toString('hex')}:`;
  const store = await RedisRateLimitStore.connect({
    url,
    onStoreDown: 'deny',
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    keyPrefix: prefix,
  });
  out(`\n## Redis (${new URL(url).host})`);
  if (store.down) {
    out('not reachable: skipped');
  } else {
    const n = 20_000;
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await store.take('r', `k${i % 100}`, WIDE, NOW);
    let us = Number(process.hrtime.bigint() - t0) / 1e3 / n;
    out(`one at a time                ${us.toFixed(0)} µs per decision (${(1e6 / us).toFixed(0)}/s)`);
    t0 = process.hrtime.bigint();
    for (let batch = 0; batch < n / 64; batch++) {
      await Promise.all(Array.from({ length: 64 }, (_, i) => store.take('r', `k${i}`, WIDE, NOW)));
    }
    us = Number(process.hrtime.bigint() - t0) / 1e3 / n;
    out(`64 in flight                 ${(1e6 / us).toFixed(0)} decisions/s`);
  }
  await store.close();
  const cleanup = await import('ioredis').then(({ Redis }) => new Redis(url, { lazyConnect: true }));
  cleanup.on('error', () => {});
  try {
    await cleanup.connect();
    const keys = await cleanup.keys(`${prefix}*`);
    if (keys.length) await cleanup.del(...keys);
  } catch {
    // not reachable
  }
  cleanup.disconnect();
}
