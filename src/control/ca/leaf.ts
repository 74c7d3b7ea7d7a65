import type { X509Certificate } from '@peculiar/x509';
import type { VerifiedCsr } from './csr.ts';
import { CA_SIGNING_ALGORITHM, type SigningCa } from './signing-ca.ts';
import { crypto, x509 } from './x509.ts';

/** Every leaf's subject: fixed, because the identity is the URI SAN. */
const LEAF_SUBJECT = [{ '2.5.4.10': ['Rampart'] }];

/** Signs X509-SVID leaves with one signing CA. */
export interface LeafSigner {
  readonly ca: SigningCa;
  /** Builds and signs the leaf for a verified CSR. */
  sign(params: {
    csr: VerifiedCsr;
    spiffeId: string;
    serial: string;
    notBefore: number;
    notAfter: number;
  }): Promise<X509Certificate>;
}

/**
 * X509-SVID leaves (X509-SVID.md §3.1, §4):
 * - subject `O=Rampart` (informational; the identity is the URI SAN), so the SAN need not be critical;
 * - subjectAltName: exactly one URI, the SPIFFE ID the caller authenticated — never a name from the CSR;
 * - basicConstraints cA=FALSE (critical);
 * - keyUsage digitalSignature (critical), plus keyEncipherment for RSA keys only (TLS 1.2 RSA key
 *   transport; X509-SVID §4.3 allows it, and it means nothing for EC or Ed25519 keys);
 * - extendedKeyUsage serverAuth + clientAuth: the same SVID serves and calls;
 * - subjectKeyIdentifier (from the CSR key) and authorityKeyIdentifier (the signing CA's key id).
 *
 * Everything that is the same for every leaf of a CA (names, constant extensions) is encoded once here:
 * ASN.1 encoding is most of the cost of an issuance.
 */
export function createLeafSigner(ca: SigningCa): LeafSigner {
  const subject = new x509.Name(LEAF_SUBJECT);
  const issuer = ca.certificate.subjectName;
  const basic = new x509.BasicConstraintsExtension(false, undefined, true);
  const usage = new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true);
  const rsaUsage = new x509.KeyUsagesExtension(
    x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    true,
  );
  const eku = new x509.ExtendedKeyUsageExtension(
    [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    false,
  );
  const aki = new x509.AuthorityKeyIdentifierExtension(ca.keyId, false);
  return Object.freeze({
    ca,
    async sign(params: Parameters<LeafSigner['sign']>[0]) {
      const { csr } = params;
      return x509.X509CertificateGenerator.create(
        {
          serialNumber: params.serial,
          subject,
          issuer,
          notBefore: new Date(params.notBefore),
          notAfter: new Date(params.notAfter),
          signingKey: ca.privateKey,
          publicKey: csr.publicKey,
          signingAlgorithm: CA_SIGNING_ALGORITHM,
          extensions: [
            basic,
            csr.keyType === 'rsa' ? rsaUsage : usage,
            eku,
            new x509.SubjectAlternativeNameExtension([{ type: 'url', value: params.spiffeId }], false),
            await x509.SubjectKeyIdentifierExtension.create(csr.publicKey, false, crypto),
            aki,
          ],
        },
        crypto,
      );
    },
  });
}
