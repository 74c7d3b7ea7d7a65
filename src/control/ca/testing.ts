import { execFileSync } from 'node:child_process';
import { randomBytes, type webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Kek, loadKek } from '../../core/kek.ts';
import { type CertificateAuthority, type CertificateAuthorityOptions, openCertificateAuthority } from './authority.ts';
import { crypto, x509 } from './x509.ts';

/**
 * Test support for the CA and its consumers: KEKs, workload keys and CSRs. Not used at run time.
 */

/** A fresh random KEK (from a base64 value, as the environment would give it). */
export function testKek(): Kek {
  return loadKek({ env: 'KEK', environment: { KEK: randomBytes(32).toString('base64') } });
}

/** Key kinds WebCrypto can generate for a CSR. */
export type WebCsrKey = 'p256' | 'p384' | 'p521' | 'ed25519' | 'rsa2048';

const KEY_PARAMS: Record<WebCsrKey, { generate: object; sign: object }> = {
  p256: { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  p384: { generate: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
  p521: { generate: { name: 'ECDSA', namedCurve: 'P-521' }, sign: { name: 'ECDSA', hash: 'SHA-512' } },
  ed25519: { generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  rsa2048: {
    generate: {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

/** A workload's key pair and its CSR. */
export interface TestCsr {
  keys: webcrypto.CryptoKeyPair;
  pem: string;
  der: Uint8Array;
}

/**
 * A CSR as a workload makes it: its own key (never sent), a subject and requested extensions that the
 * CA must ignore (defaults ask for an admin identity and a CA certificate, to prove they are ignored).
 */
export async function makeCsr(
  options: { key?: WebCsrKey; name?: string; extensions?: InstanceType<typeof x509.Extension>[] } = {},
): Promise<TestCsr> {
  const params = KEY_PARAMS[options.key ?? 'p256'];
  const keys = (await crypto.subtle.generateKey(params.generate, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: options.name ?? 'CN=admin',
      keys,
      signingAlgorithm: params.sign,
      extensions: options.extensions ?? [
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: 'spiffe://shop.local/svc/admin' },
          { type: 'dns', value: 'admin.local' },
        ]),
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      ],
    },
    crypto,
  );
  return { keys, pem: csr.toString('pem'), der: new Uint8Array(csr.rawData) };
}

/** A CSR made by the `openssl` CLI, for key types and digests WebCrypto will not produce. */
export function opensslCsr(keyArgs: readonly string[], digest = '-sha256'): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-csr-'));
  try {
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['genpkey', ...keyArgs, '-out', key], { stdio: 'pipe' });
    const digestArgs = digest === '' ? [] : [digest];
    execFileSync(
      'openssl',
      ['req', '-new', '-key', key, '-subj', '/CN=x', ...digestArgs, '-out', join(dir, 'csr.pem')],
      {
        stdio: 'pipe',
      },
    );
    return readFileSync(join(dir, 'csr.pem'), 'latin1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A CA on a fresh database file with a controllable clock, for tests. */
export interface TestCa {
  ca: CertificateAuthority;
  kek: Kek;
  dir: string;
  databasePath: string;
  /** The CA's clock; set `clock.now` to move time. */
  clock: { now: number };
  /** Closes the CA, destroys the KEK (unless kept) and removes the directory. */
  cleanup(): void;
}

export async function openTestCa(
  options: Partial<Omit<CertificateAuthorityOptions, 'clock'>> & { now?: number } = {},
): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-ca-'));
  const databasePath = options.databasePath ?? join(dir, 'ca.db');
  const kek = options.kek ?? testKek();
  const clock = { now: options.now ?? Date.now() };
  const { now: _now, ...rest } = options;
  const ca = await openCertificateAuthority({
    trustDomain: 'shop.local',
    // In this thread unless a test asks for signing threads: a worker pool per test CA is only cost.
    signingThreads: 0,
    ...rest,
    databasePath,
    kek,
    clock: () => clock.now,
  });
  return {
    ca,
    kek,
    dir,
    databasePath,
    clock,
    cleanup() {
      ca.close();
      if (!options.kek) kek.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
