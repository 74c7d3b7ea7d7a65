import { type Aggregator, AggregatorRegistry, Registry } from 'prom-client';
import type { WorkerMetrics } from './messages.ts';

/**
 * How gauges that every worker reports about the same shared thing combine across workers, for those
 * declared without an `aggregator` (prom-client then sums, which is right for counts like open
 * connections and wrong for these). A metric's own `aggregator`, when set to anything but `sum`, wins.
 */
const GAUGE_AGGREGATION: Readonly<Record<string, Aggregator>> = Object.freeze({
  /** Down in any worker is down. */
  rampart_gateway_rate_limit_store_up: 'min',
  /** The oldest key set any worker serves. */
  rampart_gateway_jwks_age_seconds: 'max',
  /** Every worker fetches the same set; the smallest shows a worker that missed a rotation. */
  rampart_gateway_jwks_keys: 'min',
  /** The earliest expiry any worker serves. */
  rampart_gateway_tls_certificate_not_after_seconds: 'min',
});

/**
 * The gateway's `/metrics`: the main thread's own registry (process metrics, workers, reloads, the
 * audit client) followed by the workers' registries aggregated into one (prom-client's
 * `AggregatorRegistry.aggregate`: counters and histograms summed, gauges by their `aggregator`). Each
 * worker serializes its own registry on request, so a scrape costs the request path one message.
 * Metric names never overlap between the two parts: the main thread registers none of the request path's.
 */
export class GatewayProcessRegistry extends Registry {
  readonly #main: Registry;
  readonly #collect: () => Promise<WorkerMetrics[]>;

  constructor(main: Registry, collect: () => Promise<WorkerMetrics[]>) {
    super();
    this.#main = main;
    this.#collect = collect;
  }

  override async metrics(): Promise<string> {
    const [own, workers] = await Promise.all([this.#main.metrics(), this.#collect()]);
    return `${own}${await aggregateWorkers(workers).metrics()}`;
  }
}

/** The workers' registries as one, with {@link GAUGE_AGGREGATION} applied. */
export function aggregateWorkers(workers: readonly WorkerMetrics[]): Registry {
  const adjusted = workers.map((metrics) =>
    metrics.map((metric) => {
      const override = GAUGE_AGGREGATION[metric.name];
      return override && metric.aggregator === 'sum' ? { ...metric, aggregator: override } : metric;
    }),
  );
  return AggregatorRegistry.aggregate(adjusted);
}
