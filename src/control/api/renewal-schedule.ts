import { SVID_RENEWAL_DEFAULTS } from './defaults.ts';

/** The timings of a renewal schedule: {@link SVID_RENEWAL_DEFAULTS} and overrides of it. */
export type RenewalTimings = { readonly [K in keyof typeof SVID_RENEWAL_DEFAULTS]: number };

/** The dates of the certificate being renewed (ms since the epoch). */
export interface Validity {
  notBefore: number;
  notAfter: number;
}

/** What a failed renewal leaves: how many in a row, how long the certificate has left, and whether that is too little. */
export interface RenewalFailure {
  failures: number;
  /** Negative once the certificate has expired. */
  remainingMs: number;
  /** Less than `warnRemainingFraction` of the lifetime is left: time to alert someone. */
  overdue: boolean;
}

/**
 * When to renew `validity`, in ms from `now`: at `renewAtFraction` of its lifetime minus up to
 * `jitterFraction` of it, so processes started together do not renew together. Negative when that
 * moment has passed. Calls `random` once.
 */
export function renewalDelayMs(validity: Validity, now: number, timings: RenewalTimings, random: () => number): number {
  const lifetime = validity.notAfter - validity.notBefore;
  const at = validity.notBefore + lifetime * timings.renewAtFraction - random() * lifetime * timings.jitterFraction;
  return at - now;
}

/**
 * The wait after the `failures`-th failure in a row: `retryInitialMs` doubled per failure up to
 * `retryMaxMs`, then halved at random at most (clients that failed together do not retry together).
 * Calls `random` once.
 */
export function retryDelayMs(failures: number, timings: RenewalTimings, random: () => number): number {
  // The exponent is capped so that a long outage cannot overflow to Infinity before the cap applies.
  return Math.min(timings.retryMaxMs, timings.retryInitialMs * 2 ** Math.min(failures, 20)) * (0.5 + random() / 2);
}

/** Whether less than `warnRemainingFraction` of the lifetime of `validity` is left at `now`. */
export function isRenewalOverdue(validity: Validity, now: number, timings: RenewalTimings): boolean {
  return validity.notAfter - now < (validity.notAfter - validity.notBefore) * timings.warnRemainingFraction;
}

export interface RenewalScheduleOptions {
  /** Runs when a renewal is due (armed by `renewLater` or `failed`); its rejection is the caller's to report. */
  renew: () => Promise<unknown>;
  /** Overrides of {@link SVID_RENEWAL_DEFAULTS}. */
  timings?: Partial<RenewalTimings>;
  clock?: () => number;
  random?: () => number;
}

/** The timer and failure count behind a renewed certificate (see {@link createRenewalSchedule}). */
export interface RenewalSchedule {
  readonly timings: RenewalTimings;
  readonly clock: () => number;
  /** True after `close()`: nothing is armed any more. */
  readonly closed: boolean;
  /** A new certificate is installed: failures count from zero again. */
  succeeded(): void;
  /** Arms the renewal of `validity` at ½ of its lifetime with jitter (replacing any armed one). */
  renewLater(validity: Validity): void;
  /** Counts a failed renewal of `validity`, arms the retry after the backoff, and says how late it is. */
  failed(validity: Validity): RenewalFailure;
  /** Counts a failed first attempt (nothing to renew yet) and returns how long to wait before the next. */
  failedFirst(): { failures: number; delayMs: number };
  /** Disarms the timer for good. */
  close(): void;
}

/**
 * The renewal schedule shared by the workloads' SVIDs (svid-source.ts) and the gateway's edge
 * certificate (gateway/edge-certificate-source.ts): renew at ½ of the lifetime with jitter; after a
 * failure retry with exponential backoff up to a cap, keeping the certificate in service (issue 4
 * "Control plane down ≠ system down"); report the renewal overdue once less than a quarter of the
 * lifetime is left. The timer never keeps the process alive.
 */
export function createRenewalSchedule(options: RenewalScheduleOptions): RenewalSchedule {
  const timings: RenewalTimings = { ...SVID_RENEWAL_DEFAULTS, ...options.timings };
  const clock = options.clock ?? Date.now;
  const random = options.random ?? Math.random;
  let timer: NodeJS.Timeout | null = null;
  let failures = 0;
  let closed = false;

  const arm = (delayMs: number) => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void options.renew().catch(() => {}), Math.max(0, delayMs));
    timer.unref();
  };

  return {
    timings,
    clock,
    get closed() {
      return closed;
    },
    succeeded() {
      failures = 0;
    },
    renewLater(validity) {
      arm(renewalDelayMs(validity, clock(), timings, random));
    },
    failed(validity) {
      failures += 1;
      const now = clock();
      const failure = {
        failures,
        remainingMs: validity.notAfter - now,
        overdue: isRenewalOverdue(validity, now, timings),
      };
      arm(retryDelayMs(failures, timings, random));
      return failure;
    },
    failedFirst() {
      failures += 1;
      return { failures, delayMs: retryDelayMs(failures, timings, random) };
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}
