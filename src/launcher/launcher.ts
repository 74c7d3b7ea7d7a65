import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { Manifest } from '../config/model.ts';
import { isLoopbackHost } from '../config/net.ts';
import { COMPONENT_SERVICE_NAMES, type ControlTarget, requestJoinToken } from '../control/api/index.ts';
import { CONTROL_FILES } from '../control/files.ts';
import { isRampartError, RampartError } from '../core/errors.ts';
import { createDevKek, KEK_ENV } from '../core/kek.ts';
import type { ControlEndpoint, ControlRuntime } from '../core/runtime.ts';
import { rampartPackageRoot, readableRoots } from './allow-list.ts';
import { checkManifestEnv, childEnv } from './child-env.ts';
import { childCommand, FROM_SOURCE } from './command.ts';
import { acquireLauncherLock, prepareDataDirs } from './data-dirs.ts';
import { waitForJoinToken } from './join-token-wait.ts';
import { type LogFormat, LogOutput } from './log-output.ts';
import {
  type Component,
  controlUrl,
  identitySettings,
  type PlannedProcess,
  planProcesses,
  startOrder,
} from './plan.ts';
import { freePort } from './ports.ts';
import { waitReady } from './readiness.ts';
import {
  type CrashHistory,
  DEFAULT_RESTART_POLICY,
  NO_CRASHES,
  onCrash,
  type RestartPolicy,
} from './restart-policy.ts';

/** Defaults, each with its reason. */
export const LAUNCHER_DEFAULTS = {
  /** A cold Node start with type stripping and a fastify app takes ~0.5 s; 30 s covers a slow laptop. */
  readyTimeoutMs: 30_000,
  /** Short enough that `rampart start` feels instant, long enough not to busy-wait. */
  readyIntervalMs: 100,
  /** Time each process gets to drain on SIGTERM before SIGKILL (Kubernetes' default is 30 s). */
  stopGraceMs: 10_000,
  /** stderr lines kept per process, shown when the launcher gives up on it. */
  tailLines: 20,
} as const;

export interface LauncherOptions {
  stdout: Writable;
  stderr: Writable;
  logFormat?: LogFormat;
  color?: boolean;
  /** Entry files of the components (default: src/<component>/main.ts of this package). Tests substitute fixtures. */
  entries?: Partial<Record<Component, string>>;
  restartPolicy?: Partial<RestartPolicy>;
  readyTimeoutMs?: number;
  readyIntervalMs?: number;
  stopGraceMs?: number;
  /** The environment children pick PATH, HOME, ... from. Default: process.env. */
  parentEnv?: NodeJS.ProcessEnv;
  /** Run children with `--conditions=rampart-source`. Default: whether this launcher runs from source. */
  fromSource?: boolean;
  /** Directory paths in messages are shown relative to. Default: process.cwd(). */
  cwd?: string;
  /** Node executable. Default: process.execPath. */
  execPath?: string;
  random?: () => number;
  now?: () => number;
  /**
   * Give every service and the gateway an SVID: a dev KEK for the control plane, a launcher
   * credential, a join token per process start. Default: on, unless `entries.control` replaces the
   * control plane (tests whose stand-in has no certificate authority).
   */
  workloadIdentity?: boolean;
  /**
   * Overrides of the certificate authority's lifetimes (SVIDs, edge certificates, clock skew), so a
   * test can watch renewals happen in seconds. Not a user setting: `rampart start` never sets it.
   */
  ca?: ControlRuntime['ca'];
}

/** A process the launcher runs, as tests and the banner see it. */
export interface ProcessInfo {
  name: string;
  kind: PlannedProcess['kind'];
  pid: number | null;
  adminPort: number;
  dataDir: string;
  /** Times it was restarted after a crash. */
  restarts: number;
  ready: boolean;
}

interface Supervised {
  plan: PlannedProcess;
  args: string[];
  env: Record<string, string>;
  child: ChildProcess | null;
  /** Settles when the current child has exited and its output has been read. */
  exited: Promise<void>;
  startedAt: number;
  history: CrashHistory;
  restartTimer: NodeJS.Timeout | null;
  restarts: number;
  ready: boolean;
  tail: string[];
}

/** Why the launcher stopped on its own: the process it gave up on and its last stderr lines. */
export interface LaunchFailure {
  process: string;
  reason: string;
  stderr: string[];
}

/**
 * Runs a whole system from its manifest, each component and service as its own OS process with least
 * privilege: its own data directory, the Node permission model, a minimal environment and one
 * variable, `RAMPART_RUNTIME` (core/runtime.ts). Starts them in order, each when the one before is
 * ready; restarts crashed ones with backoff and gives up on one that keeps crashing; stops them in
 * reverse order.
 *
 * ```ts
 * const launcher = new Launcher(manifest, { stdout, stderr });
 * await launcher.start();          // rejects (after stopping what started) if something never got ready
 * process.on('SIGINT', () => launcher.stop());
 * process.exitCode = await launcher.done;   // 0 after stop(), 1 after giving up
 * ```
 */
export class Launcher {
  /** Resolves with the exit code once every process is gone: 0 after `stop()`, 1 after a failure. */
  readonly done: Promise<number>;
  /** Set when the launcher gave up on a process or could not start one. */
  failure: LaunchFailure | null = null;

  readonly #manifest: Manifest;
  readonly #options: LauncherOptions;
  readonly #policy: RestartPolicy;
  readonly #names: string[];
  readonly #dataRoot: string;
  readonly #output: LogOutput;
  readonly #now: () => number;
  readonly #abort = new AbortController();
  readonly #processes = new Map<string, Supervised>();
  #resolveDone: (code: number) => void = () => {};
  #shutdown: Promise<void> | null = null;
  #forced: (() => void) | null = null;
  #forcedPromise: Promise<void>;
  #started = false;
  #releaseLock: () => void = () => {};
  #running = false;
  readonly #workloadIdentity: boolean;
  /** Random per start; handed to the control plane only. */
  readonly #credential = randomBytes(32).toString('base64url');

  constructor(manifest: Manifest, options: LauncherOptions) {
    this.#manifest = manifest;
    this.#options = options;
    this.#policy = { ...DEFAULT_RESTART_POLICY, ...options.restartPolicy };
    this.#names = startOrder(manifest);
    for (const service of Object.values(manifest.services)) checkManifestEnv(service.name, service.env);
    this.#dataRoot = join(manifest.dir, '.rampart');
    this.#now = options.now ?? Date.now;
    this.#workloadIdentity = options.workloadIdentity ?? options.entries?.control === undefined;
    if (!this.#workloadIdentity && manifest.gateway.tls.mode === 'auto' && options.entries?.gateway === undefined) {
      // The gateway would wait for a certificate no CA can issue (it refuses to start: gateway/main.ts).
      throw new RampartError(
        'LAUNCH_ERR_TLS_AUTO',
        '`tls: auto` takes the edge certificate from the control plane; it cannot run without workload identity',
      );
    }
    this.#output = new LogOutput({
      stdout: options.stdout,
      stderr: options.stderr,
      format: options.logFormat ?? 'pretty',
      color: options.color ?? false,
      names: this.#names,
    });
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    this.#forcedPromise = new Promise((resolve) => {
      this.#forced = resolve;
    });
  }

  /** The processes, in start order. */
  processes(): ProcessInfo[] {
    return [...this.#processes.values()].map((p) => ({
      name: p.plan.name,
      kind: p.plan.kind,
      pid: p.child?.pid ?? null,
      adminPort: p.plan.runtime.adminPort,
      dataDir: p.plan.runtime.dataDir,
      restarts: p.restarts,
      ready: p.ready,
    }));
  }

  /** The planned processes with their runtimes (after `start()` has begun). */
  plans(): PlannedProcess[] {
    return [...this.#processes.values()].map((p) => p.plan);
  }

  /**
   * Prepares the data directories and ports, then starts every process in order, each once the one
   * before answers `/readyz` with 200. Rejects with LAUNCH_ERR_* (after stopping whatever started)
   * when a process is not ready in time, is given up on, or the launcher is stopped meanwhile.
   */
  async start(): Promise<void> {
    if (this.#started) throw new RampartError('LAUNCH_ERR_STATE', 'the launcher was started already');
    this.#started = true;
    try {
      await this.#prepare();
      for (const proc of this.#processes.values()) {
        if (this.#shutdown) break;
        // Bounded like readiness: the control plane said it was ready just before.
        await this.#attest(proc, this.#now() + (this.#options.readyTimeoutMs ?? LAUNCHER_DEFAULTS.readyTimeoutMs));
        this.#spawn(proc);
        if (!(await this.#awaitReady(proc)) && !this.#shutdown) {
          const { adminPort } = proc.plan.runtime;
          const timeout = (this.#options.readyTimeoutMs ?? LAUNCHER_DEFAULTS.readyTimeoutMs) / 1000;
          this.#fail({
            process: proc.plan.name,
            reason: `${proc.plan.name} was not ready within ${timeout}s (http://127.0.0.1:${adminPort}/readyz never answered 200)`,
            stderr: [...proc.tail],
          });
        }
      }
    } catch (err) {
      if (!this.#shutdown) {
        this.#fail({ process: 'rampart', reason: err instanceof Error ? err.message : String(err), stderr: [] });
      }
    }
    if (this.#shutdown) {
      await this.#shutdown;
      if (this.failure) throw new RampartError('LAUNCH_ERR_START', this.failure.reason);
      throw new RampartError('LAUNCH_ERR_STOPPED', 'stopped before every process was ready');
    }
    this.#running = true;
    this.#output.banner(...this.#bannerParts());
  }

  /** Stops every process gracefully, in reverse start order; resolves when all are gone. */
  stop(): Promise<void> {
    return this.#stopAll(0);
  }

  /** Kills every process group at once with SIGKILL (a second Ctrl-C). `done` still resolves. */
  kill(): void {
    this.#forced?.();
    for (const proc of this.#processes.values()) {
      if (proc.child?.pid !== undefined && proc.child.exitCode === null && proc.child.signalCode === null) {
        killGroup(proc.child.pid, 'SIGKILL');
      }
    }
    void this.#stopAll(0);
  }

  async #prepare(): Promise<void> {
    const manifest = this.#manifest;
    prepareDataDirs(this.#dataRoot, this.#names);
    this.#releaseLock = acquireLauncherLock(this.#dataRoot);
    const dataRoot = realpathSync(this.#dataRoot);

    const reserved = new Set<number>([manifest.gateway.listen.port, manifest.gateway.admin.port]);
    if (manifest.identity.mode === 'builtin') reserved.add(manifest.identity.port);
    if (manifest.gateway.redirectHttp) reserved.add(manifest.gateway.redirectHttp.port);
    const allocate = async () => {
      for (;;) {
        const port = await freePort();
        if (!reserved.has(port)) {
          reserved.add(port);
          return port;
        }
      }
    };
    const admin: Record<string, number> = {};
    for (const name of this.#names) {
      admin[name] =
        name === 'gateway' && manifest.gateway.admin.port !== 0 ? manifest.gateway.admin.port : await allocate();
    }
    const service: Record<string, number> = {};
    for (const name of Object.keys(manifest.services)) service[name] = await allocate();
    const control = await allocate();

    const root = rampartPackageRoot();
    const entries: Record<Component, string> = {
      control: join(root, componentEntry('control')),
      identity: join(root, componentEntry('identity')),
      gateway: join(root, componentEntry('gateway')),
      ...this.#options.entries,
    };
    const parentEnv = this.#options.parentEnv ?? process.env;
    if (this.#workloadIdentity && !parentEnv[KEK_ENV]) {
      // The control plane runs under the permission model, where fsync is refused: the launcher,
      // unrestricted, creates the key file so that it is flushed to disk (core/kek.ts).
      createDevKek(join(dataRoot, 'control', CONTROL_FILES.kek)).kek.destroy();
    }
    const plans = planProcesses(manifest, {
      ports: { admin, service, control },
      dataRoot,
      entries,
      manifestFile: realpathIfExists(manifest.file),
      launcherCredential: this.#credential,
      mtls: this.#workloadIdentity,
      ca: this.#options.ca,
    });
    const roots = readableRoots(manifest.dir, root);
    for (const plan of plans) {
      const { args, skipped } = childCommand(plan, {
        roots,
        dataRoot,
        fromSource: this.#options.fromSource ?? FROM_SOURCE,
      });
      if (skipped.length > 0) {
        this.#output.warn(`${plan.name} cannot read paths whose names contain "*" (Node reads them as wildcards)`, {
          skipped,
        });
      }
      this.#processes.set(plan.name, {
        plan,
        args,
        env: childEnv(plan.runtime, plan.env, parentEnv, this.#componentEnv(plan, parentEnv)),
        child: null,
        exited: Promise.resolve(),
        startedAt: 0,
        history: NO_CRASHES,
        restartTimer: null,
        restarts: 0,
        ready: false,
        tail: [],
      });
    }
  }

  /** Variables a component gets besides the runtime: the production KEK, for the control plane only. */
  #componentEnv(plan: PlannedProcess, parentEnv: NodeJS.ProcessEnv): Record<string, string> {
    const kek = parentEnv[KEK_ENV];
    return plan.kind === 'control' && kek ? { [KEK_ENV]: kek } : {};
  }

  /**
   * Before a service, the gateway or the identity provider starts (and before every restart): a fresh
   * single-use join token for it alone, and the control plane's URL and bundle, go into its runtime.
   * The token is not kept in the plan. The previous token was spent by the process that exited, so a
   * process is never started without a new one: while the control plane cannot mint (it is
   * restarting, or refuses), this waits and retries with backoff (waitForJoinToken), logging each
   * change of reason once. A deadline bounds the wait during `start()`; a restart waits until a token
   * comes or the launcher stops (`LAUNCH_ERR_STOPPED`).
   */
  async #attest(proc: Supervised, deadline?: number): Promise<void> {
    const { plan } = proc;
    const runtime = plan.runtime;
    const workload = runtime.kind === 'service' || runtime.kind === 'gateway' || runtime.kind === 'identity';
    if (!this.#workloadIdentity || !workload) return;
    const name = runtime.kind === 'gateway' ? COMPONENT_SERVICE_NAMES.gateway : plan.name;
    const { token, endpoint } = await waitForJoinToken({
      mint: async () => {
        // Read per attempt: a control plane that restarted meanwhile may have rewritten its bundle.
        const target = this.#controlEndpoint();
        const { token } = await requestJoinToken(target, this.#credential, name);
        const endpoint: ControlEndpoint = { url: target.url, bundle: target.bundle, trustDomain: target.trustDomain };
        return { token, endpoint };
      },
      signal: this.#abort.signal,
      backoff: this.#policy,
      deadline,
      random: this.#options.random,
      now: this.#now,
      onWaiting: (reason) =>
        this.#output.warn(
          `${plan.name} cannot start yet: the control plane mints no join token (${reason}); retrying with backoff`,
          { process: plan.name, reason },
        ),
      onMinted: (attempts, waitedMs) =>
        this.#output.info(
          `${plan.name}: join token minted after ${attempts} attempts (${Math.round(waitedMs / 100) / 10} s); starting it`,
          { process: plan.name },
        ),
    }).catch((err: unknown) => {
      if (isRampartError(err, 'LAUNCH_ERR_JOIN_TOKEN')) {
        throw new RampartError('LAUNCH_ERR_JOIN_TOKEN', `${plan.name} could not start: ${err.message}`, { cause: err });
      }
      throw err;
    });
    const parentEnv = this.#options.parentEnv ?? process.env;
    proc.env = childEnv({ ...runtime, control: endpoint, joinToken: token }, plan.env, parentEnv);
  }

  /** Re-reads the bundle each time: after a CA rotation the control plane's certificate has a new issuer. */
  #controlEndpoint(): ControlEndpoint & ControlTarget {
    const plan = this.#processes.get('control')?.plan;
    if (plan?.runtime.kind !== 'control') throw new RampartError('LAUNCH_ERR_START', 'no control plane');
    const bundle = readFileSync(join(plan.runtime.dataDir, CONTROL_FILES.bundle), 'utf8');
    return { url: controlUrl(plan.runtime.port), bundle, trustDomain: this.#manifest.trustDomain };
  }

  #spawn(proc: Supervised): void {
    if (this.#shutdown) return; // nothing starts once stopping began: stopAll may have passed it already
    const { plan } = proc;
    proc.ready = false;
    proc.startedAt = this.#now();
    const child = spawn(this.#options.execPath ?? process.execPath, proc.args, {
      cwd: plan.runtime.dataDir,
      env: proc.env,
      // stdin: a pipe the launcher never writes to nor closes; the child sees it close when the
      // launcher dies, however it dies (parent-watch.ts).
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group (and session): signals reach the whole group, grandchildren included,
      // and a terminal's Ctrl-C reaches only the launcher, which stops everything in order.
      detached: true,
    });
    proc.child = child;
    child.stdin?.on('error', () => {});
    const remember = (line: string) => {
      proc.tail.push(line);
      if (proc.tail.length > LAUNCHER_DEFAULTS.tailLines) proc.tail.shift();
    };
    if (child.stdout) this.#output.attach(plan.name, child.stdout, 'stdout');
    if (child.stderr) this.#output.attach(plan.name, child.stderr, 'stderr', remember);
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));

    proc.exited = new Promise<void>((resolve) => {
      let settled = false;
      const finish = async (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (settled) return;
        settled = true;
        // Whatever the process left behind in its group goes with it.
        if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
        await Promise.race([closed, delay(1_000)]);
        child.stdin?.destroy();
        resolve();
        this.#onExit(proc, child, code, signal, error);
      };
      child.once('exit', (code, signal) => void finish(code, signal));
      child.once('error', (error) => void finish(null, null, error));
    });
  }

  #onExit(proc: Supervised, child: ChildProcess, code: number | null, signal: string | null, error?: Error): void {
    if (proc.child !== child) return;
    proc.ready = false;
    if (this.#shutdown) return;
    const name = proc.plan.name;
    const how = error
      ? `could not start (${error.message})`
      : signal
        ? `was killed by ${signal}`
        : `exited with code ${code}`;
    const decision = onCrash(proc.history, proc.startedAt, this.#now(), this.#policy, this.#options.random);
    proc.history = decision.history;
    if (decision.action === 'give-up') {
      const crashes = decision.history.crashes.length;
      const window = Math.round(this.#policy.windowMs / 1000);
      this.#fail({
        process: name,
        reason: `${name} ${how}; it crashed ${crashes} times within ${window}s, giving up`,
        stderr: [...proc.tail],
      });
      return;
    }
    this.#output.warn(`${name} ${how}; restarting in ${decision.delayMs} ms`, { process: name });
    proc.restartTimer = setTimeout(() => {
      proc.restartTimer = null;
      if (this.#shutdown) return;
      proc.restarts += 1;
      void this.#restart(proc);
    }, decision.delayMs);
  }

  /**
   * Starts a crashed process again once it has a fresh join token. Waiting for the token is not a
   * crash: it spends none of the restart budget, and a stop during the wait starts nothing.
   */
  async #restart(proc: Supervised): Promise<void> {
    const name = proc.plan.name;
    try {
      await this.#attest(proc);
    } catch (err) {
      if (this.#shutdown || isRampartError(err, 'LAUNCH_ERR_STOPPED')) return;
      this.#fail({
        process: name,
        reason: `${name} could not be restarted: ${err instanceof Error ? err.message : String(err)}`,
        stderr: [...proc.tail],
      });
      return;
    }
    if (this.#shutdown) return;
    this.#spawn(proc);
    // During start() the start loop is already waiting for this process; afterwards, say when it is back.
    if (this.#running) {
      const ready = await this.#awaitReady(proc);
      if (ready) this.#output.info(`${name} is ready again`, { process: name });
      else if (!this.#shutdown) this.#output.warn(`${name} was restarted but is not ready`, { process: name });
    }
  }

  /** Reports a failure (the process, why, its last stderr lines) and stops everything with exit code 1. */
  #fail(failure: LaunchFailure): void {
    this.failure = failure;
    this.#output.failure(failure.process, failure.reason, failure.stderr);
    void this.#stopAll(1);
  }

  /** Polls the process's `/readyz`: true once it answers 200, false after the timeout or when stopping. */
  async #awaitReady(proc: Supervised): Promise<boolean> {
    try {
      const ready = await waitReady(`http://127.0.0.1:${proc.plan.runtime.adminPort}/readyz`, {
        intervalMs: this.#options.readyIntervalMs ?? LAUNCHER_DEFAULTS.readyIntervalMs,
        timeoutMs: this.#options.readyTimeoutMs ?? LAUNCHER_DEFAULTS.readyTimeoutMs,
        signal: this.#abort.signal,
      });
      if (ready) proc.ready = true;
      return ready;
    } catch {
      return false; // aborted: the launcher is stopping
    }
  }

  #stopAll(code: number): Promise<void> {
    if (this.#shutdown) return this.#shutdown;
    this.#abort.abort(new RampartError('LAUNCH_ERR_STOPPED', 'stopping'));
    this.#shutdown = (async () => {
      for (const proc of this.#processes.values()) {
        if (proc.restartTimer) clearTimeout(proc.restartTimer);
        proc.restartTimer = null;
      }
      const grace = this.#options.stopGraceMs ?? LAUNCHER_DEFAULTS.stopGraceMs;
      for (const proc of [...this.#processes.values()].reverse()) {
        await this.#stopOne(proc, grace);
      }
      this.#releaseLock();
      this.#output.info(code === 0 ? 'stopped' : 'stopped after a failure');
      this.#output.close();
      this.#resolveDone(code);
    })();
    return this.#shutdown;
  }

  async #stopOne(proc: Supervised, graceMs: number): Promise<void> {
    const child = proc.child;
    if (!child || child.pid === undefined) return;
    if (child.exitCode === null && child.signalCode === null) {
      killGroup(child.pid, 'SIGTERM');
      const timer = delay(graceMs, 'timeout' as const, { ref: false });
      const outcome = await Promise.race([proc.exited.then(() => 'exited' as const), timer, this.#forcedPromise]);
      if (outcome !== 'exited') {
        if (outcome === 'timeout') {
          this.#output.warn(`${proc.plan.name} did not stop within ${graceMs / 1000}s; killing it`, {
            process: proc.plan.name,
          });
        }
        killGroup(child.pid, 'SIGKILL');
      }
    }
    await proc.exited;
  }

  #bannerParts(): [string, Record<string, unknown>] {
    const manifest = this.#manifest;
    const { host, port } = manifest.gateway.listen;
    const scheme = manifest.gateway.tls.mode === 'off' ? 'http' : 'https';
    const auto = manifest.gateway.tls.mode === 'auto';
    // With `tls: auto` the certificate names localhost on loopback (control/api/edge-routes.ts): show
    // the URL a browser or curl verifies without complaint.
    const shownHost =
      host === '0.0.0.0' || host === '::' || (auto && isLoopbackHost(host))
        ? auto
          ? 'localhost'
          : '127.0.0.1'
        : host.includes(':')
          ? `[${host}]`
          : host;
    const gateway = `${scheme}://${shownHost}:${port}`;
    // The local CA's certificates, for clients of a `tls: auto` gateway (the control plane rewrites the
    // file when the CA rotates; during a rotation it holds both CAs).
    const bundle = relative(this.#options.cwd ?? process.cwd(), join(this.#dataRoot, 'control', CONTROL_FILES.bundle));
    const trust = auto ? `--cacert ${bundle} ` : '';
    const issuer = identitySettings(manifest).issuer;
    const admin: Record<string, string> = {};
    for (const proc of this.#processes.values()) {
      admin[proc.plan.name] = `http://127.0.0.1:${proc.plan.runtime.adminPort}`;
    }
    const route = manifest.routes.find((r) => r.auth.kind === 'none' && r.methods.includes('GET'));
    const example = route ? `curl ${trust}${gateway}${examplePath(route.path.segments)}` : null;
    const width = Math.max(...Object.keys(admin).map((name) => name.length));
    const lines = [
      '',
      `Rampart is running: ${this.#processes.size} processes ready.`,
      '',
      `  gateway   ${gateway}`,
      `  issuer    ${issuer}${manifest.identity.mode === 'external' ? ' (external)' : ''}`,
      // Never system-wide: whoever holds the CA's keys could then impersonate any site (architecture.md).
      ...(auto ? [`  trust     ${bundle}  (the local CA, for curl --cacert; not for your system's trust store)`] : []),
      '',
      '  health and metrics (loopback only):',
      ...Object.entries(admin).map(([name, url]) => `    ${name.padEnd(width)}  ${url}/readyz  ${url}/metrics`),
      '',
      'Next:',
      ...(example ? [`  ${example}`] : []),
      `  rampart check ${relative(this.#options.cwd ?? process.cwd(), manifest.file) || manifest.file}`,
      '',
      'Ctrl-C stops everything.',
      '',
    ];
    return [
      lines.join('\n'),
      { gateway, issuer, admin, processes: this.processes(), ...(auto ? { trustBundle: bundle } : {}) },
    ];
  }
}

function realpathIfExists(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** The component entry file inside the package, in the flavour this launcher runs as. */
function componentEntry(component: Component): string {
  return FROM_SOURCE ? join('src', component, 'main.ts') : join('dist', component, 'main.js');
}

/** A concrete path for a route pattern, for the example curl: `*` → `1`, a trailing `**` dropped. */
export function examplePath(segments: readonly string[]): string {
  const parts = segments.filter((s) => s !== '**').map((s) => (s === '*' ? '1' : s));
  return `/${parts.join('/')}`;
}

/** Sends `signal` to a process group; false when the group is gone already (or not ours to signal). */
export function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}
