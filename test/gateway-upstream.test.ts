/**
 * The gateway's upstream side, in process against real local servers: the circuit breaker's whole
 * cycle, refused connections and timeouts, bodies streamed both ways without buffering, chunked bodies
 * held to the size limit, hop-by-hop fields stripped both ways, and the one retry on a fresh connection.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseManifest } from '../src/config/load.ts';
import { Registry } from '../src/core/metrics.ts';
import { createMemoryDecisionSink } from '../src/gateway/decision-sink.ts';
import { createGateway, type Gateway } from '../src/gateway/gateway.ts';
import { createGatewayMetrics } from '../src/gateway/metrics.ts';
import type { GatewayDeps } from '../src/gateway/stage.ts';
import type { ProxyDeps } from '../src/gateway/stages/proxy.ts';
import { createUpstreamTransports, type UpstreamOptions } from '../src/gateway/upstream.ts';
import { metricSum } from './helpers/gateway-process.ts';
import { freePort } from './helpers/processes.ts';

const SELF = fileURLToPath(import.meta.url);

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** A local upstream whose behaviour the test swaps; counts requests and connections. */
async function startUpstream(handler: Handler) {
  const state = { handler, requests: 0, connections: 0 };
  const server: Server = createServer((req, res) => {
    state.requests += 1;
    void state.handler(req, res);
  });
  server.on('connection', () => {
    state.connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    state,
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

interface Harness {
  gateway: Gateway;
  base: string;
  registry: Registry;
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

async function startGateway(
  upstreams: Record<string, string>,
  transport: Partial<UpstreamOptions> = {},
  limits = '',
): Promise<Harness> {
  const routes = Object.keys(upstreams)
    .map(
      (service) => `  ${service}:
    run: ${SELF}
    routes:
      - { id: ${service}, path: /${service}/**, methods: [GET, POST, PUT], auth: none }`,
    )
    .join('\n');
  const manifest = parseManifest(
    `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18080 }
  tls: off
${limits}
identity:
  external: { issuer: "https://idp.example.com", jwksUri: "http://127.0.0.1:1/jwks" }
  audience: https://api.test
services:
${routes}
`,
    '/tmp/gateway-upstream-test/rampart.yaml',
  );
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const registry = new Registry();
  const upstream = createUpstreamTransports(upstreams, { logger, registry }, transport);
  const deps: GatewayDeps & ProxyDeps = {
    manifest,
    upstreams,
    logger,
    registry,
    metrics: createGatewayMetrics(registry),
    decisions: createMemoryDecisionSink(),
    now: Date.now,
    upstream,
  };
  const gateway = createGateway(deps);
  const port = await gateway.listen('127.0.0.1', 0);
  return {
    gateway,
    base: `http://127.0.0.1:${port}`,
    registry,
    logs,
    close: async () => {
      await gateway.close(100);
      await upstream.close();
    },
  };
}

async function get(url: string, init: RequestInit = {}) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

describe('circuit breaker per service', () => {
  let mode: 'fail' | 'ok' | 'hold' = 'fail';
  const release = Promise.withResolvers<void>();
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let h: Harness;

  before(async () => {
    upstream = await startUpstream(async (_req, res) => {
      if (mode === 'hold') await release.promise;
      res.writeHead(mode === 'fail' ? 503 : 200, { 'content-type': 'text/plain' }).end(mode);
    });
    h = await startGateway(
      { svc: upstream.url },
      { breaker: { consecutiveFailures: 3, cooldownMs: 400, minimumRequests: 1000 } },
    );
  });
  after(async () => {
    release.resolve();
    await h.close();
    await upstream.close();
  });

  const state = async () =>
    metricSum(await h.registry.metrics(), 'rampart_gateway_upstream_circuit_state', { service: 'svc' });

  test('closed → open after 3 failures; open answers 503 GW_ERR_CIRCUIT_OPEN without touching the service', async () => {
    assert.equal(await state(), 0);
    for (let i = 0; i < 3; i++) assert.equal((await get(`${h.base}/svc/x`)).status, 503, 'the service’s own 503');
    assert.equal(upstream.state.requests, 3);
    assert.equal(await state(), 2, 'open');

    const refused = await get(`${h.base}/svc/x`);
    assert.equal(refused.status, 503);
    assert.equal((JSON.parse(refused.body) as { error: string }).error, 'unavailable');
    assert.equal(upstream.state.requests, 3, 'the open circuit did not reach the service');
    const logged = h.logs.find((l) => l['code'] === 'GW_ERR_CIRCUIT_OPEN');
    assert.ok(logged, 'the refusal is logged with its code');
    assert.equal(logged['errorId'], (JSON.parse(refused.body) as { error_id: string }).error_id);
    assert.ok(h.logs.some((l) => l['msg'] === 'upstream circuit opened' && l['service'] === 'svc'));
    const text = await h.registry.metrics();
    assert.equal(metricSum(text, 'rampart_gateway_upstream_errors_total', { service: 'svc', kind: 'circuit_open' }), 1);
  });

  test('half-open after the cooldown: exactly one probe reaches the service; its success closes the circuit', async () => {
    await delay(450);
    mode = 'hold';
    const probe = get(`${h.base}/svc/probe`);
    for (let i = 0; i < 100 && upstream.state.requests < 4; i++) await delay(10);
    assert.equal(upstream.state.requests, 4, 'the probe reached the service');
    assert.equal(await state(), 1, 'half-open');
    const during = await Promise.all([get(`${h.base}/svc/y`), get(`${h.base}/svc/z`)]);
    assert.deepEqual(
      during.map((r) => r.status),
      [503, 503],
      'while the probe is out, others are refused',
    );
    assert.equal(upstream.state.requests, 4);
    mode = 'ok';
    release.resolve();
    assert.equal((await probe).status, 200);
    assert.equal(await state(), 0, 'closed');
    for (let i = 0; i < 5; i++) assert.equal((await get(`${h.base}/svc/after`)).status, 200);
    assert.equal(upstream.state.requests, 9);
    const text = await h.registry.metrics();
    for (const to of ['open', 'half-open', 'closed']) {
      assert.equal(
        metricSum(text, 'rampart_gateway_upstream_circuit_transitions_total', { service: 'svc', to }),
        1,
        to,
      );
    }
  });
});

describe('upstream failures and bodies', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let silentUpstream: Server;
  let silentUrl: string;
  let h: Harness;
  const upstreamSockets = new Set<Socket>();

  before(async () => {
    upstream = await startUpstream((_req, res) => {
      res.writeHead(204).end();
    });
    // Accepts connections and never answers.
    silentUpstream = createServer(() => {});
    silentUpstream.on('connection', (socket) => upstreamSockets.add(socket));
    await new Promise<void>((resolve) => silentUpstream.listen(0, '127.0.0.1', resolve));
    silentUrl = `http://127.0.0.1:${(silentUpstream.address() as AddressInfo).port}`;
    h = await startGateway(
      { svc: upstream.url, slow: silentUrl, gone: `http://127.0.0.1:${await freePort()}` },
      { headersTimeoutMs: 300 },
      '  limits: { maxBodyBytes: 67108864 }',
    );
  });
  after(async () => {
    await h.close();
    await upstream.close();
    for (const socket of upstreamSockets) socket.destroy();
    silentUpstream.close();
  });

  test('a refused connection answers 503 at once, with an error id', async () => {
    const started = performance.now();
    const res = await get(`${h.base}/gone/x`);
    assert.equal(res.status, 503);
    assert.match((JSON.parse(res.body) as { error_id: string }).error_id, /^[\w-]{12}$/);
    assert.ok(performance.now() - started < 2_000);
    assert.ok(h.logs.some((l) => l['code'] === 'GW_ERR_UPSTREAM_UNAVAILABLE'));
  });

  test('a service that does not answer in time: 504', async () => {
    const res = await get(`${h.base}/slow/x`);
    assert.equal(res.status, 504);
    assert.equal((JSON.parse(res.body) as { error: string }).error, 'gateway_timeout');
    assert.ok(h.logs.some((l) => l['code'] === 'GW_ERR_UPSTREAM_TIMEOUT'));
  });

  test('the response streams: the client gets the first chunk before the service has written the rest', async () => {
    const clientGotFirst = Promise.withResolvers<void>();
    upstream.state.handler = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write('first chunk;');
      // Only once the client holds the first chunk does the service go on: a buffering proxy never
      // delivers it, and this exchange cannot complete.
      const streamed = await Promise.race([clientGotFirst.promise.then(() => true), delay(5_000, false)]);
      res.end(streamed ? 'rest' : 'never-streamed');
    };
    const outcome = await new Promise<{ early: boolean; body: string }>((resolve, reject) => {
      let body = '';
      let early = false;
      const req = request(`${h.base}/svc/stream`, (res) => {
        res.setEncoding('utf8').on('data', (chunk: string) => {
          if (body === '' && chunk.startsWith('first')) {
            early = true;
            clientGotFirst.resolve();
          }
          body += chunk;
        });
        res.on('end', () => resolve({ early, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(outcome, { early: true, body: 'first chunk;rest' });
  });

  test('a chunked upload streams: the service gets the first chunk before the client has sent the rest', async () => {
    const serviceGotFirst = Promise.withResolvers<void>();
    upstream.state.handler = (req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
        if (body.startsWith('first')) serviceGotFirst.resolve();
      });
      req.on('end', () => res.writeHead(200).end(`got ${body}`));
    };
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        `${h.base}/svc/upload`,
        { method: 'POST', headers: { 'transfer-encoding': 'chunked' } },
        (r) => {
          let body = '';
          r.setEncoding('utf8').on('data', (c: string) => {
            body += c;
          });
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.write('first;');
      void Promise.race([serviceGotFirst.promise.then(() => 'seen'), delay(5_000, 'timeout')]).then((outcome) => {
        req.end(outcome === 'seen' ? 'rest' : 'never-streamed');
      });
    });
    assert.deepEqual(res, { status: 200, body: 'got first;rest' });
  });

  test('32 MiB each way passes through intact', async () => {
    const size = 32 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    upstream.state.handler = (req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            sent += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () => res.writeHead(200).end(`${bytes} ${hash.digest('hex')}`));
    };
    const expected = createHash('sha256');
    for (let sent = 0; sent < size; sent += chunk.length) expected.update(chunk);
    const digest = expected.digest('hex');

    const down = await fetch(`${h.base}/svc/big`);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const c of down.body!) {
      bytes += c.length;
      hash.update(c);
    }
    assert.equal(bytes, size);
    assert.equal(hash.digest('hex'), digest);

    const up = await new Promise<string>((resolve, reject) => {
      const req = request(`${h.base}/svc/big`, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } }, (r) => {
        let body = '';
        r.setEncoding('utf8').on('data', (c: string) => {
          body += c;
        });
        r.on('end', () => resolve(body));
      });
      req.on('error', reject);
      let sent = 0;
      const pump = () => {
        while (sent < size) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    assert.equal(up, `${size} ${digest}`);
  });
});

describe('request body limit on chunked uploads', () => {
  test('a chunked body over maxBodyBytes is refused 413 and the service never gets it whole', async (t) => {
    let complete = 0;
    const upstream = await startUpstream((req, res) => {
      req.on('data', () => {});
      req.on('end', () => {
        complete += 1;
        res.writeHead(200).end();
      });
      req.on('error', () => {});
    });
    t.after(() => upstream.close());
    const h = await startGateway({ svc: upstream.url }, {}, '  limits: { maxBodyBytes: 65536 }');
    t.after(() => h.close());
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        `${h.base}/svc/upload`,
        { method: 'POST', headers: { 'transfer-encoding': 'chunked' } },
        (r) => {
          let body = '';
          r.setEncoding('utf8').on('data', (c: string) => {
            body += c;
          });
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      const chunk = Buffer.alloc(16 * 1024, 1);
      let sent = 0;
      const pump = () => {
        // Stop sending once the answer is in: the gateway closes after a 413.
        while (sent < 256 * 1024 && !req.destroyed) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    assert.equal(res.status, 413);
    assert.equal((JSON.parse(res.body) as { error: string }).error, 'payload_too_large');
    await delay(100);
    assert.equal(complete, 0, 'no complete oversized body reached the service');
  });
});

describe('hop-by-hop fields', () => {
  test('are stripped both ways, with the fields Connection names', async (t) => {
    let seen: IncomingMessage['headers'] = {};
    const upstream = await startUpstream((req, res) => {
      seen = req.headers;
      res.writeHead(200, {
        connection: 'keep-alive, x-resp-hop',
        'x-resp-hop': 'secret',
        'keep-alive': 'timeout=99, max=7',
        'proxy-authenticate': 'Basic realm="x"',
        trailer: 'x-trailer',
        'x-resp-end': 'kept',
      });
      res.end('ok');
    });
    t.after(() => upstream.close());
    const h = await startGateway({ svc: upstream.url });
    t.after(() => h.close());
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(`${h.base}/svc/hop`, {
        headers: {
          connection: 'keep-alive, x-req-hop',
          'x-req-hop': 'secret',
          'keep-alive': 'timeout=5',
          te: 'trailers',
          'proxy-authorization': 'Basic Zm9vOmJhcg==',
          'proxy-connection': 'keep-alive',
          'x-req-end': 'kept',
        },
      });
      req.on('response', (r) => {
        r.resume();
        r.on('end', () => resolve(r));
      });
      req.on('error', reject);
      req.end();
    });
    for (const name of ['x-req-hop', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection']) {
      assert.equal(seen[name], undefined, `request ${name}`);
    }
    assert.notEqual(seen.connection, 'keep-alive, x-req-hop');
    assert.equal(seen['x-req-end'], 'kept');
    for (const name of ['x-resp-hop', 'proxy-authenticate', 'trailer']) {
      assert.equal(res.headers[name], undefined, `response ${name}`);
    }
    // The gateway's own server sends its own Keep-Alive and Connection; the service's never pass.
    assert.notEqual(res.headers['keep-alive'], 'timeout=99, max=7');
    assert.doesNotMatch(String(res.headers.connection), /x-resp-hop/);
    assert.equal(res.headers['x-resp-end'], 'kept');
  });
});

describe('one retry on a fresh connection', () => {
  test('a bodiless GET whose pooled connection dies is sent once more (200); a POST with a body is not (502)', async (t) => {
    // The service drops every connection at its second request without answering: what a restarted
    // service looks like to a pool holding its old sockets.
    const perSocket = new WeakMap<Socket, number>();
    const upstream = await startUpstream((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (n >= 2) {
        req.socket.destroy();
        return;
      }
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
    });
    t.after(() => upstream.close());
    const h = await startGateway({ svc: upstream.url });
    t.after(() => h.close());

    assert.equal((await get(`${h.base}/svc/1`)).status, 200);
    assert.equal(upstream.state.connections, 1);
    assert.equal((await get(`${h.base}/svc/2`)).status, 200, 'the pooled socket died; the retry got through');
    assert.equal(upstream.state.connections, 2, 'the retry used a new connection');
    assert.equal(upstream.state.requests, 3);

    assert.equal(
      (await get(`${h.base}/svc/3`, { method: 'POST', body: 'payload' })).status,
      200,
      'fresh pooled socket',
    );
    const dropped = await get(`${h.base}/svc/4`, { method: 'POST', body: 'payload' });
    assert.equal(dropped.status, 502, 'a request with a body is never sent twice');
  });
});
