import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createTokenCache, TOKEN_CACHE_DEFAULTS, type TokenCacheOptions, tokenCacheKey } from './token-cache.ts';

describe('token cache', () => {
  let clock = 1_700_000_000_000;
  const make = <V>(options: TokenCacheOptions<V> = {}) => {
    clock = 1_700_000_000_000;
    return createTokenCache<V>({ now: () => clock, ...options });
  };

  test('the key is the SHA-256 of the token, never the token', () => {
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
    assert.equal(tokenCacheKey(token), createHash('sha256').update(token).digest('base64'));
    assert.ok(!tokenCacheKey(token).includes('eyJ'));
    assert.notEqual(tokenCacheKey(`${token}x`), tokenCacheKey(token));
  });

  test('hit until exp, miss from exp on', () => {
    const cache = make<string>();
    cache.set('t', 'identity', clock + 10_000);
    assert.equal(cache.get('t'), 'identity');
    clock += 9_999;
    assert.equal(cache.get('t'), 'identity');
    clock += 1;
    assert.equal(cache.get('t'), undefined, 'an entry never outlives exp');
    assert.equal(cache.size, 0, 'and is dropped');
  });

  test('maxTtl bounds entries of long-lived tokens', () => {
    const cache = make<string>({ maxTtlMs: 1_000 });
    cache.set('t', 'v', clock + 3_600_000);
    clock += 999;
    assert.equal(cache.get('t'), 'v');
    clock += 1;
    assert.equal(cache.get('t'), undefined);
    assert.equal(TOKEN_CACHE_DEFAULTS.maxTtlMs, 300_000);
  });

  test('expired or non-finite expiry is never stored', () => {
    const cache = make<string>();
    cache.set('past', 'v', clock - 1);
    cache.set('now', 'v', clock);
    cache.set('nan', 'v', Number.NaN);
    assert.equal(cache.size, 0);
    cache.set('inf', 'v', Number.POSITIVE_INFINITY);
    assert.equal(cache.size, 1, 'infinite exp is capped by maxTtl');
    clock += TOKEN_CACHE_DEFAULTS.maxTtlMs;
    assert.equal(cache.get('inf'), undefined);
  });

  test('isValid is asked on every hit; false drops the entry', () => {
    let valid = true;
    let asked = 0;
    const cache = make<{ kid: string }>({
      isValid: () => {
        asked++;
        return valid;
      },
    });
    cache.set('t', { kid: 'k1' }, clock + 60_000);
    assert.deepEqual(cache.get('t'), { kid: 'k1' });
    valid = false;
    assert.equal(cache.get('t'), undefined);
    assert.equal(cache.size, 0);
    valid = true;
    assert.equal(cache.get('t'), undefined, 'dropped for good, not just hidden');
    assert.equal(asked, 2);
  });

  test('bounded: the least recently used entry goes first', () => {
    const cache = make<number>({ maxEntries: 3 });
    for (const t of ['a', 'b', 'c']) cache.set(t, 1, clock + 60_000);
    assert.equal(cache.get('a'), 1); // a is now the most recent
    cache.set('d', 1, clock + 60_000); // evicts b
    assert.equal(cache.size, 3);
    assert.equal(cache.get('b'), undefined);
    assert.equal(cache.get('a'), 1);
    assert.equal(cache.get('c'), 1);
    assert.equal(cache.get('d'), 1);
    cache.set('c', 2, clock + 60_000); // overwrite refreshes, no growth
    assert.equal(cache.size, 3);
    assert.equal(cache.get('c'), 2);
  });

  test('a token in use survives at least maxEntries / 2 further insertions', () => {
    const cache = make<number>({ maxEntries: 10 });
    for (let i = 0; i < 10; i++) cache.set(`t${i}`, i, clock + 60_000);
    for (let round = 0; round < 20; round++) {
      assert.equal(cache.get('t0'), 0, `round ${round}`);
      for (let i = 0; i < 5; i++) cache.set(`r${round}-${i}`, i, clock + 60_000);
    }
    assert.equal(cache.size, 10);
    assert.equal(cache.get('t1'), undefined, 'untouched entries were evicted');
  });

  test('property: never more than maxEntries, and a hit is always a live, stored value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('set' as const),
              token: fc.integer({ min: 0, max: 12 }),
              ttl: fc.integer({ min: -5, max: 50 }),
            }),
            fc.record({ op: fc.constant('get' as const), token: fc.integer({ min: 0, max: 12 }) }),
            fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 20 }) }),
          ),
          { maxLength: 200 },
        ),
        (maxEntries, ops) => {
          const cache = make<string>({ maxEntries });
          const model = new Map<string, { value: string; until: number }>();
          let n = 0;
          for (const step of ops) {
            if (step.op === 'tick') clock += step.ms;
            else if (step.op === 'set') {
              const value = `v${n++}`;
              cache.set(`t${step.token}`, value, clock + step.ttl);
              model.set(`t${step.token}`, { value, until: clock + step.ttl });
            } else {
              const got = cache.get(`t${step.token}`);
              const expected = model.get(`t${step.token}`);
              if (got !== undefined) {
                assert.equal(got, expected?.value, 'only the latest stored value');
                assert.ok(clock < expected!.until, 'never at or after exp');
              }
            }
            assert.ok(cache.size <= maxEntries);
          }
        },
      ),
    );
  });

  test('an expired set supersedes what was cached for the token', () => {
    const cache = make<string>();
    cache.set('t', 'old', clock + 10_000);
    cache.set('t', 'new', clock - 1);
    assert.equal(cache.get('t'), undefined);
  });

  test('options are validated', () => {
    assert.throws(() => createTokenCache({ maxEntries: 0 }), TypeError);
    assert.throws(() => createTokenCache({ maxEntries: 1.5 }), TypeError);
    assert.throws(() => createTokenCache({ maxTtlMs: 0 }), TypeError);
  });
});
