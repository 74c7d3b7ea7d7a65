import { ManifestWatcher } from '../config/watch-manifest.ts';
import type { Logger } from '../core/logger.ts';
import { POLICY_DEFAULTS } from './policy/defaults.ts';

/** What set off a reload: SIGHUP, a change of the file, or a direct call. */
export type ManifestReloadTrigger = 'signal' | 'file' | 'manual';

/** A part of the control plane that follows the manifest (the policy store, the secrets' grants). */
export interface ManifestFollower {
  /** For the log when its reload throws. */
  name: string;
  /** Loads the manifest again; keeps its last good state when it does not load (logged by it). */
  reload(trigger: ManifestReloadTrigger): unknown;
}

export interface ManifestReloadsOptions {
  /** The manifest file. */
  file: string;
  /** Reloaded in this order, each on its own: one that throws does not keep the next from reloading. */
  followers: readonly ManifestFollower[];
  logger: Logger;
  /** Default POLICY_DEFAULTS.reloadDebounceMs. */
  debounceMs?: number;
  /** Default POLICY_DEFAULTS.rewatchMs. */
  rewatchMs?: number;
  /** Whose SIGHUP reloads. Default: this process. */
  signals?: Pick<NodeJS.Process, 'on' | 'off'>;
}

export interface ManifestReloads {
  /** Reloads every follower now. */
  reload(trigger: ManifestReloadTrigger): void;
  /** Stops watching the file and listening for SIGHUP. */
  close(): void;
}

/**
 * The control plane's one manifest watcher and one SIGHUP handler for every part that follows the
 * manifest: a change of the file (debounced, config/watch-manifest.ts) or SIGHUP reloads each follower
 * in turn, so the policy and the secrets' grants move together rather than on two watchers' timings.
 * Validating, keeping the last good state, logging and metrics are each follower's. Starts at once.
 */
export function followManifest(options: ManifestReloadsOptions): ManifestReloads {
  const { logger, followers } = options;
  const signals = options.signals ?? process;
  const reload = (trigger: ManifestReloadTrigger) => {
    for (const follower of followers) {
      try {
        follower.reload(trigger);
      } catch (err) {
        logger.error({ err, trigger, follower: follower.name }, 'manifest reload failed unexpectedly');
      }
    }
  };
  const watcher = new ManifestWatcher({
    file: options.file,
    onChange: () => reload('file'),
    debounceMs: options.debounceMs ?? POLICY_DEFAULTS.reloadDebounceMs,
    rewatchMs: options.rewatchMs ?? POLICY_DEFAULTS.rewatchMs,
    logger,
  });
  const onSignal = () => reload('signal');
  signals.on('SIGHUP', onSignal);
  watcher.watch();
  return {
    reload,
    close() {
      watcher.close();
      signals.off('SIGHUP', onSignal);
    },
  };
}
