/**
 * The certificate authority module of the control plane (issue 4). The flow, in order:
 *
 * 1. open      authority.ts        database (database.ts), trust-domain check, CA keys unwrapped with the
 *                                   KEK (core/kek.ts; signing-ca.ts), first tick
 * 2. attest    join-tokens.ts      single-use join token → service name (first SVID); renewals present the
 *                                   current SVID (authority.ts `renew`)
 * 3. verify    csr.ts              PKCS#10 parsed, key policy, proof of possession; names in it ignored
 * 4. sign      leaf.ts             the X509-SVID (serial.ts), here or on signing threads (leaf-issuer.ts,
 *                                   signing-worker.ts); edge-certificate.ts the gateway's `tls: auto` server
 *                                   certificate (DNS/IP names from the manifest, serverAuth only)
 * 5. record    issuance-journal.ts durable before it is returned (group commit)
 * 6. trust     bundle.ts           the CAs peers must trust, with a sequence number
 * 7. rotate    authority.ts        `tick`: prepare at ½, publish, activate at ⅙ left, retire after the last SVID
 * 8. observe   status.ts           slots, schedule, warnings
 */
export {
  type CaEvent,
  type CaSettings,
  type CertificateAuthority,
  type CertificateAuthorityOptions,
  type IssuedSvid,
  openCertificateAuthority,
  type RotationResult,
} from './authority.ts';
export { type BundleAuthority, type SpiffeBundleDocument, type TrustBundle, toSpiffeBundle } from './bundle.ts';
export { CA_DEFAULTS, CSR_KEY_POLICY } from './defaults.ts';
export { EDGE_JOURNAL_PREFIX, type IssuedEdgeCertificate } from './edge-certificate.ts';
export { CA_ERRORS } from './errors.ts';
export type { MintedJoinToken } from './join-tokens.ts';
export { type ReadCaStatusOptions, readCaStatus } from './read-status.ts';
export { type AuthorityStatus, CA_WARNINGS, type CaStatus, type CaWarning } from './status.ts';
