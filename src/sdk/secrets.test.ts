import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import type { CurrentSvid } from '../control/api/index.ts';
import { OPERATOR, type SecretsTestPlane, startSecretsTestPlane } from '../control/api/secrets-testing.ts';
import { issueTestSvid } from '../control/api/testing.ts';
import { openTestCa } from '../control/ca/testing.ts';
import { compileSecretsAcl } from '../control/secrets/acl.ts';
import { isRampartError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { Registry } from '../core/metrics.ts';
import {
  createServiceSecrets,
  SDK_SECRETS_DEFAULTS,
  SDK_SECRETS_ERRORS,
  SECRET_READ_RESULTS,
  type SecretReadResult,
  type ServiceSecrets,
  type ServiceSecretsInit,
} from './secrets.ts';

const TTL = 30_000;
/** What the manifest of the test plane grants payments (catalog: nothing). */
const GRANTED = ['payment-provider-key', 'db-password', 'unset-key'] as const;

describe('sdk: secrets.get over mTLS', () => {
  let plane: SecretsTestPlane;
  let paymentsSvid: CurrentSvid;
  let catalogSvid: CurrentSvid;
  const clients: ServiceSecrets[] = [];
  const plaintext = `sk_test_${randomBytes(16).toString('hex')}`;

  before(async () => {
    plane = await startSecretsTestPlane({ payments: [...GRANTED], catalog: [] });
    await plane.secrets.set(OPERATOR, 'payment-provider-key', Buffer.from(plaintext));
    await plane.secrets.set(OPERATOR, 'db-password', Buffer.from('hunter2-hunter2'));
    paymentsSvid = await plane.svidFor('payments');
    catalogSvid = await plane.svidFor('catalog');
  });
  after(async () => {
    for (const client of clients) await client.close();
    await plane.close();
  });

  const clock = { t: 1_000_000 };
  const client = (svid: () => CurrentSvid | null, extra: Partial<ServiceSecretsInit> = {}) => {
    const secrets = createServiceSecrets({
      control: { url: plane.url, bundle: plane.testCa.ca.bundle().pem, trustDomain: plane.trustDomain },
      svid,
      ttlMs: TTL,
      now: () => clock.t,
      logger: createLogger({ name: 'payments', level: 'silent' }),
      ...extra,
    });
    clients.push(secrets);
    return secrets;
  };
  /** Reads the control plane served (one audit event each). */
  const served = () => plane.audit.reads().length;

  test('a miss reads from the control plane; a hit within the lifetime does not; after it, a miss again', async () => {
    const secrets = client(() => paymentsSvid);
    const before = served();
    const first = await secrets.get('payment-provider-key');
    assert.equal(first.text(), plaintext);
    assert.equal(first.version, 1);
    assert.equal(first.stale, false);
    assert.ok(Buffer.isBuffer(first.value));
    assert.equal(served(), before + 1);
    clock.t += TTL - 1;
    assert.equal((await secrets.get('payment-provider-key')).text(), plaintext);
    assert.equal(served(), before + 1, 'served from the cache');
    clock.t += 1;
    assert.equal((await secrets.get('payment-provider-key')).text(), plaintext);
    assert.equal(served(), before + 2, 'lifetime over: read again');
  });

  test('each get hands out a copy the caller may zero without harming the cache', async () => {
    const secrets = client(() => paymentsSvid);
    const a = await secrets.get('db-password');
    a.value.fill(0);
    assert.equal((await secrets.get('db-password')).text(), 'hunter2-hunter2');
  });

  test('concurrent misses share one read', async () => {
    const secrets = client(() => paymentsSvid);
    const before = served();
    const all = await Promise.all(Array.from({ length: 20 }, () => secrets.get('payment-provider-key')));
    assert.equal(served(), before + 1);
    for (const s of all) assert.equal(s.text(), plaintext);
  });

  test('follows a rotation: after promote, the next miss brings the new version and onRotate fires', async () => {
    const secrets = client(() => paymentsSvid);
    const rotations: unknown[] = [];
    secrets.onRotate((name, change) => rotations.push({ name, ...change }));
    const v1 = await secrets.get('db-password');
    await plane.secrets.set(OPERATOR, 'db-password', Buffer.from('correct-horse-battery'), { stage: true });
    await plane.secrets.promote(OPERATOR, 'db-password');
    assert.equal((await secrets.get('db-password')).version, v1.version, 'still cached');
    clock.t += TTL;
    const v2 = await secrets.get('db-password');
    assert.equal(v2.version, v1.version + 1);
    assert.equal(v2.text(), 'correct-horse-battery');
    assert.deepEqual(rotations, [{ name: 'db-password', from: v1.version, to: v2.version }]);
    // A roll back is followed the same way.
    await plane.secrets.rollback(OPERATOR, 'db-password');
    clock.t += TTL;
    assert.equal((await secrets.get('db-password')).version, v1.version);
  });

  test('a service not granted the secret is refused with SEC_ERR_FORBIDDEN (403), and the read is audited', async () => {
    const secrets = client(() => catalogSvid);
    const before = plane.audit.reads().length;
    await assert.rejects(secrets.get('payment-provider-key'), (err: unknown) => {
      assert.ok(isRampartError(err, 'SEC_ERR_FORBIDDEN'));
      assert.equal(err.status, 403);
      return true;
    });
    assert.deepEqual(plane.audit.reads().slice(before), ['deny:SEC_ERR_FORBIDDEN:spiffe://shop.local/svc/catalog']);
  });

  test('a granted secret never set is SEC_ERR_NOT_FOUND; a name no manifest can declare is SEC_ERR_NAME, locally', async () => {
    const secrets = client(() => paymentsSvid);
    await assert.rejects(secrets.get('unset-key'), (err: unknown) => isRampartError(err, 'SEC_ERR_NOT_FOUND'));
    const before = plane.audit.events.length;
    for (const name of ['', 'UPPER', 'a/b', 'x'.repeat(64), 42 as unknown as string]) {
      await assert.rejects(secrets.get(name), (err: unknown) => isRampartError(err, 'SEC_ERR_NAME'));
    }
    assert.equal(plane.audit.events.length, before, 'nothing was sent');
  });

  test('a renewed SVID is used at once: the keep-alive connection is rebuilt', async () => {
    let current = catalogSvid;
    const secrets = client(() => current);
    await assert.rejects(secrets.get('db-password'), (err: unknown) => isRampartError(err, 'SEC_ERR_FORBIDDEN'));
    current = paymentsSvid;
    assert.equal((await secrets.get('db-password')).name, 'db-password');
  });

  test('without a control plane (or before start) get fails with SDK_ERR_SECRETS_NO_CONTROL_PLANE', async () => {
    const none = createServiceSecrets({ control: null, svid: () => null });
    await assert.rejects(none.get('db-password'), (err: unknown) =>
      isRampartError(err, SDK_SECRETS_ERRORS.noControlPlane),
    );
    const early = client(() => null);
    await assert.rejects(early.get('db-password'), (err: unknown) =>
      isRampartError(err, SDK_SECRETS_ERRORS.noControlPlane),
    );
  });

  test('a control plane that cannot be reached is SDK_ERR_SECRETS_UNAVAILABLE; a cached value is served stale', async () => {
    const secrets = client(() => paymentsSvid, { maxStaleMs: 60_000, timeoutMs: 2_000 });
    await secrets.get('payment-provider-key');
    const unreachable = client(() => paymentsSvid, {
      control: { url: 'https://127.0.0.1:1', bundle: '', trustDomain: plane.trustDomain },
    });
    await assert.rejects(unreachable.get('payment-provider-key'), (err: unknown) =>
      isRampartError(err, SDK_SECRETS_ERRORS.unavailable),
    );
    // The control plane is audited as down: reads fail closed, the cache serves the last value a while.
    plane.audit.fail = true;
    try {
      clock.t += TTL;
      const stale = await secrets.get('payment-provider-key');
      assert.equal(stale.stale, true);
      assert.equal(stale.text(), plaintext);
      clock.t += 60_000;
      await assert.rejects(secrets.get('payment-provider-key'), (err: unknown) =>
        isRampartError(err, 'SEC_ERR_AUDIT_UNAVAILABLE'),
      );
    } finally {
      plane.audit.fail = false;
    }
  });

  test('an answer that is not JSON is SDK_ERR_SECRETS_UNAVAILABLE, and no part of the body is in the error chain', async () => {
    // A control plane (the control SPIFFE ID, so the client accepts it) whose body breaks off inside a
    // value: the JSON parser's message quotes the text around the bad token.
    const control = await plane.svidFor('control');
    const fragment = 'c3VwZXJzZWNyZXRwYXNzd29yZA';
    const server = createHttpsServer(
      { cert: control.certificatePem, key: control.keyPem, ca: control.bundlePem, requestCert: true },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"version":1,"value":${fragment}}`);
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const secrets = client(() => paymentsSvid, {
        control: { url: `https://127.0.0.1:${port}`, bundle: '', trustDomain: plane.trustDomain },
      });
      const err = await secrets.get('payment-provider-key').then(
        () => assert.fail('a malformed answer was accepted'),
        (e: unknown) => e,
      );
      assert.ok(isRampartError(err, SDK_SECRETS_ERRORS.unavailable));
      const seen = inspect(err, { depth: 10 }) + JSON.stringify(err);
      assert.ok(!seen.includes(fragment.slice(0, 8)), 'the body leaked into the error');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** How the stand-in control plane answers a read. */
  type Behaviour = ((req: IncomingMessage, res: ServerResponse) => void) | 'connection refused';
  const json = (status: number, body: unknown) => (_req: IncomingMessage, res: ServerResponse) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(text);
  };
  const refusal = (status: number, error: string) => json(status, { error, error_id: 'e-1' });
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  /** What the answer does to the value cached before it (seen through an outage afterwards). */
  type CacheAfter = 'replaced' | 'kept' | 'dropped';
  const answers: ReadonlyArray<
    readonly [
      label: string,
      behaviour: Behaviour,
      outcome: { stale: true } | { version: number } | { code: string; status: number },
      result: SecretReadResult,
      cache: CacheAfter,
    ]
  > = [
    [
      '200 with a new version',
      json(200, { name: 'k', version: 2, value: b64('v2') }),
      { version: 2 },
      'ok',
      'replaced',
    ],
    [
      '403 SEC_ERR_FORBIDDEN (grant revoked)',
      refusal(403, 'SEC_ERR_FORBIDDEN'),
      { code: 'SEC_ERR_FORBIDDEN', status: 403 },
      'refused',
      'dropped',
    ],
    [
      '403 with a body that is not JSON',
      json(403, '<html>no</html>'),
      { code: SDK_SECRETS_ERRORS.refused, status: 403 },
      'refused',
      'dropped',
    ],
    [
      '403 with an unknown code',
      refusal(403, 'SOMETHING_ELSE'),
      { code: SDK_SECRETS_ERRORS.refused, status: 403 },
      'refused',
      'dropped',
    ],
    [
      '401 (the SVID refused)',
      refusal(401, 'CA_ERR_API_NO_CLIENT_CERTIFICATE'),
      { code: 'CA_ERR_API_NO_CLIENT_CERTIFICATE', status: 401 },
      'refused',
      'dropped',
    ],
    ['401 with an empty body', json(401, ''), { code: SDK_SECRETS_ERRORS.refused, status: 401 }, 'refused', 'dropped'],
    [
      '404 SEC_ERR_NOT_FOUND',
      refusal(404, 'SEC_ERR_NOT_FOUND'),
      { code: 'SEC_ERR_NOT_FOUND', status: 404 },
      'not_found',
      'dropped',
    ],
    [
      '503 SEC_ERR_AUDIT_UNAVAILABLE',
      refusal(503, 'SEC_ERR_AUDIT_UNAVAILABLE'),
      { stale: true },
      'unavailable',
      'kept',
    ],
    ['500 with an HTML body', json(500, '<html>oops</html>'), { stale: true }, 'unavailable', 'kept'],
    ['502 with no body', json(502, ''), { stale: true }, 'unavailable', 'kept'],
    ['429', json(429, ''), { stale: true }, 'unavailable', 'kept'],
    ['400 CA_ERR_API_BAD_REQUEST', refusal(400, 'CA_ERR_API_BAD_REQUEST'), { stale: true }, 'bad_answer', 'kept'],
    ['connection refused', 'connection refused', { stale: true }, 'unreachable', 'kept'],
    ['connection reset before an answer', (req) => req.socket.destroy(), { stale: true }, 'unreachable', 'kept'],
    ['no answer within the timeout', () => {}, { stale: true }, 'unreachable', 'kept'],
    ['200 with a body that is not JSON', json(200, '{"version":2,"value":'), { stale: true }, 'bad_answer', 'kept'],
    ['200 without a version', json(200, { value: b64('v2') }), { stale: true }, 'bad_answer', 'kept'],
    ['200 with version 0', json(200, { version: 0, value: b64('v2') }), { stale: true }, 'bad_answer', 'kept'],
    ['200 with a JSON array', json(200, '[1,2]'), { stale: true }, 'bad_answer', 'kept'],
    [
      '200 larger than the limit',
      json(200, { version: 2, value: 'A'.repeat(SDK_SECRETS_DEFAULTS.maxResponseBytes) }),
      { stale: true },
      'bad_answer',
      'kept',
    ],
  ];

  for (const [label, behaviour, outcome, result, cacheAfter] of answers) {
    test(`answer table: ${label} → ${'code' in outcome ? outcome.code : 'stale' in outcome ? 'stale value' : `version ${outcome.version}`}, ${result}, cached value ${cacheAfter}`, async () => {
      const control = await plane.svidFor('control');
      let answer: Behaviour = json(200, { name: 'k', version: 1, value: b64('v1') });
      const server = createHttpsServer(
        { cert: control.certificatePem, key: control.keyPem, ca: control.bundlePem, requestCert: true },
        (req, res) => {
          req.resume();
          req.on('end', () => (typeof answer === 'function' ? answer(req, res) : undefined));
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const stop = async () => {
        server.closeAllConnections();
        if (server.listening) await new Promise((resolve) => server.close(resolve));
      };
      try {
        const { port } = server.address() as AddressInfo;
        const lines: Record<string, unknown>[] = [];
        const destination = new Writable({
          write(chunk, _encoding, done) {
            lines.push(JSON.parse(String(chunk)));
            done();
          },
        });
        const registry = new Registry();
        const secrets = client(() => paymentsSvid, {
          control: { url: `https://127.0.0.1:${port}`, bundle: '', trustDomain: plane.trustDomain },
          maxStaleMs: 60_000,
          timeoutMs: 300,
          registry,
          logger: createLogger({ name: 'payments', level: 'info', destination }),
        });
        const reads = async () => {
          const values = (await registry.getSingleMetric('rampart_service_secret_reads_total')?.get())?.values ?? [];
          return Object.fromEntries(
            SECRET_READ_RESULTS.map((r) => [r, values.find((v) => v.labels['result'] === r)?.value]),
          );
        };
        const staleServed = async () =>
          (await registry.getSingleMetric('rampart_service_secret_stale_served_total')?.get())?.values[0]?.value;

        assert.equal((await secrets.get('k')).text(), 'v1');
        clock.t += TTL;
        answer = behaviour;
        if (behaviour === 'connection refused') await stop();
        const got = await secrets.get('k').then(
          (secret) => ({ version: secret.version, text: secret.text(), stale: secret.stale }),
          (err: unknown) => err,
        );
        if ('code' in outcome) {
          assert.ok(isRampartError(got, outcome.code), `${outcome.code}, not ${inspect(got)}`);
          assert.equal(got.status, outcome.status);
        } else if ('stale' in outcome) {
          assert.deepEqual(got, { version: 1, text: 'v1', stale: true });
        } else {
          assert.deepEqual(got, { version: outcome.version, text: 'v2', stale: false });
        }

        // Metrics: the read is counted under its result only; a stale value is counted as such.
        const expected = Object.fromEntries(SECRET_READ_RESULTS.map((r) => [r, 0]));
        expected['ok'] = 1;
        expected[result] = (expected[result] ?? 0) + 1;
        assert.deepEqual(await reads(), expected);
        assert.equal(await staleServed(), 'stale' in outcome ? 1 : 0);
        // Logs: a refusal is never reported as the control plane being unavailable, nor the reverse.
        const events = lines.map((l) => l['event']).filter((e) => e === 'secret.refused' || e === 'secret.unavailable');
        const answered = result === 'refused' || result === 'not_found';
        assert.deepEqual(events, result === 'ok' ? [] : [answered ? 'secret.refused' : 'secret.unavailable']);
        assert.ok(!JSON.stringify(lines).includes(b64('v1')) && !JSON.stringify(lines).includes('v1"'));

        // The cache afterwards, seen through an outage: what is left to serve stale, if anything.
        if (server.listening) answer = refusal(503, 'SEC_ERR_STORE');
        clock.t += TTL;
        const after = await secrets.get('k').then(
          (secret) => `stale v${secret.version}`,
          (err: unknown) => (isRampartError(err) ? err.code : String(err)),
        );
        const left = { replaced: 'stale v2', kept: 'stale v1', dropped: 'nothing' }[cacheAfter];
        assert.equal(after.startsWith('stale') ? after : 'nothing', left, `after: ${after}`);
      } finally {
        await stop();
      }
    });
  }

  test('an SVID the real control plane refuses (401): the cached value is not served after it', async () => {
    const other = await openTestCa({ trustDomain: 'other.local' });
    try {
      // A certificate of another trust domain under the right name: TLS completes, the API says 401.
      const foreign = await issueTestSvid(other, 'payments');
      let current = paymentsSvid;
      const secrets = client(() => current, { maxStaleMs: 60_000 });
      assert.equal((await secrets.get('payment-provider-key')).stale, false);
      current = { ...paymentsSvid, certificatePem: foreign.cert, keyPem: foreign.key };
      clock.t += TTL;
      await assert.rejects(secrets.get('payment-provider-key'), (err: unknown) => {
        assert.ok(isRampartError(err, 'CA_ERR_API_NO_CLIENT_CERTIFICATE'), inspect(err));
        assert.equal(err.status, 401);
        return true;
      });
      // The SVID fine again, the control plane unable to serve: nothing is left to serve stale.
      current = paymentsSvid;
      plane.audit.fail = true;
      await assert.rejects(secrets.get('payment-provider-key'), (err: unknown) =>
        isRampartError(err, 'SEC_ERR_AUDIT_UNAVAILABLE'),
      );
    } finally {
      plane.audit.fail = false;
      other.cleanup();
    }
  });

  test('a revoked grant through the real control plane: the cached value is not served after the 403', async () => {
    const granted = compileSecretsAcl({
      trustDomain: plane.trustDomain,
      secrets: { 'db-password': { name: 'db-password', description: '' } },
      services: {
        payments: { name: 'payments', run: '/x.ts', routes: [], calls: [], secrets: ['db-password'], env: {} },
      },
    });
    const secrets = client(() => paymentsSvid, { maxStaleMs: 60_000 });
    plane.secrets.setAcl(granted);
    try {
      assert.equal((await secrets.get('db-password')).stale, false);
      // The grant removed from the manifest (what a reload installs): the read is refused.
      plane.secrets.setAcl(compileSecretsAcl({ trustDomain: plane.trustDomain, secrets: {}, services: {} }));
      clock.t += TTL;
      await assert.rejects(secrets.get('db-password'), (err: unknown) => isRampartError(err, 'SEC_ERR_FORBIDDEN'));
      // Granted again but the control plane cannot serve (audit log down): nothing is left to serve stale.
      plane.secrets.setAcl(granted);
      plane.audit.fail = true;
      await assert.rejects(secrets.get('db-password'), (err: unknown) =>
        isRampartError(err, 'SEC_ERR_AUDIT_UNAVAILABLE'),
      );
    } finally {
      plane.audit.fail = false;
      plane.secrets.setAcl(
        compileSecretsAcl({
          trustDomain: plane.trustDomain,
          secrets: Object.fromEntries(GRANTED.map((name) => [name, { name, description: '' }])),
          services: {
            payments: { name: 'payments', run: '/x.ts', routes: [], calls: [], secrets: [...GRANTED], env: {} },
            catalog: { name: 'catalog', run: '/x.ts', routes: [], calls: [], secrets: [], env: {} },
          },
        }),
      );
    }
  });

  test('a secret logged by mistake shows its name and version, not its value', async () => {
    const secret = await client(() => paymentsSvid).get('payment-provider-key');
    for (const shown of [
      JSON.stringify(secret),
      inspect(secret),
      JSON.stringify({ secret }),
      `${inspect({ secret })}`,
    ]) {
      assert.ok(!shown.includes(plaintext), shown);
      assert.ok(shown.includes('payment-provider-key'));
    }
  });

  test('close drops the cache: a later get fails instead of serving a value', async () => {
    const secrets = client(() => paymentsSvid);
    await secrets.get('payment-provider-key');
    await secrets.close();
    await assert.rejects(secrets.get('payment-provider-key'), (err: unknown) =>
      isRampartError(err, SDK_SECRETS_ERRORS.noControlPlane),
    );
  });
});
