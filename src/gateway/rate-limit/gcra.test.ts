import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertGcraInput, GCRA_MIN_INTERVAL_MS, gcra, gcraDecision } from './gcra.ts';

describe('gcra', () => {
  const policy = { limit: 3, periodMs: 3_000 }; // interval 1 s

  test('admits a burst of limit, then one per interval; denials leave the TAT alone', () => {
    let tat: number | undefined;
    const at = (now: number) => {
      const d = gcra(policy, tat, now);
      if (d.allowed) tat = d.tat;
      return d;
    };
    assert.deepEqual(
      [0, 0, 0, 0].map((now) => at(now).allowed),
      [true, true, true, false],
    );
    const denied = gcra(policy, tat, 0);
    assert.equal(denied.tat, tat, 'a denial returns the stored TAT unchanged');
    assert.equal(denied.retryAfterMs, 1_000);
    assert.equal(denied.remaining, 0);
    assert.equal(at(999).allowed, false);
    assert.equal(at(1_000).allowed, true);
    assert.equal(at(1_000).allowed, false);
  });

  test('remaining and reset follow the TAT', () => {
    const first = gcra(policy, undefined, 10_000);
    assert.deepEqual(first, { allowed: true, tat: 11_000, remaining: 2, resetMs: 1_000, retryAfterMs: 0 });
    const second = gcra(policy, first.tat, 10_000);
    assert.deepEqual(second, { allowed: true, tat: 12_000, remaining: 1, resetMs: 2_000, retryAfterMs: 0 });
  });

  test('a TAT in the past counts as no TAT', () => {
    assert.deepEqual(gcra(policy, 5, 10_000), gcra(policy, undefined, 10_000));
  });

  test('gcraDecision rebuilds the same fields as gcra for any outcome (the Redis path relies on it)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 86_400_000 }),
        // Times as the stores pass them: relative to GCRA_EPOCH_MS, a century either way.
        fc.option(fc.double({ min: -3e12, max: 3e12, noNaN: true }), { nil: undefined }),
        fc.double({ min: -3e12, max: 3e12, noNaN: true }),
        (limit, period, stored, now) => {
          const periodMs = Math.max(period, limit * GCRA_MIN_INTERVAL_MS);
          const p = { limit, periodMs };
          const d = gcra(p, stored, now);
          assert.deepEqual(gcraDecision(p, d.allowed, d.tat, now), d);
          assert.ok(d.remaining >= 0 && d.remaining < limit);
          assert.ok(d.retryAfterMs >= 0);
        },
      ),
    );
  });

  test('hostile inputs are refused before they reach state', () => {
    const cases: [string, { limit: number; periodMs: number }, number][] = [
      ['NaN clock', policy, Number.NaN],
      ['infinite clock', policy, Number.POSITIVE_INFINITY],
      ['zero limit', { limit: 0, periodMs: 1_000 }, 0],
      ['negative limit', { limit: -1, periodMs: 1_000 }, 0],
      ['NaN limit', { limit: Number.NaN, periodMs: 1_000 }, 0],
      ['infinite limit', { limit: Number.POSITIVE_INFINITY, periodMs: 1_000 }, 0],
      ['zero period', { limit: 1, periodMs: 0 }, 0],
      ['NaN period', { limit: 1, periodMs: Number.NaN }, 0],
      ['infinite period', { limit: 1, periodMs: Number.POSITIVE_INFINITY }, 0],
      ['faster than 1 per µs', { limit: 999_999_999, periodMs: 1_000 }, 0],
    ];
    for (const [name, p, now] of cases) {
      assert.throws(() => assertGcraInput(p, now), { code: 'GW_ERR_RATE_LIMIT_INPUT' }, name);
    }
    assert.doesNotThrow(() => assertGcraInput(policy, 0));
    assert.doesNotThrow(() => assertGcraInput({ limit: 1_000_000, periodMs: 1_000 }, 0), 'exactly 1 per µs');
  });
});
