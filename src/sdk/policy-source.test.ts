import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Registry } from 'prom-client';
import type { controlRequest } from '../control/api/client.ts';
import { RampartError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import type { InboundPolicy } from '../core/runtime.ts';
import { SDK_POLICY_INVALID } from './caller-policy.ts';
import { createPolicySource, type PolicySourceOptions } from './policy-source.ts';

const ORDERS = 'spiffe://shop.local/svc/orders';
const CATALOG = 'spiffe://shop.local/svc/catalog';
const CHARGES = { [ORDERS]: [{ methods: ['POST'], paths: ['/charges'] }] };
const SVID = {
  spiffeId: 'spiffe://shop.local/svc/payments',
  keyPem: 'KEY',
  certificatePem: 'CERT',
  notBefore: 0,
  notAfter: Number.MAX_SAFE_INTEGER,
  bundlePem: 'BUNDLE',
  bundleSequence: 1,
};

type Answer = unknown | (() => never);

/** A fake control plane: answers from a queue (the last answer repeats), records each request. */
function fakeControl(answers: Answer[]) {
  const requests: { body: unknown; cert?: string; key?: string; bundle: string; path: string }[] = [];
  const request = (async (
    target: { bundle: string },
    exchange: { body?: unknown; cert?: string; key?: string; path: string },
  ) => {
    requests.push({
      body: exchange.body,
      cert: exchange.cert,
      key: exchange.key,
      bundle: target.bundle,
      path: exchange.path,
    });
    const next = answers.length > 1 ? answers.shift() : answers[0];
    if (typeof next === 'function') return (next as () => never)();
    return structuredClone(next);
  }) as unknown as typeof controlRequest;
  return { request, requests, answers };
}

function source(answers: Answer[], overrides: Partial<PolicySourceOptions> = {}) {
  const control = fakeControl(answers);
  const registry = new Registry();
  const policy = createPolicySource({
    initial: { version: 0, callers: CHARGES },
    control: { url: 'https://127.0.0.1:1', trustDomain: 'shop.local' },
    svid: () => SVID,
    logger: createLogger({ name: 'payments', level: 'silent' }),
    registry,
    request: control.request,
    ...overrides,
  });
  const metric = async (name: string, labels = '') => {
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name}${labels} `));
    assert.ok(line, `${name}${labels}`);
    return Number(line.split(' ')[1]);
  };
  return { policy, control, metric };
}

const down = () => {
  throw new RampartError('CA_ERR_API_UNAVAILABLE', 'control plane refused', { status: 503 });
};

test('a higher version is installed whole: the next decision uses it; the request carries the SVID and known version', async () => {
  const { policy, control, metric } = source([
    { version: 4, callers: { [CATALOG]: [{ methods: ['GET'], paths: ['/x'] }] } },
  ]);
  assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, true);
  assert.equal(await policy.refresh(), 'updated');
  assert.equal(policy.version(), 4);
  assert.deepEqual(policy.decide(ORDERS, 'POST', '/charges'), { allowed: false, reason: 'unknown_caller' });
  assert.equal(policy.decide(CATALOG, 'GET', '/x').allowed, true);
  assert.deepEqual(control.requests[0], {
    body: { knownVersion: 0 },
    cert: 'CERT',
    key: 'KEY',
    bundle: 'BUNDLE',
    path: '/v1/policy',
  });
  assert.equal(await metric('rampart_service_policy_version'), 4);
  assert.equal(await metric('rampart_service_policy_updates_total'), 1);
  // The same version again: nothing to do, and the known version sent is the new one.
  control.answers.splice(0, control.answers.length, { version: 4 });
  assert.equal(await policy.refresh(), 'unchanged');
  assert.deepEqual(control.requests[1]?.body, { knownVersion: 4 });
});

test('versions never go back: a lower version is refused and counted as stale', async () => {
  const { policy, metric } = source([
    { version: 5, callers: CHARGES },
    { version: 3, callers: {} },
  ]);
  assert.equal(await policy.refresh(), 'updated');
  assert.equal(await policy.refresh(), 'failed');
  assert.equal(policy.version(), 5);
  assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, true);
  assert.equal(await metric('rampart_service_policy_refresh_failures_total', '{reason="stale"}'), 1);
});

test('a malformed answer is refused and the policy in force keeps deciding', async () => {
  const answers: [string, unknown][] = [
    ['null', null],
    ['a string', 'allow'],
    ['no version', { callers: {} }],
    ['a string version', { version: '9', callers: {} }],
    ['a negative version', { version: -1, callers: {} }],
    ['a huge version', { version: 2 ** 60, callers: {} }],
    ['a higher version without callers', { version: 9 }],
    ['callers as an array', { version: 9, callers: [] }],
    ['a bad pattern', { version: 9, callers: { [ORDERS]: [{ methods: ['POST'], paths: ['/../charges'] }] } }],
    [
      'a foreign trust domain',
      { version: 9, callers: { 'spiffe://evil.local/svc/orders': [{ methods: ['POST'], paths: ['/**'] }] } },
    ],
    ['a bad method', { version: 9, callers: { [ORDERS]: [{ methods: ['post'], paths: ['/charges'] }] } }],
  ];
  const { policy, control, metric } = source([null]);
  for (const [what, answer] of answers) {
    control.answers.splice(0, control.answers.length, answer);
    assert.equal(await policy.refresh(), 'failed', what);
    assert.equal(policy.version(), 0, what);
    assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, true, what);
  }
  assert.equal(await metric('rampart_service_policy_refresh_failures_total', '{reason="malformed"}'), answers.length);
  assert.equal(await metric('rampart_service_policy_updates_total'), 0);
});

test('the control plane down or refusing keeps the last policy; it is counted by reason', async () => {
  const refused = () => {
    throw new RampartError('POLICY_ERR_UNAVAILABLE', 'control plane refused', { status: 503 });
  };
  const { policy, control, metric } = source([down, down, refused, { version: 2, callers: {} }]);
  assert.equal(await policy.refresh(), 'failed');
  assert.equal(await policy.refresh(), 'failed');
  assert.equal(await policy.refresh(), 'failed');
  assert.equal(policy.version(), 0);
  assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, true);
  assert.equal(await metric('rampart_service_policy_refresh_failures_total', '{reason="unavailable"}'), 2);
  assert.equal(await metric('rampart_service_policy_refresh_failures_total', '{reason="refused"}'), 1);
  assert.equal(await policy.refresh(), 'updated');
  assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, false);
  assert.equal(control.requests.length, 4);
});

test('concurrent refreshes share one request', async () => {
  const { policy, control } = source([{ version: 1, callers: CHARGES }]);
  const outcomes = await Promise.all([policy.refresh(), policy.refresh(), policy.refresh()]);
  assert.deepEqual(outcomes, ['updated', 'updated', 'updated']);
  assert.equal(control.requests.length, 1);
});

test('start refreshes once before resolving, then polls every refreshMs; close stops polling', async () => {
  const { policy, control } = source([{ version: 1, callers: CHARGES }], { refreshMs: 20, random: () => 0 });
  await policy.start();
  assert.equal(control.requests.length, 1);
  assert.equal(policy.version(), 1);
  await delay(150);
  const polled = control.requests.length;
  assert.ok(polled >= 4, `polled ${polled} times in 150 ms at 20 ms`);
  policy.close();
  await delay(60);
  assert.ok(control.requests.length <= polled + 1);
});

test('while the control plane is down, polls back off', async () => {
  const { policy, control } = source([down], { refreshMs: 20, random: () => 0 });
  await policy.start();
  await delay(300);
  policy.close();
  // Up: every 20 ms is ~15 polls; backing off (40, 80, 160 ms...) makes it 4 or 5.
  assert.ok(control.requests.length <= 6, `${control.requests.length} polls`);
});

test('a malformed initial policy is refused at construction', () => {
  for (const initial of [{ version: 0, callers: { orders: [] } }, { version: -1, callers: {} }, null]) {
    assert.throws(() => source([null], { initial: initial as unknown as InboundPolicy }), { code: SDK_POLICY_INVALID });
  }
});
