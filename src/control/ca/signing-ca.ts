import { createHash, createPrivateKey, createPublicKey, type webcrypto } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  id_ce_nameConstraints,
  NameConstraints,
} from '@peculiar/asn1-x509';
import type { X509Certificate } from '@peculiar/x509';
import sodium from 'sodium-native';
import { RampartError } from '../../core/errors.ts';
import { KEK_ERRORS, type Kek, rewrapSealed } from '../../core/kek.ts';
import type { CaStore, SlotName } from './database.ts';
import { CA_ERRORS, caError } from './errors.ts';
import { newSerial } from './serial.ts';
import { crypto, x509 } from './x509.ts';

/**
 * A signing CA: one slot's self-signed ECDSA P-256 root (SPIRE's default `ca_key_type` ec-p256).
 *
 * Extensions (X509-SVID.md §3.2, §4; RFC 5280 §4.2):
 * - basicConstraints cA=TRUE, pathLen 0 (critical): it signs leaves only.
 * - keyUsage keyCertSign + cRLSign (critical).
 * - nameConstraints (critical): permitted URI subtree = the trust domain. RFC 5280 §4.2.1.10 applies a
 *   URI constraint to the URI's host, so this admits `spiffe://<td>/…` (and, per RFC, any scheme with
 *   that exact host; our leaves carry only spiffe URIs and svidIdentity checks the scheme). Constraints
 *   are per name type: DNS and IP names are not constrained (RFC semantics), and SVIDs carry none.
 *   @peculiar/x509 has no NameConstraints class; the extension value is encoded with
 *   @peculiar/asn1-x509's NameConstraints schema and carried as a generic Extension.
 * - subjectAltName URI `spiffe://<td>` (§3.2: a signing certificate SHOULD be an SVID, without a path).
 * - subjectKeyIdentifier / authorityKeyIdentifier.
 *
 * The subject names the generation, so the two roots in the bundle never share a subject name and
 * chain building never has to guess between them.
 */

/** ECDSA P-256 with SHA-256 for keys and signatures. */
export const CA_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const CA_SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** The KEK context binding a wrapped CA key to its slot and generation (DESIGN.md: "associated data binds"). */
export function caKeyContext(slot: SlotName, generation: number): string {
  return `rampart/ca-key/v1/${slot}.${generation}`;
}

/** A signing CA ready to sign. */
export interface SigningCa {
  generation: number;
  slot: SlotName;
  certificate: X509Certificate;
  /** Non-extractable signing key. */
  privateKey: webcrypto.CryptoKey;
  /** The certificate's subjectKeyIdentifier, hex (becomes the leaves' authorityKeyIdentifier). */
  keyId: string;
}

/** DER of a NameConstraints value permitting exactly the URIs whose host is `trustDomain`. */
export function nameConstraintsFor(trustDomain: string): ArrayBuffer {
  const permitted = new GeneralSubtrees([
    new GeneralSubtree({ base: new GeneralName({ uniformResourceIdentifier: trustDomain }) }),
  ]);
  return AsnConvert.serialize(new NameConstraints({ permittedSubtrees: permitted }));
}

function keyIdOf(cert: X509Certificate): string {
  const ext = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ext) throw caError(CA_ERRORS.keyMismatch, { reason: 'no subjectKeyIdentifier' });
  return ext.keyId;
}

/** SHA-256 of a certificate's DER, hex: how the bundle and status name a CA. */
export function fingerprint(cert: X509Certificate | Uint8Array): string {
  const der = cert instanceof Uint8Array ? cert : new Uint8Array(cert.rawData);
  return createHash('sha256').update(der).digest('hex');
}

/** What {@link createSigningCa} returns: the CA and its wrapped key for the database. */
export interface NewSigningCa {
  ca: SigningCa;
  wrappedKey: Buffer;
  notBefore: number;
  notAfter: number;
}

/**
 * Generates a signing CA for `slot`/`generation`: a fresh P-256 key (WebCrypto), the self-signed
 * certificate valid from `now - skewMs` to `now + lifetimeMs`, and the private key wrapped by the KEK.
 * The exported PKCS#8 is zeroed as soon as it is wrapped; the key kept for signing is non-extractable.
 */
export async function createSigningCa(params: {
  trustDomain: string;
  slot: SlotName;
  generation: number;
  now: number;
  lifetimeMs: number;
  skewMs: number;
  kek: Kek;
}): Promise<NewSigningCa> {
  const { trustDomain, slot, generation, now, kek } = params;
  const keys = (await crypto.subtle.generateKey(CA_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = now - params.skewMs;
  const notAfter = now + params.lifetimeMs;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: newSerial(),
      name: [{ '2.5.4.10': ['Rampart'] }, { '2.5.4.3': [`${trustDomain} CA ${generation}`] }],
      keys,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      signingAlgorithm: CA_SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        new x509.Extension(id_ce_nameConstraints, true, nameConstraintsFor(trustDomain)),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  let wrappedKey: Buffer;
  let privateKey: webcrypto.CryptoKey;
  try {
    wrappedKey = kek.wrap(pkcs8, caKeyContext(slot, generation));
    privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, CA_KEY_ALGORITHM, false, ['sign']);
  } finally {
    sodium.sodium_memzero(pkcs8);
  }
  return {
    ca: { generation, slot, certificate, privateKey, keyId: keyIdOf(certificate) },
    wrappedKey,
    // What the certificate says (X.509 times have one-second resolution), not the requested instants.
    notBefore: certificate.notBefore.getTime(),
    notAfter: certificate.notAfter.getTime(),
  };
}

/**
 * Unwraps a stored CA key and checks it belongs to the stored certificate (a row whose key and
 * certificate were swapped would otherwise sign leaves no bundle trusts). KEK failures become
 * CA_ERR_SEALED with the KEK error as the cause.
 */
export async function loadSigningCa(params: {
  slot: SlotName;
  generation: number;
  certificate: Uint8Array;
  wrappedKey: Uint8Array;
  kek: Kek;
}): Promise<SigningCa> {
  const { slot, generation, kek } = params;
  const certificate = new x509.X509Certificate(params.certificate);
  let pkcs8: Buffer;
  try {
    pkcs8 = kek.unwrap(params.wrappedKey, caKeyContext(slot, generation));
  } catch (cause) {
    throw caError(CA_ERRORS.sealed, { generation, slot, ...sealedDetail(cause) }, cause);
  }
  let privateKey: webcrypto.CryptoKey;
  try {
    // The public key derived from the private key must be the certificate's.
    const derived = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({
      format: 'der',
      type: 'spki',
    });
    if (!derived.equals(Buffer.from(certificate.publicKey.rawData))) {
      throw caError(CA_ERRORS.keyMismatch, { generation, slot });
    }
    privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, CA_KEY_ALGORITHM, false, ['sign']);
  } finally {
    sodium.sodium_memzero(pkcs8);
  }
  return { generation, slot, certificate, privateKey, keyId: keyIdOf(certificate) };
}

/**
 * What a KEK failure says about the stored key, for the operator: the KEK error code and, when another
 * KEK sealed the key, that KEK's id and the one in use (an unfinished `rampart kek rotate` leaves
 * stores under two KEKs; the ids say which is where).
 */
function sealedDetail(cause: unknown): Record<string, unknown> {
  if (!(cause instanceof RampartError)) return { kekError: undefined };
  if (cause.code !== KEK_ERRORS.wrongKey) return { kekError: cause.code };
  return { kekError: cause.code, kekId: cause.detail?.['kekId'], sealedBy: cause.detail?.['sealedBy'] };
}

/**
 * KEK rotation of the CA (src/control/kek-rotation.ts): every wrapped CA key re-wrapped from `from` to
 * `to` in one transaction; keys `to` already opens are kept, so a rotation run again after an
 * interruption finishes the job. Certificates are not touched. CA_ERR_SEALED (nothing changed) when a
 * key opens under neither KEK or fails authentication.
 */
export function rewrapCaKeys(store: CaStore, from: Kek, to: Kek): { rewrapped: number; kept: number } {
  return store.rewrapKeys(({ slot, generation, wrappedKey }) => {
    try {
      return rewrapSealed(from, to, wrappedKey, caKeyContext(slot, generation));
    } catch (cause) {
      throw caError(CA_ERRORS.sealed, { generation, slot, ...sealedDetail(cause) }, cause);
    }
  });
}
