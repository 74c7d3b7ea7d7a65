import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  AUDIT_EVENT_ERROR,
  AUDIT_EVENT_LIMITS,
  AUDIT_EVENT_REASONS,
  type AuditEventInput,
  canonicalizeAuditEvent,
  createAuditEvent,
  encodeAuditEvent,
  newEventId,
  parseAuditEntry,
  redactSecrets,
  secretReason,
  validateAuditEvent,
  withReporter,
} from './audit-event.ts';
import { isRampartError } from './errors.ts';

const BASE = {
  id: '01890a5d-ac96-774b-bcce-b302099a8057',
  time: '2026-03-01T12:34:56.789Z',
  component: 'gateway',
  action: 'http.request',
  decision: 'deny',
} as const;

function refused(value: unknown, field: string, reason: string): void {
  assert.throws(
    () => validateAuditEvent(value),
    (err: unknown) => {
      assert.ok(isRampartError(err, AUDIT_EVENT_ERROR), String(err));
      assert.equal(err.status, 400);
      assert.deepEqual(err.detail, { field, reason });
      return true;
    },
  );
}

// A syntactically valid JWT (header.payload.signature); made up, signed by nothing.
const JWT =
  'eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhbGljZSIsInNjb3BlIjoib3JkZXJzIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU';
const PEM = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const JOIN_TOKEN = randomBytes(48).toString('base64url');
const KEY_32 = 'q3Vz8Yd0Lk2mR7tPxW9bN4cF1gH6jS5aE8uI0oZyXvQ';

test('createAuditEvent fills a UUIDv7 id and the time, drops undefined fields and empty actors', () => {
  const now = Date.UTC(2026, 2, 1, 12, 0, 0, 5);
  const event = createAuditEvent(
    {
      component: 'secrets',
      action: 'secret.read',
      decision: 'allow',
      resource: undefined,
      actor: { spiffeId: undefined },
    },
    { now: () => now },
  );
  assert.equal(event.time, '2026-03-01T12:00:00.005Z');
  assert.match(event.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  // The first 48 bits are the milliseconds: ids sort by time.
  assert.equal(Number.parseInt(event.id.replace(/-/g, '').slice(0, 12), 16), now);
  assert.equal('resource' in event, false);
  assert.equal('actor' in event, false);
  assert.ok(Object.isFrozen(event));
  assert.ok(newEventId(now + 1) > newEventId(now - 1_000));
});

test('canonical bytes: sorted keys at every depth, no whitespace; the leaf hashes exactly those bytes', () => {
  const event = validateAuditEvent({
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    detail: { status: 403, method: 'GET', cached: false, route: null },
    actor: { subject: 'alice', clientId: 'shop-web' },
    ...BASE,
    reason: 'GW_ERR_SCOPE',
    resource: '/orders/12',
    requestId: 'req-1234',
    reporter: 'spiffe://shop.local/svc/gateway',
  });
  const expected =
    '{"action":"http.request","actor":{"clientId":"shop-web","subject":"alice"},"component":"gateway",' +
    '"decision":"deny","detail":{"cached":false,"method":"GET","route":null,"status":403},' +
    '"id":"01890a5d-ac96-774b-bcce-b302099a8057","reason":"GW_ERR_SCOPE",' +
    '"reporter":"spiffe://shop.local/svc/gateway","requestId":"req-1234",' +
    '"resource":"/orders/12","time":"2026-03-01T12:34:56.789Z","traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}';
  const bytes = canonicalizeAuditEvent(event);
  assert.equal(bytes.toString('utf8'), expected);
  assert.deepEqual(parseAuditEntry(bytes), event);
  // Non-ASCII is written as UTF-8, not escaped (RFC 8785 §3.2.2.2).
  const unicode = canonicalizeAuditEvent(validateAuditEvent({ ...BASE, resource: '/café/ü' }));
  assert.ok(unicode.includes(Buffer.from('/café/ü', 'utf8')));
});

test('parseAuditEntry refuses bytes that are not the canonical form of a valid event', () => {
  const good = canonicalizeAuditEvent(validateAuditEvent(BASE)).toString('utf8');
  const table: [string, Uint8Array][] = [
    ['whitespace', Buffer.from(good.replace(',', ', '))],
    ['reordered keys', Buffer.from(JSON.stringify({ ...BASE }))],
    ['invalid UTF-8', Buffer.concat([Buffer.from(good.slice(0, -2)), Buffer.from([0xff]), Buffer.from('"}')])],
    ['not JSON', Buffer.from('{"id":')],
    ['an array', Buffer.from('[]')],
    ['escaped where not needed', Buffer.from(good.replace('gateway', 'gatew\\u0061y'))],
  ];
  for (const [name, bytes] of table) {
    assert.throws(
      () => parseAuditEntry(bytes),
      (err: unknown) => isRampartError(err, AUDIT_EVENT_ERROR),
      name,
    );
  }
});

test('hostile events: unknown fields, wrong types and malformed values are refused, naming the field', () => {
  const R = AUDIT_EVENT_REASONS;
  const table: [string, unknown, string, string][] = [
    ['not an object', 'event', '', R.notObject],
    ['an array', [BASE], '', R.notObject],
    ['a class instance', new Date(), '', R.notObject],
    ['unknown field', { ...BASE, password: 'x' }, 'password', R.unknownField],
    [
      '__proto__ as own key',
      JSON.parse(`{"__proto__":{"x":1},${JSON.stringify(BASE).slice(1)}`),
      '__proto__',
      R.unknownField,
    ],
    ['unknown actor field', { ...BASE, actor: { subject: 'a', role: 'admin' } }, 'actor.role', R.unknownField],
    ['empty actor', { ...BASE, actor: {} }, 'actor', R.empty],
    ['actor not an object', { ...BASE, actor: 'alice' }, 'actor', R.type],
    ['missing id', { ...BASE, id: undefined }, 'id', R.missing],
    ['uppercase id', { ...BASE, id: BASE.id.toUpperCase() }, 'id', R.format],
    ['v1 uuid', { ...BASE, id: 'c232ab00-9414-11ec-b3c8-9f68deced846' }, 'id', R.format],
    ['id as number', { ...BASE, id: 7 }, 'id', R.type],
    ['time without ms', { ...BASE, time: '2026-03-01T12:34:56Z' }, 'time', R.format],
    ['time with offset', { ...BASE, time: '2026-03-01T12:34:56+0100' }, 'time', R.format],
    ['time too long', { ...BASE, time: '2026-03-01T12:34:56.789+01:00' }, 'time', R.tooLong],
    ['February 30', { ...BASE, time: '2026-02-30T00:00:00.000Z' }, 'time', R.format],
    ['time as Date', { ...BASE, time: new Date() }, 'time', R.type],
    ['component upper case', { ...BASE, component: 'Gateway' }, 'component', R.format],
    ['component empty', { ...BASE, component: '' }, 'component', R.empty],
    ['action with space', { ...BASE, action: 'http request' }, 'action', R.format],
    ['action trailing dot', { ...BASE, action: 'http.' }, 'action', R.format],
    ['decision unknown', { ...BASE, decision: 'maybe' }, 'decision', R.format],
    ['decision missing', { ...BASE, decision: undefined }, 'decision', R.missing],
    ['reason prose', { ...BASE, reason: 'token expired' }, 'reason', R.format],
    ['reason too long', { ...BASE, reason: 'A'.repeat(129) }, 'reason', R.tooLong],
    ['resource with newline', { ...BASE, resource: '/a\nFORGED 0 allow' }, 'resource', R.control],
    ['resource with escape', { ...BASE, resource: '/a\u001b[31m' }, 'resource', R.control],
    ['resource with U+2028', { ...BASE, resource: '/a\u2028b' }, 'resource', R.control],
    ['resource with C1 control', { ...BASE, resource: '/a\u0085' }, 'resource', R.control],
    ['lone surrogate', { ...BASE, resource: '/a\ud800' }, 'resource', R.control],
    ['resource too long', { ...BASE, resource: `/${'a'.repeat(1024)}` }, 'resource', R.tooLong],
    ['trace id all zero', { ...BASE, traceId: '0'.repeat(32) }, 'traceId', R.format],
    ['trace id upper case', { ...BASE, traceId: 'A'.repeat(32) }, 'traceId', R.format],
    ['request id with slash', { ...BASE, requestId: 'a/b' }, 'requestId', R.format],
    ['reporter not a SPIFFE ID', { ...BASE, reporter: 'https://shop.local/svc/gateway' }, 'reporter', R.format],
    ['reporter not a string', { ...BASE, reporter: 7 }, 'reporter', R.type],
    ['spiffe id malformed', { ...BASE, actor: { spiffeId: 'spiffe://Shop/svc/x' } }, 'actor.spiffeId', R.format],
    ['spiffe id other scheme', { ...BASE, actor: { spiffeId: 'https://shop/svc/x' } }, 'actor.spiffeId', R.format],
    ['subject too long', { ...BASE, actor: { subject: 'a'.repeat(256) } }, 'actor.subject', R.tooLong],
    ['detail not an object', { ...BASE, detail: [1] }, 'detail', R.type],
    ['detail nested', { ...BASE, detail: { a: { b: 1 } } }, 'detail.a', R.type],
    ['detail array', { ...BASE, detail: { a: [1] } }, 'detail.a', R.type],
    ['detail float', { ...BASE, detail: { latency: 1.5 } }, 'detail.latency', R.type],
    ['detail NaN', { ...BASE, detail: { n: Number.NaN } }, 'detail.n', R.type],
    ['detail unsafe integer', { ...BASE, detail: { n: 2 ** 53 } }, 'detail.n', R.type],
    ['detail key with dash', { ...BASE, detail: { 'x-y': 1 } }, 'detail.x-y', R.format],
    [
      'detail too many',
      { ...BASE, detail: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i])) },
      'detail',
      R.tooManyDetails,
    ],
    ['detail named password', { ...BASE, detail: { password: 'hunter2' } }, 'detail.password', R.secretName],
    ['detail named accessToken', { ...BASE, detail: { accessToken: 'x' } }, 'detail.accessToken', R.secretName],
    ['detail named clientSecret', { ...BASE, detail: { clientSecret: 'x' } }, 'detail.clientSecret', R.secretName],
    ['detail named apiKey', { ...BASE, detail: { apiKey: 'x' } }, 'detail.apiKey', R.secretName],
    ['detail named authorization', { ...BASE, detail: { authorization: 'x' } }, 'detail.authorization', R.secretName],
    ['detail named cookie', { ...BASE, detail: { cookie: 'x' } }, 'detail.cookie', R.secretName],
    [
      'event too large',
      { ...BASE, detail: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'a'.repeat(512)])) },
      '',
      R.tooLarge,
    ],
  ];
  for (const [name, value, field, reason] of table) {
    try {
      refused(value, field, reason);
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`);
    }
  }
});

test('secret-looking values are refused in every string field, and never echoed in the error', () => {
  const R = AUDIT_EVENT_REASONS;
  const secrets: [string, string, string][] = [
    ['JWT', JWT, R.jwt],
    ['JWT inside a path', `/callback/${JWT}`, R.jwt],
    ['JWE-shaped', 'eyJhbGciOiJSU0EtT0FFUCJ9.abc.def.ghi.jkl', R.jwt],
    ['Bearer header value', 'Bearer abc.def', R.authScheme],
    ['lower-case bearer', 'bearer x', R.authScheme],
    ['Basic credentials', 'Basic YWxpY2U6aHVudGVyMg==', R.authScheme],
    ['PEM private key', PEM.trim().split('\n').slice(0, 2).join(''), R.privateKey],
    ['AWS access key id', 'AKIAIOSFODNN7EXAMPLE', R.apiKey],
    ['GitHub token', `ghp_${'a1B2c3D4e5'.repeat(4)}`, R.apiKey],
    ['Stripe key', `sk_live_${'4eC39HqLyjWDarjtT1zdp7dc'}`, R.apiKey],
    ['Slack token', 'xoxb-123456789012-abcdefghijkl', R.apiKey],
    ['a join token (48 random bytes, base64url)', JOIN_TOKEN, R.highEntropy],
    ['a 32-byte key in base64url', KEY_32, R.highEntropy],
    ['a key in a query string', `/cb?code=${KEY_32}&state=1`, R.highEntropy],
  ];
  for (const [name, value, reason] of secrets) {
    assert.equal(secretReason(value), reason, name);
    for (const [field, event] of [
      ['resource', { ...BASE, resource: value }],
      ['actor.subject', { ...BASE, actor: { subject: value } }],
      ['actor.clientId', { ...BASE, actor: { clientId: value } }],
      ['detail.note', { ...BASE, detail: { note: value } }],
    ] as const) {
      try {
        validateAuditEvent(event);
        assert.fail(`${name} in ${field} was accepted`);
      } catch (err) {
        assert.ok(isRampartError(err, AUDIT_EVENT_ERROR), `${name} in ${field}: ${String(err)}`);
        assert.deepEqual(err.detail, { field, reason }, `${name} in ${field}`);
        const shown = `${err.message} ${JSON.stringify(err.detail)} ${String(err.cause ?? '')}`;
        assert.ok(!shown.includes(value), `${name} echoed in the error`);
      }
    }
  }
});

test('ordinary values are accepted: identifiers, paths, hex references, codes', () => {
  const fine: Partial<AuditEventInput>[] = [
    { resource: '/orders/12345/items' },
    { resource: '/catalog/products/rampart-coffee-mug-deluxe-edition-2024' },
    { resource: `secret:${createHash('sha256').update('payment-provider-key').digest('hex')}` },
    { resource: 'spiffe://shop.local/svc/orders' },
    { resource: '/api/v1/Orders/12345/Items/67890/Details' },
    { resource: 'svid:serial:4f1c2a9be0d84e7c9a1b2c3d4e5f6a7b' },
    { actor: { spiffeId: 'spiffe://shop.local/svc/payments', subject: 'alice@example.com', clientId: 'shop-web' } },
    { actor: { subject: '248289761001' } },
    { actor: { subject: '01890a5d-ac96-774b-bcce-b302099a8057' } },
    { reason: 'GW_ERR_TOKEN_SIGNATURE_INVALID_FOR_ISSUER' },
    { requestId: '3f2b6c8e-1d4a-4e9b-8c7d-6a5b4c3d2e1f' },
    { detail: { method: 'POST', status: 403, route: '/orders/**', cached: false, note: '' } },
  ];
  for (const extra of fine) {
    const event = validateAuditEvent({ ...BASE, ...extra });
    assert.deepEqual(parseAuditEntry(canonicalizeAuditEvent(event)), event);
  }
});

test('redact: secrets copied from a request are replaced instead of losing the event', () => {
  const event = createAuditEvent(
    {
      component: 'gateway',
      action: 'http.request',
      decision: 'deny',
      resource: `/cb/${JWT}/x?key=${KEY_32}`,
      actor: { clientId: `Bearer ${KEY_32}` },
    },
    { redact: true },
  );
  assert.equal(event.resource, '/cb/[redacted]/x?key=[redacted]');
  assert.equal(event.actor?.clientId, '[redacted]');
  assert.equal(redactSecrets('/orders/12'), '/orders/12');
  assert.throws(
    () => createAuditEvent({ component: 'gateway', action: 'http.request', decision: 'deny', resource: JWT }),
    (err: unknown) => isRampartError(err, AUDIT_EVENT_ERROR),
  );
});

test('property: random keys of 40+ bytes are recognized in base64 and base64url, alone or in text', () => {
  fc.assert(
    fc.property(
      // Key material as a key generator makes it: uniformly random bytes. (fc.uint8Array shrinks toward
      // zeros, and a run of zero bytes is not a random key; that made this property flaky.)
      fc.integer({ min: 40, max: 96 }),
      fc.string({ minLength: 1, maxLength: 16 }),
      fc.constantFrom('base64url', 'base64'),
      fc.constantFrom('', '/path/', 'key='),
      (length, seed, encoding, prefix) => {
        const bytes = Buffer.concat([
          createHash('sha512').update(`a:${seed}`).digest(),
          createHash('sha512').update(`b:${seed}`).digest(),
        ]).subarray(0, length);
        // Standard base64's "/" splits a run; take the longest run between slashes, as an attacker's luck would.
        const text = Buffer.from(bytes).toString(encoding as BufferEncoding);
        const longest = text.split('/').reduce((a, b) => (b.length > a.length ? b : a), '');
        fc.pre(longest.length >= 48);
        assert.notEqual(secretReason(`${prefix}${longest}`), null);
      },
    ),
  );
});

const safeText = fc.stringMatching(/^[a-z0-9/._-]{1,40}$/);
const eventArb = fc.record(
  {
    component: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
    action: fc.stringMatching(/^[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}$/),
    decision: fc.constantFrom('allow', 'deny', 'error' as const),
    reason: fc.stringMatching(/^[A-Z][A-Z0-9_]{0,30}$/),
    resource: safeText,
    actor: fc.record({ subject: safeText, clientId: safeText }, { requiredKeys: [] }),
    detail: fc.dictionary(
      fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,10}$/),
      fc.oneof(safeText, fc.integer(), fc.boolean(), fc.constant(null)),
      {
        maxKeys: 5,
      },
    ),
  },
  { requiredKeys: ['component', 'action', 'decision'] },
);

/** RFC 8785 for this value domain, written the generic way: the specialized serializer must agree. */
function referenceCanonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${referenceCanonical(object[k])}`).join(',')}}`;
}

test('property: canonical bytes parse back to the same event, whatever the input key order', () => {
  fc.assert(
    fc.property(eventArb, fc.integer({ min: 0, max: 2 ** 40 }), (input, now) => {
      fc.pre(
        !/pass|pwd|secret|token|authori|cookie|api_?key|private|credential|session|otp|pin$/i.test(
          Object.keys(input.detail ?? {}).join(' '),
        ),
      );
      const actor = input.actor && Object.keys(input.actor).length > 0 ? input.actor : undefined;
      const event = createAuditEvent({ ...(input as AuditEventInput), actor }, { now: () => now });
      const bytes = canonicalizeAuditEvent(event);
      assert.equal(bytes.toString('utf8'), referenceCanonical(event));
      assert.deepEqual(encodeAuditEvent(event).bytes, bytes);
      assert.deepEqual(parseAuditEntry(bytes), event);
      const shuffled = Object.fromEntries(Object.entries(event).reverse());
      assert.deepEqual(canonicalizeAuditEvent(validateAuditEvent(shuffled)), bytes);
    }),
  );
});

test('a created event is frozen through and through: it cannot change after it was validated', () => {
  const event = createAuditEvent({
    ...BASE,
    resource: '/orders/7',
    actor: { subject: 'alice' },
    detail: { status: 403 },
  }) as unknown as Record<string, Record<string, unknown>>;
  for (const target of [event, event.actor!, event.detail!]) assert.ok(Object.isFrozen(target));
  assert.throws(() => {
    (event as Record<string, unknown>).resource = `/orders/${JWT}`;
  }, TypeError);
  assert.throws(() => {
    (event as Record<string, unknown>).reason = 'added later';
  }, TypeError);
  assert.throws(() => {
    event.actor!.subject = JWT;
  }, TypeError);
  assert.throws(() => {
    event.detail!.password = 'hunter2';
  }, TypeError);
  assert.equal(event.resource as unknown, '/orders/7');
});

test('encodeAuditEvent: a created event gives the bytes a full validation of a copy gives', () => {
  const event = createAuditEvent({
    ...BASE,
    resource: '/orders/7',
    actor: { spiffeId: 'spiffe://shop.local/svc/orders', clientId: 'shop-web' },
    detail: { status: 403, method: 'GET' },
  });
  const copy = JSON.parse(JSON.stringify(event)) as unknown;
  const direct = encodeAuditEvent(event);
  const checked = encodeAuditEvent(copy);
  assert.equal(direct.event, event);
  assert.notEqual(checked.event, copy);
  assert.deepEqual(direct.bytes, checked.bytes);
  assert.deepEqual(direct.bytes, canonicalizeAuditEvent(copy as typeof event));
});

test('withReporter: a created event gets its reporter checked; anything else is validated in full', () => {
  const event = createAuditEvent({ ...BASE, resource: '/orders/7' });
  const reporter = 'spiffe://shop.local/svc/control';
  // Before any reporter was found valid (the module remembers the last one): not a string at all.
  for (const bad of [null, undefined]) {
    assert.throws(() => withReporter(event, bad as unknown as string), { code: AUDIT_EVENT_ERROR });
  }
  const stamped = withReporter(event, reporter);
  assert.ok(Object.isFrozen(stamped));
  assert.deepEqual(stamped, validateAuditEvent({ ...event, reporter }));
  assert.deepEqual(encodeAuditEvent(stamped).bytes, encodeAuditEvent({ ...event, reporter }).bytes);
  assert.equal(withReporter(withReporter(event, 'spiffe://shop.local/svc/other'), reporter).reporter, reporter);

  const refusedWith = (fn: () => unknown, field: string, reason: string) =>
    assert.throws(fn, (err: unknown) => {
      assert.ok(isRampartError(err, AUDIT_EVENT_ERROR), String(err));
      assert.deepEqual(err.detail, { field, reason });
      return true;
    });
  const badReporters: [unknown, string][] = [
    ['', AUDIT_EVENT_REASONS.empty],
    ['https://shop.local/svc/control', AUDIT_EVENT_REASONS.format],
    ['spiffe://shop.local/svc/control\n', AUDIT_EVENT_REASONS.control],
    [`spiffe://shop.local/${JWT}`, AUDIT_EVENT_REASONS.jwt],
    [42, AUDIT_EVENT_REASONS.type],
    [null, AUDIT_EVENT_REASONS.type],
    [undefined, AUDIT_EVENT_REASONS.missing],
    [`${reporter} `, AUDIT_EVENT_REASONS.format],
  ];
  for (const [bad, reason] of badReporters) {
    refusedWith(() => withReporter(event, bad as string), 'reporter', reason);
    // Still refused with a valid reporter remembered just before.
    withReporter(event, reporter);
    refusedWith(() => withReporter(event, bad as string), 'reporter', reason);
  }
  // Not made by createAuditEvent (a copy, one built by hand): every field is checked again.
  const notCreated: [unknown, string, string][] = [
    [{ ...event, resource: `/orders/${JWT}` }, 'resource', AUDIT_EVENT_REASONS.jwt],
    [{ ...event, extra: 1 }, 'extra', AUDIT_EVENT_REASONS.unknownField],
    [{ ...BASE, time: '2026-02-30T00:00:00.000Z' }, 'time', AUDIT_EVENT_REASONS.format],
    [Object.freeze({ ...BASE, detail: { password: 'x' } }), 'detail.password', AUDIT_EVENT_REASONS.secretName],
  ];
  for (const [bad, field, reason] of notCreated) {
    refusedWith(() => withReporter(bad as typeof event, reporter), field, reason);
  }

  // The size bound holds for the stamped event too.
  const detail: Record<string, string> = {};
  for (let i = 0; i < 15; i++) detail[`k${i}`] = 'a'.repeat(500);
  detail.k15 = '';
  const base = canonicalizeAuditEvent(createAuditEvent({ ...BASE, detail })).length;
  detail.k15 = 'b'.repeat(AUDIT_EVENT_LIMITS.maxEventBytes - 40 - base);
  const full = createAuditEvent({ ...BASE, detail });
  refusedWith(() => withReporter(full, `spiffe://shop.local/svc/${'x'.repeat(40)}`), '', AUDIT_EVENT_REASONS.tooLarge);
  refused({ ...full, reporter: `spiffe://shop.local/svc/${'x'.repeat(40)}` }, '', AUDIT_EVENT_REASONS.tooLarge);
});

test('a field is read once: a getter or a proxy cannot answer a checked value and then another', () => {
  // Each read of `decision` answers the next value: a valid one first, then one never checked.
  const answers = (...values: unknown[]) => {
    let n = 0;
    return () => values[Math.min(n++, values.length - 1)];
  };
  const getter = { ...BASE, decision: undefined as unknown };
  Object.defineProperty(getter, 'decision', { enumerable: true, get: answers('deny', 'deny', 'nonsense') });
  const viaGetter = encodeAuditEvent(getter).event;
  assert.equal(viaGetter.decision, 'deny');
  const next = answers('allow', 'allow', 'nonsense');
  const proxy = new Proxy({ ...BASE }, { get: (t, k) => (k === 'decision' ? next() : Reflect.get(t, k)) });
  const viaProxy = validateAuditEvent(proxy);
  assert.equal(viaProxy.decision, 'allow');
  assert.deepEqual(parseAuditEntry(canonicalizeAuditEvent(viaProxy)), viaProxy);
  // An object inheriting from a created event is not that event: it is refused, not taken as checked.
  const created = createAuditEvent({ ...BASE });
  refused(Object.create(created), '', AUDIT_EVENT_REASONS.notObject);
  assert.throws(() => withReporter(Object.create(created), 'spiffe://shop.local/svc/control'), {
    code: AUDIT_EVENT_ERROR,
  });
});
