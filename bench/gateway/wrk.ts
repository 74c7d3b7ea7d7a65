/**
 * Runs wrk (https://github.com/wg/wrk) and reads its report. One thread always (`-t1`): every target is
 * offered the same load generator, and the machine keeps a core for the server.
 */
import type { ProcessGroup } from './processes.ts';

export interface WrkLoad {
  url: string;
  seconds: number;
  connections: number;
  /** Extra request header lines (`Name: value`). */
  headers?: readonly string[];
  /** A wrk Lua script (`-s`), e.g. one that paces each connection. */
  script?: string;
}

export interface WrkResult {
  requests: number;
  rps: number;
  /** Latency percentiles in milliseconds. */
  p50Ms: number;
  p99Ms: number;
  /** Responses with status ≥ 400 (wrk's "Non-2xx or 3xx responses"). */
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
}

/** Runs one wrk measurement to completion. Throws with wrk's output when it fails or prints no report. */
export async function runWrk(processes: ProcessGroup, load: WrkLoad): Promise<WrkResult> {
  const args = ['-t1', `-c${load.connections}`, `-d${load.seconds}s`, '--latency', '--timeout', '5s'];
  for (const header of load.headers ?? []) args.push('-H', header);
  if (load.script) args.push('-s', load.script);
  args.push(load.url);
  const wrk = processes.start('wrk', 'wrk', args);
  const code = await wrk.exited;
  const output = wrk.tail();
  if (code !== 0) throw new Error(`wrk exited with ${code}:\n${output}`);
  return parseWrkOutput(output);
}

const UNIT_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Reads a wrk `--latency` report. Exported for its test; throws when a figure is missing (never guesses 0). */
export function parseWrkOutput(text: string): WrkResult {
  const need = (pattern: RegExp, what: string): RegExpExecArray => {
    const match = pattern.exec(text);
    if (!match) throw new Error(`wrk report without ${what}:\n${text}`);
    return match;
  };
  const latency = (percentile: string): number => {
    const [, value, unit] = need(
      new RegExp(`^\\s*${percentile}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm'),
      `${percentile}%`,
    );
    return Number(value) * UNIT_MS[unit!]!;
  };
  const requests = Number(need(/^\s*(\d+) requests in /m, 'a request count')[1]);
  const rps = Number(need(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')[1]);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests,
    rps,
    p50Ms: latency('50'),
    p99Ms: latency('99'),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: {
      connect: errors ? Number(errors[1]) : 0,
      read: errors ? Number(errors[2]) : 0,
      write: errors ? Number(errors[3]) : 0,
      timeout: errors ? Number(errors[4]) : 0,
    },
  };
}
