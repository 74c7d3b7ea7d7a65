/**
 * The benchmark's report: one Markdown table of every line (medians over the rounds), the ratios the
 * gateway issue sets targets for, and the validity verdict. Ratios are computed within each round (the
 * lines of one round ran minutes apart on the same machine) and then their median is reported.
 */
import type { WrkResult } from './wrk.ts';

/** One measured line of one round. */
export interface Measurement {
  result: WrkResult;
  seconds: number;
  /** CPU seconds the server's process tree used during the measurement; null when not sampled. */
  cpuSeconds: number | null;
}

export interface Line {
  /** Stable id used by the ratios (`nginx`, `haproxy-jwt`, `rampart-full`, ...). */
  id: string;
  label: string;
  /** One entry per round. */
  rounds: Measurement[];
}

export interface Ratio {
  label: string;
  /** Line ids: numerator / denominator. */
  of: string;
  over: string;
  metric: 'rps' | 'p99';
  /** The target the issue sets, and which side of it passes. */
  target?: { value: number; atLeast: boolean };
}

/** The ratios gateway issue #3 asks for, plus context lines (no target). */
export const RATIOS: readonly Ratio[] = [
  {
    label: 'full chain rps / HAProxy jwt+limit rps',
    of: 'rampart-full',
    over: 'haproxy-jwt',
    metric: 'rps',
    target: { value: 3, atLeast: true },
  },
  {
    label: 'full chain rps / nginx plain proxy rps',
    of: 'rampart-full',
    over: 'nginx',
    metric: 'rps',
    target: { value: 0.4, atLeast: true },
  },
  {
    label: 'full chain p99 / nginx plain proxy p99',
    of: 'rampart-full',
    over: 'nginx',
    metric: 'p99',
    target: { value: 2, atLeast: false },
  },
  {
    label: 'TLS: full chain rps / HAProxy jwt+limit rps',
    of: 'rampart-full-tls',
    over: 'haproxy-jwt-tls',
    metric: 'rps',
    target: { value: 3, atLeast: true },
  },
  {
    label: 'TLS: full chain rps / nginx proxy rps',
    of: 'rampart-full-tls',
    over: 'nginx-tls',
    metric: 'rps',
    target: { value: 0.4, atLeast: true },
  },
  {
    label: 'TLS: full chain p99 / nginx proxy p99',
    of: 'rampart-full-tls',
    over: 'nginx-tls',
    metric: 'p99',
    target: { value: 2, atLeast: false },
  },
  { label: 'plain route rps / nginx plain proxy rps', of: 'rampart-plain', over: 'nginx', metric: 'rps' },
  { label: 'plain route rps / bare Node proxy rps', of: 'rampart-plain', over: 'node-floor', metric: 'rps' },
  { label: 'full chain rps / bare Node proxy rps', of: 'rampart-full', over: 'node-floor', metric: 'rps' },
  { label: 'bare Node proxy rps / nginx plain proxy rps', of: 'node-floor', over: 'nginx', metric: 'rps' },
  { label: 'full chain rps / Rampart plain proxy rps', of: 'rampart-full', over: 'rampart-plain', metric: 'rps' },
  {
    label: '2 workers: full chain rps / HAProxy jwt+limit rps',
    of: 'rampart-full-w2',
    over: 'haproxy-jwt',
    metric: 'rps',
  },
];

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Why a measurement does not count: error responses or socket errors. Empty when it is valid. */
export function invalidity(m: Measurement): string {
  const { non2xx, socketErrors: e } = m.result;
  const problems: string[] = [];
  if (non2xx > 0) problems.push(`${non2xx} non-2xx responses`);
  const errors = e.connect + e.read + e.write + e.timeout;
  if (errors > 0)
    problems.push(`socket errors: connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout}`);
  if (m.result.requests === 0) problems.push('no requests completed');
  return problems.join('; ');
}

const fixed = (n: number, digits: number) => n.toFixed(digits);

/** The lines as a Markdown table (medians over rounds; the rps range when there was more than one round). */
export function formatTable(lines: readonly Line[]): string {
  const multi = lines.some((l) => l.rounds.length > 1);
  const head = [
    'line',
    'rps',
    ...(multi ? ['rps min–max'] : []),
    'p50 ms',
    'p99 ms',
    'non-2xx',
    'server CPU',
    'CPU µs/req',
  ];
  const rows = lines.map((line) => {
    const rps = line.rounds.map((m) => m.result.rps);
    const cpu = line.rounds.filter((m) => m.cpuSeconds !== null);
    const cpuShare = cpu.length ? median(cpu.map((m) => m.cpuSeconds! / m.seconds)) : null;
    const cpuPerReq = cpu.length
      ? median(cpu.map((m) => (m.cpuSeconds! * 1e6) / Math.max(1, m.result.requests)))
      : null;
    return [
      line.label,
      fixed(median(rps), 0),
      ...(multi ? [`${fixed(Math.min(...rps), 0)}–${fixed(Math.max(...rps), 0)}`] : []),
      fixed(median(line.rounds.map((m) => m.result.p50Ms)), 2),
      fixed(median(line.rounds.map((m) => m.result.p99Ms)), 2),
      String(line.rounds.reduce((sum, m) => sum + m.result.non2xx, 0)),
      cpuShare === null ? '–' : `${fixed(cpuShare * 100, 0)}%`,
      cpuPerReq === null ? '–' : fixed(cpuPerReq, 1),
    ];
  });
  return markdownTable(head, rows);
}

/**
 * Each ratio's per-round values and their median, with the verdict against its target. Throughput
 * ratios also get the same ratio in requests per CPU-second of the server (the inverse of CPU µs per
 * request): on a shared machine a server that waited for a core serves fewer requests per second but
 * not fewer per CPU-second, so a large gap between the two columns means the run was disturbed.
 */
export function formatRatios(lines: readonly Line[]): string {
  const byId = new Map(lines.map((l) => [l.id, l]));
  const rows: string[][] = [];
  for (const ratio of RATIOS) {
    const of = byId.get(ratio.of);
    const over = byId.get(ratio.over);
    if (!of || !over) continue;
    const rounds = Math.min(of.rounds.length, over.rounds.length);
    const values: number[] = [];
    const perCpu: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const a = of.rounds[i]!;
      const b = over.rounds[i]!;
      values.push(ratio.metric === 'rps' ? a.result.rps / b.result.rps : a.result.p99Ms / b.result.p99Ms);
      if (ratio.metric === 'rps' && a.cpuSeconds && b.cpuSeconds) {
        perCpu.push(a.result.requests / a.cpuSeconds / (b.result.requests / b.cpuSeconds));
      }
    }
    const value = median(values);
    const target = ratio.target;
    const verdict = !target ? '' : (target.atLeast ? value >= target.value : value <= target.value) ? 'met' : 'NOT MET';
    rows.push([
      ratio.label,
      `${fixed(value, 2)}×`,
      values.length > 1 ? values.map((v) => fixed(v, 2)).join(' ') : '',
      perCpu.length ? `${fixed(median(perCpu), 2)}×` : '',
      target ? `${target.atLeast ? '≥' : '≤'} ${target.value}×` : '',
      verdict,
    ]);
  }
  return markdownTable(['ratio', 'median', 'per round', 'per CPU-second', 'target', ''], rows);
}

export function markdownTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
