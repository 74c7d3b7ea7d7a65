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
  /** The key's new TAT to store when allowed; the unchanged one when denied (denials spend no quota). */
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
  const next = tat + interval;
  // Admit when the new TAT is at most one period ahead of now (burst tolerance = period − interval).
  const allowAt = next - policy.periodMs;
  if (now < allowAt) {
    return {
      allowed: false,
      tat,
      remaining: 0,
      resetMs: Math.ceil(tat - now),
      retryAfterMs: Math.ceil(allowAt - now),
    };
  }
  return {
    allowed: true,
    tat: next,
    remaining: Math.floor((policy.periodMs - (next - now)) / interval + 1e-9),
    resetMs: Math.ceil(next - now),
    retryAfterMs: 0,
  };
}
