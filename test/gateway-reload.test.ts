/**
 * Configuration reload of the real gateway process (two workers): SIGHUP and file changes apply a new
 * manifest to every worker without dropping connections, a broken manifest is refused while the last
 * good one keeps serving, and a request in flight during a reload completes on the configuration it
 * started with.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Client } from 'undici';
import { type GatewayProcess, metricSum, startGatewayProcess } from './helpers/gateway-process.ts';
import { httpGet } from './helpers/processes.ts';

interface Shape {
  /** Extra routes besides `a`. */
  routes?: string[];
  /** `a`'s limit per minute. */
  aLimit?: number;
}

function manifest(port: number, shape: Shape = {}): string {
  const routes = [
    `      - { id: a, path: /a/**, methods: [GET], auth: none, rateLimit: ${shape.aLimit ?? 100}/min per ip }`,
    ...(shape.routes ?? []).map((id) => `      - { id: ${id}, path: /${id}/**, methods: [GET], auth: none }`),
  ];
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
${routes.join('\n')}
`;
}

/** Answers 200 at once, except paths ending in `/hold`, which wait for `release()`. */
async function startUpstream() {
  let held = Promise.withResolvers<void>();
  let released = Promise.withResolvers<void>();
  const server = createServer(async (req, res) => {
    if (req.url?.endsWith('/hold')) {
      held.resolve();
      await released.promise;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(req.url);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held: () => held.promise,
    release: () => released.resolve(),
    reset: () => {
      held = Promise.withResolvers<void>();
      released = Promise.withResolvers<void>();
    },
    close: () =>
      new Promise<void>((resolve) => {
        released.resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Polls `probe` until it returns true; fails after `timeoutMs`. */
async function eventually(what: string, probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await delay(100);
  }
}

describe('gateway configuration reload', { timeout: 120_000 }, () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let gateway: GatewayProcess;
  let keepAlive: Client;
  let connects = 0;
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    upstream = await startUpstream();
    gateway = await startGatewayProcess(
      { after: (fn) => cleanups.push(fn) },
      { manifest: (port) => manifest(port), upstreams: { echo: upstream.url } },
    );
    // One connection for the whole suite: a reload must never drop it.
    keepAlive = new Client(gateway.base, { pipelining: 1, keepAliveTimeout: 60_000 });
    keepAlive.on('connect', () => {
      connects += 1;
    });
  });
  after(async () => {
    await keepAlive.close();
    for (const fn of cleanups.reverse()) await fn();
    await upstream.close();
  });

  const get = async (path: string) => {
    const res = await keepAlive.request({ method: 'GET', path });
    await res.body.text();
    return res;
  };
  /** Status on a fresh connection (so every worker is asked, over several calls). */
  const freshStatus = async (path: string) => (await httpGet(`${gateway.base}${path}`)).status;
  const reloads = async (result: string) =>
    metricSum(await gateway.metrics(), 'rampart_gateway_config_reload_total', { result });

  test('SIGHUP applies a changed manifest in every worker without dropping an open keep-alive connection', async () => {
    assert.equal((await get('/a/1')).statusCode, 200);
    assert.equal((await get('/b/1')).statusCode, 404);
    const successes = await reloads('success');
    gateway.writeManifest(manifest(gateway.port, { routes: ['b'] }));
    gateway.child.signal('SIGHUP');
    await eventually('route b served on the kept connection', async () => (await get('/b/1')).statusCode === 200);
    // Fresh connections land on both workers: all of them know route b.
    const statuses = await Promise.all(Array.from({ length: 30 }, () => freshStatus('/b/2')));
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(connects, 1, 'the keep-alive connection survived the reload');
    assert.ok((await reloads('success')) > successes);
    assert.match(gateway.child.stdout(), /"trigger":"signal"[^\n]*"msg":"manifest reloaded"/);
  });

  test('a broken manifest is refused with its issues logged; the last good configuration keeps serving', async () => {
    const errors = await reloads('error');
    gateway.writeManifest(`${manifest(gateway.port, { routes: ['b'] })}gatewy: {}\n`);
    gateway.child.signal('SIGHUP');
    await eventually('the refusal is counted', async () => (await reloads('error')) > errors);
    assert.match(
      gateway.child.stdout(),
      /CFG_ERR_UNKNOWN_KEY[^\n]*manifest reload refused: keeping the last good configuration/,
    );
    const text = await gateway.metrics();
    assert.equal(metricSum(text, 'rampart_gateway_config_last_reload_successful'), 0);
    assert.equal((await get('/a/1')).statusCode, 200);
    assert.equal((await get('/b/1')).statusCode, 200);
    const statuses = await Promise.all(Array.from({ length: 20 }, () => freshStatus('/b/3')));
    assert.deepEqual(new Set(statuses), new Set([200]));
    assert.equal(connects, 1);
  });

  test('a change of the file alone triggers a reload (no signal)', async () => {
    const generation = metricSum(await gateway.metrics(), 'rampart_gateway_config_generation');
    gateway.writeManifest(manifest(gateway.port, { routes: ['b', 'c'] }));
    await eventually('route c served', async () => (await freshStatus('/c/1')) === 200);
    const text = await gateway.metrics();
    assert.equal(metricSum(text, 'rampart_gateway_config_generation'), generation + 1);
    assert.equal(metricSum(text, 'rampart_gateway_config_last_reload_successful'), 1);
    assert.match(gateway.child.stdout(), /"trigger":"file"[^\n]*"msg":"manifest reloaded"/);
    assert.equal(connects, 1);
  });

  test('a request in flight during a reload completes on the configuration it started with', async () => {
    upstream.reset();
    const inflight = keepAlive.request({ method: 'GET', path: '/a/hold' });
    await upstream.held();
    // While it waits upstream, route a's limit changes from 100 to 50 per minute.
    gateway.writeManifest(manifest(gateway.port, { routes: ['b', 'c'], aLimit: 50 }));
    gateway.child.signal('SIGHUP');
    await eventually('the new limit in force for new requests', async () => {
      const res = await fetch(`${gateway.base}/a/new`);
      await res.arrayBuffer();
      return res.headers.get('ratelimit-policy') === '"a";q=50;w=60';
    });
    upstream.release();
    const res = await inflight;
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), '/a/hold');
    assert.equal(
      res.headers['ratelimit-policy'],
      '"a";q=100;w=60',
      'the response passed through the stages of the configuration the request started on',
    );
    assert.equal(connects, 1);
  });
});
