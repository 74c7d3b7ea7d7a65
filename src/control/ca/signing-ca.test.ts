import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RampartError } from '../../core/errors.ts';
import { openCertificateAuthority } from './authority.ts';
import { CaStore, openCaDatabase } from './database.ts';
import { CA_ERRORS } from './errors.ts';
import { caKeyContext, rewrapCaKeys } from './signing-ca.ts';
import { makeCsr, openTestCa, testKek } from './testing.ts';

/** A CA with two live keys (active, and the retiring one that signed a live SVID). */
async function twoKeyCa(t: import('node:test').TestContext) {
  const test = await openTestCa();
  t.after(() => test.cleanup());
  await test.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
  await test.ca.rotateNow({ immediate: true });
  test.ca.close();
  return test;
}

function wrappedKeys(path: string): string[] {
  const store = new CaStore(openCaDatabase(path));
  try {
    return store.liveAuthorities().map((a) => Buffer.from(a.wrappedKey!).toString('hex'));
  } finally {
    store.close();
  }
}

test('rewrapCaKeys: every live key moves to the new KEK, certificates untouched; a rerun keeps them', async (t) => {
  const ca = await twoKeyCa(t);
  const next = testKek();
  t.after(() => next.destroy());
  const store = new CaStore(openCaDatabase(ca.databasePath));
  const certificates = store.liveAuthorities().map((a) => Buffer.from(a.certificate).toString('hex'));
  assert.deepEqual(rewrapCaKeys(store, ca.kek, next), { rewrapped: 2, kept: 0 });
  assert.deepEqual(rewrapCaKeys(store, ca.kek, next), { rewrapped: 0, kept: 2 }, 'a rerun changes nothing');
  assert.deepEqual(
    store.liveAuthorities().map((a) => Buffer.from(a.certificate).toString('hex')),
    certificates,
  );
  for (const row of store.liveAuthorities())
    next.unwrap(row.wrappedKey!, caKeyContext(row.slot, row.generation)).fill(0);
  store.close();
  const reopened = await openCertificateAuthority({
    trustDomain: 'shop.local',
    databasePath: ca.databasePath,
    kek: next,
    signingThreads: 0,
  });
  try {
    const svid = await reopened.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
    assert.equal(svid.spiffeId, 'spiffe://shop.local/svc/orders');
  } finally {
    reopened.close();
  }
  await assert.rejects(
    openCertificateAuthority({
      trustDomain: 'shop.local',
      databasePath: ca.databasePath,
      kek: ca.kek,
      signingThreads: 0,
    }),
    (err) => {
      assert.ok(err instanceof RampartError);
      assert.equal(err.code, CA_ERRORS.sealed);
      assert.equal(err.detail?.['sealedBy'], next.id, 'the refusal names the KEK that sealed the key');
      assert.equal(err.detail?.['kekId'], ca.kek.id);
      return true;
    },
  );
});

test('rewrapCaKeys is atomic: a key under neither KEK, or altered, refuses it and nothing changes', async (t) => {
  const third = testKek();
  const next = testKek();
  t.after(() => {
    third.destroy();
    next.destroy();
  });
  const cases: [string, (sealed: Uint8Array, context: string) => Uint8Array, string, string | undefined][] = [
    [
      'sealed by a third KEK',
      (_sealed, context) => third.wrap(Buffer.alloc(8, 1), context),
      'KEK_ERR_WRONG_KEY',
      third.id,
    ],
    [
      'a byte flipped',
      (sealed) => {
        const altered = Buffer.from(sealed);
        altered[altered.length - 1]! ^= 1;
        return altered;
      },
      'KEK_ERR_UNWRAP',
      undefined,
    ],
  ];
  for (const [name, damage, kekError, sealedBy] of cases) {
    const ca = await twoKeyCa(t);
    const store = new CaStore(openCaDatabase(ca.databasePath));
    try {
      // The second (newest) key damaged; the first is processed first and must not stay re-wrapped.
      const newest = store.liveAuthorities()[1]!.generation;
      store.rewrapKeys((row) =>
        row.generation === newest ? damage(row.wrappedKey, caKeyContext(row.slot, row.generation)) : null,
      );
      const before = wrappedKeys(ca.databasePath);
      assert.throws(
        () => rewrapCaKeys(store, ca.kek, next),
        (err) => {
          assert.ok(err instanceof RampartError, name);
          assert.equal(err.code, CA_ERRORS.sealed, name);
          assert.equal(err.detail?.['kekError'], kekError, name);
          assert.equal(err.detail?.['sealedBy'], sealedBy, name);
          return true;
        },
      );
      assert.deepEqual(wrappedKeys(ca.databasePath), before, `${name}: nothing changed`);
    } finally {
      store.close();
    }
  }
});
