import type { Dispatcher } from 'undici';
import { RampartError } from '../core/errors.ts';

/**
 * Circuit breaker defaults, each with the reason for its value. The numbers are Hystrix's, which most
 * later breakers (resilience4j, Polly) keep in spirit; the consecutive-failure trigger is Envoy's.
 */
export const CIRCUIT_BREAKER_DEFAULTS = Object.freeze({
  /**
   * Open after 5 consecutive failures: Envoy's outlier detection `consecutive_gateway_failure` default.
   * Catches a service that is simply gone, even at low traffic where a ratio says nothing.
   */
  consecutiveFailures: 5,
  /** ...or when half the requests of the window failed (Hystrix `errorThresholdPercentage` 50). */
  failureRatio: 0.5,
  /** ...with at least 20 requests in the window: a ratio of 3 requests is noise (Hystrix `requestVolumeThreshold`). */
  minimumRequests: 20,
  /** Rolling window for the ratio (Hystrix `metrics.rollingStats.timeInMilliseconds` 10 s). */
  windowMs: 10_000,
  /**
   * Time open before one probe is let through (Hystrix `sleepWindowInMilliseconds` 5 s): long enough
   * for a restarting service to bind its port (the launcher's first restart waits 250 ms), short
   * enough that a recovered service is back in seconds.
   */
  cooldownMs: 5_000,
});

export type CircuitBreakerOptions = { -readonly [K in keyof typeof CIRCUIT_BREAKER_DEFAULTS]: number };

/** `closed`: requests flow. `open`: refused at once. `half-open`: one probe decides. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** Numeric values of the states for the metric gauge (0 is healthy, higher is worse). */
export const CIRCUIT_STATE_VALUES: Readonly<Record<CircuitState, number>> = Object.freeze({
  closed: 0,
  'half-open': 1,
  open: 2,
});

/**
 * What {@link CircuitBreaker.acquire} grants: `refused` (open, or a probe is already out), `normal`,
 * or `probe` (the one request of the half-open state). Hand it back to {@link CircuitBreaker.settle}.
 */
export type CircuitPermit = 'refused' | 'normal' | 'probe';

/** How an exchange ended, for the breaker: `ignored` neither helps nor hurts (the client left). */
export type CircuitOutcome = 'success' | 'failure' | 'ignored';

export type TransitionListener = (from: CircuitState, to: CircuitState) => void;

const BUCKETS = 10;

/**
 * A circuit breaker for one upstream service. Closed → open after `consecutiveFailures` failures in a
 * row, or when at least `minimumRequests` requests of the last `windowMs` failed at `failureRatio` or
 * more. Open refuses every request until `cooldownMs` passed; then it lets exactly one probe through
 * (half-open): its success closes the circuit, its failure opens it for another cooldown.
 *
 * Memory is constant: the window is a ring of 10 buckets of counts. No timers: time is read when a
 * request asks, so an idle breaker costs nothing. One breaker per service per worker thread; each
 * worker learns on its own (a dead service is noticed within a handful of requests per worker).
 */
export class CircuitBreaker {
  readonly #options: CircuitBreakerOptions;
  readonly #now: () => number;
  readonly #onTransition: TransitionListener | undefined;
  readonly #bucketMs: number;
  readonly #successes = new Float64Array(BUCKETS);
  readonly #failures = new Float64Array(BUCKETS);
  /** Index (time / bucketMs) of the bucket each slot currently counts; stale slots are reset on use. */
  readonly #epochs = new Float64Array(BUCKETS).fill(-1);
  #state: CircuitState = 'closed';
  #consecutive = 0;
  #openedAt = 0;
  #probeOut = false;

  constructor(
    options: Partial<CircuitBreakerOptions> = {},
    now: () => number = Date.now,
    onTransition?: TransitionListener,
  ) {
    const merged = { ...CIRCUIT_BREAKER_DEFAULTS, ...options };
    if (
      !(Number.isInteger(merged.consecutiveFailures) && merged.consecutiveFailures >= 1) ||
      !(merged.failureRatio > 0 && merged.failureRatio <= 1) ||
      !(Number.isInteger(merged.minimumRequests) && merged.minimumRequests >= 1) ||
      !(merged.windowMs >= BUCKETS && Number.isFinite(merged.windowMs)) ||
      !(merged.cooldownMs > 0 && Number.isFinite(merged.cooldownMs))
    ) {
      throw new RampartError('GW_ERR_CIRCUIT_CONFIG', 'circuit breaker options rejected', { detail: { ...merged } });
    }
    this.#options = merged;
    this.#now = now;
    this.#onTransition = onTransition;
    this.#bucketMs = merged.windowMs / BUCKETS;
  }

  /** The state as of now (an open circuit whose cooldown passed reads `half-open`). */
  get state(): CircuitState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#options.cooldownMs) {
      this.#transition('half-open');
    }
    return this.#state;
  }

  /** Asks to send one request now. */
  acquire(): CircuitPermit {
    const state = this.state;
    if (state === 'closed') return 'normal';
    if (state === 'open' || this.#probeOut) return 'refused';
    this.#probeOut = true;
    return 'probe';
  }

  /** Reports how a request granted by {@link acquire} ended. Call exactly once per granted permit. */
  settle(permit: CircuitPermit, outcome: CircuitOutcome): void {
    if (permit === 'refused') return;
    if (permit === 'probe') {
      this.#probeOut = false;
      if (outcome === 'success') this.#close();
      else if (outcome === 'failure') this.#open();
      return;
    }
    if (outcome === 'ignored') return;
    const now = this.#now();
    const slot = this.#slot(now);
    if (outcome === 'success') {
      this.#successes[slot]! += 1;
      this.#consecutive = 0;
      return;
    }
    this.#failures[slot]! += 1;
    this.#consecutive += 1;
    // A request granted while closed may finish after the circuit opened or is probing: it counts in
    // the window but never changes the state again (the probe decides alone).
    if (this.#state !== 'closed') return;
    if (this.#consecutive >= this.#options.consecutiveFailures) {
      this.#open();
      return;
    }
    const { failures, total } = this.#window(now);
    if (total >= this.#options.minimumRequests && failures / total >= this.#options.failureRatio) this.#open();
  }

  #slot(now: number): number {
    const epoch = Math.floor(now / this.#bucketMs);
    const slot = epoch % BUCKETS;
    if (this.#epochs[slot] !== epoch) {
      this.#epochs[slot] = epoch;
      this.#successes[slot] = 0;
      this.#failures[slot] = 0;
    }
    return slot;
  }

  #window(now: number): { failures: number; total: number } {
    const oldest = Math.floor(now / this.#bucketMs) - BUCKETS + 1;
    let failures = 0;
    let total = 0;
    for (let i = 0; i < BUCKETS; i++) {
      if (this.#epochs[i]! < oldest) continue;
      failures += this.#failures[i]!;
      total += this.#failures[i]! + this.#successes[i]!;
    }
    return { failures, total };
  }

  #open(): void {
    this.#openedAt = this.#now();
    this.#transition('open');
  }

  #close(): void {
    this.#consecutive = 0;
    this.#successes.fill(0);
    this.#failures.fill(0);
    this.#epochs.fill(-1);
    this.#transition('closed');
  }

  #transition(to: CircuitState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#onTransition?.(from, to);
  }
}

/** The error a request refused by an open circuit fails with (the proxy answers 503 at once). */
export function circuitOpenError(): RampartError {
  return new RampartError('GW_ERR_CIRCUIT_OPEN', 'upstream circuit open', { status: 503 });
}

/**
 * Whether an upstream error counts against the service. Aborts (the client left) and Rampart's own
 * errors (a request body over the limit, an open circuit) say nothing about the service.
 */
export function isUpstreamFailure(err: unknown): boolean {
  if (err instanceof RampartError) return false;
  const { name, code } = err as { name?: string; code?: string };
  return name !== 'AbortError' && code !== 'UND_ERR_ABORTED' && code !== 'ABORT_ERR';
}

/**
 * Statuses that count as failures: those a gateway or the service's own overload protection produce
 * when it cannot serve (Envoy's "gateway failure" set). A 500 is an application answer, not an outage.
 */
const FAILURE_STATUSES = new Set([502, 503, 504]);

/**
 * The breaker as an undici interceptor (STYLE.md: upstream concerns compose as interceptors). An open
 * circuit fails the request at once with `GW_ERR_CIRCUIT_OPEN` without touching the upstream; otherwise
 * the exchange's outcome (settled when it ends, so a reset mid-body counts) is reported to the breaker.
 */
export function circuitBreakerInterceptor(breaker: CircuitBreaker): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) =>
    function circuitBreaker(opts, handler) {
      const permit = breaker.acquire();
      if (permit === 'refused') {
        handler.onResponseError?.(REFUSED_CONTROLLER, circuitOpenError());
        return true;
      }
      return dispatch(opts, new OutcomeHandler(handler, (outcome) => breaker.settle(permit, outcome)));
    };
}

/** The controller handed over with a refusal: nothing was started, so there is nothing to steer. */
const REFUSED_CONTROLLER: Dispatcher.DispatchController = Object.freeze({
  aborted: true,
  paused: false,
  reason: null,
  abort() {},
  pause() {},
  resume() {},
});

/** Forwards every callback unchanged and reports the outcome once, when the exchange ends. */
class OutcomeHandler implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #report: (outcome: CircuitOutcome) => void;
  #status = 0;
  #settled = false;

  constructor(handler: Dispatcher.DispatchHandler, report: (outcome: CircuitOutcome) => void) {
    this.#handler = handler;
    this.#report = report;
  }

  #settle(outcome: CircuitOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#report(outcome);
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>[2],
    socket: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>[3],
  ): void {
    this.#settle('success');
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStarted(): void {
    this.#handler.onResponseStarted?.();
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2],
    statusMessage?: string,
  ): void {
    if (statusCode >= 200) this.#status = statusCode;
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(
    controller: Dispatcher.DispatchController,
    trailers: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>[1],
  ): void {
    this.#settle(FAILURE_STATUSES.has(this.#status) ? 'failure' : 'success');
    this.#handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#settle(isUpstreamFailure(error) ? 'failure' : 'ignored');
    this.#handler.onResponseError?.(controller, error);
  }

  onBodySent(chunk: Buffer): void {
    this.#handler.onBodySent?.(chunk);
  }

  onRequestSent(): void {
    this.#handler.onRequestSent?.();
  }
}
