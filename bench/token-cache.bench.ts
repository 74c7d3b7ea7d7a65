/**
 * Micro-benchmark of the verified-token cache, which the gateway consults for every authenticated
 * request. Not a test: `node --conditions=rampart-source bench/token-cache.bench.ts` prints ns/op for
 * a cache hit (SHA-256 of the token, Map lookup, LRU touch), a whole verifier call answered from the
 * cache, and, for scale, a whole verifier call that checks the ES256 signature with jose.
 */
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ACCESS_TOKEN_ALGORITHMS, createAccessTokenVerifier } from '../src/core/access-token.ts';
import type { JwksKey, JwksStore } from '../src/core/jwks.ts';
import { createTokenCache } from '../src/core/token-cache.ts';

const ISSUER = 'https://idp.bench';
const AUDIENCE = 'https://api.bench';

const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = await exportJWK(publicKey);
const key: JwksKey = { key: publicKey, alg: 'ES256', kid: 'k1', ref: `k1|${jwk.x}` };
// An in-memory key store: the benchmark measures verification, not HTTP.
const keys: JwksStore = {
  getKey: async () => key,
  hasKey: (ref) => ref === key.ref,
  status: () => ({ ageMs: 0, keys: 1, usable: true }),
  refresh: async () => true,
};

const now = Math.floor(Date.now() / 1000);
const mint = (sub: string) =>
  new SignJWT({
    iss: ISSUER,
    aud: AUDIENCE,
    sub,
    client_id: 'web',
    scope: 'orders profile catalog:read',
    roles: ['user'],
    iat: now,
    exp: now + 3600,
    jti: crypto.randomUUID(),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .sign(privateKey);
const token = await mint('user-1');

/** Best of three runs of `n` calls; async operations are awaited one at a time, sync ones are not awaited. */
async function time(label: string, n: number, op: () => unknown): Promise<void> {
  const run = async () => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const result = op();
      if (result instanceof Promise) await result;
    }
    return Number(process.hrtime.bigint() - start) / n;
  };
  await run(); // warm up: let the JIT optimize before measuring
  const best = Math.min(await run(), await run(), await run());
  process.stdout.write(`${label.padEnd(44)} ${best.toFixed(0).padStart(8)} ns/op\n`);
}

process.stdout.write(`token length ${token.length} characters; algorithms ${ACCESS_TOKEN_ALGORITHMS.join(', ')}\n`);

// 1. The cache alone, full of other entries (a realistic working set), hitting one token.
const cache = createTokenCache<{ sub: string }>({ isValid: () => true });
const others = await Promise.all(Array.from({ length: 1000 }, (_, i) => mint(`user-${i}`)));
for (const t of others) cache.set(t, { sub: 'x' }, Date.now() + 3_600_000);
cache.set(token, { sub: 'user-1' }, Date.now() + 3_600_000);
let sink = 0;
await time('cache.get (hit, 1,001 entries)', 200_000, () => {
  sink += cache.get(token) === undefined ? 0 : 1;
});
await time('cache.get (miss)', 200_000, () => {
  sink += cache.get(`${token}x`) === undefined ? 0 : 1;
});

// 2. The verifier, answered from its cache.
const cached = createAccessTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: null, keys });
await cached(token);
await time('verify (cache hit)', 200_000, () => cached(token));

// 3. The verifier without a cache: header checks, duplicate scan, ES256 signature, claims.
const uncached = createAccessTokenVerifier({
  issuer: ISSUER,
  audience: AUDIENCE,
  jwksUri: null,
  keys,
  tokenCacheEntries: 0,
});
await time('verify (no cache: ES256 signature + claims)', 5_000, () => uncached(token));

if (sink === 0) throw new Error('unexpected: no hits');
