import { GATEWAY_LIMITS } from '../defaults.ts';

/**
 * Rate-limit store settings, in one place, each with the reason for its value. Gateway-wide limits
 * (the key capacity) stay in ../defaults.ts; this file holds what only the stores need.
 */
export const RATE_LIMIT_DEFAULTS = {
  /** Keys the shared table holds for the whole gateway (all routes, all workers): the 1,000,000. */
  capacity: GATEWAY_LIMITS.rateLimitMaxKeys,
  /**
   * Slots per bucket. A key lives only in its bucket, so a bucket is what fills up: 16 slots keep the
   * share of keys that find their bucket full at table capacity near 0.1% (Poisson tail, 2 slots per
   * key), and a lookup scans 128 bytes of fingerprints, two cache lines.
   */
  slotsPerBucket: 16,
  /** Slots per key of capacity: at load ½ a bucket of 16 overflows for ≈0.08% of keys; a slot is 16 bytes. */
  slotsPerKey: 2,
  /** Largest capacity accepted: 16,777,216 keys ≈ 512 MiB of shared memory; more is a configuration mistake. */
  maxCapacity: 16_777_216,
  /** Spins before sleeping on a busy bucket: a critical section is a few dozen loads and stores. */
  lockSpins: 128,
  /** How long one sleep on a busy bucket lasts before the waiter looks again (Atomics.wait timeout). */
  lockWaitSliceMs: 50,
  /**
   * A bucket held this long with no other thread getting it in between was left locked by a thread that
   * died inside its critical section (Worker#terminate stops JavaScript without running `finally`). The
   * waiter takes it over instead of freezing every worker that needs that bucket. A live holder keeps it
   * for well under a microsecond, so 1 s is a million times longer than any honest hold.
   */
  lockStaleMs: 1_000,
  /**
   * Per-thread cache of key digests, per generation (two generations): an HMAC costs ≈2 µs, a hit
   * ≈0.1 µs, and repeat callers are the common case. Not larger: under a flood of distinct keys, cached
   * key strings live long enough to be promoted, and the heap's high-water mark grows with the cache
   * (measured over 1,000,000 distinct keys: +40 MB RSS at 4,096, +170 MB at 16,384; bench/rate-limit.bench.ts).
   */
  digestCacheSize: 4_096,
  /** Only short inputs are cached (addresses, ids): at most ≈3 MB per thread, whatever callers send. */
  digestCacheKeyChars: 128,
  /** Secret for the keyed hash of table keys: 256 bits, HMAC-SHA-256's block-size-safe key length. */
  secretBytes: 32,
  /** Prefix of every Redis key, so a shared Redis can hold other data; tests pass their own. */
  redisKeyPrefix: 'rampart:rl:',
  /**
   * Redis connect and command timeouts. Loopback or same-zone Redis answers in well under a millisecond;
   * 250 ms means it is gone, and a request should fail over (deny or local) instead of waiting.
   */
  redisConnectTimeoutMs: 250,
  redisCommandTimeoutMs: 250,
  /** Reconnect backoff: 50 ms doubling up to 2 s, forever (a gateway outlives Redis restarts). */
  redisRetryBaseMs: 50,
  redisRetryMaxMs: 2_000,
} as const;
