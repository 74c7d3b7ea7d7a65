import { Worker } from 'node:worker_threads';
import type { Manifest } from '../../config/model.ts';
import type { Logger } from '../../core/logger.ts';
import { Counter, Gauge, type Registry } from '../../core/metrics.ts';
import type { GatewayRuntime } from '../../core/runtime.ts';
import {
  type CrashHistory,
  DEFAULT_RESTART_POLICY,
  NO_CRASHES,
  onCrash,
  type RestartPolicy,
} from '../../launcher/restart-policy.ts';
import type { SharedTableTransferable } from '../rate-limit/shared-table.ts';
import { InThreadWorker, type PoolThread } from './in-thread-worker.ts';
import type { FromWorker, ReconfigureOutcome, ToWorker, WorkerData, WorkerMetrics } from './messages.ts';

/** The worker thread's entry, in the flavour this module runs as (TypeScript sources or built dist/). */
export const WORKER_ENTRY = new URL(`../worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/**
 * Platforms where Node accepts `reusePort` (SO_REUSEPORT with the kernel spreading connections; Node's
 * `net` docs: Linux 3.9+, FreeBSD 12+, Solaris 11.4, AIX 7.2.5+). Elsewhere (macOS, Windows) Node
 * refuses the option (nodejs/node#61018), and the BSD-style SO_REUSEPORT would not spread load anyway.
 */
const REUSE_PORT_PLATFORMS: ReadonlySet<string> = new Set(['linux', 'freebsd', 'sunos', 'aix']);

/**
 * How many workers to run for `gateway.workers` (0: one per available core), and whether they share
 * the port with SO_REUSEPORT. Where the platform cannot share a port, one worker serves, and `note`
 * says why (the caller logs it).
 */
export function workerPlan(
  configured: number,
  cores: number,
  platform: string,
): { size: number; reusePort: boolean; note: string | null } {
  const wanted = configured === 0 ? Math.max(1, cores) : configured;
  if (wanted > 1 && !REUSE_PORT_PLATFORMS.has(platform)) {
    return { size: 1, reusePort: false, note: `SO_REUSEPORT is not available on ${platform}: one worker serves` };
  }
  return { size: wanted, reusePort: wanted > 1, note: null };
}

export interface WorkerPoolOptions {
  /** Worker threads to keep running (≥ 1). */
  size: number;
  /** Workers listen with SO_REUSEPORT (see {@link workerPlan}). */
  reusePort: boolean;
  runtime: GatewayRuntime;
  manifest: Manifest;
  rateLimitTable: SharedTableTransferable;
  logger: Logger;
  registry: Registry;
  /** Decision events posted by a worker (JSON lines). */
  onDecisions: (lines: string, count: number) => void;
  /** A slot crashed too often (the restart policy gave up): the process should exit non-zero. */
  onGiveUp: (index: number) => void;
  /** Default: the launcher's policy (backoff with jitter; 5 crashes in 60 s is broken, not unlucky). */
  restartPolicy?: RestartPolicy;
  /** The thread entry; tests substitute a fixture. */
  entry?: URL;
  /**
   * Run the one worker in the calling thread instead of a worker thread ({@link InThreadWorker}):
   * one V8 isolate instead of two. Only with `size: 1`. Restarts work as for a thread when the start
   * fails; a crash while serving ends the process instead of the worker. Default false.
   */
  inThread?: boolean;
}

type SlotState = 'starting' | 'listening' | 'draining' | 'down';

interface Slot {
  readonly index: number;
  worker: PoolThread | null;
  state: SlotState;
  startedAt: number;
  history: CrashHistory;
  restartTimer: NodeJS.Timeout | null;
}

interface Pending<T> {
  readonly results: Map<number, T>;
  readonly expected: Set<number>;
  readonly resolve: () => void;
}

/**
 * The gateway's worker threads. Each runs one gateway (worker.ts) listening on the shared port with
 * SO_REUSEPORT, so the kernel spreads connections over them. A worker that exits unexpectedly is
 * logged, counted and restarted with backoff in the same slot; a slot that keeps crashing makes the
 * pool give up (`onGiveUp`) so the launcher's supervision takes over. One code path for any size,
 * one worker included.
 */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #slots: Slot[];
  readonly #policy: RestartPolicy;
  #manifest: Manifest;
  #generation = 1;
  #stopping = false;
  #requestId = 0;
  readonly #metricsRequests = new Map<number, Pending<WorkerMetrics>>();
  readonly #reconfigures = new Map<number, Pending<ReconfigureOutcome>>();
  readonly #restarts: Counter<'reason'>;

  constructor(options: WorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError('worker pool size must be ≥ 1');
    if (options.inThread && options.size !== 1) throw new RangeError('only a pool of one worker runs in-thread');
    this.#options = options;
    this.#manifest = options.manifest;
    this.#policy = options.restartPolicy ?? DEFAULT_RESTART_POLICY;
    this.#slots = Array.from({ length: options.size }, (_, index) => ({
      index,
      worker: null,
      state: 'down' as SlotState,
      startedAt: 0,
      history: NO_CRASHES,
      restartTimer: null,
    }));
    this.#restarts = new Counter({
      name: 'rampart_gateway_worker_restarts_total',
      help: 'Gateway worker threads that exited unexpectedly and were restarted, by reason (crash, exit).',
      labelNames: ['reason'],
      registers: [options.registry],
    });
    const slots = this.#slots;
    new Gauge({
      name: 'rampart_gateway_workers',
      help: 'Gateway worker threads by state (starting, listening, draining, down).',
      labelNames: ['state'],
      registers: [options.registry],
      collect() {
        for (const state of ['starting', 'listening', 'draining', 'down'] as const) {
          this.set({ state }, slots.filter((s) => s.state === state).length);
        }
      },
    });
  }

  get size(): number {
    return this.#slots.length;
  }

  /** The generation of the configuration the workers run (1 at start). */
  get generation(): number {
    return this.#generation;
  }

  /** Starts every worker; resolves when all listen, rejects if the pool gives up first. */
  start(): Promise<void> {
    for (const slot of this.#slots) this.#spawn(slot);
    return new Promise((resolve, reject) => {
      const check = setInterval(() => {
        if (this.ready()) {
          clearInterval(check);
          resolve();
        } else if (this.#stopping) {
          clearInterval(check);
          reject(new Error('gateway workers stopped before they were all listening'));
        }
      }, 20);
    });
  }

  /** True when every worker listens (the gateway's readiness). */
  ready(): boolean {
    return !this.#stopping && this.#slots.every((slot) => slot.state === 'listening');
  }

  /** Thread ids, by slot, of the workers currently running (tests, logs). */
  threadIds(): (number | null)[] {
    return this.#slots.map((slot) => slot.worker?.threadId ?? null);
  }

  /** Each live worker's registry as JSON; a worker that does not answer within `timeoutMs` is left out. */
  async collectMetrics(timeoutMs = 2_000): Promise<WorkerMetrics[]> {
    const id = ++this.#requestId;
    const results = await this.#ask(this.#metricsRequests, id, { type: 'metrics', id }, timeoutMs);
    return [...results.values()];
  }

  /**
   * Sends a new configuration to every worker and waits for each to swap (`gateway.reconfigure`).
   * Workers started later get it too. Resolves with each live worker's outcome by slot; a worker that
   * did not answer within `timeoutMs` (or exited meanwhile) is reported with an error.
   */
  async reconfigure(manifest: Manifest, timeoutMs = 10_000): Promise<Map<number, ReconfigureOutcome>> {
    const generation = this.#generation + 1;
    this.#manifest = manifest;
    this.#generation = generation;
    const results = await this.#ask(
      this.#reconfigures,
      generation,
      { type: 'reconfigure', generation, manifest },
      timeoutMs,
    );
    const outcomes = new Map<number, ReconfigureOutcome>();
    for (const slot of this.#slots) {
      if (slot.worker === null && !results.has(slot.index)) continue;
      outcomes.set(slot.index, results.get(slot.index) ?? { error: 'no answer', restartRequired: [] });
    }
    return outcomes;
  }

  /**
   * Stops: every worker drains (stops accepting, lets in-flight requests finish up to `graceMs`, closes
   * its gateway and hands over its last decision events) and exits; stragglers are terminated.
   */
  async drain(graceMs: number): Promise<void> {
    this.#stopping = true;
    const exits: Promise<void>[] = [];
    for (const slot of this.#slots) {
      if (slot.restartTimer) clearTimeout(slot.restartTimer);
      const worker = slot.worker;
      if (!worker) continue;
      slot.state = 'draining';
      exits.push(
        new Promise<void>((resolve) => {
          const deadline = setTimeout(() => {
            this.#options.logger.warn({ worker: slot.index }, 'gateway worker did not drain in time: terminating');
            void worker.terminate();
          }, graceMs + 2_000);
          worker.once('exit', () => {
            clearTimeout(deadline);
            resolve();
          });
        }),
      );
      this.#post(worker, { type: 'drain', graceMs });
    }
    await Promise.all(exits);
  }

  #spawn(slot: Slot): void {
    const data: WorkerData = {
      index: slot.index,
      runtime: this.#options.runtime,
      manifest: this.#manifest,
      generation: this.#generation,
      reusePort: this.#options.reusePort,
      rateLimitTable: this.#options.rateLimitTable,
    };
    const entry = this.#options.entry ?? WORKER_ENTRY;
    const worker: PoolThread = this.#options.inThread
      ? new InThreadWorker(entry, data)
      : new Worker(entry, { workerData: data, name: `gateway-${slot.index}` });
    slot.worker = worker;
    slot.state = 'starting';
    slot.startedAt = Date.now();
    let failed = false;
    worker.on('message', (message: FromWorker) => this.#onMessage(slot, message));
    worker.on('error', (err) => {
      failed = true;
      this.#options.logger.error({ err, worker: slot.index }, 'gateway worker failed');
    });
    worker.on('exit', (code) => {
      slot.worker = null;
      // Anything this worker still owed counts as missing, now rather than at the timeout.
      for (const pending of [...this.#metricsRequests.values(), ...this.#reconfigures.values()]) {
        if (pending.expected.delete(slot.index) && pending.expected.size === 0) pending.resolve();
      }
      if (this.#stopping) {
        slot.state = 'down';
        return;
      }
      slot.state = 'down';
      const reason = failed ? 'crash' : 'exit';
      const decision = onCrash(slot.history, slot.startedAt, Date.now(), this.#policy);
      slot.history = decision.history;
      if (decision.action === 'give-up') {
        this.#options.logger.fatal(
          { worker: slot.index, code, crashes: decision.history.crashes.length },
          'gateway worker keeps crashing: giving up',
        );
        this.#options.onGiveUp(slot.index);
        return;
      }
      this.#restarts.inc({ reason });
      this.#options.logger.error(
        { worker: slot.index, code, reason, restartInMs: decision.delayMs },
        'gateway worker exited: restarting',
      );
      slot.restartTimer = setTimeout(() => {
        slot.restartTimer = null;
        if (!this.#stopping) this.#spawn(slot);
      }, decision.delayMs);
    });
  }

  #onMessage(slot: Slot, message: FromWorker): void {
    switch (message.type) {
      case 'listening': {
        if (slot.state === 'starting') slot.state = 'listening';
        // The runtime object is the main thread's, updated on every renewal: its values are current.
        const { workloadSvid, edgeCertificate } = this.#options.runtime;
        if ((workloadSvid || edgeCertificate) && slot.worker) {
          this.#post(slot.worker, { type: 'credentials', workloadSvid, edgeCertificate });
        }
        return;
      }
      case 'decisions':
        this.#options.onDecisions(message.lines, message.count);
        return;
      case 'metrics':
        this.#answer(this.#metricsRequests, message.id, slot.index, message.metrics);
        return;
      case 'reconfigured':
        this.#answer(this.#reconfigures, message.generation, slot.index, message.result);
        return;
      case 'drained':
        return;
    }
  }

  #ask<T>(table: Map<number, Pending<T>>, id: number, message: ToWorker, timeoutMs: number): Promise<Map<number, T>> {
    const live = this.#slots.filter((slot) => slot.worker !== null);
    const results = new Map<number, T>();
    if (live.length === 0) return Promise.resolve(results);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        table.delete(id);
        resolve(results);
      };
      table.set(id, { results, expected: new Set(live.map((slot) => slot.index)), resolve: done });
      for (const slot of live) this.#post(slot.worker!, message);
    });
  }

  #answer<T>(table: Map<number, Pending<T>>, id: number, index: number, value: T): void {
    const pending = table.get(id);
    if (!pending?.expected.delete(index)) return;
    pending.results.set(index, value);
    if (pending.expected.size === 0) pending.resolve();
  }

  #post(worker: PoolThread, message: ToWorker): void {
    try {
      worker.postMessage(message);
    } catch (err) {
      // The worker is exiting; its exit handler settles what it owed.
      this.#options.logger.warn({ err }, 'message to gateway worker failed');
    }
  }
}
