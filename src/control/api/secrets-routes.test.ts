import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { OPERATOR, type SecretsTestPlane, startSecretsTestPlane } from './secrets-testing.ts';
import { createWorkloadKey } from './workload-key.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  text: string;
}

/** A raw request the SDK would never send; trusts the plane's bundle, presents `credentials` if given. */
function send(
  plane: SecretsTestPlane,
  credentials: { cert: string; key: string } | null,
  body: string | Buffer | undefined,
  init: { method?: string; path?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(init.path ?? '/v1/secrets/read', plane.url), {
      method: init.method ?? 'POST',
      headers: { 'content-type': 'application/json', ...init.headers },
      ca: plane.testCa.ca.bundle().pem,
      ...(credentials ?? {}),
      agent: false,
      checkServerIdentity: () => undefined,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : {}, text });
      });
    });
    req.end(body);
  });
}

describe('control plane: POST /v1/secrets/read', () => {
  let plane: SecretsTestPlane;
  let other: TestCa;
  let payments: { cert: string; key: string };
  let catalog: { cert: string; key: string };
  const plaintext = Buffer.from(`sk_test_${randomBytes(16).toString('hex')}`);

  before(async () => {
    plane = await startSecretsTestPlane({ payments: ['payment-provider-key', 'unset-key'], catalog: [] });
    other = await openTestCa({ trustDomain: 'other.local' });
    await plane.secrets.set(OPERATOR, 'payment-provider-key', Buffer.from('first value'));
    await plane.secrets.set(OPERATOR, 'payment-provider-key', plaintext);
    payments = await plane.credentialsFor('payments');
    catalog = await plane.credentialsFor('catalog');
  });
  after(async () => {
    await plane.close();
    other.cleanup();
  });

  test('a granted service reads the current value, with version and label, not to be cached', async () => {
    const before = plane.audit.events.length;
    const res = await send(plane, payments, JSON.stringify({ name: 'payment-provider-key' }));
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.deepEqual(Object.keys(res.body).sort(), ['createdAt', 'label', 'name', 'value', 'version']);
    assert.equal(res.body['version'], 2);
    assert.equal(res.body['label'], 'current');
    assert.deepEqual(Buffer.from(res.body['value'] as string, 'base64'), plaintext);
    const events = plane.audit.events.slice(before);
    assert.deepEqual(
      events.map((e) => `${e.action}:${e.decision}:${(e.actor as { spiffeId: string }).spiffeId}`),
      ['secret.read:allow:spiffe://shop.local/svc/payments'],
    );
    assert.match(events[0]!.resource ?? '', /^secret:[0-9a-f]{64}$/, 'an HMAC reference, not the name');
    assert.ok(!JSON.stringify(events).includes('payment-provider-key'));
  });

  test('label previous reads the version before', async () => {
    const res = await send(plane, payments, JSON.stringify({ name: 'payment-provider-key', label: 'previous' }));
    assert.equal(res.status, 200);
    assert.equal(res.body['version'], 1);
    assert.equal(res.body['label'], 'previous');
    assert.equal(Buffer.from(res.body['value'] as string, 'base64').toString(), 'first value');
  });

  test('a service not granted the secret gets 403 SEC_ERR_FORBIDDEN, no detail, and an audit event', async () => {
    for (const name of ['payment-provider-key', 'no-such-secret']) {
      const before = plane.audit.events.length;
      const res = await send(plane, catalog, JSON.stringify({ name }));
      assert.equal(res.status, 403, name);
      assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id']);
      assert.equal(res.body['error'], 'SEC_ERR_FORBIDDEN');
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.deepEqual(
        plane.audit.events.slice(before).map((e) => `${e.action}:${e.decision}:${e.reason}`),
        ['secret.read:deny:SEC_ERR_FORBIDDEN'],
      );
      assert.equal(
        (plane.audit.events.at(-1)!.actor as { spiffeId: string }).spiffeId,
        'spiffe://shop.local/svc/catalog',
      );
    }
  });

  test('a granted secret that was never set is 404 SEC_ERR_NOT_FOUND', async () => {
    const res = await send(plane, payments, JSON.stringify({ name: 'unset-key' }));
    assert.equal(res.status, 404);
    assert.equal(res.body['error'], 'SEC_ERR_NOT_FOUND');
  });

  test('no client certificate is 401, and nothing is read or audited', async () => {
    const before = plane.audit.events.length;
    const res = await send(plane, null, JSON.stringify({ name: 'payment-provider-key' }));
    assert.equal(res.status, 401);
    assert.equal(res.body['error'], 'CA_ERR_API_NO_CLIENT_CERTIFICATE');
    assert.equal(plane.audit.events.length, before);
  });

  test('a certificate of another trust domain (another CA) is 401', async () => {
    const key = await createWorkloadKey();
    const svid = await other.ca.issue({ csr: key.csrPem, serviceName: 'payments' });
    const res = await send(
      plane,
      { cert: svid.certificatePem, key: key.keyPem },
      JSON.stringify({ name: 'payment-provider-key' }),
    );
    assert.equal(res.status, 401);
    assert.equal(res.body['error'], 'CA_ERR_API_NO_CLIENT_CERTIFICATE');
  });

  test('when the audit append fails the read fails closed: 503, no value', async () => {
    plane.audit.fail = true;
    try {
      const res = await send(plane, payments, JSON.stringify({ name: 'payment-provider-key' }));
      assert.equal(res.status, 503);
      assert.deepEqual(res.body, { error: 'SEC_ERR_AUDIT_UNAVAILABLE', error_id: res.body['error_id'] });
      assert.ok(!res.text.includes(plaintext.toString('base64')));
    } finally {
      plane.audit.fail = false;
    }
  });

  const hostile: {
    what: string;
    body?: string | Buffer;
    status: number;
    code: string;
    init?: Parameters<typeof send>[3];
  }[] = [
    { what: 'no body', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'not JSON', body: '{name:', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'an array', body: '["payment-provider-key"]', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'null', body: 'null', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'a string', body: '"payment-provider-key"', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'no name', body: '{}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'a number name', body: '{"name":1}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'an array name', body: '{"name":["payment-provider-key"]}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'an empty name', body: '{"name":""}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    {
      what: 'a 65-character name',
      body: JSON.stringify({ name: 'a'.repeat(65) }),
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a 64-character name (reaches the ACL)',
      body: JSON.stringify({ name: 'a'.repeat(64) }),
      status: 403,
      code: 'SEC_ERR_FORBIDDEN',
    },
    { what: 'another spelling', body: '{"name":"Payment-Provider-Key"}', status: 403, code: 'SEC_ERR_FORBIDDEN' },
    { what: 'a trailing NUL', body: '{"name":"payment-provider-key\\u0000"}', status: 403, code: 'SEC_ERR_FORBIDDEN' },
    { what: 'a path in the name', body: '{"name":"../payment-provider-key"}', status: 403, code: 'SEC_ERR_FORBIDDEN' },
    {
      what: 'a look-alike (Cyrillic а)',
      body: '{"name":"pаyment-provider-key"}',
      status: 403,
      code: 'SEC_ERR_FORBIDDEN',
    },
    {
      what: 'an unknown label',
      body: '{"name":"payment-provider-key","label":"latest"}',
      status: 400,
      code: 'SEC_ERR_SELECTOR',
    },
    {
      what: 'a numeric label',
      body: '{"name":"payment-provider-key","label":2}',
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    {
      what: 'an extra field',
      body: '{"name":"payment-provider-key","version":1}',
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a caller field',
      body: '{"name":"payment-provider-key","caller":"spiffe://shop.local/svc/payments"}',
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    {
      what: '__proto__',
      body: '{"name":"payment-provider-key","__proto__":{"label":"previous"}}',
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a body over 1 KiB',
      body: JSON.stringify({ name: 'payment-provider-key', pad: 'x'.repeat(2048) }),
      status: 413,
      code: 'CA_ERR_API_TOO_LARGE',
    },
    {
      what: 'text/plain',
      body: '{"name":"payment-provider-key"}',
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
      init: { headers: { 'content-type': 'text/plain' } },
    },
    { what: 'GET', status: 404, code: 'CA_ERR_API_NOT_FOUND', init: { method: 'GET', headers: {} } },
    {
      what: 'a query string',
      body: '{"name":"payment-provider-key"}',
      status: 404,
      code: 'CA_ERR_API_NOT_FOUND',
      init: { path: '/v1/secrets/read?name=x' },
    },
    {
      what: 'a trailing slash',
      body: '{"name":"payment-provider-key"}',
      status: 404,
      code: 'CA_ERR_API_NOT_FOUND',
      init: { path: '/v1/secrets/read/' },
    },
  ];
  for (const row of hostile) {
    test(`hostile request from a granted caller: ${row.what} → ${row.status} ${row.code}`, async () => {
      const res = await send(plane, payments, row.body, row.init);
      assert.equal(res.status, row.status);
      assert.equal(res.body['error'], row.code);
      assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id']);
    });
  }

  test('the value appears in no refusal record', () => {
    const logged = JSON.stringify(plane.refusals);
    assert.ok(plane.refusals.length > 0);
    for (const form of [plaintext.toString(), plaintext.toString('base64'), plaintext.toString('hex')]) {
      assert.ok(!logged.includes(form));
    }
  });
});
