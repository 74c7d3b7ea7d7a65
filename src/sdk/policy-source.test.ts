import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Registry } from 'prom-client';
import type { controlRequest } from '../control/api/client.ts';
import { callersDigest } from '../control/policy/digest.ts';
import { RampartError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import type { InboundPolicy } from '../core/runtime.ts';
import { SDK_POLICY_INVALID } from './caller-policy.ts';
import { createPolicySource, type PolicySourceOptions } from './policy-source.ts';

const ORDERS = 'spiffe://shop.local/svc/orders';
const CATALOG = 'spiffe://shop.local/svc/catalog';
const CHARGES = { [ORDERS]: [{ methods: ['POST'], paths: ['/charges'] }] };
/** Wider than CHARGES: orders may also refund. */
const WIDE = { [ORDERS]: [{ methods: ['POST'], paths: ['/charges', '/refunds'] }] };
const OTHER = { [CATALOG]: [{ methods: ['GET'], paths: ['/x'] }] };
/** Two epochs of the control plane's policy history. */
const E1 = 'AAAAAAAAAAAAAAAAAAAAAA';
const E2 = 'bbbbbbbbbbbbbbbbbbbbb_';
type Rules = Record<string, { methods: string[]; paths: string[] }[]>;
/** A control-plane answer carrying `callers` at `epoch`/`version`, with their digest. */
const full = (epoch: string, version: number, callers: Rules) => ({
  epoch,
  version,
  digest: callersDigest(callers),
  callers,
});
/** The "you hold it" answer: no rules. */
const same = (epoch: string, version: number, callers: Rules) => ({ epoch, version, digest: callersDigest(callers) });
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
  const logs: { level: string; msg: string; [field: string]: unknown }[] = [];
  const destination = { write: (line: string) => logs.push(JSON.parse(line)) };
  const policy = createPolicySource({
    initial: { version: 0, callers: CHARGES },
    control: { url: 'https://127.0.0.1:1', trustDomain: 'shop.local' },
    svid: () => SVID,
    logger: createLogger({ name: 'payments', level: 'debug', destination: destination as never }),
    registry,
    request: control.request,
    ...overrides,
  });
  const metric = async (name: string, labels = '') => {
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name}${labels} `));
    assert.ok(line, `${name}${labels}`);
    return Number(line.split(' ')[1]);
  };
  return { policy, control, metric, logs };
}

const down = () => {
  throw new RampartError('CA_ERR_API_UNAVAILABLE', 'control plane refused', { status: 503 });
};

test('the first answer replaces the launcher snapshot; the request carries the SVID and what the service holds', async () => {
  const { policy, control, metric } = source([full(E1, 4, OTHER)]);
  assert.equal(policy.epoch(), null);
  assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, true);
  assert.equal(await policy.refresh(), 'updated');
  assert.equal(policy.version(), 4);
  assert.equal(policy.epoch(), E1);
  assert.deepEqual(policy.decide(ORDERS, 'POST', '/charges'), { allowed: false, reason: 'unknown_caller' });
  assert.equal(policy.decide(CATALOG, 'GET', '/x').allowed, true);
  assert.deepEqual(control.requests[0], {
    body: { epoch: null, version: 0, digest: callersDigest(CHARGES) },
    cert: 'CERT',
    key: 'KEY',
    bundle: 'BUNDLE',
    path: '/v1/policy',
  });
  assert.equal(await metric('rampart_service_policy_version'), 4);
  assert.equal(await metric('rampart_service_policy_updates_total'), 1);
  // From the snapshot, a first epoch is no epoch change.
  assert.equal(await metric('rampart_service_policy_epoch_changes_total', '{history="continued"}'), 0);
  // Exactly what it holds: nothing to do, and the request says what it holds now.
  control.answers.splice(0, control.answers.length, same(E1, 4, OTHER));
  assert.equal(await policy.refresh(), 'unchanged');
  assert.deepEqual(control.requests[1]?.body, { epoch: E1, version: 4, digest: callersDigest(OTHER) });
  // An answer with rules equal to those held is unchanged too (a refresh raced with another).
  control.answers.splice(0, control.answers.length, full(E1, 4, OTHER));
  assert.equal(await policy.refresh(), 'unchanged');
  assert.equal(await metric('rampart_service_policy_updates_total'), 1);
});

test('the snapshot is replaced even by an answer at version 1 with its very rules (it belongs to no epoch)', async () => {
  const { policy } = source([full(E1, 1, CHARGES)]);
  assert.equal(await policy.refresh(), 'updated');
  assert.equal(policy.epoch(), E1);
  assert.equal(policy.version(), 1);
});

test('within one epoch versions never go back: a lower version is refused and counted as stale', async () => {
  const lower: [string, unknown][] = [
    ['lower with rules', full(E1, 3, {})],
    ['lower without rules', same(E1, 4, {})],
    ['version 1 with the very rules held', full(E1, 1, WIDE)],
  ];
  const { policy, control, metric } = source([full(E1, 5, WIDE)]);
  assert.equal(await policy.refresh(), 'updated');
  for (const [what, answer] of lower) {
    control.answers.splice(0, control.answers.length, answer);
    assert.equal(await policy.refresh(), 'failed', what);
    assert.equal(policy.version(), 5, what);
    assert.equal(policy.decide(ORDERS, 'POST', '/refunds').allowed, true, what);
  }
  assert.equal(await metric('rampart_service_policy_refresh_failures_total', '{reason="stale"}'), lower.length);
  assert.equal(await metric('rampart_service_policy_updates_total'), 1);
});

test('within one epoch, the same version with another digest is not "unchanged": its rules are taken', async () => {
  const { policy, control, metric, logs } = source([full(E1, 5, WIDE), same(E1, 5, CHARGES)]);
  assert.equal(await policy.refresh(), 'updated');
  // Without rules there is nothing to install: refused, the wider rules stay until a full answer.
  assert.equal(await policy.refresh(), 'failed');
  assert.equal(await metric('rampart_service_policy_refresh_failures_total', '{reason="malformed"}'), 1);
  assert.equal(policy.decide(ORDERS, 'POST', '/refunds').allowed, true);
  control.answers.splice(0, control.answers.length, full(E1, 5, CHARGES));
  assert.equal(await policy.refresh(), 'updated');
  assert.equal(policy.version(), 5);
  assert.deepEqual(policy.decide(ORDERS, 'POST', '/refunds'), { allowed: false, reason: 'no_rule' });
  assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, true);
  assert.ok(logs.some((l) => l.level === 'warn' && l.msg.includes('same version, other rules')));
  assert.equal(await metric('rampart_service_policy_epoch_changes_total', '{history="restarted"}'), 0);
});

test('another epoch is authoritative whatever its version: a restarted history with narrower rules wins', async () => {
  const cases: { what: string; answer: ReturnType<typeof full>; history: 'continued' | 'restarted' }[] = [
    { what: 'a lower version, narrower', answer: full(E2, 1, CHARGES), history: 'restarted' },
    { what: 'a lower version, the same rules', answer: full(E2, 2, WIDE), history: 'restarted' },
    { what: 'the same version, narrower', answer: full(E2, 5, CHARGES), history: 'restarted' },
    { what: 'the same version and rules (a plain restart)', answer: full(E2, 5, WIDE), history: 'continued' },
    { what: 'a higher version', answer: full(E2, 6, CHARGES), history: 'continued' },
  ];
  for (const c of cases) {
    const { policy, metric, logs, control } = source([full(E1, 5, WIDE), c.answer]);
    assert.equal(await policy.refresh(), 'updated', c.what);
    assert.equal(policy.decide(ORDERS, 'POST', '/refunds').allowed, true, c.what);
    logs.length = 0;
    assert.equal(await policy.refresh(), 'updated', c.what);
    assert.equal(policy.epoch(), E2, c.what);
    assert.equal(policy.version(), c.answer.version, c.what);
    const refunds = c.answer.callers === WIDE;
    assert.equal(policy.decide(ORDERS, 'POST', '/refunds').allowed, refunds, c.what);
    assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, true, c.what);
    assert.deepEqual(control.requests[1]?.body, { epoch: E1, version: 5, digest: callersDigest(WIDE) }, c.what);
    assert.equal(await metric('rampart_service_policy_epoch_changes_total', `{history="${c.history}"}`), 1, c.what);
    const other = c.history === 'continued' ? 'restarted' : 'continued';
    assert.equal(await metric('rampart_service_policy_epoch_changes_total', `{history="${other}"}`), 0, c.what);
    assert.equal(await metric('rampart_service_policy_version'), c.answer.version, c.what);
    const line = logs.find((l) => l['epoch'] === E2 && l['previousEpoch'] === E1);
    assert.ok(line, c.what);
    assert.equal(line.level, c.history === 'restarted' ? 'warn' : 'info', c.what);
    // The new epoch is now the one held: its lower versions are stale.
    control.answers.splice(0, control.answers.length, full(E2, c.answer.version - 1, WIDE));
    if (c.answer.version > 1) assert.equal(await policy.refresh(), 'failed', c.what);
  }
});

test('a malformed answer is refused whole, the policy in force keeps deciding, and the failure is counted', async () => {
  const digest = callersDigest(OTHER);
  const ok = full(E1, 9, OTHER);
  const answers: [string, unknown][] = [
    ['null', null],
    ['a string', 'allow'],
    ['an array', [ok]],
    // The epoch.
    ['no epoch', { ...ok, epoch: undefined }],
    ['a null epoch', { ...ok, epoch: null }],
    ['a number epoch', { ...ok, epoch: 1 }],
    ['an empty epoch', { ...ok, epoch: '' }],
    ['a short epoch', { ...ok, epoch: E1.slice(1) }],
    ['a long epoch', { ...ok, epoch: `${E1}A` }],
    ['an epoch with padding', { ...ok, epoch: `${E1.slice(2)}==` }],
    ['an epoch with a newline', { ...ok, epoch: `${E1.slice(1)}\n` }],
    ['an epoch in an array', { ...ok, epoch: [E1] }],
    // The version.
    ['no version', { ...ok, version: undefined }],
    ['a string version', { ...ok, version: '9' }],
    ['version 0 (the launcher snapshot only)', { ...ok, version: 0 }],
    ['a negative version', { ...ok, version: -1 }],
    ['a fractional version', { ...ok, version: 8.5 }],
    ['a huge version', { ...ok, version: 2 ** 60 }],
    // The digest.
    ['no digest', { ...ok, digest: undefined }],
    ['a null digest', { ...ok, digest: null }],
    ['an uppercase digest', { ...ok, digest: digest.toUpperCase() }],
    ['a short digest', { ...ok, digest: digest.slice(1) }],
    ['a digest of other rules', { ...ok, digest: callersDigest(CHARGES) }],
    ['a digest of the rules held, with other rules', { ...ok, digest: callersDigest(CHARGES), callers: OTHER }],
    ['the digest of nobody, with rules', { ...ok, digest: callersDigest({}) }],
    // The rules.
    ['a higher version without callers', same(E1, 9, OTHER)],
    ['another epoch without callers', same(E2, 1, OTHER)],
    ['callers as an array', { ...ok, callers: [] }],
    ['callers null', { ...ok, callers: null }],
    ['a bad pattern', full(E1, 9, { [ORDERS]: [{ methods: ['POST'], paths: ['/../charges'] }] })],
    [
      'a foreign trust domain',
      full(E1, 9, { 'spiffe://evil.local/svc/orders': [{ methods: ['POST'], paths: ['/**'] }] }),
    ],
    ['a bad method', full(E1, 9, { [ORDERS]: [{ methods: ['post'], paths: ['/charges'] }] })],
  ];
  const { policy, control, metric } = source([null]);
  for (const [what, answer] of answers) {
    control.answers.splice(0, control.answers.length, answer);
    assert.equal(await policy.refresh(), 'failed', what);
    assert.equal(policy.version(), 0, what);
    assert.equal(policy.epoch(), null, what);
    assert.equal(policy.decide(ORDERS, 'POST', '/charges').allowed, true, what);
  }
  assert.equal(await metric('rampart_service_policy_refresh_failures_total', '{reason="malformed"}'), answers.length);
  assert.equal(await metric('rampart_service_policy_updates_total'), 0);
  // The same source still takes a good answer: each refusal was about its answer only.
  control.answers.splice(0, control.answers.length, ok);
  assert.equal(await policy.refresh(), 'updated');
  assert.equal(policy.epoch(), E1);
});

test('the control plane down or refusing keeps the last policy; it is counted by reason', async () => {
  const refused = () => {
    throw new RampartError('POLICY_ERR_UNAVAILABLE', 'control plane refused', { status: 503 });
  };
  const { policy, control, metric } = source([down, down, refused, full(E1, 2, {})]);
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
  const { policy, control } = source([full(E1, 1, CHARGES)]);
  const outcomes = await Promise.all([policy.refresh(), policy.refresh(), policy.refresh()]);
  assert.deepEqual(outcomes, ['updated', 'updated', 'updated']);
  assert.equal(control.requests.length, 1);
});

test('start refreshes once before resolving, then polls every refreshMs; close stops polling', async () => {
  const { policy, control } = source([full(E1, 1, CHARGES)], { refreshMs: 20, random: () => 0 });
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
