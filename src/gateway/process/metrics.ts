import { AggregatorRegistry, Registry } from 'prom-client';
import type { WorkerMetrics } from './messages.ts';

/**
 * The gateway's `/metrics`: the main thread's own registry (process metrics, workers, reloads, the
 * decision log) followed by the workers' registries aggregated into one (prom-client's
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
    const aggregated = AggregatorRegistry.aggregate(workers);
    return `${own}${await aggregated.metrics()}`;
  }
}
