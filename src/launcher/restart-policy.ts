/**
 * When to restart a crashed process, and when to stop trying. Exponential backoff with jitter (so
 * processes that crashed together do not restart in lockstep), reset once a process has stayed up;
 * a process that crashes `maxCrashes` times within `windowMs` is broken, not unlucky: give up loudly.
 */
export interface RestartPolicy {
  /** First delay: long enough for a port to be released, short enough not to be noticed. */
  initialDelayMs: number;
  /** Ceiling of the doubling. */
  maxDelayMs: number;
  /** Each delay is reduced by up to this fraction, at random. */
  jitter: number;
  /** A process up this long has recovered: the next crash starts from `initialDelayMs` again. */
  stableAfterMs: number;
  /** Crashes within `windowMs` that make the launcher give up. */
  maxCrashes: number;
  windowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 250,
  maxDelayMs: 10_000,
  jitter: 0.2,
  stableAfterMs: 30_000,
  maxCrashes: 5,
  windowMs: 60_000,
};

/** What the policy remembers of one process. Immutable: each decision returns the next history. */
export interface CrashHistory {
  /** Crash times within the window, oldest first. */
  readonly crashes: readonly number[];
  /** Crashes since the process last stayed up `stableAfterMs`. */
  readonly consecutive: number;
}

export const NO_CRASHES: CrashHistory = { crashes: [], consecutive: 0 };

export type RestartDecision =
  | { action: 'restart'; delayMs: number; history: CrashHistory }
  | { action: 'give-up'; history: CrashHistory };

/** Decides what to do about a crash at `now` of a process started at `startedAt`. */
export function onCrash(
  history: CrashHistory,
  startedAt: number,
  now: number,
  policy: RestartPolicy,
  random: () => number = Math.random,
): RestartDecision {
  const consecutive = now - startedAt >= policy.stableAfterMs ? 1 : history.consecutive + 1;
  const crashes = [...history.crashes.filter((at) => now - at < policy.windowMs), now];
  const next: CrashHistory = { crashes, consecutive };
  if (crashes.length >= policy.maxCrashes) return { action: 'give-up', history: next };
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (consecutive - 1));
  const delayMs = Math.round(base * (1 - policy.jitter * random()));
  return { action: 'restart', delayMs, history: next };
}
