/**
 * Rate limits shared through Redis by several gateway PROCESSES (issue 3, "Must show"): two gateways
 * offered ten times a route's limit for 30 s admit, together, what GCRA allows for one limit (within
 * ±2%); and when Redis stops mid-run, a `deny` gateway fails closed (503) and a `local` gateway keeps
 * limiting on its own, neither crashes, and both come back when Redis does.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { describe, type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startPrivateRedis } from './fixtures/private-redis.ts';
import { httpGet, spawnTracked, type Tracked, waitForLine } from './helpers/processes.ts';
import { requireService } from './helpers/require-service.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/rate-limit-gateway.ts', import.meta.url));

interface GatewayProcess {
  readonly proc: Tracked;
  readonly url: string;
  readonly admin: string;
}

async function startGateway(
  t: TestContext,
  env: { redisUrl: string; prefix: string; onDown: 'deny' | 'local'; limit: string },
): Promise<GatewayProcess> {
  const proc = spawnTracked(t, process.execPath, ['--conditions=rampart-source', FIXTURE], {
    env: {
      PATH: process.env['PATH'],
      RL_REDIS_URL: env.redisUrl,
      RL_PREFIX: env.prefix,
      RL_ON_DOWN: env.onDown,
      RL_LIMIT: env.limit,
    },
  });
  const [, port, admin] = await waitForLine(proc, /\{"ready":\{"port":(\d+),"admin":(\d+)\}\}/, 20_000);
  return { proc, url: `http://127.0.0.1:${port}/limited`, admin: `http://127.0.0.1:${admin}` };
}

interface Shot {
  target: number;
  status: number;
  /** Date.now() when the request was sent. */
  sent: number;
}

/**
 * Offers load: `concurrency` loops, each sending one request (round-robin over `targets`), then
 * pausing `pauseMs`, until `durationMs` have passed. Keep-alive connections, status 0 for no answer.
 */
async function offer(
  targets: readonly string[],
  durationMs: number,
  options: { concurrency: number; pauseMs: number },
): Promise<Shot[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency * targets.length });
  const shots: Shot[] = [];
  const end = Date.now() + durationMs;
  let next = 0;
  const get = (url: string) =>
    new Promise<number>((resolve) => {
      const req = request(url, { agent, timeout: 5_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
      req.end();
    });
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (Date.now() < end) {
        const target = next++ % targets.length;
        const sent = Date.now();
        shots.push({ target, sent, status: await get(targets[target]!) });
        await delay(options.pauseMs);
      }
    }),
  );
  agent.destroy();
  return shots;
}

function countBy(shots: readonly Shot[], status: number, target?: number): number {
  return shots.filter((s) => s.status === status && (target === undefined || s.target === target)).length;
}

function statusesOf(shots: readonly Shot[], target: number): Set<number> {
  return new Set(shots.filter((s) => s.target === target).map((s) => s.status));
}

async function deleteKeys(url: string, prefix: string): Promise<void> {
  const admin = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, connectTimeout: 1_000 });
  admin.on('error', () => {});
  try {
    await admin.connect();
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  } catch {
    // a private server that is gone holds nothing
  } finally {
    admin.disconnect();
  }
}

async function metricValue(admin: string, name: string, labels: string): Promise<number> {
  const { body } = await httpGet(`${admin}/metrics`);
  const line = body.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

function logCount(gw: GatewayProcess, msg: string): number {
  return gw.proc
    .stdout()
    .split('\n')
    .filter((line) => line.includes(`"msg":"${msg}"`)).length;
}

describe('rate limits shared by two gateway processes through Redis', () => {
  test('offered 10× the limit for 30 s, together they admit what GCRA allows, within ±2%', async (t) => {
    const redisUrl = await requireService(t, 'redis');
    if (!redisUrl) return;
    const prefix = `rampart-test:rl-procs:${randomBytes(6).toString('hex')}:`;
    t.after(() => deleteKeys(redisUrl, prefix));
    const limitPerSecond = 20;
    const env = { redisUrl, prefix, onDown: 'deny' as const, limit: `${limitPerSecond}/s per ip` };
    const [a, b] = await Promise.all([startGateway(t, env), startGateway(t, env)]);

    // 10 loops × (one request, 45 ms pause) ≈ 200 requests/s, alternating between the gateways.
    const shots = await offer([a.url, b.url], 30_000, { concurrency: 10, pauseMs: 45 });

    const admitted = countBy(shots, 200);
    const refused = countBy(shots, 429);
    assert.equal(admitted + refused, shots.length, `only 200 and 429: ${[...new Set(shots.map((s) => s.status))]}`);
    const seconds = (Math.max(...shots.map((s) => s.sent)) - Math.min(...shots.map((s) => s.sent))) / 1_000;
    const offeredRate = shots.length / seconds;
    // GCRA: a burst of `limit`, then one per interval (1/20 s) for as long as the load lasts.
    const expected = limitPerSecond + Math.floor(limitPerSecond * seconds);
    const error = (admitted - expected) / expected;
    t.diagnostic(
      `offered ${shots.length} in ${seconds.toFixed(2)} s (${offeredRate.toFixed(0)}/s); admitted ${admitted} ` +
        `(a ${countBy(shots, 200, 0)}, b ${countBy(shots, 200, 1)}); expected ${expected}; ` +
        `error ${(error * 100).toFixed(2)}%`,
    );
    assert.ok(offeredRate >= limitPerSecond * 5, `the load must exceed the limit many times (${offeredRate}/s)`);
    assert.ok(countBy(shots, 200, 0) > 0 && countBy(shots, 200, 1) > 0, 'both gateways admitted requests');
    assert.ok(Math.abs(error) <= 0.02, `admitted ${admitted}, expected ${expected} ± 2%`);
  });

  test('Redis stopped mid-run: deny answers 503, local keeps limiting, no crash, both recover', async (t) => {
    const redis = await startPrivateRedis(t);
    const prefix = `rampart-test:rl-down:${randomBytes(6).toString('hex')}:`;
    const limitPerSecond = 10;
    const base = { redisUrl: redis.url, prefix, limit: `${limitPerSecond}/s per ip` };
    const [deny, local] = await Promise.all([
      startGateway(t, { ...base, onDown: 'deny' }),
      startGateway(t, { ...base, onDown: 'local' }),
    ]);
    const load = { concurrency: 4, pauseMs: 40 }; // ≈ 100/s over both: 10× the limit

    // Redis up: one shared limit, only 200 and 429.
    const before = await offer([deny.url, local.url], 2_000, load);
    assert.deepEqual(new Set(before.map((s) => s.status)), new Set([200, 429]));

    await redis.stop();
    const stoppedAt = Date.now();
    const during = await offer([deny.url, local.url], 3_000, load);
    const settled = during.filter((s) => s.sent >= stoppedAt + 500);
    assert.deepEqual(statusesOf(settled, 0), new Set([503]), 'deny: fail closed, every request');
    assert.deepEqual(statusesOf(during, 1), new Set([200, 429]), 'local: still limiting, never 503');
    // The local gateway alone, with a fresh local table: at most one limit's worth over the outage.
    const seconds = (Math.max(...during.map((s) => s.sent)) - stoppedAt) / 1_000;
    const localAdmitted = countBy(during, 200, 1);
    assert.ok(
      localAdmitted <= limitPerSecond + Math.ceil(limitPerSecond * seconds) + 1,
      `local admitted ${localAdmitted} in ${seconds} s`,
    );
    assert.ok(countBy(during, 429, 1) > 0);

    await redis.start();
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && (await httpGet(deny.url)).status === 503) await delay(100);
    const after = await offer([deny.url, local.url], 2_000, load);
    assert.deepEqual(new Set(after.map((s) => s.status)), new Set([200, 429]), 'both back on Redis');

    for (const [name, gw] of [
      ['deny', deny],
      ['local', local],
    ] as const) {
      assert.equal(gw.proc.child.exitCode, null, `${name} gateway still running`);
      assert.equal(logCount(gw, 'rate-limit store down'), 1, `${name}: one line when Redis went away`);
      assert.equal(logCount(gw, 'rate-limit store up'), 1, `${name}: one line when it came back`);
      const transitions = 'rampart_gateway_rate_limit_store_transitions_total';
      assert.equal(await metricValue(gw.admin, transitions, 'to="down"'), 1, name);
      assert.equal(await metricValue(gw.admin, transitions, 'to="up"'), 1, name);
    }
    assert.ok(
      (await metricValue(deny.admin, 'rampart_gateway_rate_limit_store_fallbacks_total', 'outcome="denied"')) > 0,
    );
    assert.ok(
      (await metricValue(local.admin, 'rampart_gateway_rate_limit_store_fallbacks_total', 'outcome="local"')) > 0,
    );
  });
});
