import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handManifest } from '../../test/launcher/project.ts';
import { isRampartError } from '../core/errors.ts';
import { identitySettings, planProcesses, startOrder } from './plan.ts';

const entries = {
  control: '/r/src/control/main.ts',
  identity: '/r/src/identity/main.ts',
  gateway: '/r/src/gateway/main.ts',
};

function shop() {
  return handManifest(
    '/p',
    {
      catalog: { routes: ['/catalog/products'] },
      orders: { routes: ['/orders'], calls: ['catalog', 'payments', 'payments'], env: { MODE: 'demo' } },
      payments: {},
    },
    { identityPort: 8444, gatewayPort: 8080 },
  );
}
const ports = {
  admin: { control: 9000, identity: 9001, catalog: 9002, orders: 9003, payments: 9004, gateway: 9005 },
  service: { catalog: 7001, orders: 7002, payments: 7003 },
  control: 7000,
};

test('start order: control, identity, services in manifest order, gateway last', () => {
  assert.deepEqual(startOrder(shop()), ['control', 'identity', 'catalog', 'orders', 'payments', 'gateway']);
  const external = handManifest('/p', { a: {} }, { identity: 'external' });
  assert.deepEqual(startOrder(external), ['control', 'a', 'gateway'], 'no identity process for an external issuer');
});

test('runtimes: own data dir and ports; peers only from calls; upstreams only for routed services', () => {
  const launcherCredential = 'c'.repeat(43);
  const plans = planProcesses(shop(), { ports, dataRoot: '/p/.rampart', entries, launcherCredential });
  const by = Object.fromEntries(plans.map((p) => [p.name, p]));
  assert.deepEqual(by['control']!.runtime, {
    kind: 'control',
    name: 'control',
    dataDir: '/p/.rampart/control',
    adminPort: 9000,
    manifestFile: '/p/rampart.yaml',
    port: 7000,
    launcherCredential,
    trustDomain: shop().trustDomain,
    store: { kind: 'sqlite' },
  });
  // The launcher credential is the control plane's alone.
  for (const plan of plans) {
    if (plan.kind !== 'control') assert.ok(!JSON.stringify(plan.runtime).includes(launcherCredential), plan.name);
  }
  assert.equal(by['identity']!.runtime.kind === 'identity' && by['identity']!.runtime.port, 8444);
  assert.deepEqual(by['orders']!.runtime, {
    kind: 'service',
    name: 'orders',
    dataDir: '/p/.rampart/orders',
    adminPort: 9003,
    manifestFile: '/p/rampart.yaml',
    port: 7002,
    identity: {
      issuer: 'http://127.0.0.1:8444',
      audience: 'https://api.test.local',
      jwksUri: 'http://127.0.0.1:8444/jwks',
    },
    peers: { catalog: 'http://127.0.0.1:7001', payments: 'http://127.0.0.1:7003' },
  });
  assert.deepEqual(by['orders']!.env, { MODE: 'demo' });
  assert.deepEqual(by['catalog']!.runtime.kind === 'service' && by['catalog']!.runtime.peers, {});
  assert.deepEqual(by['gateway']!.runtime, {
    kind: 'gateway',
    name: 'gateway',
    dataDir: '/p/.rampart/gateway',
    adminPort: 9005,
    manifestFile: '/p/rampart.yaml',
    upstreams: { catalog: 'http://127.0.0.1:7001', orders: 'http://127.0.0.1:7002' },
  });
  assert.equal(by['gateway']!.entry, entries.gateway);
});

test('the control plane alone learns its PostgreSQL store (the URL may carry a password)', () => {
  const url = 'postgres://rampart:pw-only-for-control@127.0.0.1:5432/control';
  const manifest = { ...shop(), control: { store: { kind: 'postgres' as const, url } } };
  const plans = planProcesses(manifest, { ports, dataRoot: '/p/.rampart', entries });
  for (const plan of plans) {
    if (plan.kind === 'control')
      assert.deepEqual(plan.runtime.kind === 'control' && plan.runtime.store, { kind: 'postgres', url });
    else assert.ok(!JSON.stringify(plan).includes('pw-only-for-control'), plan.name);
  }
});

test('identity settings: built-in issuer on loopback, external as configured', () => {
  assert.deepEqual(identitySettings(handManifest('/p', {}, { identityPort: 8444 })), {
    issuer: 'http://127.0.0.1:8444',
    audience: 'https://api.test.local',
    jwksUri: 'http://127.0.0.1:8444/jwks',
  });
  assert.deepEqual(identitySettings(handManifest('/p', {}, { identity: 'external' })), {
    issuer: 'https://idp.example.com',
    audience: 'https://api.test.local',
    jwksUri: null,
  });
});

test('service names that clash with a component or are no safe directory name are refused', () => {
  for (const name of ['gateway', 'control', 'identity', 'rampart', '..', '.hidden', 'a/b', '']) {
    assert.throws(
      () => startOrder(handManifest('/p', { [name]: {} })),
      (err) => isRampartError(err, 'LAUNCH_ERR_NAME'),
      JSON.stringify(name),
    );
  }
});

test('with mTLS: https peers and upstreams, and each service told exactly who may call it', () => {
  const plans = planProcesses(shop(), { ports, dataRoot: '/p/.rampart', entries, mtls: true });
  const by = Object.fromEntries(plans.map((p) => [p.name, p]));
  const orders = by['orders']!.runtime;
  assert.ok(orders.kind === 'service');
  assert.deepEqual(orders.peers, { catalog: 'https://127.0.0.1:7001', payments: 'https://127.0.0.1:7003' });
  const gateway = by['gateway']!.runtime;
  assert.ok(gateway.kind === 'gateway');
  assert.deepEqual(gateway.upstreams, { catalog: 'https://127.0.0.1:7001', orders: 'https://127.0.0.1:7002' });
  const payments = by['payments']!.runtime;
  assert.ok(payments.kind === 'service');
  const td = shop().trustDomain;
  // No routes: the gateway is not a caller; only orders (whose calls name payments) is.
  assert.deepEqual(Object.keys(payments.policy!.callers), [`spiffe://${td}/svc/orders`]);
  const catalog = by['catalog']!.runtime;
  assert.ok(catalog.kind === 'service');
  assert.deepEqual(Object.keys(catalog.policy!.callers).sort(), [
    `spiffe://${td}/svc/gateway`,
    `spiffe://${td}/svc/orders`,
  ]);
  assert.deepEqual(catalog.policy!.callers[`spiffe://${td}/svc/gateway`], [
    { methods: ['GET'], paths: ['/catalog/products'] },
  ]);
  // Without mTLS (default), no policy and plain http, as before.
  const plain = planProcesses(shop(), { ports, dataRoot: '/p/.rampart', entries });
  const plainOrders = plain.find((p) => p.name === 'orders')!.runtime;
  assert.ok(plainOrders.kind === 'service' && plainOrders.policy === undefined);
});
