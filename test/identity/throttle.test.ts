import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { THROTTLE_DEFAULTS } from '../../src/identity/defaults.ts';
import { createThrottle, delayAfter } from '../../src/identity/throttle.ts';
import { type TestKek, type TestStore, testKek, testStore } from './harness.ts';

let keks: TestKek;
let stores: TestStore;
before(async () => {
  keks = testKek();
  stores = await testStore('sqlite', keks.dir);
});
after(async () => {
  await stores.cleanup();
  keks.cleanup();
});

test('delays grow exponentially after the free failures, are capped, then lock', () => {
  const rule = THROTTLE_DEFAULTS.account;
  const delays = Array.from({ length: 12 }, (_, n) => delayAfter(rule, n));
  assert.deepEqual(delays, [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 900, 900]);
});

test('parallel guesses cannot slip past the counter: each admitted attempt counts before its check', async () => {
  let clock = 1_000_000;
  const policy = {
    account: { free: 3, baseDelay: 10, maxDelay: 10, lockAt: 5, lockDuration: 900, forgetAfter: 3600 },
    address: { free: 1000, baseDelay: 1, maxDelay: 1, lockAt: 10_000, lockDuration: 1, forgetAfter: 3600 },
  };
  const throttle = createThrottle(stores.store, policy, () => clock);
  const gates = await Promise.all(Array.from({ length: 20 }, () => throttle.begin('victim', '192.0.2.1')));
  const admitted = gates.filter((g) => g.allowed);
  assert.equal(admitted.length, 3, 'only the free attempts get through a burst; the rest wait');
  for (const g of admitted) if (g.allowed) await g.attempt.failed();
  const refused = gates.find((g) => !g.allowed);
  assert.ok(refused && !refused.allowed && refused.retryAfter > 0);
  clock += 11_000;
  const next = await throttle.begin('victim', '192.0.2.1');
  assert.ok(next.allowed);
  await next.attempt.succeeded();
  const fresh = await throttle.begin('victim', '192.0.2.1');
  assert.ok(fresh.allowed, 'a success clears the username');
  await fresh.attempt.succeeded();
});

test('the address rule is independent of usernames (one source spraying many accounts)', async () => {
  const clock = 5_000_000;
  const policy = {
    account: { free: 100, baseDelay: 1, maxDelay: 1, lockAt: 1000, lockDuration: 1, forgetAfter: 3600 },
    address: { free: 3, baseDelay: 30, maxDelay: 30, lockAt: 6, lockDuration: 900, forgetAfter: 3600 },
  };
  const throttle = createThrottle(stores.store, policy, () => clock);
  const outcomes: boolean[] = [];
  for (let i = 0; i < 5; i++) {
    const gate = await throttle.begin(`user-${i}`, '198.51.100.7');
    outcomes.push(gate.allowed);
    if (gate.allowed) await gate.attempt.failed();
  }
  assert.deepEqual(outcomes, [true, true, true, false, false]);
  const other = await throttle.begin('user-0', '198.51.100.8');
  assert.ok(other.allowed, 'another address is not affected');
});

test('failures are forgotten after a quiet period', async () => {
  let clock = 9_000_000;
  const policy = {
    account: { free: 1, baseDelay: 100, maxDelay: 100, lockAt: 2, lockDuration: 900, forgetAfter: 60 },
    address: THROTTLE_DEFAULTS.address,
  };
  const throttle = createThrottle(stores.store, policy, () => clock);
  for (let i = 0; i < 2; i++) {
    const gate = await throttle.begin('sleepy', '203.0.113.1');
    assert.ok(gate.allowed);
    await gate.attempt.failed();
    clock += 1_000_000;
  }
  const gate = await throttle.begin('sleepy', '203.0.113.1');
  assert.ok(gate.allowed, 'quiet for longer than forgetAfter: a fresh start');
});
