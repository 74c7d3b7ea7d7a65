import { KeyObject, type webcrypto } from 'node:crypto';
import { crypto, x509 } from '../ca/x509.ts';

/** A workload's private key (PEM, for TLS contexts) and the CSR that proves possession of it. */
export interface WorkloadKey {
  /** PKCS#8 PEM. Stays in this process: only the CSR is sent. */
  keyPem: string;
  /** PKCS#10 PEM. */
  csrPem: string;
}

const KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/**
 * Generates a fresh ECDSA P-256 key (node:crypto's WebCrypto) and a CSR for it (@peculiar/x509).
 * The CSR names nothing: the CA takes the identity from the attestation (join token or current
 * SVID), never from the CSR. A new key per issuance, so a renewal also rotates the key.
 */
export async function createWorkloadKey(): Promise<WorkloadKey> {
  const keys = (await crypto.subtle.generateKey(KEY, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: 'O=Rampart', keys, signingAlgorithm: SIGN },
    crypto,
  );
  const keyPem = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { keyPem, csrPem: csr.toString('pem') };
}
