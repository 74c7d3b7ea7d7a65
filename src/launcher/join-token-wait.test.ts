import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { isRampartError, RampartError } from '../core/errors.ts';
import { type JoinTokenWaitOptions, mintFailureReason, waitForJoinToken } from './join-token-wait.ts';

const UNAVAILABLE = 'CA_ERR_API_UNAVAILABLE';
const REFUSED = 'CA_ERR_API_UNAUTHORIZED';

/** A mint that plays `script` (a code: fail with it; null: succeed), then succeeds; records the attempts. */
function scripted(script: (string | null)[]) {
  const calls: number[] = [];
  let i = 0;
  const began = Date.now();
  const mint = async () => {
    calls.push(Date.now() - began);
    const step = script[i] ?? null;
    i += 1;
    if (step === null) return `token-${i}`;
    throw new RampartError(step, 'refused');
  };
  return { mint, calls };
}

function options(
  mint: () => Promise<string>,
  extra: Partial<JoinTokenWaitOptions<string>> = {},
): JoinTokenWaitOptions<string> & { waiting: [string, number][]; minted: number[] } {
  const waiting: [string, number][] = [];
  const minted: number[] = [];
  return {
    mint,
    signal: new AbortController().signal,
    backoff: { initialDelayMs: 10, maxDelayMs: 40, jitter: 0 },
    onWaiting: (reason, attempts) => waiting.push([reason, attempts]),
    onMinted: (attempts) => minted.push(attempts),
    waiting,
    minted,
    ...extra,
  };
}

test('a token on the first attempt: no waiting, nothing logged', async () => {
  const { mint, calls } = scripted([]);
  const o = options(mint);
  assert.equal(await waitForJoinToken(o), 'token-1');
  assert.equal(calls.length, 1);
  assert.deepEqual(o.waiting, []);
  assert.deepEqual(o.minted, []);
});

test('retries with doubling delays up to the ceiling; one waiting report per reason, one when minted', async () => {
  const { mint, calls } = scripted([UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]);
  const o = options(mint);
  assert.equal(await waitForJoinToken(o), 'token-6');
  assert.equal(calls.length, 6);
  assert.deepEqual(o.waiting, [[UNAVAILABLE, 1]], 'logged once, not per attempt');
  assert.deepEqual(o.minted, [6]);
  // Delays 10, 20, 40, 40, 40 (capped): the sixth attempt comes at least 150 ms after the first.
  const gaps = calls.slice(1).map((at, k) => at - (calls[k] ?? 0));
  for (const [k, expected] of [10, 20, 40, 40, 40].entries()) {
    assert.ok((gaps[k] ?? 0) >= expected - 2, `gap ${k} is ${gaps[k]} ms, expected ≥ ${expected}`);
  }
});

test('a change of reason is reported again; repeats of the same reason are not', async () => {
  const { mint } = scripted([UNAVAILABLE, UNAVAILABLE, REFUSED, REFUSED, UNAVAILABLE]);
  const o = options(mint, { backoff: { initialDelayMs: 1, maxDelayMs: 2, jitter: 0 } });
  assert.equal(await waitForJoinToken(o), 'token-6');
  assert.deepEqual(o.waiting, [
    [UNAVAILABLE, 1],
    [REFUSED, 3],
    [UNAVAILABLE, 5],
  ]);
  assert.deepEqual(o.minted, [6]);
});

test('jitter only shortens a delay', async () => {
  const { mint, calls } = scripted([UNAVAILABLE]);
  const o = options(mint, { backoff: { initialDelayMs: 60, maxDelayMs: 60, jitter: 0.5 }, random: () => 0.999 });
  await waitForJoinToken(o);
  const gap = (calls[1] ?? 0) - (calls[0] ?? 0);
  assert.ok(gap >= 28 && gap < 60, `gap ${gap} ms`);
});

test('a stop during the backoff ends the wait at once with LAUNCH_ERR_STOPPED and mints nothing more', async () => {
  const { mint, calls } = scripted(Array(100).fill(UNAVAILABLE));
  const controller = new AbortController();
  const o = options(mint, {
    signal: controller.signal,
    backoff: { initialDelayMs: 5_000, maxDelayMs: 5_000, jitter: 0 },
  });
  const waiting = waitForJoinToken(o);
  await delay(50);
  const began = Date.now();
  controller.abort();
  await assert.rejects(waiting, (err) => isRampartError(err, 'LAUNCH_ERR_STOPPED'));
  assert.ok(Date.now() - began < 1_000, 'not after the backoff');
  await delay(50);
  assert.equal(calls.length, 1);
  assert.deepEqual(o.minted, []);
});

test('a stop during an attempt that hangs ends the wait at once; a token that comes later is not used', async () => {
  let release: (token: string) => void = () => {};
  const controller = new AbortController();
  const o = options(() => new Promise<string>((resolve) => (release = resolve)), { signal: controller.signal });
  const waiting = waitForJoinToken(o);
  await delay(20);
  controller.abort();
  await assert.rejects(waiting, (err) => isRampartError(err, 'LAUNCH_ERR_STOPPED'));
  release('late');
  assert.deepEqual(o.minted, []);
});

test('a stop before the first attempt mints nothing', async () => {
  const { mint, calls } = scripted([]);
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(waitForJoinToken(options(mint, { signal: controller.signal })), (err) =>
    isRampartError(err, 'LAUNCH_ERR_STOPPED'),
  );
  assert.equal(calls.length, 0);
});

test('a token minted while stopping is not used', async () => {
  const controller = new AbortController();
  const o = options(
    async () => {
      controller.abort();
      return 'too late';
    },
    { signal: controller.signal },
  );
  await assert.rejects(waitForJoinToken(o), (err) => isRampartError(err, 'LAUNCH_ERR_STOPPED'));
});

test('a deadline ends the wait with LAUNCH_ERR_JOIN_TOKEN naming the last reason, without sleeping past it', async () => {
  const { mint, calls } = scripted(Array(100).fill(REFUSED));
  const began = Date.now();
  const o = options(mint, { deadline: began + 100, backoff: { initialDelayMs: 30, maxDelayMs: 1_000, jitter: 0 } });
  await assert.rejects(waitForJoinToken(o), (err) => {
    assert.ok(isRampartError(err, 'LAUNCH_ERR_JOIN_TOKEN'));
    assert.match(err.message, new RegExp(REFUSED));
    assert.ok(isRampartError(err.cause, REFUSED));
    return true;
  });
  // Attempts at 0, 30, 90; the next delay (120 ms) would pass the deadline.
  assert.equal(calls.length, 3);
  assert.ok(Date.now() - began < 200);
});

test('mintFailureReason: the stable code, or unknown', () => {
  const cases: [unknown, string][] = [
    [new RampartError(UNAVAILABLE, 'x'), UNAVAILABLE],
    [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'ECONNREFUSED'],
    [Object.assign(new Error('no such file'), { code: 'ENOENT' }), 'ENOENT'],
    [new Error('plain'), 'unknown'],
    [{ code: 42 }, 'unknown'],
    ['a string', 'unknown'],
    [null, 'unknown'],
    [undefined, 'unknown'],
  ];
  for (const [err, expected] of cases) assert.equal(mintFailureReason(err), expected, String(err));
});
