import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { startAdminServer } from './admin-server.ts';
import { Counter, createMetrics } from './metrics.ts';

test('health, readiness by checks, metrics, drain, loopback only', async (t) => {
  const registry = createMetrics('admin-test');
  new Counter({ name: 'rampart_test_total', help: 'a test counter', registers: [registry] }).inc(3);
  let ready = false;
  const admin = await startAdminServer({
    port: 0,
    registry,
    logger: pino({ level: 'silent' }),
    readiness: { upstream: () => ready, throws: () => Promise.resolve(true) },
  });
  t.after(() => admin.close());
  const base = `http://127.0.0.1:${admin.port}`;

  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const notReady = await fetch(`${base}/readyz`);
  assert.equal(notReady.status, 503);
  assert.deepEqual(((await notReady.json()) as { failing: string[] }).failing, ['upstream']);
  ready = true;
  assert.equal((await fetch(`${base}/readyz`)).status, 200);

  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /rampart_test_total\{component="admin-test"\} 3/);
  assert.match(metrics, /rampart_process_cpu_seconds_total/);

  assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  assert.equal((await fetch(`${base}/nope`)).status, 404);

  admin.drain();
  assert.equal((await fetch(`${base}/readyz`)).status, 503, 'draining is not ready');
  assert.equal((await fetch(`${base}/healthz`)).status, 200, 'but still alive');
});

test('a readiness check that throws counts as failing', async (t) => {
  const admin = await startAdminServer({
    port: 0,
    registry: createMetrics('admin-test-2'),
    logger: pino({ level: 'silent' }),
    readiness: {
      broken: () => {
        throw new Error('boom');
      },
    },
  });
  t.after(() => admin.close());
  const res = await fetch(`http://127.0.0.1:${admin.port}/readyz`);
  assert.equal(res.status, 503);
  assert.deepEqual(((await res.json()) as { failing: string[] }).failing, ['broken']);
});
