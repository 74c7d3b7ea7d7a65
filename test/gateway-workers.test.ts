/**
 * The gateway process with two worker threads, started as the launcher starts it (permission model,
 * `--allow-worker`): both workers serve the shared port, a memory rate limit holds for the gateway as a
 * whole, `/metrics` aggregates the workers, decision events are durable, and SIGTERM drains.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type GatewayProcess, metricSamples, metricSum, startGatewayProcess } from './helpers/gateway-process.ts';
import { httpGet } from './helpers/processes.ts';

/** 30 per hour: a burst of 30, then one every 120 s, so within this test GCRA admits exactly 30. */
const LIMIT = 30;

function manifest(port: number): string {
  return `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: ${port} }
  tls: off
  workers: 2
identity:
  external: { issuer: "https://idp.example.com", jwksUri: "http://127.0.0.1:1/jwks" }
  audience: https://api.test
services:
  echo:
    run: services/echo.ts
    routes:
      - { id: public, path: /public/**, methods: [GET, POST], auth: none }
      - { id: limited, path: /limited, methods: [GET], auth: none, rateLimit: ${LIMIT}/hour per ip }
`;
}

/** An upstream that answers at once, except `/public/hold`, which waits for `release()`. */
async function startUpstream() {
  let release!: () => void;
  let held = Promise.withResolvers<void>();
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const server = createServer(async (req, res) => {
    if (req.url === '/public/hold') {
      held.resolve();
      await released;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    release,
    held: () => held.promise,
    reset: () => {
      held = Promise.withResolvers<void>();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `count` GETs, each on its own connection, `concurrency` at a time; resolves with the statuses. */
async function fresh(url: string, count: number, concurrency = 10): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, count - i) }, () => httpGet(url, 5_000));
    statuses.push(...(await Promise.all(batch)).map((r) => r.status));
  }
  return statuses;
}

describe('gateway process with two workers', { timeout: 120_000 }, () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let gateway: GatewayProcess;
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    upstream = await startUpstream();
    gateway = await startGatewayProcess(
      { after: (fn) => cleanups.push(fn) },
      { manifest, upstreams: { echo: upstream.url } },
    );
  });
  after(async () => {
    upstream.release();
    for (const fn of cleanups.reverse()) await fn();
    await upstream.close();
  });

  test('both workers serve the shared port, and /metrics adds their counts up exactly', async () => {
    const before = await gateway.metrics();
    const statuses = await fresh(`${gateway.base}/public/spread`, 60);
    assert.deepEqual(new Set(statuses), new Set([200]));
    const text = await gateway.metrics();
    const perWorker = metricSamples(text, 'rampart_gateway_worker_requests_total');
    assert.deepEqual(perWorker.map((s) => s.labels['worker']).sort(), ['0', '1'], 'one series per worker');
    const served = perWorker.map(
      (s) => s.value - metricSum(before, 'rampart_gateway_worker_requests_total', { worker: s.labels['worker']! }),
    );
    // 60 fresh connections all on one worker has probability 2^-59 with the kernel's hash spreading.
    assert.ok(
      served.every((n) => n > 0),
      `every worker served some of the 60 (${served})`,
    );
    assert.equal(
      served.reduce((a, b) => a + b, 0),
      60,
    );
    const delta = (name: string, labels: Record<string, string>) =>
      metricSum(text, name, labels) - metricSum(before, name, labels);
    assert.equal(delta('rampart_gateway_requests_total', { route: 'public', status_class: '2xx' }), 60);
    assert.equal(delta('rampart_gateway_request_duration_seconds_count', { route: 'public' }), 60);
    // The main thread's own metrics are there too, once (not summed over workers).
    assert.equal(
      metricSamples(text, 'rampart_gateway_workers').find((s) => s.labels['state'] === 'listening')?.value,
      2,
    );
    assert.equal(metricSamples(text, 'rampart_process_resident_memory_bytes').length, 1);
    // Real values under the permission model (the process may read its own /proc entry).
    assert.ok(metricSamples(text, 'rampart_process_resident_memory_bytes')[0]!.value > 10_000_000);
    assert.ok((metricSamples(text, 'rampart_process_open_fds')[0]?.value ?? 0) > 0);
  });

  test('a memory rate limit holds for the gateway as a whole: 3× the limit admits exactly the limit', async () => {
    const statuses = await fresh(`${gateway.base}/limited`, 3 * LIMIT, 15);
    const admitted = statuses.filter((s) => s === 200).length;
    const limited = statuses.filter((s) => s === 429).length;
    assert.equal(admitted, LIMIT, `admitted ${admitted} of ${3 * LIMIT}`);
    assert.equal(limited, 2 * LIMIT);
    const text = await gateway.metrics();
    assert.equal(
      metricSum(text, 'rampart_gateway_rate_limit_decisions_total', { route: 'limited', decision: 'allow' }),
      LIMIT,
    );
    assert.equal(
      metricSum(text, 'rampart_gateway_rate_limit_decisions_total', { route: 'limited', decision: 'deny' }),
      2 * LIMIT,
    );
  });

  test('every 429 is a durable audit event in the 0600 spool, whichever worker refused it', async () => {
    const deadline = Date.now() + 10_000;
    let events = gateway.decisions().filter((e) => e.detail?.route === 'limited');
    while (events.length < 2 * LIMIT && Date.now() < deadline) {
      await delay(50);
      events = gateway.decisions().filter((e) => e.detail?.route === 'limited');
    }
    assert.equal(events.length, 2 * LIMIT);
    assert.ok(events.every((e) => e.detail?.status === 429 && e.reason === 'GW_ERR_RATE_LIMITED'));
    assert.equal(new Set(events.map((e) => e.id)).size, 2 * LIMIT, 'no event twice');
    for (const file of gateway.spoolFiles()) assert.equal(statSync(file).mode & 0o777, 0o600);
    const text = await gateway.metrics();
    assert.ok(metricSum(text, 'rampart_audit_client_spooled_total') >= 2 * LIMIT);
    assert.equal(metricSum(text, 'rampart_audit_client_dropped_total'), 0);
  });

  test('SIGTERM drains: the request in flight completes, new connections are refused, events up to the exit are written, exit 0', async () => {
    upstream.reset();
    const inflight = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${gateway.base}/public/hold`, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    await upstream.held();
    // A denial just before the signal: still in a worker's batch when the drain starts.
    assert.equal((await httpGet(`${gateway.base}/nowhere-before-sigterm`)).status, 404);
    gateway.child.signal('SIGTERM');
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) {
      await delay(50);
      refused = (await httpGet(`${gateway.base}/public/after`, 1_000)).status === 0;
    }
    assert.ok(refused, 'the listener stops accepting once draining');
    upstream.release();
    assert.deepEqual(await inflight, { status: 200, body: 'ok' });
    const status = await gateway.child.exited;
    assert.equal(status.code, 0, gateway.child.stderr());
    assert.ok(
      gateway.decisions().some((e) => e.resource === '/nowhere-before-sigterm'),
      'the last events reached the file before exit',
    );
  });
});
