import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { inspect } from 'node:util';
import sodium from 'sodium-native';
import { SEC_ERRORS } from '../../src/control/secrets/errors.ts';
import type { SecretsService } from '../../src/control/secrets/service.ts';
import { openSqliteSecretsStore } from '../../src/control/secrets/sqlite-store.ts';
import type { SecretsStore } from '../../src/control/secrets/store.ts';
import { validateAuditEvent } from '../../src/core/audit-event.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { CATALOG, OPERATOR, ORDERS, openTestService, PAYMENTS, RecordingSink, testKek } from './fixtures.ts';

/**
 * The service's access control, audit and input handling, which do not depend on the backend (SQLite in
 * memory here; test/secrets/store-suite.ts runs the storage behaviour against both backends).
 */
const VALUE = 'pk_live_9f8e7d6c5b4a';

async function fresh(t: import('node:test').TestContext, options: { auditTimeoutMs?: number } = {}) {
  const audit = new RecordingSink();
  const service = await openTestService(openSqliteSecretsStore({ path: ':memory:' }), {
    kek: testKek(),
    audit,
    ...options,
  });
  t.after(() => service.close());
  await service.set(OPERATOR, 'payment-provider-key', Buffer.from(VALUE));
  await service.set(OPERATOR, 'db-password', Buffer.from('db-value'));
  audit.events = [];
  return { service, audit };
}

const is = (c: string) => (err: unknown) => isRampartError(err, c);

describe('secrets service: access by SPIFFE ID, deny by default', () => {
  const table: ReadonlyArray<readonly [string, string, string, string]> = [
    ['granted', PAYMENTS, 'payment-provider-key', 'ok'],
    ['granted (a second service, another secret)', ORDERS, 'db-password', 'ok'],
    ['not granted: another service', ORDERS, 'payment-provider-key', SEC_ERRORS.forbidden],
    ['not granted: a service with no grants', CATALOG, 'db-password', SEC_ERRORS.forbidden],
    ['not granted and does not exist', ORDERS, 'nope', SEC_ERRORS.forbidden],
    ['declared, granted to nobody, exists in the store', PAYMENTS, 'api-token', SEC_ERRORS.forbidden],
    ['another trust domain', 'spiffe://evil.local/svc/payments', 'payment-provider-key', SEC_ERRORS.forbidden],
    ['a SPIFFE ID variant', `${PAYMENTS}/`, 'payment-provider-key', SEC_ERRORS.forbidden],
    ['not a SPIFFE ID', 'payments', 'payment-provider-key', SEC_ERRORS.forbidden],
    ['empty caller', '', 'payment-provider-key', SEC_ERRORS.forbidden],
    ['an invalid secret name', PAYMENTS, '../payment-provider-key', SEC_ERRORS.forbidden],
    ['granted but never set', PAYMENTS, 'db-password-missing', SEC_ERRORS.forbidden],
  ];
  for (const [name, caller, secret, expected] of table) {
    test(name, async (t) => {
      const { service, audit } = await fresh(t);
      await service.set(OPERATOR, 'api-token', Buffer.from('t'));
      audit.events = [];
      let outcome = 'ok';
      try {
        const read = await service.read(caller, secret);
        assert.equal(read.name, secret);
      } catch (err) {
        assert.ok(isRampartError(err));
        outcome = err.code;
        if (outcome === SEC_ERRORS.forbidden) {
          assert.equal(err.status, 403);
          assert.equal(err.expose, true);
          assert.equal(err.message, 'secret access denied');
        }
      }
      assert.equal(outcome, expected);
      assert.equal(audit.events.length, 1, 'exactly one audit event');
      const event = audit.events[0]!;
      assert.equal(event.action, 'secret.read');
      assert.equal(event.decision, outcome === 'ok' ? 'allow' : 'deny');
      assert.equal(event.reason, outcome === 'ok' ? 'ok' : SEC_ERRORS.forbidden);
      if (caller.startsWith('spiffe://') && !caller.endsWith('/')) assert.deepEqual(event.actor, { spiffeId: caller });
      else assert.equal(event.detail?.['actorInvalid'], true, 'an invalid caller ID is marked, not recorded');
      assert.match(event.resource ?? '', /^secret:[0-9a-f]{64}$/);
      assert.ok(!JSON.stringify(event).includes(VALUE));
      validateAuditEvent(JSON.parse(JSON.stringify(event)));
    });
  }

  test('a refused read looks the same whether or not the secret exists (no existence oracle)', async (t) => {
    const { service, audit } = await fresh(t);
    const outcome = async (name: string) => {
      try {
        await service.read(CATALOG, name);
      } catch (err) {
        assert.ok(isRampartError(err));
        return JSON.stringify({ code: err.code, status: err.status, message: err.message, detail: err.detail });
      }
      return 'allowed';
    };
    assert.equal(await outcome('payment-provider-key'), await outcome('does-not-exist'));
    assert.deepEqual(
      audit.events.map((e) => [e.decision, e.reason, e.detail?.version]),
      [
        ['deny', SEC_ERRORS.forbidden, undefined],
        ['deny', SEC_ERRORS.forbidden, undefined],
      ],
    );
  });

  test('the ACL is checked before the selector: a refused caller with a bad label is still 403', async (t) => {
    const { service } = await fresh(t);
    await assert.rejects(
      service.read(ORDERS, 'payment-provider-key', { label: 'bogus' as never }),
      is(SEC_ERRORS.forbidden),
    );
    await assert.rejects(
      service.read(PAYMENTS, 'payment-provider-key', { label: 'bogus' as never }),
      is(SEC_ERRORS.selector),
    );
  });

  test('setAcl takes effect for the next read (a reloaded manifest revokes a grant)', async (t) => {
    const { service } = await fresh(t);
    await service.read(PAYMENTS, 'payment-provider-key');
    service.setAcl({ allows: () => false, grants: new Map() });
    await assert.rejects(service.read(PAYMENTS, 'payment-provider-key'), is(SEC_ERRORS.forbidden));
  });

  test('an allowed read is audited with an HMAC reference of name and version, request and trace ids', async (t) => {
    const { service, audit } = await fresh(t);
    const got = await service.read(PAYMENTS, 'payment-provider-key', { requestId: 'req-1', traceId: 'trace-1' });
    assert.equal(got.value.toString(), VALUE);
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    await service.read(PAYMENTS, 'payment-provider-key', { requestId: 'req-2', traceId: trace });
    assert.deepEqual(audit.events[1], {
      id: audit.events[1]!.id,
      time: audit.events[1]!.time,
      component: 'secrets',
      actor: { spiffeId: PAYMENTS },
      action: 'secret.read',
      decision: 'allow',
      reason: 'ok',
      requestId: 'req-2',
      traceId: trace,
      resource: `secret:${service.auditRef('payment-provider-key', 1)}`,
      detail: { nameRef: service.auditRef('payment-provider-key'), version: 1, label: 'current' },
    });
    assert.equal(audit.events[0]!.requestId, 'req-1');
    assert.equal(audit.events[0]!.detail?.['contextDropped'], true, "'trace-1' is not a W3C trace id: dropped");
    assert.ok(!JSON.stringify(audit.events).includes('payment-provider-key'), 'the name is not in the event');
  });
});

describe('secrets service: a read fails closed when the audit append fails', () => {
  for (const mode of ['reject', 'throw', 'hang'] as const) {
    test(`sink ${mode}s: no value, SEC_ERR_AUDIT_UNAVAILABLE`, async (t) => {
      const { service, audit } = await fresh(t, { auditTimeoutMs: 100 });
      audit.mode = mode;
      await assert.rejects(service.read(PAYMENTS, 'payment-provider-key'), (err) => {
        assert.ok(isRampartError(err, SEC_ERRORS.auditUnavailable));
        assert.equal(err.status, 503);
        assert.ok(!inspect(err, { depth: 10, showHidden: true }).includes(VALUE));
        return true;
      });
      await assert.rejects(service.reveal(OPERATOR, 'payment-provider-key'), is(SEC_ERRORS.auditUnavailable));
      await assert.rejects(service.history(OPERATOR, 'payment-provider-key'), is(SEC_ERRORS.auditUnavailable));
      await assert.rejects(service.list(OPERATOR), is(SEC_ERRORS.auditUnavailable));
      audit.mode = 'ok';
      assert.equal((await service.read(PAYMENTS, 'payment-provider-key')).value.toString(), VALUE, 'recovers');
    });
  }

  test('the decrypted value is zeroed before the refusal is thrown', async (t) => {
    const { service, audit } = await fresh(t);
    const zeroed: string[] = [];
    const original = sodium.sodium_memzero;
    const spy = mock.method(sodium, 'sodium_memzero', (buffer: Buffer) => {
      zeroed.push(Buffer.from(buffer).toString());
      original(buffer);
    });
    t.after(() => spy.mock.restore());
    audit.mode = 'reject';
    await assert.rejects(service.read(PAYMENTS, 'payment-provider-key'), is(SEC_ERRORS.auditUnavailable));
    assert.ok(zeroed.includes(VALUE), 'the plaintext buffer went through sodium_memzero');
  });

  test('a refused read stays refused (403) when its audit append fails too; the failure is on the error', async (t) => {
    const { service, audit } = await fresh(t);
    audit.mode = 'reject';
    await assert.rejects(service.read(ORDERS, 'payment-provider-key'), (err) => {
      return isRampartError(err, SEC_ERRORS.forbidden) && err.detail?.['auditError'] === SEC_ERRORS.auditUnavailable;
    });
  });

  test('writes are audited before they commit: a failed append changes nothing', async (t) => {
    const { service, audit } = await fresh(t);
    audit.mode = 'reject';
    await assert.rejects(
      service.set(OPERATOR, 'payment-provider-key', Buffer.from('new')),
      is(SEC_ERRORS.auditUnavailable),
    );
    await assert.rejects(
      service.set(OPERATOR, 'payment-provider-key', Buffer.from('new'), { stage: true }),
      is(SEC_ERRORS.auditUnavailable),
    );
    audit.mode = 'ok';
    await service.set(OPERATOR, 'payment-provider-key', Buffer.from('staged'), { stage: true });
    audit.mode = 'reject';
    await assert.rejects(service.promote(OPERATOR, 'payment-provider-key'), is(SEC_ERRORS.auditUnavailable));
    await assert.rejects(service.rotateKek(OPERATOR, testKek()), is(SEC_ERRORS.auditUnavailable));
    audit.mode = 'ok';
    const { secret, versions } = await service.history(OPERATOR, 'payment-provider-key');
    assert.deepEqual(secret.labels, { current: 1, previous: null, pending: 2 });
    assert.equal(versions.length, 2);
    assert.equal(versions[0]!.kekId, service.kekId);
  });

  test('every operation emits exactly one event (two for a write that failed after its append)', async (t) => {
    const { service, audit } = await fresh(t);
    await service.set(OPERATOR, 'db-password', Buffer.from('x'), { stage: true });
    await service.promote(OPERATOR, 'db-password');
    await service.rollback(OPERATOR, 'db-password');
    await service.reveal(OPERATOR, 'db-password', { version: 1 });
    await service.history(OPERATOR, 'db-password');
    await service.list(OPERATOR);
    await assert.rejects(service.promote(OPERATOR, 'db-password'), is(SEC_ERRORS.label));
    await assert.rejects(service.history(OPERATOR, 'nope'), is(SEC_ERRORS.notFound));
    await service.rotateKek(OPERATOR, testKek());
    assert.deepEqual(audit.actions(), [
      'secret.write:allow:ok',
      'secret.promote:allow:ok',
      'secret.rollback:allow:ok',
      'secret.reveal:allow:ok',
      'secret.history:allow:ok',
      'secret.list:allow:ok',
      `secret.promote:deny:${SEC_ERRORS.label}`,
      `secret.history:error:${SEC_ERRORS.notFound}`,
      'secret.rotate_kek:allow:ok',
    ]);
    assert.ok(audit.events.every((e) => e.actor !== undefined && e.component === 'secrets'));
  });
});

describe('secrets service: hostile inputs', () => {
  const names: ReadonlyArray<readonly [string, unknown]> = [
    ['empty', ''],
    ['upper case', 'DB-PASSWORD'],
    ['leading digit', '1db'],
    ['leading dash', '-db'],
    ['path traversal', '../db'],
    ['slash', 'a/b'],
    ['NUL', 'db\0x'],
    ['newline', 'db\n'],
    ['space', 'db password'],
    ['non-ASCII', 'dб'],
    ['64 characters', `a${'b'.repeat(63)}`],
    ['not a string', 42],
    ['an object', { toString: () => 'db' }],
    ['undefined', undefined],
  ];
  for (const [label, name] of names) {
    test(`name: ${label}`, async (t) => {
      const { service } = await fresh(t);
      await assert.rejects(service.set(OPERATOR, name as string, Buffer.from('v')), is(SEC_ERRORS.name));
      await assert.rejects(service.reveal(OPERATOR, name as string), is(SEC_ERRORS.name));
      await assert.rejects(service.promote(OPERATOR, name as string), is(SEC_ERRORS.name));
      await assert.rejects(service.history(OPERATOR, name as string), is(SEC_ERRORS.name));
      await assert.rejects(service.read(PAYMENTS, name as string), is(SEC_ERRORS.forbidden));
    });
  }

  test('a refused read naming a granted secret by an object or a longer string gets none of its references', async (t) => {
    const { service, audit } = await fresh(t);
    // The granted read first: its references are remembered by name, and nothing else may match them.
    await service.read(PAYMENTS, 'payment-provider-key');
    const refs = [service.auditRef('payment-provider-key'), service.auditRef('payment-provider-key', 1)];
    const hostile: unknown[] = [
      { toString: () => 'payment-provider-key' },
      'payment-provider-key\0',
      ['payment-provider-key'],
    ];
    for (const name of hostile) {
      await assert.rejects(service.read(PAYMENTS, name as string), is(SEC_ERRORS.forbidden));
    }
    const refused = audit.events.slice(1).map((e) => [e.resource, e.detail?.['nameRef']]);
    assert.equal(refused.length, hostile.length);
    for (const [resource, nameRef] of refused) {
      assert.ok(!refs.some((ref) => resource === `secret:${ref}` || nameRef === ref), `${resource} ${nameRef}`);
    }
  });

  test('63 characters is the longest name', async (t) => {
    const { service } = await fresh(t);
    await service.set(OPERATOR, `a${'b'.repeat(62)}`, Buffer.from('v'));
  });

  const values: ReadonlyArray<readonly [string, unknown, string]> = [
    ['a string (cannot be zeroed)', 'secret', 'not_bytes'],
    ['an array of numbers', [1, 2, 3], 'not_bytes'],
    ['null', null, 'not_bytes'],
    ['empty', Buffer.alloc(0), 'empty'],
    ['64 KiB + 1', Buffer.alloc(64 * 1024 + 1, 1), 'too_large'],
  ];
  for (const [label, value, reason] of values) {
    test(`value: ${label}`, async (t) => {
      const { service } = await fresh(t);
      await assert.rejects(service.set(OPERATOR, 'db-password', value as Buffer), (err) => {
        return isRampartError(err, SEC_ERRORS.value) && err.detail?.['reason'] === reason;
      });
    });
  }

  test('value: 64 KiB exactly, and a Uint8Array view into a larger buffer, are stored as given', async (t) => {
    const { service } = await fresh(t);
    const big = Buffer.alloc(64 * 1024, 7);
    await service.set(OPERATOR, 'db-password', big);
    assert.deepEqual((await service.reveal(OPERATOR, 'db-password')).value, big);
    const backing = Buffer.from('xxxxINSIDExxxx');
    await service.set(OPERATOR, 'api-token', new Uint8Array(backing.buffer, backing.byteOffset + 4, 6));
    assert.equal((await service.reveal(OPERATOR, 'api-token')).value.toString(), 'INSIDE');
  });

  const selectors: ReadonlyArray<readonly [string, unknown]> = [
    ['unknown label', { label: 'latest' }],
    ['version 0', { version: 0 }],
    ['negative version', { version: -1 }],
    ['fractional version', { version: 1.5 }],
    ['version as string', { version: '1' }],
    ['huge version', { version: 2 ** 40 }],
    ['null', null],
  ];
  for (const [label, selector] of selectors) {
    test(`selector: ${label}`, async (t) => {
      const { service } = await fresh(t);
      await assert.rejects(service.reveal(OPERATOR, 'db-password', selector as never), is(SEC_ERRORS.selector));
    });
  }

  const actors: ReadonlyArray<readonly [string, unknown]> = [
    ['empty user', { subject: '' }],
    ['user with a terminal escape', { subject: 'eve\u001b[2J' }],
    ['user with a newline', { subject: 'eve\nforged line' }],
    ['over-long user', { subject: 'u'.repeat(300) }],
    ['invalid SPIFFE ID', { spiffeId: 'spiffe://Shop/svc/x' }],
    ['null', null],
  ];
  for (const [label, actor] of actors) {
    test(`actor: ${label}`, async (t) => {
      const { service } = await fresh(t);
      await assert.rejects(service.set(actor as never, 'db-password', Buffer.from('v')), is(SEC_ERRORS.config));
    });
  }

  for (const interval of [0, -1, 1.5, Number.NaN, 11 * 366 * 86_400_000]) {
    test(`rotation interval: ${interval}`, async (t) => {
      const { service } = await fresh(t);
      await assert.rejects(
        service.set(OPERATOR, 'db-password', Buffer.from('v'), { rotationIntervalMs: interval }),
        is(SEC_ERRORS.config),
      );
    });
  }
});

describe('secrets service: lifecycle', () => {
  test('concurrent writes in one service are serialised: versions 1..n, no conflict', async (t) => {
    const { service } = await fresh(t);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => service.set(OPERATOR, 'api-token', Buffer.from(`v${i}`))),
    );
    assert.deepEqual(
      results.map((r) => r.version).sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  });

  test('KEK rotation while a read holds a row wrapped under the old KEK: the read fetches again and succeeds', async (t) => {
    const inner = openSqliteSecretsStore({ path: ':memory:' });
    let hold: Promise<void> | null = null;
    let fetched!: () => void;
    const rowFetched = new Promise<void>((r) => {
      fetched = r;
    });
    const store: SecretsStore = {
      ...inner,
      async versionByLabel(name, label) {
        const row = await inner.versionByLabel(name, label);
        if (hold) {
          const wait = hold;
          hold = null;
          fetched();
          await wait;
        }
        return row;
      },
    };
    const service = await openTestService(store, { kek: testKek() });
    t.after(() => service.close());
    await service.set(OPERATOR, 'db-password', Buffer.from('steady'));
    let resume!: () => void;
    hold = new Promise((r) => {
      resume = r;
    });
    const read = service.read(PAYMENTS, 'db-password');
    await rowFetched; // the read holds the row as wrapped under the old KEK
    await service.rotateKek(OPERATOR, testKek()); // committed, and the service switched KEKs
    resume();
    assert.equal((await read).value.toString(), 'steady');
  });

  test('a read between the rotation commit and the switch of KEKs decrypts with the new KEK', async (t) => {
    const inner = openSqliteSecretsStore({ path: ':memory:' });
    let during: Promise<string> | null = null;
    let service!: SecretsService;
    const store: SecretsStore = {
      ...inner,
      async rewrapAll(rewrap, next, now) {
        const count = await inner.rewrapAll(rewrap, next, now);
        // Committed: the rows name the new KEK, the service has not switched yet.
        during = service.read(PAYMENTS, 'db-password').then((r) => r.value.toString());
        await during;
        return count;
      },
    };
    service = await openTestService(store, { kek: testKek() });
    t.after(() => service.close());
    await service.set(OPERATOR, 'db-password', Buffer.from('steady'));
    await service.rotateKek(OPERATOR, testKek());
    assert.equal(await during, 'steady');
  });

  test('rotating to the same KEK, or to something that is not a KEK, is refused', async (t) => {
    const kek = testKek();
    const service = await openTestService(openSqliteSecretsStore({ path: ':memory:' }), { kek });
    t.after(() => service.close());
    await assert.rejects(service.rotateKek(OPERATOR, kek), (err) => {
      return isRampartError(err, SEC_ERRORS.kekRotation) && err.detail?.['reason'] === 'same_key';
    });
    await assert.rejects(service.rotateKek(OPERATOR, {} as never), is(SEC_ERRORS.kekRotation));
  });

  test('a KEK the service loaded is destroyed on close; a KEK passed in stays usable', async () => {
    const kek = testKek();
    const service = await openTestService(openSqliteSecretsStore({ path: ':memory:' }), { kek });
    await service.close();
    assert.equal(kek.unwrap(kek.wrap(Buffer.from('x'), 'ctx'), 'ctx').toString(), 'x');
  });

  test('close waits for reads in flight: they finish with intact keys; later calls are refused', async () => {
    const audit = new RecordingSink();
    const inner = openSqliteSecretsStore({ path: ':memory:' });
    let hold: Promise<void> | null = null;
    const store: SecretsStore = {
      ...inner,
      async versionByLabel(name, label) {
        if (hold) await hold; // the read is between its ACL check and its audit event
        return inner.versionByLabel(name, label);
      },
    };
    const service = await openTestService(store, { kek: testKek(), audit });
    await service.set(OPERATOR, 'db-password', Buffer.from('v'));
    const ref = service.auditRef('db-password', 1);
    let release!: () => void;
    hold = new Promise<void>((r) => {
      release = r;
    });
    const read = service.read(PAYMENTS, 'db-password');
    const closing = service.close();
    await assert.rejects(service.read(PAYMENTS, 'db-password'), is(SEC_ERRORS.closed));
    release();
    assert.equal((await read).value.toString(), 'v');
    await closing;
    assert.equal(audit.events.at(-1)!.resource, `secret:${ref}`, 'the audit key was not zeroed under the read');
  });

  test('after close every call is SEC_ERR_CLOSED', async () => {
    const service: SecretsService = await openTestService(openSqliteSecretsStore({ path: ':memory:' }), {
      kek: testKek(),
    });
    await service.close();
    await assert.rejects(service.read(PAYMENTS, 'db-password'), is(SEC_ERRORS.closed));
    await assert.rejects(service.set(OPERATOR, 'db-password', Buffer.from('v')), is(SEC_ERRORS.closed));
    assert.throws(() => service.auditRef('db-password'), is(SEC_ERRORS.closed));
    await service.close();
  });

  test('bad options are refused at open, and the store is closed', async () => {
    for (const options of [
      { audit: {} as never },
      { acl: {} as never },
      { auditTimeoutMs: 0 },
      { maxValueBytes: -1 },
    ]) {
      const store = openSqliteSecretsStore({ path: ':memory:' });
      await assert.rejects(openTestService(store, { kek: testKek(), ...options }), is(SEC_ERRORS.config));
      await assert.rejects(store.listSecrets(), is(SEC_ERRORS.closed));
    }
  });

  test('errors and events never carry the value', async (t) => {
    const { service, audit } = await fresh(t);
    const failures: unknown[] = [];
    const collect = (p: Promise<unknown>) => p.catch((err) => void failures.push(err));
    await collect(service.read(ORDERS, 'payment-provider-key'));
    await collect(service.set(OPERATOR, 'payment-provider-key', Buffer.from(VALUE), { stage: true }));
    await collect(service.set(OPERATOR, 'payment-provider-key', Buffer.from(VALUE)));
    audit.mode = 'reject';
    await collect(service.read(PAYMENTS, 'payment-provider-key'));
    assert.equal(failures.length, 3);
    for (const err of failures) {
      const shown = `${inspect(err, { depth: 20, showHidden: true })}${JSON.stringify(err)}`;
      assert.ok(!shown.includes(VALUE), shown);
    }
    assert.ok(!JSON.stringify(audit.events).includes(VALUE));
  });
});
