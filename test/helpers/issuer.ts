import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export interface TestIssuer {
  /** `http://127.0.0.1:<port>`: the exact `iss` of minted tokens. */
  readonly issuer: string;
  readonly jwksUri: string;
  /** How many times the JWKS was fetched. */
  readonly jwksFetches: number;
  /** Signs an access token (RFC 9068 shape) with the current key; `claims` and `header` override defaults. */
  mint(claims?: JWTPayload, options?: { header?: Record<string, unknown>; expiresIn?: number }): Promise<string>;
  /** Publishes a new signing key (new `kid`); the old one stays in the JWKS unless `retire` is set. */
  rotate(options?: { retire?: boolean }): Promise<void>;
  /** Makes the JWKS endpoint fail (true) or recover (false). */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

/**
 * A real, minimal token issuer for tests: ES256 keys made with jose, a JWKS and OIDC discovery served
 * over HTTP on loopback. Tokens are signed by jose; tests never hand-craft valid signatures.
 */
export async function startTestIssuer(audience = 'https://api.test'): Promise<TestIssuer> {
  const keys: { kid: string; privateKey: CryptoKey; jwk: JWK }[] = [];
  let fetches = 0;
  let down = false;

  const addKey = async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = `k${keys.length + 1}`;
    keys.push({ kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } });
  };
  await addKey();

  let base = '';
  const server: Server = createServer((req, res) => {
    if (req.url === '/jwks') {
      fetches++;
      if (down) return void res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
      return;
    }
    if (req.url === '/.well-known/openid-configuration') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks` }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    issuer: base,
    jwksUri: `${base}/jwks`,
    get jwksFetches() {
      return fetches;
    },
    async mint(claims = {}, options = {}) {
      const key = keys.at(-1)!;
      const now = Math.floor(Date.now() / 1000);
      // Defaults first, then the test's claims: a test can set or override any of them (even to nonsense).
      const payload: JWTPayload = {
        iss: base,
        aud: audience,
        sub: 'user-1',
        client_id: 'web',
        scope: '',
        iat: now,
        exp: now + (options.expiresIn ?? 300),
        jti: crypto.randomUUID(),
        ...claims,
      };
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid, ...options.header })
        .sign(key.privateKey);
    },
    async rotate(options = {}) {
      await addKey();
      if (options.retire) keys.splice(0, keys.length - 1);
    },
    setDown(value) {
      down = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
