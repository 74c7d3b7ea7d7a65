import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * The gateway's metrics. Labels are bounded by the manifest (route ids, service names) or by code
 * (stage, reason, status class): never raw paths, hosts or client addresses (Caddy#7208, Kong#7684).
 */
export interface GatewayMetrics {
  requests: Counter<'route' | 'method' | 'status_class'>;
  duration: Histogram<'route'>;
  denials: Counter<'stage' | 'reason'>;
  rateLimit: Counter<'route' | 'decision'>;
  upstreamErrors: Counter<'service' | 'kind'>;
  /** Key-set and issuer-metadata fetches by target (jwks, discovery) and outcome (ok, error). */
  jwksFetches: Counter<'target' | 'outcome'>;
  /** Failed fetches by target and kind (timeout, http_status, redirect, too_large, invalid, network). */
  jwksFailures: Counter<'target' | 'kind'>;
  /** Verified-token cache lookups by result (hit, miss). */
  tokenCache: Counter<'result'>;
  /** Read at scrape time from the source given to {@link GatewayMetrics.observeKeySet}. */
  jwksAge: Gauge;
  jwksKeys: Gauge;
  /**
   * Registers where the key-set gauges read from at scrape time (`rampart_gateway_jwks_age_seconds`,
   * `rampart_gateway_jwks_keys`). The authenticate stage calls it once with its key store.
   */
  observeKeySet(source: () => KeySetObservation): void;
}

/** What the key-set gauges report. */
export interface KeySetObservation {
  /** Seconds since the last successful key-set fetch (or since the source was registered, before the first). */
  ageSeconds: number;
  /** Keys in the current set. */
  keys: number;
}

/** Methods as metric label values: the standard ones, everything else folded into `other`. */
export const METHOD_LABELS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  let keySet: (() => KeySetObservation) | null = null;
  return {
    requests: new Counter({
      name: 'rampart_gateway_requests_total',
      help: 'Requests answered by the gateway, by route id (or "unmatched"), method and status class.',
      labelNames: ['route', 'method', 'status_class'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'rampart_gateway_request_duration_seconds',
      help: 'Time from request arrival to response end, by route id.',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    denials: new Counter({
      name: 'rampart_gateway_denials_total',
      help: 'Requests refused by a pipeline stage, by stage and reason code.',
      labelNames: ['stage', 'reason'],
      registers: [registry],
    }),
    rateLimit: new Counter({
      name: 'rampart_gateway_rate_limit_decisions_total',
      help: 'Rate-limit decisions by route id and decision (allow, deny).',
      labelNames: ['route', 'decision'],
      registers: [registry],
    }),
    upstreamErrors: new Counter({
      name: 'rampart_gateway_upstream_errors_total',
      help: 'Failed upstream exchanges by service and kind (unavailable, timeout, reset, protocol).',
      labelNames: ['service', 'kind'],
      registers: [registry],
    }),
    jwksFetches: new Counter({
      name: 'rampart_gateway_jwks_fetches_total',
      help: 'Fetches of the issuer key set (jwks) or metadata (discovery), by outcome (ok, error).',
      labelNames: ['target', 'outcome'],
      registers: [registry],
    }),
    jwksFailures: new Counter({
      name: 'rampart_gateway_jwks_fetch_failures_total',
      help: 'Failed key-set or metadata fetches by target and kind.',
      labelNames: ['target', 'kind'],
      registers: [registry],
    }),
    tokenCache: new Counter({
      name: 'rampart_gateway_token_cache_lookups_total',
      help: 'Verified-token cache lookups by result (hit, miss).',
      labelNames: ['result'],
      registers: [registry],
    }),
    jwksAge: new Gauge({
      name: 'rampart_gateway_jwks_age_seconds',
      help: 'Seconds since the last successful fetch of the issuer key set (alert well before the stale bound).',
      registers: [registry],
      collect() {
        if (keySet) this.set(keySet().ageSeconds);
      },
    }),
    jwksKeys: new Gauge({
      name: 'rampart_gateway_jwks_keys',
      help: 'Keys in the current issuer key set.',
      registers: [registry],
      collect() {
        if (keySet) this.set(keySet().keys);
      },
    }),
    observeKeySet(source) {
      keySet = source;
    },
  };
}
