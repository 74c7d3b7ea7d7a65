import type { Registry } from 'prom-client';
import type { RateLimitStore } from '../../config/model.ts';
import type { Logger } from '../../core/logger.ts';
import { RedisRateLimitStore } from './redis-store.ts';
import { SharedRateLimitTable, type SharedTableTransferable } from './shared-table.ts';
import type { RateLimitBackend } from './store.ts';

export interface RateLimitBackendOptions {
  /**
   * The gateway's shared table, created once by the main thread (`SharedRateLimitTable.create()`) and
   * posted to every worker. Without it a private table is created: exact for this thread only.
   */
  shared?: SharedTableTransferable;
  logger: Logger;
  registry: Registry;
  /** Redis key prefix (tests); default RATE_LIMIT_DEFAULTS.redisKeyPrefix. */
  redisKeyPrefix?: string;
}

/**
 * The backend the manifest asks for (`gateway.rateLimit`):
 * - `memory`: the shared table, so a limit holds for the gateway as a whole across its worker threads;
 * - `redis`: one atomic script per decision, shared by every gateway process; when Redis is down,
 *   `deny` fails closed (503) and `local` decides with the shared table (then a limit holds per gateway
 *   process, not across processes).
 *
 * Resolves within about twice the Redis connect timeout even when Redis is away (it starts down).
 */
export async function createRateLimitBackend(
  config: RateLimitStore,
  options: RateLimitBackendOptions,
): Promise<RateLimitBackend> {
  const table = () => (options.shared ? SharedRateLimitTable.attach(options.shared) : SharedRateLimitTable.create());
  if (config.store === 'memory') return table();
  return RedisRateLimitStore.connect({
    url: config.url,
    onStoreDown: config.onStoreDown,
    ...(config.onStoreDown === 'local' ? { local: table() } : {}),
    logger: options.logger,
    registry: options.registry,
    ...(options.redisKeyPrefix === undefined ? {} : { keyPrefix: options.redisKeyPrefix }),
  });
}
