import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import type { ServicePolicy } from '../policy/policy-store.ts';
import { type ControlTarget, controlRequest } from './client.ts';
import { policyRoutes } from './policy-routes.ts';
import {
  issueTestSvid,
  type RawAnswer,
  rawRequest,
  startTestControlPlane,
  type TestControlPlane,
  type TestCredentials,
} from './testing.ts';

const TD = 'spiffe://shop.local/svc';
const POLICIES: Record<string, ServicePolicy['callers']> = {
  payments: { [`${TD}/orders`]: [{ methods: ['POST'], paths: ['/charges'] }] },
  catalog: {
    [`${TD}/gateway`]: [{ methods: ['GET'], paths: ['/catalog/products'] }],
    [`${TD}/orders`]: [{ methods: ['GET'], paths: ['/catalog/products/*'] }],
  },
};

/** A raw request the SDK would never send; trusts the bundle, presents `credentials` if given. */
function send(
  target: ControlTarget,
  credentials: TestCredentials | null,
  body: string | Buffer | undefined,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<RawAnswer> {
  return rawRequest(target, { path: '/v1/policy', body, credentials, headers });
}

describe('control plane: POST /v1/policy', () => {
  let plane: TestControlPlane;
  let other: TestCa;
  let target: ControlTarget;
  /** What the fake store answers: null before any manifest loaded. */
  let version: number | null = 3;
  const asked: string[] = [];
  const creds: Record<string, TestCredentials> = {};

  before(async () => {
    other = await openTestCa({ trustDomain: 'other.local' });
    const policy = {
      policyOf(service: string): ServicePolicy | null {
        asked.push(service);
        if (version === null) return null;
        return { version, callers: Object.hasOwn(POLICIES, service) ? (POLICIES[service] ?? {}) : {} };
      },
    };
    plane = await startTestControlPlane({ routes: () => [policyRoutes({ policy, trustDomain: 'shop.local' })] });
    ({ target } = plane);
    for (const name of ['payments', 'catalog', 'orders', 'gateway', 'control', 'identity']) {
      creds[name] = await issueTestSvid(plane.testCa, name);
    }
  });
  after(async () => {
    await plane.close();
    other.cleanup();
  });

  const ask = (name: string, knownVersion: number) =>
    controlRequest<Record<string, unknown>>(target, {
      method: 'POST',
      path: '/v1/policy',
      body: { knownVersion },
      ...creds[name],
    });

  test('each service gets its own inbound policy, chosen by its certificate, and never another one', async () => {
    assert.deepEqual(await ask('payments', 0), { version: 3, callers: POLICIES['payments'] });
    assert.deepEqual(await ask('catalog', 0), { version: 3, callers: POLICIES['catalog'] });
    // orders has no inbound rules: an empty policy (deny everyone), not someone else's.
    assert.deepEqual(await ask('orders', 2), { version: 3, callers: {} });
  });

  test('a caller that already holds the version gets no rules; an older or newer one gets them', async () => {
    assert.deepEqual(await ask('payments', 3), { version: 3 });
    assert.deepEqual(await ask('payments', 9), { version: 3, callers: POLICIES['payments'] });
  });

  test('components and identities that are not services are refused 403', async () => {
    for (const name of ['gateway', 'control', 'identity']) {
      await assert.rejects(ask(name, 0), { code: 'POLICY_ERR_FORBIDDEN', status: 403 }, name);
    }
  });

  test('no policy loaded yet: 503 POLICY_ERR_UNAVAILABLE', async () => {
    version = null;
    try {
      await assert.rejects(ask('payments', 0), { code: 'POLICY_ERR_UNAVAILABLE', status: 503 });
    } finally {
      version = 3;
    }
  });

  test('no client certificate, or one of another trust domain, is 401 before the body is parsed', async () => {
    const before = asked.length;
    for (const body of ['{"knownVersion":0}', 'not json at all', '[]']) {
      const res = await send(target, null, body);
      assert.equal(res.status, 401, body);
      assert.equal(res.body['error'], 'CA_ERR_API_NO_CLIENT_CERTIFICATE');
      assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id']);
    }
    const foreign = await issueTestSvid(other, 'payments');
    const res = await send(target, foreign, '{"knownVersion":0}');
    assert.equal(res.status, 401);
    assert.equal(res.body['error'], 'CA_ERR_API_NO_CLIENT_CERTIFICATE');
    assert.equal(asked.length, before, 'the store was never asked');
  });

  const hostile: {
    what: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
    status: number;
    code: string;
  }[] = [
    { what: 'no body', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'not JSON', body: '{knownVersion:', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'an array', body: '[0]', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'null', body: 'null', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'a number', body: '0', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'no knownVersion', body: '{}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'a string version', body: '{"knownVersion":"3"}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'a negative version', body: '{"knownVersion":-1}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'a fraction', body: '{"knownVersion":1.5}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'beyond 2^53', body: '{"knownVersion":9007199254740993}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: '1e400', body: '{"knownVersion":1e400}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'null version', body: '{"knownVersion":null}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    { what: 'an object version', body: '{"knownVersion":{"valueOf":3}}', status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
    {
      what: 'a service field naming another service',
      body: '{"knownVersion":0,"service":"catalog"}',
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a spiffeId field',
      body: `{"knownVersion":0,"spiffeId":"${TD}/catalog"}`,
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    {
      what: '__proto__ field',
      body: '{"knownVersion":0,"__proto__":{"service":"catalog"}}',
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    {
      what: 'a duplicate key (the last one wins in JSON.parse; still only knownVersion)',
      body: '{"knownVersion":"x","knownVersion":0}',
      status: 200,
      code: '',
    },
    {
      what: 'a body over the limit',
      body: `{"knownVersion":0,"pad":"${'a'.repeat(2_000)}"}`,
      status: 413,
      code: 'CA_ERR_API_TOO_LARGE',
    },
    {
      what: 'text/plain',
      body: '{"knownVersion":0}',
      headers: { 'content-type': 'text/plain' },
      status: 400,
      code: 'CA_ERR_API_BAD_REQUEST',
    },
    { what: 'no content type', body: '{"knownVersion":0}', headers: {}, status: 400, code: 'CA_ERR_API_BAD_REQUEST' },
  ];
  for (const c of hostile) {
    test(`hostile body: ${c.what} → ${c.status}`, async () => {
      const res = await send(target, creds['payments'] ?? null, c.body, c.headers);
      assert.equal(res.status, c.status);
      if (c.status === 200) assert.deepEqual(res.body, { version: 3, callers: POLICIES['payments'] });
      else {
        assert.equal(res.body['error'], c.code);
        assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id']);
      }
    });
  }

  test('GET is not a route', async () => {
    await assert.rejects(controlRequest(target, { method: 'GET', path: '/v1/policy', ...creds['payments'] }), {
      code: 'CA_ERR_API_NOT_FOUND',
    });
  });
});
