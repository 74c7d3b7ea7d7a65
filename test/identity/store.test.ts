/**
 * One suite, two stores: every test runs against SQLite and against the machine's PostgreSQL (a
 * schema of its own per run, dropped at the end). The atomic operations are raced for real: many
 * concurrent calls, exactly one winner.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { isRampartError } from '../../src/core/errors.ts';
import type { AccountRecord, IdentityStore, SigningKeyRecord } from '../../src/identity/store/store.ts';
import { requireService } from '../helpers/require-service.ts';
import { type StoreKind, type TestKek, type TestStore, testKek, testStore } from './harness.ts';

const CONCURRENCY = 25;

function account(overrides: Partial<AccountRecord> = {}): AccountRecord {
  const id = randomBytes(8).toString('hex');
  return {
    id,
    username: `user-${id}`,
    passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA',
    roles: ['user'],
    disabled: false,
    mfaRequired: false,
    totpSecret: null,
    totpEnrolledAt: null,
    totpLastStep: null,
    createdAt: 1,
    updatedAt: 1,
    ...overrides,
  };
}

function key(kid: string, state: SigningKeyRecord['state']): SigningKeyRecord {
  return {
    kid,
    alg: 'ES256',
    state,
    publicJwk: { kty: 'EC', kid },
    privateJwk: Buffer.from(`sealed-${kid}`),
    createdAt: 1,
    stateSince: 1,
  };
}

for (const kind of ['sqlite', 'postgres'] as StoreKind[]) {
  describe(`identity store: ${kind}`, () => {
    let keks: TestKek;
    let stores: TestStore | null = null;
    let store: IdentityStore;

    before(() => {
      keks = testKek();
    });
    after(async () => {
      await stores?.cleanup();
      keks.cleanup();
    });

    /** Opens the store on first use; for PostgreSQL, skips (or fails under CI) when it is not reachable. */
    const it = (name: string, fn: () => Promise<void>) =>
      test(name, async (t) => {
        if (!stores) {
          const url = kind === 'postgres' ? await requireService(t, 'postgres') : null;
          if (kind === 'postgres' && !url) return;
          stores = await testStore(kind, keks.dir, url);
          store = stores.store;
        }
        await fn();
      });

    it('artifacts: upsert, find, expiry, uid and user-code lookups', async () => {
      const now = Date.now();
      await store.upsertArtifact({
        model: 'Session',
        id: 's1',
        payload: { uid: 'u1', accountId: 'a' },
        grantId: null,
        uid: 'u1',
        userCode: null,
        expiresAt: now + 60_000,
      });
      assert.deepEqual(await store.findArtifact('Session', 's1', now), { uid: 'u1', accountId: 'a' });
      assert.deepEqual(await store.findArtifactByUid('Session', 'u1', now), { uid: 'u1', accountId: 'a' });
      assert.equal(await store.findArtifact('Session', 's1', now + 60_000), undefined, 'expired is gone');
      assert.equal(await store.findArtifact('Grant', 's1', now), undefined, 'models are separate');
      await store.upsertArtifact({
        model: 'DeviceCode',
        id: 'd1',
        payload: { userCode: 'ABCD' },
        grantId: null,
        uid: null,
        userCode: 'ABCD',
        expiresAt: null,
      });
      assert.deepEqual(await store.findArtifactByUserCode('DeviceCode', 'ABCD', now), { userCode: 'ABCD' });
      await store.destroyArtifact('DeviceCode', 'd1');
      assert.equal(await store.findArtifact('DeviceCode', 'd1', now), undefined);
      assert.ok((await store.purgeExpired(now + 120_000)) >= 1);
    });

    it('consume is atomic: of many concurrent consumers exactly one wins, and consumption sticks', async () => {
      const now = Date.now();
      await store.upsertArtifact({
        model: 'AuthorizationCode',
        id: 'c-race',
        payload: { grantId: 'g-race' },
        grantId: 'g-race',
        uid: null,
        userCode: null,
        expiresAt: now + 60_000,
      });
      const results = await Promise.all(
        Array.from({ length: CONCURRENCY }, () => store.consumeArtifact('AuthorizationCode', 'c-race', now)),
      );
      assert.equal(results.filter((r) => r.consumed).length, 1);
      assert.ok(results.every((r) => r.grantId === 'g-race'));
      const found = await store.findArtifact('AuthorizationCode', 'c-race', now);
      assert.equal(found?.['consumed'], Math.floor(now / 1000));
      // A later upsert of the same artifact (oidc-provider re-saves some models) cannot un-consume it.
      await store.upsertArtifact({
        model: 'AuthorizationCode',
        id: 'c-race',
        payload: { grantId: 'g-race' },
        grantId: 'g-race',
        uid: null,
        userCode: null,
        expiresAt: now + 60_000,
      });
      assert.equal((await store.consumeArtifact('AuthorizationCode', 'c-race', now)).consumed, false);
      assert.deepEqual(await store.consumeArtifact('AuthorizationCode', 'missing', now), {
        consumed: false,
        grantId: null,
      });
    });

    it('revokeGrant removes the grant’s artifacts, and the grant itself only when asked', async () => {
      const now = Date.now();
      const put = (model: string, id: string, grantId: string | null) =>
        store.upsertArtifact({ model, id, payload: {}, grantId, uid: null, userCode: null, expiresAt: now + 60_000 });
      await put('Grant', 'g1', null);
      await put('RefreshToken', 'r1', 'g1');
      await put('AuthorizationCode', 'c1', 'g1');
      await put('RefreshToken', 'r2', 'g2');
      assert.equal(await store.revokeGrant('g1', false), 2);
      assert.ok(await store.findArtifact('Grant', 'g1', now));
      assert.equal(await store.findArtifact('RefreshToken', 'r1', now), undefined);
      assert.ok(await store.findArtifact('RefreshToken', 'r2', now), 'other grants untouched');
      await put('RefreshToken', 'r3', 'g1');
      assert.equal(await store.revokeGrant('g1', true), 2);
      assert.equal(await store.findArtifact('Grant', 'g1', now), undefined);
    });

    it('accounts: create, unique usernames, find, list, update', async () => {
      const a = account({ totpSecret: Buffer.from([1, 2, 3]) });
      await store.createAccount(a);
      await assert.rejects(store.createAccount(account({ username: a.username })), (err) =>
        isRampartError(err, 'IDP_ERR_CONFLICT'),
      );
      assert.deepEqual(await store.findAccount(a.id), a);
      assert.deepEqual(await store.findAccountByUsername(a.username), a);
      assert.equal(await store.findAccountByUsername(`${a.username}x`), undefined);
      assert.ok((await store.listAccounts()).some((x) => x.id === a.id));
      assert.equal(await store.updateAccount(a.id, { disabled: true, roles: ['admin'], totpSecret: null }), true);
      const updated = (await store.findAccount(a.id))!;
      assert.equal(updated.disabled, true);
      assert.deepEqual(updated.roles, ['admin']);
      assert.equal(updated.totpSecret, null);
      assert.equal(await store.updateAccount('nobody', { disabled: true }), false);
    });

    it('TOTP steps only move forward, once each, under concurrency', async () => {
      const a = account();
      await store.createAccount(a);
      const results = await Promise.all(Array.from({ length: CONCURRENCY }, () => store.useTotpStep(a.id, 1000)));
      assert.equal(results.filter(Boolean).length, 1, 'one step, one use');
      assert.equal(await store.useTotpStep(a.id, 999), false, 'an older step is refused');
      assert.equal(await store.useTotpStep(a.id, 1001), true);
      assert.equal((await store.findAccount(a.id))!.totpLastStep, 1001);
    });

    it('recovery codes are single use under concurrency, and replaced as a set', async () => {
      const a = account();
      await store.createAccount(a);
      await store.replaceRecoveryCodes(a.id, ['h1', 'h2', 'h3']);
      assert.equal(await store.countRecoveryCodes(a.id), 3);
      const results = await Promise.all(Array.from({ length: CONCURRENCY }, () => store.useRecoveryCode(a.id, 'h2')));
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal(await store.countRecoveryCodes(a.id), 2);
      await store.replaceRecoveryCodes(a.id, ['h9']);
      assert.equal(await store.useRecoveryCode(a.id, 'h1'), false);
      assert.equal(await store.useRecoveryCode(a.id, 'h9'), true);
    });

    it('clients: create, conflict, update, list', async () => {
      const clientId = `c-${randomBytes(4).toString('hex')}`;
      await store.createClient({
        clientId,
        metadata: { grant_types: ['client_credentials'] },
        secret: Buffer.from('sealed'),
        disabled: false,
        createdAt: 1,
        updatedAt: 1,
      });
      await assert.rejects(
        store.createClient({ clientId, metadata: {}, secret: null, disabled: false, createdAt: 1, updatedAt: 1 }),
        (err) => isRampartError(err, 'IDP_ERR_CONFLICT'),
      );
      assert.deepEqual((await store.findClient(clientId))!.secret, Buffer.from('sealed'));
      assert.equal(await store.updateClient(clientId, { secret: Buffer.from('new'), disabled: true }), true);
      const c = (await store.findClient(clientId))!;
      assert.deepEqual([c.secret, c.disabled], [Buffer.from('new'), true]);
      assert.ok((await store.listClients()).some((x) => x.clientId === clientId));
      assert.equal(await store.updateClient('nope', { disabled: true }), false);
    });

    it('key sets are replaced with optimistic concurrency: concurrent writers, one wins', async () => {
      const version = await store.keysVersion();
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          store.replaceKeys([key(`k${i}`, 'current'), key(`n${i}`, 'next')], version),
        ),
      );
      const winners = results.filter((r) => r !== null);
      assert.equal(winners.length, 1);
      assert.equal(winners[0], version + 1);
      assert.equal(await store.keysVersion(), version + 1);
      const keys = await store.listKeys();
      assert.equal(keys.length, 2);
      assert.deepEqual(keys.map((k) => k.state).sort(), ['current', 'next']);
      assert.ok(Buffer.isBuffer(keys[0]!.privateJwk));
    });

    it('throttle counters are compare-and-set', async () => {
      const k = `acct:${randomBytes(4).toString('hex')}`;
      assert.equal(await store.getThrottle(k), undefined);
      const first = { failures: 1, lastFailureAt: 10, notBefore: 10 };
      const racers = await Promise.all(Array.from({ length: CONCURRENCY }, () => store.casThrottle(k, 0, first)));
      assert.equal(racers.filter(Boolean).length, 1);
      assert.deepEqual(await store.getThrottle(k), first);
      assert.equal(await store.casThrottle(k, 0, first), false, 'the row exists now');
      assert.equal(await store.casThrottle(k, 1, { failures: 2, lastFailureAt: 20, notBefore: 30 }), true);
      assert.equal(await store.casThrottle(k, 1, { failures: 2, lastFailureAt: 20, notBefore: 30 }), false);
      await store.clearThrottle(k);
      assert.equal(await store.getThrottle(k), undefined);
    });

    it('settings are initialised once', async () => {
      const name = `s-${randomBytes(4).toString('hex')}`;
      const values = await Promise.all(
        Array.from({ length: 8 }, (_, i) => store.initSetting(name, Buffer.from(`value-${i}`))),
      );
      assert.equal(new Set(values.map((v) => v.toString())).size, 1, 'every caller sees the one stored value');
    });
  });
}
