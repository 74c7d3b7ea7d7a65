import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startPrivateRedis } from '../../../test/fixtures/private-redis.ts';
import { freePort } from '../../../test/helpers/processes.ts';
import { requireService } from '../../../test/helpers/require-service.ts';
import { createRateLimitBackend } from './backend.ts';
import { RATE_LIMIT_STORE_METRICS } from './metrics.ts';
import { RedisRateLimitStore, type RedisStoreOptions } from './redis-store.ts';
import { SharedRateLimitTable } from './shared-table.ts';

const NOW = Date.now();

/** A logger whose lines the test can read. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines, messages: () => lines.map((l) => l['msg']) };
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const found = (await registry.getSingleMetric(name)?.get())?.values.find((v) =>
    Object.entries(labels).every(([k, value]) => v.labels[k] === value),
  );
  return found?.value ?? 0;
}

/** A store on `url` with a test prefix; keys under the prefix are deleted when the test ends. */
async function storeFor(t: TestContext, url: string, extra: Partial<RedisStoreOptions> = {}) {
  const prefix = `rampart-test:rl:${randomBytes(6).toString('hex')}:`;
  const log = capture();
  const registry = new Registry();
  const store = await RedisRateLimitStore.connect({
    url,
    onStoreDown: 'deny',
    logger: log.logger,
    registry,
    keyPrefix: prefix,
    ...extra,
  });
  t.after(async () => {
    await store.close();
    const admin = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, connectTimeout: 500 });
    admin.on('error', () => {}); // a private server may be stopped already
    try {
      await admin.connect();
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
    } catch {
      // a private server already stopped holds nothing
    } finally {
      admin.disconnect();
    }
  });
  return { store, prefix, log, registry };
}

describe('RedisRateLimitStore (shared Redis)', () => {
  test('GCRA in one script: burst, refusal without spending, one more per interval', async (t) => {
    const url = await requireService(t, 'redis');
    if (!url) return;
    const { store } = await storeFor(t, url);
    const policy = { limit: 5, periodMs: 1_000 }; // 200 ms interval
    const burst = [];
    for (let i = 0; i < 8; i++) burst.push(await store.take('r', 'k', policy, NOW));
    assert.deepEqual(
      burst.map((d) => d.allowed),
      [true, true, true, true, true, false, false, false],
    );
    assert.deepEqual(
      burst.slice(0, 5).map((d) => d.remaining),
      [4, 3, 2, 1, 0],
    );
    const refused = burst[7]!;
    assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 200, `retry after ${refused.retryAfterMs}`);
    // Hammering while refused spends nothing: after one interval exactly one more is admitted.
    for (let i = 0; i < 20; i++) assert.equal((await store.take('r', 'k', policy, NOW)).allowed, false);
    await delay(refused.retryAfterMs + 20);
    assert.equal((await store.take('r', 'k', policy, NOW)).allowed, true);
    assert.equal((await store.take('r', 'k', policy, NOW)).allowed, false);
  });

  test('keys: under the prefix, route readable, caller hashed, expiring when the TAT passes', async (t) => {
    const url = await requireService(t, 'redis');
    if (!url) return;
    const { store, prefix } = await storeFor(t, url);
    const admin = new Redis(url);
    t.after(() => admin.disconnect());
    await store.take('orders', '203.0.113.7', { limit: 2, periodMs: 400 }, NOW);
    await store.take('orders', 'ab', { limit: 2, periodMs: 60_000 }, NOW);
    await store.take('ordersa', 'b', { limit: 2, periodMs: 60_000 }, NOW);
    const keys = (await admin.keys(`${prefix}*`)).sort();
    assert.equal(keys.length, 3, 'route and key never merge');
    for (const key of keys) {
      assert.match(key, new RegExp(`^${prefix.replace(/[.:]/g, '\\$&')}orders(a)?:[A-Za-z0-9_-]{22}$`));
      assert.ok(!key.includes('203.0.113.7'), 'no client address in clear');
    }
    const ip = store.redisKey('orders', '203.0.113.7');
    const ttl = await admin.pttl(ip);
    assert.ok(ttl > 0 && ttl <= 200, `PTTL ${ttl}: the key lives until its TAT (one 200 ms interval)`);
    await delay(ttl + 50);
    assert.equal(await admin.exists(ip), 0, 'idle keys vanish');
  });

  test('two stores (two gateways) share one limit exactly', async (t) => {
    const url = await requireService(t, 'redis');
    if (!url) return;
    const a = await storeFor(t, url);
    const b = await storeFor(t, url, { keyPrefix: a.prefix });
    const policy = { limit: 50, periodMs: 60_000 };
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 2 ? a.store : b.store).take('r', 'shared', policy, NOW)),
    );
    assert.equal(answers.filter((d) => d.allowed).length, 50);
  });

  test('construction refuses a non-Redis URL and `local` without a local backend', async () => {
    const base = { logger: pino({ level: 'silent' }), registry: new Registry() };
    await assert.rejects(RedisRateLimitStore.connect({ ...base, url: 'http://127.0.0.1:6379', onStoreDown: 'deny' }), {
      code: 'GW_ERR_RATE_LIMIT_CONFIG',
    });
    await assert.rejects(
      RedisRateLimitStore.connect({ ...base, url: 'redis://127.0.0.1:6379', onStoreDown: 'local' }),
      {
        code: 'GW_ERR_RATE_LIMIT_CONFIG',
      },
    );
    await assert.rejects(RedisRateLimitStore.connect({ ...base, url: 'not a url', onStoreDown: 'deny' }));
  });
});

describe('RedisRateLimitStore when Redis fails (private redis-server)', () => {
  test('NOSCRIPT after a restart: falls back to EVAL, no outage', async (t) => {
    const redis = await startPrivateRedis(t);
    const { store, log } = await storeFor(t, redis.url);
    const policy = { limit: 100, periodMs: 60_000 };
    assert.equal((await store.take('r', 'k', policy, NOW)).allowed, true);
    const admin = new Redis(redis.url);
    t.after(() => admin.disconnect());
    await admin.script('FLUSH');
    assert.equal((await store.take('r', 'k', policy, NOW)).remaining, 98, 'the script was loaded again');
    assert.equal(store.down, false);
    assert.deepEqual(log.messages(), []);
  });

  test('deny: fails fast and closed while down, logs and counts each transition once, recovers', async (t) => {
    const redis = await startPrivateRedis(t, { password: 'hunter2-secret' });
    const { store, log, registry } = await storeFor(t, redis.url, { probeIntervalMs: 100 });
    const policy = { limit: 1_000, periodMs: 60_000 };
    assert.equal((await store.take('r', 'k', policy, NOW)).allowed, true);

    await redis.stop();
    const outcomes: string[] = [];
    const started = Date.now();
    for (let i = 0; i < 50; i++) {
      try {
        await store.take('r', 'k', policy, NOW);
        outcomes.push('allowed');
      } catch (err) {
        outcomes.push((err as { code?: string }).code ?? 'other');
      }
    }
    assert.deepEqual(new Set(outcomes), new Set(['GW_ERR_RATE_LIMIT_STORE_DOWN']), 'fail closed, every time');
    assert.ok(Date.now() - started < 5_000, 'no per-request wait while down');
    assert.equal(store.down, true);
    assert.equal(await metric(registry, RATE_LIMIT_STORE_METRICS.up, { store: 'redis' }), 0);
    assert.equal(await metric(registry, RATE_LIMIT_STORE_METRICS.fallbacks, { outcome: 'denied' }), 50);

    await redis.start();
    const deadline = Date.now() + 10_000;
    while (store.down && Date.now() < deadline) await delay(50);
    assert.equal(store.down, false, 'recovered');
    assert.equal((await store.take('r', 'k', policy, NOW)).allowed, true);

    assert.deepEqual(log.messages(), ['rate-limit store down', 'rate-limit store up'], 'one line per transition');
    assert.equal(await metric(registry, RATE_LIMIT_STORE_METRICS.transitions, { to: 'down' }), 1);
    assert.equal(await metric(registry, RATE_LIMIT_STORE_METRICS.transitions, { to: 'up' }), 1);
    assert.equal(await metric(registry, RATE_LIMIT_STORE_METRICS.up, { store: 'redis' }), 1);
    assert.ok(!JSON.stringify(log.lines).includes('hunter2'), 'the password never reaches a log');
  });

  test('a hung Redis: concurrent requests time out once, then none waits; one log line per transition', async (t) => {
    const redis = await startPrivateRedis(t);
    t.after(() => redis.resume()); // never leave a stopped process behind for the cleanup
    const { store, log, registry } = await storeFor(t, redis.url, { commandTimeoutMs: 200, probeIntervalMs: 100 });
    const policy = { limit: 1_000, periodMs: 60_000 };
    assert.equal((await store.take('r', 'k', policy, NOW)).allowed, true);
    redis.pause();
    const first = await Promise.allSettled(Array.from({ length: 20 }, () => store.take('r', 'k', policy, NOW)));
    assert.deepEqual(
      first.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'decided')),
      Array(20).fill('GW_ERR_RATE_LIMIT_STORE_DOWN'),
      'each in-flight request fails closed at the command timeout',
    );
    assert.equal(store.down, true);
    // Down: nobody waits for the command timeout any more (20 × 200 ms if they did).
    const started = Date.now();
    for (let i = 0; i < 20; i++)
      assert.throws(() => store.take('r', 'k', policy, NOW), { code: 'GW_ERR_RATE_LIMIT_STORE_DOWN' });
    assert.ok(Date.now() - started < 2_000);
    redis.resume();
    const deadline = Date.now() + 10_000;
    while (store.down && Date.now() < deadline) await delay(50);
    assert.equal(store.down, false, 'the probe noticed the thaw');
    assert.equal((await store.take('r', 'k', policy, NOW)).allowed, true);
    assert.deepEqual(log.messages(), ['rate-limit store down', 'rate-limit store up']);
    assert.equal(await metric(registry, RATE_LIMIT_STORE_METRICS.transitions, { to: 'down' }), 1);
  });

  test('local: keeps limiting with the local table while down, exactly', async (t) => {
    const redis = await startPrivateRedis(t);
    const local = SharedRateLimitTable.create({ capacity: 1_000 });
    const { store, registry } = await storeFor(t, redis.url, { onStoreDown: 'local', local, probeIntervalMs: 100 });
    const policy = { limit: 10, periodMs: 600_000 };
    await redis.stop();
    const answers = [];
    for (let i = 0; i < 30; i++) answers.push(await store.take('r', 'k', policy, NOW));
    assert.equal(answers.filter((d) => d.allowed).length, 10, 'the local table holds the limit');
    assert.equal(await metric(registry, RATE_LIMIT_STORE_METRICS.fallbacks, { outcome: 'local' }), 30);
  });

  test('a Redis that is not there at start: the store starts down and fails closed at once', async (t) => {
    const port = await freePort();
    const { store, log } = await storeFor(t, `redis://127.0.0.1:${port}`);
    assert.equal(store.down, true);
    assert.throws(() => store.take('r', 'k', { limit: 1, periodMs: 1_000 }, NOW), {
      code: 'GW_ERR_RATE_LIMIT_STORE_DOWN',
    });
    assert.deepEqual(log.messages(), ['rate-limit store down']);
  });

  test('createRateLimitBackend: memory gives the shared table, redis the store with its fallback', async (t) => {
    const options = { logger: pino({ level: 'silent' }), registry: new Registry() };
    const shared = SharedRateLimitTable.create({ capacity: 100 });
    const memory = await createRateLimitBackend({ store: 'memory' }, { ...options, shared: shared.transferable });
    assert.ok(memory instanceof SharedRateLimitTable);
    memory.take('r', 'k', { limit: 1, periodMs: 60_000 }, NOW);
    assert.equal(shared.take('r', 'k', { limit: 1, periodMs: 60_000 }, NOW).allowed, false, 'the same table');

    const port = await freePort();
    const redis = await createRateLimitBackend(
      { store: 'redis', url: `redis://127.0.0.1:${port}`, onStoreDown: 'local' },
      { ...options, shared: shared.transferable },
    );
    t.after(() => redis.close?.());
    assert.ok(redis instanceof RedisRateLimitStore);
    // Down from the start, so the local (shared) table decides: the key spent above is still spent.
    assert.equal((await redis.take('r', 'k', { limit: 1, periodMs: 60_000 }, NOW)).allowed, false);
  });
});
