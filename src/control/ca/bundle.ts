import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { AuthorityRow, AuthorityState, SlotName } from './database.ts';
import { fingerprint } from './signing-ca.ts';

/**
 * The trust bundle: every signing CA a peer must trust right now — prepared (published before it
 * signs anything), active, and retiring (until the last SVID it signed expires). Retired CAs are out.
 * The sequence number increases whenever that set changes, so a peer can tell a newer bundle from an
 * older one and the CA can tell who has installed which (bundle acknowledgements).
 */
export interface TrustBundle {
  trustDomain: string;
  /** Increases by one each time the set of CAs changes (never reused, survives restarts). */
  sequence: number;
  /** The CA certificates, concatenated PEM, oldest generation first: what `ca` of a TLS context takes. */
  pem: string;
  /** One entry per CA, in the same order. */
  authorities: readonly BundleAuthority[];
}

/** A CA in the bundle. */
export interface BundleAuthority {
  generation: number;
  slot: SlotName;
  state: Exclude<AuthorityState, 'retired'>;
  notBefore: number;
  notAfter: number;
  /** SHA-256 of the certificate DER, hex. */
  sha256: string;
  pem: string;
}

function toPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

/** Builds the bundle from the live authorities. */
export function buildBundle(trustDomain: string, sequence: number, live: readonly AuthorityRow[]): TrustBundle {
  const authorities = live
    .filter((a): a is AuthorityRow & { state: BundleAuthority['state'] } => a.state !== 'retired')
    .sort((a, b) => a.generation - b.generation)
    .map((a) =>
      Object.freeze({
        generation: a.generation,
        slot: a.slot,
        state: a.state,
        notBefore: a.notBefore,
        notAfter: a.notAfter,
        sha256: fingerprint(a.certificate),
        pem: toPem(a.certificate),
      }),
    );
  return Object.freeze({
    trustDomain,
    sequence,
    pem: authorities.map((a) => a.pem).join(''),
    authorities: Object.freeze(authorities),
  });
}

/** A SPIFFE bundle (SPIFFE Trust Domain and Bundle spec §4; X509-SVID.md §6.1): a JWK set. */
export interface SpiffeBundleDocument {
  keys: Array<Record<string, unknown> & { use: 'x509-svid'; x5c: [string] }>;
  spiffe_sequence: number;
  spiffe_refresh_hint: number;
}

/**
 * The bundle in the SPIFFE bundle format, for interoperability (other SPIFFE implementations,
 * federation later): one JWK per CA with `use: x509-svid`, `x5c` holding exactly the CA certificate,
 * no `kid` (X509-SVID.md §6.1), `spiffe_sequence` and `spiffe_refresh_hint` (seconds).
 */
export function toSpiffeBundle(bundle: TrustBundle, refreshHintMs: number): SpiffeBundleDocument {
  return {
    keys: bundle.authorities.map((a) => {
      const cert = new NodeX509Certificate(a.pem);
      const jwk = cert.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
      return { ...jwk, use: 'x509-svid' as const, x5c: [cert.raw.toString('base64')] as [string] };
    }),
    spiffe_sequence: bundle.sequence,
    spiffe_refresh_hint: Math.max(1, Math.round(refreshHintMs / 1000)),
  };
}
