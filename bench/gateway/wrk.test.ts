/**
 * The wrk report parser: a unit slip here would silently skew every ratio the benchmark prints.
 * Run: node --test bench/gateway/wrk.test.ts (the benchmark itself is never part of `npm test`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseWrkOutput } from './wrk.ts';

const report = (latencies: readonly [string, string][], extra = '') =>
  [
    'Running 8s test @ http://127.0.0.1:40000/full/orders',
    '  1 threads and 64 connections',
    '  Thread Stats   Avg      Stdev     Max   +/- Stdev',
    '    Latency     7.51ms    2.04ms  41.27ms   83.12%',
    '    Req/Sec     8.55k   512.33     9.31k    76.25%',
    '  Latency Distribution',
    ...latencies.map(([p, v]) => `     ${p}%  ${v}`),
    '  68087 requests in 8.00s, 13.44MB read',
    extra,
    'Requests/sec:   8508.63',
    'Transfer/sec:      1.68MB',
  ]
    .filter(Boolean)
    .join('\n');

const typical: [string, string][] = [
  ['50', '6.92ms'],
  ['75', '8.01ms'],
  ['90', '9.40ms'],
  ['99', '23.74ms'],
];

test('reads requests, rps and percentiles; a clean run has no errors', () => {
  const r = parseWrkOutput(report(typical));
  assert.equal(r.requests, 68087);
  assert.equal(r.rps, 8508.63);
  assert.equal(r.p50Ms, 6.92);
  assert.equal(r.p99Ms, 23.74);
  assert.equal(r.non2xx, 0);
  assert.deepEqual(r.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
});

test('converts every latency unit wrk prints to milliseconds', () => {
  const cases: [string, number][] = [
    ['812.00us', 0.812],
    ['1.50ms', 1.5],
    ['1.20s', 1200],
    ['2.00m', 120_000],
    ['1.00h', 3_600_000],
  ];
  for (const [text, ms] of cases) {
    const r = parseWrkOutput(
      report([
        ['50', text],
        ['99', text],
      ]),
    );
    assert.ok(Math.abs(r.p50Ms - ms) < 1e-9, `${text} → ${r.p50Ms}`);
  }
});

test('reads error responses and socket errors', () => {
  const r = parseWrkOutput(
    report(typical, '  Socket errors: connect 3, read 4, write 5, timeout 6\n  Non-2xx or 3xx responses: 42'),
  );
  assert.equal(r.non2xx, 42);
  assert.deepEqual(r.socketErrors, { connect: 3, read: 4, write: 5, timeout: 6 });
});

test('a report without a figure is an error, never a zero', () => {
  assert.throws(() => parseWrkOutput(report(typical).replace(/^Requests\/sec.*$/m, '')), /Requests\/sec/);
  assert.throws(() => parseWrkOutput(report(typical.filter(([p]) => p !== '99'))), /99%/);
  assert.throws(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused'), /request count/);
});
