import { setTimeout as delay } from 'node:timers/promises';
import { RampartError } from '../core/errors.ts';
import type { RestartPolicy } from './restart-policy.ts';

/** Why minting failed, as logs show it: the error's stable code, or `unknown`. */
export function mintFailureReason(err: unknown): string {
  if (err instanceof RampartError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'unknown';
}

export interface JoinTokenWaitOptions<T> {
  /** One attempt: resolves with a fresh single-use join token, rejects when the control plane cannot or will not mint. */
  mint: () => Promise<T>;
  /** Aborted when the launcher stops: the wait ends with `LAUNCH_ERR_STOPPED` and nothing is started. */
  signal: AbortSignal;
  /** The delays between attempts: the restart policy's backoff (the first delay, its doubling ceiling, jitter). */
  backoff: Pick<RestartPolicy, 'initialDelayMs' | 'maxDelayMs' | 'jitter'>;
  /** Give up (`LAUNCH_ERR_JOIN_TOKEN`) once this time has passed; absent: wait until a token comes or the signal aborts. */
  deadline?: number;
  /**
   * Called when the first attempt fails and again whenever the reason changes (the control plane
   * unreachable, then refusing): once per state, never once per attempt.
   */
  onWaiting: (reason: string, attempts: number) => void;
  /** Called once a token came after at least one failed attempt. */
  onMinted: (attempts: number, waitedMs: number) => void;
  random?: () => number;
  now?: () => number;
}

/**
 * Mints a join token, retrying with exponential backoff and jitter while the control plane is away or
 * refuses. A process started without a fresh token would fail to get its SVID (a join token is single
 * use, and the previous one was spent by the process that just exited) and crash: waiting here is not
 * a crash and spends none of the restart policy's budget.
 */
export async function waitForJoinToken<T>(options: JoinTokenWaitOptions<T>): Promise<T> {
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const { initialDelayMs, maxDelayMs, jitter } = options.backoff;
  const began = now();
  let attempts = 0;
  let reason: string | null = null;
  for (;;) {
    if (options.signal.aborted) throw stopped();
    attempts += 1;
    let outcome: { token: T } | { error: unknown };
    try {
      outcome = { token: await untilAborted(options.mint(), options.signal) };
    } catch (error) {
      outcome = { error };
    }
    if (options.signal.aborted) throw stopped();
    if ('token' in outcome) {
      if (reason !== null) options.onMinted(attempts, now() - began);
      return outcome.token;
    }
    const next = mintFailureReason(outcome.error);
    if (next !== reason) {
      reason = next;
      options.onWaiting(reason, attempts);
    }
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempts - 1));
    const wait = Math.round(base * (1 - jitter * random()));
    if (options.deadline !== undefined && now() + wait > options.deadline) {
      throw new RampartError('LAUNCH_ERR_JOIN_TOKEN', `no join token from the control plane (${reason})`, {
        cause: outcome.error,
        detail: { attempts },
      });
    }
    try {
      await delay(wait, undefined, { signal: options.signal });
    } catch {
      throw stopped();
    }
  }
}

/** `promise`, or a rejection as soon as `signal` aborts (an attempt in flight is then abandoned, not awaited). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(stopped());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function stopped(): RampartError {
  return new RampartError('LAUNCH_ERR_STOPPED', 'stopped while waiting for a join token');
}
