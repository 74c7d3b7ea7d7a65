/**
 * Path confusion against a real gateway: encoded, dotted, doubled, back-slashed, semicolon, case, NUL
 * and Unicode variants of protected paths, sent as raw bytes (an HTTP client library would normalize
 * them first). Protected routes live on their own service, next to a public catch-all (`/**`) on
 * another service and, on a third, public and protected routes of the same service (the harder case:
 * one upstream serves both). The catch-alls overlap the protected patterns, which the manifest's
 * cross-checks refuse today; they are added after validation, because the gateway's routing must be
 * safe in the worst layout, not only in the ones the loader lets through.
 *
 * The invariant, for the table and for the generated mutations alike: a request is either refused
 * (400/401/403/404/405/414) and no upstream sees anything, or exactly one upstream receives exactly
 * the canonical path (core/canonical-path.ts), that path belongs to a route of that upstream's
 * service, and the request carried what that route requires. The routes are case-sensitive by
 * design: `/ADMIN` is not `/admin` and goes to the catch-all's service, as that exact string.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Manifest } from '../src/config/model.ts';
import { canonicalizeTarget } from '../src/core/canonical-path.ts';
import { Router } from '../src/gateway/router.ts';
import { RUN_FILE, type RunningGateway, startGateway, testManifest } from './helpers/gateway-harness.ts';
import { type EchoUpstream, rawExchange, statuses } from './helpers/http.ts';
import { startTestIssuer, type TestIssuer } from './helpers/issuer.ts';

const AUDIENCE = 'https://api.test';

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
  secure:
    run: ${RUN_FILE}
    routes:
      - { id: admin, path: /admin/**, methods: [GET, POST], auth: { scopes: [admin] } }
      - { id: orders, path: /api/orders/*, methods: [GET], auth: { scopes: [orders] } }
      - { id: account, path: /api/account, methods: [GET], auth: { scopes: [account] } }
  catalog:
    run: ${RUN_FILE}
    routes:
      - { id: catalog-admin, path: /catalog/admin/**, methods: [GET], auth: { scopes: [admin] } }
  www:
    run: ${RUN_FILE}
    routes:
      - { id: www-home, path: /, methods: [GET], auth: none }
`;
}

/** Which token a request carries: none, one without scopes, or one with the named scope. */
type TokenKind = 'none' | 'noscope' | 'admin' | 'orders' | 'account';

/** [request target, expected status, where it lands when accepted]. Sent without a token unless noted. */
const TABLE: [string, number, ('www' | 'catalog' | null)?][] = [
  // Baselines.
  ['/admin/users', 401],
  ['/api/orders/42', 401],
  ['/api/account', 401],
  ['/catalog/admin/prices', 401],
  // Percent-encoding of unreserved characters is decoded: the same protected path.
  ['/%61dmin/users', 401],
  ['/ad%6din/users', 401],
  ['/admin/%75sers', 401],
  ['/api/orders/%34%32', 401],
  ['/api/%61ccount', 401],
  ['/catalog/%61dmin/prices', 401],
  ['/admin/users%2e', 401],
  // Dot segments are resolved before matching.
  ['/admin/./users', 401],
  ['/./admin/users', 401],
  ['/%2e/admin/users', 401],
  ['/admin/x/../users', 401],
  ['/x/../admin/users', 401],
  ['/public/%2e%2e/admin/users', 401],
  ['/public/%2E%2E/admin/users', 401],
  ['/admin/../admin/users', 401],
  ['/catalog/public/../admin/prices', 401],
  ['/catalog/./admin/prices', 401],
  ['/admin/users/', 401],
  ['/admin/users/.', 401],
  ['/api/orders/42/', 401],
  ['/api/account/.', 401],
  ['/api/account?', 401],
  ['/admin/users?next=/../../public', 401],
  // Climbing above the root is refused, never clamped.
  ['/%2e%2e/admin/users', 400],
  ['/../admin/users', 400],
  ['/admin/../../admin/users', 400],
  // Encoded and raw delimiters that upstreams decode differently are refused.
  ['/admin%2fusers', 400],
  ['/admin%2Fusers', 400],
  ['/public/..%2fadmin/users', 400],
  ['/public/%2e%2e%2fadmin/users', 400],
  ['/admin%5cusers', 400],
  ['/admin%5Cusers', 400],
  ['/public/..%5cadmin/users', 400],
  ['/admin\\users', 400],
  ['/public\\..\\admin\\users', 400],
  ['/api/orders/42%2f..%2f43', 400],
  ['/catalog/admin%2fprices', 400],
  ['/admin/users%2F', 400],
  // Empty segments and scheme-relative starts.
  ['//admin/users', 400],
  ['/admin//users', 400],
  ['/api//orders/42', 400],
  ['/catalog//admin/prices', 400],
  // Semicolons (servlet path parameters) are refused; an encoded one is data.
  ['/admin/users;x=1', 400],
  ['/admin;/users', 400],
  ['/admin/users/..;/', 400],
  ['/api/orders/42;jsessionid=x', 400],
  ['/admin/users%3bx', 401],
  // NUL and controls, raw or encoded.
  ['/admin%00/users', 400],
  ['/admin/users%00', 400],
  ['/admin/users%00.json', 400],
  ['/admin%09/users', 400],
  ['/admin%0d%0a/users', 400],
  ['/admin%7f/users', 400],
  ['/admin/users#fragment', 400],
  ['/admin/users%', 400],
  ['/admin/users%zz', 400],
  // Case is significant: a different path, routed as that exact string to the catch-all's service.
  ['/Admin/users', 200, 'www'],
  ['/ADMIN/USERS', 200, 'www'],
  ['/%41dmin/users', 200, 'www'],
  ['/api/ORDERS/42', 200, 'www'],
  ['/catalog/Admin/prices', 200, 'catalog'],
  // Escapes of non-unreserved bytes stay escapes: never a second decoding, never a dot or a slash.
  ['/%2561dmin/users', 200, 'www'],
  ['/admin%252fusers', 200, 'www'],
  ['/%252e%252e/admin/users', 200, 'www'],
  ['/%C0%AE%C0%AE/admin/users', 200, 'www'],
  ['/%C0%AFadmin/users', 200, 'www'],
  ['/%EF%BD%81dmin/users', 200, 'www'],
  ['/admin%E2%80%8B/users', 200, 'www'],
  ['/admin%20/users', 200, 'www'],
  ['/admin.', 200, 'www'],
  ['/admin/..', 200, 'www'],
  ['/api/orders/42/..', 200, 'www'],
  ['/api/account%3F', 200, 'www'],
  // Raw non-ASCII never reaches routing.
  ['/\xef\xbd\x81dmin/users', 400],
  ['/admin\xe2\x80\x8b/users', 400],
  ['/caf\xe9', 400],
  // Targets that are not origin-form.
  ['http://gw.test/admin/users', 400],
  ['*', 400],
];

describe('path confusion', () => {
  let issuer: TestIssuer;
  const upstreams: Record<string, EchoUpstream> = {};
  let gw: RunningGateway;
  let manifest: Manifest;
  let router: Router;
  const tokens: Partial<Record<TokenKind, string>> = {};

  before(async () => {
    issuer = await startTestIssuer(AUDIENCE);
    const { startEchoUpstream } = await import('./helpers/http.ts');
    for (const name of ['secure', 'catalog', 'www']) upstreams[name] = await startEchoUpstream();
    // The manifest's cross-checks refuse patterns that overlap (a path belongs to one route), so the
    // catch-alls are added after validation: the gateway must route safely even in that layout.
    manifest = testManifest(manifestText(issuer), {
      addRoutes: [
        { id: 'catalog', service: 'catalog', path: '/catalog/**', methods: ['GET'] },
        { id: 'www', service: 'www', path: '/**', methods: ['GET', 'POST'] },
      ],
    });
    router = new Router(manifest);
    gw = await startGateway(manifest, Object.fromEntries(Object.entries(upstreams).map(([k, v]) => [k, v.url])));
    tokens.noscope = await issuer.mint({ scope: 'profile' });
    for (const scope of ['admin', 'orders', 'account'] as const) tokens[scope] = await issuer.mint({ scope });
  });
  after(async () => {
    await gw.close();
    for (const upstream of Object.values(upstreams)) await upstream.close();
    await issuer.close();
  });

  const counts = () => Object.fromEntries(Object.entries(upstreams).map(([k, v]) => [k, v.seen.length]));

  /** Sends one raw request and checks the invariant; returns the status and the upstream it landed on. */
  async function send(method: string, target: string, token: TokenKind) {
    const before = counts();
    const auth = token === 'none' ? '' : `Authorization: Bearer ${tokens[token]}\r\n`;
    const res = await rawExchange(
      gw.port,
      `${method} ${target} HTTP/1.1\r\nHost: gw.test\r\n${auth}Connection: close\r\n\r\n`,
      2_000,
    );
    const got = statuses(res.text);
    assert.equal(got.length, 1, `one answer for ${JSON.stringify(target)}`);
    const status = got[0]!;
    const after = counts();
    const landed = Object.keys(after).filter((k) => after[k] !== before[k]);
    if (status !== 200) {
      assert.ok([400, 401, 403, 404, 405, 414].includes(status), `${JSON.stringify(target)}: status ${status}`);
      assert.deepEqual(landed, [], `${JSON.stringify(target)}: refused, yet an upstream saw it`);
      return { status, landed: null };
    }
    assert.equal(landed.length, 1, `${JSON.stringify(target)}: exactly one upstream`);
    const service = landed[0]!;
    assert.equal(after[service], before[service]! + 1);
    const seen = upstreams[service]!.seen.at(-1)!;
    const canonical = canonicalizeTarget(target);
    const forwarded = canonical.query ? `${canonical.path}?${canonical.query}` : canonical.path;
    assert.equal(seen.url, forwarded, `${JSON.stringify(target)}: the canonical path is what is forwarded`);
    const match = router.match(method, canonical.path);
    assert.equal(match.kind, 'match');
    const route = (match as { route: { route: Manifest['routes'][number] } }).route.route;
    assert.equal(route.service, service, `${JSON.stringify(target)}: forwarded to its route's service`);
    if (route.auth.kind === 'token') {
      const held: string[] = token === 'none' || token === 'noscope' ? [] : [token];
      assert.ok(
        route.auth.scopes.every((s) => held.includes(s)),
        `${JSON.stringify(target)}: reached ${route.id} without its scopes`,
      );
    }
    return { status, landed: service };
  }

  test(`the table has at least 50 variants of protected paths`, () => {
    assert.ok(TABLE.length >= 50, `${TABLE.length}`);
    assert.equal(new Set(TABLE.map(([t]) => t)).size, TABLE.length);
  });

  test('table, without a token: zero protected requests reach a service', async () => {
    const secureBefore = upstreams.secure!.seen.length;
    for (const [target, status, lands] of TABLE) {
      const result = await send('GET', target, 'none');
      assert.equal(result.status, status, JSON.stringify(target));
      assert.equal(result.landed, lands ?? null, JSON.stringify(target));
    }
    assert.equal(upstreams.secure!.seen.length, secureBefore, 'the protected service saw nothing');
    assert.ok(
      !upstreams.catalog!.seen.some((s) => s.url.startsWith('/catalog/admin')),
      'the mixed service saw none of its protected paths',
    );
  });

  test('table, with a token lacking the scope: never past authorization', async () => {
    for (const [target, status] of TABLE) {
      const result = await send('GET', target, 'noscope');
      assert.equal(result.status, status === 401 ? 403 : status, JSON.stringify(target));
    }
  });

  test('variants that resolve to a protected path forward its canonical form when authorized', async () => {
    const cases: [string, TokenKind, string][] = [
      ['/admin/./users', 'admin', '/admin/users'],
      ['/%61dmin/x/../users/', 'admin', '/admin/users'],
      ['/public/%2e%2e/admin/users', 'admin', '/admin/users'],
      ['/api/orders/%34%32', 'orders', '/api/orders/42'],
      ['/catalog/public/../admin/prices', 'admin', '/catalog/admin/prices'],
      ['/admin/users%3bx', 'admin', '/admin/users%3Bx'],
    ];
    for (const [target, token, forwarded] of cases) {
      const result = await send('GET', target, token);
      assert.equal(result.status, 200, target);
      assert.equal(upstreams[result.landed!]!.seen.at(-1)!.url, forwarded);
    }
    // A token for one protected route is no key to another.
    assert.equal((await send('GET', '/api/orders/%34%32', 'admin')).status, 403);
    assert.equal((await send('GET', '/%61dmin/users', 'orders')).status, 403);
  });

  test('methods: a protected pattern owns its path for every method', async () => {
    assert.equal((await send('POST', '/admin/./users', 'none')).status, 401);
    assert.equal((await send('HEAD', '/%61dmin/users', 'none')).status, 401);
    assert.equal((await send('DELETE', '/admin/users', 'none')).status, 405);
    assert.equal((await send('PUT', '/api/orders/42', 'admin')).status, 405);
    assert.equal((await send('OPTIONS', '/admin/users', 'none')).status, 405);
  });

  test('property: mutated protected paths are refused or forwarded canonical and authorized', async () => {
    const bases = ['/admin/users/1', '/api/orders/42', '/api/account', '/catalog/admin/prices'];
    const outcomes = new Map<string, number>();
    const hex = (c: string, upper: boolean) => {
      const h = c.charCodeAt(0).toString(16).padStart(2, '0');
      return `%${upper ? h.toUpperCase() : h}`;
    };
    // One mutation: where in the path, what to do there.
    const mutation = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom(
        'encode',
        'encode-upper',
        'double-encode',
        'encode-slash',
        'backslash',
        'encoded-backslash',
        'dot',
        'dotdot',
        'climb',
        'double-slash',
        'semicolon',
        'case',
        'nul',
        'encoded-nul',
        'overlong-dot',
        'fullwidth',
        'zero-width',
        'trailing-slash',
        'trailing-dot',
        'tab',
      ),
    });
    const mutate = (path: string, { at, kind }: { at: number; kind: string }): string => {
      const i = 1 + (at % Math.max(1, path.length - 1));
      const c = path[i] ?? 'a';
      const slashes = [...path.matchAll(/\//g)].map((m) => m.index!);
      const s = slashes[at % slashes.length]!;
      switch (kind) {
        case 'encode':
          return path.slice(0, i) + hex(c, false) + path.slice(i + 1);
        case 'encode-upper':
          return path.slice(0, i) + hex(c, true) + path.slice(i + 1);
        case 'double-encode':
          return `${path.slice(0, i)}%25${hex(c, true).slice(1)}${path.slice(i + 1)}`;
        case 'encode-slash':
          return s === 0 ? path : `${path.slice(0, s)}%2F${path.slice(s + 1)}`;
        case 'backslash':
          return s === 0 ? path : `${path.slice(0, s)}\\${path.slice(s + 1)}`;
        case 'encoded-backslash':
          return s === 0 ? path : `${path.slice(0, s)}%5c${path.slice(s + 1)}`;
        case 'dot':
          return `${path.slice(0, s)}/.${path.slice(s)}`;
        case 'dotdot':
          return `${path.slice(0, s)}/x/..${path.slice(s)}`;
        case 'climb':
          return `${path.slice(0, s)}/..${path.slice(s)}`;
        case 'double-slash':
          return `${path.slice(0, s)}/${path.slice(s)}`;
        case 'semicolon':
          return `${path.slice(0, i)};x${path.slice(i)}`;
        case 'case':
          return path.slice(0, i) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + path.slice(i + 1);
        case 'nul':
          return `${path.slice(0, i)}\x00${path.slice(i)}`;
        case 'encoded-nul':
          return `${path.slice(0, i)}%00${path.slice(i)}`;
        case 'overlong-dot':
          return `${path.slice(0, s)}/%C0%AE%C0%AE${path.slice(s)}`;
        case 'fullwidth':
          return `${path.slice(0, i)}%EF%BC%8F${path.slice(i)}`;
        case 'zero-width':
          return `${path.slice(0, i)}%E2%80%8B${path.slice(i)}`;
        case 'trailing-slash':
          return `${path}/`;
        case 'trailing-dot':
          return `${path}/.`;
        default:
          return `${path.slice(0, i)}\t${path.slice(i)}`;
      }
    };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...bases),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.constantFrom<TokenKind>('none', 'noscope', 'admin', 'orders', 'account'),
        fc.constantFrom('GET', 'POST', 'HEAD'),
        async (base, mutations, token, method) => {
          const target = mutations.reduce(mutate, base);
          const { status, landed } = await send(method, target, token);
          outcomes.set(landed ?? String(status), (outcomes.get(landed ?? String(status)) ?? 0) + 1);
        },
      ),
      { numRuns: 400 },
    );
    // Not vacuous: the generator reached refusals, authorized protected paths and the public routes.
    for (const outcome of ['400', '401', '403', 'secure', 'www']) {
      assert.ok((outcomes.get(outcome) ?? 0) > 0, `no ${outcome} outcome in ${JSON.stringify([...outcomes])}`);
    }
  });
});
