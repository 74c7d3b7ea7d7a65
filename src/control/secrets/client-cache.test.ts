import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRampartError } from '../../core/errors.ts';
import { createSecretCache, type SecretCacheOptions } from './client-cache.ts';
import { SEC_ERRORS, secError } from './errors.ts';

/** A fake control plane: a current version per name, a call counter, and a switchable failure. */
function backend() {
  const state = {
    versions: new Map<string, { version: number; text: string }>([['db', { version: 1, text: 'one' }]]),
    calls: 0,
    fail: null as Error | null,
    gate: null as Promise<void> | null,
    handed: [] as Buffer[],
  };
  const fetch: SecretCacheOptions['fetch'] = async (name) => {
    state.calls++;
    if (state.gate) await state.gate;
    if (state.fail) throw state.fail;
    const v = state.versions.get(name);
    if (!v) throw secError(SEC_ERRORS.notFound);
    const value = Buffer.from(v.text);
    state.handed.push(value);
    return { version: v.version, value };
  };
  return { state, fetch };
}

function clock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe('secret cache', () => {
  test('serves from cache within the TTL, fetches after it', async () => {
    const { state, fetch } = backend();
    const c = clock();
    const cache = createSecretCache({ fetch, ttlMs: 1000, now: c.now });
    assert.equal((await cache.get('db')).value.toString(), 'one');
    await cache.get('db');
    assert.equal(state.calls, 1);
    c.advance(1000);
    await cache.get('db');
    assert.equal(state.calls, 2);
  });

  test('follows rotation: a new version replaces the value, zeroes the old copy, and is announced', async () => {
    const { state, fetch } = backend();
    const c = clock();
    const rotations: unknown[] = [];
    const cache = createSecretCache({ fetch, ttlMs: 1000, now: c.now, onRotate: (n, ch) => rotations.push([n, ch]) });
    const first = await cache.get('db');
    state.versions.set('db', { version: 2, text: 'two' });
    assert.equal((await cache.get('db')).value.toString(), 'one', 'within the TTL the old value is still served');
    c.advance(1001);
    const second = await cache.get('db');
    assert.equal(second.version, 2);
    assert.equal(second.value.toString(), 'two');
    assert.equal(cache.version('db'), 2);
    assert.deepEqual(rotations, [['db', { from: 1, to: 2 }]]);
    assert.ok(
      state.handed[0]!.every((b) => b === 0),
      "the cache's old copy was zeroed",
    );
    assert.equal(first.value.toString(), 'one', "the caller's copy is the caller's");
  });

  test('a roll back (lower version) is followed too: the control plane wins', async () => {
    const { state, fetch } = backend();
    const c = clock();
    state.versions.set('db', { version: 5, text: 'five' });
    const cache = createSecretCache({ fetch, ttlMs: 10, now: c.now });
    await cache.get('db');
    state.versions.set('db', { version: 4, text: 'four' });
    c.advance(10);
    assert.equal((await cache.get('db')).value.toString(), 'four');
  });

  test('callers get copies: zeroing one does not touch the cache', async () => {
    const { fetch } = backend();
    const cache = createSecretCache({ fetch });
    const a = await cache.get('db');
    a.value.fill(0);
    assert.equal((await cache.get('db')).value.toString(), 'one');
  });

  test('concurrent misses share one fetch', async () => {
    const { state, fetch } = backend();
    let open!: () => void;
    state.gate = new Promise((r) => {
      open = r;
    });
    const cache = createSecretCache({ fetch });
    const all = Promise.all([cache.get('db'), cache.get('db'), cache.get('db')]);
    open();
    const values = await all;
    assert.equal(state.calls, 1);
    assert.deepEqual(
      values.map((v) => v.value.toString()),
      ['one', 'one', 'one'],
    );
  });

  test('an outage serves the stale value up to maxStaleMs, then fails', async () => {
    const { state, fetch } = backend();
    const c = clock();
    const cache = createSecretCache({ fetch, ttlMs: 100, maxStaleMs: 1000, now: c.now });
    await cache.get('db');
    state.fail = new Error('ECONNREFUSED');
    c.advance(500);
    const stale = await cache.get('db');
    assert.equal(stale.stale, true);
    assert.equal(stale.value.toString(), 'one');
    c.advance(600);
    await assert.rejects(cache.get('db'), /ECONNREFUSED/);
  });

  test('maxStaleMs 0 never serves stale values', async () => {
    const { state, fetch } = backend();
    const c = clock();
    const cache = createSecretCache({ fetch, ttlMs: 100, maxStaleMs: 0, now: c.now });
    await cache.get('db');
    state.fail = new Error('down');
    c.advance(100);
    await assert.rejects(cache.get('db'), /down/);
  });

  for (const code of [SEC_ERRORS.forbidden, SEC_ERRORS.notFound]) {
    test(`an authoritative ${code} drops the entry at once, even within the stale window`, async () => {
      const { state, fetch } = backend();
      const c = clock();
      const cache = createSecretCache({ fetch, ttlMs: 100, maxStaleMs: 60_000, now: c.now });
      await cache.get('db');
      const cached = state.handed[0]!;
      state.fail = secError(code);
      c.advance(100);
      await assert.rejects(cache.get('db'), (err) => isRampartError(err, code));
      assert.equal(cache.version('db'), null);
      assert.ok(cached.every((b) => b === 0));
      state.fail = new Error('down');
      await assert.rejects(cache.get('db'), /down/, 'nothing stale left to serve');
    });
  }

  test('invalidate during a fetch: the answer is returned but not cached', async () => {
    const { state, fetch } = backend();
    let open!: () => void;
    state.gate = new Promise((r) => {
      open = r;
    });
    const cache = createSecretCache({ fetch });
    const pending = Promise.all([cache.get('db'), cache.get('db')]);
    cache.invalidate('db');
    open();
    const [a, b] = await pending;
    assert.equal(a.value.toString(), 'one');
    assert.equal(b.value.toString(), 'one', 'every waiter gets the value before the uncached copy is zeroed');
    assert.equal(cache.version('db'), null);
    await new Promise((r) => setImmediate(r));
    assert.ok(
      state.handed[0]!.every((x) => x === 0),
      'the uncached copy was zeroed',
    );
  });

  test('clear zeroes every entry', async () => {
    const { state, fetch } = backend();
    const cache = createSecretCache({ fetch });
    await cache.get('db');
    cache.clear();
    assert.equal(cache.version('db'), null);
    assert.ok(state.handed[0]!.every((x) => x === 0));
  });

  test('a fetch that returns no version or no Buffer is an error, not a cached value', async () => {
    const cache = createSecretCache({ fetch: async () => ({ version: 1, value: 'one' as unknown as Buffer }) });
    await assert.rejects(cache.get('db'), TypeError);
    assert.equal(cache.version('db'), null);
  });

  test('options are validated', () => {
    const fetch = backend().fetch;
    assert.throws(() => createSecretCache({ fetch, ttlMs: 0 }), RangeError);
    assert.throws(() => createSecretCache({ fetch, maxStaleMs: -1 }), RangeError);
    assert.throws(() => createSecretCache({} as SecretCacheOptions), TypeError);
  });
});
