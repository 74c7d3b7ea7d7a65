/**
 * Child processes in tests, without leaks. Every process started with {@link spawnTracked} runs in its
 * own process group and is killed, group and all, when the test ends (`t.after`), whether the test
 * passed, failed or timed out; cleanup awaits the exit, so no test leaves a process behind.
 *
 * ```ts
 * test('serves', async (t) => {
 *   const port = await freePort();
 *   const server = spawnTracked(t, process.execPath, ['server.ts'], { env: { PORT: String(port) } });
 *   await waitForLine(server, /listening/, 5_000);
 *   await waitForHttp(`http://127.0.0.1:${port}/healthz`, (status) => status === 200, 5_000);
 * });
 * ```
 */
import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';

export { freePort } from '../../src/launcher/ports.ts';

/** The part of `node:test`'s TestContext this helper needs (also satisfied by a suite's context). */
export interface CleanupContext {
  after(fn: () => unknown): void;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A process started by {@link spawnTracked}. */
export interface Tracked {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything it wrote to stdout so far. */
  stdout(): string;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Settles when it has exited and its output streams are closed. */
  readonly exited: Promise<ExitStatus>;
  /** Sends a signal to its whole process group. */
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves when it has exited. Idempotent. */
  stop(graceMs?: number): Promise<ExitStatus>;
}

/**
 * Spawns a process in its own process group and kills the group when the test `t` ends. stdout and
 * stderr are collected (read them with `stdout()`/`stderr()` or {@link waitForLine}); pass
 * `stdio: ['pipe', 'pipe', 'pipe']` (the default) to keep that working.
 */
export function spawnTracked(
  t: CleanupContext,
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Tracked {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options, detached: true });
  if (child.pid === undefined) {
    // spawn failed synchronously (ENOENT is reported on 'error'); surface it to the test.
    throw new Error(`could not spawn ${command}`);
  }
  const pid = child.pid;
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    out += text;
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    err += text;
  });
  child.stdin?.on('error', () => {});
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  let stopping: Promise<ExitStatus> | null = null;
  const tracked: Tracked = {
    child,
    pid,
    stdout: () => out,
    stderr: () => err,
    exited,
    signal: (signal) => {
      try {
        process.kill(-pid, signal);
      } catch {
        // the group is gone already
      }
    },
    stop(graceMs = 3_000) {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          tracked.signal('SIGTERM');
          const outcome = await Promise.race([exited, delay(graceMs, 'timeout' as const)]);
          if (outcome === 'timeout') tracked.signal('SIGKILL');
        }
        const status = await Promise.race([exited, delay(graceMs, null)]);
        tracked.signal('SIGKILL'); // anything of the group still there
        return status ?? { code: null, signal: null };
      })();
      return stopping;
    },
  };
  t.after(() => tracked.stop());
  return tracked;
}

/**
 * Resolves with the first match of `pattern` in what `source` writes to stdout or stderr (output so
 * far included). Rejects after `timeoutMs`, or when the process exits first, with its output.
 */
export async function waitForLine(source: Tracked, pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void source.exited.then(() => {
    exited = true;
  });
  for (;;) {
    const match = source.stdout().match(pattern) ?? source.stderr().match(pattern);
    if (match) return match;
    if (exited || Date.now() > deadline) {
      const why = exited ? 'the process exited' : `${timeoutMs} ms passed`;
      throw new Error(
        `${why} before a line matched ${pattern}\n--- stdout ---\n${source.stdout()}\n--- stderr ---\n${source.stderr()}`,
      );
    }
    await delay(20);
  }
}

export interface HttpResult {
  status: number;
  body: string;
}

/** One GET; `status` 0 when nothing answered. */
export function httpGet(url: string, timeoutMs = 2_000): Promise<HttpResult> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: 0, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

/** Polls `url` until `predicate` accepts the answer; rejects after `timeoutMs` with the last answer. */
export async function waitForHttp(
  url: string,
  predicate: (status: number, body: string) => boolean = (status) => status === 200,
  timeoutMs = 10_000,
): Promise<HttpResult> {
  const deadline = Date.now() + timeoutMs;
  let last: HttpResult = { status: 0, body: '' };
  while (Date.now() < deadline) {
    last = await httpGet(url, Math.max(100, Math.min(2_000, deadline - Date.now())));
    if (predicate(last.status, last.body)) return last;
    await delay(50);
  }
  throw new Error(
    `${url} did not answer as expected within ${timeoutMs} ms (last: ${last.status} ${last.body.slice(0, 200)})`,
  );
}

/**
 * The pids of `pids` that are still running. A zombie (exited, not yet reaped: common in containers
 * whose pid 1 does not reap orphans) counts as gone, since it runs nothing and holds no port.
 */
export function pidsAlive(pids: readonly number[]): number[] {
  return pids.filter((pid) => {
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    }
    return !isZombie(pid);
  });
}

function isZombie(pid: number): boolean {
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false; // no /proc (macOS): kill(pid, 0) is the answer
  }
}

/** Waits until none of `pids` is alive; resolves with those still alive after `timeoutMs` (empty: all gone). */
export async function waitForPidsGone(pids: readonly number[], timeoutMs = 5_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = pidsAlive(pids);
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await delay(50);
  }
}

/** `pgrep -f <pattern>`: pids of live processes whose command line matches (zombies excluded). */
export function pgrep(pattern: string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    execFile('pgrep', ['-f', pattern], (err, stdout) => {
      // pgrep exits 1 when nothing matched
      if (err && (err as { code?: unknown }).code !== 1) {
        reject(err);
        return;
      }
      const pids = stdout
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map(Number)
        .filter((pid) => pid !== process.pid);
      resolve(pidsAlive(pids));
    });
  });
}
