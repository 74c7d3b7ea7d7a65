import { inspect } from 'node:util';
import { Agent, request } from 'undici';
import { spiffeServerCheck } from '../control/api/client.ts';
import { COMPONENT_SERVICE_NAMES } from '../control/api/defaults.ts';
import type { CurrentSvid } from '../control/api/svid-source.ts';
import { type CachedSecret, createSecretCache } from '../control/secrets/client-cache.ts';
import { SECRET_NAME } from '../control/secrets/defaults.ts';
import { SEC_ERRORS, secError } from '../control/secrets/errors.ts';
import { RampartError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { Counter, type Registry } from '../core/metrics.ts';
import type { ControlEndpoint } from '../core/runtime.ts';
import { serviceSpiffeId } from '../core/spiffe.ts';

/**
 * `svc.secrets.get(name)`: a service reads the secrets the manifest grants it (issue 6 "SDK") from the
 * control plane, over mutual TLS with its current SVID, through a short cache that follows rotation
 * (control/secrets/client-cache.ts). Only this file's imports run inside services: no libsodium (services
 * may not load native addons), so nothing here imports the secrets service or the control API's index.
 */

/** Stable codes of the SDK's own secret failures; the control plane's SEC_ERR_* codes pass through as they are. */
export const SDK_SECRETS_ERRORS = {
  /** The service has no control plane (started without one, in tests), or `get` ran before `start()`. */
  noControlPlane: 'SDK_ERR_SECRETS_NO_CONTROL_PLANE',
  /** The control plane could not be reached in time or answered something unusable, and nothing cached could stand in. */
  unavailable: 'SDK_ERR_SECRETS_UNAVAILABLE',
  /**
   * The control plane refused the read (401, 403 or 404) without a code this client passes on: an
   * answer, like SEC_ERR_FORBIDDEN, so nothing cached is served in its place. `status` is the answer's.
   */
  refused: 'SDK_ERR_SECRETS_REFUSED',
} as const;

/**
 * What one read sent to the control plane came to: the `result` label of
 * `rampart_service_secret_reads_total`, and whether a cached value may stand in for it.
 *
 * | result | answer | a cached value |
 * | --- | --- | --- |
 * | `ok` | 200 with a version and a value | replaced |
 * | `refused` | 401 (the SVID refused) or 403 (not granted, or no longer) | dropped and zeroed |
 * | `not_found` | 404 (granted but never set) | dropped and zeroed |
 * | `unavailable` | 5xx, 408, 429: the control plane answered that it cannot serve now | served stale, within the window |
 * | `unreachable` | no answer: connection refused or reset, TLS failure, timeout | served stale, within the window |
 * | `bad_answer` | another status, a body that is not JSON or too large, a 200 without a version or value | served stale, within the window |
 *
 * A refusal is an answer, not an outage: serving the last value after it would keep a revoked grant
 * working for the whole stale window.
 */
export const SECRET_READ_RESULTS = ['ok', 'refused', 'not_found', 'unavailable', 'unreachable', 'bad_answer'] as const;
export type SecretReadResult = (typeof SECRET_READ_RESULTS)[number];

/** Client settings, each with its reason. */
export const SDK_SECRETS_DEFAULTS = {
  /**
   * One read, connect to last byte. A read is a few milliseconds (an indexed query, a decryption, an
   * audit append); 5 s covers a control plane under load or an audit log slow to acknowledge (its own
   * timeout is 2 s) and leaves room inside the 10 s default of a `svc.call` deadline.
   */
  timeoutMs: 5_000,
  /**
   * Keep-alive connections to the control plane: a miss on a warm connection skips the TLS handshake.
   * Misses are rare (one per secret per cache lifetime), so a few connections serve every burst.
   */
  connections: 4,
  /** Largest answer read: a 64 KiB value (SECRETS_DEFAULTS.maxValueBytes) in base64 plus metadata. */
  maxResponseBytes: 96 * 1024,
} as const;

/** A secret as `get` returns it. Logging it (pino, console, JSON) shows its name and version, never the value. */
export interface Secret {
  readonly name: string;
  readonly version: number;
  /** The value's bytes. The caller owns them: zero them (`value.fill(0)`) when done, if it can. */
  readonly value: Buffer;
  /** True when served past its cache lifetime because the control plane could not be reached. */
  readonly stale: boolean;
  /** The value as UTF-8 text (a password, an API key). Strings cannot be zeroed: prefer `value` when you can. */
  text(): string;
}

export interface ServiceSecretsOptions {
  /** How long a value is served from the cache (default SECRETS_DEFAULTS.cacheTtlMs: 30 s); rotation shows within it. */
  ttlMs?: number;
  /** How long past its lifetime a value may be served while the control plane is unreachable (default 5 min). */
  maxStaleMs?: number;
  /** Default {@link SDK_SECRETS_DEFAULTS.timeoutMs}. */
  timeoutMs?: number;
}

export interface ServiceSecrets {
  /**
   * The current value of `name`, from the cache or the control plane. Rejects with the control plane's
   * code (SEC_ERR_FORBIDDEN: not granted to this service; SEC_ERR_NOT_FOUND: granted but never set;
   * SEC_ERR_AUDIT_UNAVAILABLE: the read could not be audited), SEC_ERR_NAME for a name no manifest can
   * declare, or one of {@link SDK_SECRETS_ERRORS}.
   */
  get(name: string): Promise<Secret>;
  /** Called when a refresh brings another version than the cached one (reconnect a pool with a new password). */
  onRotate(listener: (name: string, change: { from: number; to: number }) => void): void;
  /** Drops and zeroes every cached value and closes the connections. */
  close(): Promise<void>;
}

export interface ServiceSecretsInit extends ServiceSecretsOptions {
  /** The control plane, or null when the service runs without one. */
  control: ControlEndpoint | null;
  /** The service's current SVID (null before `start()`). */
  svid: () => CurrentSvid | null;
  /** Rotations are logged (name and versions, never values). */
  logger?: Logger;
  /** The cache's clock (tests). */
  now?: () => number;
  /**
   * Where `rampart_service_secret_reads_total{result}` ({@link SecretReadResult}) and
   * `rampart_service_secret_stale_served_total` are registered (the service's registry); none when absent.
   */
  registry?: Registry;
}

/** The codes a refusal from the control plane may carry to the caller; anything else is "unavailable". */
const PASSED_CODE = /^(SEC_ERR_[A-Z_]{1,40}|CA_ERR_API_[A-Z_]{1,40})$/;

function unavailable(detail: Record<string, unknown>, cause?: unknown, status = 503): RampartError {
  return new RampartError(SDK_SECRETS_ERRORS.unavailable, 'secrets unavailable', { status, detail, cause });
}

/** Answers that are the control plane's decision about this caller and name, not an outage. */
const REFUSAL_STATUSES: ReadonlySet<number> = new Set([401, 403, 404]);

type ReadOutcome =
  | { result: 'ok'; version: number; value: Buffer }
  | { result: Exclude<SecretReadResult, 'ok'>; error: RampartError };

/**
 * The body of an answer, bounded by SDK_SECRETS_DEFAULTS.maxResponseBytes, or why it could not be read.
 * The chunks are zeroed: a 200's body holds the value.
 */
async function readBody(res: Awaited<ReturnType<typeof request>>): Promise<Buffer | 'network' | 'too large'> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      chunks.push(chunk as Buffer);
      if (size > SDK_SECRETS_DEFAULTS.maxResponseBytes) {
        res.body.destroy();
        return 'too large';
      }
    }
    return Buffer.concat(chunks);
  } catch {
    return 'network';
  } finally {
    for (const chunk of chunks) chunk.fill(0);
  }
}

/** The JSON object in `raw`, or null. No error is kept: V8's message quotes the text, which may be the value. */
function parseBody(raw: Buffer): Record<string, unknown> | null {
  try {
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** The client's metrics, or no-ops without a registry. */
function secretMetrics(registry: Registry | undefined) {
  if (registry === undefined) return { read: (_result: SecretReadResult) => {}, stale: () => {} };
  const reads = new Counter({
    name: 'rampart_service_secret_reads_total',
    help: 'Secret reads sent to the control plane, by result: ok, refused, not_found (answers), unavailable, unreachable, bad_answer (outages).',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const result of SECRET_READ_RESULTS) reads.inc({ result }, 0);
  const stale = new Counter({
    name: 'rampart_service_secret_stale_served_total',
    help: 'Secret values served past their cache lifetime because the control plane was unavailable.',
    registers: [registry],
  });
  return { read: (result: SecretReadResult) => reads.inc({ result }), stale: () => stale.inc() };
}

class SecretView implements Secret {
  readonly name: string;
  readonly version: number;
  readonly value: Buffer;
  readonly stale: boolean;
  constructor(cached: CachedSecret) {
    this.name = cached.name;
    this.version = cached.version;
    this.value = cached.value;
    this.stale = cached.stale;
  }
  text(): string {
    return this.value.toString('utf8');
  }
  /** What JSON (and so pino) sees. */
  toJSON() {
    return { name: this.name, version: this.version, value: '[redacted]' };
  }
  [inspect.custom]() {
    return `Secret { name: ${JSON.stringify(this.name)}, version: ${this.version}, value: [redacted] }`;
  }
}

/**
 * The secrets client of one service. Each miss is one `POST /v1/secrets/read` on a keep-alive connection
 * that presents the service's current SVID and accepts only the control plane's SPIFFE ID; the
 * connections are rebuilt when the SVID or the bundle changes (renewal, CA rotation).
 */
export function createServiceSecrets(init: ServiceSecretsInit): ServiceSecrets {
  const { control } = init;
  const timeoutMs = init.timeoutMs ?? SDK_SECRETS_DEFAULTS.timeoutMs;
  const listeners: ((name: string, change: { from: number; to: number }) => void)[] = [];
  let agent: { key: string; dispatcher: Agent } | null = null;
  let closed = false;

  const dispatcherFor = (svid: CurrentSvid, endpoint: ControlEndpoint): Agent => {
    const key = `${svid.bundleSequence}\n${svid.certificatePem}`;
    if (agent?.key === key) return agent.dispatcher;
    const old = agent;
    agent = {
      key,
      dispatcher: new Agent({
        connections: SDK_SECRETS_DEFAULTS.connections,
        connect: {
          ca: svid.bundlePem,
          cert: svid.certificatePem,
          key: svid.keyPem,
          minVersion: 'TLSv1.2',
          checkServerIdentity: spiffeServerCheck(
            serviceSpiffeId(endpoint.trustDomain, COMPONENT_SERVICE_NAMES.control).id,
            endpoint.trustDomain,
          ),
        },
      }),
    };
    // Reads in flight finish on the old connections; then they close.
    if (old) void old.dispatcher.close().catch(() => {});
    return agent.dispatcher;
  };

  const metrics = secretMetrics(init.registry);
  /** Errors that are the control plane's refusal: the cache drops the entry instead of serving it stale. */
  const refusals = new WeakSet<object>();

  /**
   * One `POST /v1/secrets/read` within `timeoutMs`, connect to last byte, classified; never throws. The
   * deadline's timer is cleared once the answer is read: `AbortSignal.timeout` would leave one armed for
   * the whole timeout after every read, and fire it (building its TimeoutError) long after the read.
   */
  const attempt = async (name: string, svid: CurrentSvid, endpoint: ControlEndpoint): Promise<ReadOutcome> => {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    try {
      return await exchange(name, svid, endpoint, deadline.signal);
    } finally {
      clearTimeout(timer);
    }
  };

  const exchange = async (
    name: string,
    svid: CurrentSvid,
    endpoint: ControlEndpoint,
    signal: AbortSignal,
  ): Promise<ReadOutcome> => {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(new URL('/v1/secrets/read', endpoint.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ name }),
        dispatcher: dispatcherFor(svid, endpoint),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal,
      });
    } catch (cause) {
      return { result: 'unreachable', error: unavailable({ reason: 'network' }, cause) };
    }
    const status = res.statusCode;
    const body = await readBody(res);
    if (status === 200) {
      if (!Buffer.isBuffer(body)) {
        const result = body === 'too large' ? 'bad_answer' : 'unreachable';
        return { result, error: unavailable({ reason: body, status }) };
      }
      const parsed = parseBody(body);
      body.fill(0);
      const version = parsed?.['version'];
      const value = parsed?.['value'];
      if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1 || typeof value !== 'string') {
        return {
          result: 'bad_answer',
          error: unavailable({ reason: parsed === null ? 'not json' : 'answer', status }),
        };
      }
      return { result: 'ok', version, value: Buffer.from(value, 'base64') };
    }
    // Not a value: the body is a refusal's `{error, error_id}` at most, read only for its code.
    const parsed = Buffer.isBuffer(body) ? parseBody(body) : null;
    const code = parsed?.['error'];
    const errorId = typeof parsed?.['error_id'] === 'string' ? parsed['error_id'] : undefined;
    const passed = typeof code === 'string' && PASSED_CODE.test(code);
    if (REFUSAL_STATUSES.has(status)) {
      // An answer whatever its body says: the control plane heard the SVID and said no.
      const error = new RampartError(
        passed ? code : SDK_SECRETS_ERRORS.refused,
        'control plane refused the secret read',
        { status, detail: { status, errorId } },
      );
      refusals.add(error);
      return { result: status === 404 ? 'not_found' : 'refused', error };
    }
    const busy = status >= 500 || status === 408 || status === 429;
    const error = passed
      ? new RampartError(code, 'control plane refused the secret read', { status, detail: { status, errorId } })
      : unavailable({ reason: 'status', status });
    return { result: busy ? 'unavailable' : 'bad_answer', error };
  };

  const fetch = async (name: string): Promise<{ version: number; value: Buffer }> => {
    const svid = init.svid();
    if (closed || control === null || svid === null) {
      throw new RampartError(SDK_SECRETS_ERRORS.noControlPlane, 'no control plane to read secrets from', {
        status: 500,
      });
    }
    const outcome = await attempt(name, svid, control);
    metrics.read(outcome.result);
    if (outcome.result === 'ok') return outcome;
    const { error } = outcome;
    // The answer's status (none when there was no answer), the error id to find it in the control plane's log.
    const fields = { secret: name, result: outcome.result, code: error.code, ...error.detail };
    if (refusals.has(error)) {
      init.logger?.warn({ event: 'secret.refused', ...fields }, 'control plane refused the secret read');
    } else {
      init.logger?.warn(
        { event: 'secret.unavailable', ...fields },
        'control plane unavailable for the secret read: a cached value may stand in',
      );
    }
    throw error;
  };

  const cache = createSecretCache({
    fetch,
    isAuthoritative: (err) => typeof err === 'object' && err !== null && refusals.has(err),
    ...(init.ttlMs === undefined ? {} : { ttlMs: init.ttlMs }),
    ...(init.maxStaleMs === undefined ? {} : { maxStaleMs: init.maxStaleMs }),
    ...(init.now === undefined ? {} : { now: init.now }),
    onRotate: (name, change) => {
      init.logger?.info({ event: 'secret.rotated', secret: name, ...change }, 'secret rotated');
      for (const listener of listeners) {
        try {
          listener(name, change);
        } catch (err) {
          init.logger?.error({ err, secret: name }, 'secret rotation listener failed');
        }
      }
    },
  });

  return {
    async get(name) {
      if (typeof name !== 'string' || !SECRET_NAME.test(name)) throw secError(SEC_ERRORS.name);
      const cached = await cache.get(name);
      if (cached.stale) metrics.stale();
      return new SecretView(cached);
    },
    onRotate(listener) {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      cache.clear();
      const last = agent;
      agent = null;
      await last?.dispatcher.close().catch(() => {});
    },
  };
}
