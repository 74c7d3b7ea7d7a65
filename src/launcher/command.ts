import { realpathSync } from 'node:fs';
import { RampartError } from '../core/errors.ts';
import { GATEWAY_HEAP_DEFAULTS } from '../gateway/process/defaults.ts';
import { computeReadAllowList, isInside, listDirectory } from './allow-list.ts';
import type { PlannedProcess } from './plan.ts';

/** True when this module runs from the TypeScript sources (a checkout), false from the built dist/. */
export const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** The preload every child gets (sqlite-preload.ts), in the flavour this launcher runs as. */
export const SQLITE_PRELOAD = new URL(`./sqlite-preload${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url).href;

/**
 * The gateway, and only the gateway, may start worker threads (one listener per core with SO_REUSEPORT;
 * issue 3 §1). What that grants, measured on Node 24 (test/launcher/gateway-workers-permission.test.ts):
 * a worker started with the inherited `execArgv` (the default, and what the gateway does) runs under
 * the same permission model and allow-list as its process. But the model is carried by those
 * arguments, not inherited by the thread (Node's docs: "The model does not inherit to ... a worker
 * thread"; nodejs/node#62222): a worker started with `execArgv: []` is unrestricted. So `--allow-worker`
 * makes the gateway's permission model a seat belt for its own code only; code that can start a worker
 * with other arguments can leave it. Node prints a PERM0006 SecurityWarning saying so for every thread;
 * it is documented here and turned off for the gateway, and no other warning is.
 */
export const GATEWAY_WORKER_ARGS: readonly string[] = Object.freeze(['--allow-worker', '--disable-warning=PERM0006']);

/**
 * The gateway's V8 heap sizing (the reasons and measurements are in {@link GATEWAY_HEAP_DEFAULTS}):
 * a smaller young generation and an old generation that grows in proportion to what it keeps, for
 * the RSS target of issue 3. Memory only: no limit, so no heap size can make the process fail.
 */
export const GATEWAY_HEAP_ARGS: readonly string[] = Object.freeze([
  `--max-semi-space-size=${GATEWAY_HEAP_DEFAULTS.maxSemiSpaceMb}`,
  `--heap-growing-percent=${GATEWAY_HEAP_DEFAULTS.heapGrowingPercent}`,
]);

/**
 * The control plane, and only the control plane, may load native addons: its certificate authority
 * keeps the CA keys wrapped under the KEK with libsodium (sodium-native, core/kek.ts), which is an
 * addon. sodium-native's loader (require-addon) also probes `/etc/alpine-release` to pick a musl
 * build, so that one path is readable. What it grants: code in the control plane can load any addon
 * it can read (the project and the rampart package), and an addon runs outside the permission model.
 * The control plane runs only Rampart's own code; services and the gateway still cannot.
 */
export const CONTROL_ADDON_ARGS: readonly string[] = Object.freeze([
  '--allow-addons',
  '--allow-fs-read=/etc/alpine-release',
]);

export interface ChildCommandOptions {
  /** What every process may read before the carve-out (see allow-list.ts `readableRoots`). */
  roots: readonly string[];
  /** `<manifest dir>/.rampart`. */
  dataRoot: string;
  /** Pass `--conditions=rampart-source` so `rampart/sdk` resolves to the TypeScript sources. */
  fromSource: boolean;
  /** URL of the preload module. */
  preload?: string;
  list?: (dir: string) => readonly string[];
}

export interface ChildCommand {
  /** Node's arguments, the entry file last. */
  args: string[];
  /** Paths the allow-list had to leave out (names with `*`). */
  skipped: string[];
}

/**
 * The Node arguments that start one process with least privilege: the permission model on, reads
 * limited to the project and the rampart package minus every other process's data directory, writes
 * to its own data directory only; no child processes, addons, WASI or inspector (the model denies them
 * unless allowed, and nothing here allows them), and no worker threads except for the gateway (see
 * {@link GATEWAY_WORKER_ARGS}); `node:sqlite` guarded by the preload.
 * Throws LAUNCH_ERR_ENTRY when the entry file is outside what the process may read.
 *
 * What this buys: a service cannot read or write another's data by mistake, through a path an attacker
 * injected, or through a vulnerable dependency that trusts its input. What it does not: Node's docs
 * call the permission model a "seat belt" for trusted code, not a sandbox; "malicious code can bypass
 * the permission model". Symbolic links are followed even out of the allowed paths (the launcher's
 * data directories hold none, and a process may not create one), and the network is not limited in
 * Node 24. Isolation against hostile code is the job of `rampart deploy` (containers, NetworkPolicies).
 */
export function childCommand(plan: PlannedProcess, options: ChildCommandOptions): ChildCommand {
  const own = plan.runtime.dataDir;
  const { allow, skipped } = computeReadAllowList({
    roots: options.roots,
    hidden: options.dataRoot,
    own,
    list: options.list ?? listDirectory,
  });
  let entry: string;
  try {
    entry = realpathSync(plan.entry);
  } catch (cause) {
    throw new RampartError('LAUNCH_ERR_ENTRY', `${plan.name}: cannot find its entry file ${plan.entry}`, { cause });
  }
  if (!allow.some((path) => isInside(entry, path)) || isInside(entry, options.dataRoot)) {
    throw new RampartError(
      'LAUNCH_ERR_ENTRY',
      `${plan.name}: its entry file ${plan.entry} is outside the project; a process may read only the project and the rampart package`,
    );
  }
  return {
    args: [
      ...(options.fromSource ? ['--conditions=rampart-source'] : []),
      '--permission',
      ...allow.map((path) => `--allow-fs-read=${path}`),
      // The process's own /proc entry (not other processes'): prom-client reads its memory and file
      // descriptors there; without it those metrics read 0 and alerts on them could never fire.
      '--allow-fs-read=/proc/self',
      `--allow-fs-write=${own}`,
      ...(plan.kind === 'gateway' ? [...GATEWAY_WORKER_ARGS, ...GATEWAY_HEAP_ARGS] : []),
      ...(plan.kind === 'control' ? CONTROL_ADDON_ARGS : []),
      `--import=${options.preload ?? SQLITE_PRELOAD}`,
      entry,
    ],
    skipped,
  };
}
