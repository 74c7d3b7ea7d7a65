/**
 * Child processes of the gateway benchmark, and what /proc says about them. Every process runs in its
 * own process group and is killed, group and all, by {@link ProcessGroup.stopAll}: a benchmark that
 * stops halfway (Ctrl-C, a failed assertion) leaves no nginx or HAProxy behind.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** A process started by {@link ProcessGroup.start}. */
export interface Started {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** The last 16 KiB of what it wrote to stdout and stderr (when those are pipes). */
  tail(): string;
  /** Settles with the exit code (null after a signal) once it has exited. */
  readonly exited: Promise<number | null>;
  /** SIGTERM to its group, SIGKILL after `graceMs`; resolves once it has exited. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const TAIL_BYTES = 16_384;

/** The processes one benchmark run started. */
export class ProcessGroup {
  readonly #started: Started[] = [];

  /** Spawns `command` as the leader of a new process group; stdio defaults to pipes (see {@link Started.tail}). */
  start(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Started {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options, detached: true });
    if (child.pid === undefined) throw new Error(`${name}: could not spawn ${command}`);
    const pid = child.pid;
    let tail = '';
    const keep = (text: string) => {
      tail = (tail + text).slice(-TAIL_BYTES);
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
    child.stdin?.on('error', () => {});
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', (err) => {
        keep(`spawn failed: ${err.message}\n`);
        resolve(null);
      });
    });
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        // the group is gone already
      }
    };
    let stopping: Promise<void> | null = null;
    const started: Started = {
      name,
      pid,
      child,
      tail: () => tail,
      exited,
      stop: (graceMs = 5_000) => {
        stopping ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            signal('SIGTERM');
            if ((await Promise.race([exited, delay(graceMs, 'late' as const)])) === 'late') signal('SIGKILL');
            await Promise.race([exited, delay(graceMs)]);
          }
          signal('SIGKILL'); // anything of the group still there (nginx workers, a gateway's children)
        })();
        return stopping;
      },
    };
    this.#started.push(started);
    return started;
  }

  /** Stops every started process, newest first. */
  async stopAll(): Promise<void> {
    for (const started of [...this.#started].reverse()) await started.stop();
  }
}

/** Resolves once something accepts TCP connections on `port`; rejects after `timeoutMs` or when `alive()` turns false. */
export async function waitForPort(port: number, timeoutMs = 10_000, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`the process meant to listen on port ${port} exited`);
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await delay(50);
  }
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux ABI that matters). */
const USER_HZ = 100;

/** `pid` and all its descendants (nginx's master and worker, a gateway's helpers). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${out[i]}/task/${task}/children`, 'utf8').trim();
        if (children) for (const child of children.split(' ')) out.push(Number(child));
      } catch {
        // the thread is gone
      }
    }
  }
  return out;
}

/**
 * CPU seconds (user + system, all threads) used so far by `pid` and its descendants. The difference
 * over a measurement is the server's cost of that load, which is steadier on a shared machine than
 * requests per second: it does not count time the server waited for a core.
 */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command name (which may contain spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of proc(5))
    } catch {
      // exited meanwhile
    }
  }
  return ticks / USER_HZ;
}

/** Resident set size of one process in bytes (VmRSS), or 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Threads of `pid` and its descendants: tells whether a gateway with workers really runs more of them. */
export function threadCount(pid: number): number {
  let threads = 0;
  for (const p of processTree(pid)) {
    try {
      const match = /^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      threads += match ? Number(match[1]) : 0;
    } catch {
      // exited meanwhile
    }
  }
  return threads;
}

/** Open sockets of one process (connections and listeners): shows how many connections it really holds. */
export function openSockets(pid: number): number {
  let count = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) count++;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return 0;
  }
  return count;
}
