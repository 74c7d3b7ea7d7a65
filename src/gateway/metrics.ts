import { Counter, Histogram, type Registry } from 'prom-client';

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
}

/** Methods as metric label values: the standard ones, everything else folded into `other`. */
export const METHOD_LABELS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
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
  };
}
