/**
 * A stand-in control plane for mTLS hop tests: a CA whose key the test holds, so it can sign what the
 * real CA never would (two URI SANs, none, expired, another trust domain), and an HTTPS server that
 * speaks the API's `POST /v1/svids` (the "join token" is the service name) so real SDK services
 * obtain real SVIDs from it.
 */

import { KeyObject, type webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { crypto, x509 } from '../../src/control/ca/x509.ts';

const KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface LeafOptions {
  /** URI SANs (default: the one SPIFFE ID). */
  uris: readonly string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Public key to certify (default: a fresh key, returned). */
  publicKey?: webcrypto.CryptoKey;
}

export interface FakeCa {
  pem: string;
  leaf(options: LeafOptions): Promise<{ cert: string; key: string }>;
}

function pemKey(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

export async function createFakeCa(name = 'Fake CA'): Promise<FakeCa> {
  const keys = (await crypto.subtle.generateKey(KEY, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: `O=${name}`,
      notBefore: new Date(now - 24 * 3600_000),
      notAfter: new Date(now + 24 * 3600_000),
      keys,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    },
    crypto,
  );
  let serial = 1;
  return {
    pem: root.toString('pem'),
    async leaf(options) {
      let key: string | null = null;
      let publicKey = options.publicKey;
      if (!publicKey) {
        const pair = (await crypto.subtle.generateKey(KEY, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
        publicKey = pair.publicKey;
        key = pemKey(pair.privateKey);
      }
      serial += 1;
      const cert = await x509.X509CertificateGenerator.create(
        {
          serialNumber: serial.toString(16).padStart(2, '0'),
          subject: 'O=Rampart',
          issuer: root.subject,
          notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
          notAfter: options.notAfter ?? new Date(Date.now() + 3600_000),
          signingKey: keys.privateKey,
          publicKey,
          signingAlgorithm: SIGN,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
            ...(options.uris.length > 0
              ? [
                  new x509.SubjectAlternativeNameExtension(
                    options.uris.map((value) => ({ type: 'url' as const, value })),
                  ),
                ]
              : []),
          ],
        },
        crypto,
      );
      return { cert: cert.toString('pem'), key: key ?? '' };
    },
  };
}

/** Serves `POST /v1/svids` for `trustDomain` (other routes: 404): the token names the service; the CSR's key is certified. */
export async function startFakeControl(
  ca: FakeCa,
  trustDomain: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(
    await ca.leaf({ uris: [`spiffe://${trustDomain}/svc/control`] }).then((s) => ({ cert: s.cert, key: s.key })),
    (req, res) => {
      // Only issuance is played; other routes (the policy poll, the bundle) are answered as unknown.
      if (req.url !== '/v1/svids') {
        req.resume();
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":"CA_ERR_API_NOT_FOUND"}');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { token: string; csr: string };
        const csr = new x509.Pkcs10CertificateRequest(body.csr);
        const publicKey = await csr.publicKey.export(KEY, ['verify'], crypto);
        const spiffeId = `spiffe://${trustDomain}/svc/${body.token}`;
        const { cert } = await ca.leaf({ uris: [spiffeId], publicKey });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            spiffeId,
            certificate: cert,
            chain: [cert],
            notBefore: Date.now() - 60_000,
            notAfter: Date.now() + 3600_000,
            bundle: { sequence: 1, pem: ca.pem },
          }),
        );
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
