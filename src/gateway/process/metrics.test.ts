import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Gauge, Registry } from 'prom-client';
import { aggregateWorkers, GatewayProcessRegistry } from './metrics.ts';

/** A worker's registry: a counter, a summable gauge, and gauges about shared things. */
async function worker(n: number) {
  const registry = new Registry();
  registry.setDefaultLabels({ component: 'gateway' });
  new Counter({ name: 'requests_total', help: 'x', registers: [registry] }).inc(n);
  new Gauge({ name: 'open_connections', help: 'x', registers: [registry] }).set(n);
  new Gauge({ name: 'rampart_gateway_jwks_age_seconds', help: 'x', registers: [registry] }).set(10 * n);
  new Gauge({ name: 'rampart_gateway_rate_limit_store_up', help: 'x', registers: [registry] }).set(n === 2 ? 0 : 1);
  new Gauge({ name: 'own_choice', help: 'x', registers: [registry], aggregator: 'first' }).set(n);
  return registry.getMetricsAsJSON();
}

test('workers aggregate: counts add up, gauges about shared things use min or max', async () => {
  const text = await aggregateWorkers([await worker(1), await worker(2), await worker(3)]).metrics();
  assert.match(text, /^requests_total\{component="gateway"\} 6$/m);
  assert.match(text, /^open_connections\{component="gateway"\} 6$/m);
  assert.match(text, /^rampart_gateway_jwks_age_seconds\{component="gateway"\} 30$/m);
  assert.match(text, /^rampart_gateway_rate_limit_store_up\{component="gateway"\} 0$/m, 'down in one worker is down');
  assert.match(text, /^own_choice\{component="gateway"\} 1$/m);
});

test('the process registry serves the main thread metrics once, then the workers aggregated', async () => {
  const main = new Registry();
  new Gauge({ name: 'main_only', help: 'x', registers: [main] }).set(7);
  const workers = [await worker(1), await worker(2)];
  const text = await new GatewayProcessRegistry(main, async () => workers).metrics();
  assert.match(text, /^main_only 7$/m);
  assert.match(text, /^requests_total\{component="gateway"\} 3$/m);
  assert.equal(text.match(/^# TYPE requests_total/gm)?.length, 1);
});
