import { randomBytes, webcrypto } from 'node:crypto';
// @peculiar/x509 needs a Reflect shim while it loads; the CA module's loader provides it.
import { crypto, x509 } from '../../src/control/ca/x509.ts';

export interface TestCertificate {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM PKCS#8 private key. */
  readonly key: string;
  /** SHA-256 fingerprint as Node prints it (`AB:CD:...`), to compare with `getPeerCertificate()`. */
  readonly fingerprint: string;
}

export interface CertificateOptions {
  /** DNS subjectAltNames (default `localhost`). */
  dns?: readonly string[];
  /** IP subjectAltNames (default `127.0.0.1`). */
  ips?: readonly string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Key algorithm (default ECDSA P-256). */
  algorithm?: 'ecdsa' | 'rsa-1024' | 'rsa-2048';
}

/**
 * A self-signed server certificate made with @peculiar/x509 on node:crypto's WebCrypto: the way a
 * test gets real certificates without files checked in or a CA running.
 */
export async function makeCertificate(options: CertificateOptions = {}): Promise<TestCertificate> {
  const algorithm =
    options.algorithm === undefined || options.algorithm === 'ecdsa'
      ? { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
      : {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: options.algorithm === 'rsa-1024' ? 1024 : 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names = [
    ...(options.dns ?? ['localhost']).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ips ?? ['127.0.0.1']).map((value) => ({ type: 'ip' as const, value })),
  ];
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomBytes(8).toString('hex'),
      name: 'CN=rampart-test',
      notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
      notAfter: options.notAfter ?? new Date(Date.now() + 24 * 3600_000),
      signingAlgorithm: algorithm,
      keys,
      extensions: [
        new x509.SubjectAlternativeNameExtension(names),
        new x509.BasicConstraintsExtension(false),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ],
    },
    crypto,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const thumbprint = Buffer.from(await certificate.getThumbprint('SHA-256', crypto));
  return {
    cert: certificate.toString('pem'),
    key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    fingerprint: [...thumbprint].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':'),
  };
}
