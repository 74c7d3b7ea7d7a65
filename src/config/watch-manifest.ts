import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { ConfigError } from './config-error.ts';
import { formatIssues } from './format.ts';

/**
 * The log fields of a reloaded manifest that failed to load: when it was refused as invalid, every
 * issue's code and the issues as text (paths relative to the manifest's folder); null when it failed
 * otherwise (unreadable, a bug), which the caller logs with the error itself.
 */
export function manifestIssueFields(err: unknown, file: string): { codes: string[]; issues: string } | null {
  if (!(err instanceof ConfigError)) return null;
  return {
    codes: err.issues.map((issue) => issue.code),
    issues: formatIssues(err.issues, { color: false, cwd: dirname(file) }),
  };
}

export interface ManifestWatcherOptions {
  /** The manifest file. */
  file: string;
  /** Runs once the file has been quiet for `debounceMs` after a change. */
  onChange: () => void;
  /** Quiet time after the last change event: an editor's save is several events. */
  debounceMs: number;
  /** Wait before watching again when the file cannot be watched (missing, or the watch failed). */
  rewatchMs: number;
  logger: Logger;
}

/**
 * Watches a manifest file for the components that reload it (the control plane's policy store and the
 * gateway's reloader): change events are debounced into one `onChange`; a save that renames a new file
 * over the old one, a watch error, or a file that is not there yet, makes it watch the path again (and
 * report a change, since the file may have changed while nobody watched). The watcher and its timers
 * never keep the process alive. Reloading, validating and keeping the last good manifest are the
 * caller's.
 */
export class ManifestWatcher {
  readonly #options: ManifestWatcherOptions;
  #watcher: FSWatcher | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #rewatch: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(options: ManifestWatcherOptions) {
    this.#options = options;
  }

  /** Starts watching (again); does nothing while watching or after `close()`. */
  watch(): void {
    if (this.#closed || this.#watcher) return;
    try {
      this.#watcher = watch(this.#options.file, { persistent: false }, (event) => {
        this.#schedule();
        // An editor that saves by renaming a new file over the old one leaves the watcher on the old
        // inode: watch the path again.
        if (event === 'rename') this.#rearm(0);
      });
      this.#watcher.on('error', () => this.#rearm(this.#options.rewatchMs));
    } catch (err) {
      this.#options.logger.debug({ err }, 'manifest not watchable yet');
      this.#rearm(this.#options.rewatchMs);
    }
  }

  /** Stops watching for good; a pending `onChange` does not run. */
  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#debounce) clearTimeout(this.#debounce);
    if (this.#rewatch) clearTimeout(this.#rewatch);
  }

  #rearm(delayMs: number): void {
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#closed || this.#rewatch) return;
    this.#rewatch = setTimeout(() => {
      this.#rewatch = null;
      this.watch();
      this.#schedule(); // the file may have changed while nobody watched
    }, delayMs);
    this.#rewatch.unref();
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      this.#options.onChange();
    }, this.#options.debounceMs);
    this.#debounce.unref();
  }
}
