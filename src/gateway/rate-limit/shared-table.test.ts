import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { RATE_LIMIT_DEFAULTS } from './defaults.ts';
import { GCRA_EPOCH_MS, gcra } from './gcra.ts';
import { SharedRateLimitTable } from './shared-table.ts';

const NOW = 1_750_000_000_000;
const POLICY = { limit: 3, periodMs: 3_000 };

/** Byte offset of the bucket locks in the shared buffer (header 32 + counters 16; see shared-table.ts). */
const LOCKS_OFFSET = 48;

describe('SharedRateLimitTable', () => {
  test('decides exactly as gcra() over a reference map, for any sequence of requests', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            route: fc.constantFrom('a', 'b', 'ab'),
            key: fc.constantFrom('', 'x', 'bx', '10.0.0.1', '\ud800', '\ud801'),
            advance: fc.integer({ min: 0, max: 2_000 }),
          }),
          { maxLength: 200 },
        ),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 10_000 }),
        (steps, limit, periodMs) => {
          const table = SharedRateLimitTable.create({ capacity: 1_000 });
          const model = new Map<string, number>();
          const policy = { limit, periodMs };
          let now = NOW;
          for (const { route, key, advance } of steps) {
            now += advance;
            const id = JSON.stringify([route, key]);
            const expected = gcra(policy, model.get(id), now - GCRA_EPOCH_MS);
            if (expected.allowed) model.set(id, expected.tat);
            assert.deepEqual(table.take(route, key, policy, now), expected);
          }
        },
      ),
    );
  });

  test('routes and keys never share a budget, even when their concatenations are equal', () => {
    const table = SharedRateLimitTable.create({ capacity: 100 });
    const one = { limit: 1, periodMs: 60_000 };
    assert.equal(table.take('ab', 'c', one, NOW).allowed, true);
    assert.equal(table.take('a', 'bc', one, NOW).allowed, true);
    assert.equal(table.take('abc', '', one, NOW).allowed, true);
    assert.equal(table.take('ab', 'c', one, NOW).allowed, false);
  });

  test('long keys (beyond the digest cache) and cache rollovers keep every key exact', () => {
    // Ample capacity: with a random placement secret, a table near its capacity may evict a key from a
    // full bucket (by design, see the eviction test); this test is about the digest cache, not eviction.
    const table = SharedRateLimitTable.create({ capacity: 200_000 });
    const one = { limit: 1, periodMs: 60_000 };
    const keys = Array.from({ length: RATE_LIMIT_DEFAULTS.digestCacheSize * 3 }, (_, i) =>
      i % 2 ? `k${i}` : `${'L'.repeat(300)}${i}`,
    );
    for (const key of keys) assert.equal(table.take('r', key, one, NOW).allowed, true, key);
    assert.equal(table.stats().evictions, 0);
    for (const key of keys) assert.equal(table.take('r', key, one, NOW).allowed, false, key);
    assert.equal(table.liveKeys(NOW), keys.length);
  });

  test('digest cache: hits from either generation place a key where the HMAC does', () => {
    const table = SharedRateLimitTable.create({ capacity: 50_000 });
    const fresh = SharedRateLimitTable.attach(table.transferable); // empty cache, same secret
    const one = { limit: 1, periodMs: 60_000 };
    const seen = new Set<string>();
    // Random picks from a pool 2.5× a generation: hits in the recent and the older generation, misses,
    // and many rollovers.
    let seed = 7;
    for (let i = 0; i < 40_000; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      const key = `10.1.${Math.floor((seed / 2_147_483_648) * RATE_LIMIT_DEFAULTS.digestCacheSize * 2.5)}`;
      assert.equal(table.take('r', key, one, NOW).allowed, !seen.has(key), key);
      seen.add(key);
      if (i % 97 === 0) assert.equal(table.bucketOf('r', key), fresh.bucketOf('r', key), key);
    }
  });

  test('rejected requests spend no quota', () => {
    const table = SharedRateLimitTable.create({ capacity: 100 });
    for (let i = 0; i < 3; i++) table.take('r', 'k', POLICY, NOW);
    for (let i = 0; i < 100; i++) assert.equal(table.take('r', 'k', POLICY, NOW + 999).allowed, false);
    // One interval after the burst exactly one more is admitted, as if the 100 refusals never happened.
    assert.equal(table.take('r', 'k', POLICY, NOW + 1_000).allowed, true);
    assert.equal(table.take('r', 'k', POLICY, NOW + 1_000).allowed, false);
  });

  test('memory is fixed at creation: ten times the capacity in distinct keys changes nothing', () => {
    const table = SharedRateLimitTable.create({ capacity: 1_000 });
    const before = table.stats();
    assert.equal(before.bytes, table.transferable.buffer.byteLength);
    for (let i = 0; i < 10_000; i++) table.take('r', `k${i}`, POLICY, NOW);
    const after = table.stats();
    assert.equal(after.bytes, before.bytes);
    assert.equal(table.transferable.buffer.byteLength, before.bytes);
    assert.equal(table.liveKeys(NOW), after.buckets * after.slotsPerBucket, 'every slot holds a live key');
    assert.equal(after.evictions, 10_000 - after.buckets * after.slotsPerBucket);
    // About 16 bytes per slot and 2 slots per key of capacity.
    assert.ok(before.bytes <= 1_000 * 2 * 16 + 48 + 8 * before.buckets + 64, `${before.bytes} bytes`);
  });

  test('a full bucket reuses an expired slot first, else evicts the smallest TAT', () => {
    // Capacity 8 → one bucket of 16 slots: every key shares it.
    const table = SharedRateLimitTable.create({ capacity: 8 });
    assert.equal(table.stats().buckets, 1);
    // One request per period: a key's TAT is one period ahead, and a second take is refused (a refusal
    // changes nothing, so it is how this test reads a key's state).
    const minute = { limit: 1, periodMs: 60_000 };
    const second = { limit: 1, periodMs: 1_000 };
    const held = (key: string, policy: typeof minute, at: number) => !table.take('r', key, policy, at).allowed;
    for (let i = 0; i < 15; i++) table.take('r', `k${i}`, minute, NOW);
    table.take('r', 'short', second, NOW); // TAT 1 s ahead: the smallest
    // A 17th key while every slot is live: one eviction, and every other key kept its state.
    assert.equal(table.take('r', 'new1', minute, NOW + 500).allowed, true);
    assert.equal(table.stats().evictions, 1);
    for (let i = 0; i < 15; i++) assert.ok(held(`k${i}`, minute, NOW + 500), `k${i} kept its state`);
    assert.ok(held('new1', minute, NOW + 500));
    // So `short` is the one that went: it starts afresh (and, the bucket being full, evicts in turn).
    assert.equal(table.take('r', 'short', second, NOW + 500).allowed, true);
    assert.equal(table.stats().evictions, 2);
    // 60.2 s on, the k keys have expired, new1 (60.5 s) has not: new keys take expired slots, no eviction.
    const later = NOW + 60_200;
    for (let i = 0; i < 10; i++) assert.equal(table.take('r', `later${i}`, minute, later).allowed, true);
    assert.equal(table.stats().evictions, 2, 'expired slots carry no information: reused, not evicted');
    assert.ok(held('new1', minute, later), 'the live key survived');
  });

  test('eviction picks the smallest TAT among live keys', () => {
    const table = SharedRateLimitTable.create({ capacity: 8 });
    // 16 keys with TATs 1..16 s ahead: key i spends i of a 1-per-second budget.
    const perSecond = { limit: 100, periodMs: 100_000 };
    // Inserted largest first, so the smallest TAT is in the last slot, not the first.
    for (let i = 16; i >= 1; i--) for (let n = 0; n < i; n++) table.take('r', `k${i}`, perSecond, NOW);
    table.take('r', 'intruder', perSecond, NOW);
    assert.equal(table.stats().evictions, 1);
    // k1 (TAT 1 s ahead) was dropped and starts afresh; k2 still has 2 spent.
    assert.equal(table.take('r', 'k1', perSecond, NOW).remaining, 99);
    assert.equal(table.take('r', 'k2', perSecond, NOW).remaining, 97);
  });

  test('placement is keyed: tables with different secrets put keys in different buckets', () => {
    const a = SharedRateLimitTable.create({ capacity: 100_000 });
    const b = SharedRateLimitTable.create({ capacity: 100_000 });
    const attached = SharedRateLimitTable.attach(a.transferable);
    const keys = Array.from({ length: 50 }, (_, i) => `10.0.${i}.1`);
    assert.deepEqual(
      keys.map((k) => attached.bucketOf('r', k)),
      keys.map((k) => a.bucketOf('r', k)),
      'same secret, same placement',
    );
    const same = keys.filter((k) => a.bucketOf('r', k) === b.bucketOf('r', k)).length;
    assert.ok(same <= 2, `${same} of 50 keys in the same bucket under two secrets`);
    assert.notDeepEqual(Buffer.from(a.transferable.secret), Buffer.from(b.transferable.secret));
  });

  test('attach refuses anything but a table', () => {
    const good = SharedRateLimitTable.create({ capacity: 10 }).transferable;
    const forged = new SharedArrayBuffer(good.buffer.byteLength);
    const truncated = new SharedArrayBuffer(good.buffer.byteLength - 8);
    new Uint8Array(truncated).set(new Uint8Array(good.buffer, 0, truncated.byteLength));
    const badVersion = new SharedArrayBuffer(good.buffer.byteLength);
    new Uint8Array(badVersion).set(new Uint8Array(good.buffer));
    new Int32Array(badVersion)[1] = 99;
    const cases: [string, unknown][] = [
      ['undefined', undefined],
      ['null', null],
      ['empty object', {}],
      ['ArrayBuffer, not shared', { buffer: new ArrayBuffer(good.buffer.byteLength), secret: good.secret }],
      ['tiny buffer', { buffer: new SharedArrayBuffer(4), secret: good.secret }],
      ['zeroed buffer (no magic)', { buffer: forged, secret: good.secret }],
      ['wrong layout version', { buffer: badVersion, secret: good.secret }],
      ['truncated buffer', { buffer: truncated, secret: good.secret }],
      ['no secret', { buffer: good.buffer }],
      ['short secret', { buffer: good.buffer, secret: new Uint8Array(16) }],
      ['secret as string', { buffer: good.buffer, secret: 'x'.repeat(32) }],
    ];
    for (const [name, value] of cases) {
      assert.throws(() => SharedRateLimitTable.attach(value as never), { code: 'GW_ERR_RATE_LIMIT_TABLE' }, name);
    }
    assert.doesNotThrow(() => SharedRateLimitTable.attach(good));
  });

  test('create refuses capacities that are not a positive integer within bounds', () => {
    for (const capacity of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, RATE_LIMIT_DEFAULTS.maxCapacity + 1]) {
      assert.throws(
        () => SharedRateLimitTable.create({ capacity }),
        { code: 'GW_ERR_RATE_LIMIT_TABLE' },
        String(capacity),
      );
    }
    assert.throws(() => SharedRateLimitTable.create({ capacity: '10' as never }), { code: 'GW_ERR_RATE_LIMIT_TABLE' });
  });

  test('a NaN clock or a broken policy is refused and leaves the key untouched', () => {
    const table = SharedRateLimitTable.create({ capacity: 10 });
    table.take('r', 'k', POLICY, NOW);
    assert.throws(() => table.take('r', 'k', POLICY, Number.NaN), { code: 'GW_ERR_RATE_LIMIT_INPUT' });
    assert.throws(() => table.take('r', 'k', { limit: 0, periodMs: 1_000 }, NOW), { code: 'GW_ERR_RATE_LIMIT_INPUT' });
    assert.equal(table.take('r', 'k', POLICY, NOW).remaining, 1, 'one spent before, one now');
  });

  test('a bucket left locked by a dead thread is taken over after the stale bound, not forever', () => {
    const table = SharedRateLimitTable.create({ capacity: 1_000 });
    const bucket = table.bucketOf('r', 'k');
    const locks = new Int32Array(table.transferable.buffer, LOCKS_OFFSET, table.stats().buckets);
    Atomics.store(locks, bucket, 1); // as if a thread died between lock and unlock
    const started = Date.now();
    assert.equal(table.take('r', 'k', POLICY, NOW).allowed, true);
    assert.ok(Date.now() - started >= RATE_LIMIT_DEFAULTS.lockStaleMs - 50, 'waited for the stale bound');
    assert.equal(table.stats().lockTakeovers, 1);
    assert.equal(Atomics.load(locks, bucket), 0, 'released after use');
    // Other buckets never waited.
    const other = ['a', 'b', 'c', 'd'].find((k) => table.bucketOf('r', k) !== bucket)!;
    Atomics.store(locks, bucket, 1);
    const t0 = Date.now();
    table.take('r', other, POLICY, NOW);
    assert.ok(Date.now() - t0 < RATE_LIMIT_DEFAULTS.lockStaleMs / 2);
    Atomics.store(locks, bucket, 0);
  });
});
