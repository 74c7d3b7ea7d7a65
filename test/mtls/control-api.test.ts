/**
 * The control plane API in process, against a real CA with a controllable clock: the hostile-input
 * table, join tokens (reused, forged, expired, unknown, malformed), the launcher credential, and
 * renewal authenticated by the client certificate only.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  type ApiRefusal,
  CONTROL_API_ERRORS,
  type ControlTarget,
  createWorkloadKey,
  requestBundle,
  requestJoinToken,
  requestRenewal,
  requestSvid,
  type ServerCertificate,
} from '../../src/control/api/index.ts';
import { rawJsonRequest, startTestControlPlane, type TestControlPlane } from '../../src/control/api/testing.ts';
import { CA_ERRORS } from '../../src/control/ca/index.ts';
import { openTestCa, type TestCa } from '../../src/control/ca/testing.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { createLogger } from '../../src/core/logger.ts';
import { svidIdentity } from '../../src/core/spiffe.ts';

const CREDENTIAL = 'l'.repeat(43);

/** A request the typed client would never send (wrong types, sizes, headers). Trusts the bundle only. */
const raw = rawJsonRequest;

async function refusedWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => isRampartError(err, code));
}

describe('control plane API', () => {
  let plane: TestControlPlane;
  let test1: TestCa;
  let other: TestCa;
  let cert: ServerCertificate;
  let target: ControlTarget;
  let refusals: ApiRefusal[];

  before(async () => {
    plane = await startTestControlPlane({ launcherCredential: CREDENTIAL });
    ({ testCa: test1, cert, target, refusals } = plane);
    other = await openTestCa();
  });
  after(async () => {
    await plane.close();
    other.cleanup();
  });

  const mint = async (service = 'catalog') => (await requestJoinToken(target, CREDENTIAL, service)).token;

  test('join token → SVID for exactly that service, then renewal over mTLS names the same service', async () => {
    const token = await mint('catalog');
    const key = await createWorkloadKey();
    const first = await requestSvid(target, token, key.csrPem);
    assert.equal(first.spiffeId, 'spiffe://shop.local/svc/catalog');
    const leaf = new X509Certificate(first.certificate);
    assert.equal(svidIdentity(leaf, 'shop.local').id, 'spiffe://shop.local/svc/catalog');
    assert.ok(leaf.verify(new X509Certificate(first.bundle.pem).publicKey));
    assert.equal(first.bundle.sequence, test1.ca.bundle().sequence);

    const next = await createWorkloadKey();
    const renewed = await requestRenewal(target, { cert: first.certificate, key: key.keyPem }, next.csrPem);
    assert.equal(renewed.spiffeId, 'spiffe://shop.local/svc/catalog');
    const renewedLeaf = new X509Certificate(renewed.certificate);
    assert.notEqual(renewedLeaf.serialNumber, leaf.serialNumber);
    assert.ok(renewedLeaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(next.keyPem)));
  });

  test('the identity of a renewal comes from the client certificate, never from the request', async () => {
    const key = await createWorkloadKey();
    const svid = await requestSvid(target, await mint('orders'), key.csrPem);
    const next = await createWorkloadKey();
    const res = await raw(target, 'POST', '/v1/svids/renew', JSON.stringify({ csr: next.csrPem, service: 'payments' }));
    assert.equal(res.status, 401, 'no client certificate');
    assert.equal(res.body.error, CONTROL_API_ERRORS.noClientCertificate);
    const renewed = await requestRenewal(target, { cert: svid.certificate, key: key.keyPem }, next.csrPem);
    assert.equal(renewed.spiffeId, 'spiffe://shop.local/svc/orders');
  });

  test('a join token used twice is refused, and the refusal is recorded', async () => {
    const token = await mint();
    await requestSvid(target, token, (await createWorkloadKey()).csrPem);
    refusals.length = 0;
    await refusedWith(requestSvid(target, token, (await createWorkloadKey()).csrPem), CA_ERRORS.tokenReused);
    assert.deepEqual(
      refusals.map((r) => [r.route, r.code, r.status]),
      [['POST /v1/svids', CA_ERRORS.tokenReused, 401]],
    );
  });

  test('forged, unknown, malformed and expired join tokens are refused', async () => {
    const csr = (await createWorkloadKey()).csrPem;
    const real = await mint();
    // Same selector (first 16 bytes), another secret.
    const bytes = Buffer.from(real, 'base64url');
    bytes[40] = (bytes[40] ?? 0) ^ 0xff;
    await refusedWith(requestSvid(target, bytes.toString('base64url'), csr), CA_ERRORS.tokenForged);
    const unknown = Buffer.alloc(48, 7).toString('base64url');
    await refusedWith(requestSvid(target, unknown, csr), CA_ERRORS.tokenUnknown);
    await refusedWith(requestSvid(target, 'not-a-token', csr), CA_ERRORS.tokenMalformed);

    const expiring = await mint();
    const start = test1.clock.now;
    test1.clock.now = start + 11 * 60_000;
    try {
      await refusedWith(requestSvid(target, expiring, csr), CA_ERRORS.tokenExpired);
    } finally {
      test1.clock.now = start;
    }
    // The real token was not spent by the forgery.
    assert.equal((await requestSvid(target, real, csr)).spiffeId, 'spiffe://shop.local/svc/catalog');
  });

  test('join tokens are minted only with the launcher credential', async () => {
    const body = JSON.stringify({ service: 'catalog' });
    for (const authorization of [
      undefined,
      '',
      `Bearer ${CREDENTIAL.slice(1)}`,
      `Bearer ${CREDENTIAL}x`,
      `Bearer ${'m'.repeat(43)}`,
      `Basic ${CREDENTIAL}`,
      `bearer  ${CREDENTIAL}`,
      // (Trailing whitespace is not part of a field value, RFC 9110 §5.5: Node trims it, so it is no row here.)
      `Bearer ${CREDENTIAL},x`,
      `Bearer ${CREDENTIAL} ${CREDENTIAL}`,
    ]) {
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
      const res = await raw(target, 'POST', '/v1/join-tokens', body, headers);
      assert.equal(res.status, 401, String(authorization));
      assert.equal(res.body.error, CONTROL_API_ERRORS.unauthorized);
    }
    await refusedWith(requestJoinToken(target, 'x'.repeat(43), 'catalog'), CONTROL_API_ERRORS.unauthorized);
    const ok = await raw(target, 'POST', '/v1/join-tokens', body, { authorization: `Bearer ${CREDENTIAL}` });
    assert.equal(ok.status, 200);
    assert.match(String(ok.body.token), /^[A-Za-z0-9_-]{64}$/);
  });

  test('hostile requests: fixed JSON errors with a code and an error id, no detail', async () => {
    const auth = { authorization: `Bearer ${CREDENTIAL}` };
    const rows: [string, string, string | Buffer | undefined, Record<string, string>, number, string][] = [
      ['GET', '/', undefined, {}, 404, CONTROL_API_ERRORS.notFound],
      ['GET', '/v1/svids', undefined, {}, 404, CONTROL_API_ERRORS.notFound],
      ['GET', '/v1/bundle?x=1', undefined, {}, 404, CONTROL_API_ERRORS.notFound],
      ['GET', '/v1/bundle/', undefined, {}, 404, CONTROL_API_ERRORS.notFound],
      ['DELETE', '/v1/bundle', undefined, {}, 404, CONTROL_API_ERRORS.notFound],
      [
        'POST',
        '/v1/svids',
        '{"token":"a","csr":"b"}',
        { 'content-type': 'text/plain' },
        400,
        CONTROL_API_ERRORS.badRequest,
      ],
      ['POST', '/v1/svids', 'not json', {}, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/svids', '[]', {}, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/svids', 'null', {}, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/svids', '{}', {}, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/svids', '{"token":1,"csr":"x"}', {}, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/svids', '', {}, 400, CONTROL_API_ERRORS.badRequest],
      ['POST', '/v1/svids', Buffer.alloc(64 * 1024, 0x20), {}, 413, CONTROL_API_ERRORS.tooLarge],
      ['POST', '/v1/join-tokens', '{"service":"Not A Name"}', auth, 400, CA_ERRORS.serviceName],
      ['POST', '/v1/join-tokens', '{"service":"../etc"}', auth, 400, CA_ERRORS.serviceName],
    ];
    const token = await mint();
    rows.push(['POST', '/v1/svids', JSON.stringify({ token, csr: 'garbage' }), {}, 400, CA_ERRORS.csrMalformed]);
    for (const [method, path, body, headers, status, code] of rows) {
      const res = await raw(target, method, path, body, headers);
      assert.equal(res.status, status, `${method} ${path}`);
      assert.equal(res.body.error, code, `${method} ${path}`);
      assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id'], `${method} ${path}`);
    }
    // A bad CSR does not burn the token.
    assert.ok(await requestSvid(target, token, (await createWorkloadKey()).csrPem));
  });

  test('renewal with a certificate from another CA, or an unauthorized one, is refused', async () => {
    const key = await createWorkloadKey();
    const foreign = await other.ca.issue({ csr: key.csrPem, serviceName: 'catalog' });
    await refusedWith(
      requestRenewal(target, { cert: foreign.certificatePem, key: key.keyPem }, (await createWorkloadKey()).csrPem),
      CONTROL_API_ERRORS.noClientCertificate,
    );
  });

  test('a CA rotation reaches a workload through the bundle refresh, which it acknowledges over mTLS', async () => {
    const { createSvidSource } = await import('../../src/control/api/index.ts');
    const { createMetrics } = await import('../../src/core/metrics.ts');
    const source = createSvidSource({
      control: target,
      joinToken: await mint('catalog'),
      expectedId: 'spiffe://shop.local/svc/catalog',
      logger: createLogger({ name: 'catalog', level: 'silent' }),
      registry: createMetrics('catalog'),
    });
    try {
      const first = await source.start();
      const updates: number[] = [];
      source.onRenewed((svid) => updates.push(svid.bundleSequence));
      const rotation = await test1.ca.rotateNow();
      assert.ok(rotation.publishedSequence > first.bundleSequence);
      refusals.length = 0;
      await source.refreshBundle();
      assert.deepEqual(updates, [rotation.publishedSequence]);
      assert.equal(source.current().bundlePem, test1.ca.bundle().pem);
      assert.equal(source.current().certificatePem, first.certificatePem, 'same SVID, newer bundle');
      assert.deepEqual(refusals, [], 'the acknowledgement was accepted');
      // Nothing newer: nothing installed.
      await source.refreshBundle();
      assert.equal(updates.length, 1);
    } finally {
      source.close();
    }
    const ack = await raw(target, 'POST', '/v1/bundle/ack', '{"sequence":1}');
    assert.equal(ack.status, 401, 'acknowledging needs the holder certificate');
    assert.equal(ack.body.error, CONTROL_API_ERRORS.noClientCertificate);
  });

  test('the bundle endpoint serves the CA certificates with their sequence', async () => {
    const bundle = await requestBundle(target);
    assert.equal(bundle.sequence, test1.ca.bundle().sequence);
    assert.equal(bundle.pem, test1.ca.bundle().pem);
  });

  test('clients refuse a control plane whose certificate is not the control SPIFFE ID', async () => {
    // A server presenting an SVID of the right CA but another identity (here: the CA's own bundle is
    // trusted, the expected ID is checked): pretend the control plane must be `gateway`'s.
    const { spiffeServerCheck } = await import('../../src/control/api/client.ts');
    const leaf = new X509Certificate(cert.current().cert);
    const check = spiffeServerCheck('spiffe://shop.local/svc/gateway', 'shop.local');
    const err = check('127.0.0.1', { raw: leaf.raw } as never);
    assert.ok(isRampartError(err, CONTROL_API_ERRORS.wrongIdentity));
    assert.equal(
      spiffeServerCheck('spiffe://shop.local/svc/control', 'shop.local')('x', { raw: leaf.raw } as never),
      undefined,
    );
    // And the bundle of another CA does not verify it at all.
    await refusedWith(requestBundle({ ...target, bundle: other.ca.bundle().pem }), CONTROL_API_ERRORS.unavailable);
  });
});
