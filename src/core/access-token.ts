import { createRemoteJWKSet, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { RampartError } from './errors.ts';

/**
 * Asymmetric algorithms accepted for access tokens (RFC 9068 §4 requires asymmetric signatures for
 * tokens a resource server verifies with public keys). `none` and HS* are never accepted: an HS256
 * token "signed" with the issuer's public key is the classic key-confusion attack.
 */
export const ACCESS_TOKEN_ALGORITHMS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const;

/** Longest token accepted, in characters (DESIGN.md: ≤ 8 KB). Checked before any parsing. */
export const MAX_TOKEN_LENGTH = 8192;

/** Clock skew tolerated for `exp`, `nbf` and `iat` (DESIGN.md: ≤ 60 s). */
export const CLOCK_SKEW_SECONDS = 60;

export interface AccessTokenVerifierOptions {
  /** Exact issuer (`iss`), compared as a string: a trailing slash is a different issuer. */
  issuer: string;
  /** Audience the token must name in `aud`. */
  audience: string;
  /** JWKS URL; when null, it is discovered from the issuer's metadata once and cached. */
  jwksUri: string | null;
  /** How long a fetched key set is fresh, and the minimum time between re-fetches on an unknown `kid`. */
  cacheMaxAgeMs?: number;
  cooldownMs?: number;
  timeoutMs?: number;
}

/** The verified identity carried by an access token. */
export interface TokenIdentity {
  subject: string;
  clientId: string | null;
  scopes: ReadonlySet<string>;
  roles: ReadonlySet<string>;
  /** True for a machine token (client credentials: `sub` equals `client_id`, RFC 9068 §2.2). */
  machine: boolean;
  expiresAt: number;
  claims: Readonly<JWTPayload>;
}

export type AccessTokenVerifier = (token: string) => Promise<TokenIdentity>;

/**
 * Reason codes for rejected tokens. They go to logs, metrics and decision events; clients only ever see
 * RFC 6750 `invalid_token` with no detail.
 */
export const TOKEN_REASONS = {
  malformed: 'malformed',
  tooLong: 'too_long',
  signature: 'bad_signature',
  algorithm: 'algorithm_not_allowed',
  expired: 'expired',
  claim: 'claim_invalid',
  type: 'wrong_type',
  unknownKey: 'unknown_key',
  jwksUnavailable: 'jwks_unavailable',
} as const;

/**
 * Builds the RFC 9068 access-token verifier used by the gateway and again by every service (defense in
 * depth). All checks are jose's; this function only fixes the policy:
 * explicit algorithm allow-list, `typ` at+jwt, exact `iss`, required `aud`, `exp`, `iat` and `sub`,
 * ≤ 60 s skew, compact JWS only. jose never dereferences `jku`/`x5u`/`jwk`/`x5c`; `kid` is only a lookup key.
 */
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  let keySet: ReturnType<typeof createRemoteJWKSet> | null = null;
  let discovering: Promise<ReturnType<typeof createRemoteJWKSet>> | null = null;

  const jwks = async () => {
    if (keySet) return keySet;
    discovering ??= (async () => {
      const uri = options.jwksUri ?? (await discoverJwksUri(options.issuer, options.timeoutMs ?? 5000));
      keySet = createRemoteJWKSet(new URL(uri), {
        cacheMaxAge: options.cacheMaxAgeMs ?? 10 * 60_000,
        cooldownDuration: options.cooldownMs ?? 30_000,
        timeoutDuration: options.timeoutMs ?? 5000,
      });
      return keySet;
    })().finally(() => {
      discovering = null;
    });
    return discovering;
  };

  return async (token) => {
    if (token.length > MAX_TOKEN_LENGTH) throw tokenError(TOKEN_REASONS.tooLong);
    if (!COMPACT_JWS.test(token)) throw tokenError(TOKEN_REASONS.malformed);
    let payload: JWTPayload;
    try {
      const keys = await jwks();
      ({ payload } = await jwtVerify(token, keys, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: [...ACCESS_TOKEN_ALGORITHMS],
        typ: 'at+jwt',
        requiredClaims: ['exp', 'iat', 'sub'],
        clockTolerance: CLOCK_SKEW_SECONDS,
      }));
    } catch (err) {
      throw tokenError(reasonOf(err), err);
    }
    // RFC 9068 §4: an `iat` in the future beyond the skew is not a token this issuer minted yet.
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.iat !== 'number' || payload.iat > now + CLOCK_SKEW_SECONDS) {
      throw tokenError(TOKEN_REASONS.claim);
    }
    return toIdentity(payload);
  };
}

function toIdentity(payload: JWTPayload): TokenIdentity {
  const clientId = typeof payload['client_id'] === 'string' ? payload['client_id'] : null;
  const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
  const rolesClaim = payload['roles'];
  const roles = Array.isArray(rolesClaim) ? rolesClaim.filter((r): r is string => typeof r === 'string') : [];
  return {
    subject: payload.sub!,
    clientId,
    scopes: new Set(scope.split(' ').filter(Boolean)),
    roles: new Set(roles),
    machine: clientId !== null && payload.sub === clientId,
    expiresAt: payload.exp!,
    claims: Object.freeze(payload),
  };
}

/** Three base64url parts: a compact JWS. Five-part JWE and JSON serializations are refused up front. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function reasonOf(err: unknown): string {
  if (err instanceof RampartError && err.code === 'AUTH_ERR_DISCOVERY') return TOKEN_REASONS.jwksUnavailable;
  if (err instanceof joseErrors.JWTExpired) return TOKEN_REASONS.expired;
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return err.claim === 'typ' ? TOKEN_REASONS.type : TOKEN_REASONS.claim;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return TOKEN_REASONS.algorithm;
  if (err instanceof joseErrors.JWKSNoMatchingKey) return TOKEN_REASONS.unknownKey;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return TOKEN_REASONS.signature;
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return TOKEN_REASONS.jwksUnavailable;
  }
  if (err instanceof joseErrors.JOSEError) return TOKEN_REASONS.malformed;
  // Network failures fetching the key set surface as plain errors.
  return TOKEN_REASONS.jwksUnavailable;
}

function tokenError(reason: string, cause?: unknown): RampartError {
  const unavailable = reason === TOKEN_REASONS.jwksUnavailable;
  return new RampartError(
    unavailable ? 'AUTH_ERR_KEYS_UNAVAILABLE' : 'AUTH_ERR_INVALID_TOKEN',
    unavailable ? 'token keys unavailable' : 'invalid token',
    { status: unavailable ? 503 : 401, cause, detail: { reason } },
  );
}

async function discoverJwksUri(issuer: string, timeoutMs: number): Promise<string> {
  // OIDC Discovery 1.0 §4, then RFC 8414 for plain OAuth issuers.
  const base = issuer.replace(/\/$/, '');
  for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    try {
      const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
      if (!res.ok) continue;
      const meta = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
      // The metadata must be about this exact issuer (OIDC Discovery §4.3).
      if (meta.issuer === issuer && typeof meta.jwks_uri === 'string') return meta.jwks_uri;
    } catch {
      // try the next well-known location
    }
  }
  throw new RampartError('AUTH_ERR_DISCOVERY', 'issuer metadata unavailable', { status: 503, detail: { issuer } });
}
