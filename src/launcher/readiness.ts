import { get } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';

/** One GET of a URL on loopback: its status, or 0 when nothing answered in time. */
export function probe(url: string, timeoutMs = 1_000): Promise<number> {
  return new Promise((resolve) => {
    // agent: false — no keep-alive socket left behind to hold the launcher open.
    const req = get(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export interface WaitReadyOptions {
  intervalMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Polls `url` (a process's `/readyz`) until it answers 200. Resolves true when it did, false when
 * `timeoutMs` passed first; rejects with the signal's reason when aborted.
 */
export async function waitReady(url: string, options: WaitReadyOptions): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    options.signal?.throwIfAborted();
    if ((await probe(url, Math.min(1_000, options.timeoutMs))) === 200) return true;
    if (Date.now() + options.intervalMs > deadline) return false;
    await delay(options.intervalMs, undefined, options.signal ? { signal: options.signal } : {});
  }
}
