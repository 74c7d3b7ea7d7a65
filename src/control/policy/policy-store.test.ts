import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger } from '../../core/logger.ts';
import { Registry } from '../../core/metrics.ts';
import { followManifest } from '../manifest-reloads.ts';
import { callersDigest, POLICY_EPOCH_PATTERN } from './digest.ts';
import { POLICY_ERRORS } from './errors.ts';
import { PolicyStore, type PolicyStoreOptions } from './policy-store.ts';
import { POLICY_STATE_FILE } from './state-file.ts';

const ORDERS = 'spiffe://shop.local/svc/orders';

interface Sketch {
  /** Paths orders may POST to on payments. */
  charges?: string[];
  rate?: string;
  trustDomain?: string;
}

function yaml({ charges = ['/charges'], rate = '100/min per ip', trustDomain = 'shop.local' }: Sketch = {}): string {
  return [
    'version: 1',
    `trustDomain: ${trustDomain}`,
    'gateway:',
    '  listen: { host: 127.0.0.1, port: 8080 }',
    '  tls: off',
    'identity:',
    '  builtin: { port: 8444 }',
    '  audience: https://api.shop.local',
    'services:',
    '  orders:',
    '    run: orders.ts',
    '    routes:',
    `      - { id: orders-list, path: /orders, methods: [GET], auth: none, rateLimit: ${rate} }`,
    '    calls:',
    `      - { service: payments, methods: [POST], paths: [${charges.join(', ')}] }`,
    '  payments:',
    '    run: payments.ts',
    '',
  ].join('\n');
}

function project(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-policy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'orders.ts'), '');
  writeFileSync(join(dir, 'payments.ts'), '');
  const dataDir = join(dir, '.rampart', 'control');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const manifestFile = join(dir, 'rampart.yaml');
  const registries: Registry[] = [];
  const open = (overrides: Partial<PolicyStoreOptions> = {}) => {
    const registry = new Registry();
    registries.push(registry);
    const store = new PolicyStore({
      manifestFile,
      dataDir,
      trustDomain: 'shop.local',
      logger: createLogger({ name: 'control', level: 'silent' }),
      registry,
      ...overrides,
    });
    return { store, registry };
  };
  return { dir, dataDir, manifestFile, open, write: (s: Sketch = {}) => writeFileSync(manifestFile, yaml(s)) };
}

async function metric(registry: Registry, name: string): Promise<number> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is exported`);
  return Number(line.split(' ')[1]);
}

test('versions: 1 at first, +1 per policy change, none for unrelated edits, never back across restarts', async (t) => {
  const p = project(t);
  p.write();
  const { store, registry } = p.open();
  assert.equal(store.current?.version, 1);
  const charges = { [ORDERS]: [{ methods: ['POST'], paths: ['/charges'] }] };
  assert.deepEqual(store.policyOf('payments'), {
    epoch: store.epoch,
    version: 1,
    digest: callersDigest(charges),
    callers: charges,
  });
  assert.equal(statSync(join(p.dataDir, POLICY_STATE_FILE)).mode & 0o777, 0o600);

  p.write({ rate: '5/s per ip' });
  assert.equal(store.reload(), 'unchanged', 'a rate limit is not policy');
  assert.equal(store.current?.version, 1);

  p.write({ charges: ['/charges', '/refunds'] });
  assert.equal(store.reload(), 'updated');
  assert.equal(store.current?.version, 2);
  assert.deepEqual(store.policyOf('payments')?.callers[ORDERS], [
    { methods: ['POST'], paths: ['/charges', '/refunds'] },
  ]);
  assert.equal(store.policyOf('payments')?.digest, callersDigest(store.policyOf('payments')?.callers ?? {}));
  assert.notEqual(store.policyOf('payments')?.digest, callersDigest(charges), 'a new version of its rules');
  assert.equal(await metric(registry, 'rampart_control_policy_version'), 2);

  // A restart with the same policy keeps its version; a different one gets the next.
  assert.equal(p.open().store.current?.version, 2);
  p.write({ charges: ['/refunds'] });
  assert.equal(p.open().store.current?.version, 3);
  // Going back to an earlier manifest is a new version, not an old one: services only move forward.
  p.write();
  const back = p.open().store;
  assert.equal(back.current?.version, 4);
  assert.deepEqual(back.policyOf('payments')?.callers[ORDERS], [{ methods: ['POST'], paths: ['/charges'] }]);
});

test('epochs: a new one at every start, never persisted; a lost or restored policy.json restarts versions in a new epoch', (t) => {
  const p = project(t);
  const file = join(p.dataDir, POLICY_STATE_FILE);
  p.write({ charges: ['/charges'] });
  const first = p.open().store;
  assert.match(first.epoch, POLICY_EPOCH_PATTERN);
  assert.equal(first.policyOf('payments')?.epoch, first.epoch);
  const backup = readFileSync(file, 'utf8');
  assert.ok(!('epoch' in JSON.parse(backup)), 'policy.json holds no epoch');
  p.write({ charges: ['/charges', '/refunds'] });
  assert.equal(first.reload(), 'updated');
  assert.equal(first.policyOf('payments')?.epoch, first.epoch, 'a reload stays in the epoch');

  // An ordinary restart: same version, same rules, another epoch.
  const restarted = p.open().store;
  assert.equal(restarted.current?.version, 2);
  assert.notEqual(restarted.epoch, first.epoch);

  // policy.json lost, the manifest narrowed meanwhile: version 1 again, for other rules, in a new epoch.
  rmSync(file);
  p.write({ charges: ['/charges'] });
  const lost = p.open().store;
  assert.equal(lost.current?.version, 1);
  assert.ok(![first.epoch, restarted.epoch].includes(lost.epoch));

  // Restored from the backup taken at version 1: the same version, and still a new epoch.
  p.write({ charges: ['/charges', '/refunds'] });
  p.open();
  writeFileSync(file, backup);
  p.write({ charges: ['/charges'] });
  const restored = p.open().store;
  assert.equal(restored.current?.version, 1);
  assert.ok(![first.epoch, restarted.epoch, lost.epoch].includes(restored.epoch));
});

test('a manifest that does not load or changes the trust domain is refused; the last good policy stays', async (t) => {
  const p = project(t);
  p.write();
  const { store, registry } = p.open();
  const good = store.policyOf('payments');
  const bad: [string, () => void][] = [
    ['unknown key', () => writeFileSync(p.manifestFile, `${yaml()}colour: red\n`)],
    ['not yaml', () => writeFileSync(p.manifestFile, 'services: [unclosed\n')],
    [
      'call to an unknown service',
      () => writeFileSync(p.manifestFile, yaml().replace('service: payments', 'service: nobody')),
    ],
    ['empty file', () => writeFileSync(p.manifestFile, '')],
    ['file removed', () => rmSync(p.manifestFile)],
    ['other trust domain', () => p.write({ trustDomain: 'evil.local', charges: ['/everything'] })],
  ];
  for (const [name, make] of bad) {
    make();
    assert.equal(store.reload('file'), 'error', name);
    assert.deepEqual(store.policyOf('payments'), good, name);
    assert.equal(await metric(registry, 'rampart_control_policy_last_reload_successful'), 0, name);
  }
  assert.equal(await metric(registry, 'rampart_control_policy_version'), 1);
  p.write({ charges: ['/refunds'] });
  assert.equal(store.reload(), 'updated');
  assert.equal(store.current?.version, 2);
  assert.equal(await metric(registry, 'rampart_control_policy_last_reload_successful'), 1);
});

test('a manifest that is bad at start: the persisted last good policy is served; with none, no policy (503)', (t) => {
  const p = project(t);
  writeFileSync(p.manifestFile, 'colour: red\n');
  assert.equal(p.open().store.current, null);
  assert.equal(p.open().store.policyOf('payments'), null);
  p.write();
  assert.equal(p.open().store.current?.version, 1);
  writeFileSync(p.manifestFile, 'colour: red\n');
  const restarted = p.open().store;
  assert.equal(restarted.current?.version, 1);
  assert.deepEqual(Object.keys(restarted.policyOf('payments')?.callers ?? {}), [ORDERS]);
});

test('a service the manifest does not name is called by nobody', (t) => {
  const p = project(t);
  p.write();
  const { store } = p.open();
  for (const name of ['ghost', 'constructor', '__proto__', 'toString']) {
    assert.deepEqual(
      store.policyOf(name),
      { epoch: store.epoch, version: 1, digest: callersDigest({}), callers: {} },
      name,
    );
  }
  // orders has a route: the gateway may call it, so its digest is not the empty policy's.
  assert.notEqual(store.policyOf('orders')?.digest, callersDigest({}));
});

test('corrupt persisted state: the control plane refuses to start rather than guess a version', (t) => {
  const p = project(t);
  p.write();
  p.open();
  const file = join(p.dataDir, POLICY_STATE_FILE);
  const good = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const cases: [string, string][] = [
    ['not json', '{"format":1,'],
    ['array', '[]'],
    ['null', 'null'],
    ['format 2', JSON.stringify({ ...good, format: 2 })],
    ['version 0', JSON.stringify({ ...good, version: 0 })],
    ['version negative', JSON.stringify({ ...good, version: -3 })],
    ['version fraction', JSON.stringify({ ...good, version: 1.5 })],
    ['version string', JSON.stringify({ ...good, version: '9' })],
    ['digest of other content', JSON.stringify({ ...good, services: { payments: {} } })],
    ['services array', JSON.stringify({ ...good, services: [] })],
  ];
  for (const [name, text] of cases) {
    writeFileSync(file, text);
    assert.throws(() => p.open(), { code: POLICY_ERRORS.state }, name);
  }
});

test('a state that cannot be written: refused at start, and on reload the last good policy stays', async (t) => {
  const p = project(t);
  p.write();
  mkdirSync(join(p.dataDir, `${POLICY_STATE_FILE}.tmp`));
  assert.throws(() => p.open(), { code: 'EISDIR' });
  rmSync(join(p.dataDir, `${POLICY_STATE_FILE}.tmp`), { recursive: true });
  const { store, registry } = p.open();
  mkdirSync(join(p.dataDir, `${POLICY_STATE_FILE}.tmp`));
  p.write({ charges: ['/refunds'] });
  assert.equal(store.reload(), 'error');
  assert.equal(store.current?.version, 1);
  assert.deepEqual(store.policyOf('payments')?.callers[ORDERS], [{ methods: ['POST'], paths: ['/charges'] }]);
  assert.equal(await metric(registry, 'rampart_control_policy_last_reload_successful'), 0);
});

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail('timed out');
    await delay(20);
  }
}

test('followed by the control plane manifest watcher: an edit in place and an editor-style rename both reload', async (t) => {
  const p = project(t);
  p.write();
  const { store } = p.open();
  const reloads = followManifest({
    file: p.manifestFile,
    followers: [{ name: 'policy', reload: (trigger) => store.reload(trigger) }],
    logger: createLogger({ name: 'control', level: 'silent' }),
    debounceMs: 20,
    rewatchMs: 50,
    signals: { on: () => process, off: () => process },
  });
  t.after(() => reloads.close());
  p.write({ charges: ['/refunds'] });
  await until(() => store.current?.version === 2, 5_000);
  const tmp = join(p.dir, 'rampart.yaml.swp');
  writeFileSync(tmp, yaml({ charges: ['/charges', '/refunds'] }));
  renameSync(tmp, p.manifestFile);
  await until(() => store.current?.version === 3, 5_000);
  // Still watching the new file after the rename.
  p.write();
  await until(() => store.current?.version === 4, 5_000);
});
