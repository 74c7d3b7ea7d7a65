import {
  ACCESS_TOKEN_ALGORITHMS,
  type AccessTokenVerifier,
  createAccessTokenVerifier,
} from '../../core/access-token.ts';
import { RampartError } from '../../core/errors.ts';
import { createJwks, type JwksFetchEvent } from '../../core/jwks.ts';
import { deny } from '../deny.ts';
import type { GatewayDeps, Stage } from '../stage.ts';

const REALM = 'Bearer realm="rampart"';

/**
 * Authentication: routes that need a token get a verified RFC 9068 access token from the Authorization
 * header only (RFC 6750 §2.1; tokens in the query string leak into logs and are never read). Failures
 * answer 401 with RFC 6750 `WWW-Authenticate` and no detail; the reason goes to logs and the decision.
 * Keys unavailable (issuer never reached, or down longer than the stale bound) is 503: fail closed.
 *
 * The stage owns the issuer's key store (core/jwks.ts) so it can count fetches and export the key-set
 * age, and the verifier's verified-token cache (core/token-cache.ts) counts hits and misses. Both use
 * `deps.now`, so tests drive cooldowns, staleness and expiry with one clock.
 */
export function createAuthenticate(deps: GatewayDeps, verify?: AccessTokenVerifier): Stage {
  const verifier = verify ?? createGatewayVerifier(deps);

  return {
    name: 'authenticate',
    request: async (ctx) => {
      if (!ctx.route || ctx.route.route.auth.kind === 'none') return;
      const header = ctx.req.headers.authorization;
      if (header === undefined) {
        // RFC 6750 §3.1: no credentials, so no error code in the challenge.
        throw deny(401, 'GW_ERR_NO_TOKEN', { reason: 'no_token', headers: { 'www-authenticate': REALM } });
      }
      const credentials = bearerToken(header);
      if (credentials.kind === 'other-scheme') {
        // RFC 6750 §3.1: a request using another authentication method gets the bare challenge, no error code.
        throw deny(401, 'GW_ERR_NO_TOKEN', { reason: 'not_bearer', headers: { 'www-authenticate': REALM } });
      }
      if (credentials.kind === 'malformed') {
        // RFC 6750 §3.1: a malformed request is `invalid_request`, answered with 400.
        throw deny(400, 'GW_ERR_INVALID_REQUEST', {
          reason: 'malformed_authorization',
          headers: { 'www-authenticate': `${REALM}, error="invalid_request"` },
        });
      }
      const token = credentials.token;
      try {
        ctx.identity = await verifier(token);
      } catch (err) {
        const reason = String((err as RampartError).detail?.['reason'] ?? 'invalid');
        if (err instanceof RampartError && err.status === 503) {
          throw deny(503, 'GW_ERR_KEYS_UNAVAILABLE', { reason }, err);
        }
        throw deny(
          401,
          'GW_ERR_INVALID_TOKEN',
          { reason, headers: { 'www-authenticate': `${REALM}, error="invalid_token"` } },
          err,
        );
      }
    },
  };
}

/**
 * Verifiers that outlive a reconfiguration, keyed by the issuer settings they verify for. Without it a
 * reload would start an empty key set and token cache: during an issuer outage, every authenticated
 * route would fail closed right after an unrelated config change.
 */
export type VerifierRegistry = Map<string, AccessTokenVerifier>;

function createGatewayVerifier(deps: GatewayDeps): AccessTokenVerifier {
  const { identity } = deps.manifest;
  const jwksUri = identity.mode === 'external' ? identity.jwksUri : `${identity.issuer.replace(/\/+$/, '')}/jwks`;
  const key = JSON.stringify([identity.issuer, identity.audience, jwksUri]);
  const kept = deps.verifiers?.get(key);
  if (kept) return kept;
  const verifier = newGatewayVerifier(deps, jwksUri);
  deps.verifiers?.set(key, verifier);
  return verifier;
}

function newGatewayVerifier(deps: GatewayDeps, jwksUri: string | null): AccessTokenVerifier {
  const { identity } = deps.manifest;
  const { metrics, logger } = deps;
  const onFetch = (event: JwksFetchEvent) => {
    const ok = event.outcome === 'ok';
    metrics.jwksFetches.inc({ target: event.target, outcome: ok ? 'ok' : 'error' });
    if (ok) {
      logger.debug({ target: event.target, keys: event.keys, skipped: event.skipped }, 'issuer keys fetched');
    } else {
      metrics.jwksFailures.inc({ target: event.target, kind: event.outcome });
      logger.warn({ target: event.target, kind: event.outcome, err: event.error }, 'issuer keys fetch failed');
    }
  };
  const keys = createJwks({
    issuer: identity.issuer,
    jwksUri,
    algorithms: ACCESS_TOKEN_ALGORITHMS,
    now: deps.now,
    onFetch,
  });
  const since = deps.now();
  metrics.observeKeySet(() => {
    const status = keys.status();
    return { ageSeconds: (status.ageMs ?? deps.now() - since) / 1000, keys: status.keys };
  });
  return createAccessTokenVerifier({
    issuer: identity.issuer,
    audience: identity.audience,
    jwksUri,
    keys,
    now: deps.now,
    onCacheLookup: (hit) => metrics.tokenCache.inc({ result: hit ? 'hit' : 'miss' }),
  });
}

/**
 * RFC 6750 §2.1: `Bearer` (case-insensitive scheme), one space, a b64token. Another scheme (Basic, ...) is
 * no bearer token at all; the Bearer scheme with anything else after it is a malformed request.
 */
function bearerToken(
  header: string,
): { kind: 'token'; token: string } | { kind: 'other-scheme' } | { kind: 'malformed' } {
  // RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]; the scheme is a token.
  const scheme = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(header)?.[0] ?? '';
  if (scheme.toLowerCase() !== 'bearer') return { kind: 'other-scheme' };
  const rest = header.slice(scheme.length);
  return /^ [A-Za-z0-9\-._~+/]+=*$/.test(rest) ? { kind: 'token', token: rest.slice(1) } : { kind: 'malformed' };
}
