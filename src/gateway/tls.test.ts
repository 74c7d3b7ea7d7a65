import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { connect, getCiphers } from 'node:tls';
import { Registry } from 'prom-client';
import { makeCertificate } from '../../test/helpers/certificates.ts';
import { DEFAULTS } from '../config/defaults.ts';
import { isRampartError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import {
  certificateCovers,
  checkCertificatePair,
  createCertificateInstaller,
  loadCertificatePair,
  TLS_CIPHERS,
  tlsServerOptions,
} from './tls.ts';

describe('TLS settings', () => {
  test('TLS 1.2 minimum, 1.3 maximum, server order, ALPN http/1.1, the manifest handshake timeout', async () => {
    const cert = await makeCertificate();
    const options = tlsServerOptions(checkCertificatePair(cert.cert, cert.key), {
      ...DEFAULTS.gatewayLimits,
      tlsHandshakeTimeoutMs: 1234,
    });
    assert.equal(options.minVersion, 'TLSv1.2');
    assert.equal(options.maxVersion, 'TLSv1.3');
    assert.equal(options.honorCipherOrder, true);
    assert.deepEqual(options.ALPNProtocols, ['http/1.1']);
    assert.equal(options.handshakeTimeout, 1234);
  });

  test('the cipher list: TLS 1.3 suites named (or Node caps at 1.2), ECDHE + AEAD only for 1.2', () => {
    const suites = TLS_CIPHERS.split(':');
    assert.ok(
      suites.some((s) => s.startsWith('TLS_')),
      'TLS 1.3 suites are listed',
    );
    for (const suite of suites.filter((s) => !s.startsWith('TLS_'))) {
      assert.match(suite, /^ECDHE-(ECDSA|RSA)-/, `${suite}: forward secrecy`);
      assert.match(suite, /(GCM-SHA(256|384)|CHACHA20-POLY1305)$/, `${suite}: AEAD`);
      assert.ok(getCiphers().includes(suite.toLowerCase()), `${suite} is known to this OpenSSL`);
    }
  });
});

describe('checkCertificatePair', () => {
  const code = (expected: string) => (err: unknown) => isRampartError(err, expected);

  test('accepts a valid pair and reports its expiry and fingerprint', async () => {
    const cert = await makeCertificate();
    const pair = checkCertificatePair(cert.cert, cert.key);
    assert.equal(pair.fingerprint, cert.fingerprint);
    assert.equal(pair.notAfter.getTime(), new X509Certificate(cert.cert).validToDate.getTime());
  });

  test('refuses mismatched, expired, not-yet-valid, unparsable and weak pairs, each with its code', async () => {
    const a = await makeCertificate();
    const b = await makeCertificate();
    const expired = await makeCertificate({
      notBefore: new Date(Date.now() - 7_200_000),
      notAfter: new Date(Date.now() - 1_000),
    });
    const future = await makeCertificate({ notBefore: new Date(Date.now() + 60_000) });
    const weak = await makeCertificate({ algorithm: 'rsa-1024' });
    const cases: [string, string, string, string][] = [
      ['key of another certificate', a.cert, b.key, 'GW_ERR_TLS_KEY_MISMATCH'],
      ['expired', expired.cert, expired.key, 'GW_ERR_TLS_EXPIRED'],
      ['not yet valid', future.cert, future.key, 'GW_ERR_TLS_NOT_YET_VALID'],
      ['certificate is not PEM', 'hello', a.key, 'GW_ERR_TLS_CERT_INVALID'],
      ['key is not PEM', a.cert, 'hello', 'GW_ERR_TLS_KEY_INVALID'],
      ['key in place of the certificate', a.key, a.key, 'GW_ERR_TLS_CERT_INVALID'],
      ['certificate in place of the key', a.cert, a.cert, 'GW_ERR_TLS_KEY_INVALID'],
      ['RSA 1024 below the security level', weak.cert, weak.key, 'GW_ERR_TLS_REJECTED'],
    ];
    for (const [name, cert, key, expected] of cases) {
      assert.throws(() => checkCertificatePair(cert, key), code(expected), name);
    }
  });

  test('validity is checked against the given time', async () => {
    const cert = await makeCertificate({ notAfter: new Date(Date.now() + 60_000) });
    assert.doesNotThrow(() => checkCertificatePair(cert.cert, cert.key, { now: Date.now() }));
    assert.throws(
      () => checkCertificatePair(cert.cert, cert.key, { now: Date.now() + 120_000 }),
      code('GW_ERR_TLS_EXPIRED'),
    );
  });

  test('unreadable files are GW_ERR_TLS_UNREADABLE, naming the file in detail only', () => {
    assert.throws(
      () => loadCertificatePair('/nonexistent/edge.crt', '/nonexistent/edge.key'),
      (err: unknown) =>
        isRampartError(err, 'GW_ERR_TLS_UNREADABLE') &&
        err.detail?.['file'] === '/nonexistent/edge.crt' &&
        !err.message.includes('/nonexistent'),
    );
  });
});

describe('certificateCovers', () => {
  test('subjectAltName only, whole-label wildcards only', async () => {
    const cert = await makeCertificate({ dns: ['api.example.com', '*.apps.example.com'], ips: ['192.0.2.1', '::1'] });
    const leaf = new X509Certificate(cert.cert);
    const cases: [string, boolean][] = [
      ['api.example.com', true],
      ['API.EXAMPLE.COM', true],
      ['x.apps.example.com', true],
      ['apps.example.com', false],
      ['a.b.apps.example.com', false],
      ['example.com', false],
      ['api.example.com.evil.test', false],
      ['evil.test', false],
      ['rampart-test', false],
      ['192.0.2.1', true],
      ['192.0.2.2', false],
      ['::1', true],
    ];
    for (const [name, covered] of cases) assert.equal(certificateCovers(leaf, name), covered, name);
  });
});

describe('createCertificateInstaller (tls: auto)', () => {
  const limits = DEFAULTS.gatewayLimits;
  const logger = createLogger({ name: 'gateway', level: 'silent' });

  /** The certificate a new TLS connection to `port` is shown. */
  const presented = (port: number) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
        socket.destroy();
      });
      socket.on('error', reject);
    });

  test('installs a valid pair for new connections; refuses a bad one and keeps serving the old', async () => {
    const first = await makeCertificate();
    const second = await makeCertificate();
    const stranger = await makeCertificate();
    const expired = await makeCertificate({
      notBefore: new Date(Date.now() - 7_200_000),
      notAfter: new Date(Date.now() - 3_600_000),
    });
    const pair = checkCertificatePair(first.cert, first.key);
    const server = createServer(tlsServerOptions(pair, limits));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const registry = new Registry();
    const installer = createCertificateInstaller({ server, initial: pair, limits, logger, registry });
    try {
      assert.equal(await presented(port), first.fingerprint);
      assert.equal(installer.install(first.cert, first.key).outcome, 'unchanged');
      const mismatch = installer.install(second.cert, stranger.key);
      assert.deepEqual(mismatch, { outcome: 'rejected', code: 'GW_ERR_TLS_KEY_MISMATCH' });
      const old = installer.install(expired.cert, expired.key);
      assert.deepEqual(old, { outcome: 'rejected', code: 'GW_ERR_TLS_EXPIRED' });
      assert.deepEqual(installer.install('not pem', second.key), {
        outcome: 'rejected',
        code: 'GW_ERR_TLS_CERT_INVALID',
      });
      assert.equal(await presented(port), first.fingerprint, 'refusals leave the old pair in service');
      assert.equal(installer.install(second.cert, second.key).outcome, 'reloaded');
      assert.equal(installer.current().certPem, second.cert);
      assert.equal(await presented(port), second.fingerprint);
      const metrics = await registry.getMetricsAsJSON();
      const reloads = metrics.find((m) => m.name === 'rampart_gateway_tls_certificate_reloads_total');
      assert.deepEqual(Object.fromEntries(reloads?.values.map((v) => [v.labels.outcome, v.value]) ?? []), {
        rejected: 3,
        reloaded: 1,
      });
    } finally {
      installer.close();
      server.close();
    }
  });
});
