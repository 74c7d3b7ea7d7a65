import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { isRampartError } from './errors.ts';
import {
  createJwks,
  isAllowedKeyUrl,
  JWKS_DEFAULTS,
  type JwksFetchEvent,
  type JwksOptions,
  type JwksStore,
  metadataUrls,
} from './jwks.ts';

const ALGS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  readonly base: string;
  /** Every request URL, in order. */
  readonly requests: string[];
  handle: Handler;
  close(): Promise<void>;
}

async function startServer(): Promise<TestServer> {
  const requests: string[] = [];
  const state: { handle: Handler } = { handle: (_req, res) => void res.writeHead(404).end() };
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    state.handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    get handle() {
      return state.handle;
    },
    set handle(h: Handler) {
      state.handle = h;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const json = (body: unknown, status = 200): Handler => {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return (_req, res) => void res.writeHead(status, { 'content-type': 'application/json' }).end(text);
};

async function ecJwk(kid: string | undefined, extra: Record<string, unknown> = {}): Promise<JWK> {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(publicKey)), ...(kid === undefined ? {} : { kid }), ...extra };
}

/** A key set served from a mutable list; counts fetches of /jwks. */
function jwksHandler(keys: () => unknown[], down: () => boolean = () => false): Handler {
  return (req, res) => {
    if (req.url !== '/jwks') return void res.writeHead(404).end();
    if (down()) return void res.writeHead(503).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: keys() }));
  };
}

const jwksCount = (s: TestServer) => s.requests.filter((u) => u === '/jwks').length;

async function rejects(promise: Promise<unknown>, code: string, reason: string, status?: number): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isRampartError(err, code), `expected ${code}, got ${String(err)}`);
    assert.equal(err.detail?.['reason'], reason);
    if (status !== undefined) assert.equal(err.status, status);
    return true;
  });
}

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('jwks', () => {
  let server: TestServer;
  let clock: number;
  let events: JwksFetchEvent[];
  const now = () => clock;

  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const store = (options: Partial<JwksOptions> = {}): JwksStore => {
    clock = 1_700_000_000_000;
    events = [];
    server.requests.length = 0;
    return createJwks({
      issuer: server.base,
      jwksUri: `${server.base}/jwks`,
      algorithms: ALGS,
      now,
      onFetch: (e) => events.push(e),
      ...options,
    });
  };

  test('fetches lazily, once, and resolves keys by kid and alg', async () => {
    const k1 = await ecJwk('k1');
    server.handle = jwksHandler(() => [k1]);
    const keys = store();
    assert.equal(jwksCount(server), 0, 'nothing fetched before a key is needed');
    const key = await keys.getKey('ES256', 'k1');
    assert.equal(key.kid, 'k1');
    assert.equal(key.alg, 'ES256');
    assert.equal(key.key.type, 'public');
    assert.deepEqual(key.key.usages, ['verify']);
    await keys.getKey('ES256', 'k1');
    assert.equal(jwksCount(server), 1);
    assert.deepEqual(
      events.map((e) => [e.target, e.outcome, e.keys]),
      [['jwks', 'ok', 1]],
    );
    await rejects(keys.getKey('RS256', 'k1'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key', 401);
  });

  test('imports only public signature keys usable for the allowed algorithms', async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
    // jose refuses to make a 1024-bit key; node:crypto still can (test input only).
    const rsaSmall = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const ed = await generateKeyPair('EdDSA', { extractable: true });
    const p384 = await generateKeyPair('ES384', { extractable: true });
    const ecPair = await generateKeyPair('ES256', { extractable: true });
    const rsaJwk = await exportJWK(rsa.publicKey);
    const table: [string, unknown, string[]][] = [
      ['EC P-256, no alg', await ecJwk('ec'), ['ES256']],
      ['EC with use sig', await ecJwk('ec-sig', { use: 'sig' }), ['ES256']],
      ['EC with key_ops verify', await ecJwk('ec-ops', { key_ops: ['verify'] }), ['ES256']],
      ['EC with an x5c member (ignored, key still usable)', await ecJwk('ec-x5c', { x5c: ['AAAA'] }), ['ES256']],
      ['Ed25519', { ...(await exportJWK(ed.publicKey)), kid: 'ed' }, ['EdDSA']],
      ['RSA 2048, no alg: both RSA algorithms', { ...rsaJwk, kid: 'rsa' }, ['PS256', 'RS256']],
      ['RSA with alg PS256', { ...rsaJwk, kid: 'rsa-ps', alg: 'PS256' }, ['PS256']],
      ['use enc', await ecJwk('enc', { use: 'enc' }), []],
      ['key_ops without verify', await ecJwk('ops', { key_ops: ['encrypt'] }), []],
      ['EC P-384 (ES384 not allowed)', { ...(await exportJWK(p384.publicKey)), kid: 'p384' }, []],
      ['RSA 1024', { ...rsaSmall, kid: 'rsa1024' }, []],
      ['alg HS256 on an EC key', await ecJwk('hs', { alg: 'HS256' }), []],
      ['alg RS256 on an EC key', await ecJwk('mismatch', { alg: 'RS256' }), []],
      ['symmetric key', { kty: 'oct', k: 'c2VjcmV0', kid: 'oct' }, []],
      ['private EC key', { ...(await exportJWK(ecPair.privateKey)), kid: 'private' }, []],
      ['numeric kid', await ecJwk(undefined, { kid: 7 }), []],
      ['kid over the length cap', await ecJwk('x'.repeat(JWKS_DEFAULTS.maxKidLength + 1)), []],
      ['EC point not on the curve', { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', kid: 'bad-point' }, []],
      ['not an object', 'hello', []],
    ];
    server.handle = jwksHandler(() => table.map(([, jwk]) => jwk));
    const keys = store();
    assert.equal(await keys.refresh(), true);
    const tryGet = async (alg: string, kid: string) => {
      try {
        await keys.getKey(alg, kid);
        return true;
      } catch {
        return false;
      }
    };
    for (const [name, jwk, algs] of table) {
      const kid = (jwk as { kid?: unknown })?.kid;
      if (typeof kid !== 'string' || kid.length > JWKS_DEFAULTS.maxKidLength) continue;
      const usable: string[] = [];
      for (const alg of ALGS) if (await tryGet(alg, kid)) usable.push(alg);
      assert.deepEqual(usable.sort(), algs, name);
    }
    assert.equal(events[0]!.keys, 8);
    assert.equal(events[0]!.skipped, 12);
    assert.equal(jwksCount(server), 1, 'unusable kids are known kids: no refetch');
  });

  test('keeps at most maxKeys keys', async () => {
    const many = await Promise.all(Array.from({ length: 12 }, (_, i) => ecJwk(`m${i}`)));
    server.handle = jwksHandler(() => many);
    const keys = store({ maxKeys: 5 });
    await keys.refresh();
    assert.equal(keys.status().keys, 5);
    assert.equal(events[0]!.skipped, 7);
    await keys.getKey('ES256', 'm4');
    clock += JWKS_DEFAULTS.cooldownMs;
    await rejects(keys.getKey('ES256', 'm5'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
  });

  test('kid is validated and only ever a map key', async () => {
    const k1 = await ecJwk('k1');
    server.handle = jwksHandler(() => [k1]);
    const keys = store();
    for (const kid of ['', 7, null, {}, ['k1'], 'x'.repeat(JWKS_DEFAULTS.maxKidLength + 1)]) {
      await rejects(keys.getKey('ES256', kid), 'AUTH_ERR_UNKNOWN_KEY', 'invalid_kid', 401);
    }
    assert.equal(jwksCount(server), 0, 'an invalid kid never causes a fetch');
    const hostile = [
      '../../etc/passwd',
      "k1' OR '1'='1",
      'http://evil.test/jwks',
      '%2e%2e%2f',
      'k1\u0000',
      '__proto__',
    ];
    for (const kid of hostile) {
      await rejects(keys.getKey('ES256', kid), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key', 401);
    }
    assert.ok(
      server.requests.every((u) => u === '/jwks'),
      `only the configured URL is ever requested: ${server.requests}`,
    );
    assert.equal(jwksCount(server), 1, 'one fetch, then the cooldown holds');
  });

  test('an algorithm outside the allow-list never looks up or fetches', async () => {
    server.handle = jwksHandler(() => []);
    const keys = store();
    for (const alg of ['none', 'HS256', 'ES384', 'RS512']) {
      await rejects(keys.getKey(alg, 'k1'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
    }
    assert.equal(jwksCount(server), 0);
  });

  test('single flight: concurrent first uses share one fetch', async () => {
    const k1 = await ecJwk('k1');
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    server.handle = (req, res) => void gate.then(() => jwksHandler(() => [k1])(req, res));
    const keys = store();
    const all = Array.from({ length: 50 }, () => keys.getKey('ES256', 'k1'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    const got = await Promise.all(all);
    assert.ok(got.every((k) => k === got[0]));
    assert.equal(jwksCount(server), 1);
  });

  test('unknown kids: at most one refetch per cooldown, shared by concurrent callers', async () => {
    const k1 = await ecJwk('k1');
    server.handle = jwksHandler(() => [k1]);
    const keys = store();
    await keys.getKey('ES256', 'k1');
    clock += JWKS_DEFAULTS.cooldownMs;
    const flood = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => keys.getKey('ES256', `random-${i}-${Math.random()}`)),
    );
    assert.ok(flood.every((r) => r.status === 'rejected'));
    assert.equal(jwksCount(server), 2, 'one refetch for 200 unknown kids');
    clock += JWKS_DEFAULTS.cooldownMs - 1;
    await rejects(keys.getKey('ES256', 'still-unknown'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
    assert.equal(jwksCount(server), 2, 'inside the cooldown: no fetch');
    clock += 1;
    await rejects(keys.getKey('ES256', 'still-unknown'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
    assert.equal(jwksCount(server), 3, 'after the cooldown: one more');
  });

  test('concurrent callers with a new kid all wait for the one re-fetch', async () => {
    const k1 = await ecJwk('k1');
    const k2 = await ecJwk('k2');
    let published = [k1];
    server.handle = jwksHandler(() => published);
    const keys = store();
    await keys.getKey('ES256', 'k1');
    published = [k1, k2];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    server.handle = (req, res) => void gate.then(() => jwksHandler(() => published)(req, res));
    clock += JWKS_DEFAULTS.cooldownMs;
    const waiting = Array.from({ length: 20 }, () => keys.getKey('ES256', 'k2'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    const got = await Promise.all(waiting);
    assert.ok(got.every((k) => k.kid === 'k2'));
    assert.equal(jwksCount(server), 2);
  });

  test('rotation: a new kid is picked up; a removed key stops at the next successful fetch', async () => {
    const k1 = await ecJwk('k1');
    const k2 = await ecJwk('k2');
    let published = [k1];
    server.handle = jwksHandler(() => published);
    const keys = store();
    const first = await keys.getKey('ES256', 'k1');
    published = [k1, k2];
    clock += JWKS_DEFAULTS.cooldownMs;
    assert.equal((await keys.getKey('ES256', 'k2')).kid, 'k2');
    assert.equal((await keys.getKey('ES256', 'k1')).ref, first.ref, 'same kid and material: same ref');
    assert.equal(keys.hasKey(first.ref), true);
    published = [k2];
    clock += JWKS_DEFAULTS.maxAgeMs + 1;
    assert.equal(await keys.refresh(), true);
    await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
    assert.equal(keys.hasKey(first.ref), false, 'the retired key is gone');
  });

  test('a kid reused with new key material gets a new ref', async () => {
    let k1 = await ecJwk('k1');
    server.handle = jwksHandler(() => [k1]);
    const keys = store();
    const before = await keys.getKey('ES256', 'k1');
    k1 = await ecJwk('k1');
    clock += JWKS_DEFAULTS.cooldownMs;
    await keys.refresh();
    const afterRefresh = await keys.getKey('ES256', 'k1');
    assert.notEqual(afterRefresh.ref, before.ref);
    assert.equal(keys.hasKey(before.ref), false);
  });

  test('an old key set is refreshed in the background while its keys keep serving', async () => {
    const k1 = await ecJwk('k1');
    const k2 = await ecJwk('k2');
    let published = [k1];
    let release: () => void = () => {};
    server.handle = jwksHandler(() => published);
    const keys = store();
    await keys.getKey('ES256', 'k1');
    published = [k1, k2];
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    server.handle = (req, res) => void gate.then(() => jwksHandler(() => published)(req, res));
    clock += JWKS_DEFAULTS.maxAgeMs + 1;
    // Served from the current set without waiting for the (held) refresh.
    assert.equal((await keys.getKey('ES256', 'k1')).kid, 'k1');
    assert.equal(keys.status().keys, 1);
    release();
    assert.equal(await keys.refresh(), true, 'joins the refresh in flight');
    assert.equal(keys.status().keys, 2);
    assert.equal(keys.status().ageMs, 0);
  });

  test('issuer down: last good keys serve until maxStale, then fail closed; recovery after the cooldown', async () => {
    const k1 = await ecJwk('k1');
    let down = false;
    server.handle = jwksHandler(
      () => [k1],
      () => down,
    );
    const keys = store();
    const key = await keys.getKey('ES256', 'k1');
    down = true;
    clock += JWKS_DEFAULTS.maxAgeMs + 1;
    await keys.getKey('ES256', 'k1');
    await keys.refresh(); // the background refresh fails
    assert.deepEqual(
      events.map((e) => e.outcome),
      ['ok', 'http_status'],
    );
    clock = clock - (JWKS_DEFAULTS.maxAgeMs + 1) + JWKS_DEFAULTS.maxStaleMs;
    assert.equal((await keys.getKey('ES256', 'k1')).kid, 'k1', 'still within the stale bound');
    assert.equal(keys.hasKey(key.ref), true);
    const fetches = jwksCount(server);
    clock += 1;
    assert.equal(keys.hasKey(key.ref), false, 'beyond the bound nothing is current');
    await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_KEYS_UNAVAILABLE', 'jwks_unavailable', 503);
    assert.equal(jwksCount(server), fetches + 1, 'one retry');
    await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_KEYS_UNAVAILABLE', 'jwks_unavailable', 503);
    assert.equal(jwksCount(server), fetches + 1, 'no second retry inside the cooldown');
    assert.equal(keys.status().usable, false);
    down = false;
    clock += JWKS_DEFAULTS.cooldownMs;
    assert.equal((await keys.getKey('ES256', 'k1')).kid, 'k1', 'back once the issuer is');
  });

  test('never fetched and down: 503, retried once per cooldown', async () => {
    server.handle = (_req, res) => void res.writeHead(500).end();
    const keys = store();
    await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_KEYS_UNAVAILABLE', 'jwks_unavailable', 503);
    await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_KEYS_UNAVAILABLE', 'jwks_unavailable', 503);
    assert.equal(jwksCount(server), 1);
    clock += JWKS_DEFAULTS.cooldownMs;
    await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_KEYS_UNAVAILABLE', 'jwks_unavailable', 503);
    assert.equal(jwksCount(server), 2);
    assert.equal(keys.status().ageMs, null);
  });

  test('hostile or broken responses are failures with a bounded outcome, and keep the old keys', async () => {
    const k1 = await ecJwk('k1');
    const big = JSON.stringify({ keys: [k1], pad: 'x'.repeat(70_000) });
    const cases: [string, Handler, JwksFetchEvent['outcome']][] = [
      ['HTTP 500', json({}, 500), 'http_status'],
      ['redirect to a valid set', (_req, res) => void res.writeHead(302, { location: '/good' }).end(), 'redirect'],
      ['not JSON', json('<html>'), 'invalid'],
      ['JSON without keys', json({ foo: [] }), 'invalid'],
      ['keys not an array', json({ keys: {} }), 'invalid'],
      ['a JSON array', json([k1]), 'invalid'],
      ['invalid UTF-8', (_req, res) => void res.writeHead(200).end(Buffer.from([0x7b, 0xff, 0x7d])), 'invalid'],
      ['declared too large', json(big), 'too_large'],
      [
        'streamed too large (no length)',
        (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write(big.slice(0, 40_000));
          res.end(big.slice(40_000));
        },
        'too_large',
      ],
      ['never answers', () => {}, 'timeout'],
      ['connection reset', (req) => void req.socket.destroy(), 'network'],
    ];
    for (const [name, handler, outcome] of cases) {
      server.handle = jwksHandler(() => [k1]);
      const keys = store({ timeoutMs: 300 });
      await keys.getKey('ES256', 'k1');
      server.handle = (req, res) => (req.url === '/good' ? jwksHandler(() => [])(req, res) : handler(req, res));
      clock += JWKS_DEFAULTS.maxAgeMs + 1;
      assert.equal(await keys.refresh(), true, `${name}: old keys still usable`);
      assert.equal(events.at(-1)!.outcome, outcome, name);
      assert.equal((await keys.getKey('ES256', 'k1')).kid, 'k1', `${name}: old keys kept`);
      assert.ok(!server.requests.includes('/good'), `${name}: redirect not followed`);
    }
  });

  test('a clock stepping backwards neither blocks fetching nor freezes the key set', async () => {
    const k1 = await ecJwk('k1');
    const k2 = await ecJwk('k2');
    let published = [k1];
    server.handle = jwksHandler(() => published);
    const keys = store();
    await keys.getKey('ES256', 'k1');
    published = [k1, k2];
    clock -= 3_600_000;
    assert.equal((await keys.getKey('ES256', 'k2')).kid, 'k2', 'an unknown kid still gets its re-fetch');
    assert.equal(jwksCount(server), 2);
    clock -= 3_600_000;
    await keys.getKey('ES256', 'k1');
    // The use starts a background refresh: a set fetched "in the future" has an unknown age.
    await waitFor(() => jwksCount(server) === 3);
  });

  test('an empty key set from the issuer is authoritative: every key is revoked', async () => {
    const k1 = await ecJwk('k1');
    let published: unknown[] = [k1];
    server.handle = jwksHandler(() => published);
    const keys = store();
    await keys.getKey('ES256', 'k1');
    published = [];
    clock += JWKS_DEFAULTS.maxAgeMs + 1;
    await keys.refresh();
    await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
  });

  test('a token without kid resolves only when exactly one key serves its algorithm', async () => {
    const a = await ecJwk(undefined);
    const b = await ecJwk('b');
    let published: unknown[] = [a];
    server.handle = jwksHandler(() => published);
    const keys = store();
    assert.equal((await keys.getKey('ES256', undefined)).kid, null);
    await rejects(keys.getKey('ES256', 'b'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
    published = [a, b];
    clock += JWKS_DEFAULTS.cooldownMs;
    assert.equal((await keys.getKey('ES256', 'b')).kid, 'b');
    await rejects(keys.getKey('ES256', undefined), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
  });

  test('an observer that throws does not break fetching', async () => {
    const k1 = await ecJwk('k1');
    server.handle = jwksHandler(() => [k1]);
    const keys = store({
      onFetch: () => {
        throw new Error('observer bug');
      },
    });
    assert.equal((await keys.getKey('ES256', 'k1')).kid, 'k1');
  });

  describe('discovery', () => {
    const metadata = (issuer: string, jwksUri: string): Handler => json({ issuer, jwks_uri: jwksUri });

    test('OIDC discovery: exact issuer, then cached', async () => {
      const k1 = await ecJwk('k1');
      const keys = store({ jwksUri: null });
      server.handle = (req, res) =>
        req.url === '/.well-known/openid-configuration'
          ? metadata(server.base, `${server.base}/jwks`)(req, res)
          : jwksHandler(() => [k1])(req, res);
      await keys.getKey('ES256', 'k1');
      clock += JWKS_DEFAULTS.cooldownMs;
      await rejects(keys.getKey('ES256', 'k9'), 'AUTH_ERR_UNKNOWN_KEY', 'unknown_key');
      assert.deepEqual(server.requests, ['/.well-known/openid-configuration', '/jwks', '/jwks']);
      assert.deepEqual(
        events.map((e) => `${e.target}:${e.outcome}`),
        ['discovery:ok', 'jwks:ok', 'jwks:ok'],
      );
    });

    test('RFC 8414 for an issuer with a path, after OIDC fails', async () => {
      const k1 = await ecJwk('k1');
      const issuer = `${server.base}/tenant/`;
      const keys = store({ jwksUri: null, issuer });
      server.handle = (req, res) =>
        req.url === '/.well-known/oauth-authorization-server/tenant'
          ? metadata(issuer, `${server.base}/jwks`)(req, res)
          : jwksHandler(() => [k1])(req, res);
      await keys.getKey('ES256', 'k1');
      assert.deepEqual(server.requests, [
        '/tenant/.well-known/openid-configuration',
        '/.well-known/oauth-authorization-server/tenant',
        '/jwks',
      ]);
    });

    test('metadata about another issuer, or pointing at a disallowed URL, is refused; retried per cooldown', async () => {
      const k1 = await ecJwk('k1');
      const bad: [string, Handler][] = [
        ['trailing slash', metadata(`${server.base}/`, `${server.base}/jwks`)],
        ['other case', metadata(server.base.toUpperCase(), `${server.base}/jwks`)],
        ['no issuer', json({ jwks_uri: `${server.base}/jwks` })],
        ['plain http to a remote host', metadata(server.base, 'http://evil.test/jwks')],
        ['jwks_uri not a string', metadata(server.base, 42 as unknown as string)],
      ];
      for (const [name, handler] of bad) {
        const keys = store({ jwksUri: null });
        server.handle = (req, res) => (req.url === '/jwks' ? jwksHandler(() => [k1])(req, res) : handler(req, res));
        await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_KEYS_UNAVAILABLE', 'jwks_unavailable', 503);
        assert.equal(jwksCount(server), 0, name);
        assert.equal(server.requests.length, 2, `${name}: both well-known locations tried once`);
        await rejects(keys.getKey('ES256', 'k1'), 'AUTH_ERR_KEYS_UNAVAILABLE', 'jwks_unavailable', 503);
        assert.equal(server.requests.length, 2, `${name}: not retried inside the cooldown`);
        clock += JWKS_DEFAULTS.cooldownMs;
        server.handle = (req, res) =>
          req.url === '/jwks'
            ? jwksHandler(() => [k1])(req, res)
            : metadata(server.base, `${server.base}/jwks`)(req, res);
        assert.equal((await keys.getKey('ES256', 'k1')).kid, 'k1', `${name}: recovers after the cooldown`);
      }
    });
  });

  test('configuration is checked at creation', () => {
    const base = { issuer: 'https://idp.test', algorithms: ALGS };
    assert.throws(
      () => createJwks({ ...base, jwksUri: 'http://idp.test/jwks' }),
      (err: unknown) => isRampartError(err, 'AUTH_ERR_CONFIG'),
    );
    assert.throws(() => createJwks({ ...base, jwksUri: null, algorithms: [] }), TypeError);
    assert.throws(() => createJwks({ ...base, jwksUri: null, cooldownMs: 0 }), TypeError);
    assert.throws(() => createJwks({ ...base, jwksUri: null, maxAgeMs: 10, maxStaleMs: 5 }), TypeError);
    assert.throws(() => createJwks({ ...base, issuer: 'not a url', jwksUri: null }), TypeError);
    createJwks({ ...base, jwksUri: 'https://idp.test/jwks' });
  });

  test('key URLs: https, or http to loopback; never credentials', () => {
    const table: [string, boolean][] = [
      ['https://idp.test/jwks', true],
      ['http://127.0.0.1:8444/jwks', true],
      ['http://127.8.9.10/jwks', true],
      ['http://localhost/jwks', true],
      ['http://[::1]:80/jwks', true],
      ['http://idp.test/jwks', false],
      ['http://127.0.0.1.evil.test/jwks', false],
      ['https://user:pw@idp.test/jwks', false],
      ['file:///etc/passwd', false],
      ['ftp://idp.test/jwks', false],
      ['not a url', false],
      ['', false],
    ];
    for (const [url, ok] of table) assert.equal(isAllowedKeyUrl(url), ok, url);
  });

  test('metadata URLs follow OIDC Discovery §4 and RFC 8414 §3.1', () => {
    assert.deepEqual(metadataUrls('https://idp.test'), [
      'https://idp.test/.well-known/openid-configuration',
      'https://idp.test/.well-known/oauth-authorization-server',
    ]);
    assert.deepEqual(metadataUrls('https://idp.test/'), [
      'https://idp.test/.well-known/openid-configuration',
      'https://idp.test/.well-known/oauth-authorization-server',
    ]);
    assert.deepEqual(metadataUrls('https://idp.test/realms/shop/'), [
      'https://idp.test/realms/shop/.well-known/openid-configuration',
      'https://idp.test/.well-known/oauth-authorization-server/realms/shop',
    ]);
  });
});
