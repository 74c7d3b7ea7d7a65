import { isRampartError } from '../../core/errors.ts';
import { SECRETS_DEFAULTS } from './defaults.ts';
import { SEC_ERRORS } from './errors.ts';

/**
 * The SDK-side cache behind `secrets.get(name)`: a short-lived copy of each secret's current value, so
 * a service does not ask the control plane on every use, that follows rotation: an entry lives
 * `ttlMs`, then the next `get` fetches again, and a new version (a promote, or a roll back to an older
 * one: the control plane's answer wins either way) replaces the old value, which is zeroed, and is
 * announced to `onRotate` (reconnect a database pool with the new password, say).
 *
 * - One fetch per name at a time (concurrent misses share it).
 * - A failed refresh may serve the old value up to `maxStaleMs` past its lifetime (a control plane
 *   restarting), except after an authoritative answer: SEC_ERR_FORBIDDEN (grant removed) or
 *   SEC_ERR_NOT_FOUND drop the entry at once and are rethrown.
 * - `get` returns a fresh copy the caller owns (and may zero); the cache zeroes its own copies when they
 *   are replaced, invalidated or cleared. Values are Buffers throughout: strings cannot be zeroed.
 *
 * Per-instance state only; the cache never logs and never puts values in errors. Zeroing is
 * `Buffer.fill(0)`, not libsodium's memzero: this runs inside services, which Node's permission model
 * does not allow to load native addons (only the control plane may); a JS fill is never elided.
 */
export interface SecretCacheOptions {
  /** Reads the current version of a secret (in the SDK: the mTLS call to the control plane). The cache takes ownership of the returned Buffer. */
  fetch: (name: string) => Promise<{ version: number; value: Buffer }>;
  /** Default {@link SECRETS_DEFAULTS.cacheTtlMs}. */
  ttlMs?: number;
  /** Default {@link SECRETS_DEFAULTS.cacheMaxStaleMs}; 0 never serves stale values. */
  maxStaleMs?: number;
  now?: () => number;
  /** Called when a refresh brings a different version than the cached one. */
  onRotate?: (name: string, change: { from: number; to: number }) => void;
  /** Which errors are answers rather than outages. Default: SEC_ERR_FORBIDDEN, SEC_ERR_NOT_FOUND, or status 403/404. */
  isAuthoritative?: (err: unknown) => boolean;
}

/** A cached read: the caller owns `value`. */
export interface CachedSecret {
  name: string;
  version: number;
  value: Buffer;
  /** True when served past its lifetime because the refresh failed. */
  stale: boolean;
}

export interface SecretCache {
  get(name: string): Promise<CachedSecret>;
  /** The cached version of `name`, or null. */
  version(name: string): number | null;
  /** Drops (and zeroes) one entry; an in-flight fetch for it will not be cached. */
  invalidate(name: string): void;
  /** Drops and zeroes every entry. */
  clear(): void;
}

interface Entry {
  version: number;
  value: Buffer;
  fetchedAt: number;
}

function defaultAuthoritative(err: unknown): boolean {
  if (isRampartError(err, SEC_ERRORS.forbidden) || isRampartError(err, SEC_ERRORS.notFound)) return true;
  const status = (err as { status?: unknown } | null)?.status;
  return status === 403 || status === 404;
}

export function createSecretCache(options: SecretCacheOptions): SecretCache {
  const ttlMs = options.ttlMs ?? SECRETS_DEFAULTS.cacheTtlMs;
  const maxStaleMs = options.maxStaleMs ?? SECRETS_DEFAULTS.cacheMaxStaleMs;
  if (typeof options.fetch !== 'function') throw new TypeError('createSecretCache: fetch is required');
  if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new RangeError('createSecretCache: ttlMs must be positive');
  if (!(Number.isFinite(maxStaleMs) && maxStaleMs >= 0))
    throw new RangeError('createSecretCache: maxStaleMs must be >= 0');
  const now = options.now ?? Date.now;
  const authoritative = options.isAuthoritative ?? defaultAuthoritative;
  const entries = new Map<string, Entry>();
  const inflight = new Map<string, Promise<Entry>>();
  /** Bumped by invalidate/clear: a fetch that started before does not fill the cache. */
  const generations = new Map<string, number>();

  const drop = (name: string) => {
    const entry = entries.get(name);
    if (entry) entry.value.fill(0);
    entries.delete(name);
  };
  const copy = (name: string, entry: Entry, stale: boolean): CachedSecret => ({
    name,
    version: entry.version,
    value: Buffer.from(entry.value),
    stale,
  });

  const refresh = (name: string): Promise<Entry> => {
    const running = inflight.get(name);
    if (running) return running;
    const generation = generations.get(name) ?? 0;
    const run = (async (): Promise<Entry> => {
      const fetched = await options.fetch(name);
      if (!Number.isSafeInteger(fetched?.version) || !Buffer.isBuffer(fetched?.value)) {
        throw new TypeError('secret fetch returned no version or value');
      }
      const entry: Entry = { version: fetched.version, value: fetched.value, fetchedAt: now() };
      if ((generations.get(name) ?? 0) !== generation) {
        // Invalidated meanwhile: answer the waiters (each copies in a microtask), cache nothing, and zero
        // this copy once they all have theirs (a macrotask runs after every pending microtask).
        setImmediate(() => entry.value.fill(0));
        return entry;
      }
      const old = entries.get(name);
      entries.set(name, entry);
      if (old) {
        old.value.fill(0);
        if (old.version !== entry.version) options.onRotate?.(name, { from: old.version, to: entry.version });
      }
      return entry;
    })();
    inflight.set(name, run);
    const done = () => {
      if (inflight.get(name) === run) inflight.delete(name);
    };
    run.then(done, done);
    return run;
  };

  return {
    async get(name) {
      const entry = entries.get(name);
      if (entry && now() - entry.fetchedAt < ttlMs) return copy(name, entry, false);
      try {
        return copy(name, await refresh(name), false);
      } catch (err) {
        if (authoritative(err)) {
          drop(name);
          throw err;
        }
        const old = entries.get(name);
        if (old && now() - old.fetchedAt < ttlMs + maxStaleMs) return copy(name, old, true);
        throw err;
      }
    },
    version(name) {
      return entries.get(name)?.version ?? null;
    },
    invalidate(name) {
      generations.set(name, (generations.get(name) ?? 0) + 1);
      drop(name);
    },
    clear() {
      for (const name of [...entries.keys(), ...inflight.keys()]) {
        generations.set(name, (generations.get(name) ?? 0) + 1);
        drop(name);
      }
    },
  };
}
