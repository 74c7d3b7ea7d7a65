import { constants, createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import type { SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import type { PublicKey } from '@peculiar/x509';
import { CA_DEFAULTS, CSR_KEY_POLICY } from './defaults.ts';
import { CA_ERRORS, caError } from './errors.ts';
import { x509 } from './x509.ts';

/** What the CA takes from a CSR: its public key, proven possessed. Nothing else (names, extensions) is used. */
export interface VerifiedCsr {
  /** The SubjectPublicKeyInfo, as @peculiar/x509 wants it for the certificate (built on first use). */
  readonly publicKey: PublicKey;
  /** The SubjectPublicKeyInfo as parsed from the CSR (ASN.1 schema value, for leaf.ts). */
  readonly subjectPublicKeyInfo: SubjectPublicKeyInfo;
  /** SHA-256 of the DER SubjectPublicKeyInfo, hex (recorded in the issuance log). */
  readonly publicKeySha256: string;
  /** `ec` (P-256/P-384), `ed25519` or `rsa`. */
  readonly keyType: 'ec' | 'ed25519' | 'rsa';
}

const PEM_LABEL = 'CERTIFICATE REQUEST';
/** CSR signature hashes refused: collisions are practical (SHAttered, 2017) — no proof of anything. */
const WEAK_HASHES = new Set(['SHA-1', 'MD5', 'MD2', 'MD4']);
/** Hashes a CSR may be signed with (WebCrypto names → OpenSSL names). */
const HASHES: Readonly<Record<string, string>> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

/**
 * How a signature algorithm (as @peculiar/x509 names it from the CSR's AlgorithmIdentifier) is checked
 * with node:crypto, and the one key type it can belong to. Exactly these are accepted: ECDSA,
 * RSASSA-PKCS1-v1_5 and RSASSA-PSS with SHA-256/384/512, and Ed25519.
 */
interface Verification {
  keyType: VerifiedCsr['keyType'];
  hash: string | null;
  options: { dsaEncoding?: 'der'; padding?: number; saltLength?: number };
}

type WebAlgorithm = { name?: string; hash?: { name?: string }; saltLength?: unknown };

function verificationFor(algorithm: WebAlgorithm): Verification | null {
  const hash = HASHES[algorithm.hash?.name?.toUpperCase() ?? ''];
  switch (algorithm.name) {
    case 'ECDSA':
      // RFC 5480 §2.2.3 / X.509: the ECDSA-Sig-Value is DER; OpenSSL refuses non-canonical encodings.
      return hash ? { keyType: 'ec', hash, options: { dsaEncoding: 'der' } } : null;
    case 'RSASSA-PKCS1-v1_5':
      return hash ? { keyType: 'rsa', hash, options: { padding: constants.RSA_PKCS1_PADDING } } : null;
    case 'RSA-PSS': {
      // RFC 4055 §3.1: the salt length is the one the parameters state, never auto-detected. MGF1 uses
      // the message hash, as WebCrypto's RSA-PSS does.
      const { saltLength } = algorithm;
      if (!hash || typeof saltLength !== 'number' || !Number.isSafeInteger(saltLength) || saltLength < 0) return null;
      return { keyType: 'rsa', hash, options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength } };
    }
    case 'Ed25519':
      return { keyType: 'ed25519', hash: null, options: {} };
    default:
      return null;
  }
}

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

const algorithms = new x509.AlgorithmProvider();

/**
 * Parses a PKCS#10 CSR (PEM or DER), checks its key against the policy (EC P-256/P-384, Ed25519, RSA
 * 2048–8192) and verifies its self-signature with node:crypto over the exact certificationRequestInfo
 * bytes it carries (proof that the requester holds the private key). The requested subject, SANs and
 * extensions are deliberately ignored: the identity comes from the authenticated request, never from
 * the CSR.
 *
 * Order: size, structure, key policy, hash policy, then the signature (the costly step runs last). The
 * signature algorithm must be one of {@link verificationFor}'s and belong to the CSR's key type; any
 * other (an unknown OID, SHA-224, MD5, a key/algorithm mismatch) fails as CA_ERR_CSR_SIGNATURE.
 *
 * The verification is synchronous on purpose: one ECDSA P-256 verify is ~0.1 ms, less than a round trip
 * through libuv's pool costs (the callback form measured 1.8–2.1 ms of CPU per SVID against 1.4–1.8 ms,
 * bench/ca-issuance.bench.ts, interleaved runs).
 */
export async function verifyCsr(input: string | Uint8Array): Promise<VerifiedCsr> {
  const der = derOf(input);
  if (outerLength(der) !== der.length) throw malformed('trailing or truncated data');
  let csr: CertificationRequest;
  let spki: Uint8Array;
  try {
    csr = AsnConvert.parse(der, CertificationRequest);
    spki = new Uint8Array(AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo));
  } catch (cause) {
    throw malformed('pkcs10', cause);
  }
  // The signature covers the bytes as sent, not a re-encoding of what the parser understood.
  const signed = csr.certificationRequestInfoRaw;
  if (!signed) throw malformed('pkcs10');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (cause) {
    throw caError(CA_ERRORS.csrWeakKey, { keyType: 'unparseable' }, cause);
  }
  const keyType = checkKey(key);
  let algorithm: WebAlgorithm;
  try {
    algorithm = algorithms.toWebAlgorithm(csr.signatureAlgorithm) as WebAlgorithm;
  } catch (cause) {
    throw caError(CA_ERRORS.csrSignature, { reason: 'algorithm parameters' }, cause);
  }
  const hash = algorithm.hash?.name?.toUpperCase();
  if (hash !== undefined && WEAK_HASHES.has(hash)) throw caError(CA_ERRORS.csrAlgorithm, { hash });
  const check = verificationFor(algorithm);
  if (!check || check.keyType !== keyType) {
    throw caError(CA_ERRORS.csrSignature, {
      reason: 'algorithm',
      algorithm: csr.signatureAlgorithm.algorithm,
      keyType,
    });
  }
  let valid = false;
  try {
    valid = verify(check.hash, new Uint8Array(signed), { key, ...check.options }, new Uint8Array(csr.signature));
  } catch (cause) {
    throw caError(CA_ERRORS.csrSignature, { reason: 'verification error' }, cause);
  }
  if (!valid) throw caError(CA_ERRORS.csrSignature, { reason: 'signature mismatch' });
  const subjectPublicKeyInfo = csr.certificationRequestInfo.subjectPKInfo;
  let publicKey: PublicKey | undefined;
  return {
    get publicKey() {
      publicKey ??= new x509.PublicKey(spki);
      return publicKey;
    },
    subjectPublicKeyInfo,
    publicKeySha256: createHash('sha256').update(spki).digest('hex'),
    keyType,
  };
}
