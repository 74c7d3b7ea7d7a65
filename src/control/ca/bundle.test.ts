import assert from 'node:assert/strict';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { svidIdentity } from '../../core/spiffe.ts';
import { openTestCa, type TestCa } from './testing.ts';
import { x509 } from './x509.ts';

describe('trust bundle', () => {
  let t: TestCa;
  before(async () => {
    t = await openTestCa();
    await t.ca.tick(t.clock.now + 13 * 3_600_000); // past ½: two CAs in the bundle
  });
  after(() => t.cleanup());

  test('PEM: every CA in generation order, each self-signed, the whole set parseable as a TLS `ca`', () => {
    const bundle = t.ca.bundle();
    assert.equal(bundle.trustDomain, 'shop.local');
    assert.deepEqual(
      bundle.authorities.map((a) => [a.generation, a.slot, a.state]),
      [
        [1, 'A', 'active'],
        [2, 'B', 'prepared'],
      ],
    );
    assert.equal(bundle.pem, bundle.authorities.map((a) => a.pem).join(''));
    for (const a of bundle.authorities) {
      const cert = new NodeX509Certificate(a.pem);
      assert.ok(cert.ca);
      assert.ok(cert.verify(cert.publicKey), 'self-signed');
      assert.equal(cert.fingerprint256.replaceAll(':', '').toLowerCase(), a.sha256);
    }
    assert.equal(x509.PemConverter.decode(bundle.pem).length, 2);
  });

  test('signing CAs: pathLen 0, keyCertSign+cRLSign, name constraint on the trust domain, SPIFFE ID without path', () => {
    for (const a of t.ca.bundle().authorities) {
      const cert = new x509.X509Certificate(a.pem);
      const basic = cert.getExtension(x509.BasicConstraintsExtension);
      assert.deepEqual([basic?.ca, basic?.pathLength, basic?.critical], [true, 0, true]);
      const usage = cert.getExtension(x509.KeyUsagesExtension);
      assert.equal(usage?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
      assert.equal(usage?.critical, true);
      const nc = cert.getExtension('2.5.29.30');
      assert.equal(nc?.critical, true);
      // Permitted subtree [0] { GeneralSubtree { [6] "shop.local" } }
      assert.equal(
        Buffer.from(nc?.value ?? new ArrayBuffer(0)).toString('hex'),
        '3010a00e300c860a73686f702e6c6f63616c',
      );
      const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
      assert.deepEqual(
        san?.names.items.map((n) => n.value),
        ['spiffe://shop.local'],
      );
      assert.equal(cert.subject, `O=Rampart, CN=shop.local CA ${a.generation}`);
      // A CA certificate is never accepted as an SVID.
      assert.throws(() => svidIdentity(cert, 'shop.local'));
    }
  });

  test('SPIFFE bundle document: one x509-svid JWK per CA, x5c = the certificate, no kid, sequence and hint', () => {
    const bundle = t.ca.bundle();
    const doc = t.ca.spiffeBundle();
    assert.equal(doc.spiffe_sequence, bundle.sequence);
    assert.equal(doc.spiffe_refresh_hint, 60);
    assert.equal(doc.keys.length, 2);
    doc.keys.forEach((key, i) => {
      const der = new NodeX509Certificate(bundle.authorities[i]?.pem ?? '').raw.toString('base64');
      assert.deepEqual(key.x5c, [der]);
      assert.equal(key.use, 'x509-svid');
      assert.equal(key.kty, 'EC');
      assert.equal(key.crv, 'P-256');
      assert.equal('kid' in key, false);
      assert.equal('d' in key, false, 'no private part');
    });
  });
});
