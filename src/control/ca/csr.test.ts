import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { RampartError } from '../../core/errors.ts';
import { verifyCsr } from './csr.ts';
import { CA_ERRORS } from './errors.ts';
import { makeCsr, opensslCsr, type TestCsr } from './testing.ts';
import { crypto, x509 } from './x509.ts';

async function outcome(input: string | Uint8Array): Promise<string> {
  try {
    const verified = await verifyCsr(input);
    return `ok:${verified.keyType}`;
  } catch (err) {
    assert.ok(err instanceof RampartError, `not a RampartError: ${String(err)}`);
    return err.code;
  }
}

function pemOf(der: Uint8Array, label = 'CERTIFICATE REQUEST'): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

describe('verifyCsr', () => {
  let p256: TestCsr;
  before(async () => {
    p256 = await makeCsr();
  });

  test('accepted key types, PEM and DER', async () => {
    assert.equal(await outcome(p256.pem), 'ok:ec');
    assert.equal(await outcome(p256.der), 'ok:ec');
    assert.equal(await outcome((await makeCsr({ key: 'p384' })).pem), 'ok:ec');
    assert.equal(await outcome((await makeCsr({ key: 'ed25519' })).pem), 'ok:ed25519');
    assert.equal(await outcome((await makeCsr({ key: 'rsa2048' })).pem), 'ok:rsa');
    assert.equal(await outcome(opensslCsr(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'])), 'ok:rsa');
  });

  test('the public key hash is SHA-256 of the SubjectPublicKeyInfo', async () => {
    const verified = await verifyCsr(p256.pem);
    const spki = Buffer.from(await crypto.subtle.exportKey('spki', p256.keys.publicKey));
    assert.equal(verified.publicKeySha256, createHash('sha256').update(spki).digest('hex'));
  });

  test('weak or refused keys', async () => {
    assert.equal(await outcome((await makeCsr({ key: 'p521' })).pem), CA_ERRORS.csrWeakKey);
    assert.equal(
      await outcome(opensslCsr(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'])),
      CA_ERRORS.csrWeakKey,
    );
    assert.equal(
      await outcome(opensslCsr(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'])),
      CA_ERRORS.csrWeakKey,
    );
    assert.equal(await outcome(opensslCsr(['-algorithm', 'ED448'], '')), CA_ERRORS.csrWeakKey);
  });

  test('a CSR signed with SHA-1 is refused', async () => {
    const sha1 = opensslCsr(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], '-sha1');
    assert.equal(await outcome(sha1), CA_ERRORS.csrAlgorithm);
  });

  test('a tampered CSR fails its signature (no proof of possession)', async () => {
    const der = Buffer.from(p256.der);
    // The subject's CN value ("admin") sits inside the signed part: change one letter.
    const at = der.indexOf(Buffer.from('admin'));
    assert.ok(at > 0);
    const renamed = Buffer.from(der);
    renamed[at] = 'b'.charCodeAt(0);
    assert.equal(await outcome(renamed), CA_ERRORS.csrSignature);
    // A valid CSR's body with another CSR's (valid, other key) signature.
    const body = AsnConvert.parse(der, CertificationRequest);
    body.signature = AsnConvert.parse((await makeCsr()).der, CertificationRequest).signature;
    assert.equal(await outcome(new Uint8Array(AsnConvert.serialize(body))), CA_ERRORS.csrSignature);
  });

  test('a CSR claiming another key: the key is replaced, the signature no longer verifies', async () => {
    const victim = await makeCsr();
    const attacker = await makeCsr();
    const victimSpki = Buffer.from(await crypto.subtle.exportKey('spki', victim.keys.publicKey));
    const attackerSpki = Buffer.from(await crypto.subtle.exportKey('spki', attacker.keys.publicKey));
    const der = Buffer.from(attacker.der);
    const at = der.indexOf(attackerSpki);
    assert.ok(at > 0);
    victimSpki.copy(der, at);
    assert.equal(await outcome(der), CA_ERRORS.csrSignature);
  });

  const malformed: readonly (readonly [string, () => string | Uint8Array])[] = [
    ['empty string', () => ''],
    ['empty bytes', () => new Uint8Array(0)],
    ['garbage text', () => 'hello'],
    ['garbage bytes', () => new Uint8Array([1, 2, 3, 4])],
    ['two PEM blocks', () => p256.pem + p256.pem],
    ['a certificate label', () => pemOf(p256.der, 'CERTIFICATE')],
    ['the legacy NEW CERTIFICATE REQUEST label', () => pemOf(p256.der, 'NEW CERTIFICATE REQUEST')],
    ['PEM headers', () => p256.pem.replace('-----\n', '-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n')],
    ['DER with a trailing byte', () => Buffer.concat([p256.der, Buffer.from([0])])],
    ['DER with a trailing CSR', () => Buffer.concat([p256.der, p256.der])],
    ['truncated DER', () => p256.der.subarray(0, p256.der.length - 1)],
    ['only the outer header', () => p256.der.subarray(0, 4)],
    ['oversized PEM', () => `${p256.pem}${'x'.repeat(17_000)}`],
    ['oversized DER', () => new Uint8Array(17_000).fill(0x30)],
  ];
  for (const [name, make] of malformed) {
    test(`malformed: ${name}`, async () => {
      assert.equal(await outcome(make()), CA_ERRORS.csrMalformed);
    });
  }

  test('a certificate is not a CSR', async () => {
    const keys = p256.keys;
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      { name: 'CN=x', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
      crypto,
    );
    assert.equal(await outcome(new Uint8Array(cert.rawData)), CA_ERRORS.csrMalformed);
    assert.equal(await outcome(cert.toString('pem')), CA_ERRORS.csrMalformed);
  });

  test('errors are 400 with one fixed message', async () => {
    for (const input of ['', (await makeCsr({ key: 'p521' })).pem]) {
      await assert.rejects(verifyCsr(input), (err: unknown) => {
        assert.ok(err instanceof RampartError);
        assert.equal(err.status, 400);
        assert.equal(err.message, 'certificate request refused');
        return true;
      });
    }
  });
});
