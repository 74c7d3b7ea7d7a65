import type { X509Certificate } from '@peculiar/x509';
import type { VerifiedCsr } from './csr.ts';
import { CA_SIGNING_ALGORITHM, type SigningCa } from './signing-ca.ts';
import { crypto, x509 } from './x509.ts';

/** Every leaf's subject: fixed, because the identity is the URI SAN. */
const LEAF_SUBJECT = [{ '2.5.4.10': ['Rampart'] }];

/**
 * Builds and signs an X509-SVID leaf (X509-SVID.md §3.1, §4):
 * - subject `O=Rampart` (informational; the identity is the URI SAN), so the SAN need not be critical;
 * - subjectAltName: exactly one URI, the SPIFFE ID the caller authenticated — never a name from the CSR;
 * - basicConstraints cA=FALSE (critical);
 * - keyUsage digitalSignature (critical), plus keyEncipherment for RSA keys only (TLS 1.2 RSA key
 *   transport; X509-SVID §4.3 allows it, and it means nothing for EC or Ed25519 keys);
 * - extendedKeyUsage serverAuth + clientAuth: the same SVID serves and calls;
 * - subjectKeyIdentifier (from the CSR key) and authorityKeyIdentifier (the signing CA's key id).
 */
export async function signLeaf(params: {
  ca: SigningCa;
  csr: VerifiedCsr;
  spiffeId: string;
  serial: string;
  notBefore: number;
  notAfter: number;
}): Promise<X509Certificate> {
  const { ca, csr } = params;
  const usage =
    csr.keyType === 'rsa'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  return x509.X509CertificateGenerator.create(
    {
      serialNumber: params.serial,
      subject: LEAF_SUBJECT,
      issuer: ca.certificate.subjectName,
      notBefore: new Date(params.notBefore),
      notAfter: new Date(params.notAfter),
      signingKey: ca.privateKey,
      publicKey: csr.publicKey,
      signingAlgorithm: CA_SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(usage, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: params.spiffeId }], false),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey, false, crypto),
        new x509.AuthorityKeyIdentifierExtension(ca.keyId, false),
      ],
    },
    crypto,
  );
}
