import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import {
  RUN_FILE,
  type RunningGateway,
  startGateway,
  testDeps,
  testManifest,
} from '../../../test/helpers/gateway-harness.ts';
import { startTestIssuer, type TestIssuer } from '../../../test/helpers/issuer.ts';
import { isRampartError } from '../../core/errors.ts';
import { createCors } from './cors.ts';

const APP = 'https://app.example';

/** An upstream that records requests and answers with CORS fields of its own (which must never leak). */
async function startLeakyCorsUpstream() {
  const seen: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'x-secret',
        vary: 'Accept-Encoding',
      });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function manifestText(issuer: TestIssuer): string {
  return `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18080 }
  tls: off
identity:
  external: { issuer: "${issuer.issuer}", jwksUri: "${issuer.jwksUri}" }
  audience: https://api.test
services:
  app:
    run: ${RUN_FILE}
    routes:
      - { id: items, path: /app/items, methods: [GET, POST], auth: { scopes: [items] } }
      - { id: items-delete, path: /app/items, methods: [DELETE], auth: { scopes: [items] } }
      - { id: open, path: /open, methods: [GET], auth: none }
      - { id: plain, path: /plain, methods: [GET], auth: none }
      - { id: own-options, path: /own-options, methods: [GET, OPTIONS], auth: none }
`;
}

describe('CORS stage', () => {
  let issuer: TestIssuer;
  let upstream: Awaited<ReturnType<typeof startLeakyCorsUpstream>>;
  let gw: RunningGateway;
  let base: string;
  let token: string;

  before(async () => {
    issuer = await startTestIssuer('https://api.test');
    upstream = await startLeakyCorsUpstream();
    const manifest = testManifest(manifestText(issuer), {
      cors: {
        items: { origins: [APP], credentials: true, headers: ['authorization', 'content-type'], maxAgeSeconds: 600 },
        open: { origins: ['*'], credentials: false, headers: ['x-api-key'], maxAgeSeconds: 60 },
      },
    });
    gw = await startGateway(manifest, { app: upstream.url });
    base = `http://127.0.0.1:${gw.port}`;
    token = await issuer.mint({ scope: 'items' });
  });
  after(async () => {
    await gw.close();
    await upstream.close();
    await issuer.close();
  });

  const preflight = (path: string, origin: string, method: string, headers?: string) =>
    fetch(`${base}${path}`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': method,
        ...(headers ? { 'access-control-request-headers': headers } : {}),
      },
    });

  test('a preflight from an allowed origin is answered by the gateway, without a token', async () => {
    const seen = upstream.seen.length;
    const res = await preflight('/app/items', APP, 'POST', 'Authorization, Content-Type, X-Other');
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), APP);
    assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
    // HEAD is served wherever GET is; DELETE's route has no CORS.
    assert.equal(res.headers.get('access-control-allow-methods'), 'GET, HEAD, POST');
    assert.equal(res.headers.get('access-control-allow-headers'), 'authorization, content-type');
    assert.equal(res.headers.get('access-control-max-age'), '600');
    assert.match(String(res.headers.get('vary')), /\bOrigin\b/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', 'response hooks ran');
    assert.equal(upstream.seen.length, seen, 'the service never saw it');
  });

  test('preflights that cannot be granted are 403 decisions, with no CORS fields', async () => {
    const seen = upstream.seen.length;
    const cases: [string, string, string, string][] = [
      ['/app/items', 'https://evil.example', 'GET', 'cors_origin'],
      ['/app/items', `${APP}/`, 'GET', 'cors_origin'],
      ['/app/items', 'HTTPS://APP.EXAMPLE', 'GET', 'cors_origin'],
      ['/app/items', `${APP}.evil.example`, 'GET', 'cors_origin'],
      ['/app/items', 'null', 'GET', 'cors_origin'],
      ['/app/items', `${APP}, https://evil.example`, 'GET', 'cors_origin'],
      ['/app/items', APP, 'DELETE', 'cors_method'],
      ['/app/items', APP, 'PUT', 'cors_method'],
      ['/app/items', APP, 'post', 'cors_method'],
    ];
    for (const [path, origin, method, reason] of cases) {
      const res = await preflight(path, origin, method);
      assert.equal(res.status, 403, `${origin} ${method}`);
      assert.equal(res.headers.get('access-control-allow-origin'), null, `${origin} ${method}`);
      assert.equal(gw.decisions.at(-1)!.reason, reason);
      assert.equal(gw.decisions.at(-1)!.stage, 'cors');
    }
    assert.equal(upstream.seen.length, seen);
  });

  test('a preflight to a path without CORS is left to routing', async () => {
    const plain = await preflight('/plain', APP, 'GET');
    assert.equal(plain.status, 405, 'the route does not list OPTIONS');
    assert.equal(plain.headers.get('access-control-allow-origin'), null);
    const own = await preflight('/own-options', APP, 'GET');
    assert.equal(own.status, 200, 'the service answers OPTIONS itself');
    assert.equal(upstream.seen.at(-1)!.method, 'OPTIONS');
    assert.equal(own.headers.get('access-control-allow-origin'), null, "the service's CORS fields are dropped");
    const notPreflight = await fetch(`${base}/app/items`, { method: 'OPTIONS', headers: { origin: APP } });
    assert.equal(notPreflight.status, 405, 'OPTIONS without Access-Control-Request-Method is not a preflight');
  });

  test('actual requests from an allowed origin carry CORS fields, denials included', async () => {
    const ok = await fetch(`${base}/app/items`, { headers: { origin: APP, authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), APP);
    assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
    assert.equal(ok.headers.get('access-control-expose-headers'), null, "the service's CORS fields are dropped");
    assert.equal(ok.headers.get('vary'), 'Accept-Encoding, Origin');
    const denied = await fetch(`${base}/app/items`, { headers: { origin: APP } });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get('access-control-allow-origin'), APP, 'a browser app can read its 401');
    assert.equal(denied.headers.get('vary'), 'Origin');
  });

  test('actual requests from another origin carry no CORS fields (but still Vary: Origin)', async () => {
    const res = await fetch(`${base}/app/items`, {
      headers: { origin: 'https://evil.example', authorization: `Bearer ${token}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(res.headers.get('access-control-allow-credentials'), null);
    assert.match(String(res.headers.get('vary')), /Origin/);
  });

  test('any-origin routes answer `*`, never with credentials', async () => {
    const pre = await preflight('/open', 'https://anyone.example', 'GET', 'x-api-key');
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.equal(pre.headers.get('access-control-allow-credentials'), null);
    assert.equal(pre.headers.get('access-control-allow-headers'), 'x-api-key');
    const res = await fetch(`${base}/open`, { headers: { origin: 'https://anyone.example' } });
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.equal(res.headers.get('access-control-allow-credentials'), null);
  });

  test('routes without CORS never carry CORS fields, whatever the service sends', async () => {
    const res = await fetch(`${base}/plain`, { headers: { origin: APP } });
    assert.equal(res.status, 200);
    for (const name of [
      'access-control-allow-origin',
      'access-control-allow-credentials',
      'access-control-expose-headers',
    ]) {
      assert.equal(res.headers.get(name), null, name);
    }
  });

  test('`*` with credentials is refused when the stage is built', () => {
    const manifest = testManifest(manifestText(issuer), {
      cors: { open: { origins: ['*'], credentials: true, headers: [], maxAgeSeconds: 60 } },
    });
    const deps = { ...testDeps(manifest, {}), logger: pino({ level: 'silent' }) };
    assert.throws(
      () => createCors(deps),
      (err: unknown) => isRampartError(err, 'GW_ERR_CORS_CONFIG'),
    );
  });
});
