import { buildConnector, Client, type Dispatcher, Pool } from 'undici';
import { spiffeServerCheck } from '../control/api/client.ts';
import type { Logger } from '../core/logger.ts';
import { Counter, Gauge, type Registry } from '../core/metrics.ts';
import type { WorkloadSvid } from '../core/runtime.ts';
import { serviceSpiffeId } from '../core/spiffe.ts';
import {
  CIRCUIT_STATE_VALUES,
  CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitState,
  circuitBreakerInterceptor,
} from './circuit-breaker.ts';
import { GATEWAY_LIMITS } from './defaults.ts';

/** Transport settings for the upstream services. Defaults: {@link GATEWAY_LIMITS} and the breaker's. */
export interface UpstreamOptions {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Idle pooled connections are closed after this (below the services' own keep-alive timeout). */
  keepAliveTimeoutMs: number;
  /** Connections per service pool. */
  connections: number;
  breaker: Partial<CircuitBreakerOptions>;
  /**
   * The socket layer per service: undici connect options or a connector. This is where mutual TLS to
   * the service's SPIFFE identity plugs in (a TLS connector with the gateway's SVID and a check of the
   * peer's URI SAN); until then the hop is plain HTTP on loopback and this is undefined.
   */
  connect?: (service: string) => Pool.Options['connect'] | undefined;
}

/**
 * Keep-alive connections are closed by the gateway after 4 s idle: below Node's default server
 * keep-alive of 5 s (services use fastify/Node defaults), so the gateway closes first and rarely
 * sends a request on a socket the service is closing at that moment.
 */
const KEEP_ALIVE_TIMEOUT_MS = 4_000;

export const UPSTREAM_DEFAULTS: Readonly<UpstreamOptions> = Object.freeze({
  connectTimeoutMs: GATEWAY_LIMITS.upstreamConnectTimeoutMs,
  headersTimeoutMs: GATEWAY_LIMITS.upstreamHeadersTimeoutMs,
  bodyTimeoutMs: GATEWAY_LIMITS.upstreamBodyTimeoutMs,
  keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
  connections: GATEWAY_LIMITS.upstreamConnections,
  breaker: {},
});

/** One service's transport: the dispatcher the proxy sends through, and its breaker. */
export interface Upstream {
  readonly service: string;
  readonly origin: string;
  /** breaker → retry once on a fresh connection → keep-alive pool (outermost first). */
  readonly dispatcher: Dispatcher;
  readonly breaker: CircuitBreaker;
}

export interface UpstreamTransports {
  get(service: string): Upstream | undefined;
  /** Closes every pool (waits for in-flight exchanges). Idempotent. */
  close(): Promise<void>;
}

export interface UpstreamDeps {
  logger: Logger;
  registry: Registry;
  now?: () => number;
}

/**
 * The upstream transport of one gateway worker: a keep-alive pool per service composed with the
 * breaker and the fresh-connection retry as undici interceptors (STYLE.md: `Dispatcher.compose`). It is
 * made once per worker and outlives configuration reloads, so pools stay warm and breakers keep what
 * they learned; a reload that adds a service simply has no transport for it (503) until the launcher
 * gives it one.
 */
export function createUpstreamTransports(
  upstreams: Readonly<Record<string, string>>,
  deps: UpstreamDeps,
  overrides: Partial<UpstreamOptions> = {},
): UpstreamTransports {
  const options: UpstreamOptions = { ...UPSTREAM_DEFAULTS, ...overrides };
  const metrics = circuitMetrics(deps.registry);
  const byService = new Map<string, Upstream & { pool: Pool }>();
  for (const [service, origin] of Object.entries(upstreams)) {
    const clientOptions: Pool.Options = {
      connectTimeout: options.connectTimeoutMs,
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
    };
    const connect = options.connect?.(service);
    if (connect !== undefined) clientOptions.connect = connect;
    const pool = new Pool(origin, { ...clientOptions, connections: options.connections });
    metrics.state.set({ service }, CIRCUIT_STATE_VALUES.closed);
    const breaker = new CircuitBreaker(options.breaker, deps.now, (from: CircuitState, to: CircuitState) => {
      metrics.state.set({ service }, CIRCUIT_STATE_VALUES[to]);
      metrics.transitions.inc({ service, to });
      const log = { service, from, to };
      if (to === 'open') deps.logger.warn(log, 'upstream circuit opened');
      else deps.logger.info(log, 'upstream circuit state changed');
    });
    const dispatcher = pool.compose(
      retryOnFreshConnection(() => new Client(origin, clientOptions)),
      circuitBreakerInterceptor(breaker),
    );
    byService.set(service, { service, origin, dispatcher, breaker, pool });
  }
  let closing: Promise<void> | null = null;
  return {
    get: (service) => byService.get(service),
    close: () => {
      closing ??= Promise.all([...byService.values()].map(({ pool }) => pool.close())).then(() => {});
      return closing;
    },
  };
}

/**
 * The circuit metrics, shared by every transport on a registry (a gateway rebuilt on the same registry
 * must not register them twice). The state gauge aggregates across workers with `max`: the worst
 * worker's view (0 closed, 1 half-open, 2 open).
 */
function circuitMetrics(registry: Registry) {
  const stateName = 'rampart_gateway_upstream_circuit_state';
  const transitionsName = 'rampart_gateway_upstream_circuit_transitions_total';
  const state =
    (registry.getSingleMetric(stateName) as Gauge<'service'> | undefined) ??
    new Gauge({
      name: stateName,
      help: 'Circuit breaker state per service: 0 closed, 1 half-open, 2 open (the worst worker across workers).',
      labelNames: ['service'],
      registers: [registry],
      aggregator: 'max',
    });
  const transitions =
    (registry.getSingleMetric(transitionsName) as Counter<'service' | 'to'> | undefined) ??
    new Counter({
      name: transitionsName,
      help: 'Circuit breaker transitions per service and new state.',
      labelNames: ['service', 'to'],
      registers: [registry],
    });
  return { state, transitions };
}

/** Idempotent methods that carry no body in practice (RFC 9110 §9.2.2). */
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * Mutual TLS to each service's SPIFFE identity (issue 4 §6): `connect(service)` gives undici a
 * connector that presents the gateway's SVID, trusts only the bundle, and accepts only a server whose
 * SPIFFE ID is exactly `spiffe://<td>/svc/<service>` (not a host name: DESIGN.md). `update` installs a
 * renewed SVID or bundle for new connections; pooled ones finish on the old one.
 */
export function createSpiffeConnect(
  initial: WorkloadSvid,
  connectTimeoutMs: number = UPSTREAM_DEFAULTS.connectTimeoutMs,
): { connect: (service: string) => buildConnector.connector; update(svid: WorkloadSvid): void } {
  let svid = initial;
  let connectors = new Map<string, buildConnector.connector>();
  const current = (service: string) => {
    let connector = connectors.get(service);
    if (!connector) {
      connector = buildConnector({
        ca: svid.bundlePem,
        cert: svid.certificatePem,
        key: svid.keyPem,
        minVersion: 'TLSv1.2',
        timeout: connectTimeoutMs,
        checkServerIdentity: spiffeServerCheck(serviceSpiffeId(svid.trustDomain, service).id, svid.trustDomain),
      });
      connectors.set(service, connector);
    }
    return connector;
  };
  return {
    connect: (service) => (options, callback) => current(service)(options, callback),
    update(next) {
      svid = next;
      connectors = new Map();
    },
  };
}

/** Errors of a connection that died under the request before any response: the request reached nobody. */
const RESET_CODES = new Set(['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE']);

/**
 * Sends a request once more, on a connection of its own, when the pooled connection it went out on
 * turned out dead before any response (the service restarted, or idled the socket out as we sent).
 * Only bodiless idempotent requests: nothing was consumed that cannot be sent again (RFC 9110 §9.2.2).
 * Why a fresh connection and not the pool: a restarted service can leave several dead sockets in the
 * pool at once, and only a new connection tells "the service is back" (200) from "the service is gone"
 * (refused: 503), never a 502 for a request nobody received.
 */
export function retryOnFreshConnection(fresh: () => Dispatcher): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) =>
    function retryFresh(opts, handler) {
      const method = (opts.method ?? 'GET').toUpperCase();
      if (!RETRYABLE_METHODS.has(method) || (opts.body !== null && opts.body !== undefined)) {
        return dispatch(opts, handler);
      }
      return dispatch(
        opts,
        new FreshRetryHandler(handler, (retry) => {
          const client = fresh();
          retry.onDone = () => void client.close().catch(() => {});
          client.dispatch(opts, retry);
        }),
      );
    };
}

/**
 * A controller the downstream handler keeps for the whole exchange while the attempts behind it change
 * (undici's RetryHandler does the same): pause, resume and abort go to the live attempt, and an abort
 * between attempts is applied to the next one as soon as it starts.
 */
class SwitchingController implements Dispatcher.DispatchController {
  #target: Dispatcher.DispatchController | null = null;
  #paused = false;
  #abortReason: Error | null = null;

  set target(target: Dispatcher.DispatchController) {
    this.#target = target;
    if (this.#abortReason) target.abort(this.#abortReason);
    else if (this.#paused) target.pause();
  }

  get aborted(): boolean {
    return this.#abortReason !== null || (this.#target?.aborted ?? false);
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#abortReason ?? this.#target?.reason ?? null;
  }
  get rawHeaders() {
    return this.#target?.rawHeaders ?? null;
  }
  get rawTrailers() {
    return this.#target?.rawTrailers ?? null;
  }
  abort(reason: Error): void {
    this.#abortReason = reason;
    this.#target?.abort(reason);
  }
  pause(): void {
    this.#paused = true;
    this.#target?.pause();
  }
  resume(): void {
    this.#paused = false;
    this.#target?.resume();
  }
}

class FreshRetryHandler implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #retry: (handler: FreshRetryHandler) => void;
  readonly #controller = new SwitchingController();
  #started = false;
  #responded = false;
  #retried = false;
  /** Set by the retry: releases the fresh connection when the exchange ends. */
  onDone: (() => void) | null = null;

  constructor(handler: Dispatcher.DispatchHandler, retry: (handler: FreshRetryHandler) => void) {
    this.#handler = handler;
    this.#retry = retry;
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#controller.target = controller;
    if (this.#started) return;
    this.#started = true;
    this.#handler.onRequestStart?.(this.#controller, context);
  }

  onResponseStarted(): void {
    this.#handler.onResponseStarted?.();
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2],
    statusMessage?: string,
  ): void {
    this.#responded = true;
    this.#handler.onResponseStart?.(this.#controller, statusCode, headers, statusMessage);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(this.#controller, chunk);
  }

  onResponseEnd(
    _controller: Dispatcher.DispatchController,
    trailers: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>[1],
  ): void {
    this.onDone?.();
    this.#handler.onResponseEnd?.(this.#controller, trailers);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const code = (error as { code?: string }).code ?? '';
    if (!this.#retried && !this.#responded && !this.#controller.aborted && RESET_CODES.has(code)) {
      this.#retried = true;
      this.#retry(this);
      return;
    }
    this.onDone?.();
    this.#handler.onResponseError?.(this.#controller, error);
  }

  onRequestSent(): void {
    this.#handler.onRequestSent?.();
  }
}
