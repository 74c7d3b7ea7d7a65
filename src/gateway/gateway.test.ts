import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  patchManifest,
  type RunningGateway,
  startGateway,
  testDeps,
  testManifest,
} from '../../test/helpers/gateway-harness.ts';
import { type EchoUpstream, rawExchange, startEchoUpstream, statuses } from '../../test/helpers/http.ts';
import { startTestIssuer, type TestIssuer } from '../../test/helpers/issuer.ts';
import { isRampartError } from '../core/errors.ts';
import { createGateway } from './gateway.ts';
import { PIPELINE } from './pipeline.ts';
import type { StageDefinition } from './stage.ts';

const AUDIENCE = 'https://api.test';
const SELF = fileURLToPath(import.meta.url);

function manifestText(issuer: TestIssuer): string {
  return `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18080 }
  tls: off
identity:
  external: { issuer: "${issuer.issuer}", jwksUri: "${issuer.jwksUri}" }
  audience: ${AUDIENCE}
services:
  echo:
    run: ${SELF}
    routes:
      - { id: public, path: /public/**, methods: [GET, POST], auth: none }
      - { id: orders, path: /orders/**, methods: [GET], auth: { scopes: [orders] } }
      - { id: admin, path: /admin, methods: [POST], auth: { scopes: [catalog:write], roles: [admin] } }
      - { id: limited, path: /limited, methods: [GET], auth: none, rateLimit: 3/min per ip }
      - { id: per-user, path: /per-user, methods: [GET], auth: { scopes: [orders] }, rateLimit: 2/min per subject }
  down:
    run: ${SELF}
    routes:
      - { id: down, path: /down, methods: [GET], auth: none }
`;
}

describe('gateway', () => {
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  let gw: RunningGateway;
  let base: string;
  let port: number;
  let decisions: { events: RunningGateway['decisions'] };

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    upstream = await startEchoUpstream();
    // `down` points at a port nothing listens on.
    gw = await startGateway(testManifest(manifestText(issuer)), { echo: upstream.url, down: 'http://127.0.0.1:1' });
    port = gw.port;
    base = `http://127.0.0.1:${port}`;
    decisions = { events: gw.decisions };
  });
  after(async () => {
    await gw.close();
    await upstream.close();
    await issuer.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers });
  const seenCount = () => upstream.seen.length;

  test('the pipeline is the documented table, proxy last', () => {
    assert.deepEqual(gw.gateway.stageNames, [
      'hardening',
      'hygiene',
      'client',
      'cors',
      'route',
      'ratelimit-pre-auth',
      'authenticate',
      'authorize',
      'ratelimit-post-auth',
      'proxy',
    ]);
  });

  test('proxies a public route with gateway-owned headers and hardened response headers', async () => {
    const res = await get('/public/a?x=1', {
      'x-rampart-caller': 'spoofed',
      'x-forwarded-for': '6.6.6.6',
      'x-request-id': 'client-chosen-id-123',
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { url: '/public/a?x=1' });
    const seen = upstream.seen.at(-1)!;
    assert.equal(seen.headers['x-rampart-caller'], undefined);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.notEqual(seen.headers['x-request-id'], 'client-chosen-id-123');
    assert.match(String(seen.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(res.headers.get('server'), null);
    assert.equal(res.headers.get('x-powered-by'), null);
    assert.equal(res.headers.get('x-hop'), null, 'fields named in Connection are hop-by-hop');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('strict-transport-security'), null, 'no HSTS over plain HTTP');
  });

  test('keeps the trace id of a valid inbound traceparent', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await get('/public/t', { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
    assert.match(String(upstream.seen.at(-1)!.headers.traceparent), new RegExp(`^00-${traceId}-(?!00f067aa0ba902b7)`));
  });

  test('unrouted paths are 404 and wrong methods 405 with Allow, each a decision event', async () => {
    const before = seenCount();
    const events = decisions.events.length;
    const missing = await get('/nowhere');
    assert.equal(missing.status, 404);
    const body = (await missing.json()) as { error: string; error_id: string };
    assert.equal(body.error, 'not_found');
    assert.match(body.error_id, /^[A-Za-z0-9_-]{12}$/);
    const wrong = await fetch(`${base}/orders/1`, { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET, HEAD');
    assert.equal(seenCount(), before);
    assert.deepEqual(
      decisions.events.slice(events).map((e) => [e.stage, e.reason, e.status]),
      [
        ['route', 'no_route', 404],
        ['route', 'method_not_allowed', 405],
      ],
    );
    assert.equal(decisions.events.at(-1)!.errorId.length, 12);
  });

  test('protected routes: no token 401 with a bare challenge, scopes and roles enforced', async () => {
    const none = await get('/orders/1');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="rampart"');

    const ok = await get('/orders/1', { authorization: `Bearer ${await issuer.mint({ scope: 'orders' })}` });
    assert.equal(ok.status, 200);
    assert.match(
      String(upstream.seen.at(-1)!.headers.authorization),
      /^Bearer ey/,
      'token forwarded for the service to verify again',
    );

    const noScope = await get('/orders/1', { authorization: `Bearer ${await issuer.mint({ scope: 'profile' })}` });
    assert.equal(noScope.status, 403);
    assert.match(String(noScope.headers.get('www-authenticate')), /error="insufficient_scope", scope="orders"/);

    const post = (token: string) =>
      fetch(`${base}/admin`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal((await post(await issuer.mint({ scope: 'catalog:write', roles: ['user'] }))).status, 403);
    assert.equal((await post(await issuer.mint({ scope: 'catalog:write', roles: ['admin'] }))).status, 200);
    // A machine token (sub = client_id) never carries a user's role.
    const machine = await issuer.mint({
      scope: 'catalog:write',
      roles: ['admin'],
      sub: 'svc-bot',
      client_id: 'svc-bot',
    });
    assert.equal((await post(machine)).status, 403);
  });

  test('rejects bad tokens with 401 invalid_token and no upstream request', async () => {
    const good = await issuer.mint({ scope: 'orders' });
    const [h, p] = good.split('.') as [string, string, string];
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const cases: [string, string][] = [
      ['alg none', `${b64({ alg: 'none', typ: 'at+jwt' })}.${p}.`],
      ['alg none, empty signature part', `${b64({ alg: 'none', typ: 'at+jwt' })}.${p}.e30`],
      ['HS256', `${b64({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })}.${p}.c2ln`],
      ['tampered payload', `${h}.${b64({ ...payload, scope: 'orders admin' })}.${good.split('.')[2]}`],
      ['expired', await issuer.mint({ scope: 'orders' }, { expiresIn: -120 })],
      ['iat in the future', await issuer.mint({ scope: 'orders', iat: Math.floor(Date.now() / 1000) + 600 })],
      ['wrong issuer (trailing slash)', await issuer.mint({ scope: 'orders', iss: `${issuer.issuer}/` })],
      ['wrong audience', await issuer.mint({ scope: 'orders', aud: 'https://other.test' })],
      ['ID token typ', await issuer.mint({ scope: 'orders' }, { header: { typ: 'JWT' } })],
      ['unknown kid', await issuer.mint({ scope: 'orders' }, { header: { kid: '../../etc/passwd' } })],
      ['five-part JWE shape', `${h}.${p}.a.b.c`],
      ['too long', `${h}.${'A'.repeat(9000)}.sig`],
      ['not a JWT', 'hello'],
    ];
    const before = seenCount();
    for (const [name, token] of cases) {
      const res = await get('/orders/1', { authorization: `Bearer ${token}` });
      assert.equal(res.status, 401, name);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="rampart", error="invalid_token"', name);
    }
    const query = await get(`/orders/1?access_token=${good}`);
    assert.equal(query.status, 401, 'a token in the query string is never read');
    const basic = await get('/orders/1', { authorization: 'Basic dXNlcjpwYXNz' });
    assert.equal(basic.status, 401);
    assert.equal(seenCount(), before, 'no rejected request reached the upstream');
  });

  test('rate limits per IP with RateLimit headers; 429 spends no quota', async () => {
    const answers: Response[] = [];
    for (let i = 0; i < 5; i++) answers.push(await get('/limited'));
    assert.deepEqual(
      answers.map((r) => r.status),
      [200, 200, 200, 429, 429],
    );
    assert.equal(answers[0]!.headers.get('ratelimit-policy'), '"limited";q=3;w=60');
    assert.match(String(answers[0]!.headers.get('ratelimit')), /^"limited";r=2;t=\d+$/);
    assert.match(String(answers[3]!.headers.get('retry-after')), /^(19|20)$/);
  });

  test('per-subject limits count each subject separately, after authorization', async () => {
    const alice = await issuer.mint({ scope: 'orders', sub: 'alice' });
    const bob = await issuer.mint({ scope: 'orders', sub: 'bob' });
    const statusFor = async (token: string) => (await get('/per-user', { authorization: `Bearer ${token}` })).status;
    const unauthorized = await issuer.mint({ scope: 'none', sub: 'alice' });
    assert.equal(await statusFor(unauthorized), 403, 'refused before the limiter: spends nothing');
    assert.deepEqual([await statusFor(alice), await statusFor(alice), await statusFor(alice)], [200, 200, 429]);
    assert.equal(await statusFor(bob), 200);
  });

  test('canonical paths are matched and forwarded; confusing paths are refused', async () => {
    const cases: [string, number, string | null][] = [
      ['/public/x/../y', 200, '/public/y'],
      ['/public/%7Euser', 200, '/public/~user'],
      ['/public/./a/', 200, '/public/a'],
      ['/orders/../public/z', 200, '/public/z'],
      ['/public/../orders/1', 401, null],
      ['/public/%2e%2e/orders/1', 401, null],
      ['/public/..%2Forders/1', 400, null],
      ['/public/a%5c..%5corders', 400, null],
      ['/public/a%00', 400, null],
      ['//public/a', 400, null],
      ['/public/a;jsessionid=1', 400, null],
      ['/ORDERS/1', 404, null],
      ['/public/%C3%A9', 200, '/public/%C3%A9'],
    ];
    for (const [path, status, forwarded] of cases) {
      const before = seenCount();
      const res = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.deepEqual(statuses(res.text), [status], path);
      if (forwarded) assert.equal(upstream.seen.at(-1)!.url, forwarded, path);
      else assert.equal(seenCount(), before, `${path} must not reach the upstream`);
    }
  });

  test('request smuggling shapes get 400 and a closed connection', async () => {
    const cases: [string, string][] = [
      ['duplicate Host', 'GET /public/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
      ['absolute-form', 'GET http://evil.test/public/a HTTP/1.1\r\nHost: a\r\n\r\n'],
      [
        'CL and TE',
        'POST /public/a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      ],
      ['duplicate CL', 'POST /public/a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx'],
      ['TE not chunked', 'POST /public/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
      ['obs-fold', 'GET /public/a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n'],
      ['asterisk-form', 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n'],
    ];
    for (const [name, bytes] of cases) {
      const before = seenCount();
      const res = await rawExchange(port, bytes);
      assert.deepEqual(statuses(res.text), [400], name);
      assert.ok(res.closed, `${name}: connection closed`);
      assert.equal(seenCount(), before, `${name}: nothing reached the upstream`);
    }
  });

  test('oversized bodies are refused with 413 before the upstream', async () => {
    const before = seenCount();
    const res = await fetch(`${base}/public/upload`, { method: 'POST', body: 'x'.repeat(1_048_577) });
    assert.equal(res.status, 413);
    assert.equal(seenCount(), before);
  });

  test('a client that hangs up while the upstream works does not hurt the gateway', async () => {
    const { connect } = await import('node:net');
    for (const method of ['GET', 'POST']) {
      const socket = connect({ host: '127.0.0.1', port });
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.end(`${method} /public/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
      socket.destroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await get('/public/after-hangup')).status, 200);
  });

  test('a service that is down answers 503 at once, with an error id', async () => {
    const started = performance.now();
    const res = await get('/down');
    assert.equal(res.status, 503);
    assert.ok(performance.now() - started < 2000);
    const body = (await res.json()) as { error: string; error_id: string };
    assert.equal(body.error, 'unavailable');
  });

  test('a reconfiguration keeps the issuer keys: a reload during an issuer outage does not fail tokens', async () => {
    const first = await issuer.mint({ scope: 'orders' });
    assert.equal((await get('/orders/1', { authorization: `Bearer ${first}` })).status, 200);
    issuer.setDown(true);
    try {
      await gw.gateway.reconfigure({ ...gw.deps });
      // A token the cache has not seen, signed by the key fetched before the outage.
      const fresh = await issuer.mint({ scope: 'orders' });
      assert.equal((await get('/orders/2', { authorization: `Bearer ${fresh}` })).status, 200);
    } finally {
      issuer.setDown(false);
    }
  });

  test('decision events never contain the token', async () => {
    const token = await issuer.mint({ scope: 'nope' });
    await get('/orders/9', { authorization: `Bearer ${token}` });
    const text = JSON.stringify(decisions.events);
    assert.ok(!text.includes(token.split('.')[2]!));
    assert.equal(decisions.events.at(-1)!.subject, 'user-1');
  });
});

describe('gateway listener and reconfiguration', () => {
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  const closedStages: string[] = [];

  const yaml = (routes: string) => `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18080 }
  tls: off
identity:
  external: { issuer: "${issuer.issuer}", jwksUri: "${issuer.jwksUri}" }
  audience: ${AUDIENCE}
services:
  echo:
    run: ${SELF}
    routes:
${routes}
`;
  const PUBLIC = '      - { id: public, path: /public/**, methods: [GET, POST], auth: none }';
  const PROTECTED = '      - { id: public, path: /public/**, methods: [GET, POST], auth: { scopes: [orders] } }';
  const EXTRA = '      - { id: extra, path: /extra, methods: [GET], auth: none }';

  /** A marker stage whose close is recorded, to see which configuration's stages were released when. */
  const marker = (label: string): StageDefinition => ({
    name: 'marker',
    purpose: 'test: records when its configuration is closed',
    create: () => ({
      name: 'marker',
      request: () => {},
      close: async () => {
        closedStages.push(label);
      },
    }),
  });

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    upstream = await startEchoUpstream();
  });
  after(async () => {
    await upstream.close();
    await issuer.close();
  });

  test('reconfigure swaps the stages atomically; requests in flight finish on the old ones', async () => {
    const deps = testDeps(testManifest(yaml(PUBLIC)), { echo: upstream.url });
    const gateway = createGateway(deps, [...PIPELINE, marker('first')]);
    const port = await gateway.listen('127.0.0.1', 0);
    const url = (path: string) => `http://127.0.0.1:${port}${path}`;
    try {
      // In flight for ~300 ms at the upstream (`slow` paths) when the configuration changes.
      const inFlight = fetch(url('/public/slow'));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const { retired, restartRequired } = gateway.reconfigure({
        ...deps,
        manifest: testManifest(yaml(`${PROTECTED}\n${EXTRA}`)),
      });
      assert.deepEqual(restartRequired, []);
      let retiredEarly = false;
      void retired.then(() => {
        retiredEarly = true;
      });
      // New requests see the new configuration at once.
      assert.equal((await fetch(url('/public/x'))).status, 401, 'the route now needs a token');
      assert.equal((await fetch(url('/extra'))).status, 200, 'the new route exists');
      assert.equal(retiredEarly, false, 'the old stages stay while a request runs on them');
      assert.deepEqual(closedStages, []);
      // The request that started before finishes on the configuration it started with.
      assert.equal((await inFlight).status, 200);
      await retired;
      assert.deepEqual(closedStages, ['first'], 'old stages closed once drained');
    } finally {
      await gateway.close(100);
    }
    assert.deepEqual(closedStages, ['first', 'first'], 'close releases the configuration in force');
  });

  test('a configuration whose stages cannot be built is refused and the running one stays', async () => {
    const deps = testDeps(testManifest(yaml(PUBLIC)), { echo: upstream.url });
    const gateway = createGateway(deps);
    const port = await gateway.listen('127.0.0.1', 0);
    try {
      const bad = testManifest(yaml(PUBLIC), {
        cors: { public: { origins: ['*'], credentials: true, headers: [], maxAgeSeconds: 1 } },
      });
      assert.throws(
        () => gateway.reconfigure({ ...deps, manifest: bad }),
        (err: unknown) =>
          isRampartError(err, 'GW_ERR_RECONFIGURE') && isRampartError((err as Error).cause, 'GW_ERR_CORS_CONFIG'),
      );
      assert.equal((await fetch(`http://127.0.0.1:${port}/public/still`)).status, 200);
    } finally {
      await gateway.close(100);
    }
  });

  test('reconfigure names the settings that need a restart, and applies the live limits', async () => {
    const deps = testDeps(testManifest(yaml(PUBLIC)), { echo: upstream.url });
    const gateway = createGateway(deps);
    await gateway.listen('127.0.0.1', 0);
    try {
      const next = patchManifest(testManifest(yaml(PUBLIC)), {
        limits: { maxHeaderBytes: 8_192, headersTimeoutMs: 3_000, maxConnections: 42, tlsHandshakeTimeoutMs: 1_000 },
        trustedProxies: ['10.0.0.0/8'],
      });
      const moved = { ...next, gateway: { ...next.gateway, listen: { host: '127.0.0.1', port: 19999 } } };
      const { restartRequired } = gateway.reconfigure({ ...deps, manifest: moved });
      assert.deepEqual(restartRequired, [
        'gateway.listen',
        'gateway.limits.maxHeaderBytes',
        'gateway.limits.tlsHandshakeTimeoutMs',
      ]);
      assert.equal(gateway.server.headersTimeout, 3_000);
      assert.equal(gateway.server.maxConnections, 42);
    } finally {
      await gateway.close(100);
    }
  });

  test('chunked bodies over the limit are cut with 413 while streaming, and the connection closes', async () => {
    const deps = testDeps(testManifest(yaml(PUBLIC), { limits: { maxBodyBytes: 1_000 } }), { echo: upstream.url });
    const gateway = createGateway(deps);
    const port = await gateway.listen('127.0.0.1', 0);
    try {
      const seen = upstream.seen.length;
      const chunk = `${(600).toString(16)}\r\n${'x'.repeat(600)}\r\n`;
      const res = await rawExchange(
        port,
        `POST /public/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}${chunk}${chunk}0\r\n\r\n`,
      );
      assert.deepEqual(statuses(res.text), [413]);
      assert.match(res.text, /\r\nconnection: close\r\n/i);
      assert.ok(res.closed);
      assert.equal(upstream.seen.length, seen, 'the service never received a complete oversized body');
      // Within the limit, chunked bodies go through.
      const ok = await rawExchange(
        port,
        `POST /public/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk}0\r\n\r\n`,
      );
      assert.deepEqual(statuses(ok.text), [200]);
      assert.equal(upstream.seen.at(-1)!.body, 'x'.repeat(600));
    } finally {
      await gateway.close(100);
    }
  });

  test('listen with reusePort: two gateways share one port', async () => {
    const one = createGateway(testDeps(testManifest(yaml(PUBLIC)), { echo: upstream.url }));
    const two = createGateway(testDeps(testManifest(yaml(PUBLIC)), { echo: upstream.url }));
    try {
      const port = await one.listen('127.0.0.1', 0, { reusePort: true });
      assert.equal(await two.listen('127.0.0.1', port, { reusePort: true }), port);
      const answers = await Promise.all(
        Array.from({ length: 10 }, () =>
          fetch(`http://127.0.0.1:${port}/public/r`, { headers: { connection: 'close' } }),
        ),
      );
      assert.deepEqual(
        answers.map((r) => r.status),
        new Array(10).fill(200),
      );
      const three = createGateway(testDeps(testManifest(yaml(PUBLIC)), { echo: upstream.url }));
      await assert.rejects(three.listen('127.0.0.1', port), /EADDRINUSE/, 'without reusePort the port is taken');
      await three.close(10);
    } finally {
      await one.close(100);
      await two.close(100);
    }
  });
});
