import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { RampartError } from '../core/errors.ts';
import {
  CIRCUIT_BREAKER_DEFAULTS,
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitPermit,
  type CircuitState,
  isUpstreamFailure,
} from './circuit-breaker.ts';

function clocked(options: Partial<CircuitBreakerOptions> = {}) {
  let now = 1_000_000;
  const transitions: string[] = [];
  const breaker = new CircuitBreaker(
    options,
    () => now,
    (from, to) => transitions.push(`${from}>${to}`),
  );
  return {
    breaker,
    transitions,
    advance: (ms: number) => {
      now += ms;
    },
    fail: (n = 1) => {
      for (let i = 0; i < n; i++) breaker.settle(breaker.acquire(), 'failure');
    },
    succeed: (n = 1) => {
      for (let i = 0; i < n; i++) breaker.settle(breaker.acquire(), 'success');
    },
  };
}

describe('circuit breaker', () => {
  test('opens after K consecutive failures and refuses at once while open', () => {
    const c = clocked({ consecutiveFailures: 3 });
    c.fail(2);
    assert.equal(c.breaker.state, 'closed');
    c.fail();
    assert.equal(c.breaker.state, 'open');
    assert.equal(c.breaker.acquire(), 'refused');
    c.advance(CIRCUIT_BREAKER_DEFAULTS.cooldownMs - 1);
    assert.equal(c.breaker.acquire(), 'refused', 'still cooling down');
    assert.deepEqual(c.transitions, ['closed>open']);
  });

  test('a success in between resets the consecutive count', () => {
    const c = clocked({ consecutiveFailures: 3, minimumRequests: 1000 });
    for (let i = 0; i < 10; i++) {
      c.fail(2);
      c.succeed();
    }
    assert.equal(c.breaker.state, 'closed');
  });

  test('half-open after the cooldown lets exactly one probe through; its success closes', () => {
    const c = clocked({ consecutiveFailures: 1, cooldownMs: 1_000 });
    c.fail();
    c.advance(1_000);
    assert.equal(c.breaker.state, 'half-open');
    const probe = c.breaker.acquire();
    assert.equal(probe, 'probe');
    assert.equal(c.breaker.acquire(), 'refused', 'one probe at a time');
    assert.equal(c.breaker.acquire(), 'refused');
    c.breaker.settle(probe, 'success');
    assert.equal(c.breaker.state, 'closed');
    assert.equal(c.breaker.acquire(), 'normal');
    assert.deepEqual(c.transitions, ['closed>open', 'open>half-open', 'half-open>closed']);
  });

  test('a failed probe opens the circuit for another full cooldown', () => {
    const c = clocked({ consecutiveFailures: 1, cooldownMs: 1_000 });
    c.fail();
    c.advance(1_500);
    c.breaker.settle(c.breaker.acquire(), 'failure');
    assert.equal(c.breaker.state, 'open');
    c.advance(999);
    assert.equal(c.breaker.acquire(), 'refused');
    c.advance(1);
    assert.equal(c.breaker.acquire(), 'probe');
  });

  test('an ignored probe (the client left) frees the slot for the next probe without deciding', () => {
    const c = clocked({ consecutiveFailures: 1, cooldownMs: 1_000 });
    c.fail();
    c.advance(1_000);
    c.breaker.settle(c.breaker.acquire(), 'ignored');
    assert.equal(c.breaker.state, 'half-open');
    assert.equal(c.breaker.acquire(), 'probe');
  });

  test('opens on the failure ratio once the window holds enough requests, never below the minimum', () => {
    const c = clocked({ consecutiveFailures: 100, minimumRequests: 20, failureRatio: 0.5 });
    // Alternate: never two failures in a row, half of them failures.
    for (let i = 0; i < 9; i++) {
      c.succeed();
      c.fail();
    }
    c.succeed();
    assert.equal(c.breaker.state, 'closed', '19 requests: below the minimum');
    c.fail();
    assert.equal(c.breaker.state, 'open', '20 requests, 10 failed');
  });

  test('below the ratio stays closed', () => {
    const c = clocked({ consecutiveFailures: 100, minimumRequests: 20, failureRatio: 0.5 });
    for (let i = 0; i < 50; i++) {
      c.succeed(2);
      c.fail();
    }
    assert.equal(c.breaker.state, 'closed');
  });

  test('failures older than the window are forgotten', () => {
    const d = clocked({ consecutiveFailures: 100, minimumRequests: 4, failureRatio: 0.5, windowMs: 10_000 });
    d.fail(2);
    d.advance(11_000);
    d.succeed(2);
    assert.equal(d.breaker.state, 'closed', 'the two old failures left the window: 0 of 2');
    d.fail(2);
    assert.equal(d.breaker.state, 'open', '2 of 4 within the window');
  });

  test('requests granted before the circuit opened never decide its state afterwards', () => {
    const c = clocked({ consecutiveFailures: 2, cooldownMs: 1_000 });
    const early = c.breaker.acquire();
    c.fail(2);
    assert.equal(c.breaker.state, 'open');
    c.advance(1_000);
    const probe = c.breaker.acquire();
    assert.equal(probe, 'probe');
    c.breaker.settle(early, 'success');
    assert.equal(c.breaker.state, 'half-open', 'only the probe closes the circuit');
    c.breaker.settle(probe, 'failure');
    assert.equal(c.breaker.state, 'open');
  });

  test('refuses options that would never open or never close', () => {
    for (const bad of [
      { consecutiveFailures: 0 },
      { consecutiveFailures: 1.5 },
      { failureRatio: 0 },
      { failureRatio: 1.1 },
      { failureRatio: Number.NaN },
      { minimumRequests: 0 },
      { windowMs: 5 },
      { windowMs: Number.POSITIVE_INFINITY },
      { cooldownMs: 0 },
      { cooldownMs: Number.NaN },
    ]) {
      assert.throws(
        () => new CircuitBreaker(bad),
        (err: unknown) => err instanceof RampartError && err.code === 'GW_ERR_CIRCUIT_CONFIG',
        JSON.stringify(bad),
      );
    }
  });

  test('what counts against a service: transport errors, not aborts or Rampart denials', () => {
    const codes = (code: string) => Object.assign(new Error('x'), { code });
    assert.equal(isUpstreamFailure(codes('ECONNREFUSED')), true);
    assert.equal(isUpstreamFailure(codes('UND_ERR_HEADERS_TIMEOUT')), true);
    assert.equal(isUpstreamFailure(codes('UND_ERR_SOCKET')), true);
    assert.equal(isUpstreamFailure(codes('UND_ERR_ABORTED')), false);
    assert.equal(isUpstreamFailure(new DOMException('gone', 'AbortError')), false);
    assert.equal(isUpstreamFailure(new RampartError('GW_ERR_BODY_TOO_LARGE', 'x', { status: 413 })), false);
  });

  test('property: at most one probe out, nothing granted while cooling down, K failures in a row open', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const) }),
      fc.record({
        kind: fc.constant('settle' as const),
        index: fc.nat(),
        outcome: fc.constantFrom('success' as const, 'failure' as const, 'ignored' as const),
      }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 3_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        let now = 0;
        let openedAt = -1;
        const breaker = new CircuitBreaker(
          { consecutiveFailures: 3, cooldownMs: 1_000, minimumRequests: 5, windowMs: 2_000 },
          () => now,
          (_from, to: CircuitState) => {
            if (to === 'open') openedAt = now;
          },
        );
        const out: CircuitPermit[] = [];
        let runOfFailures = 0;
        for (const o of ops) {
          if (o.kind === 'advance') now += o.ms;
          else if (o.kind === 'acquire') {
            const permit = breaker.acquire();
            if (permit !== 'refused') {
              assert.ok(openedAt < 0 || now - openedAt >= 1_000 || breaker.state === 'closed');
              out.push(permit);
            }
            assert.ok(out.filter((p) => p === 'probe').length <= 1, 'one probe at a time');
          } else if (out.length > 0) {
            const [permit] = out.splice(o.index % out.length, 1);
            const before = breaker.state;
            breaker.settle(permit!, o.outcome);
            if (permit === 'normal' && before === 'closed' && o.outcome !== 'ignored') {
              runOfFailures = o.outcome === 'failure' ? runOfFailures + 1 : 0;
              if (runOfFailures >= 3) assert.notEqual(breaker.state, 'closed');
            }
            if (breaker.state !== 'closed') runOfFailures = 0;
          }
        }
      }),
    );
  });
});
