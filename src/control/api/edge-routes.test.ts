import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { edgeCertificateNames } from '../../config/edge-certificate-names.ts';
import type { GatewayConfig } from '../../config/model.ts';
import { requestEdgeCertificate } from '../../gateway/edge-certificate-source.ts';
import { CA_ERRORS } from '../ca/index.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import type { ControlTarget } from './client.ts';
import { createEdgeRoutes, EDGE_CERTIFICATE_ROUTE } from './edge-routes.ts';
import { CONTROL_API_ERRORS } from './errors.ts';
import type { ApiRefusal } from './server.ts';
import {
  type RawAnswer,
  rawRequest,
  startTestControlPlane,
  type TestControlPlane,
  type TestCredentials,
} from './testing.ts';
import { createWorkloadKey } from './workload-key.ts';

type GatewaySection = Pick<GatewayConfig, 'tls' | 'listen'>;

/** A request the typed client would never send, optionally with a client certificate. */
function raw(
  target: ControlTarget,
  body: string | undefined,
  credentials?: TestCredentials,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<RawAnswer> {
  return rawRequest(target, { path: '/v1/edge-certificates', body, credentials, headers });
}

describe('edge certificate route', () => {
  let plane: TestControlPlane;
  let t: TestCa;
  let other: TestCa;
  let target: ControlTarget;
  let refusals: ApiRefusal[];
  let gateway: TestCredentials;
  let catalog: TestCredentials;
  let foreign: TestCredentials;
  let section: GatewaySection | Error = {
    listen: { host: '127.0.0.1', port: 8443 },
    tls: { mode: 'auto', names: ['shop.example.test'] },
  };

  before(async () => {
    plane = await startTestControlPlane({
      routes: ({ testCa, logger }) => [
        createEdgeRoutes({
          ca: testCa.ca,
          trustDomain: 'shop.local',
          gateway: () => {
            if (section instanceof Error) throw section;
            return section;
          },
          logger,
        }),
      ],
    });
    ({ testCa: t, target, refusals } = plane);
    other = await openTestCa();
    gateway = await plane.svid('gateway');
    catalog = await plane.svid('catalog');
    // An SVID for svc/gateway of the same trust domain from another CA: not in our bundle.
    const otherPlane = await startTestControlPlane({ testCa: other });
    foreign = await otherPlane.svid('gateway');
    await otherPlane.close();
  });

  after(async () => {
    await plane.close();
    other.cleanup();
  });

  test('the gateway gets a certificate for the manifest names, the listen host and localhost', async () => {
    const key = await createWorkloadKey();
    const res = await requestEdgeCertificate(target, gateway, key.csrPem);
    assert.deepEqual(res.names, ['shop.example.test', '127.0.0.1', 'localhost']);
    const leaf = new X509Certificate(res.certificate);
    assert.ok(leaf.checkHost('localhost'));
    assert.ok(leaf.checkIP('127.0.0.1'));
    assert.ok(leaf.checkHost('shop.example.test'));
    assert.equal(leaf.checkHost('evil.test'), undefined);
    assert.ok(leaf.verify(new X509Certificate(res.bundle.pem).publicKey));
    assert.equal(res.bundle.sequence, t.ca.bundle().sequence);
  });

  test('only the gateway: services are 403, no or foreign certificates 401', async () => {
    const body = JSON.stringify({ csr: (await createWorkloadKey()).csrPem });
    refusals.length = 0;
    const service = await raw(target, body, catalog);
    assert.equal(service.status, 403);
    assert.equal(service.body.error, CONTROL_API_ERRORS.forbidden);
    assert.deepEqual(Object.keys(service.body).sort(), ['error', 'error_id']);
    const none = await raw(target, body);
    assert.equal(none.status, 401);
    assert.equal(none.body.error, CONTROL_API_ERRORS.noClientCertificate);
    const alien = await raw(target, body, foreign);
    assert.equal(alien.status, 401);
    assert.equal(alien.body.error, CONTROL_API_ERRORS.noClientCertificate);
    // An edge certificate (serverAuth only, no URI SAN) is never a client identity.
    const key = await createWorkloadKey();
    const edge = await requestEdgeCertificate(target, gateway, key.csrPem);
    const asClient = await raw(target, body, { cert: edge.certificate, key: key.keyPem });
    assert.equal(asClient.status, 401);
    assert.deepEqual(
      refusals.map((r) => [r.route, r.code, r.status]),
      [
        [EDGE_CERTIFICATE_ROUTE, CONTROL_API_ERRORS.forbidden, 403],
        [EDGE_CERTIFICATE_ROUTE, CONTROL_API_ERRORS.noClientCertificate, 401],
        [EDGE_CERTIFICATE_ROUTE, CONTROL_API_ERRORS.noClientCertificate, 401],
        [EDGE_CERTIFICATE_ROUTE, CONTROL_API_ERRORS.noClientCertificate, 401],
      ],
    );
  });

  test('a service is refused before its body is read', async () => {
    const res = await raw(target, 'not json', catalog);
    assert.equal(res.status, 403);
  });

  test('hostile bodies from the gateway are 400 with a code and nothing else', async () => {
    const csr = (await createWorkloadKey()).csrPem;
    const rows: [string, string | undefined, Record<string, string> | undefined, string][] = [
      ['no body', undefined, undefined, CONTROL_API_ERRORS.badRequest],
      ['not json', '{csr', undefined, CONTROL_API_ERRORS.badRequest],
      ['an array', JSON.stringify([csr]), undefined, CONTROL_API_ERRORS.badRequest],
      ['null', 'null', undefined, CONTROL_API_ERRORS.badRequest],
      ['csr a number', JSON.stringify({ csr: 1 }), undefined, CONTROL_API_ERRORS.badRequest],
      ['csr empty', JSON.stringify({ csr: '' }), undefined, CONTROL_API_ERRORS.badRequest],
      ['csr too long', JSON.stringify({ csr: 'x'.repeat(16 * 1024 + 1) }), undefined, CONTROL_API_ERRORS.badRequest],
      ['names in the request', JSON.stringify({ csr, names: ['evil.test'] }), undefined, CONTROL_API_ERRORS.badRequest],
      ['prototype key', '{"csr":"x","__proto__":{"names":["evil.test"]}}', undefined, CONTROL_API_ERRORS.badRequest],
      ['not a CSR', JSON.stringify({ csr: 'hello' }), undefined, CA_ERRORS.csrMalformed],
      ['a certificate, not a CSR', JSON.stringify({ csr: gateway.cert }), undefined, CA_ERRORS.csrMalformed],
      [
        'form content type',
        `csr=${encodeURIComponent(csr)}`,
        { 'content-type': 'application/x-www-form-urlencoded' },
        CONTROL_API_ERRORS.badRequest,
      ],
    ];
    for (const [name, body, headers, code] of rows) {
      const res = await raw(target, body, gateway, headers);
      assert.equal(res.status, 400, name);
      assert.equal(res.body.error, code, name);
      assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id'], name);
    }
    const huge = await raw(target, JSON.stringify({ csr: 'x'.repeat(64 * 1024) }), gateway);
    assert.equal(huge.status, 413);
  });

  test('a manifest not in tls: auto is refused; an unreadable one keeps the last names', async () => {
    const csr = (await createWorkloadKey()).csrPem;
    const saved = section;
    try {
      section = { listen: { host: '127.0.0.1', port: 8443 }, tls: { mode: 'off' } };
      const off = await raw(target, JSON.stringify({ csr }), gateway);
      assert.equal(off.status, 403);
      assert.equal(off.body.error, CONTROL_API_ERRORS.forbidden);
      section = saved;
      await requestEdgeCertificate(target, gateway, csr);
      section = new Error('manifest being edited');
      const kept = await requestEdgeCertificate(target, gateway, csr);
      assert.deepEqual(kept.names, ['shop.example.test', '127.0.0.1', 'localhost']);
      // Names from a manifest that the CA refuses (written around the loader) are refused, not issued.
      section = { listen: { host: '127.0.0.1', port: 8443 }, tls: { mode: 'auto', names: ['*.shop.test'] } };
      const wildcard = await raw(target, JSON.stringify({ csr }), gateway);
      assert.equal(wildcard.body.error, CA_ERRORS.edgeName);
    } finally {
      section = saved;
    }
  });
});

describe('edge certificate names', () => {
  const rows: [string, GatewaySection, string[]][] = [
    [
      'loopback IPv4',
      { listen: { host: '127.0.0.1', port: 1 }, tls: { mode: 'auto', names: [] } },
      ['127.0.0.1', 'localhost'],
    ],
    ['loopback IPv6', { listen: { host: '::1', port: 1 }, tls: { mode: 'auto', names: [] } }, ['::1', 'localhost']],
    ['localhost', { listen: { host: 'localhost', port: 1 }, tls: { mode: 'auto', names: [] } }, ['localhost']],
    [
      'every address',
      { listen: { host: '0.0.0.0', port: 1 }, tls: { mode: 'auto', names: ['a.test'] } },
      ['a.test', 'localhost'],
    ],
    [
      'a public address',
      { listen: { host: '192.0.2.10', port: 1 }, tls: { mode: 'auto', names: ['a.test'] } },
      ['a.test', '192.0.2.10'],
    ],
    ['files mode', { listen: { host: '127.0.0.1', port: 1 }, tls: { mode: 'files', cert: '/c', key: '/k' } }, []],
    ['off', { listen: { host: '127.0.0.1', port: 1 }, tls: { mode: 'off' } }, []],
  ];
  for (const [name, gateway, expected] of rows) {
    test(name, () => assert.deepEqual(edgeCertificateNames(gateway), expected));
  }
});
