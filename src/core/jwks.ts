import { performance } from 'node:perf_hooks';
import { type CryptoKey, calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import { RampartError } from './errors.ts';

/**
 * Defaults of the key-set lifecycle, each with the reason for its value.
 */
export const JWKS_DEFAULTS = {
  /** A request that triggers a fetch waits for it: an issuer slower than 5 s is down for our purposes. */
  timeoutMs: 5_000,
  /**
   * Largest JWKS or metadata document read, in bytes (decoded). A set of ten RSA-4096 keys is about
   * 10 KiB; 64 KiB leaves room and bounds what a hostile or broken endpoint can make us buffer.
   */
  maxResponseBytes: 65_536,
  /** Most keys kept. Issuers publish two to five (previous, current, next); the rest are ignored. */
  maxKeys: 32,
  /** Longest `kid` accepted, in characters. A `kid` is only ever a map key; this bounds the key's size. */
  maxKidLength: 256,
  /** Minimum time between two fetches (unknown `kid`, refresh or retry after a failure). jose uses 30 s. */
  cooldownMs: 30_000,
  /** A key set older than this is refreshed in the background on the next use (jose uses 10 min). */
  maxAgeMs: 600_000,
  /**
   * A key set older than this (since its fetch) is never used: while the issuer is down the last good
   * keys keep working this long, then verification fails closed. One hour covers an issuer restart or a
   * short outage without letting a key removed at the issuer live on for long.
   */
  maxStaleMs: 3_600_000,
} as const;

/** Bounded set of fetch outcomes (metric label values). */
export const JWKS_FETCH_OUTCOMES = [
  'ok',
  'timeout',
  'http_status',
  'redirect',
  'too_large',
  'invalid',
  'network',
] as const;
export type JwksFetchOutcome = (typeof JWKS_FETCH_OUTCOMES)[number];

/** One fetch of the key set or of the issuer's metadata, reported to {@link JwksOptions.onFetch}. */
export interface JwksFetchEvent {
  /** `discovery` for the issuer metadata, `jwks` for the key set. */
  target: 'discovery' | 'jwks';
  outcome: JwksFetchOutcome;
  /** Usable keys installed (a successful `jwks` fetch), otherwise 0. */
  keys: number;
  /** JWKs in the document that were skipped (wrong type, curve, use, private material, over the cap). */
  skipped: number;
  durationMs: number;
  /** The failure, for logs. Never sent to clients. */
  error?: unknown;
}

export interface JwksOptions {
  /** The issuer the keys belong to: used for discovery, where the metadata's `issuer` must equal it exactly. */
  issuer: string;
  /** JWKS URL, or null to discover it (OIDC Discovery 1.0 §4, then RFC 8414 §3). */
  jwksUri: string | null;
  /** JWS algorithms the keys may be used with; keys usable for none of them are ignored. */
  algorithms: readonly string[];
  timeoutMs?: number;
  maxResponseBytes?: number;
  maxKeys?: number;
  maxKidLength?: number;
  cooldownMs?: number;
  maxAgeMs?: number;
  maxStaleMs?: number;
  /** Milliseconds since the epoch (injectable for tests). Timeouts use real time regardless. */
  now?: () => number;
  /** Called after every fetch attempt (metrics, logs). Must not throw. */
  onFetch?: (event: JwksFetchEvent) => void;
}

/** A verification key from the issuer's set. */
export interface JwksKey {
  readonly key: CryptoKey;
  readonly alg: string;
  readonly kid: string | null;
  /**
   * Identifies this key across refreshes: `kid`, `alg` and the RFC 7638 thumbprint of the key material.
   * A refreshed set that still has the same `kid` with the same material and algorithm gives the same ref.
   */
  readonly ref: string;
}

/** Snapshot of the key set for metrics. */
export interface JwksStatus {
  /** Milliseconds since the last successful fetch, or null before the first. */
  ageMs: number | null;
  /** Keys in the current set. */
  keys: number;
  /** Whether the current set may be used now (fetched, and not older than `maxStaleMs`). */
  usable: boolean;
}

/**
 * The issuer's signing keys over time: fetched on demand, refreshed, rotated and bounded. A `kid` is
 * only ever a key in a `Map`; it is never put into a URL, a path or a query.
 */
export interface JwksStore {
  /**
   * The key for a JWS header's `alg` and `kid`. Throws a RampartError: `AUTH_ERR_UNKNOWN_KEY` (401,
   * reason `unknown_key` or `invalid_kid`) or `AUTH_ERR_KEYS_UNAVAILABLE` (503, reason `jwks_unavailable`).
   */
  getKey(alg: string, kid: unknown): Promise<JwksKey>;
  /**
   * True when the key with this {@link JwksKey.ref} is in the current set and the set is usable now (cheap: for
   * the verified-token cache). Starts a background refresh when the set is due one.
   */
  hasKey(ref: string): boolean;
  status(): JwksStatus;
  /**
   * Fetches now unless a fetch is in flight (then waits for it) or the cooldown has not passed since
   * the last attempt. Resolves true when a usable key set is installed afterwards. Never rejects.
   */
  refresh(): Promise<boolean>;
}

/** Which algorithms a public JWK can serve (RFC 7518 §3, RFC 8037 §3.1), before its own `alg` narrows it. */
function algorithmsFor(jwk: Record<string, unknown>): readonly string[] {
  switch (jwk['kty']) {
    case 'EC':
      return jwk['crv'] === 'P-256' ? ['ES256'] : [];
    case 'OKP':
      return jwk['crv'] === 'Ed25519' ? ['EdDSA'] : [];
    case 'RSA':
      return ['RS256', 'PS256'];
    default:
      return [];
  }
}

/** The public members of each key type (RFC 7518 §6): the only ones handed to importJWK. */
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['kty', 'crv', 'x', 'y'],
  OKP: ['kty', 'crv', 'x'],
  RSA: ['kty', 'n', 'e'],
};

/** Members that only a private or symmetric key has: a set publishing them is broken; the key is skipped. */
const SECRET_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** RFC 7518 §3.3: RSA keys of 2048 bits or more (jose enforces it at verification too). */
const MIN_RSA_MODULUS_BYTES = 256;

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]']);

/**
 * Key and metadata URLs: HTTPS, or plain HTTP to loopback only (the manifest applies the same rule);
 * no credentials in the URL.
 */
export function isAllowedKeyUrl(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  if (url.username !== '' || url.password !== '') return false;
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && (LOOPBACK_HOSTS.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname));
}

/** The well-known metadata URLs of an issuer, in the order they are tried. */
export function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, '');
  return [
    // OIDC Discovery 1.0 §4: remove a terminating `/`, then append the well-known suffix.
    `${url.origin}${path}/.well-known/openid-configuration`,
    // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
  ];
}

class FetchFailure extends Error {
  readonly outcome: JwksFetchOutcome;
  constructor(outcome: JwksFetchOutcome, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'FetchFailure';
    this.outcome = outcome;
  }
}

/** GETs a JSON document: no redirects, a timeout, and a cap on the decoded body size. */
async function fetchJson(url: string, timeoutMs: number, maxBytes: number): Promise<unknown> {
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, {
      redirect: 'manual',
      signal,
      headers: { accept: 'application/jwk-set+json, application/json' },
    });
  } catch (err) {
    throw signal.aborted
      ? new FetchFailure('timeout', 'timed out', err)
      : new FetchFailure('network', 'fetch failed', err);
  }
  try {
    // A redirect could send us anywhere (SSRF, an attacker's keys): never followed.
    if (res.status >= 300 && res.status < 400) throw new FetchFailure('redirect', `redirect ${res.status}`);
    if (res.status !== 200) throw new FetchFailure('http_status', `status ${res.status}`);
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > maxBytes) throw new FetchFailure('too_large', 'declared body too large');
    const text = await readCapped(res, maxBytes);
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new FetchFailure('invalid', 'not JSON', err);
    }
  } catch (err) {
    if (err instanceof FetchFailure) throw err;
    throw signal.aborted
      ? new FetchFailure('timeout', 'timed out', err)
      : new FetchFailure('network', 'read failed', err);
  } finally {
    // Release the connection whatever happened to the body.
    if (res.body && !res.bodyUsed) await res.body.cancel().catch(() => {});
  }
}

async function readCapped(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new FetchFailure('too_large', 'body too large');
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch (err) {
    throw new FetchFailure('invalid', 'not UTF-8', err);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function base64urlBytes(value: unknown): number {
  return typeof value === 'string' ? Buffer.from(value, 'base64url').length : 0;
}

interface ImportedSet {
  keys: JwksKey[];
  skipped: number;
}

/**
 * Turns a JWK Set (RFC 7517 §5) into verification keys: only signature keys (`use` sig or absent,
 * `key_ops` with verify if present), of a type and curve one of `algorithms` needs, public members only.
 */
async function importKeySet(
  document: unknown,
  algorithms: ReadonlySet<string>,
  maxKeys: number,
  maxKidLength: number,
): Promise<ImportedSet> {
  if (!isPlainObject(document) || !Array.isArray(document['keys'])) {
    throw new FetchFailure('invalid', 'not a JWK Set');
  }
  const keys: JwksKey[] = [];
  const seen = new Set<string>();
  let skipped = 0;
  for (const jwk of document['keys'] as unknown[]) {
    const imported = await importOne(jwk, algorithms, maxKidLength);
    // Bounded: past the cap, or a duplicate (kid, alg), the key is counted and dropped; the first wins.
    const fresh = imported.filter((k) => !seen.has(`${k.kid ?? ''}\u0000${k.alg}`));
    if (fresh.length === 0 || keys.length + fresh.length > maxKeys) {
      skipped++;
      continue;
    }
    for (const k of fresh) {
      seen.add(`${k.kid ?? ''}\u0000${k.alg}`);
      keys.push(k);
    }
  }
  return { keys, skipped };
}

async function importOne(jwk: unknown, algorithms: ReadonlySet<string>, maxKidLength: number): Promise<JwksKey[]> {
  if (!isPlainObject(jwk)) return [];
  const use = jwk['use'];
  if (use !== undefined && use !== 'sig') return [];
  const ops = jwk['key_ops'];
  if (ops !== undefined && !(Array.isArray(ops) && ops.includes('verify'))) return [];
  if (SECRET_MEMBERS.some((m) => m in jwk)) return [];
  const kid = jwk['kid'];
  if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > maxKidLength)) return [];
  const members = PUBLIC_MEMBERS[String(jwk['kty'])];
  if (!members) return [];
  if (jwk['kty'] === 'RSA' && base64urlBytes(jwk['n']) < MIN_RSA_MODULUS_BYTES) return [];
  let candidates = algorithmsFor(jwk).filter((alg) => algorithms.has(alg));
  if (jwk['alg'] !== undefined) candidates = candidates.filter((alg) => alg === jwk['alg']);
  if (candidates.length === 0) return [];

  const publicJwk: JWK = {};
  for (const m of members) {
    if (typeof jwk[m] !== 'string') return [];
    (publicJwk as Record<string, string>)[m] = jwk[m] as string;
  }
  try {
    const thumbprint = await calculateJwkThumbprint(publicJwk, 'sha256');
    const out: JwksKey[] = [];
    for (const alg of candidates) {
      const key = (await importJWK(publicJwk, alg)) as CryptoKey;
      const id = typeof kid === 'string' ? kid : null;
      out.push(Object.freeze({ key, alg, kid: id, ref: `${id ?? ''}\u0000${alg}\u0000${thumbprint}` }));
    }
    return out;
  } catch {
    // Not a valid key (e.g. a point off the curve): skipped like any other unusable entry.
    return [];
  }
}

function unknownKey(reason: 'unknown_key' | 'invalid_kid'): RampartError {
  return new RampartError('AUTH_ERR_UNKNOWN_KEY', 'invalid token', { status: 401, detail: { reason } });
}

function keysUnavailable(cause: unknown): RampartError {
  return new RampartError('AUTH_ERR_KEYS_UNAVAILABLE', 'token keys unavailable', {
    status: 503,
    cause,
    detail: { reason: 'jwks_unavailable' },
  });
}

/**
 * Creates the key-set lifecycle for one issuer. Nothing is fetched until the first key is needed, and no
 * timer is started: refreshes happen on use, so an idle process holds no handles open.
 *
 * - Unknown `kid`: one re-fetch per cooldown; concurrent callers await the same request (single flight).
 * - Age over `maxAgeMs`: refreshed in the background, current keys keep serving meanwhile.
 * - Issuer down: the last good set serves until `maxStaleMs` after its fetch, then `getKey` fails closed.
 * - A successful fetch replaces the set: keys removed at the issuer stop verifying at once.
 */
export function createJwks(options: JwksOptions): JwksStore {
  const timeoutMs = options.timeoutMs ?? JWKS_DEFAULTS.timeoutMs;
  const maxBytes = options.maxResponseBytes ?? JWKS_DEFAULTS.maxResponseBytes;
  const maxKeys = options.maxKeys ?? JWKS_DEFAULTS.maxKeys;
  const maxKidLength = options.maxKidLength ?? JWKS_DEFAULTS.maxKidLength;
  const cooldownMs = options.cooldownMs ?? JWKS_DEFAULTS.cooldownMs;
  const maxAgeMs = options.maxAgeMs ?? JWKS_DEFAULTS.maxAgeMs;
  const maxStaleMs = options.maxStaleMs ?? JWKS_DEFAULTS.maxStaleMs;
  const now = options.now ?? Date.now;
  const algorithms = new Set(options.algorithms);
  const issuer = options.issuer;
  for (const [name, value] of Object.entries({ timeoutMs, maxBytes, maxKeys, maxKidLength, cooldownMs, maxAgeMs })) {
    if (!Number.isFinite(value) || value <= 0) throw new TypeError(`createJwks: ${name} must be a positive number`);
  }
  if (!(maxStaleMs >= maxAgeMs)) throw new TypeError('createJwks: maxStaleMs must be at least maxAgeMs');
  if (algorithms.size === 0) throw new TypeError('createJwks: algorithms must not be empty');
  new URL(issuer); // throws on a malformed issuer: a configuration error, at start
  if (options.jwksUri !== null && !isAllowedKeyUrl(options.jwksUri)) {
    throw new RampartError('AUTH_ERR_CONFIG', 'JWKS URL must be https (or http to loopback)', {
      detail: { jwksUri: options.jwksUri },
    });
  }

  let jwksUri: string | null = options.jwksUri;
  /** kid → alg → key. Keys without a `kid` live under the empty-string key (a real kid is never empty). */
  let byKid = new Map<string, Map<string, JwksKey>>();
  let refs = new Set<string>();
  let count = 0;
  let fetchedAt: number | null = null;
  let attemptedAt: number | null = null;
  let inflight: Promise<void> | null = null;
  let lastError: unknown = null;

  const emit = (event: JwksFetchEvent) => {
    try {
      options.onFetch?.(event);
    } catch {
      // An observer must never break verification.
    }
  };

  // A wall clock can step backwards (NTP, VM resume): an attempt or fetch "in the future" must not block
  // fetching for the length of the step, so negative elapsed times count as elapsed.
  const usable = (t: number) => fetchedAt !== null && t - fetchedAt <= maxStaleMs;
  const due = (t: number) => fetchedAt !== null && (t - fetchedAt > maxAgeMs || t < fetchedAt);
  const mayFetch = (t: number) =>
    inflight === null && (attemptedAt === null || t - attemptedAt >= cooldownMs || t < attemptedAt);

  async function discover(): Promise<string> {
    let failure: FetchFailure | null = null;
    for (const url of metadataUrls(issuer)) {
      const started = performance.now();
      try {
        const meta = await fetchJson(url, timeoutMs, maxBytes);
        // OIDC Discovery §4.3 / RFC 8414 §3.3: the metadata must be about exactly this issuer.
        if (!isPlainObject(meta) || meta['issuer'] !== issuer) throw new FetchFailure('invalid', 'issuer mismatch');
        const uri = meta['jwks_uri'];
        if (typeof uri !== 'string' || !isAllowedKeyUrl(uri)) throw new FetchFailure('invalid', 'bad jwks_uri');
        emit({ target: 'discovery', outcome: 'ok', keys: 0, skipped: 0, durationMs: performance.now() - started });
        return uri;
      } catch (err) {
        failure = err instanceof FetchFailure ? err : new FetchFailure('network', 'discovery failed', err);
        emit({
          target: 'discovery',
          outcome: failure.outcome,
          keys: 0,
          skipped: 0,
          durationMs: performance.now() - started,
          error: failure,
        });
      }
    }
    throw failure ?? new FetchFailure('invalid', 'no metadata');
  }

  async function cycle(): Promise<void> {
    attemptedAt = now();
    let uri: string;
    try {
      // Discovered once, then cached; a failed discovery is retried after the cooldown like a fetch.
      uri = jwksUri ??= await discover();
    } catch (err) {
      lastError = err;
      return;
    }
    const started = performance.now();
    try {
      const set = await importKeySet(await fetchJson(uri, timeoutMs, maxBytes), algorithms, maxKeys, maxKidLength);
      const next = new Map<string, Map<string, JwksKey>>();
      for (const k of set.keys) {
        const slot = next.get(k.kid ?? '') ?? new Map<string, JwksKey>();
        slot.set(k.alg, k);
        next.set(k.kid ?? '', slot);
      }
      // An authoritative answer replaces everything, even with fewer (or no) keys: removed keys are revoked.
      byKid = next;
      refs = new Set(set.keys.map((k) => k.ref));
      count = set.keys.length;
      fetchedAt = now();
      lastError = null;
      emit({
        target: 'jwks',
        outcome: 'ok',
        keys: set.keys.length,
        skipped: set.skipped,
        durationMs: performance.now() - started,
      });
    } catch (err) {
      const failure = err instanceof FetchFailure ? err : new FetchFailure('network', 'fetch failed', err);
      lastError = failure;
      emit({
        target: 'jwks',
        outcome: failure.outcome,
        keys: 0,
        skipped: 0,
        durationMs: performance.now() - started,
        error: failure,
      });
    }
  }

  /** Starts a fetch, or joins the one in flight. */
  function fetchNow(): Promise<void> {
    inflight ??= cycle().finally(() => {
      inflight = null;
    });
    return inflight;
  }

  /** Waits for a usable key set, fetching if allowed; starts a background refresh when the set is old. */
  async function ensureUsable(): Promise<void> {
    const t = now();
    if (usable(t)) {
      if (due(t) && mayFetch(t)) void fetchNow();
      return;
    }
    if (inflight) await inflight;
    else if (mayFetch(t)) await fetchNow();
    if (!usable(now())) throw keysUnavailable(lastError);
  }

  function lookup(alg: string, kid: string | undefined): JwksKey | 'unknown' | 'mismatch' {
    if (kid !== undefined) {
      const slot = byKid.get(kid);
      if (!slot) return 'unknown';
      return slot.get(alg) ?? 'mismatch';
    }
    // No `kid` in the token: only unambiguous when exactly one key serves this algorithm (trying every
    // key would turn one bad token into many signature checks).
    let found: JwksKey | null = null;
    for (const slot of byKid.values()) {
      const k = slot.get(alg);
      if (!k) continue;
      if (found) return 'mismatch';
      found = k;
    }
    return found ?? 'unknown';
  }

  return {
    async getKey(alg, kid) {
      if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > maxKidLength)) {
        throw unknownKey('invalid_kid');
      }
      if (!algorithms.has(alg)) throw unknownKey('unknown_key');
      await ensureUsable();
      let found = lookup(alg, kid);
      if (found === 'unknown') {
        // Possibly a rotation at the issuer: one re-fetch per cooldown, shared by every caller.
        if (inflight) await inflight;
        else if (mayFetch(now())) await fetchNow();
        if (!usable(now())) throw keysUnavailable(lastError);
        found = lookup(alg, kid);
      }
      if (typeof found === 'string') throw unknownKey('unknown_key');
      return found;
    },
    hasKey(ref) {
      const t = now();
      if (!usable(t) || !refs.has(ref)) return false;
      if (due(t) && mayFetch(t)) void fetchNow();
      return true;
    },
    status() {
      const t = now();
      return { ageMs: fetchedAt === null ? null : t - fetchedAt, keys: count, usable: usable(t) };
    },
    async refresh() {
      if (inflight) await inflight;
      else if (mayFetch(now())) await fetchNow();
      return usable(now());
    },
  };
}
