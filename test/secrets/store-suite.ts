import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { compileSecretsAcl } from '../../src/control/secrets/acl.ts';
import { SEC_ERRORS } from '../../src/control/secrets/errors.ts';
import type { Label } from '../../src/control/secrets/labels.ts';
import type { SecretsService } from '../../src/control/secrets/service.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { createDevKek, type Kek } from '../../src/core/kek.ts';
import type { Backend, BackendFactory } from './backends.ts';
import { leakForms, OPERATOR, ORDERS, openTestService, PAYMENTS, RecordingSink, testKek } from './fixtures.ts';

/**
 * The storage suite, run unchanged against SQLite (store-sqlite.test.ts) and PostgreSQL
 * (store-postgres.test.ts): everything the service promises that depends on the database.
 */
export function storeSuite(kind: 'sqlite' | 'postgres', backendFor: BackendFactory, modelRuns: number): void {
  const code = (c: string) => (err: unknown) => isRampartError(err, c);
  const text = (s: { value: Buffer }) => s.value.toString();

  /** A backend and a service over it, both closed after the test. */
  async function setup(t: import('node:test').TestContext, kek: Kek = testKek()) {
    const backend = await backendFor(t);
    if (backend === null) return null;
    const audit = new RecordingSink();
    const service = await openTestService(await backend.open(), { kek, audit });
    t.after(() => service.close());
    return { backend, audit, service, kek };
  }

  /** Every stored row's encrypted parts, to compare before and after. */
  async function rows(backend: Backend) {
    const all = await backend.exec(
      'SELECT name, version, nonce, ciphertext, wrapped_key, kek_id FROM versions ORDER BY name, version',
    );
    return all.map((r) => ({
      id: `${r['name']}/${r['version']}`,
      nonce: Buffer.from(r['nonce'] as Uint8Array).toString('hex'),
      ciphertext: Buffer.from(r['ciphertext'] as Uint8Array).toString('hex'),
      wrappedKey: Buffer.from(r['wrapped_key'] as Uint8Array).toString('hex'),
      kekId: String(r['kek_id']),
    }));
  }

  describe(`secrets store (${kind})`, () => {
    test('set, stage, promote, roll back: reads follow the labels; history and list carry metadata only', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { service } = s;
      const v1 = await service.set(OPERATOR, 'db-password', Buffer.from('first'));
      assert.deepEqual(v1.labels, { current: 1, previous: null, pending: null });
      assert.equal(text(await service.read(PAYMENTS, 'db-password')), 'first');

      await service.set(OPERATOR, 'db-password', Buffer.from('second'), { stage: true });
      assert.equal(text(await service.read(PAYMENTS, 'db-password')), 'first', 'staging does not change current');
      assert.equal(text(await service.read(PAYMENTS, 'db-password', { label: 'pending' })), 'second');
      await assert.rejects(service.set(OPERATOR, 'db-password', Buffer.from('x')), code(SEC_ERRORS.label));

      assert.deepEqual(await service.promote(OPERATOR, 'db-password'), { current: 2, previous: 1, pending: null });
      assert.equal(text(await service.read(ORDERS, 'db-password')), 'second');
      assert.equal(text(await service.read(ORDERS, 'db-password', { label: 'previous' })), 'first');
      await assert.rejects(service.read(ORDERS, 'db-password', { label: 'pending' }), code(SEC_ERRORS.notFound));
      await assert.rejects(service.promote(OPERATOR, 'db-password'), code(SEC_ERRORS.label));

      assert.deepEqual(await service.rollback(OPERATOR, 'db-password'), { current: 1, previous: 2, pending: null });
      assert.equal(text(await service.read(PAYMENTS, 'db-password')), 'first');
      assert.deepEqual(await service.rollback(OPERATOR, 'db-password'), { current: 2, previous: 1, pending: null });

      const { secret, versions } = await service.history(OPERATOR, 'db-password');
      assert.equal(secret.createdBy, 'user:alice');
      assert.equal(secret.latestVersion, 2);
      assert.deepEqual(
        versions.map((v) => [v.version, v.label, v.size, v.createdBy, v.kekId]),
        [
          [1, 'previous', 5, 'user:alice', service.kekId],
          [2, 'current', 6, 'user:alice', service.kekId],
        ],
      );
      for (const v of versions)
        assert.ok(!('ciphertext' in v) && !('wrappedKey' in v), 'history carries no key material');
      assert.equal(text(await service.reveal(OPERATOR, 'db-password', { version: 1 })), 'first');

      await service.set(OPERATOR, 'api-token', Buffer.from('t'));
      const list = await service.list(OPERATOR);
      assert.deepEqual(
        list.map((r) => [r.name, r.labels.current, r.latestVersion]),
        [
          ['api-token', 1, 1],
          ['db-password', 2, 2],
        ],
      );
    });

    test('rotation due: set with an interval, restarted when current moves, unchanged by staging', async (t) => {
      const backend = await backendFor(t);
      if (!backend) return;
      let now = 1_000_000;
      const service = await openTestService(await backend.open(), { kek: testKek(), now: () => now });
      t.after(() => service.close());
      const day = 86_400_000;
      await service.set(OPERATOR, 'api-token', Buffer.from('a'), { rotationIntervalMs: 30 * day });
      let [record] = await service.list(OPERATOR);
      assert.equal(record!.rotationIntervalMs, 30 * day);
      assert.equal(record!.rotationDueAt, 1_000_000 + 30 * day);
      now += day;
      await service.set(OPERATOR, 'api-token', Buffer.from('b'), { stage: true });
      [record] = await service.list(OPERATOR);
      assert.equal(record!.rotationDueAt, 1_000_000 + 30 * day, 'a staged version is not a rotation yet');
      now += day;
      await service.promote(OPERATOR, 'api-token');
      [record] = await service.list(OPERATOR);
      assert.equal(record!.rotationDueAt, now + 30 * day);
      await service.set(OPERATOR, 'api-token', Buffer.from('c'), { rotationIntervalMs: null });
      [record] = await service.list(OPERATOR);
      assert.equal(record!.rotationIntervalMs, null);
      assert.equal(record!.rotationDueAt, null);
    });

    test("a ciphertext copied onto another secret's row fails to decrypt, and the failure is audited", async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { backend, service, audit } = s;
      await service.set(OPERATOR, 'payment-provider-key', Buffer.from('pk_live_payments'));
      await service.set(OPERATOR, 'db-password', Buffer.from('db-secret'));
      const [source] = await backend.exec(
        "SELECT wrapped_key, nonce, ciphertext FROM versions WHERE name = 'payment-provider-key' AND version = 1",
      );
      // The attacker with database access copies the whole encrypted row: key, nonce and ciphertext.
      await backend.exec("UPDATE versions SET wrapped_key = ?, nonce = ?, ciphertext = ? WHERE name = 'db-password'", [
        source!['wrapped_key'],
        source!['nonce'],
        source!['ciphertext'],
      ]);
      await assert.rejects(service.read(ORDERS, 'db-password'), code(SEC_ERRORS.decrypt));
      assert.equal(audit.events.at(-1)!.decision, 'error');
      assert.equal(audit.events.at(-1)!.reason, SEC_ERRORS.decrypt);
      // Only the ciphertext, under the row's own valid key and nonce: fails too.
      await service.set(OPERATOR, 'api-token', Buffer.from('token-value'));
      await backend.exec("UPDATE versions SET ciphertext = ? WHERE name = 'api-token'", [source!['ciphertext']]);
      await assert.rejects(service.reveal(OPERATOR, 'api-token'), code(SEC_ERRORS.decrypt));
      // The source row is untouched and still reads.
      assert.equal(text(await service.read(PAYMENTS, 'payment-provider-key')), 'pk_live_payments');
    });

    test('a version moved to another version number of the same secret fails', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { backend, service } = s;
      await service.set(OPERATOR, 'db-password', Buffer.from('old'));
      await service.set(OPERATOR, 'db-password', Buffer.from('new'));
      const [v1] = await backend.exec(
        "SELECT wrapped_key, nonce, ciphertext FROM versions WHERE name = 'db-password' AND version = 1",
      );
      await backend.exec(
        "UPDATE versions SET wrapped_key = ?, nonce = ?, ciphertext = ? WHERE name = 'db-password' AND version = 2",
        [v1!['wrapped_key'], v1!['nonce'], v1!['ciphertext']],
      );
      // A roll-back attack by row copying: current would read the old value; it fails instead.
      await assert.rejects(service.read(PAYMENTS, 'db-password'), code(SEC_ERRORS.decrypt));
    });

    test('KEK rotation re-wraps every data key without touching ciphertexts; every version stays readable', async (t) => {
      const first = testKek();
      const s = await setup(t, first);
      if (!s) return;
      const { backend, service, audit } = s;
      const values = new Map<string, string>();
      for (const name of ['db-password', 'payment-provider-key', 'api-token']) {
        for (let v = 1; v <= 3; v++) {
          const value = `${name}-v${v}-${randomBytes(4).toString('hex')}`;
          values.set(`${name}/${v}`, value);
          await service.set(OPERATOR, name, Buffer.from(value), { stage: v === 3 });
        }
      }
      const refBefore = service.auditRef('db-password', 2);
      const before = await rows(backend);
      const second = testKek();
      const result = await service.rotateKek(OPERATOR, second);
      assert.deepEqual(result, { previousKekId: first.id, kekId: second.id, versions: 9 });
      const after = await rows(backend);
      assert.equal(after.length, 9);
      for (const [i, row] of after.entries()) {
        const old = before[i]!;
        assert.equal(row.id, old.id);
        assert.equal(row.ciphertext, old.ciphertext, 'ciphertext untouched');
        assert.equal(row.nonce, old.nonce, 'nonce untouched');
        assert.notEqual(row.wrappedKey, old.wrappedKey, 'data key re-wrapped');
        assert.equal(old.kekId, first.id);
        assert.equal(row.kekId, second.id);
      }
      for (const [id, value] of values) {
        const [name, v] = id.split('/');
        assert.equal(text(await service.reveal(OPERATOR, name!, { version: Number(v) })), value);
      }
      assert.equal(service.auditRef('db-password', 2), refBefore, 'audit references survive KEK rotation');
      assert.equal(audit.events.filter((e) => e.action === 'secret.rotate_kek').length, 1);
      assert.equal(audit.events.find((e) => e.action === 'secret.rotate_kek')!.detail?.['previousKekId'], first.id);

      const history = await (await backend.open()).kekHistory();
      assert.deepEqual(
        history.map((h) => [h.kekId, h.retiredAt === null]),
        [
          [first.id, false],
          [second.id, true],
        ],
      );
      // The old KEK no longer opens the store; the new one does, and reads everything.
      await assert.rejects(openTestService(await backend.open(), { kek: first }), (err) => {
        return isRampartError(err, SEC_ERRORS.sealed) && err.detail?.['reason'] === 'wrong_key';
      });
      const reopened = await openTestService(await backend.open(), { kek: second });
      t.after(() => reopened.close());
      assert.equal(text(await reopened.read(PAYMENTS, 'db-password')), values.get('db-password/2'));
      assert.equal(reopened.auditRef('db-password', 2), refBefore);
    });

    test('KEK rotation is atomic: one data key that does not open aborts it and changes nothing', async (t) => {
      const first = testKek();
      const s = await setup(t, first);
      if (!s) return;
      const { backend, service } = s;
      await service.set(OPERATOR, 'api-token', Buffer.from('a'));
      await service.set(OPERATOR, 'db-password', Buffer.from('b'));
      await service.set(OPERATOR, 'payment-provider-key', Buffer.from('c'));
      // Corrupt the middle row's wrapped key (rows are re-wrapped in name order: one before, one after).
      const [row] = await backend.exec("SELECT wrapped_key FROM versions WHERE name = 'db-password'");
      const broken = Buffer.from(row!['wrapped_key'] as Uint8Array);
      broken[broken.length - 1]! ^= 1;
      await backend.exec("UPDATE versions SET wrapped_key = ? WHERE name = 'db-password'", [broken]);
      const before = await rows(backend);
      const metaBefore = await backend.exec('SELECT kek_id, kek_check, wrapped_audit_key FROM store_meta');
      await assert.rejects(service.rotateKek(OPERATOR, testKek()), (err) => {
        return isRampartError(err, SEC_ERRORS.kekRotation) && err.detail?.['reason'] === 'unwrap';
      });
      assert.deepEqual(await rows(backend), before);
      assert.deepEqual(await backend.exec('SELECT kek_id, kek_check, wrapped_audit_key FROM store_meta'), metaBefore);
      assert.equal(service.kekId, first.id);
      assert.equal(
        text(await service.read(PAYMENTS, 'payment-provider-key')),
        'c',
        'the service still works under the old KEK',
      );
    });

    test('reads in flight during a KEK rotation all succeed', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { service } = s;
      await service.set(OPERATOR, 'db-password', Buffer.from('steady'));
      const reads = Array.from({ length: 50 }, () => service.read(PAYMENTS, 'db-password'));
      const rotation = service.rotateKek(OPERATOR, testKek());
      const more = Array.from({ length: 50 }, () => service.read(PAYMENTS, 'db-password'));
      const results = await Promise.all([...reads, ...more]);
      await rotation;
      assert.ok(results.every((r) => r.value.toString() === 'steady'));
    });

    test('a wrong or missing KEK refuses to open with SEC_ERR_SEALED, never garbage', async (t) => {
      const kek = testKek();
      const s = await setup(t, kek);
      if (!s) return;
      const { backend, service } = s;
      await service.set(OPERATOR, 'db-password', Buffer.from('value'));
      const sealed = (reason: string) => (err: unknown) =>
        isRampartError(err, SEC_ERRORS.sealed) && err.status === 503 && err.detail?.['reason'] === reason;

      await assert.rejects(openTestService(await backend.open(), { kek: testKek() }), sealed('wrong_key'));
      const dir = mkdtempSync(join(tmpdir(), 'rampart-kek-missing-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      await assert.rejects(openTestService(await backend.open(), { kek: { file: join(dir, 'nope.key') } }), (err) => {
        return (
          sealed('kek_unavailable')(err) &&
          (err as { detail: Record<string, unknown> }).detail['kekError'] === 'KEK_ERR_MISSING'
        );
      });
      await assert.rejects(
        openTestService(await backend.open(), { kek: { env: 'UNSET_KEK', environment: {} } }),
        sealed('kek_unavailable'),
      );
      // A key file of another store (right format, right mode): wrong key.
      const other = createDevKek(join(dir, 'other.key'));
      other.kek.destroy();
      await assert.rejects(
        openTestService(await backend.open(), { kek: { file: join(dir, 'other.key') } }),
        sealed('wrong_key'),
      );

      // The check value altered in the database: refused, not re-initialised.
      const [meta] = await backend.exec('SELECT kek_check FROM store_meta');
      const check = Buffer.from(meta!['kek_check'] as Uint8Array);
      check[check.length - 1]! ^= 1;
      await backend.exec('UPDATE store_meta SET kek_check = ?', [check]);
      await assert.rejects(openTestService(await backend.open(), { kek }), sealed('check_failed'));
      // The meta wiped under existing versions: refused, never re-initialised under whatever KEK is at hand.
      await backend.exec('UPDATE store_meta SET kek_id = NULL, kek_check = NULL, wrapped_audit_key = NULL');
      await assert.rejects(openTestService(await backend.open(), { kek: testKek() }), sealed('meta_missing'));
    });

    test('two writers on two connections: one wins each version, the other gets SEC_ERR_CONFLICT', async (t) => {
      const kek = testKek();
      const backend = await backendFor(t);
      if (!backend) return;
      // A barrier in the audit sink: both writers have read the state and appended before either commits.
      let arrived = 0;
      let release!: () => void;
      const barrier = new Promise<void>((r) => {
        release = r;
      });
      const gate = async (event: { action: string }) => {
        if (event.action !== 'secret.write') return;
        if (++arrived === 2) release();
        await barrier;
      };
      const sinkA = new RecordingSink();
      const sinkB = new RecordingSink();
      const a = await openTestService(await backend.open(), { kek, audit: sinkA });
      const b = await openTestService(await backend.open(), { kek, audit: sinkB });
      t.after(() => Promise.all([a.close(), b.close()]));
      await a.set(OPERATOR, 'db-password', Buffer.from('v1'));
      sinkA.before = gate;
      sinkB.before = gate;
      const results = await Promise.allSettled([
        a.set(OPERATOR, 'db-password', Buffer.from('from-a')),
        b.set(OPERATOR, 'db-password', Buffer.from('from-b')),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      assert.equal(won.length, 1);
      assert.equal(lost.length, 1);
      assert.ok(isRampartError((lost[0] as PromiseRejectedResult).reason, SEC_ERRORS.conflict));
      const loserSink = results[0]!.status === 'rejected' ? sinkA : sinkB;
      assert.deepEqual(loserSink.actions().slice(-2), [
        'secret.write:allow:ok',
        `secret.write:error:${SEC_ERRORS.conflict}`,
      ]);
      const { versions, secret } = await a.history(OPERATOR, 'db-password');
      assert.deepEqual(
        versions.map((v) => v.version),
        [1, 2],
      );
      assert.deepEqual(secret.labels, { current: 2, previous: 1, pending: null });
      const winner = results[0]!.status === 'fulfilled' ? 'from-a' : 'from-b';
      assert.equal(text(await b.read(PAYMENTS, 'db-password')), winner);
    });

    for (const first of ['promote', 'set'] as const) {
      test(`a promote and a set racing on two connections, ${first} commits first: the other conflicts`, async (t) => {
        const kek = testKek();
        const backend = await backendFor(t);
        if (!backend) return;
        // Each writer stops in its audit append (after reading the labels, before committing) until released.
        const latch = () => {
          let open!: () => void;
          const done = new Promise<void>((r) => {
            open = r;
          });
          return { done, open };
        };
        type Gated = 'secret.promote' | 'secret.write';
        const arrived = { 'secret.promote': latch(), 'secret.write': latch() };
        const release = { 'secret.promote': latch(), 'secret.write': latch() };
        let armed = false;
        const gate = async (event: { action: string }) => {
          if (!armed || !(event.action in arrived)) return;
          arrived[event.action as Gated].open();
          await release[event.action as Gated].done;
        };
        const sinkA = new RecordingSink();
        const sinkB = new RecordingSink();
        const a = await openTestService(await backend.open(), { kek, audit: sinkA });
        const b = await openTestService(await backend.open(), { kek, audit: sinkB });
        t.after(() => Promise.all([a.close(), b.close()]));
        await a.set(OPERATOR, 'db-password', Buffer.from('v1'));
        await a.set(OPERATOR, 'db-password', Buffer.from('v2'), { stage: true });
        sinkA.before = gate;
        sinkB.before = gate;
        armed = true;
        const promote = a.promote(OPERATOR, 'db-password');
        const set = b.set(OPERATOR, 'db-password', Buffer.from('v3'), { discardPending: true });
        promote.catch(() => {});
        set.catch(() => {});
        await Promise.all([arrived['secret.promote'].done, arrived['secret.write'].done]);
        const [winner, loser, winAction, loseAction]: [Promise<unknown>, Promise<unknown>, Gated, Gated] =
          first === 'promote'
            ? [promote, set, 'secret.promote', 'secret.write']
            : [set, promote, 'secret.write', 'secret.promote'];
        release[winAction].open();
        await winner;
        release[loseAction].open();
        await assert.rejects(loser, code(SEC_ERRORS.conflict));
        const { secret, versions } = await a.history(OPERATOR, 'db-password');
        assert.deepEqual(
          secret.labels,
          first === 'promote' ? { current: 2, previous: 1, pending: null } : { current: 3, previous: 1, pending: null },
        );
        assert.equal(versions.length, first === 'promote' ? 2 : 3);
      });
    }

    test('the plaintext of a secret appears nowhere in the database after a full workflow', async (t) => {
      const s = await setup(t);
      if (!s) return;
      const { backend, service, audit } = s;
      const marker = () => Buffer.from(`PLAINTEXT-${randomBytes(12).toString('hex')}-MARKER`);
      const plaintexts = [marker(), marker(), marker(), marker()];
      const errors: unknown[] = [];
      const attempt = async (p: Promise<unknown>) => p.catch((err) => void errors.push(err));
      await service.set(OPERATOR, 'payment-provider-key', Buffer.from(plaintexts[0]!), {
        rotationIntervalMs: 86_400_000,
      });
      await service.set(OPERATOR, 'payment-provider-key', Buffer.from(plaintexts[1]!), { stage: true });
      await service.read(PAYMENTS, 'payment-provider-key', { label: 'pending' });
      await service.promote(OPERATOR, 'payment-provider-key');
      await service.rollback(OPERATOR, 'payment-provider-key');
      await service.set(OPERATOR, 'db-password', Buffer.from(plaintexts[2]!));
      await attempt(service.read(ORDERS, 'payment-provider-key'));
      await attempt(service.set(OPERATOR, 'db-password', Buffer.from(plaintexts[3]!), { stage: true }));
      await service.rotateKek(OPERATOR, testKek());
      await service.history(OPERATOR, 'payment-provider-key');
      await service.list(OPERATOR);
      audit.mode = 'reject';
      await attempt(service.read(PAYMENTS, 'db-password'));
      audit.mode = 'ok';
      for (const v of [1, 2]) await service.reveal(OPERATOR, 'payment-provider-key', { version: v });

      const dump = await backend.dump();
      assert.ok(dump.length > 0);
      const logs = Buffer.from(
        JSON.stringify(audit.events) + errors.map((e) => inspect(e, { depth: 10, showHidden: true })).join('\n'),
      );
      for (const plaintext of plaintexts) {
        for (const form of leakForms(plaintext)) {
          assert.equal(dump.indexOf(form), -1, `the database holds ${form.toString()}`);
          assert.equal(logs.indexOf(form), -1, `the audit events or errors hold ${form.toString()}`);
        }
      }
      // And the grep can find things: the ciphertext's hex is in the dump (so a leak would have been seen).
      const [row] = await backend.exec("SELECT nonce FROM versions WHERE name = 'db-password'");
      assert.notEqual(dump.indexOf(Buffer.from(row!['nonce'] as Uint8Array)), -1);
      // Events name secrets by reference only.
      assert.ok(!JSON.stringify(audit.events).includes('payment-provider-key'));
    });

    test(`labels model: random operations agree with a model of versions and labels (${modelRuns} runs)`, async (t) => {
      const backend = await backendFor(t);
      if (!backend) return;
      const kek = testKek();
      let service: SecretsService | null = null;
      let runNo = 0;
      t.after(() => service?.close());
      type Model = { values: Map<number, string>; labels: Record<Label, number | null>; latest: number };
      type Real = { service: SecretsService; name: string };
      const check = async (m: Model, r: Real, label: Label) => {
        const expected = m.labels[label];
        if (expected === null) {
          await assert.rejects(r.service.read(PAYMENTS, r.name, { label }), code(SEC_ERRORS.notFound));
        } else {
          const got = await r.service.read(PAYMENTS, r.name, { label });
          assert.equal(got.version, expected);
          assert.equal(got.value.toString(), m.values.get(expected));
        }
      };
      const commands = [
        fc
          .record({ value: fc.string({ minLength: 1, maxLength: 20 }), stage: fc.boolean(), discard: fc.boolean() })
          .map(({ value, stage, discard }) => ({
            check: () => true,
            async run(m: Model, r: Real) {
              const attempt = r.service.set(OPERATOR, r.name, Buffer.from(value), { stage, discardPending: discard });
              if (!stage && m.labels.pending !== null && !discard) {
                await assert.rejects(attempt, code(SEC_ERRORS.label));
                return;
              }
              const { version } = await attempt;
              assert.equal(version, m.latest + 1);
              m.latest = version;
              m.values.set(version, value);
              m.labels = stage
                ? { ...m.labels, pending: version }
                : { current: version, previous: m.labels.current, pending: null };
            },
            toString: () => `set(${JSON.stringify(value)}, stage=${stage}, discard=${discard})`,
          })),
        fc.constant({
          check: () => true,
          async run(m: Model, r: Real) {
            if (m.labels.pending === null) {
              await assert.rejects(r.service.promote(OPERATOR, r.name), (err) =>
                isRampartError(err, m.latest === 0 ? SEC_ERRORS.notFound : SEC_ERRORS.label),
              );
              return;
            }
            m.labels = { current: m.labels.pending, previous: m.labels.current, pending: null };
            assert.deepEqual(await r.service.promote(OPERATOR, r.name), m.labels);
          },
          toString: () => 'promote',
        }),
        fc.constant({
          check: () => true,
          async run(m: Model, r: Real) {
            if (m.labels.previous === null) {
              await assert.rejects(r.service.rollback(OPERATOR, r.name), (err) =>
                isRampartError(err, m.latest === 0 ? SEC_ERRORS.notFound : SEC_ERRORS.label),
              );
              return;
            }
            m.labels = { current: m.labels.previous, previous: m.labels.current, pending: m.labels.pending };
            assert.deepEqual(await r.service.rollback(OPERATOR, r.name), m.labels);
          },
          toString: () => 'rollback',
        }),
        fc.constantFrom<Label>('current', 'previous', 'pending').map((label) => ({
          check: () => true,
          run: (m: Model, r: Real) => check(m, r, label),
          toString: () => `read(${label})`,
        })),
      ];
      // payments may read every secret the runs create.
      const names = Array.from({ length: modelRuns + 1 }, (_, i) => `model-${i}`);
      const acl = compileSecretsAcl({
        trustDomain: 'shop.local',
        secrets: Object.fromEntries(names.map((n) => [n, { name: n, description: '' }])),
        services: { payments: { name: 'payments', run: '/x.ts', routes: [], calls: [], secrets: names, env: {} } },
      });
      service = await openTestService(await backend.open(), { kek, acl });
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 25 }), async (cmds) => {
          // Each run gets its own secret name in the one store: no cleanup between runs.
          const name = `model-${runNo++}`;
          const model: Model = {
            values: new Map(),
            labels: { current: null, previous: null, pending: null },
            latest: 0,
          };
          await fc.asyncModelRun(() => ({ model, real: { service: service!, name } }), cmds);
          for (const label of ['current', 'previous', 'pending'] as const)
            await check(model, { service: service!, name }, label);
        }),
        { numRuns: modelRuns },
      );
    });

    if (kind === 'sqlite') {
      test('the database file is private (0600)', async (t) => {
        const s = await setup(t);
        if (!s) return;
        await s.service.set(OPERATOR, 'db-password', Buffer.from('x'));
        const [row] = await s.backend.exec('PRAGMA database_list');
        const file = String(row!['file']);
        assert.equal(statSync(file).mode & 0o777, 0o600);
      });
    }
  });
}
