import { hash } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { RampartError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { RATE_LIMIT_DEFAULTS } from './defaults.ts';
import { assertGcraInput, GCRA_EPOCH_MS, type GcraDecision, type GcraPolicy, gcraDecision } from './gcra.ts';
import { type RateLimitStoreMetrics, rateLimitStoreMetrics } from './metrics.ts';
import type { RateLimitBackend } from './store.ts';

/**
 * GCRA next to the data, in one script, so a decision is atomic across every gateway that shares the
 * Redis (Redis runs a script with nothing interleaved). Returns the decision, the TAT after it and the
 * server's clock, as `%.17g` strings: Lua numbers are doubles, and an integer reply would truncate them.
 *
 * The clock is Redis's `TIME`, not the caller's `now`: every gateway then measures against one clock,
 * so skew between gateway hosts cannot hand out extra quota (a gateway whose clock runs δ ahead would
 * see every TAT δ older and admit δ/interval more). Reading TIME before a write is allowed since Redis 5
 * (scripts replicate their effects; `replicate_commands` is only needed, and only exists, before 7).
 *
 * Times are milliseconds since GCRA_EPOCH_MS, as in the shared table (resolution: see there).
 *
 * The key expires when its TAT passes (`PX`): past that instant it carries no information, so idle keys
 * vanish without a sweep. A refused request writes nothing (it spends no quota).
 */
export const GCRA_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = (tonumber(t[1]) - ${GCRA_EPOCH_MS / 1000}) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
if now < tat + interval - period then
  return {0, string.format('%.17g', tat), string.format('%.17g', now)}
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', string.format('%d', math.max(1, math.ceil(tat - now))))
return {1, string.format('%.17g', tat), string.format('%.17g', now)}
`;

const SCRIPT_SHA = hash('sha1', GCRA_SCRIPT, 'hex');

export interface RedisStoreOptions {
  /** `redis://` or `rediss://` URL (credentials allowed; never logged). */
  url: string;
  /** `deny`: fail closed (the stage answers 503); `local`: decide with `local` while Redis is down. */
  onStoreDown: 'deny' | 'local';
  /** The fallback for `local`: this gateway's shared table (a per-gateway limit, exact across its workers). */
  local?: RateLimitBackend;
  logger: Logger;
  registry: Registry;
  /** Prefix of every key; default {@link RATE_LIMIT_DEFAULTS.redisKeyPrefix}. Tests use their own. */
  keyPrefix?: string;
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** How often a down store is probed (PING) to notice recovery; default the command timeout. */
  probeIntervalMs?: number;
}

/** The error a backend raises when it cannot decide; the stage turns it into 503 `ratelimit_store_down`. */
export function storeDownError(cause?: unknown): RampartError {
  return new RampartError('GW_ERR_RATE_LIMIT_STORE_DOWN', 'rate limit store unavailable', { status: 503, cause });
}

/**
 * Rate limits shared by several gateway processes through Redis: one EVALSHA per decision (EVAL when
 * the server answers NOSCRIPT, e.g. after a restart). A down Redis fails fast: commands are never
 * queued offline, in-flight ones are never resent (a resend could spend quota twice), and a command
 * has `commandTimeoutMs` to answer. Once a failure is seen the store counts as down and requests stop
 * going to Redis (no per-request timeout while it hangs); a PING probe and the client's own reconnect
 * bring it back. Each transition is logged once and counted.
 */
export class RedisRateLimitStore implements RateLimitBackend {
  readonly #client: Redis;
  readonly #options: RedisStoreOptions;
  readonly #prefix: string;
  readonly #metrics: RateLimitStoreMetrics;
  readonly #target: string;
  #down = false;
  #probe: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: RedisStoreOptions) {
    if (options.onStoreDown === 'local' && !options.local) {
      throw new RampartError('GW_ERR_RATE_LIMIT_CONFIG', 'rate limit store misconfigured', {
        detail: { reason: 'onStoreDown local needs a local backend' },
      });
    }
    const url = new URL(options.url);
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new RampartError('GW_ERR_RATE_LIMIT_CONFIG', 'rate limit store misconfigured', {
        detail: { reason: 'url must be redis:// or rediss://', protocol: url.protocol },
      });
    }
    this.#options = options;
    this.#prefix = options.keyPrefix ?? RATE_LIMIT_DEFAULTS.redisKeyPrefix;
    this.#target = `${url.protocol}//${url.host}`; // what logs may show: no user, no password
    this.#metrics = rateLimitStoreMetrics(options.registry);
    const commandTimeout = options.commandTimeoutMs ?? RATE_LIMIT_DEFAULTS.redisCommandTimeoutMs;
    this.#client = new Redis(options.url, {
      connectTimeout: options.connectTimeoutMs ?? RATE_LIMIT_DEFAULTS.redisConnectTimeoutMs,
      commandTimeout,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (attempt) =>
        Math.min(
          RATE_LIMIT_DEFAULTS.redisRetryBaseMs * 2 ** Math.min(attempt, 16),
          RATE_LIMIT_DEFAULTS.redisRetryMaxMs,
        ),
    });
    // Connection errors surface through failed commands and the probe; without a listener ioredis
    // would print them.
    this.#client.on('error', () => {});
    this.#client.on('ready', () => {
      if (this.#down) this.#markUp();
    });
    this.#metrics.up.set({ store: 'redis' }, 1);
  }

  /**
   * Connects, waiting at most the connect timeout: a gateway starts even when Redis is away, in the
   * down state (logged and counted), and recovers when Redis appears.
   */
  static async connect(options: RedisStoreOptions): Promise<RedisRateLimitStore> {
    const store = new RedisRateLimitStore(options);
    const waitMs = (options.connectTimeoutMs ?? RATE_LIMIT_DEFAULTS.redisConnectTimeoutMs) * 2;
    const ac = new AbortController();
    const ready = await Promise.race([
      once(store.#client, 'ready', { signal: ac.signal }).then(
        () => true,
        () => false,
      ),
      delay(waitMs, false, { signal: ac.signal }).catch(() => false),
    ]);
    ac.abort();
    if (!ready) store.#markDown(new Error(`not ready within ${waitMs} ms (status ${store.#client.status})`));
    return store;
  }

  /** Whether the store currently counts as down. */
  get down(): boolean {
    return this.#down;
  }

  take(routeId: string, key: string, policy: GcraPolicy, now: number): GcraDecision | Promise<GcraDecision> {
    assertGcraInput(policy, now);
    if (this.#down || this.#closed) return this.#fallback(routeId, key, policy, now);
    return this.#decide(routeId, key, policy).catch((err: unknown) => {
      this.#markDown(err);
      return this.#fallback(routeId, key, policy, now);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#probe);
    try {
      await Promise.race([this.#client.quit(), delay(this.#options.commandTimeoutMs ?? 250)]);
    } catch {
      // already gone
    }
    this.#client.disconnect();
  }

  /** The Redis key of (route, key): readable route, hashed caller (bounded length, no addresses or subjects in clear). */
  redisKey(routeId: string, key: string): string {
    return `${this.#prefix}${routeId}:${hash('sha256', `${routeId.length}:${routeId}${key}`, 'base64url').slice(0, 22)}`;
  }

  async #decide(routeId: string, key: string, policy: GcraPolicy): Promise<GcraDecision> {
    const redisKey = this.redisKey(routeId, key);
    const args = [String(policy.periodMs / policy.limit), String(policy.periodMs)];
    let reply: unknown;
    try {
      reply = await this.#client.evalsha(SCRIPT_SHA, 1, redisKey, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      reply = await this.#client.eval(GCRA_SCRIPT, 1, redisKey, ...args);
    }
    if (!Array.isArray(reply) || reply.length !== 3) throw new Error('unexpected script reply');
    const [allowed, tat, now] = [Number(reply[0]), Number(reply[1]), Number(reply[2])];
    if (!Number.isFinite(tat) || !Number.isFinite(now)) throw new Error('unexpected script reply');
    return gcraDecision(policy, allowed === 1, tat, now);
  }

  #fallback(routeId: string, key: string, policy: GcraPolicy, now: number): GcraDecision | Promise<GcraDecision> {
    if (this.#options.onStoreDown === 'local' && this.#options.local) {
      this.#metrics.fallbacks.inc({ store: 'redis', outcome: 'local' });
      return this.#options.local.take(routeId, key, policy, now);
    }
    this.#metrics.fallbacks.inc({ store: 'redis', outcome: 'denied' });
    throw storeDownError();
  }

  #markDown(err: unknown): void {
    if (this.#down || this.#closed) return;
    this.#down = true;
    this.#metrics.up.set({ store: 'redis' }, 0);
    this.#metrics.transitions.inc({ store: 'redis', to: 'down' });
    this.#options.logger.warn(
      { store: 'redis', target: this.#target, onStoreDown: this.#options.onStoreDown, err: describe(err) },
      'rate-limit store down',
    );
    const every =
      this.#options.probeIntervalMs ?? this.#options.commandTimeoutMs ?? RATE_LIMIT_DEFAULTS.redisCommandTimeoutMs;
    this.#probe = setInterval(() => {
      if (this.#client.status !== 'ready') return; // the client is reconnecting; 'ready' will tell
      this.#client.ping().then(
        () => this.#markUp(),
        () => {},
      );
    }, every);
    this.#probe.unref();
  }

  #markUp(): void {
    if (!this.#down || this.#closed) return;
    this.#down = false;
    clearInterval(this.#probe);
    this.#probe = undefined;
    this.#metrics.up.set({ store: 'redis' }, 1);
    this.#metrics.transitions.inc({ store: 'redis', to: 'up' });
    this.#options.logger.info({ store: 'redis', target: this.#target }, 'rate-limit store up');
  }
}

/** The part of an error that may be logged: its class and message, never the URL it may quote. */
function describe(err: unknown): { name: string; message: string } {
  return err instanceof Error
    ? { name: err.name, message: err.message.slice(0, 200) }
    : { name: 'unknown', message: String(err) };
}
