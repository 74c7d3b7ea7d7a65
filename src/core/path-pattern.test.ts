import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { canonicalizePath } from './canonical-path.ts';
import { RampartError } from './errors.ts';
import {
  type CompiledPattern,
  compareSpecificity,
  compilePattern,
  matchPattern,
  patternsOverlap,
} from './path-pattern.ts';

const p = compilePattern;

function toPath(segments: readonly string[]): string {
  return `/${segments.join('/')}`;
}

/** Independent matcher over segment lists. */
function referenceMatch(pattern: CompiledPattern, segments: readonly string[]): boolean {
  const fixed = pattern.segments;
  if (pattern.rest ? segments.length < fixed.length : segments.length !== fixed.length) return false;
  return fixed.every((s, i) => s === '*' || s === segments[i]);
}

/**
 * Patterns over the literals `a` and `b`: up to 4 fixed segments and an optional `**`. Every path with
 * up to 6 segments over `a`, `b` and `c` (a literal no pattern uses) is in the universe, which makes
 * brute force exact: two patterns that overlap share a witness no longer than their longest fixed
 * part, built from their literals and `c`; a strict subset has a counterexample of that size plus one.
 */
const patternArb: fc.Arbitrary<CompiledPattern> = fc
  .tuple(fc.array(fc.constantFrom('a', 'b', '*'), { maxLength: 4 }), fc.boolean())
  .map(([segs, rest]) => compilePattern(toPath(rest ? [...segs, '**'] : segs)));

const UNIVERSE: readonly string[] = (() => {
  const out: string[] = [];
  const walk = (segs: string[]) => {
    out.push(toPath(segs));
    if (segs.length < 6) for (const s of ['a', 'b', 'c']) walk([...segs, s]);
  };
  walk([]);
  return out;
})();

describe('compilePattern', () => {
  const accepted: readonly (readonly [string, readonly string[], boolean])[] = [
    ['/', [], false],
    ['/**', [], true],
    ['/*', ['*'], false],
    ['/a', ['a'], false],
    ['/orders', ['orders'], false],
    ['/orders/*', ['orders', '*'], false],
    ['/orders/**', ['orders'], true],
    ['/orders/*/items', ['orders', '*', 'items'], false],
    ['/orders/*/**', ['orders', '*'], true],
    ['/*/*', ['*', '*'], false],
    ['/Admin', ['Admin'], false],
    ['/~user', ['~user'], false],
    ['/a%20b', ['a%20b'], false],
    ['/a%3Bb', ['a%3Bb'], false],
    ['/%C3%A9t%C3%A9', ['%C3%A9t%C3%A9'], false],
    ["/!$&'()+,=:@", ["!$&'()+,=:@"], false],
    ['/a.b/...', ['a.b', '...'], false],
  ];
  for (const [source, segments, rest] of accepted) {
    test(`accepts ${source}`, () => {
      const c = p(source);
      assert.equal(c.source, source);
      assert.deepEqual(c.segments, segments);
      assert.equal(c.rest, rest);
    });
  }

  const rejected: readonly string[] = [
    '',
    'orders',
    'orders/**',
    '*',
    '**',
    ' /a',
    // Not canonical: a pattern must be exactly what canonicalizePath produces.
    '//',
    '//a',
    '/a/',
    '/**/',
    '/orders/**/',
    '/a//b',
    '/.',
    '/..',
    '/a/.',
    '/a/..',
    '/a/./b',
    '/a/../b',
    '/%2e',
    '/%41',
    '/a%7e',
    '/a%2a',
    '/a%3bb',
    '/a%2fb',
    '/a%2F',
    '/a%5C',
    '/a%00',
    '/%',
    '/%zz',
    '/a;b',
    '/a b',
    '/a\n',
    '/a\\b',
    '/a?b',
    '/a#b',
    '/é',
    '/a\uff0fb',
    // `*` and `**` are whole segments; `**` only last.
    '/a*',
    '/*a',
    '/a*b',
    '/***',
    '/*/a**',
    '/**/a',
    '/**/**',
    '/**/*',
    '/a/**/b',
    '/*/**/*',
    '/.*',
    '/*.',
    '/%*',
    '/%2*',
  ];
  for (const source of rejected) {
    test(`rejects ${JSON.stringify(source)}`, () => {
      assert.throws(
        () => p(source),
        (err: unknown) => err instanceof RampartError && err.code === 'CFG_ERR_PATTERN' && err.status === 400,
      );
    });
  }

  test('property: every canonical path without "*" is a pattern that matches exactly itself', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[A-Za-z0-9._~-]{1,5}$/), { maxLength: 5 }), (segs) => {
        let path: string;
        try {
          path = canonicalizePath(`/${segs.join('/')}`);
        } catch {
          return; // `..` above the root
        }
        const c = p(path);
        assert.ok(matchPattern(c, path));
        assert.ok(!matchPattern(c, path === '/' ? '/x' : `${path}/x`));
      }),
    );
  });
});

describe('matchPattern', () => {
  const table: readonly (readonly [string, string, boolean])[] = [
    ['/orders/**', '/orders', true],
    ['/orders/**', '/orders/1', true],
    ['/orders/**', '/orders/1/items', true],
    ['/orders/**', '/orders/1/items/2/x', true],
    ['/orders/**', '/ordersx', false],
    ['/orders/**', '/ordersx/1', false],
    ['/orders/**', '/order', false],
    ['/orders/**', '/order/s', false],
    ['/orders/**', '/', false],
    ['/orders/**', '/Orders', false],
    ['/orders/**', '/x/orders', false],
    ['/a/*', '/a/b', true],
    ['/a/*', '/a/*', true],
    ['/a/*', '/a', false],
    ['/a/*', '/a/b/c', false],
    ['/a/*', '/ab', false],
    ['/a/*', '/b/a', false],
    ['/a/*/c', '/a/b/c', true],
    ['/a/*/c', '/a/b/d', false],
    ['/a/*/c', '/a/c', false],
    ['/*', '/a', true],
    ['/*', '/', false],
    ['/*', '/a/b', false],
    ['/', '/', true],
    ['/', '/a', false],
    ['/**', '/', true],
    ['/**', '/a', true],
    ['/**', '/a/b/c/d', true],
    ['/**', '/%2A', true],
    ['/a', '/a', true],
    ['/a', '/a/b', false],
    ['/a', '/ab', false],
    ['/a', '/A', false],
    ['/ab', '/a', false],
    ['/admin', '/Admin', false],
    ['/admin/**', '/admin%3B', false],
    ['/admin/**', '/admin.', false],
    ['/a%20b', '/a%20b', true],
    ['/a%20b', '/a b', false],
    ['/*/**', '/', false],
    ['/*/**', '/a', true],
    ['/*/**', '/a/b/c', true],
    ['/a/*/**', '/a', false],
    ['/a/*/**', '/a/b', true],
  ];
  for (const [pattern, path, expected] of table) {
    test(`${pattern} ${expected ? 'matches' : 'does not match'} ${path}`, () => {
      assert.equal(matchPattern(p(pattern), path), expected);
    });
  }

  test('property: agrees with a segment-list matcher on generated patterns and paths', () => {
    fc.assert(
      fc.property(patternArb, fc.array(fc.constantFrom('a', 'b', 'c', 'ab', '*'), { maxLength: 6 }), (pat, segs) => {
        assert.equal(matchPattern(pat, toPath(segs)), referenceMatch(pat, segs), `${pat.source} ${toPath(segs)}`);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('compareSpecificity', () => {
  // [more specific, less specific]
  const pairs: readonly (readonly [string, string])[] = [
    // literal before `*` before `**`
    ['/orders/1', '/orders/*'],
    ['/orders/*', '/orders/**'],
    ['/orders/1', '/orders/**'],
    ['/a', '/*'],
    ['/*', '/**'],
    ['/orders/1/items', '/orders/*/items'],
    ['/a/b/c', '/a/*/c'],
    ['/a/**', '/*/b'],
    ['/a/*', '/*/b'],
    // exact before `**` at the same place
    ['/orders', '/orders/**'],
    ['/', '/**'],
    ['/a/*', '/a/*/**'],
    // longer before shorter
    ['/a/b/**', '/a/**'],
    ['/a/b', '/a/**'],
    ['/a/*/**', '/a/**'],
    ['/*/**', '/**'],
    ['/a/b/c', '/a/b'],
    ['/a/b', '/a'],
    ['/a/*', '/a'],
    ['/a', '/'],
    ['/a/b/c/d', '/a/b/**'],
  ];
  for (const [more, less] of pairs) {
    test(`${more} before ${less}`, () => {
      assert.ok(compareSpecificity(p(more), p(less)) < 0);
      assert.ok(compareSpecificity(p(less), p(more)) > 0);
    });
  }

  test('equal shapes compare equal, and sorting is stable for them', () => {
    assert.equal(compareSpecificity(p('/a/*'), p('/b/*')), 0);
    assert.equal(compareSpecificity(p('/x'), p('/x')), 0);
    const sorted = ['/b/*', '/**', '/a/*', '/a/b'].map(p).sort(compareSpecificity);
    assert.deepEqual(
      sorted.map((c) => c.source),
      ['/a/b', '/b/*', '/a/*', '/**'],
    );
  });

  test('a routing table sorts most specific first', () => {
    const sources = ['/**', '/orders/**', '/orders', '/orders/*', '/orders/1', '/orders/*/items', '/*', '/'];
    const sorted = fc.sample(fc.shuffledSubarray(sources, { minLength: sources.length }), 20).map((shuffled) =>
      shuffled
        .map(p)
        .sort(compareSpecificity)
        .map((c) => c.source),
    );
    for (const s of sorted) {
      assert.deepEqual(s, ['/orders/1', '/orders/*/items', '/orders/*', '/orders', '/orders/**', '/*', '/', '/**']);
    }
  });

  test('property: a consistent total preorder (antisymmetric, transitive)', () => {
    fc.assert(
      fc.property(patternArb, patternArb, patternArb, (a, b, c) => {
        const ab = Math.sign(compareSpecificity(a, b));
        assert.equal(ab, -Math.sign(compareSpecificity(b, a)) || 0);
        if (compareSpecificity(a, b) <= 0 && compareSpecificity(b, c) <= 0) assert.ok(compareSpecificity(a, c) <= 0);
      }),
      { numRuns: 5000 },
    );
  });

  test('property: a pattern whose paths are a strict subset of another sorts first (brute force)', () => {
    let strict = 0;
    fc.assert(
      fc.property(patternArb, patternArb, (a, b) => {
        const ma = UNIVERSE.filter((path) => matchPattern(a, path));
        const mb = new Set(UNIVERSE.filter((path) => matchPattern(b, path)));
        if (ma.length < mb.size && ma.every((path) => mb.has(path))) {
          strict++;
          assert.ok(compareSpecificity(a, b) < 0, `${a.source} ⊊ ${b.source}`);
        }
      }),
      { numRuns: 5000 },
    );
    assert.ok(strict > 200, `only ${strict} strict-subset pairs generated`);
  });

  test('property: distinct overlapping patterns never compare equal (first match is deterministic)', () => {
    fc.assert(
      fc.property(patternArb, patternArb, (a, b) => {
        if (a.source !== b.source && patternsOverlap(a, b)) assert.notEqual(compareSpecificity(a, b), 0);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('patternsOverlap', () => {
  const table: readonly (readonly [string, string, boolean])[] = [
    ['/a', '/a', true],
    ['/a', '/b', false],
    ['/a', '/*', true],
    ['/a', '/**', true],
    ['/', '/**', true],
    ['/', '/*', false],
    ['/a', '/a/**', true],
    ['/a', '/a/*', false],
    ['/a/*', '/*/b', true],
    ['/a/*', '/b/*', false],
    ['/a/**', '/b/**', false],
    ['/a/**', '/*/b/c', true],
    ['/a/b/c', '/a/*', false],
    ['/orders/**', '/orders', true],
    ['/orders/**', '/ordersx/**', false],
  ];
  for (const [x, y, expected] of table) {
    test(`${x} and ${y}: ${expected ? 'overlap' : 'disjoint'}`, () => {
      assert.equal(patternsOverlap(p(x), p(y)), expected);
      assert.equal(patternsOverlap(p(y), p(x)), expected);
    });
  }

  test('property: exact, checked against brute-force matching over every path of the universe', () => {
    let overlapping = 0;
    let disjoint = 0;
    fc.assert(
      fc.property(patternArb, patternArb, (a, b) => {
        const brute = UNIVERSE.some((path) => matchPattern(a, path) && matchPattern(b, path));
        assert.equal(patternsOverlap(a, b), brute, `${a.source} / ${b.source}`);
        assert.equal(patternsOverlap(b, a), brute);
        if (brute) overlapping++;
        else disjoint++;
      }),
      { numRuns: 10_000 },
    );
    assert.ok(overlapping > 1000 && disjoint > 1000, `overlapping ${overlapping}, disjoint ${disjoint}`);
  });
});
