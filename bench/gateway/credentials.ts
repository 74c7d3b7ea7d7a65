/**
 * Throw-away credentials for one benchmark run: an ES256 issuer key with its JWKS (served over HTTP on
 * loopback for the Rampart gateway, as a PEM file for HAProxy), one long-lived access token, and a
 * self-signed P-256 certificate for the TLS lines. Nothing outlives the run's temporary directory.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';

/** The claims every line checks: the same issuer, audience and scope for HAProxy and Rampart. */
export const BENCH_ISSUER = 'https://issuer.test';
export const BENCH_AUDIENCE = 'api';
export const BENCH_SCOPE = 'orders';
const KID = 'bench-1';

export interface BenchIssuer {
  /** An RFC 9068 access token valid for a day: user `bench-user`, client `bench-client`, scope `orders`. */
  readonly token: string;
  /** The public key as a PEM file (HAProxy's `jwt_verify` reads a file). */
  readonly publicKeyFile: string;
  /** `http://127.0.0.1:<port>/jwks`. */
  readonly jwksUri: string;
  /** How many times the JWKS was fetched (a gateway that verifies from cache fetches it once). */
  readonly jwksFetches: number;
  close(): Promise<void>;
}

/** Makes the issuer key, writes the public key into `dir`, mints the token and starts the JWKS server. */
export async function startBenchIssuer(dir: string): Promise<BenchIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicKeyFile = join(dir, 'issuer-pub.pem');
  writeFileSync(publicKeyFile, await exportSPKI(publicKey));
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: KID, alg: 'ES256', use: 'sig' }] });
  const token = await new SignJWT({ scope: BENCH_SCOPE, client_id: 'bench-client' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: KID })
    .setIssuer(BENCH_ISSUER)
    .setAudience(BENCH_AUDIENCE)
    .setSubject('bench-user')
    .setJti('bench-token-1')
    .setIssuedAt()
    .setExpirationTime('1d')
    .sign(privateKey);

  let fetches = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/jwks') return void res.writeHead(404).end();
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(jwks);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    token,
    publicKeyFile,
    jwksUri: `http://127.0.0.1:${port}/jwks`,
    get jwksFetches() {
      return fetches;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TlsFiles {
  cert: string;
  key: string;
  /** Certificate and key in one file, as HAProxy's `crt` wants them. */
  combined: string;
}

/** A self-signed P-256 certificate for localhost and 127.0.0.1, valid two days, made with openssl. */
export function makeTlsCertificate(dir: string): TlsFiles {
  const cert = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const combined = join(dir, 'tls.pem');
  writeFileSync(combined, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'), { mode: 0o600 });
  return { cert, key, combined };
}
