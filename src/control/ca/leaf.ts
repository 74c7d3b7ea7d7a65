import { createHash, type webcrypto } from 'node:crypto';
import { AsnConvert, BitString, OctetString } from '@peculiar/asn1-schema';
import {
  Certificate,
  Extension,
  Extensions,
  GeneralName,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  Name,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import type { VerifiedCsr } from './csr.ts';
import { CA_ERRORS, caError } from './errors.ts';
import { CA_SIGNING_ALGORITHM, type SigningCa } from './signing-ca.ts';
import { crypto, x509 } from './x509.ts';

/** Every leaf's subject: fixed, because the identity is the URI SAN. */
const LEAF_SUBJECT = [{ '2.5.4.10': ['Rampart'] }];

/** A signed leaf. */
export interface SignedCertificate {
  /** The certificate, DER. */
  der: Uint8Array;
  /** What the certificate says (whole seconds: X.509 times have no fractions). */
  notBefore: number;
  notAfter: number;
}

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
  }): Promise<SignedCertificate>;
}

const wholeSecond = (ms: number) => Math.floor(ms / 1_000) * 1_000;

/**
 * DER SEQUENCE of already-encoded elements (X.690 §8.9): identifier 0x30, the definite length (§8.1.3,
 * short form below 128, else the minimal big-endian octets after 0x80 | count), then the elements.
 */
function derSequence(elements: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const element of elements) length += element.byteLength;
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  const header = length < 0x80 ? [0x30, length] : [0x30, 0x80 | octets.length, ...octets];
  const der = new Uint8Array(header.length + length);
  der.set(header);
  let at = header.length;
  for (const element of elements) {
    der.set(element, at);
    at += element.byteLength;
  }
  return der;
}

function asnExtension(extension: InstanceType<typeof x509.Extension>): Extension {
  return AsnConvert.parse(extension.rawData, Extension);
}

function extension(extnID: string, value: unknown): Extension {
  return new Extension({ extnID, critical: false, extnValue: new OctetString(AsnConvert.serialize(value)) });
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
 * Everything that is the same for every leaf of a CA (names, algorithm, constant extensions) is built
 * once here as ASN.1 values (@peculiar/asn1-x509 schemas); per leaf only the serial, validity, key, SAN
 * and key identifier are new. ASN.1 work in JavaScript is nearly
 * all the cost of an issuance (leaf-issuer.ts): @peculiar/x509's generator re-parses every extension
 * and name, re-encodes the names, and parses the finished certificate back, for every leaf.
 */
export function createLeafSigner(ca: SigningCa): LeafSigner {
  const caCertificate = AsnConvert.parse(ca.certificate.rawData, Certificate);
  // The leaf's issuer is the CA's subject, byte for byte (RFC 5280 §4.1.2.4: chains match names).
  const issuer = caCertificate.tbsCertificate.subject;
  // The CA signs with the algorithm it signed itself with (CA_SIGNING_ALGORITHM, ecdsa-with-SHA256).
  const algorithm = caCertificate.signatureAlgorithm;
  const subject = AsnConvert.parse(new x509.Name(LEAF_SUBJECT).toArrayBuffer(), Name);
  const basic = asnExtension(new x509.BasicConstraintsExtension(false, undefined, true));
  const usage = asnExtension(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true));
  const rsaUsage = asnExtension(
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
  );
  const eku = asnExtension(
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
  );
  const aki = asnExtension(new x509.AuthorityKeyIdentifierExtension(ca.keyId, false));
  const signingAlgorithm = { ...CA_SIGNING_ALGORITHM, ...(ca.privateKey.algorithm as webcrypto.EcKeyAlgorithm) };
  const formatter = new x509.AsnEcSignatureFormatter();
  const algorithmDer = new Uint8Array(AsnConvert.serialize(algorithm));
  return Object.freeze({
    ca,
    async sign(params: Parameters<LeafSigner['sign']>[0]) {
      const { csr } = params;
      const spki = csr.subjectPublicKeyInfo;
      const notBefore = wholeSecond(params.notBefore);
      const notAfter = wholeSecond(params.notAfter);
      const tbsCertificate = new TBSCertificate({
        version: Version.v3,
        // newSerial: exactly 16 octets, the first 01xxxxxx, so the DER INTEGER is positive as is.
        serialNumber: new Uint8Array(Buffer.from(params.serial, 'hex')).buffer,
        signature: algorithm,
        issuer,
        validity: new Validity({ notBefore: new Date(notBefore), notAfter: new Date(notAfter) }),
        subject,
        subjectPublicKeyInfo: spki,
        extensions: new Extensions([
          basic,
          csr.keyType === 'rsa' ? rsaUsage : usage,
          eku,
          extension(
            id_ce_subjectAltName,
            new SubjectAlternativeName([new GeneralName({ uniformResourceIdentifier: params.spiffeId })]),
          ),
          // RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value.
          extension(
            id_ce_subjectKeyIdentifier,
            new SubjectKeyIdentifier(
              new Uint8Array(createHash('sha1').update(new Uint8Array(spki.subjectPublicKey)).digest()).buffer,
            ),
          ),
          aki,
        ]),
      });
      const tbs = new Uint8Array(AsnConvert.serialize(tbsCertificate));
      // WebCrypto signs on libuv's pool; its ECDSA signature (r‖s) becomes the DER that X.509 carries.
      const raw = await crypto.subtle.sign(signingAlgorithm, ca.privateKey, tbs);
      const signature = formatter.toAsnSignature(signingAlgorithm, raw);
      if (!signature) throw caError(CA_ERRORS.keyMismatch, { reason: 'not an ECDSA key' });
      // The signed TBS bytes go into the certificate as they are: encoding the TBS a second time inside
      // Certificate was a third of a leaf's cost (asn1js re-encodes every nested level).
      const der = derSequence([tbs, algorithmDer, new Uint8Array(AsnConvert.serialize(new BitString(signature)))]);
      return { der, notBefore, notAfter };
    },
  });
}
