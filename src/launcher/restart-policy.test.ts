import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CrashHistory, DEFAULT_RESTART_POLICY, NO_CRASHES, onCrash } from './restart-policy.ts';

const policy = { ...DEFAULT_RESTART_POLICY, maxCrashes: 100, windowMs: 1_000_000 };
const noJitter = () => 0;

/** Crashes a process `times` times, each `upMs` after it was (re)started; returns the delays. */
function crashLoop(times: number, upMs: number, p = policy, random = noJitter): number[] {
  let history: CrashHistory = NO_CRASHES;
  let now = 0;
  const delays: number[] = [];
  for (let i = 0; i < times; i++) {
    const startedAt = now;
    now += upMs;
    const decision = onCrash(history, startedAt, now, p, random);
    assert.equal(decision.action, 'restart');
    if (decision.action !== 'restart') break;
    delays.push(decision.delayMs);
    history = decision.history;
    now += decision.delayMs;
  }
  return delays;
}

test('backoff doubles from 250 ms and stops at 10 s', () => {
  assert.deepEqual(crashLoop(8, 10), [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
});

test('backoff starts over once a process stayed up stableAfterMs', () => {
  let history: CrashHistory = NO_CRASHES;
  for (const [startedAt, now, expected] of [
    [0, 10, 250],
    [260, 270, 500],
    [770, 770 + DEFAULT_RESTART_POLICY.stableAfterMs, 250],
  ] as const) {
    const decision = onCrash(history, startedAt, now, policy, noJitter);
    assert.equal(decision.action === 'restart' && decision.delayMs, expected);
    history = decision.history;
  }
});

test('jitter only shortens a delay, by at most the jitter fraction', () => {
  assert.deepEqual(
    crashLoop(3, 10, policy, () => 0.999_999),
    [200, 400, 800],
  );
  assert.deepEqual(
    crashLoop(3, 10, policy, () => 0.5),
    [225, 450, 900],
  );
});

test('gives up at maxCrashes within the window, not when crashes are spread out', () => {
  const strict = { ...DEFAULT_RESTART_POLICY, maxCrashes: 5, windowMs: 60_000 };
  let history: CrashHistory = NO_CRASHES;
  const actions: string[] = [];
  for (let i = 0; i < 5; i++) {
    const decision = onCrash(history, i * 1000, i * 1000 + 100, strict, noJitter);
    actions.push(decision.action);
    history = decision.history;
  }
  assert.deepEqual(actions, ['restart', 'restart', 'restart', 'restart', 'give-up']);

  history = NO_CRASHES;
  for (let i = 0; i < 10; i++) {
    const decision = onCrash(history, i * 20_000, i * 20_000 + 100, strict, noJitter);
    assert.equal(decision.action, 'restart', `crash ${i + 1}, 20 s apart`);
    history = decision.history;
    assert.ok(history.crashes.length <= 3);
  }
});
