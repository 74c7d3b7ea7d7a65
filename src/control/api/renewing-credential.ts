import type { Counter, Gauge } from 'prom-client';
import { RampartError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { createRenewalSchedule, type RenewalTimings, type Validity } from './renewal-schedule.ts';

/** How logs and errors name the credential. */
export interface CredentialNames {
  /** 'SVID', 'edge certificate'. */
  name: string;
  /** How a message names it a second time: 'SVID', 'certificate'. */
  short: string;
  /** What start-up waits for: 'the first SVID', 'the edge certificate'. */
  first: string;
}

/** The credential's metrics, made by its owner (the names are the owner's). */
export interface CredentialMetrics {
  /** Set to the installed credential's `notAfter` (Unix seconds). */
  expiry: Gauge;
  /** Counted per renewal attempt, by `outcome` (ok, error). */
  renewals: Counter<'outcome'>;
  /** 1 while renewal keeps failing with less than `warnRemainingFraction` of the lifetime left. */
  overdue: Gauge;
}

export interface RenewingCredentialOptions<T extends Validity> {
  names: CredentialNames;
  /**
   * Obtains the first credential. Called again after a failure with `CONTROL_API_ERR_UNAVAILABLE`
   * until `firstSvidDeadlineMs`; any other failure is final.
   */
  obtainFirst: () => Promise<T>;
  /** Obtains the successor of `current` (checked before it is returned). */
  obtainNext: (current: T) => Promise<T>;
  /** The fields that identify a credential in logs (SPIFFE ID, names). */
  describe: (credential: T) => Record<string, unknown>;
  /** Runs whenever a credential is put in place, before the listeners. */
  onInstall?: (credential: T) => void;
  metrics: CredentialMetrics;
  logger: Logger;
  /** Overrides of SVID_RENEWAL_DEFAULTS. */
  timings?: Partial<RenewalTimings>;
  clock?: () => number;
  random?: () => number;
}

/** A credential kept valid by renewal (see {@link createRenewingCredential}). */
export interface RenewingCredential<T extends Validity> {
  /** The credential in place (after `start()` resolved); `CONTROL_API_ERR_UNAVAILABLE` before. */
  current(): T;
  /** The credential in place, or null before the first. */
  peek(): T | null;
  /** Puts `next` in place without counting it as a renewal (a newer trust bundle): `onInstall`, listeners. */
  replace(next: T): void;
  /** Called after each change with the new credential (hot-swap TLS contexts here). */
  onRenewed(listener: (credential: T) => void): void;
  /** Obtains the first credential (retrying while the control plane is unreachable), then schedules renewals. */
  start(): Promise<T>;
  /** Renews now; concurrent calls share one renewal. */
  renewNow(): Promise<T>;
  readonly clock: () => number;
  readonly timings: RenewalTimings;
  /** True after `close()`. */
  readonly closed: boolean;
  /** Stops renewing. */
  close(): void;
}

/**
 * The life of a credential the control plane issues and a process renews (a workload's SVID,
 * svid-source.ts; the gateway's edge certificate, gateway/edge-certificate-source.ts): the first one is
 * retried with backoff while the control plane is unreachable; each one is renewed on the shared
 * schedule (renewal-schedule.ts). A failed renewal keeps the credential in service (issue 4 "Control
 * plane down ≠ system down"), is logged at warn, and at error with the overdue gauge set once less
 * than a quarter of the lifetime is left.
 */
export function createRenewingCredential<T extends Validity>(
  options: RenewingCredentialOptions<T>,
): RenewingCredential<T> {
  const { names, logger, metrics } = options;
  const schedule = createRenewalSchedule({
    renew: () => renew(),
    timings: options.timings,
    clock: options.clock,
    random: options.random,
  });
  const { clock } = schedule;
  const listeners: ((credential: T) => void)[] = [];
  let credential: T | null = null;
  let renewing: Promise<T> | null = null;

  const notify = (next: T) => {
    for (const listener of listeners) {
      try {
        listener(next);
      } catch (err) {
        logger.error({ err }, `${names.name} listener failed`);
      }
    }
  };

  const install = (next: T) => {
    credential = next;
    options.onInstall?.(next);
    schedule.succeeded();
    metrics.expiry.set(next.notAfter / 1000);
    metrics.overdue.set(0);
    notify(next);
  };

  const renew = (): Promise<T> => {
    renewing ??= (async () => {
      const current = credential;
      if (!current) throw apiError(CONTROL_API_ERRORS.unavailable, { reason: `no ${names.name} yet` });
      try {
        const next = await options.obtainNext(current);
        metrics.renewals.inc({ outcome: 'ok' });
        install(next);
        logger.info(
          { ...options.describe(next), notAfter: new Date(next.notAfter).toISOString() },
          `${names.name} renewed`,
        );
        schedule.renewLater(next);
        return next;
      } catch (err) {
        const { failures, remainingMs: left, overdue } = schedule.failed(current);
        metrics.renewals.inc({ outcome: 'error' });
        const code = err instanceof RampartError ? err.code : 'unknown';
        if (overdue) {
          metrics.overdue.set(1);
          logger.error(
            { code, failures, expiresInMs: left },
            left > 0
              ? `${names.name} renewal keeps failing; the ${names.short} expires soon`
              : `${names.name} expired; renewal keeps failing`,
          );
        } else {
          logger.warn({ code, failures, expiresInMs: left }, `${names.name} renewal failed; retrying`);
        }
        throw err;
      } finally {
        renewing = null;
      }
    })();
    return renewing;
  };

  return {
    current() {
      if (!credential) throw apiError(CONTROL_API_ERRORS.unavailable, { reason: `no ${names.name} yet` });
      return credential;
    },
    peek() {
      return credential;
    },
    replace(next) {
      credential = next;
      options.onInstall?.(next);
      notify(next);
    },
    onRenewed(listener) {
      listeners.push(listener);
    },
    async start() {
      const deadline = clock() + schedule.timings.firstSvidDeadlineMs;
      for (;;) {
        try {
          install(await options.obtainFirst());
          break;
        } catch (err) {
          // A refusal (a spent token, a wrong identity, bad names) will not change by retrying: only an
          // unreachable control plane is worth retrying.
          const retry = err instanceof RampartError && err.code === CONTROL_API_ERRORS.unavailable;
          if (!retry || clock() >= deadline || schedule.closed) throw err;
          const { failures, delayMs } = schedule.failedFirst();
          logger.warn({ code: err.code, failures }, `control plane unreachable; retrying for ${names.first}`);
          await new Promise((resolve) => setTimeout(resolve, delayMs));
        }
      }
      const first = credential as T | null;
      if (!first) throw apiError(CONTROL_API_ERRORS.unavailable, { reason: `no ${names.name}` });
      logger.info(
        { ...options.describe(first), notAfter: new Date(first.notAfter).toISOString() },
        `${names.name} obtained`,
      );
      schedule.renewLater(first);
      return first;
    },
    renewNow: renew,
    clock,
    timings: schedule.timings,
    get closed() {
      return schedule.closed;
    },
    close() {
      schedule.close();
    },
  };
}
