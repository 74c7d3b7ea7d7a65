import { type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { RampartError } from './errors.ts';
import { createJwks, type JwksFetchEvent, type JwksKey, type JwksStore } from './jwks.ts';
import { createTokenCache, type TokenCache } from './token-cache.ts';

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

/**
 * JOSE header parameters that name or carry a key (RFC 7515 §4.1.2–4.1.6). jose never uses them, and
 * neither do we; a token that carries one is trying to pick its own key, so it is refused outright.
 */
export const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'jwk', 'x5u', 'x5c'] as const;

export interface AccessTokenVerifierOptions {
  /** Exact issuer (`iss`), compared as a string: a trailing slash is a different issuer. */
  issuer: string;
  /** Audience the token must name in `aud`. */
  audience: string;
  /** JWKS URL; when null, it is discovered from the issuer's metadata once and cached. */
  jwksUri: string | null;
  /** How long a fetched key set is fresh (see jwks.ts `maxAgeMs`; the name predates the token cache). */
  cacheMaxAgeMs?: number;
  /** Minimum time between two key-set fetches (see jwks.ts `cooldownMs`). */
  cooldownMs?: number;
  /** Timeout of one key-set or metadata fetch. */
  timeoutMs?: number;
  /** How long the last good key set serves while the issuer is down (see jwks.ts `maxStaleMs`). */
  maxStaleMs?: number;
  /** A key store to use instead of creating one (the gateway builds its own to observe it). */
  keys?: JwksStore;
  /** Verified-token cache size; 0 disables the cache. Default TOKEN_CACHE_DEFAULTS.maxEntries. */
  tokenCacheEntries?: number;
  /** Longest time a verified token is reused from the cache. Default TOKEN_CACHE_DEFAULTS.maxTtlMs. */
  tokenCacheMaxTtlMs?: number;
  /** Milliseconds since the epoch: the clock for claims, the key set and the cache (tests inject one). */
  now?: () => number;
  /** Every token-cache lookup, hit or miss (metrics). */
  onCacheLookup?: (hit: boolean) => void;
  /** Every key-set or metadata fetch (metrics, logs); only used when `keys` is not given. */
  onJwksFetch?: (event: JwksFetchEvent) => void;
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
 * Reason codes for rejected tokens: a bounded set. They go to logs, metrics and decision events; clients
 * only ever see RFC 6750 `invalid_token` (or 503 for `jwks_unavailable`) with no detail.
 */
export const TOKEN_REASONS = {
  /** Not a compact JWS of base64url JSON objects (including five-part JWE, bad UTF-8, non-object JSON). */
  malformed: 'malformed',
  /** Longer than MAX_TOKEN_LENGTH. */
  tooLong: 'too_long',
  signature: 'bad_signature',
  /** `alg` outside ACCESS_TOKEN_ALGORITHMS (none, HS*, …). */
  algorithm: 'algorithm_not_allowed',
  /** A key-carrying header parameter (FORBIDDEN_HEADER_PARAMETERS). */
  forbiddenHeader: 'forbidden_header',
  /** `crit` present: we understand no JWS extension (RFC 7515 §4.1.11). */
  unknownCrit: 'unknown_crit',
  /** The same member name twice in the header or the claims (parsers would disagree on which wins). */
  duplicateMember: 'duplicate_member',
  /** `kid` not a non-empty string of bounded length. */
  invalidKid: 'invalid_kid',
  /** No key in the issuer's set for this `kid` and `alg`. */
  unknownKey: 'unknown_key',
  expired: 'expired',
  /** `nbf` or `iat` beyond the clock skew in the future. */
  notYetValid: 'not_yet_valid',
  wrongIssuer: 'wrong_issuer',
  wrongAudience: 'wrong_audience',
  /** A required claim (`exp`, `iat`, `sub`, `iss`, `aud`) is absent. */
  claimMissing: 'claim_missing',
  /** A claim has the wrong type or value. */
  claim: 'claim_invalid',
  /** `typ` is not at+jwt (an ID token, a logout token, …: RFC 9068 §4). */
  type: 'wrong_type',
  /** The issuer's keys could not be obtained (never fetched, or stale beyond the bound): 503. */
  jwksUnavailable: 'jwks_unavailable',
} as const;

export type TokenReason = (typeof TOKEN_REASONS)[keyof typeof TOKEN_REASONS];

/** Every reason code, for tests and metric pre-registration. */
export const TOKEN_REASON_CODES: readonly TokenReason[] = Object.freeze(Object.values(TOKEN_REASONS));

interface CachedToken {
  identity: TokenIdentity;
  keyRef: string;
}

/**
 * Builds the RFC 9068 access-token verifier used by the gateway and again by every service (defense in
 * depth). Signatures and claims are checked by jose; this function fixes the policy around it:
 *
 * 1. length ≤ 8 KB, before anything else;
 * 2. a cache hit returns the earlier result (entry bounded by `exp`, and dropped once its key leaves the set);
 * 3. compact JWS only; header and claims decode as strict UTF-8 JSON objects without duplicate members;
 * 4. header: no `jku`/`jwk`/`x5u`/`x5c`, no `crit`, `alg` on the asymmetric allow-list, a bounded `kid`;
 * 5. jose: signature with the issuer's key for that `kid` (the key is only ever looked up in a map), then
 *    `typ` at+jwt, exact `iss`, required `aud`, required `exp`/`iat`/`sub`, `nbf`/`exp` with 60 s skew;
 * 6. `iat` not in the future beyond the skew, `sub` a non-empty string.
 */
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  const now = options.now ?? Date.now;
  const keys =
    options.keys ??
    createJwks({
      issuer: options.issuer,
      jwksUri: options.jwksUri,
      algorithms: ACCESS_TOKEN_ALGORITHMS,
      ...(options.cacheMaxAgeMs === undefined ? {} : { maxAgeMs: options.cacheMaxAgeMs }),
      ...(options.cooldownMs === undefined ? {} : { cooldownMs: options.cooldownMs }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.maxStaleMs === undefined ? {} : { maxStaleMs: options.maxStaleMs }),
      ...(options.onJwksFetch === undefined ? {} : { onFetch: options.onJwksFetch }),
      now,
    });
  const cache: TokenCache<CachedToken> | null =
    options.tokenCacheEntries === 0
      ? null
      : createTokenCache<CachedToken>({
          ...(options.tokenCacheEntries === undefined ? {} : { maxEntries: options.tokenCacheEntries }),
          ...(options.tokenCacheMaxTtlMs === undefined ? {} : { maxTtlMs: options.tokenCacheMaxTtlMs }),
          now,
          isValid: (entry) => keys.hasKey(entry.keyRef),
        });
  const onCacheLookup = options.onCacheLookup;
  const verifyOptions = {
    issuer: options.issuer,
    audience: options.audience,
    algorithms: [...ACCESS_TOKEN_ALGORITHMS],
    typ: 'at+jwt',
    requiredClaims: ['exp', 'iat', 'sub'],
    clockTolerance: CLOCK_SKEW_SECONDS,
  };

  return async (token) => {
    if (typeof token !== 'string') throw tokenError(TOKEN_REASONS.malformed);
    if (token.length > MAX_TOKEN_LENGTH) throw tokenError(TOKEN_REASONS.tooLong);
    if (cache) {
      const hit = cache.get(token);
      onCacheLookup?.(hit !== undefined);
      if (hit) return hit.identity;
    }
    const header = inspectToken(token);
    let used: JwksKey | null = null;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(
        token,
        async () => {
          used = await keys.getKey(header['alg'] as string, header['kid']);
          return used.key;
        },
        { ...verifyOptions, currentDate: new Date(now()) },
      ));
    } catch (err) {
      throw tokenError(reasonOf(err), err);
    }
    const seconds = Math.floor(now() / 1000);
    // RFC 9068 §4: an `iat` in the future beyond the skew is not a token this issuer minted yet (jose
    // only checks `iat` against `maxTokenAge`).
    if (typeof payload.iat !== 'number' || !Number.isFinite(payload.iat)) throw tokenError(TOKEN_REASONS.claim);
    if (payload.iat > seconds + CLOCK_SKEW_SECONDS) throw tokenError(TOKEN_REASONS.notYetValid);
    if (typeof payload.sub !== 'string' || payload.sub === '') throw tokenError(TOKEN_REASONS.claim);
    const identity = toIdentity(payload);
    if (cache && used) cache.set(token, { identity, keyRef: (used as JwksKey).ref }, identity.expiresAt * 1000);
    return identity;
  };
}

/** Three base64url parts: a compact JWS. Five-part JWE and JSON serializations are refused up front. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Structural checks before any key is looked up: compact shape, strict UTF-8 JSON objects in header and
 * claims without duplicate members, no key-carrying header parameters, no `crit`, an allowed `alg`.
 * Claims are only decoded here for the duplicate check; their values are judged after the signature.
 */
function inspectToken(token: string): Record<string, unknown> {
  if (!COMPACT_JWS.test(token)) throw tokenError(TOKEN_REASONS.malformed);
  const dot = token.indexOf('.');
  const header = decodeJsonObject(token.slice(0, dot));
  const payload = decodeJsonObject(token.slice(dot + 1, token.indexOf('.', dot + 1)));
  if (header.duplicate || payload.duplicate) throw tokenError(TOKEN_REASONS.duplicateMember);
  const h = header.value;
  for (const name of FORBIDDEN_HEADER_PARAMETERS) {
    if (Object.hasOwn(h, name)) throw tokenError(TOKEN_REASONS.forbiddenHeader);
  }
  if (Object.hasOwn(h, 'crit')) throw tokenError(TOKEN_REASONS.unknownCrit);
  if (typeof h['alg'] !== 'string' || !(ACCESS_TOKEN_ALGORITHMS as readonly string[]).includes(h['alg'])) {
    throw tokenError(TOKEN_REASONS.algorithm);
  }
  return h;
}

function decodeJsonObject(part: string): { value: Record<string, unknown>; duplicate: boolean } {
  // base64url length 4n+1 cannot be produced by any encoder; Buffer would silently drop the stray char.
  if (part.length % 4 === 1) throw tokenError(TOKEN_REASONS.malformed);
  let text: string;
  let value: unknown;
  try {
    text = STRICT_UTF8.decode(Buffer.from(part, 'base64url'));
    value = JSON.parse(text);
  } catch (err) {
    throw tokenError(TOKEN_REASONS.malformed, err);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw tokenError(TOKEN_REASONS.malformed);
  return { value: value as Record<string, unknown>, duplicate: hasDuplicateMembers(text) };
}

/**
 * True when some JSON object in `text` names the same member twice (after unescaping: `"a"` and
 * `"\u0061"` are the same name). RFC 8259 §4 leaves duplicates to the parser; JSON.parse keeps the last,
 * other parsers keep the first or fail, so a token with duplicates can mean different things to the
 * gateway and a service (RFC 7515 §5.2 and RFC 7519 §4 ask recipients to reject them).
 *
 * `text` must already be valid JSON (JSON.parse accepted it): this is a scanner of member names, not a
 * parser; values are skipped.
 */
export function hasDuplicateMembers(text: string): boolean {
  // One entry per open container: the member names seen so far for an object, null for an array.
  const stack: (Set<string> | null)[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      const names = stack.at(-1);
      if (expectName && names) {
        const raw = text.slice(start, i + 1);
        const name = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (names.has(name)) return true;
        names.add(name);
        expectName = false;
      }
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectName = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectName = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectName = false;
    } else if (c === 0x2c /* , */) {
      expectName = stack.at(-1) != null;
    }
  }
  return false;
}

function toIdentity(payload: JWTPayload): TokenIdentity {
  const clientId = typeof payload['client_id'] === 'string' ? payload['client_id'] : null;
  const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
  const rolesClaim = payload['roles'];
  const roles = Array.isArray(rolesClaim) ? rolesClaim.filter((r): r is string => typeof r === 'string') : [];
  return Object.freeze({
    subject: payload.sub!,
    clientId,
    scopes: new Set(scope.split(' ').filter(Boolean)),
    roles: new Set(roles),
    machine: clientId !== null && payload.sub === clientId,
    expiresAt: payload.exp!,
    claims: Object.freeze(payload),
  });
}

function reasonOf(err: unknown): TokenReason {
  if (err instanceof RampartError) {
    const reason = err.detail?.['reason'];
    return TOKEN_REASON_CODES.includes(reason as TokenReason) ? (reason as TokenReason) : TOKEN_REASONS.malformed;
  }
  if (err instanceof joseErrors.JWTExpired) return TOKEN_REASONS.expired;
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'typ') return TOKEN_REASONS.type;
    if (err.reason === 'missing') return TOKEN_REASONS.claimMissing;
    if (err.claim === 'iss') return TOKEN_REASONS.wrongIssuer;
    if (err.claim === 'aud') return TOKEN_REASONS.wrongAudience;
    if (err.claim === 'nbf' && err.reason === 'check_failed') return TOKEN_REASONS.notYetValid;
    return TOKEN_REASONS.claim;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return TOKEN_REASONS.algorithm;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return TOKEN_REASONS.signature;
  // Anything else (jose's JWSInvalid/JWTInvalid, or an unexpected error) is a token we cannot read.
  return TOKEN_REASONS.malformed;
}

function tokenError(reason: TokenReason, cause?: unknown): RampartError {
  const unavailable = reason === TOKEN_REASONS.jwksUnavailable;
  return new RampartError(
    unavailable ? 'AUTH_ERR_KEYS_UNAVAILABLE' : 'AUTH_ERR_INVALID_TOKEN',
    unavailable ? 'token keys unavailable' : 'invalid token',
    { status: unavailable ? 503 : 401, cause, detail: { reason } },
  );
}
