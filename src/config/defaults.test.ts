import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULTS, defaultAudience, defaultIssuer, defaultRouteId } from './defaults.ts';
import { LIMIT_KEYS, limitInRange, WORKERS_MAX } from './gateway-limits.ts';
import { parseManifest } from './load.ts';
import { manifestSchema } from './schema.ts';

const MINIMAL = [
  'trustDomain: shop.local',
  'gateway:',
  '  tls: off',
  'identity:',
  '  builtin: {}',
  'secrets:',
  '  api-key: {}',
  'services:',
  '  catalog:',
  '    run: c.ts',
  '    secrets: [api-key]',
  '    routes:',
  '      - { path: /a, methods: [GET] }',
  '      - { path: /b, methods: [GET], auth: { scopes: [x] } }',
].join('\n');

describe('defaults', () => {
  const m = parseManifest(MINIMAL, '/tmp/rampart.yaml', { checkFiles: false });

  test('an omitted value takes its default', () => {
    assert.deepEqual(m.gateway.listen, { host: DEFAULTS.listenHost, port: DEFAULTS.listenPort });
    assert.deepEqual(m.gateway.admin, { port: DEFAULTS.adminPort });
    assert.deepEqual(m.gateway.trustedProxies, DEFAULTS.trustedProxies);
    assert.deepEqual(m.gateway.rateLimit, { store: DEFAULTS.rateLimitStore });
    assert.deepEqual(m.identity, {
      mode: 'builtin',
      port: DEFAULTS.identityPort,
      issuer: defaultIssuer(DEFAULTS.identityPort),
      audience: defaultAudience('shop.local'),
      store: { kind: 'sqlite' },
    });
    assert.deepEqual(
      m.routes.map((r) => r.id),
      [defaultRouteId('catalog', 0), defaultRouteId('catalog', 1)],
    );
    assert.equal(m.secrets['api-key']!.description, DEFAULTS.secretDescription);
    assert.equal(m.gateway.workers, DEFAULTS.gatewayWorkers);
    assert.equal(m.gateway.redirectHttp, null);
    assert.deepEqual(m.gateway.limits, DEFAULTS.gatewayLimits);
    assert.equal(m.routes[0]!.cors, null);
  });

  test('omitted CORS keys take their defaults', () => {
    const c = parseManifest(
      MINIMAL.replace('/a, methods: [GET] }', '/a, methods: [GET], cors: { origins: ["https://a.example"] } }'),
      '/tmp/rampart.yaml',
      { checkFiles: false },
    ).routes[0]!.cors;
    assert.deepEqual(c, {
      origins: ['https://a.example'],
      credentials: DEFAULTS.corsCredentials,
      headers: DEFAULTS.corsHeaders,
      maxAgeSeconds: DEFAULTS.corsMaxAgeSeconds,
    });
    assert.equal(DEFAULTS.corsCredentials, false);
  });

  test('each default limit is inside its bounds, and the defaults satisfy the cross-checks', () => {
    for (const key of LIMIT_KEYS) assert.ok(limitInRange(key, DEFAULTS.gatewayLimits[key]), key);
    const l = DEFAULTS.gatewayLimits;
    assert.ok(l.maxConnectionsPerClient <= l.maxConnections);
    assert.ok(l.headersTimeoutMs <= l.requestTimeoutMs);
    assert.ok(l.maxTargetLength < l.maxHeaderBytes);
    assert.ok(DEFAULTS.gatewayWorkers >= 0 && DEFAULTS.gatewayWorkers <= WORKERS_MAX);
    assert.deepEqual(Object.keys(l), [...LIMIT_KEYS]);
  });

  test('secure by default: a route without auth needs a token; loopback; store down denies', () => {
    assert.deepEqual(m.routes[0]!.auth, { kind: 'token', scopes: [], scopeMatch: 'all', roles: [] });
    assert.equal(m.routes[1]!.auth.kind === 'token' && m.routes[1]!.auth.scopeMatch, 'all');
    assert.equal(DEFAULTS.listenHost, '127.0.0.1');
    assert.equal(DEFAULTS.onStoreDown, 'deny');
    assert.deepEqual(DEFAULTS.trustedProxies, []);
    const redis = parseManifest(
      MINIMAL.replace('  tls: off', '  tls: off\n  rateLimit: { store: redis, url: "redis://127.0.0.1:6379" }'),
      '/tmp/rampart.yaml',
      { checkFiles: false },
    );
    assert.deepEqual(redis.gateway.rateLimit, { store: 'redis', url: 'redis://127.0.0.1:6379', onStoreDown: 'deny' });
  });

  test('the derived defaults', () => {
    assert.equal(defaultIssuer(8444), 'http://127.0.0.1:8444');
    assert.equal(defaultAudience('shop.local'), 'https://shop.local');
    assert.equal(defaultRouteId('orders', 3), 'orders.3');
  });

  test('DEFAULTS cannot be changed at run time', () => {
    assert.ok(Object.isFrozen(DEFAULTS));
    assert.ok(Object.isFrozen(DEFAULTS.trustedProxies));
    assert.ok(Object.isFrozen(DEFAULTS.gatewayLimits));
    assert.ok(Object.isFrozen(DEFAULTS.corsHeaders));
  });

  test('the schema publishes the same defaults', () => {
    const at = (...keys: (string | number)[]): unknown =>
      keys.reduce<unknown>((node, key) => (node as Record<string | number, unknown>)[key], manifestSchema);
    const gateway = ['properties', 'gateway', 'properties'];
    assert.equal(at(...gateway, 'listen', 'properties', 'host', 'default'), DEFAULTS.listenHost);
    assert.equal(at(...gateway, 'listen', 'properties', 'port', 'default'), DEFAULTS.listenPort);
    assert.equal(at(...gateway, 'admin', 'properties', 'port', 'default'), DEFAULTS.adminPort);
    assert.deepEqual(at(...gateway, 'rateLimit', 'default'), { store: DEFAULTS.rateLimitStore });
    assert.equal(at(...gateway, 'rateLimit', 'oneOf', 1, 'properties', 'onStoreDown', 'default'), DEFAULTS.onStoreDown);
    assert.equal(
      at('properties', 'identity', 'properties', 'builtin', 'properties', 'port', 'default'),
      DEFAULTS.identityPort,
    );
    assert.equal(at(...gateway, 'workers', 'default'), DEFAULTS.gatewayWorkers);
    for (const key of LIMIT_KEYS) {
      assert.equal(at(...gateway, 'limits', 'properties', key, 'default'), DEFAULTS.gatewayLimits[key], key);
    }
    const route = ['properties', 'services', 'additionalProperties', 'properties', 'routes', 'items'];
    const cors = [...route, 'properties', 'cors', 'properties'];
    assert.equal(at(...cors, 'credentials', 'default'), DEFAULTS.corsCredentials);
    assert.deepEqual(at(...cors, 'headers', 'default'), DEFAULTS.corsHeaders);
    assert.equal(at(...cors, 'maxAge', 'default'), DEFAULTS.corsMaxAgeSeconds);
  });
});
