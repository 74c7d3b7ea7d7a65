import assert from 'node:assert/strict';
import { createHash, constants as cryptoConstants, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { RsaSaPssParams } from '@peculiar/asn1-rsa';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
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

/**
 * Hand-built CSRs: any key, any signatureAlgorithm, any signature. The table below pins what the CA
 * accepts (key type × signature algorithm) and the code of every refusal, so a change of verifier
 * cannot quietly accept more.
 */
describe('verifyCsr: signature algorithms and proof of possession', () => {
  type Keys = { privateKey: KeyObject; publicKey: KeyObject };
  const gen = {
    p256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    p384: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }),
    rsa: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
    ed25519: () => generateKeyPairSync('ed25519'),
  } satisfies Record<string, () => Keys>;
  const keys = {} as Record<keyof typeof gen, Keys>;
  const other = {} as Record<keyof typeof gen, Keys>;
  before(() => {
    for (const name of Object.keys(gen) as (keyof typeof gen)[]) {
      keys[name] = gen[name]();
      other[name] = gen[name]();
    }
  });

  const NULL = new Uint8Array([5, 0]).buffer;
  const OID = {
    ecdsaSha1: '1.2.840.10045.4.1',
    ecdsaSha224: '1.2.840.10045.4.3.1',
    ecdsaSha256: '1.2.840.10045.4.3.2',
    ecdsaSha384: '1.2.840.10045.4.3.3',
    ecdsaSha512: '1.2.840.10045.4.3.4',
    md5Rsa: '1.2.840.113549.1.1.4',
    sha1Rsa: '1.2.840.113549.1.1.5',
    sha224Rsa: '1.2.840.113549.1.1.14',
    sha256Rsa: '1.2.840.113549.1.1.11',
    sha384Rsa: '1.2.840.113549.1.1.12',
    sha512Rsa: '1.2.840.113549.1.1.13',
    pss: '1.2.840.113549.1.1.10',
    ed25519: '1.3.101.112',
    ed448: '1.3.101.113',
    unknown: '1.2.3.4',
  };
  const HASH_OID: Record<string, string> = {
    sha1: '1.3.14.3.2.26',
    sha256: '2.16.840.1.101.3.4.2.1',
    sha384: '2.16.840.1.101.3.4.2.2',
    sha512: '2.16.840.1.101.3.4.2.3',
  };
  const hashId = (hash: string) => new AlgorithmIdentifier({ algorithm: HASH_OID[hash] as string, parameters: NULL });
  /** RSASSA-PSS-params (RFC 4055 §3.1); `undefined` fields take the defaults (SHA-1, MGF1-SHA-1, 20). */
  const pssParams = (hash?: string, mgfHash?: string, saltLength?: number): ArrayBuffer => {
    const params = new RsaSaPssParams();
    if (hash) params.hashAlgorithm = hashId(hash);
    if (mgfHash) {
      params.maskGenAlgorithm = new AlgorithmIdentifier({
        algorithm: '1.2.840.113549.1.1.8',
        parameters: AsnConvert.serialize(hashId(mgfHash)),
      });
    }
    if (saltLength !== undefined) params.saltLength = saltLength;
    return AsnConvert.serialize(params);
  };

  interface Case {
    key: keyof typeof gen;
    /** The signatureAlgorithm the CSR claims. */
    algorithm: string;
    parameters?: ArrayBuffer | null;
    /** How the requester really signs certificationRequestInfo (node:crypto). */
    sign: (tbs: Buffer, key: KeyObject) => Buffer;
    /** Sign with another key of the same type (the CSR carries `key`'s public key). */
    otherKey?: boolean;
    /** Change the signature after signing. */
    tamper?: (signature: Buffer) => Buffer;
  }
  const ecdsa = (hash: string) => (tbs: Buffer, key: KeyObject) => sign(hash, tbs, { key, dsaEncoding: 'der' });
  const pkcs1 = (hash: string) => (tbs: Buffer, key: KeyObject) => sign(hash, tbs, key);
  const pss = (hash: string, saltLength: number) => (tbs: Buffer, key: KeyObject) =>
    sign(hash, tbs, { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength });
  const eddsa = (tbs: Buffer, key: KeyObject) => sign(null, tbs, key);
  const flipLastBit = (signature: Buffer) => {
    const copy = Buffer.from(signature);
    copy[copy.length - 1] = (copy[copy.length - 1] as number) ^ 1;
    return copy;
  };

  function craft(c: Case): Uint8Array {
    const pair = c.otherKey ? other[c.key] : keys[c.key];
    const spki = keys[c.key].publicKey.export({ format: 'der', type: 'spki' });
    const info = new CertificationRequestInfo({
      subject: AsnConvert.parse(new x509.Name('CN=x').toArrayBuffer(), Name),
      subjectPKInfo: AsnConvert.parse(spki, SubjectPublicKeyInfo),
    });
    const tbs = Buffer.from(AsnConvert.serialize(info));
    let signature = c.sign(tbs, pair.privateKey);
    if (c.tamper) signature = c.tamper(signature);
    const request = new CertificationRequest({
      certificationRequestInfo: info,
      signatureAlgorithm: new AlgorithmIdentifier({
        algorithm: c.algorithm,
        ...(c.parameters === undefined ? {} : { parameters: c.parameters }),
      }),
      signature: new Uint8Array(signature).buffer,
    });
    return new Uint8Array(AsnConvert.serialize(request));
  }

  const cases: readonly (readonly [string, Case, string])[] = [
    // Accepted: what the CA's policy allows.
    ['P-256, ecdsa-with-SHA256', { key: 'p256', algorithm: OID.ecdsaSha256, sign: ecdsa('sha256') }, 'ok:ec'],
    ['P-256, ecdsa-with-SHA384', { key: 'p256', algorithm: OID.ecdsaSha384, sign: ecdsa('sha384') }, 'ok:ec'],
    ['P-256, ecdsa-with-SHA512', { key: 'p256', algorithm: OID.ecdsaSha512, sign: ecdsa('sha512') }, 'ok:ec'],
    ['P-384, ecdsa-with-SHA384', { key: 'p384', algorithm: OID.ecdsaSha384, sign: ecdsa('sha384') }, 'ok:ec'],
    [
      'RSA, sha256WithRSAEncryption',
      { key: 'rsa', algorithm: OID.sha256Rsa, parameters: NULL, sign: pkcs1('sha256') },
      'ok:rsa',
    ],
    [
      'RSA, sha384WithRSAEncryption',
      { key: 'rsa', algorithm: OID.sha384Rsa, parameters: NULL, sign: pkcs1('sha384') },
      'ok:rsa',
    ],
    [
      'RSA, sha512WithRSAEncryption',
      { key: 'rsa', algorithm: OID.sha512Rsa, parameters: NULL, sign: pkcs1('sha512') },
      'ok:rsa',
    ],
    [
      'RSA, PSS SHA-256 salt 32',
      { key: 'rsa', algorithm: OID.pss, parameters: pssParams('sha256', 'sha256', 32), sign: pss('sha256', 32) },
      'ok:rsa',
    ],
    [
      'RSA, PSS SHA-512 salt 64',
      { key: 'rsa', algorithm: OID.pss, parameters: pssParams('sha512', 'sha512', 64), sign: pss('sha512', 64) },
      'ok:rsa',
    ],
    [
      'RSA, PSS SHA-256 salt 0',
      { key: 'rsa', algorithm: OID.pss, parameters: pssParams('sha256', 'sha256', 0), sign: pss('sha256', 0) },
      'ok:rsa',
    ],
    ['Ed25519', { key: 'ed25519', algorithm: OID.ed25519, sign: eddsa }, 'ok:ed25519'],
    // Refused hashes: SHA-1 as a weak algorithm; SHA-224 and MD5 are not among the accepted ones at all.
    ['P-256, ecdsa-with-SHA1', { key: 'p256', algorithm: OID.ecdsaSha1, sign: ecdsa('sha1') }, CA_ERRORS.csrAlgorithm],
    [
      'RSA, sha1WithRSAEncryption',
      { key: 'rsa', algorithm: OID.sha1Rsa, parameters: NULL, sign: pkcs1('sha1') },
      CA_ERRORS.csrAlgorithm,
    ],
    [
      'RSA, PSS with the default hash (SHA-1)',
      { key: 'rsa', algorithm: OID.pss, parameters: pssParams(), sign: pss('sha1', 20) },
      CA_ERRORS.csrAlgorithm,
    ],
    [
      'P-256, ecdsa-with-SHA224',
      { key: 'p256', algorithm: OID.ecdsaSha224, sign: ecdsa('sha224') },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, sha224WithRSAEncryption',
      { key: 'rsa', algorithm: OID.sha224Rsa, parameters: NULL, sign: pkcs1('sha224') },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, md5WithRSAEncryption',
      { key: 'rsa', algorithm: OID.md5Rsa, parameters: NULL, sign: pkcs1('md5') },
      CA_ERRORS.csrSignature,
    ],
    // No proof of possession.
    [
      'P-256, one signature bit flipped',
      { key: 'p256', algorithm: OID.ecdsaSha256, sign: ecdsa('sha256'), tamper: flipLastBit },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, one signature bit flipped',
      { key: 'rsa', algorithm: OID.sha256Rsa, parameters: NULL, sign: pkcs1('sha256'), tamper: flipLastBit },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA PSS, one signature bit flipped',
      {
        key: 'rsa',
        algorithm: OID.pss,
        parameters: pssParams('sha256', 'sha256', 32),
        sign: pss('sha256', 32),
        tamper: flipLastBit,
      },
      CA_ERRORS.csrSignature,
    ],
    [
      'Ed25519, one signature bit flipped',
      { key: 'ed25519', algorithm: OID.ed25519, sign: eddsa, tamper: flipLastBit },
      CA_ERRORS.csrSignature,
    ],
    [
      'P-256, signed by another key',
      { key: 'p256', algorithm: OID.ecdsaSha256, sign: ecdsa('sha256'), otherKey: true },
      CA_ERRORS.csrSignature,
    ],
    [
      'P-384, signed by another key',
      { key: 'p384', algorithm: OID.ecdsaSha384, sign: ecdsa('sha384'), otherKey: true },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, signed by another key',
      { key: 'rsa', algorithm: OID.sha256Rsa, parameters: NULL, sign: pkcs1('sha256'), otherKey: true },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA PSS, signed by another key',
      {
        key: 'rsa',
        algorithm: OID.pss,
        parameters: pssParams('sha256', 'sha256', 32),
        sign: pss('sha256', 32),
        otherKey: true,
      },
      CA_ERRORS.csrSignature,
    ],
    [
      'Ed25519, signed by another key',
      { key: 'ed25519', algorithm: OID.ed25519, sign: eddsa, otherKey: true },
      CA_ERRORS.csrSignature,
    ],
    [
      'P-256, empty signature',
      { key: 'p256', algorithm: OID.ecdsaSha256, sign: () => Buffer.alloc(0) },
      CA_ERRORS.csrSignature,
    ],
    [
      'Ed25519, empty signature',
      { key: 'ed25519', algorithm: OID.ed25519, sign: () => Buffer.alloc(0) },
      CA_ERRORS.csrSignature,
    ],
    [
      'P-256, signature as r‖s instead of DER',
      {
        key: 'p256',
        algorithm: OID.ecdsaSha256,
        sign: (tbs, key) => sign('sha256', tbs, { key, dsaEncoding: 'ieee-p1363' }),
      },
      CA_ERRORS.csrSignature,
    ],
    [
      'P-256, claims SHA-256, signed SHA-384',
      { key: 'p256', algorithm: OID.ecdsaSha256, sign: ecdsa('sha384') },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, claims SHA-256, signed SHA-512',
      { key: 'rsa', algorithm: OID.sha256Rsa, parameters: NULL, sign: pkcs1('sha512') },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, claims PKCS#1 v1.5, signed PSS',
      { key: 'rsa', algorithm: OID.sha256Rsa, parameters: NULL, sign: pss('sha256', 32) },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, claims PSS, signed PKCS#1 v1.5',
      { key: 'rsa', algorithm: OID.pss, parameters: pssParams('sha256', 'sha256', 32), sign: pkcs1('sha256') },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, PSS salt 32 claimed, 20 used',
      { key: 'rsa', algorithm: OID.pss, parameters: pssParams('sha256', 'sha256', 32), sign: pss('sha256', 20) },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, PSS SHA-256 claimed, SHA-384 used',
      { key: 'rsa', algorithm: OID.pss, parameters: pssParams('sha256', 'sha256', 32), sign: pss('sha384', 32) },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, PSS parameters that are not RSASSA-PSS-params',
      { key: 'rsa', algorithm: OID.pss, parameters: new Uint8Array([4, 2, 1, 2]).buffer, sign: pss('sha256', 32) },
      CA_ERRORS.csrSignature,
    ],
    [
      // Negative salt lengths are OpenSSL's "digest length" (-1) and "auto-detect" (-2): never from a CSR.
      'RSA, PSS with a negative salt length (OpenSSL auto-detect)',
      { key: 'rsa', algorithm: OID.pss, parameters: pssParams('sha256', 'sha256', -2), sign: pss('sha256', 32) },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, PSS without parameters',
      { key: 'rsa', algorithm: OID.pss, sign: pss('sha256', 32) },
      CA_ERRORS.csrSignature,
    ],
    [
      'RSA, PSS with NULL parameters',
      { key: 'rsa', algorithm: OID.pss, parameters: NULL, sign: pss('sha256', 32) },
      CA_ERRORS.csrSignature,
    ],
    // The signature algorithm does not match the key.
    [
      'P-256 key, sha256WithRSAEncryption',
      { key: 'p256', algorithm: OID.sha256Rsa, parameters: NULL, sign: ecdsa('sha256') },
      CA_ERRORS.csrSignature,
    ],
    [
      'P-256 key, RSA-PSS',
      { key: 'p256', algorithm: OID.pss, parameters: pssParams('sha256', 'sha256', 32), sign: ecdsa('sha256') },
      CA_ERRORS.csrSignature,
    ],
    ['P-256 key, Ed25519', { key: 'p256', algorithm: OID.ed25519, sign: ecdsa('sha256') }, CA_ERRORS.csrSignature],
    [
      'RSA key, ecdsa-with-SHA256',
      { key: 'rsa', algorithm: OID.ecdsaSha256, sign: pkcs1('sha256') },
      CA_ERRORS.csrSignature,
    ],
    ['RSA key, Ed25519', { key: 'rsa', algorithm: OID.ed25519, sign: pkcs1('sha256') }, CA_ERRORS.csrSignature],
    [
      'Ed25519 key, ecdsa-with-SHA256',
      { key: 'ed25519', algorithm: OID.ecdsaSha256, sign: eddsa },
      CA_ERRORS.csrSignature,
    ],
    [
      'Ed25519 key, sha256WithRSAEncryption',
      { key: 'ed25519', algorithm: OID.sha256Rsa, parameters: NULL, sign: eddsa },
      CA_ERRORS.csrSignature,
    ],
    ['Ed25519 key, Ed448', { key: 'ed25519', algorithm: OID.ed448, sign: eddsa }, CA_ERRORS.csrSignature],
    [
      'P-256 key, an unknown algorithm',
      { key: 'p256', algorithm: OID.unknown, sign: ecdsa('sha256') },
      CA_ERRORS.csrSignature,
    ],
    [
      'Ed25519 key, an unknown algorithm',
      { key: 'ed25519', algorithm: OID.unknown, sign: eddsa },
      CA_ERRORS.csrSignature,
    ],
    // Parameters where the algorithm has none (or absent where NULL is usual) are ignored, as before:
    // pinned so that any change is a decision.
    [
      'P-256, ecdsa-with-SHA256 with NULL parameters',
      { key: 'p256', algorithm: OID.ecdsaSha256, parameters: NULL, sign: ecdsa('sha256') },
      'ok:ec',
    ],
    [
      'Ed25519 with NULL parameters',
      { key: 'ed25519', algorithm: OID.ed25519, parameters: NULL, sign: eddsa },
      'ok:ed25519',
    ],
    [
      'RSA, sha256WithRSAEncryption without parameters',
      { key: 'rsa', algorithm: OID.sha256Rsa, sign: pkcs1('sha256') },
      'ok:rsa',
    ],
  ];
  for (const [name, c, expected] of cases) {
    test(`${name}: ${expected}`, async () => {
      assert.equal(await outcome(craft(c)), expected);
    });
  }
});
