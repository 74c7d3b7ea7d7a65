import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from '../core/metrics.ts';
import { createBatchingDecisionSink, type DecisionEvent, openDecisionLog } from './decision-sink.ts';

const silent = pino({ level: 'silent' });

function event(i: number): DecisionEvent {
  return {
    time: new Date(0).toISOString(),
    component: 'gateway',
    decision: 'deny',
    stage: 'route',
    reason: 'not_found',
    code: 'GW_ERR_NOT_FOUND',
    status: 404,
    requestId: `r${i}`,
    errorId: `e${i}`,
    method: 'GET',
    path: `/p/${i}`,
    route: null,
    clientIp: '127.0.0.1',
    subject: null,
    clientId: null,
  };
}

function scratch(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-decisions-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean);
const line = (i: number) => `${JSON.stringify(event(i))}\n`;
const metric = async (registry: Registry, name: string) =>
  (await registry.getSingleMetric(name)!.get()).values.reduce((sum, v) => sum + v.value, 0);

/** A file handle over a real one that counts syscalls and can be made to stall or fail. */
async function instrumented(file: string) {
  const real = await open(file, 'a', 0o600);
  const state = {
    writes: 0,
    syncs: 0,
    /** Next writes fail with ENOSPC while > 0. */
    failWrites: 0,
    /** Largest number of bytes one write accepts (partial writes). */
    maxWrite: Number.POSITIVE_INFINITY,
    stall: null as Promise<void> | null,
  };
  const handle = {
    close: () => real.close(),
    datasync: async () => {
      state.syncs += 1;
      await real.datasync();
    },
    write: async (buffer: Buffer) => {
      if (state.stall) await state.stall;
      state.writes += 1;
      if (state.failWrites > 0) {
        state.failWrites -= 1;
        throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
      }
      return real.write(buffer.subarray(0, Math.min(buffer.length, state.maxWrite)));
    },
  } as unknown as FileHandle;
  return { state, openFile: async () => handle };
}

describe('worker-side batching sink', () => {
  test('posts JSON lines in batches: at the batch size at once, otherwise after the interval', async () => {
    const sent: { lines: string; count: number }[] = [];
    const sink = createBatchingDecisionSink((l, count) => sent.push({ lines: l, count }), {
      maxBatchEvents: 3,
      postIntervalMs: 30,
    });
    for (let i = 0; i < 4; i++) sink.emit(event(i));
    assert.deepEqual(
      sent.map((s) => s.count),
      [3],
      'the full batch went at once',
    );
    assert.equal(sent[0]!.lines, line(0) + line(1) + line(2));
    await delay(80);
    assert.deepEqual(
      sent.map((s) => s.count),
      [3, 1],
    );
    sink.emit(event(9));
    await sink.close();
    assert.deepEqual(
      sent.map((s) => s.count),
      [3, 1, 1],
      'close hands over the rest',
    );
    await sink.close();
    assert.equal(sent.length, 3, 'nothing twice');
  });
});

describe('durable decision log', () => {
  test('appends lines with mode 0600, also when the file existed with a wider mode', async (t) => {
    const dir = scratch(t);
    const file = join(dir, 'decisions.jsonl');
    writeFileSync(file, line(0));
    chmodSync(file, 0o644);
    const log = await openDecisionLog(file, { logger: silent, registry: new Registry() });
    log.emit(event(1));
    log.append(line(2) + line(3), 2);
    await log.close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(
      lines(file).map((l) => (JSON.parse(l) as DecisionEvent).requestId),
      ['r0', 'r1', 'r2', 'r3'],
    );
  });

  test('group commit: many events within one interval cost one write and one fdatasync', async (t) => {
    const file = join(scratch(t), 'decisions.jsonl');
    const disk = await instrumented(file);
    const registry = new Registry();
    const log = await openDecisionLog(file, {
      logger: silent,
      registry,
      openFile: disk.openFile,
      commitIntervalMs: 40,
    });
    for (let i = 0; i < 200; i++) log.append(line(i), 1);
    assert.equal(disk.state.writes, 0, 'nothing written synchronously');
    await delay(150);
    assert.equal(disk.state.writes, 1);
    assert.equal(disk.state.syncs, 1);
    assert.equal(lines(file).length, 200);
    assert.equal(await metric(registry, 'rampart_gateway_decisions_written_total'), 200);
    await log.close();
  });

  test('a full batch commits without waiting for the interval', async (t) => {
    const file = join(scratch(t), 'decisions.jsonl');
    const disk = await instrumented(file);
    const log = await openDecisionLog(file, {
      logger: silent,
      registry: new Registry(),
      openFile: disk.openFile,
      commitIntervalMs: 60_000,
      maxBatchEvents: 10,
    });
    log.append(Array.from({ length: 10 }, (_, i) => line(i)).join(''), 10);
    await log.flush();
    await delay(20);
    assert.equal(lines(file).length, 10);
    assert.equal(disk.state.syncs, 1);
    await log.close();
  });

  test('a stalled disk: memory stays bounded, the excess is dropped and counted, the rest written once', async (t) => {
    const file = join(scratch(t), 'decisions.jsonl');
    const disk = await instrumented(file);
    let release!: () => void;
    disk.state.stall = new Promise((resolve) => {
      release = resolve;
    });
    const registry = new Registry();
    const log = await openDecisionLog(file, {
      logger: silent,
      registry,
      openFile: disk.openFile,
      commitIntervalMs: 5,
      maxBatchEvents: 100,
      maxQueuedEvents: 1_000,
    });
    for (let i = 0; i < 5_000; i++) log.append(line(i), 1);
    assert.ok(log.queued <= 1_000, `queue bounded (${log.queued})`);
    assert.equal(await metric(registry, 'rampart_gateway_decisions_dropped_total'), 4_000);
    disk.state.stall = null;
    release();
    await log.close();
    const ids = lines(file).map((l) => (JSON.parse(l) as DecisionEvent).requestId);
    assert.equal(ids.length, 1_000);
    assert.equal(new Set(ids).size, 1_000, 'no line twice');
    assert.deepEqual(ids.slice(0, 3), ['r0', 'r1', 'r2'], 'oldest first: the newest were dropped');
  });

  test('failed and partial writes: retried from where they stopped, no line lost or doubled', async (t) => {
    const file = join(scratch(t), 'decisions.jsonl');
    const disk = await instrumented(file);
    disk.state.failWrites = 2;
    disk.state.maxWrite = 100; // every write is partial
    const registry = new Registry();
    const log = await openDecisionLog(file, {
      logger: silent,
      registry,
      openFile: disk.openFile,
      commitIntervalMs: 5,
    });
    for (let i = 0; i < 50; i++) log.append(line(i), 1);
    for (let attempt = 0; attempt < 100 && log.queued > 0; attempt++) await delay(10);
    await log.close();
    const ids = lines(file).map((l) => (JSON.parse(l) as DecisionEvent).requestId);
    assert.deepEqual(
      ids,
      Array.from({ length: 50 }, (_, i) => `r${i}`),
    );
    assert.equal(await metric(registry, 'rampart_gateway_decision_log_errors_total'), 2);
  });

  test('after close, appends are counted as dropped, never written', async (t) => {
    const file = join(scratch(t), 'decisions.jsonl');
    const registry = new Registry();
    const log = await openDecisionLog(file, { logger: silent, registry });
    await log.close();
    log.append(line(1), 1);
    assert.equal(readFileSync(file, 'utf8'), '');
    assert.equal(await metric(registry, 'rampart_gateway_decisions_dropped_total'), 1);
  });
});
