import { RampartError } from '../../core/errors.ts';

/**
 * The Generic Cell Rate Algorithm (ATM Forum TM 4.0; the algorithm behind redis-cell and Stripe's
 * limiter). One number per key, the theoretical arrival time (TAT), so memory is constant per key and
 * there are no timers. A policy of `limit` requests per `periodMs` admits a burst of `limit` and then one
 * request every `periodMs / limit`.
 */
export interface GcraPolicy {
  limit: number;
  periodMs: number;
}

export interface GcraDecision {
  allowed: boolean;
  /**
   * The key's new TAT to store when allowed; the unchanged one when denied (denials spend no quota). In
   * the time base of the `now` given (stores pass times relative to {@link GCRA_EPOCH_MS}).
   */
  tat: number;
  /** Requests still admissible right now. */
  remaining: number;
  /** Milliseconds until the quota is fully restored. */
  resetMs: number;
  /** Milliseconds until the next request would be admitted (0 when allowed). */
  retryAfterMs: number;
}

export function gcra(policy: GcraPolicy, storedTat: number | undefined, now: number): GcraDecision {
  const interval = policy.periodMs / policy.limit;
  const tat = storedTat === undefined || storedTat < now ? now : storedTat;
  // Admit when the new TAT is at most one period ahead of now (burst tolerance = period − interval).
  const allowed = now >= tat + interval - policy.periodMs;
  return gcraDecision(policy, allowed, allowed ? tat + interval : tat, now);
}

/**
 * The decision fields for an outcome already taken (by {@link gcra}, or by the Redis script, which runs
 * the same comparison next to the data): `tat` is the TAT after the decision, so the one just stored
 * when allowed, the unchanged one when denied.
 */
export function gcraDecision(policy: GcraPolicy, allowed: boolean, tat: number, now: number): GcraDecision {
  const interval = policy.periodMs / policy.limit;
  if (!allowed) {
    return {
      allowed: false,
      tat,
      remaining: 0,
      resetMs: Math.ceil(tat - now),
      retryAfterMs: Math.ceil(tat + interval - policy.periodMs - now),
    };
  }
  return {
    allowed: true,
    tat,
    remaining: Math.max(0, Math.floor((policy.periodMs - (tat - now)) / interval + 1e-9)),
    resetMs: Math.ceil(tat - now),
    retryAfterMs: 0,
  };
}

/**
 * Stores keep times relative to this instant (2023-11-14T22:13:20Z). Doubles near today's epoch
 * milliseconds (1.7e12) are spaced 2.4e-4 ms apart, so adding a small interval would round away and a
 * fast policy would never fill (fail open); relative to this origin the spacing stays below 1e-5 ms for
 * decades. The Redis script uses the same origin, in seconds.
 */
export const GCRA_EPOCH_MS = 1_700_000_000_000;

/**
 * The shortest emission interval the stores compute exactly enough: 1 µs, i.e. a million requests per
 * second for one key, far beyond what a gateway serves. Faster policies are refused, not approximated.
 */
export const GCRA_MIN_INTERVAL_MS = 0.001;

/**
 * Refuses a policy that would corrupt stored state: without a positive finite rate, or with an
 * interval below {@link GCRA_MIN_INTERVAL_MS}, a TAT stops advancing or compares false with everything,
 * and the key is admitted forever (fail open). Config validation already bounds rates; this is the
 * stores' own guard, also run once per route when the stage is built.
 */
export function assertGcraPolicy(policy: GcraPolicy): void {
  const { limit, periodMs } = policy;
  if (
    !(limit >= 1) ||
    !(periodMs > 0) ||
    !Number.isFinite(limit) ||
    !Number.isFinite(periodMs) ||
    !(periodMs / limit >= GCRA_MIN_INTERVAL_MS)
  ) {
    throw new RampartError('GW_ERR_RATE_LIMIT_INPUT', 'rate limit input rejected', { detail: { limit, periodMs } });
  }
}

/** {@link assertGcraPolicy}, and a finite clock (a NaN `now` would store a NaN TAT: admitted forever). */
export function assertGcraInput(policy: GcraPolicy, now: number): void {
  if (!Number.isFinite(now)) {
    throw new RampartError('GW_ERR_RATE_LIMIT_INPUT', 'rate limit input rejected', { detail: { now } });
  }
  assertGcraPolicy(policy);
}
