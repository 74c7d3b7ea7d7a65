import { hash } from 'node:crypto';

/** Defaults of the verified-token cache, with the reason for each value. */
export const TOKEN_CACHE_DEFAULTS = {
  /**
   * Entries kept (least recently used evicted first). An entry is a digest and a small identity object,
   * about 1 KiB with its claims: 10,000 entries bound the cache near 10 MiB.
   */
  maxEntries: 10_000,
  /**
   * Longest time an entry lives, whatever the token's `exp`: bounds how long a verification result is
   * reused without looking at the token again (claims policy changes, clock corrections).
   */
  maxTtlMs: 300_000,
} as const;

export interface TokenCacheOptions<V> {
  maxEntries?: number;
  maxTtlMs?: number;
  /** Milliseconds since the epoch (injectable for tests). */
  now?: () => number;
  /**
   * Asked on every hit; false drops the entry and reports a miss. The access-token verifier uses it to
   * drop tokens whose signing key is no longer in the issuer's key set.
   */
  isValid?: (value: V) => boolean;
}

/** A bounded LRU of verified tokens, keyed by a SHA-256 digest of the token (never the token itself). */
export interface TokenCache<V> {
  /** The value cached for this token, or undefined (absent, expired or no longer valid). */
  get(token: string): V | undefined;
  /**
   * Caches `value` for `token` until `expiresAtMs` (the token's `exp`, in ms), or `maxTtlMs` from now if
   * sooner. An already expired entry is not stored.
   */
  set(token: string, value: V, expiresAtMs: number): void;
  delete(token: string): void;
  clear(): void;
  readonly size: number;
}

/**
 * The cache key for a token: its SHA-256 digest. The raw token never becomes a key, so a heap dump or a
 * debugging print of the cache holds no usable bearer credential.
 */
export function tokenCacheKey(token: string): string {
  return hash('sha256', token, 'base64');
}

interface Entry<V> {
  value: V;
  expiresAtMs: number;
  /** Position in recency order: the value of the insertion counter when the entry was last moved. */
  seq: number;
}

/**
 * Creates a verified-token cache. A hit costs one SHA-256 of the token and one Map lookup.
 *
 * Recency is kept with Map insertion order (the oldest entry is evicted first). Moving an entry to the
 * end on every hit (delete and re-insert) is what a strict LRU does, but it leaves a deleted slot per hit
 * that V8 reclaims by rehashing the whole table: with thousands of entries that made a hit 3× slower.
 * So a hit moves an entry only once it has fallen into the older half of the cache; a token in use
 * therefore survives at least `maxEntries / 2` further insertions, which is what LRU is for here.
 */
export function createTokenCache<V>(options: TokenCacheOptions<V> = {}): TokenCache<V> {
  const maxEntries = options.maxEntries ?? TOKEN_CACHE_DEFAULTS.maxEntries;
  const maxTtlMs = options.maxTtlMs ?? TOKEN_CACHE_DEFAULTS.maxTtlMs;
  const now = options.now ?? Date.now;
  const isValid = options.isValid;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError('createTokenCache: maxEntries must be ≥ 1');
  if (!(maxTtlMs > 0)) throw new TypeError('createTokenCache: maxTtlMs must be positive');

  const entries = new Map<string, Entry<V>>();
  const half = Math.floor(maxEntries / 2);
  let seq = 0;

  return {
    get(token) {
      const key = tokenCacheKey(token);
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      if (now() >= entry.expiresAtMs || (isValid !== undefined && !isValid(entry.value))) {
        entries.delete(key);
        return undefined;
      }
      if (seq - entry.seq >= half) {
        entries.delete(key);
        entry.seq = ++seq;
        entries.set(key, entry);
      }
      return entry.value;
    },
    set(token, value, expiresAtMs) {
      const t = now();
      const until = Math.min(expiresAtMs, t + maxTtlMs);
      const key = tokenCacheKey(token);
      // Whatever was cached for this token is superseded, even when the new entry is not kept.
      entries.delete(key);
      if (!(until > t)) return;
      entries.set(key, { value, expiresAtMs: until, seq: ++seq });
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
    },
    delete(token) {
      entries.delete(tokenCacheKey(token));
    },
    clear() {
      entries.clear();
    },
    get size() {
      return entries.size;
    },
  };
}
