import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { validateAuditEvent } from '../../core/audit-event.ts';
import { isRampartError } from '../../core/errors.ts';
import {
  type AuditSink,
  appendOrRefuse,
  buildSecretsEvent,
  SECRETS_ACTIONS,
  type SecretsAuditEvent,
  secretRef,
} from './audit.ts';
import { SEC_ERRORS } from './errors.ts';

const key = randomBytes(32);
const NOW = () => Date.UTC(2026, 0, 31, 12);
const event: SecretsAuditEvent = buildSecretsEvent(
  { actor: { subject: 'alice' }, action: 'secret.read', resource: 'secret:x', decision: 'allow', reason: 'ok' },
  NOW,
);

describe('secretRef', () => {
  test('is HMAC-SHA-256 over the domain, the name and the version, as documented', () => {
    const expected = createHmac('sha256', key)
      .update(Buffer.concat([Buffer.from('rampart/secret-ref/v1\0db\0'), Buffer.from([0, 0, 0, 3])]))
      .digest('hex');
    assert.equal(secretRef(key, 'db', 3), expected);
  });

  test('is deterministic per key and differs across keys, names and versions', () => {
    assert.equal(secretRef(key, 'db', 1), secretRef(Buffer.from(key), 'db', 1));
    assert.notEqual(secretRef(key, 'db', 1), secretRef(randomBytes(32), 'db', 1));
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
        fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
        fc.nat({ max: 1000 }),
        fc.nat({ max: 1000 }),
        (a, b, va, vb) => {
          fc.pre(a !== b || va !== vb);
          assert.notEqual(secretRef(key, a, va), secretRef(key, b, vb));
        },
      ),
    );
  });

  test('never contains the name', () => {
    assert.ok(!secretRef(key, 'payment-provider-key').includes('payment'));
  });

  const hostile: ReadonlyArray<readonly [string, unknown, number, string]> = [
    ['non-string name', 42, 0, 'invalid-name'],
    ['huge name', 'a'.repeat(10_000), 0, 'invalid-name'],
    ['negative version', 'db', -1, 'invalid-version'],
    ['fractional version', 'db', 1.5, 'invalid-version'],
    ['version past uint31', 'db', 2 ** 31, 'invalid-version'],
  ];
  for (const [name, value, version, expected] of hostile) {
    test(`hostile input: ${name}`, () => assert.equal(secretRef(key, value, version), expected));
  }
});

describe('buildSecretsEvent: events the audit log accepts', () => {
  const ref = secretRef(key, 'payment-provider-key', 3);
  const input = {
    actor: { spiffeId: 'spiffe://shop.local/svc/payments' },
    action: 'secret.read',
    resource: `secret:${ref}`,
    decision: 'allow',
    reason: 'ok',
    requestId: 'req-1',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    detail: { nameRef: secretRef(key, 'payment-provider-key'), version: 3, label: 'current' },
  } as const;

  test('a full event validates against the system schema (core/audit-event.ts)', () => {
    const built = buildSecretsEvent(input, NOW);
    assert.deepEqual(validateAuditEvent(JSON.parse(JSON.stringify(built))), built);
    assert.equal(built.component, 'secrets');
    assert.equal(built.time, '2026-01-31T12:00:00.000Z');
    assert.equal(built.requestId, 'req-1');
  });

  test('a request or trace id the schema refuses is dropped, not fatal', () => {
    const table = [
      [{ requestId: 'bad id with spaces' }, undefined, input.traceId],
      [{ traceId: 'not-hex' }, 'req-1', undefined],
      [{ traceId: '0'.repeat(32) }, 'req-1', undefined],
      [{ requestId: 'x'.repeat(200), traceId: 'nope' }, undefined, undefined],
    ] as const;
    for (const [context, requestId, traceId] of table) {
      const built = buildSecretsEvent({ ...input, ...context }, NOW);
      assert.equal(built.requestId, requestId);
      assert.equal(built.traceId, traceId);
      assert.equal(built.detail?.['contextDropped'], true);
    }
  });

  test('a caller that is not a valid SPIFFE ID is left out of the actor, and marked', () => {
    for (const spiffeId of ['payments', '', 'spiffe://shop.local/svc/payments/', 'spiffe://shop.local/svc/\u0000']) {
      const built = buildSecretsEvent({ ...input, actor: { spiffeId } }, NOW);
      assert.equal(built.actor, undefined);
      assert.equal(built.detail?.['actorInvalid'], true);
    }
  });

  test('every action name and reason code is accepted by the schema', () => {
    for (const action of Object.values(SECRETS_ACTIONS)) {
      for (const reason of ['ok', ...Object.values(SEC_ERRORS)]) {
        buildSecretsEvent({ ...input, action, reason, decision: 'deny' }, NOW);
      }
    }
  });
});

describe('appendOrRefuse', () => {
  const refused = (err: unknown) => isRampartError(err, SEC_ERRORS.auditUnavailable) && err.status === 503;
  const sinks: ReadonlyArray<readonly [string, AuditSink]> = [
    ['rejects', { append: async () => Promise.reject(new Error('disk full')) }],
    [
      'throws synchronously',
      {
        append: () => {
          throw new Error('bug');
        },
      },
    ],
    ['never answers', { append: () => new Promise<void>(() => {}) }],
  ];
  for (const [name, sink] of sinks) {
    test(`refuses when the sink ${name}`, async () => {
      await assert.rejects(appendOrRefuse(sink, event, 50), refused);
    });
  }

  test('resolves once the sink acknowledged, with the event as given', async () => {
    const seen: SecretsAuditEvent[] = [];
    await appendOrRefuse({ append: async (e) => void seen.push(e) }, event, 1000);
    assert.deepEqual(seen, [event]);
  });
});
