/**
 * The JWT attack table of issue 3, against a real in-process gateway, a real issuer (test/helpers/issuer.ts)
 * and an upstream that records what reaches it. Every hostile token must be refused with 401 (or 431 when
 * the header limit refuses it first) and the upstream must see nothing. The reason code in the decision
 * event is asserted too, so each row proves the check it is about, not just "some check failed".
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  type CryptoKey,
  exportJWK,
  exportSPKI,
  type GenerateKeyPairResult,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { Agent, request } from 'undici';
import { x509, crypto as x509Crypto } from '../src/control/ca/x509.ts';
import { CLOCK_SKEW_SECONDS } from '../src/core/access-token.ts';
import { JWKS_DEFAULTS } from '../src/core/jwks.ts';
import type { DecisionEvent } from '../src/gateway/decision-sink.ts';
import type { Gateway } from '../src/gateway/gateway.ts';
import { RUN_FILE, startGateway, testManifest } from './helpers/gateway-harness.ts';
import { type EchoUpstream, startEchoUpstream } from './helpers/http.ts';
import { startTestIssuer, type TestIssuer } from './helpers/issuer.ts';

const AUDIENCE = 'https://api.test';
const b64 = (data: string | Uint8Array) => Buffer.from(data).toString('base64url');

interface Harness {
  issuer: TestIssuer;
  upstream: EchoUpstream;
  gateway: Gateway;
  base: string;
  events: DecisionEvent[];
  metricsText(): Promise<string>;
  /** Moves the gateway's clock (cooldowns, staleness, token expiry); real time is untouched. */
  advance(ms: number): void;
  /** The gateway's clock, in seconds (for minting tokens valid "now" on that clock). */
  seconds(): number;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

async function startHarness(): Promise<Harness> {
  const issuer = await startTestIssuer(AUDIENCE);
  const upstream = await startEchoUpstream();
  let offset = 0;
  const now = () => Date.now() + offset;
  const gw = await startGateway(
    testManifest(`
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18080 }
  tls: off
identity:
  external: { issuer: "${issuer.issuer}", jwksUri: "${issuer.jwksUri}" }
  audience: ${AUDIENCE}
services:
  echo:
    run: ${RUN_FILE}
    routes:
      - { id: orders, path: /orders/**, methods: [GET], auth: { scopes: [orders] } }
`),
    { echo: upstream.url },
    { now },
  );
  const { gateway } = gw;
  const base = `http://127.0.0.1:${gw.port}`;
  return {
    issuer,
    upstream,
    gateway,
    base,
    events: gw.decisions,
    metricsText: () => gw.deps.registry.metrics(),
    advance: (ms) => {
      offset += ms;
    },
    seconds: () => Math.floor(now() / 1000),
    get: (path, headers = {}) => fetch(`${base}${path}`, { headers }),
    close: async () => {
      await gw.close();
      await upstream.close();
      await issuer.close();
    },
  };
}

/** A server that would hand out an attacker's keys: it must never be asked for anything. */
async function startAttackerServer(jwks: JWK[]): Promise<{ url: string; requests: number; close(): Promise<void> }> {
  let requests = 0;
  const server: Server = createServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: jwks }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Sum of the samples of `name` whose labels include every `k="v"` pair in `labels` (comma-separated). */
function metricValue(text: string, name: string, labels = ''): number {
  const wanted = labels === '' ? [] : labels.split(',');
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = (match[2] ?? '').split(',');
    if (wanted.every((pair) => have.includes(pair))) sum += Number(match[3]);
  }
  return sum;
}

describe('JWT attacks through the gateway', () => {
  let h: Harness;
  let attacker: Awaited<ReturnType<typeof startAttackerServer>>;
  let attackerKey: GenerateKeyPairResult;
  let attackerJwk: JWK;

  before(async () => {
    h = await startHarness();
    const pair = await generateKeyPair('ES256', { extractable: true });
    attackerKey = pair;
    attackerJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    attacker = await startAttackerServer([attackerJwk]);
    // A good request first: the gateway holds the issuer's keys, so every row below reaches the check it
    // targets instead of a first-fetch path.
    const ok = await h.get('/orders/1', bearer(await h.issuer.mint({ scope: 'orders' })));
    assert.equal(ok.status, 200);
  });
  after(async () => {
    await attacker.close();
    await h.close();
  });

  /** Signed by the attacker's key, with the issuer's claims and kid: only the header can make it pass. */
  const attackerToken = (header: Record<string, unknown>) =>
    new SignJWT({
      iss: h.issuer.issuer,
      aud: AUDIENCE,
      sub: 'admin',
      scope: 'orders',
      iat: h.seconds(),
      exp: h.seconds() + 300,
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1', ...header })
      .sign(attackerKey.privateKey);

  test('the attack table: 401, the expected reason, and nothing reaches the upstream', async () => {
    const good = await h.issuer.mint({ scope: 'orders' });
    const [gh, gp, gs] = good.split('.') as [string, string, string];
    const headerText = Buffer.from(gh, 'base64url').toString();
    const payloadText = Buffer.from(gp, 'base64url').toString();
    const reheader = (header: Record<string, unknown>, sig = gs) => `${b64(JSON.stringify(header))}.${gp}.${sig}`;

    // The issuer's own public key, as an HMAC secret: PEM text and JWK JSON (the classic key confusion).
    const issuerJwk = ((await (await fetch(h.issuer.jwksUri)).json()) as { keys: JWK[] }).keys[0]!;
    const pem = await exportSPKI((await importJWK(issuerJwk, 'ES256', { extractable: true })) as CryptoKey);
    const hs256 = (secret: string) =>
      new SignJWT({ ...(JSON.parse(payloadText) as JWTPayload) })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: issuerJwk.kid! })
        .sign(new TextEncoder().encode(secret));

    // x5c: a real certificate for the attacker's key.
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: '01',
        name: 'CN=attacker',
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3_600_000),
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        keys: attackerKey,
      },
      x509Crypto,
    );
    const x5c = [Buffer.from(cert.rawData).toString('base64')];

    const cases: [string, string | Promise<string>, string][] = [
      ['alg none', reheader({ alg: 'none', typ: 'at+jwt' }), 'algorithm_not_allowed'],
      ['alg None', reheader({ alg: 'None', typ: 'at+jwt' }), 'algorithm_not_allowed'],
      ['alg NONE', reheader({ alg: 'NONE', typ: 'at+jwt' }), 'algorithm_not_allowed'],
      ['alg none, no signature', `${b64('{"alg":"none","typ":"at+jwt"}')}.${gp}.`, 'malformed'],
      ['HS256 with the issuer public key (PEM) as secret', hs256(pem), 'algorithm_not_allowed'],
      [
        'HS256 with the issuer public key (JWK JSON) as secret',
        hs256(JSON.stringify(issuerJwk)),
        'algorithm_not_allowed',
      ],
      ['HS256 with the issuer public key (x coordinate) as secret', hs256(issuerJwk.x!), 'algorithm_not_allowed'],
      [
        'kid path traversal',
        h.issuer.mint({ scope: 'orders' }, { header: { kid: '../../../../etc/passwd' } }),
        'unknown_key',
      ],
      ['kid URL', h.issuer.mint({ scope: 'orders' }, { header: { kid: `${attacker.url}/jwks` } }), 'unknown_key'],
      [
        'kid SQL',
        h.issuer.mint({ scope: 'orders' }, { header: { kid: "' OR 1=1; DROP TABLE keys; --" } }),
        'unknown_key',
      ],
      ['kid of 1 KB', h.issuer.mint({ scope: 'orders' }, { header: { kid: 'k'.repeat(1024) } }), 'invalid_kid'],
      ['kid of 10 KB', h.issuer.mint({ scope: 'orders' }, { header: { kid: 'k'.repeat(10_240) } }), 'too_long'],
      ['jku to the attacker keys', attackerToken({ jku: `${attacker.url}/jwks` }), 'forbidden_header'],
      ['x5u to the attacker certificate', attackerToken({ x5u: `${attacker.url}/cert.pem` }), 'forbidden_header'],
      ['embedded attacker jwk', attackerToken({ jwk: { ...attackerJwk, kid: undefined } }), 'forbidden_header'],
      ['x5c with the attacker certificate', attackerToken({ x5c }), 'forbidden_header'],
      ['attacker key, issuer kid, no key headers', attackerToken({}), 'bad_signature'],
      ['ECDSA all-zero signature (CVE-2022-21449)', `${gh}.${gp}.${b64(new Uint8Array(64))}`, 'bad_signature'],
      ['ECDSA r=s=0 in DER form', `${gh}.${gp}.${b64(new Uint8Array([0x30, 6, 2, 1, 0, 2, 1, 0]))}`, 'bad_signature'],
      ['empty signature', `${gh}.${gp}.`, 'malformed'],
      ['blank (padding-only) signature', `${gh}.${gp}.====`, 'malformed'],
      ['expired', h.issuer.mint({ scope: 'orders' }, { expiresIn: -CLOCK_SKEW_SECONDS - 5 }), 'expired'],
      ['exp missing', h.issuer.mint({ scope: 'orders', exp: undefined }), 'claim_missing'],
      ['nbf in the future', h.issuer.mint({ scope: 'orders', nbf: h.seconds() + 600 }), 'not_yet_valid'],
      ['iat in the future', h.issuer.mint({ scope: 'orders', iat: h.seconds() + 600 }), 'not_yet_valid'],
      ['iss with a trailing slash', h.issuer.mint({ scope: 'orders', iss: `${h.issuer.issuer}/` }), 'wrong_issuer'],
      ['iss in another case', h.issuer.mint({ scope: 'orders', iss: h.issuer.issuer.toUpperCase() }), 'wrong_issuer'],
      ['iss another issuer', h.issuer.mint({ scope: 'orders', iss: 'https://evil.test' }), 'wrong_issuer'],
      ['aud wrong', h.issuer.mint({ scope: 'orders', aud: 'https://other.test' }), 'wrong_audience'],
      ['aud missing', h.issuer.mint({ scope: 'orders', aud: undefined }), 'claim_missing'],
      ['ID token (typ JWT)', h.issuer.mint({ scope: 'orders', nonce: 'n' }, { header: { typ: 'JWT' } }), 'wrong_type'],
      ['other typ', h.issuer.mint({ scope: 'orders' }, { header: { typ: 'dpop+jwt' } }), 'wrong_type'],
      ['duplicate header member', `${b64(headerText.replace('{', '{"alg":"none",'))}.${gp}.${gs}`, 'duplicate_member'],
      [
        'duplicate claim',
        `${gh}.${b64(payloadText.replace('{', '{"scope":"orders admin",'))}.${gs}`,
        'duplicate_member',
      ],
      [
        'duplicate claim by escape',
        `${gh}.${b64(payloadText.replace('{', '{"\\u0073ub":"admin",'))}.${gs}`,
        'duplicate_member',
      ],
      ['unknown crit', `${b64(headerText.replace('{', '{"crit":["x-ext"],"x-ext":1,'))}.${gp}.${gs}`, 'unknown_crit'],
      ['12 KB token', `${gh}.${'A'.repeat(12_288)}.${gs}`, 'too_long'],
      ['5-part JWE', `${gh}.${gp}.${gs}.AAAA.BBBB`, 'malformed'],
      [
        'tampered claims',
        `${gh}.${b64(payloadText.replace('"scope":"orders"', '"scope":"orders admin"'))}.${gs}`,
        'bad_signature',
      ],
    ];

    const before = h.upstream.seen.length;
    for (const [name, pending, reason] of cases) {
      const token = await pending;
      const events = h.events.length;
      const res = await h.get('/orders/1', bearer(token));
      assert.equal(res.status, 401, name);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="rampart", error="invalid_token"', name);
      const body = (await res.json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body).sort(), ['error', 'error_id'], `${name}: no detail for the client`);
      assert.equal(body['error'], 'invalid_token', name);
      const event = h.events.at(-1)!;
      assert.equal(h.events.length, events + 1, `${name}: one decision event`);
      assert.deepEqual([event.stage, event.reason, event.status], ['authenticate', reason, 401], name);
    }
    assert.equal(h.upstream.seen.length, before, 'no hostile token reached the upstream');
    assert.equal(attacker.requests, 0, 'the attacker server was never contacted');
  });

  test('oversized tokens: 401 or 431, never the upstream', async () => {
    const good = await h.issuer.mint({ scope: 'orders' });
    const [gh, , gs] = good.split('.') as [string, string, string];
    const before = h.upstream.seen.length;
    for (const size of [20 * 1024, 1024 * 1024]) {
      const token = `${gh}.${'A'.repeat(size)}.${gs}`;
      let status: number;
      try {
        status = (await h.get('/orders/1', bearer(token))).status;
      } catch {
        status = 431; // the gateway may cut the connection while a 1 MB header is still being sent
      }
      assert.ok(status === 401 || status === 431, `${size} bytes: ${status}`);
    }
    assert.equal(h.upstream.seen.length, before);
  });

  test('a token anywhere but the Authorization header, or not as one Bearer token, is not read', async () => {
    const good = await h.issuer.mint({ scope: 'orders' });
    const before = h.upstream.seen.length;
    // RFC 6750 §3.1: no credentials or another scheme → 401 with a bare challenge; a malformed Bearer
    // credential → 400 invalid_request.
    const cases: [string, string, Record<string, string>, number, string][] = [
      ['query string', `/orders/1?access_token=${good}`, {}, 401, 'no_token'],
      ['cookie', '/orders/1', { cookie: `access_token=${good}` }, 401, 'no_token'],
      ['another header', '/orders/1', { 'x-access-token': good }, 401, 'no_token'],
      [
        'Basic scheme',
        '/orders/1',
        { authorization: `Basic ${Buffer.from(`u:${good}`).toString('base64')}` },
        401,
        'not_bearer',
      ],
      ['token without scheme', '/orders/1', { authorization: good }, 401, 'not_bearer'],
      ['two tokens', '/orders/1', { authorization: `Bearer ${good} ${good}` }, 400, 'malformed_authorization'],
      ['two spaces', '/orders/1', { authorization: `Bearer  ${good}` }, 400, 'malformed_authorization'],
      ['tab separator', '/orders/1', { authorization: `Bearer\t${good}` }, 400, 'malformed_authorization'],
      ['comma list', '/orders/1', { authorization: `Bearer ${good}, Bearer ${good}` }, 400, 'malformed_authorization'],
      ['scheme only', '/orders/1', { authorization: 'Bearer' }, 400, 'malformed_authorization'],
    ];
    for (const [name, path, headers, status, reason] of cases) {
      const res = await h.get(path, headers);
      assert.equal(res.status, status, name);
      const challenge = res.headers.get('www-authenticate');
      assert.equal(
        challenge,
        status === 400 ? 'Bearer realm="rampart", error="invalid_request"' : 'Bearer realm="rampart"',
        name,
      );
      assert.equal(h.events.at(-1)!.reason, reason, name);
    }
    assert.equal(h.upstream.seen.length, before);
    // The same token, properly presented, is fine (the rows above failed for the presentation alone).
    assert.equal((await h.get('/orders/1', { authorization: `bearer ${good}` })).status, 200);
  });

  test('a flood of random kids causes at most one JWKS fetch per cooldown', async () => {
    // Let the cooldown of the earlier fetches pass, so the flood is allowed exactly one re-fetch.
    h.advance(JWKS_DEFAULTS.cooldownMs);
    // All requests in flight at once, over 64 connections (under the gateway's per-client connection cap).
    const agent = new Agent({ connections: 64 });
    const flood = async (n: number) => {
      const tokens = await Promise.all(Array.from({ length: n }, () => attackerToken({ kid: crypto.randomUUID() })));
      const statuses = await Promise.all(
        tokens.map(async (t) => {
          const res = await request(`${h.base}/orders/1`, { headers: bearer(t), dispatcher: agent });
          await res.body.dump();
          return res.statusCode;
        }),
      );
      assert.deepEqual(new Set(statuses), new Set([401]));
    };
    const before = h.issuer.jwksFetches;
    const seen = h.upstream.seen.length;
    await flood(500);
    assert.equal(h.issuer.jwksFetches - before, 1, '500 random kids, one fetch');
    await flood(200);
    assert.equal(h.issuer.jwksFetches - before, 1, 'inside the cooldown: none');
    h.advance(JWKS_DEFAULTS.cooldownMs);
    await flood(200);
    assert.equal(h.issuer.jwksFetches - before, 2, 'next cooldown: one more');
    await agent.close();
    assert.equal(h.upstream.seen.length, seen);
    assert.equal(attacker.requests, 0);
    const text = await h.metricsText();
    assert.ok(metricValue(text, 'rampart_gateway_jwks_fetches_total', 'target="jwks",outcome="ok"') >= 3);
    assert.ok(metricValue(text, 'rampart_gateway_denials_total', 'stage="authenticate",reason="unknown_key"') >= 900);
  });
});

describe('issuer key lifecycle through the gateway', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  /** A token valid on the gateway's (moved) clock. */
  const mint = (claims: JWTPayload = {}) =>
    h.issuer.mint({ scope: 'orders', iat: h.seconds(), exp: h.seconds() + 300, ...claims });
  const status = async (token: string) => (await h.get('/orders/1', bearer(token))).status;

  test('rotation: a new kid is accepted without restart; a retired key stops after the next fetch', async () => {
    const k1Token = await mint();
    assert.equal(await status(k1Token), 200);
    const k1Uncached = await mint({ sub: 'other' });
    await h.issuer.rotate();
    const k2Token = await mint();
    h.advance(JWKS_DEFAULTS.cooldownMs);
    assert.equal(await status(k2Token), 200, 'new kid: one re-fetch picks it up');
    assert.equal(await status(k1Token), 200, 'the old key is still published');
    await h.issuer.rotate({ retire: true });
    const k3Token = await mint();
    h.advance(JWKS_DEFAULTS.cooldownMs);
    assert.equal(await status(k3Token), 200);
    const events = h.events.length;
    assert.equal(await status(k1Token), 401, 'a cached token whose key was retired is refused');
    assert.equal(await status(k1Uncached), 401);
    assert.equal(await status(k2Token), 401);
    assert.deepEqual(
      h.events.slice(events).map((e) => e.reason),
      ['unknown_key', 'unknown_key', 'unknown_key'],
    );
    assert.equal(await status(k3Token), 200);
  });

  test('a cached token stops being accepted at exp', async () => {
    const token = await mint({ exp: h.seconds() + 30 });
    const hits = async () =>
      metricValue(await h.metricsText(), 'rampart_gateway_token_cache_lookups_total', 'result="hit"');
    const before = await hits();
    assert.equal(await status(token), 200);
    assert.equal(await status(token), 200);
    assert.equal(await status(token), 200);
    assert.equal((await hits()) - before, 2, 'repeats are served from the cache');
    h.advance(30_000 + CLOCK_SKEW_SECONDS * 1000);
    const seen = h.upstream.seen.length;
    assert.equal(await status(token), 401);
    assert.equal(h.events.at(-1)!.reason, 'expired');
    assert.equal(h.upstream.seen.length, seen);
  });

  test('JWKS down: cached keys serve for the bounded time, then requests fail closed with 503', async () => {
    // Start from a fresh key set: age it past maxAge and let the background refresh succeed.
    h.advance(JWKS_DEFAULTS.maxAgeMs + 1000);
    assert.equal(await status(await mint()), 200);
    const age = async () => metricValue(await h.metricsText(), 'rampart_gateway_jwks_age_seconds');
    await waitFor(async () => (await age()) < 5);

    const cached = await mint({ exp: h.seconds() + 7200 });
    assert.equal(await status(cached), 200);
    h.issuer.setDown(true);
    const failures = async () =>
      metricValue(
        await h.metricsText(),
        'rampart_gateway_jwks_fetch_failures_total',
        'target="jwks",kind="http_status"',
      );
    const failuresBefore = await failures();

    h.advance(JWKS_DEFAULTS.maxAgeMs + 1000);
    assert.equal(await status(await mint()), 200, 'stale keys still serve; a background refresh is attempted');
    await waitFor(async () => (await failures()) > failuresBefore);
    const stale = await age();
    assert.ok(stale >= JWKS_DEFAULTS.maxAgeMs / 1000, `key-set age exported: ${stale}`);

    h.advance(JWKS_DEFAULTS.maxStaleMs - JWKS_DEFAULTS.maxAgeMs - 10_000);
    assert.equal(await status(await mint()), 200, 'just inside the stale bound');

    h.advance(20_000);
    const seen = h.upstream.seen.length;
    const fresh = await mint();
    for (const token of [fresh, cached]) {
      const res = await h.get('/orders/1', bearer(token));
      assert.equal(res.status, 503, 'beyond the bound: fail closed, cached tokens included');
      assert.deepEqual(Object.keys((await res.json()) as object).sort(), ['error', 'error_id']);
    }
    assert.equal(h.upstream.seen.length, seen);

    h.issuer.setDown(false);
    h.advance(JWKS_DEFAULTS.cooldownMs);
    assert.equal(await status(await mint()), 200, 'recovers once the issuer does');
    assert.ok((await age()) < 5);
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
