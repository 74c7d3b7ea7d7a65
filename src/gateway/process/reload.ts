import { createHash } from 'node:crypto';
import { loadManifest } from '../../config/load.ts';
import type { GatewayConfig, Manifest } from '../../config/model.ts';
import { ManifestWatcher, manifestIssueFields } from '../../config/watch-manifest.ts';
import type { Logger } from '../../core/logger.ts';
import { Counter, Gauge, type Registry } from '../../core/metrics.ts';
import { GATEWAY_PROCESS_DEFAULTS } from './defaults.ts';
import type { ReconfigureOutcome } from './messages.ts';

/**
 * Settings the main thread and the workers set up once at start, besides those the gateway itself
 * reports (gateway.ts `reconfigure`: listener, TLS, workers, header size): the admin listener, and the
 * rate-limit store, made once per worker so that limits survive reloads.
 */
const RESTART_ONLY: readonly (keyof GatewayConfig)[] = ['admin', 'rateLimit'];

export type ReloadResult = 'success' | 'unchanged' | 'error';

export interface ReloaderOptions {
  /** The manifest file (the runtime's `manifestFile`). */
  file: string;
  /** The manifest the gateway started with. */
  initial: Manifest;
  /** Hands a validated manifest to the workers; resolves with each worker's outcome. */
  apply: (manifest: Manifest) => Promise<ReadonlyMap<number, ReconfigureOutcome>>;
  logger: Logger;
  registry: Registry;
  /** Default: `loadManifest`. */
  load?: (file: string) => Manifest;
  debounceMs?: number;
}

/**
 * Reloads the manifest on demand (SIGHUP) and when the file changes: loads and validates it
 * (`loadManifest`); a manifest with issues is refused, logged with every issue, and the last good one
 * keeps serving; a valid one is sent to every worker, each of which swaps its pipeline atomically
 * (requests in flight finish on the configuration they started with). If any worker cannot swap, all
 * are put back on the last good configuration, so workers never disagree about the rules.
 *
 * Reloads run one at a time; a trigger during a reload runs one more reload after it.
 */
export class ConfigReloader {
  readonly #options: ReloaderOptions;
  readonly #load: (file: string) => Manifest;
  #current: Manifest;
  #hash: string;
  #running: Promise<ReloadResult> | null = null;
  #next: Promise<ReloadResult> | null = null;
  readonly #watcher: ManifestWatcher;
  readonly #reloads: Counter<'result'>;
  readonly #info: Gauge<'sha256'>;
  readonly #generation: Gauge;
  readonly #lastSuccessful: Gauge;
  readonly #lastSuccessTime: Gauge;

  constructor(options: ReloaderOptions) {
    this.#options = options;
    this.#load = options.load ?? ((file) => loadManifest(file));
    this.#watcher = new ManifestWatcher({
      file: options.file,
      onChange: () => void this.reload('file'),
      debounceMs: options.debounceMs ?? GATEWAY_PROCESS_DEFAULTS.reloadDebounceMs,
      rewatchMs: GATEWAY_PROCESS_DEFAULTS.rewatchMs,
      logger: options.logger,
    });
    this.#current = options.initial;
    this.#hash = manifestHash(options.initial);
    const registers = [options.registry];
    this.#reloads = new Counter({
      name: 'rampart_gateway_config_reload_total',
      help: 'Configuration reloads by result: success, unchanged (nothing to apply), error (kept the last good one).',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['success', 'unchanged', 'error'] as const) this.#reloads.inc({ result }, 0);
    this.#info = new Gauge({
      name: 'rampart_gateway_config_info',
      help: 'The configuration in force: 1 for the SHA-256 (first 16 hex digits) of the normalized manifest.',
      labelNames: ['sha256'],
      registers,
    });
    this.#generation = new Gauge({
      name: 'rampart_gateway_config_generation',
      help: 'Configurations applied since start: 1 at start, one more per successful reload.',
      registers,
    });
    this.#lastSuccessful = new Gauge({
      name: 'rampart_gateway_config_last_reload_successful',
      help: '1 when the last reload attempt succeeded (or none was made), 0 when it was refused.',
      registers,
    });
    this.#lastSuccessTime = new Gauge({
      name: 'rampart_gateway_config_last_reload_success_timestamp_seconds',
      help: 'When the configuration in force was applied (start or last successful reload).',
      registers,
    });
    this.#info.set({ sha256: this.#hash }, 1);
    this.#generation.set(1);
    this.#lastSuccessful.set(1);
    this.#lastSuccessTime.set(Date.now() / 1000);
  }

  /** The manifest in force. */
  get current(): Manifest {
    return this.#current;
  }

  /** Short SHA-256 of the normalized manifest in force. */
  get hash(): string {
    return this.#hash;
  }

  /** Reloads now (or right after the reload in progress). */
  reload(trigger: 'signal' | 'file' | 'manual' = 'manual'): Promise<ReloadResult> {
    if (this.#running) {
      // Coalesce: however many triggers arrive during a reload, one more reload follows it.
      this.#next ??= this.#running.then(() => {
        this.#next = null;
        return this.reload(trigger);
      });
      return this.#next;
    }
    this.#running = this.#reloadOnce(trigger).finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  /** Watches the manifest file: a change (debounced) reloads. */
  watch(): void {
    this.#watcher.watch();
  }

  /** Stops watching; waits for a reload in progress. */
  async close(): Promise<void> {
    this.#watcher.close();
    await this.#running?.catch(() => {});
  }

  async #reloadOnce(trigger: string): Promise<ReloadResult> {
    const { logger, file } = this.#options;
    let next: Manifest;
    try {
      next = this.#load(file);
    } catch (err) {
      this.#refused();
      const issues = manifestIssueFields(err, file);
      if (issues) {
        logger.error({ trigger, ...issues }, 'manifest reload refused: keeping the last good configuration');
      } else {
        logger.error({ err, trigger }, 'manifest reload failed: keeping the last good configuration');
      }
      return 'error';
    }
    const hash = manifestHash(next);
    if (hash === this.#hash) {
      this.#reloads.inc({ result: 'unchanged' });
      this.#lastSuccessful.set(1);
      logger.info({ trigger, sha256: hash }, 'manifest unchanged');
      return 'unchanged';
    }
    const previous = this.#current;
    const outcomes = await this.#options.apply(next);
    const errors = [...outcomes].filter(([, outcome]) => outcome.error !== null);
    if (errors.length > 0) {
      logger.error(
        { trigger, workers: Object.fromEntries(errors.map(([index, outcome]) => [index, outcome.error])) },
        'manifest reload failed in a worker: returning every worker to the last good configuration',
      );
      const back = [...(await this.#options.apply(previous))].filter(([, outcome]) => outcome.error !== null);
      if (back.length > 0) {
        logger.error(
          { workers: Object.fromEntries(back.map(([i, o]) => [i, o.error])) },
          'rollback failed in a worker',
        );
      }
      this.#refused();
      return 'error';
    }
    const pending = new Set<string>();
    for (const outcome of outcomes.values()) for (const path of outcome.restartRequired) pending.add(path);
    for (const key of RESTART_ONLY) {
      if (JSON.stringify(previous.gateway[key]) !== JSON.stringify(next.gateway[key])) pending.add(`gateway.${key}`);
    }
    this.#current = next;
    this.#hash = hash;
    this.#info.reset();
    this.#info.set({ sha256: hash }, 1);
    this.#generation.inc();
    this.#reloads.inc({ result: 'success' });
    this.#lastSuccessful.set(1);
    this.#lastSuccessTime.set(Date.now() / 1000);
    logger.info({ trigger, sha256: hash, routes: next.routes.length }, 'manifest reloaded');
    if (pending.size > 0) {
      logger.warn(
        { settings: [...pending].sort() },
        'these settings changed but take effect only when the gateway restarts',
      );
    }
    return 'success';
  }

  #refused(): void {
    this.#reloads.inc({ result: 'error' });
    this.#lastSuccessful.set(0);
  }
}

/**
 * SHA-256 (first 16 hex digits) of the normalized manifest: anything the gateway would enforce
 * differently changes it (so do source positions, which routes keep for messages).
 */
export function manifestHash(manifest: Manifest): string {
  return createHash('sha256').update(JSON.stringify(manifest)).digest('hex').slice(0, 16);
}
