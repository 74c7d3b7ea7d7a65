import assert from 'node:assert/strict';
import { X509Certificate as NodeX509Certificate, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import type { Kek } from '../../core/kek.ts';
import { verifyCsr } from './csr.ts';
import { createLeafSigner } from './leaf.ts';
import { newSerial } from './serial.ts';
import { CA_SIGNING_ALGORITHM, createSigningCa, type SigningCa } from './signing-ca.ts';
import { makeCsr, testKek, type WebCsrKey } from './testing.ts';
import { crypto, x509 } from './x509.ts';

/** The same leaf as @peculiar/x509's generator builds it: the reference the signer must match byte for byte. */
async function referenceLeaf(
  ca: SigningCa,
  csrPem: string,
  p: { spiffeId: string; serial: string; notBefore: number; notAfter: number },
) {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  const rsa = csr.publicKey.algorithm.name.startsWith('RSA');
  return x509.X509CertificateGenerator.create(
    {
      serialNumber: p.serial,
      subject: [{ '2.5.4.10': ['Rampart'] }],
      issuer: ca.certificate.subjectName,
      notBefore: new Date(p.notBefore),
      notAfter: new Date(p.notAfter),
      signingKey: ca.privateKey,
      publicKey: csr.publicKey,
      signingAlgorithm: CA_SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | (rsa ? x509.KeyUsageFlags.keyEncipherment : 0),
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: p.spiffeId }]),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey, false, crypto),
        new x509.AuthorityKeyIdentifierExtension(ca.keyId),
      ],
    },
    crypto,
  );
}

const tbsOf = (der: ArrayBuffer | Uint8Array) =>
  Buffer.from(AsnConvert.serialize(AsnConvert.parse(der, Certificate).tbsCertificate));

describe('leaf signer', () => {
  let kek: Kek;
  let ca: SigningCa;
  before(async () => {
    kek = testKek();
    const made = await createSigningCa({
      trustDomain: 'shop.local',
      slot: 'A',
      generation: 1,
      now: Date.now(),
      lifetimeMs: 24 * 3600_000,
      skewMs: 60_000,
      kek,
    });
    ca = made.ca;
  });
  after(() => kek.destroy());

  for (const key of ['p256', 'p384', 'ed25519', 'rsa2048'] as const satisfies readonly WebCsrKey[]) {
    test(`${key}: the same certificate body as @peculiar/x509's generator, signed by the CA`, async () => {
      const csrPem = (await makeCsr({ key })).pem;
      const now = Date.now();
      const p = {
        spiffeId: 'spiffe://shop.local/svc/orders',
        serial: newSerial(),
        // Milliseconds on purpose: X.509 times are whole seconds, and what is returned must be what is encoded.
        notBefore: now - 60_123,
        notAfter: now + 3_600_456,
      };
      const signed = await createLeafSigner(ca).sign({ csr: await verifyCsr(csrPem), ...p });
      const reference = await referenceLeaf(ca, csrPem, p);
      assert.deepEqual(tbsOf(signed.der), tbsOf(reference.rawData));
      // The whole certificate is what the ASN.1 library encodes for it, byte for byte (the TBS is spliced in).
      assert.deepEqual(
        Buffer.from(signed.der),
        Buffer.from(AsnConvert.serialize(AsnConvert.parse(signed.der, Certificate))),
      );
      const leaf = new NodeX509Certificate(signed.der);
      const root = new NodeX509Certificate(new Uint8Array(ca.certificate.rawData));
      assert.ok(leaf.checkIssued(root));
      assert.ok(leaf.verify(root.publicKey));
      assert.equal(signed.notBefore, reference.notBefore.getTime());
      assert.equal(signed.notAfter, reference.notAfter.getTime());
      assert.equal(signed.notBefore % 1_000, 0);
      assert.equal(new Date(leaf.validTo).getTime(), signed.notAfter);
      assert.equal(leaf.serialNumber.toLowerCase(), p.serial);
    });
  }

  test('each leaf its own serial, SAN and key identifier (nothing leaks between leaves)', async () => {
    const signer = createLeafSigner(ca);
    const base = { notBefore: Date.now(), notAfter: Date.now() + 60_000 };
    const [a, b] = await Promise.all(
      (['orders', 'payments'] as const).map(async (name) =>
        signer.sign({
          csr: await verifyCsr((await makeCsr()).pem),
          spiffeId: `spiffe://shop.local/svc/${name}`,
          serial: newSerial(() => randomBytes(16)),
          ...base,
        }),
      ),
    );
    const [la, lb] = [a, b].map((s) => new x509.X509Certificate(s?.der ?? new Uint8Array()));
    assert.notEqual(la?.serialNumber, lb?.serialNumber);
    assert.equal(
      la?.getExtension(x509.SubjectAlternativeNameExtension)?.names.items[0]?.value,
      'spiffe://shop.local/svc/orders',
    );
    assert.equal(
      lb?.getExtension(x509.SubjectAlternativeNameExtension)?.names.items[0]?.value,
      'spiffe://shop.local/svc/payments',
    );
    assert.notEqual(
      la?.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
      lb?.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    );
  });
});
