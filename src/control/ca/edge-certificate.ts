import type { X509Certificate } from '@peculiar/x509';
import { type EdgeName, parseEdgeNames } from '../../core/edge-name.ts';
import type { TrustBundle } from './bundle.ts';
import type { VerifiedCsr } from './csr.ts';
import { CA_ERRORS, caError } from './errors.ts';
import { CA_SIGNING_ALGORITHM, type SigningCa } from './signing-ca.ts';
import { crypto, x509 } from './x509.ts';

/**
 * The edge-server profile: the certificate the gateway serves to browsers and curl with `tls: auto`.
 * It is deliberately not an X509-SVID, so it can never be taken for a workload identity:
 * - subject `O=Rampart` only (RFC 6125 §6.4.4: clients match the subjectAltName; no CN to fall back on);
 * - subjectAltName: the DNS names and IP addresses the control plane derived from its own manifest
 *   (never from the CSR or the request), validated by core/edge-name.ts; no URI, so `svidIdentity`
 *   refuses it (an edge certificate cannot call a service or renew an SVID);
 * - basicConstraints cA=FALSE (critical);
 * - keyUsage digitalSignature (critical), plus keyEncipherment for RSA keys only (TLS 1.2 RSA key
 *   transport, which our cipher list does not offer, but RFC 5280 clients expect it on RSA servers);
 * - extendedKeyUsage serverAuth only: it cannot authenticate as a client anywhere;
 * - subjectKeyIdentifier (from the CSR key) and authorityKeyIdentifier (the signing CA's key id).
 *
 * The signing CAs' nameConstraints permit URIs of the trust domain only; RFC 5280 §4.2.1.10 applies
 * constraints per name type, so DNS and IP names are unconstrained and chains verify (OpenSSL included).
 */

/** An issued edge certificate, with the bundle that verifies it. */
export interface IssuedEdgeCertificate {
  /** 32 lower-case hex digits. */
  serial: string;
  certificatePem: string;
  certificateDer: Uint8Array;
  /** The names it carries, canonical, in order. */
  names: readonly EdgeName[];
  notBefore: number;
  notAfter: number;
  /** Generation of the signing CA. */
  generation: number;
  bundle: TrustBundle;
}

/** Subject of every edge certificate: informational; the names are the SANs. */
const EDGE_SUBJECT = [{ '2.5.4.10': ['Rampart'] }];

/** Prefix of the issuance log's subject column for edge certificates (SVIDs carry `spiffe://…` there). */
export const EDGE_JOURNAL_PREFIX = 'edge:';

/**
 * Validates the names for an edge certificate (CA_ERR_EDGE_NAME): each a DNS name or an IP literal,
 * no wildcard, at most MAX_EDGE_NAMES after duplicates are dropped.
 */
export function edgeNamesOrThrow(names: readonly unknown[]): EdgeName[] {
  if (!Array.isArray(names)) throw caError(CA_ERRORS.edgeName, { reason: 'not a list' });
  const parsed = parseEdgeNames(names);
  if (!parsed.ok) {
    throw caError(CA_ERRORS.edgeName, {
      index: parsed.index,
      reason: parsed.reason,
      name: parsed.index >= 0 ? String(names[parsed.index]).slice(0, 100) : undefined,
    });
  }
  return parsed.names;
}

/** What the issuance log records as the subject of an edge certificate: `edge:<name>,<name>…`. */
export function edgeJournalSubject(names: readonly EdgeName[]): string {
  return `${EDGE_JOURNAL_PREFIX}${names.map((n) => n.value).join(',')}`;
}

/** Builds and signs an edge-server certificate for a verified CSR with `ca`. */
export async function signEdgeCertificate(
  ca: SigningCa,
  params: { csr: VerifiedCsr; names: readonly EdgeName[]; serial: string; notBefore: number; notAfter: number },
): Promise<X509Certificate> {
  const { csr } = params;
  const usage =
    csr.keyType === 'rsa'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  return x509.X509CertificateGenerator.create(
    {
      serialNumber: params.serial,
      subject: new x509.Name(EDGE_SUBJECT),
      issuer: ca.certificate.subjectName,
      notBefore: new Date(params.notBefore),
      notAfter: new Date(params.notAfter),
      signingKey: ca.privateKey,
      publicKey: csr.publicKey,
      signingAlgorithm: CA_SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(usage, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(
          params.names.map((n) => ({ type: n.type, value: n.value })),
          false,
        ),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey, false, crypto),
        new x509.AuthorityKeyIdentifierExtension(ca.keyId, false),
      ],
    },
    crypto,
  );
}
