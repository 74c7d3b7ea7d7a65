import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { CallerRule } from '../../core/runtime.ts';
import {
  type CallerRules,
  callersDigest,
  canonicalCallers,
  newPolicyEpoch,
  POLICY_DIGEST_PATTERN,
  POLICY_EPOCH_PATTERN,
} from './digest.ts';

const TD = 'spiffe://shop.local/svc';

const rule = fc.record({
  methods: fc.array(fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE'), { minLength: 1, maxLength: 4 }),
  paths: fc.array(fc.constantFrom('/a', '/a/*', '/b', '/b/**', '/c'), { minLength: 1, maxLength: 4 }),
});
const callers = fc.dictionary(
  fc.constantFrom(`${TD}/orders`, `${TD}/gateway`, `${TD}/catalog`, `${TD}/audit`),
  fc.array(rule, { minLength: 1, maxLength: 3 }),
);

const shuffled = <T>(items: readonly T[], seed: number): T[] =>
  items
    .map((item, i) => ({ item, key: (i * 7919 + seed) % 104729 }))
    .sort((a, b) => a.key - b.key)
    .map(({ item }) => item);

/** The same rules reordered every way the canonical form forgets (callers, rules, methods, paths, duplicates). */
function reorder(rules: CallerRules, seed: number): CallerRules {
  const out: CallerRules = {};
  for (const id of shuffled(Object.keys(rules), seed)) {
    const list = rules[id] ?? [];
    out[id] = shuffled([...list, ...list.slice(0, 1)], seed).map(
      (r): CallerRule => ({
        methods: shuffled([...r.methods, ...r.methods], seed),
        paths: shuffled(r.paths, seed + 1),
      }),
    );
  }
  return out;
}

test('callersDigest: equal for the same rules in any order, with duplicates; the canonical form is a fixed point', () => {
  fc.assert(
    fc.property(callers, fc.nat(), (rules, seed) => {
      const digest = callersDigest(rules);
      assert.match(digest, POLICY_DIGEST_PATTERN);
      assert.equal(callersDigest(reorder(rules, seed)), digest);
      const canonical = canonicalCallers(Object.entries(rules));
      assert.deepEqual(canonicalCallers(Object.entries(canonical)), canonical);
      assert.equal(callersDigest(canonical), digest);
    }),
  );
});

test('callersDigest: any grant added or removed changes it', () => {
  const base: CallerRules = { [`${TD}/orders`]: [{ methods: ['POST'], paths: ['/charges'] }] };
  const others: CallerRules[] = [
    {},
    { [`${TD}/orders`]: [] },
    { [`${TD}/orders`]: [{ methods: ['POST', 'PUT'], paths: ['/charges'] }] },
    { [`${TD}/orders`]: [{ methods: ['POST'], paths: ['/charges', '/refunds'] }] },
    { [`${TD}/orders`]: [{ methods: ['POST'], paths: ['/charges/*'] }] },
    { [`${TD}/catalog`]: [{ methods: ['POST'], paths: ['/charges'] }] },
    { ...base, [`${TD}/catalog`]: [{ methods: ['GET'], paths: ['/x'] }] },
    { [`spiffe://other.local/svc/orders`]: [{ methods: ['POST'], paths: ['/charges'] }] },
  ];
  const seen = new Set([callersDigest(base)]);
  for (const rules of others) {
    const digest = callersDigest(rules);
    assert.ok(!seen.has(digest), JSON.stringify(rules));
    seen.add(digest);
  }
});

test('newPolicyEpoch: 22 base64url characters, a new one every time', () => {
  const epochs = new Set<string>();
  for (let i = 0; i < 1_000; i += 1) {
    const epoch = newPolicyEpoch();
    assert.match(epoch, POLICY_EPOCH_PATTERN);
    epochs.add(epoch);
  }
  assert.equal(epochs.size, 1_000);
  for (const bad of [
    '',
    'a'.repeat(21),
    'a'.repeat(23),
    `${'a'.repeat(21)}=`,
    `${'a'.repeat(21)}+`,
    `${'a'.repeat(21)}\n`,
  ]) {
    assert.doesNotMatch(bad, POLICY_EPOCH_PATTERN, JSON.stringify(bad));
  }
  for (const bad of ['', 'A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), `${'a'.repeat(64)}\n`, 'g'.repeat(64)]) {
    assert.doesNotMatch(bad, POLICY_DIGEST_PATTERN, JSON.stringify(bad));
  }
});
