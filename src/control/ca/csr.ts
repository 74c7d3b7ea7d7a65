import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { PublicKey } from '@peculiar/x509';
import { CA_DEFAULTS, CSR_KEY_POLICY } from './defaults.ts';
import { CA_ERRORS, caError } from './errors.ts';
import { crypto, x509 } from './x509.ts';

/** What the CA takes from a CSR: its public key, proven possessed. Nothing else (names, extensions) is used. */
export interface VerifiedCsr {
  /** The SubjectPublicKeyInfo, as @peculiar/x509 wants it for the certificate. */
  publicKey: PublicKey;
  /** SHA-256 of the DER SubjectPublicKeyInfo, hex (recorded in the issuance log). */
  publicKeySha256: string;
  /** `ec` (P-256/P-384), `ed25519` or `rsa`. */
  keyType: 'ec' | 'ed25519' | 'rsa';
}

const PEM_LABEL = 'CERTIFICATE REQUEST';
/** CSR signature hashes refused: collisions are practical (SHAttered, 2017) — no proof of anything. */
const WEAK_HASHES = new Set(['SHA-1', 'MD5', 'MD2', 'MD4']);

function malformed(reason: string, cause?: unknown) {
  return caError(CA_ERRORS.csrMalformed, { reason }, cause);
}

/** DER bytes of the CSR: exactly one PEM block labelled CERTIFICATE REQUEST, or DER. */
function derOf(input: string | Uint8Array): Uint8Array {
  const size = typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
  if (size === 0 || size > CA_DEFAULTS.maxCsrBytes) throw malformed('size');
  if (typeof input !== 'string') return input;
  let blocks: ReturnType<typeof x509.PemConverter.decodeWithHeaders>;
  try {
    blocks = x509.PemConverter.decodeWithHeaders(input);
  } catch (cause) {
    throw malformed('pem', cause);
  }
  if (blocks.length !== 1) throw malformed('pem block count');
  const [block] = blocks;
  if (block?.type !== PEM_LABEL || block.headers.length > 0) throw malformed('pem label');
  return new Uint8Array(block.rawData);
}

/**
 * Length of the outer DER element (a SEQUENCE) at the start of `der`, or -1. Used only to refuse
 * trailing bytes after the CSR, which a parser would silently ignore.
 */
function outerLength(der: Uint8Array): number {
  if (der.length < 2 || der[0] !== 0x30) return -1;
  const first = der[1] as number;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > 3 || der.length < 2 + octets) return -1;
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + (der[2 + i] as number);
  return 2 + octets + length;
}

function checkKey(key: KeyObject): VerifiedCsr['keyType'] {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    if (!(CSR_KEY_POLICY.curves as readonly string[]).includes(details.namedCurve ?? '')) {
      throw caError(CA_ERRORS.csrWeakKey, { keyType: type, curve: details.namedCurve });
    }
    return 'ec';
  }
  if (type === 'ed25519') return 'ed25519';
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < CSR_KEY_POLICY.minRsaBits || bits > CSR_KEY_POLICY.maxRsaBits) {
      throw caError(CA_ERRORS.csrWeakKey, { keyType: type, bits });
    }
    return 'rsa';
  }
  throw caError(CA_ERRORS.csrWeakKey, { keyType: type ?? 'unknown' });
}

/**
 * Parses a PKCS#10 CSR (PEM or DER), checks its key against the policy (EC P-256/P-384, Ed25519, RSA
 * 2048–8192) and verifies its self-signature with @peculiar/x509 (proof that the requester holds the
 * private key). The requested subject, SANs and extensions are deliberately ignored: the identity comes
 * from the authenticated request, never from the CSR.
 *
 * Order: size, structure, key policy, then the signature (the costly step runs last).
 */
export async function verifyCsr(input: string | Uint8Array): Promise<VerifiedCsr> {
  const der = derOf(input);
  if (outerLength(der) !== der.length) throw malformed('trailing or truncated data');
  let csr: InstanceType<typeof x509.Pkcs10CertificateRequest>;
  let spki: Uint8Array;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
    spki = new Uint8Array(csr.publicKey.rawData);
  } catch (cause) {
    throw malformed('pkcs10', cause);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (cause) {
    throw caError(CA_ERRORS.csrWeakKey, { keyType: 'unparseable' }, cause);
  }
  const keyType = checkKey(key);
  const hash = (csr.signatureAlgorithm as { hash?: { name?: string } }).hash?.name?.toUpperCase();
  if (hash !== undefined && WEAK_HASHES.has(hash)) throw caError(CA_ERRORS.csrAlgorithm, { hash });
  let valid = false;
  try {
    valid = await csr.verify(crypto);
  } catch (cause) {
    throw caError(CA_ERRORS.csrSignature, { reason: 'verification error' }, cause);
  }
  if (!valid) throw caError(CA_ERRORS.csrSignature, { reason: 'signature mismatch' });
  return {
    publicKey: csr.publicKey,
    publicKeySha256: createHash('sha256').update(spki).digest('hex'),
    keyType,
  };
}
