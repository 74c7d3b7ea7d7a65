import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseManifest } from '../../config/load.ts';
import { compileSystemPolicy, inboundCallers, inboundPolicy, LAUNCH_POLICY_VERSION, policyDigest } from './compile.ts';

const TD = 'spiffe://shop.local/svc';

function manifest(services: string, trustDomain = 'shop.local'): ReturnType<typeof parseManifest> {
  const text = [
    'version: 1',
    `trustDomain: ${trustDomain}`,
    'gateway:',
    '  listen: { host: 127.0.0.1, port: 8080 }',
    '  tls: off',
    'identity:',
    '  builtin: { port: 8444 }',
    '  audience: https://api.shop.local',
    'services:',
    services,
    '',
  ].join('\n');
  return parseManifest(text, '/p/rampart.yaml', { checkFiles: false });
}

const SHOP = [
  '  catalog:',
  '    run: c.ts',
  '    routes:',
  '      - { id: list, path: /catalog/products, methods: [GET], auth: none, rateLimit: 100/min per ip }',
  '  orders:',
  '    run: o.ts',
  '    calls:',
  '      - { service: catalog, methods: [GET, HEAD], paths: [/catalog/products/*, /catalog/products] }',
  '      - { service: payments, methods: [POST], paths: [/charges] }',
  '  payments:',
  '    run: p.ts',
].join('\n');

test('inboundCallers: the gateway for routes, every caller whose calls name the service, nobody else', () => {
  const m = manifest(SHOP);
  assert.deepEqual(inboundCallers(m, 'catalog'), {
    [`${TD}/gateway`]: [{ methods: ['GET'], paths: ['/catalog/products'] }],
    [`${TD}/orders`]: [{ methods: ['GET', 'HEAD'], paths: ['/catalog/products', '/catalog/products/*'] }],
  });
  assert.deepEqual(inboundCallers(m, 'payments'), { [`${TD}/orders`]: [{ methods: ['POST'], paths: ['/charges'] }] });
  assert.deepEqual(inboundCallers(m, 'orders'), {}, 'no routes, no callers: deny everyone');
  assert.deepEqual(inboundCallers(m, 'nope'), {});
  assert.deepEqual(inboundCallers(m, '__proto__'), {});
  assert.deepEqual(inboundPolicy(m, 'payments').version, LAUNCH_POLICY_VERSION);
  assert.deepEqual(inboundPolicy(m, 'payments', 7).version, 7);
});

test('policyDigest: equal for edits outside the policy and for reordering; different for any grant', () => {
  const base = policyDigest(compileSystemPolicy(manifest(SHOP)));
  const unrelated = [
    // A rate limit, an env entry and a comment change nothing anyone may call.
    SHOP.replace('100/min per ip', '5/s per ip'),
    SHOP.replace('    run: p.ts', '    run: p.ts\n    env: { MODE: fast }  # a comment'),
    // Same rules in another order (methods, paths, calls) are the same policy.
    SHOP.replace(
      '[GET, HEAD], paths: [/catalog/products/*, /catalog/products]',
      '[HEAD, GET], paths: [/catalog/products, /catalog/products/*]',
    ),
  ];
  for (const services of unrelated) {
    assert.equal(policyDigest(compileSystemPolicy(manifest(services))), base, services);
  }
  const changed = [
    SHOP.replace('paths: [/charges]', 'paths: [/charges, /refunds]'),
    SHOP.replace('methods: [POST], paths: [/charges]', 'methods: [POST, PUT], paths: [/charges]'),
    SHOP.replace('      - { service: payments, methods: [POST], paths: [/charges] }\n', ''),
    SHOP.replace('path: /catalog/products, methods: [GET]', 'path: /catalog/products, methods: [GET, POST]'),
    `${SHOP}\n  audit:\n    run: a.ts`,
  ];
  const seen = new Set([base]);
  for (const services of changed) {
    const digest = policyDigest(compileSystemPolicy(manifest(services)));
    assert.ok(!seen.has(digest), services);
    seen.add(digest);
  }
});

test('the trust domain is part of the policy (SPIFFE IDs change with it)', () => {
  const a = compileSystemPolicy(manifest(SHOP));
  const b = compileSystemPolicy(manifest(SHOP, 'other.local'));
  assert.notEqual(policyDigest(a), policyDigest(b));
});
