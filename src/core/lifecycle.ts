import { watchLauncher } from '../launcher/parent-watch.ts';
import type { Logger } from './logger.ts';

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits 0 (1 if stopping failed). A second signal while
 * stopping exits at once: the operator asked twice. Every Rampart process uses this, so the launcher can
 * rely on one shutdown behavior. It also starts watching the launcher (when one started this process),
 * so the process stops itself if the launcher dies without stopping it.
 */
export function onShutdown(logger: Logger, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop(signal).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  watchLauncher();
}
