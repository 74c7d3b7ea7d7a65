import { fstatSync } from 'node:fs';
import { RUNTIME_ENV } from '../core/runtime.ts';

export interface WatchLauncherOptions {
  /** How long the process's own SIGTERM handling may take before it is ended. Default 10 s. */
  graceMs?: number;
  env?: NodeJS.ProcessEnv;
}

const WATCHED = Symbol.for('rampart.watchLauncher');

/**
 * Stops this process when the launcher that started it is gone, even if the launcher was killed with
 * SIGKILL and could not stop its children. Every process `rampart start` runs must call it once at
 * start (components in their `main.ts`, services through the SDK).
 *
 * How: the launcher gives each child a stdin pipe it never writes to and never closes. When the
 * launcher dies, the kernel closes its end and the child reads end-of-file. The child then sends
 * SIGTERM to its own process group (itself and anything it started; the launcher made it a group
 * leader), so its usual shutdown handler runs (core/lifecycle.ts `onShutdown`), and exits with 1 if
 * that has not finished within `graceMs`.
 *
 * Does nothing (returns false) when the process was not started by the launcher (`RAMPART_RUNTIME`
 * unset) or stdin is not a pipe (a terminal, a file, /dev/null): nothing to watch. Safe to call twice.
 * The stdin handle is unref'd: watching never keeps the process alive by itself.
 */
export function watchLauncher(options: WatchLauncherOptions = {}): boolean {
  const env = options.env ?? process.env;
  if (env[RUNTIME_ENV] === undefined) return false;
  let stat: ReturnType<typeof fstatSync>;
  try {
    stat = fstatSync(0);
  } catch {
    return false;
  }
  if (!stat.isFIFO() && !stat.isSocket()) return false;
  const stdin = process.stdin as typeof process.stdin & { [WATCHED]?: true };
  if (stdin[WATCHED]) return true;
  stdin[WATCHED] = true;

  const graceMs = options.graceMs ?? 10_000;
  let gone = false;
  const onGone = () => {
    if (gone) return;
    gone = true;
    setTimeout(() => process.exit(1), graceMs).unref();
    try {
      process.kill(-process.pid, 'SIGTERM'); // the whole group: grandchildren too
    } catch {
      process.kill(process.pid, 'SIGTERM'); // not a group leader (started by hand or by a test)
    }
  };
  stdin.on('end', onGone);
  stdin.on('close', onGone);
  stdin.on('error', onGone);
  stdin.on('data', () => {}); // the launcher writes nothing; anything read is dropped
  stdin.resume();
  (stdin as unknown as { unref?: () => void }).unref?.();
  return true;
}
