import { RampartError } from '../../core/errors.ts';

/**
 * Stable codes of the certificate authority. Messages are fixed and boring; what went wrong is in
 * `detail` (logs and audit), never in what a client sees.
 */
export const CA_ERRORS = {
  /** Options are invalid (trust domain, lifetimes that contradict each other, …). */
  config: 'CA_ERR_CONFIG',
  /** The database belongs to another trust domain: changing it needs a new CA, not a silent reissue. */
  trustDomainMismatch: 'CA_ERR_TRUST_DOMAIN_MISMATCH',
  /** The database was written by a newer schema than this code knows. */
  schema: 'CA_ERR_SCHEMA',
  /** A CA key cannot be unwrapped with this KEK (wrong or missing key, or tampered row): the CA stays sealed. */
  sealed: 'CA_ERR_SEALED',
  /** A stored CA certificate does not match its unwrapped private key. */
  keyMismatch: 'CA_ERR_KEY_MISMATCH',
  /** No usable active CA (not initialized, or expired and not yet rotated). */
  noActiveCa: 'CA_ERR_NO_ACTIVE_CA',
  /** The CA was closed. */
  closed: 'CA_ERR_CLOSED',
  /** A signing thread failed (it is replaced; the request can be retried). */
  signingThread: 'CA_ERR_SIGNING_THREAD',

  /** The CSR is not one PEM block or DER structure of a PKCS#10 request, or is too large. */
  csrMalformed: 'CA_ERR_CSR_MALFORMED',
  /** The CSR's self-signature does not verify (no proof of possession of the key). */
  csrSignature: 'CA_ERR_CSR_SIGNATURE',
  /** The CSR's key is weak or of a refused type (RSA < 2048, curves other than P-256/P-384, DSA, …). */
  csrWeakKey: 'CA_ERR_CSR_WEAK_KEY',
  /** The CSR is signed with a refused algorithm (SHA-1, MD5). */
  csrAlgorithm: 'CA_ERR_CSR_ALGORITHM',
  /** The service name cannot form `spiffe://<td>/svc/<name>`. */
  serviceName: 'CA_ERR_SERVICE_NAME',
  /** A name for an edge certificate is not a DNS name or IP literal (or a wildcard, or too many). */
  edgeName: 'CA_ERR_EDGE_NAME',

  /** Not a join token of this CA's format. */
  tokenMalformed: 'CA_ERR_TOKEN_MALFORMED',
  /** No such token (never minted here, or purged long after expiry). */
  tokenUnknown: 'CA_ERR_TOKEN_UNKNOWN',
  /** The token's public half is known but its secret half is wrong: someone knows part of a real token. */
  tokenForged: 'CA_ERR_TOKEN_FORGED',
  /** The token was already redeemed (single use). */
  tokenReused: 'CA_ERR_TOKEN_REUSED',
  /** The token expired unused. */
  tokenExpired: 'CA_ERR_TOKEN_EXPIRED',
  /** A join token TTL outside what the CA mints. */
  tokenTtl: 'CA_ERR_TOKEN_TTL',

  /** The SVID presented for a renewal is not one this CA issued (serial, key or identity differ). */
  renewalUnknown: 'CA_ERR_RENEWAL_UNKNOWN_SVID',
  /** The SVID presented for a renewal has expired. */
  renewalExpired: 'CA_ERR_RENEWAL_EXPIRED',
  /** The SVID presented for a renewal does not name a service (`/svc/<name>`). */
  renewalNotService: 'CA_ERR_RENEWAL_NOT_A_SERVICE',

  /** A rotation cannot start: the other slot still holds a CA with unexpired SVIDs. */
  rotationBlocked: 'CA_ERR_ROTATION_BLOCKED',
  /** An acknowledged bundle sequence that was never published. */
  bundleSequence: 'CA_ERR_BUNDLE_SEQUENCE',
} as const;

/** Status per code: 401 for credentials, 400 for bad requests, 503 when the CA cannot serve yet, else 500. */
const STATUS: Readonly<Record<string, number>> = {
  [CA_ERRORS.noActiveCa]: 503,
  [CA_ERRORS.csrMalformed]: 400,
  [CA_ERRORS.csrSignature]: 400,
  [CA_ERRORS.csrWeakKey]: 400,
  [CA_ERRORS.csrAlgorithm]: 400,
  [CA_ERRORS.serviceName]: 400,
  [CA_ERRORS.edgeName]: 400,
  [CA_ERRORS.tokenMalformed]: 401,
  [CA_ERRORS.tokenUnknown]: 401,
  [CA_ERRORS.tokenForged]: 401,
  [CA_ERRORS.tokenReused]: 401,
  [CA_ERRORS.tokenExpired]: 401,
  [CA_ERRORS.renewalUnknown]: 401,
  [CA_ERRORS.renewalExpired]: 401,
  [CA_ERRORS.renewalNotService]: 403,
  [CA_ERRORS.rotationBlocked]: 409,
  [CA_ERRORS.bundleSequence]: 400,
};

/** Fixed messages: credential failures all read the same to a client. */
const MESSAGE: Readonly<Record<string, string>> = {
  [CA_ERRORS.tokenMalformed]: 'join token refused',
  [CA_ERRORS.tokenUnknown]: 'join token refused',
  [CA_ERRORS.tokenForged]: 'join token refused',
  [CA_ERRORS.tokenReused]: 'join token refused',
  [CA_ERRORS.tokenExpired]: 'join token refused',
  [CA_ERRORS.renewalUnknown]: 'renewal refused',
  [CA_ERRORS.renewalExpired]: 'renewal refused',
  [CA_ERRORS.renewalNotService]: 'renewal refused',
  [CA_ERRORS.csrMalformed]: 'certificate request refused',
  [CA_ERRORS.csrSignature]: 'certificate request refused',
  [CA_ERRORS.csrWeakKey]: 'certificate request refused',
  [CA_ERRORS.csrAlgorithm]: 'certificate request refused',
  [CA_ERRORS.sealed]: 'certificate authority is sealed',
};

/** A RampartError with a CA code, its status and its fixed message. */
export function caError(
  code: (typeof CA_ERRORS)[keyof typeof CA_ERRORS],
  detail?: Record<string, unknown>,
  cause?: unknown,
  message?: string,
): RampartError {
  return new RampartError(code, message ?? MESSAGE[code] ?? 'certificate authority error', {
    status: STATUS[code] ?? 500,
    detail,
    cause,
  });
}
