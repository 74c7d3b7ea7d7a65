import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { closest, didYouMean, editDistance } from './suggest.ts';

describe('editDistance', () => {
  test('known values, transpositions count as one edit', () => {
    assert.equal(editDistance('', ''), 0);
    assert.equal(editDistance('abc', ''), 3);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('routes', 'routes'), 0);
    assert.equal(editDistance('rotues', 'routes'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('audiense', 'audience'), 1);
  });
});

describe('suggestions', () => {
  const keys = ['run', 'env', 'routes', 'calls', 'secrets'];

  test('typos get the intended key', () => {
    assert.equal(closest('rotues', keys), 'routes');
    assert.equal(closest('rnu', keys), 'run');
    assert.equal(closest('secret', keys), 'secrets');
    assert.equal(closest('Routes', keys), 'routes');
    assert.equal(didYouMean('rotues', keys), 'did you mean `routes`?');
  });

  test('unrelated words get no suggestion', () => {
    assert.equal(closest('flavour', keys), undefined);
    assert.equal(closest('x', ['abc']), undefined);
    assert.equal(didYouMean('database', keys), undefined);
  });

  test('an exact match is no suggestion', () => {
    assert.equal(didYouMean('run', keys), undefined);
  });

  test('short words allow one edit, long words at most three', () => {
    assert.equal(closest('ab', ['abc']), 'abc');
    assert.equal(closest('a', ['abc']), undefined);
    assert.equal(closest('trustedproxiesss', ['trustedProxies']), 'trustedProxies');
    assert.equal(closest('trustedpro', ['trustedProxies']), undefined);
  });
});
