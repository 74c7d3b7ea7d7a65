import { collectDefaultMetrics, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * A per-component Prometheus registry with the process metrics (CPU, memory, event loop lag) and a
 * `component` default label. Each component owns its registry; there is no global one (STYLE.md:
 * no mutable module-level state).
 */
export function createMetrics(component: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry, prefix: 'rampart_' });
  return registry;
}
