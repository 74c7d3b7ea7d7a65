/**
 * Micro-benchmark of canonicalizePath, which runs once per request in the gateway and in every service.
 * Not a test: `node bench/canonical-path.bench.ts` prints ns/op for each input.
 */
import { canonicalizePath, canonicalizeTarget } from '../src/core/canonical-path.ts';

const N = 1_000_000;

const cases: readonly (readonly [string, (s: string) => unknown, string])[] = [
  ['typical (fast path)', canonicalizePath, '/orders/12345/items'],
  ['dots inside segments (fast path)', canonicalizePath, '/static/js/app.min.js'],
  ['escapes and dot segments', canonicalizePath, '/api/./v1/%7Euser/../orders/%41bc%2a/items/'],
  ['target with query', canonicalizeTarget, '/orders/12345/items?page=2&sort=desc'],
];

function time(fn: (s: string) => unknown, input: string): number {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) sink += fn(input) === undefined ? 0 : 1;
  const ns = Number(process.hrtime.bigint() - start);
  if (sink !== N) throw new Error('unexpected result');
  return ns / N;
}

for (const [name, fn, input] of cases) {
  time(fn, input); // warm up: let the JIT optimize before measuring
  const best = Math.min(time(fn, input), time(fn, input), time(fn, input));
  process.stdout.write(`${name.padEnd(36)} ${best.toFixed(1).padStart(7)} ns/op  ${input}\n`);
}
