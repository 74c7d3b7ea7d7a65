/**
 * The gateway process with `workers: 1`, started as the launcher starts it: its one worker serves from
 * the main thread (no worker thread, one V8 isolate), with everything the thread version does —
 * readiness, aggregated metrics, reloads, decision events, and a drain on SIGTERM that exits 0.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type GatewayProcess, metricSamples, metricSum, startGatewayProcess } from './helpers/gateway-process.ts';
import { httpGet } from './helpers/processes.ts';

function manifest(extraRoute: string) {
  return (port: number) => `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: ${port} }
  tls: off
  workers: 1
identity:
  external: { issuer: "https://idp.example.com", jwksUri: "http://127.0.0.1:1/jwks" }
  audience: https://api.test
services:
  echo:
    run: services/echo.ts
    routes:
      - { id: public, path: /public/**, methods: [GET], auth: none }
${extraRoute}`;
}

/** Names of the process's threads (Node names a worker thread after its `name` option: `gateway-0`). */
function threadNames(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((task) => readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim());
}

describe('gateway process with one worker, served in the main thread', { timeout: 120_000 }, () => {
  const upstream = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
  let gateway: GatewayProcess;
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    gateway = await startGatewayProcess(
      { after: (fn) => cleanups.push(fn) },
      { manifest: manifest(''), upstreams: { echo: url } },
    );
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
    upstream.close();
    upstream.closeAllConnections();
  });

  test('serves with no worker thread, and /metrics carries the worker’s series once', async () => {
    assert.equal((await httpGet(`${gateway.base}/public/a`)).status, 200);
    const names = threadNames(gateway.child.pid);
    assert.ok(names.length > 1, `the process's threads are readable (${names})`);
    assert.deepEqual(
      names.filter((name) => name.startsWith('gateway-')),
      [],
      `no worker thread (${names})`,
    );
    const text = await gateway.metrics();
    assert.equal(metricSum(text, 'rampart_gateway_worker_requests_total', { worker: '0' }), 1);
    assert.equal(metricSum(text, 'rampart_gateway_requests_total', { route: 'public', status_class: '2xx' }), 1);
    assert.equal(
      metricSamples(text, 'rampart_gateway_workers').find((s) => s.labels['state'] === 'listening')?.value,
      1,
    );
    assert.equal(metricSamples(text, 'rampart_process_resident_memory_bytes').length, 1);
  });

  test('a new manifest applies without a restart', async () => {
    assert.equal((await httpGet(`${gateway.base}/added`)).status, 404);
    gateway.writeManifest(manifest('      - { id: added, path: /added, methods: [GET], auth: none }\n')(gateway.port));
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await delay(50);
      status = (await httpGet(`${gateway.base}/added`)).status;
    }
    assert.equal(status, 200);
  });

  test('SIGTERM drains: events up to the exit are written, the listener closes, exit 0', async () => {
    assert.equal((await httpGet(`${gateway.base}/nowhere-before-sigterm`)).status, 404);
    gateway.child.signal('SIGTERM');
    const status = await gateway.child.exited;
    assert.equal(status.code, 0, gateway.child.stderr());
    assert.equal((await httpGet(`${gateway.base}/public/after`, 1_000)).status, 0);
    assert.ok(
      gateway.decisions().some((e) => e.resource === '/nowhere-before-sigterm'),
      'the last events reached the spool before exit',
    );
  });
});
