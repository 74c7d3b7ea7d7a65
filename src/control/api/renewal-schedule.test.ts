import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { SVID_RENEWAL_DEFAULTS } from './defaults.ts';
import {
  createRenewalSchedule,
  isRenewalOverdue,
  type RenewalTimings,
  renewalDelayMs,
  retryDelayMs,
} from './renewal-schedule.ts';

const TIMINGS: RenewalTimings = SVID_RENEWAL_DEFAULTS;
const HOUR = 3_600_000;
/** A one-hour certificate issued at t = 1 000 000. */
const CERT = { notBefore: 1_000_000, notAfter: 1_000_000 + HOUR };

describe('renewalDelayMs', () => {
  test('renews at ½ of the lifetime without jitter (random 0)', () => {
    assert.equal(
      renewalDelayMs(CERT, CERT.notBefore, TIMINGS, () => 0),
      HOUR / 2,
    );
  });

  test('jitter stays within [½ − jitterFraction, ½] of the lifetime for every random value', () => {
    for (const r of [0, 0.01, 0.25, 0.5, 0.75, 0.999999]) {
      const delay = renewalDelayMs(CERT, CERT.notBefore, TIMINGS, () => r);
      assert.ok(delay <= HOUR / 2, `random ${r}: ${delay}`);
      assert.ok(delay > HOUR * (1 / 2 - 1 / 10), `random ${r}: ${delay}`);
    }
    assert.equal(
      renewalDelayMs(CERT, CERT.notBefore, TIMINGS, () => 1),
      HOUR * (1 / 2 - 1 / 10),
    );
  });

  test('is measured from now, and negative once the moment has passed', () => {
    assert.equal(
      renewalDelayMs(CERT, CERT.notBefore + 1_000, TIMINGS, () => 0),
      HOUR / 2 - 1_000,
    );
    assert.ok(renewalDelayMs(CERT, CERT.notAfter, TIMINGS, () => 0) < 0);
  });
});

describe('retryDelayMs', () => {
  test('doubles per failure from retryInitialMs up to retryMaxMs (random 1: no jitter)', () => {
    const delays = [0, 1, 2, 3, 4, 5, 6].map((failures) => retryDelayMs(failures, TIMINGS, () => 1));
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
  });

  test('stays at the cap after a very long outage (no overflow to Infinity or NaN)', () => {
    for (const failures of [20, 21, 1_000, 1e9]) {
      assert.equal(
        retryDelayMs(failures, TIMINGS, () => 1),
        TIMINGS.retryMaxMs,
      );
    }
  });

  test('jitter halves the delay at most', () => {
    assert.equal(
      retryDelayMs(1, TIMINGS, () => 0),
      1_000,
    );
    for (const r of [0, 0.3, 0.7, 1]) {
      const delay = retryDelayMs(10, TIMINGS, () => r);
      assert.ok(delay >= TIMINGS.retryMaxMs / 2 && delay <= TIMINGS.retryMaxMs, `random ${r}: ${delay}`);
    }
  });
});

describe('isRenewalOverdue', () => {
  test('true once less than a quarter of the lifetime is left, and after expiry', () => {
    const quarter = CERT.notAfter - HOUR / 4;
    assert.equal(isRenewalOverdue(CERT, CERT.notBefore + HOUR / 2, TIMINGS), false);
    assert.equal(isRenewalOverdue(CERT, quarter, TIMINGS), false);
    assert.equal(isRenewalOverdue(CERT, quarter + 1, TIMINGS), true);
    assert.equal(isRenewalOverdue(CERT, CERT.notAfter + 1, TIMINGS), true);
  });
});

describe('createRenewalSchedule (fake clock)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: CERT.notBefore }));
  afterEach(() => mock.timers.reset());

  const start = (timings?: Partial<RenewalTimings>) => {
    const due: number[] = [];
    const schedule = createRenewalSchedule({
      renew: async () => {
        due.push(Date.now());
      },
      timings,
      clock: () => Date.now(),
      random: () => 0,
    });
    return { schedule, due };
  };

  test('renewLater fires once, at ½ of the lifetime', () => {
    const { schedule, due } = start();
    schedule.renewLater(CERT);
    mock.timers.tick(HOUR / 2 - 1);
    assert.deepEqual(due, []);
    mock.timers.tick(1);
    assert.deepEqual(due, [CERT.notBefore + HOUR / 2]);
    mock.timers.tick(HOUR);
    assert.equal(due.length, 1);
  });

  /** Asserts that the armed renewal fires after exactly `ms`: not a millisecond earlier. */
  const firesAfter = (due: number[], ms: number) => {
    const count = due.length;
    mock.timers.tick(ms - 1);
    assert.equal(due.length, count, `fired before ${ms} ms`);
    mock.timers.tick(1);
    assert.equal(due.length, count + 1, `did not fire at ${ms} ms`);
  };

  test('a later renewLater replaces the armed one', () => {
    const { schedule, due } = start();
    schedule.renewLater(CERT);
    schedule.renewLater({ notBefore: CERT.notBefore, notAfter: CERT.notBefore + 10_000 });
    firesAfter(due, 5_000);
    mock.timers.tick(HOUR);
    assert.equal(due.length, 1);
  });

  test('failures back off 1 s, 2 s, 4 s … to the cap, report overdue, and succeeded() starts over', () => {
    const { schedule, due } = start({ retryInitialMs: 1_000, retryMaxMs: 4_000 });
    // random 0 halves each delay: 2 s, 4 s, then the 4 s cap, halved.
    for (const [i, wait] of [1_000, 2_000, 2_000, 2_000].entries()) {
      const before = Date.now();
      const failure = schedule.failed(CERT);
      assert.equal(failure.failures, i + 1);
      assert.equal(failure.remainingMs, CERT.notAfter - before);
      assert.equal(failure.overdue, false);
      firesAfter(due, wait);
    }
    schedule.succeeded();
    assert.equal(schedule.failed(CERT).failures, 1);
    firesAfter(due, 1_000);
  });

  test('failed() reports overdue below a quarter of the lifetime left, with the time left', () => {
    const { schedule } = start();
    mock.timers.tick(HOUR * 0.75 + 1);
    const failure = schedule.failed(CERT);
    assert.equal(failure.overdue, true);
    assert.equal(failure.remainingMs, HOUR / 4 - 1);
    mock.timers.tick(HOUR);
    assert.ok(schedule.failed(CERT).remainingMs < 0);
  });

  test('failedFirst counts and returns the backoff without arming anything', () => {
    const { schedule, due } = start();
    assert.deepEqual(schedule.failedFirst(), { failures: 1, delayMs: 1_000 });
    assert.deepEqual(schedule.failedFirst(), { failures: 2, delayMs: 2_000 });
    mock.timers.tick(HOUR);
    assert.deepEqual(due, []);
  });

  test('close() disarms, and nothing is armed after it', () => {
    const { schedule, due } = start();
    schedule.renewLater(CERT);
    schedule.close();
    assert.equal(schedule.closed, true);
    schedule.renewLater(CERT);
    schedule.failed(CERT);
    mock.timers.tick(2 * HOUR);
    assert.deepEqual(due, []);
  });

  test('a rejected renewal does not escape the timer', async () => {
    const schedule = createRenewalSchedule({
      renew: () => Promise.reject(new Error('down')),
      clock: () => Date.now(),
      random: () => 0,
    });
    schedule.renewLater(CERT);
    mock.timers.tick(HOUR);
    await new Promise((resolve) => setImmediate(resolve));
  });
});
