import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { threadId } from 'node:worker_threads';
import { pino } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import type { Manifest } from '../../config/model.ts';
import { Registry } from '../../core/metrics.ts';
import type { GatewayRuntime } from '../../core/runtime.ts';
import { SharedRateLimitTable } from '../rate-limit/shared-table.ts';
import { WorkerPool, workerPlan } from './worker-pool.ts';

const FIXTURE = new URL('./fixtures/pool-worker.ts', import.meta.url);
const MANIFEST = { gateway: {} } as unknown as Manifest;

function pool(t: { after(fn: () => unknown): void }, mode: string, size = 2, inThread = false) {
  const dataDir = mkdtempSync(join(tmpdir(), 'rampart-pool-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const runtime: GatewayRuntime = {
    kind: 'gateway',
    name: mode,
    dataDir,
    adminPort: 0,
    manifestFile: '',
    upstreams: {},
  };
  const decisions: string[] = [];
  const gaveUp: number[] = [];
  const registry = new Registry();
  const workers = new WorkerPool({
    size,
    reusePort: size > 1,
    runtime,
    manifest: MANIFEST,
    rateLimitTable: SharedRateLimitTable.create({ capacity: 16 }).transferable,
    logger: pino({ level: 'silent' }),
    registry,
    onDecisions: (lines) => decisions.push(lines),
    onGiveUp: (index) => gaveUp.push(index),
    restartPolicy: {
      initialDelayMs: 10,
      maxDelayMs: 20,
      jitter: 0,
      stableAfterMs: 60_000,
      maxCrashes: 3,
      windowMs: 60_000,
    },
    entry: FIXTURE,
    inThread,
  });
  t.after(() => workers.drain(500));
  return { workers, decisions, gaveUp, registry, runtime };
}

const metric = async (registry: Registry, name: string, labels: Record<string, string> = {}) =>
  (await registry.getSingleMetric(name)!.get()).values
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((sum, v) => sum + v.value, 0);

describe('gateway worker pool', () => {
  test('starts every worker, is ready when all listen, aggregates their metrics, drains', async (t) => {
    const { workers, decisions, registry } = pool(t, 'ok', 3);
    assert.equal(workers.ready(), false);
    await workers.start();
    assert.equal(workers.ready(), true);
    assert.equal(new Set(workers.threadIds()).size, 3);
    assert.equal(await metric(registry, 'rampart_gateway_workers', { state: 'listening' }), 3);
    const json = await workers.collectMetrics();
    assert.equal(json.length, 3);
    const aggregated = await AggregatorRegistry.aggregate(json).getSingleMetricAsString('fixture_requests_total');
    assert.match(aggregated, /fixture_requests_total\{route="r"\} 6/, '1 + 2 + 3');
    await workers.drain(500);
    assert.equal(workers.ready(), false);
    assert.deepEqual(workers.threadIds(), [null, null, null]);
    assert.equal(decisions.length, 3, 'each worker handed over its last events before exiting');
  });

  test('a worker that listens is sent the current credentials: a renewal during its start is not lost', async (t) => {
    const { workers, decisions, runtime } = pool(t, 'ok', 2);
    runtime.edgeCertificate = { certPem: 'first', keyPem: 'k1' };
    const started = workers.start();
    // Renewed after the workers were created (their workerData holds 'first'), before they listen.
    runtime.edgeCertificate = { certPem: 'renewed', keyPem: 'k2' };
    await started;
    const deadline = Date.now() + 5_000;
    while (decisions.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const seen = decisions.map((line) => JSON.parse(line) as { startedWith: string; credentials: string });
    assert.equal(seen.length, 2);
    for (const s of seen) assert.deepEqual([s.startedWith, s.credentials], ['first', 'renewed']);
  });

  test('a worker that crashes is counted and restarted in its slot', async (t) => {
    const { workers, gaveUp, registry } = pool(t, 'crash-once');
    await workers.start();
    assert.equal(workers.ready(), true);
    assert.equal(await metric(registry, 'rampart_gateway_worker_restarts_total', { reason: 'crash' }), 2);
    assert.deepEqual(gaveUp, []);
  });

  test('a slot that keeps crashing makes the pool give up (the process then exits non-zero)', async (t) => {
    const { workers, gaveUp } = pool(t, 'crash-always', 1);
    const started = workers.start().then(
      () => 'started',
      () => 'rejected',
    );
    for (let i = 0; i < 200 && gaveUp.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(gaveUp, [0]);
    assert.equal(workers.ready(), false);
    await workers.drain(100);
    assert.equal(await started, 'rejected');
  });

  test('a worker that does not answer a scrape is left out of it, within the timeout', async (t) => {
    const { workers } = pool(t, 'mute-1');
    await workers.start();
    const began = performance.now();
    const json = await workers.collectMetrics(200);
    assert.equal(json.length, 1);
    assert.ok(performance.now() - began < 2_000);
  });

  test('reconfigure reports every worker’s outcome, refusals included', async (t) => {
    const { workers } = pool(t, 'refuse-1');
    await workers.start();
    const outcomes = await workers.reconfigure(MANIFEST);
    assert.equal(workers.generation, 2);
    assert.deepEqual(outcomes.get(0), { error: null, restartRequired: ['generation-2'] });
    assert.deepEqual(outcomes.get(1), { error: 'refused by the fixture', restartRequired: [] });
  });
});

describe('gateway worker pool, one worker in the calling thread (inThread)', () => {
  test('serves, aggregates, reconfigures and drains like a thread, without starting one', async (t) => {
    const { workers, decisions, registry } = pool(t, 'ok', 1, true);
    await workers.start();
    assert.equal(workers.ready(), true);
    assert.deepEqual(workers.threadIds(), [threadId], 'the calling thread, no worker thread');
    assert.equal(await metric(registry, 'rampart_gateway_workers', { state: 'listening' }), 1);
    const json = await workers.collectMetrics();
    const aggregated = await AggregatorRegistry.aggregate(json).getSingleMetricAsString('fixture_requests_total');
    assert.match(aggregated, /fixture_requests_total\{route="r"\} 1/);
    const outcomes = await workers.reconfigure(MANIFEST);
    assert.deepEqual(outcomes.get(0), { error: null, restartRequired: ['generation-2'] });
    await workers.drain(500);
    assert.equal(workers.ready(), false);
    assert.deepEqual(workers.threadIds(), [null]);
    assert.deepEqual(decisions, ['{"worker":0}\n'], 'the last events arrive before the exit');
  });

  test('a start that fails is counted and restarted in the slot', async (t) => {
    const { workers, gaveUp, registry } = pool(t, 'crash-once', 1, true);
    await workers.start();
    assert.equal(workers.ready(), true);
    assert.equal(await metric(registry, 'rampart_gateway_worker_restarts_total', { reason: 'crash' }), 1);
    assert.deepEqual(gaveUp, []);
  });

  test('a start that always fails makes the pool give up', async (t) => {
    const { workers, gaveUp } = pool(t, 'crash-always', 1, true);
    const started = workers.start().then(
      () => 'started',
      () => 'rejected',
    );
    for (let i = 0; i < 200 && gaveUp.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(gaveUp, [0]);
    await workers.drain(100);
    assert.equal(await started, 'rejected');
  });

  test('an entry without the in-thread export is a failed start, not a hang', async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rampart-pool-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const gaveUp: number[] = [];
    const workers = new WorkerPool({
      size: 1,
      reusePort: false,
      runtime: { kind: 'gateway', name: 'ok', dataDir, adminPort: 0, manifestFile: '', upstreams: {} },
      manifest: MANIFEST,
      rateLimitTable: SharedRateLimitTable.create({ capacity: 16 }).transferable,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      onDecisions: () => {},
      onGiveUp: (index) => gaveUp.push(index),
      restartPolicy: {
        initialDelayMs: 1,
        maxDelayMs: 1,
        jitter: 0,
        stableAfterMs: 60_000,
        maxCrashes: 2,
        windowMs: 60_000,
      },
      entry: new URL('./messages.ts', import.meta.url),
      inThread: true,
    });
    const started = workers.start().catch(() => 'rejected');
    for (let i = 0; i < 200 && gaveUp.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(gaveUp, [0]);
    await workers.drain(100);
    assert.equal(await started, 'rejected');
  });

  test('only a pool of one runs in-thread', () => {
    const options = {
      reusePort: true,
      runtime: { kind: 'gateway', name: 'ok', dataDir: '', adminPort: 0, manifestFile: '', upstreams: {} },
      manifest: MANIFEST,
      rateLimitTable: SharedRateLimitTable.create({ capacity: 16 }).transferable,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      onDecisions: () => {},
      onGiveUp: () => {},
      inThread: true,
    } as const;
    assert.throws(() => new WorkerPool({ ...options, size: 2 }), RangeError);
    assert.throws(() => new WorkerPool({ ...options, size: 0 }), RangeError);
  });
});

test('worker plan: 0 is one per core; platforms without SO_REUSEPORT run one worker and say why', () => {
  assert.deepEqual(workerPlan(0, 8, 'linux'), { size: 8, reusePort: true, note: null });
  assert.deepEqual(workerPlan(3, 8, 'linux'), { size: 3, reusePort: true, note: null });
  assert.deepEqual(workerPlan(1, 8, 'linux'), { size: 1, reusePort: false, note: null });
  assert.deepEqual(workerPlan(0, 0, 'linux'), { size: 1, reusePort: false, note: null });
  for (const platform of ['darwin', 'win32']) {
    const plan = workerPlan(0, 8, platform);
    assert.equal(plan.size, 1);
    assert.equal(plan.reusePort, false);
    assert.match(String(plan.note), new RegExp(platform));
  }
  assert.deepEqual(workerPlan(1, 8, 'darwin'), { size: 1, reusePort: false, note: null });
});
