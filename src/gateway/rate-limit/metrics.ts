import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Metrics of the rate-limit store itself (decisions are counted by the stage, in
 * `rampart_gateway_rate_limit_decisions_total`). Labels are bounded by code: `store` is `redis`,
 * `to` is `up`/`down`, `outcome` is `denied`/`local`.
 */
export interface RateLimitStoreMetrics {
  /** 1 while the shared store answers, 0 while it is down. */
  readonly up: Gauge<'store'>;
  /** Outage transitions (each is also logged once). */
  readonly transitions: Counter<'store' | 'to'>;
  /** Decisions made without the shared store: refused (`denied`, 503) or by the local table (`local`). */
  readonly fallbacks: Counter<'store' | 'outcome'>;
}

export const RATE_LIMIT_STORE_METRICS = {
  up: 'rampart_gateway_rate_limit_store_up',
  transitions: 'rampart_gateway_rate_limit_store_transitions_total',
  fallbacks: 'rampart_gateway_rate_limit_store_fallbacks_total',
} as const;

/**
 * The store metrics in `registry`, created on first use and shared afterwards: a reloaded
 * configuration or a second store in the same registry must not register the names twice (prom-client
 * throws on duplicates).
 */
export function rateLimitStoreMetrics(registry: Registry): RateLimitStoreMetrics {
  return {
    up:
      (registry.getSingleMetric(RATE_LIMIT_STORE_METRICS.up) as Gauge<'store'> | undefined) ??
      new Gauge({
        name: RATE_LIMIT_STORE_METRICS.up,
        help: 'Whether the shared rate-limit store answers (1) or is down (0), by store.',
        labelNames: ['store'],
        registers: [registry],
      }),
    transitions:
      (registry.getSingleMetric(RATE_LIMIT_STORE_METRICS.transitions) as Counter<'store' | 'to'> | undefined) ??
      new Counter({
        name: RATE_LIMIT_STORE_METRICS.transitions,
        help: 'Rate-limit store outage transitions, by store and new state (up, down).',
        labelNames: ['store', 'to'],
        registers: [registry],
      }),
    fallbacks:
      (registry.getSingleMetric(RATE_LIMIT_STORE_METRICS.fallbacks) as Counter<'store' | 'outcome'> | undefined) ??
      new Counter({
        name: RATE_LIMIT_STORE_METRICS.fallbacks,
        help: 'Rate-limit decisions made while the store was down, by store and outcome (denied, local).',
        labelNames: ['store', 'outcome'],
        registers: [registry],
      }),
  };
}
