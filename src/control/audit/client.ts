import { randomFillSync } from 'node:crypto';
import { Agent } from 'node:https';
import { setTimeout as delay } from 'node:timers/promises';
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  AUDIT_EVENT_ERROR,
  type AuditEvent,
  type AuditEventInput,
  canonicalizeAuditEvent,
  createAuditEvent,
  newEventId,
} from '../../core/audit-event.ts';
import { isRampartError, RampartError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { serviceSpiffeId } from '../../core/spiffe.ts';
import { type ControlTarget, controlRequest, spiffeServerCheck } from '../api/client.ts';
import { COMPONENT_SERVICE_NAMES } from '../api/defaults.ts';
import { apiError, CONTROL_API_ERRORS } from '../api/errors.ts';
import { AUDIT_CLIENT_DEFAULTS, type AuditClientLimits, type AuditClientSettings } from './client-defaults.ts';
import { openSpool, type Spool, type SpoolBatch } from './spool.ts';

/**
 * The one audit client every component emits through (issue 6: "Every component … emits through one
 * client"): the gateway (its decisions), services (SDK denials), and whatever else runs outside the
 * control plane. The control plane itself appends to its log directly.
 *
 * `emit` validates the event and gives it its id at once (UUIDv7: the id the control plane
 * deduplicates by), then queues its canonical line for the spool and returns: it never waits for
 * the disk or the network. The spool (spool.ts) commits lines durably in groups; one sender reads
 * them in order and posts them in batches to `POST /v1/audit/events` over mutual TLS with the
 * workload's current SVID, and moves the spool's cursor only once the control plane answered, which
 * it does only after its own durable append. A lost answer means the batch is sent again and the
 * control plane recognizes every id: exactly once, in order.
 *
 * While the control plane is away (or before the workload has an SVID) the sender backs off
 * (`retryInitialMs` doubling to `retryMaxMs`, with jitter) and events accumulate in the spool,
 * bounded by `maxSpoolBytes`; a restart replays the spool from its cursor.
 */
export interface AuditClient {
  /**
   * Builds, validates and queues an event (id and time filled in now; secret-looking parts of the
   * resource and actor redacted; a malformed optional field dropped rather than the event). Returns
   * the event id, or null when the event was dropped (spool full, or invalid beyond repair: counted).
   */
  emit(input: AuditEventInput): string | null;
  /**
   * Queues canonical event lines (each ending in `\n`) that another thread of this process built
   * with {@link auditEventLine}: the gateway's workers. Dropped and counted when the spool is full.
   */
  emitLines(lines: string, count: number): void;
  /** Resolves once everything emitted so far is in the spool, durable. */
  flush(): Promise<void>;
  /** Resolves true once nothing is left to deliver, false after `timeoutMs`. */
  settled(timeoutMs: number): Promise<boolean>;
  stats(): AuditClientStats;
  /**
   * Writes what is queued to the spool, gives delivery `closeDeliveryMs` to catch up, then stops; the
   * rest is delivered after the next start.
   */
  close(): Promise<void>;
}

/** Counters of {@link AuditClient}, also exported as metrics. */
export interface AuditClientStats {
  /** Events not yet acknowledged by the control plane (memory and spool). */
  depth: number;
  /** Events written and synced to the spool (not those only queued for it). */
  spooled: number;
  /** Events the control plane acknowledged. */
  delivered: number;
  /** Acknowledged events the control plane already had (an earlier answer was lost). */
  duplicates: number;
  /** Failed delivery attempts. */
  failures: number;
  /** Events dropped before the spool (full, invalid, or still unwritten at close because the disk refused them). */
  dropped: number;
  /** Spooled lines the control plane refused for good, or unreadable: skipped so the rest flows. */
  rejected: number;
}

/** The control plane and the credentials to reach it with, at the time of a delivery. */
export interface AuditDeliveryTarget {
  control: ControlTarget;
  /** The workload's current SVID (leaf PEM) and key. */
  cert: string;
  key: string;
}

/** What the control plane answers to a batch. */
export interface AuditDeliveryAck {
  acknowledged: number;
  duplicates: number;
}

/** Sends one batch; resolves once the control plane acknowledged it, rejects with a RampartError otherwise. */
export type AuditTransport = (events: readonly unknown[]) => Promise<AuditDeliveryAck>;

export interface AuditClientOptions {
  /** The spool directory (created, 0700): `<data dir>/audit-spool`. */
  dir: string;
  /**
   * Where to deliver, read at every attempt (the SVID renews); null while there is nothing to
   * deliver with: events then only spool.
   */
  target: () => AuditDeliveryTarget | null;
  logger: Logger;
  registry: Registry;
  limits?: AuditClientLimits;
  /** Replaces delivery over HTTPS (tests: lost answers, outages). */
  transport?: AuditTransport;
  /** Randomness for backoff jitter (tests). */
  random?: () => number;
}

/** Statuses that will not change by sending the same batch again: the batch is split, then skipped. */
const PERMANENT = new Set([400, 409, 413]);

const OPTIONAL_FIELDS = new Set(['reason', 'resource', 'requestId', 'traceId', 'actor', 'detail']);

/**
 * Event ids for one emitter: UUIDv7 with randomness drawn from the CSPRNG 256 ids at a time, because
 * one `randomBytes` call per denial costs more than the rest of making the event (a 401 flood makes an
 * event per request).
 */
export function createEventIdSource(): (now: number) => string {
  const pool = Buffer.alloc(16 * 256);
  let next = pool.length;
  return (now) => {
    if (next === pool.length) {
      randomFillSync(pool);
      next = 0;
    }
    // newEventId overwrites the version and variant bits of these bytes; each slice is used once.
    const id = newEventId(now, pool.subarray(next, next + 16));
    next += 16;
    return id;
  };
}

/**
 * Builds a valid event from `input` or returns null: secret-looking resource and actor values are
 * redacted; an optional field that still fails validation (a request id a caller made up, an
 * oversized detail) is dropped and the event kept, because losing the record of a denial is worse
 * than losing one of its facts.
 */
export function buildAuditEvent(
  input: AuditEventInput,
  now: () => number = Date.now,
  newId: (now: number) => string = newEventId,
): AuditEvent | null {
  const draft: Record<string, unknown> = { ...input };
  draft.id ??= newId(now());
  draft.time ??= new Date(now());
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      return createAuditEvent(draft as unknown as AuditEventInput, { redact: true, now });
    } catch (err) {
      if (!isRampartError(err) || err.code !== AUDIT_EVENT_ERROR) return null;
      const field = String(err.detail?.field ?? '');
      const [head, sub] = field.split('.', 2) as [string, string | undefined];
      if (field === '' && err.detail?.reason === 'event_too_large' && draft.detail !== undefined) {
        delete draft.detail;
      } else if (!OPTIONAL_FIELDS.has(head)) {
        return null;
      } else if (sub !== undefined && (head === 'actor' || head === 'detail')) {
        const part = { ...(draft[head] as Record<string, unknown>) };
        delete part[sub];
        draft[head] = Object.keys(part).length > 0 ? part : undefined;
      } else {
        delete draft[head];
      }
    }
  }
  return null;
}

/** The spool line of an event: its canonical bytes and a newline (what {@link AuditClient.emitLines} takes). */
export function auditEventLine(event: AuditEvent): string {
  return `${canonicalizeAuditEvent(event).toString('utf8')}\n`;
}

function clientMetrics(registry: Registry) {
  return {
    spooled: new Counter({
      name: 'rampart_audit_client_spooled_total',
      help: 'Audit events written and synced to the local spool.',
      registers: [registry],
    }),
    delivered: new Counter({
      name: 'rampart_audit_client_delivered_total',
      help: 'Audit events the control plane acknowledged (durably appended).',
      registers: [registry],
    }),
    duplicates: new Counter({
      name: 'rampart_audit_client_duplicates_total',
      help: 'Acknowledged audit events the control plane already had: sent again after a lost answer.',
      registers: [registry],
    }),
    failures: new Counter({
      name: 'rampart_audit_client_delivery_failures_total',
      help: 'Failed audit deliveries, by reason (unreachable, refused, no_identity).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    dropped: new Counter({
      name: 'rampart_audit_client_dropped_total',
      help: 'Audit events dropped before the spool, by reason (spool_full, invalid, unwritten).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'rampart_audit_client_rejected_total',
      help: 'Spooled audit events the control plane refused for good, or unreadable lines: skipped.',
      registers: [registry],
    }),
    spoolErrors: new Counter({
      name: 'rampart_audit_client_spool_errors_total',
      help: 'Failed spool writes, segment changes and cursor updates, by operation.',
      labelNames: ['operation'],
      registers: [registry],
    }),
    depth: new Gauge({
      name: 'rampart_audit_client_spool_events',
      help: 'Audit events not yet acknowledged by the control plane (queued and spooled).',
      registers: [registry],
    }),
    bytes: new Gauge({
      name: 'rampart_audit_client_spool_bytes',
      help: 'Bytes of audit events not yet acknowledged by the control plane.',
      registers: [registry],
    }),
  };
}

/**
 * Delivery over mutual TLS with the current SVID, on one keep-alive connection. The agent carries the
 * control plane's SPIFFE check itself: on Node 24.22, a `checkServerIdentity` given only per request
 * kept the agent from reusing connections (5 requests, 5 TLS handshakes; with it on the agent, 1).
 */
function httpsTransport(
  target: () => AuditDeliveryTarget | null,
  keepAliveMs: number,
  timeoutMs: number,
): AuditTransport & { close(): void } {
  let held: { trustDomain: string; agent: Agent } | null = null;
  const agentFor = (trustDomain: string): Agent => {
    if (held?.trustDomain !== trustDomain) {
      held?.agent.destroy();
      const expected = serviceSpiffeId(trustDomain, COMPONENT_SERVICE_NAMES.control).id;
      const agent = new Agent({
        keepAlive: true,
        maxSockets: 1,
        timeout: keepAliveMs,
        checkServerIdentity: spiffeServerCheck(expected, trustDomain),
      });
      held = { trustDomain, agent };
    }
    return held.agent;
  };
  const send = async (events: readonly unknown[]) => {
    const t = target();
    if (t === null) throw apiError(CONTROL_API_ERRORS.unavailable, { reason: 'no_identity' });
    const agent = agentFor(t.control.trustDomain);
    const answer = await controlRequest<Partial<AuditDeliveryAck>>(
      { ...t.control, timeoutMs },
      { method: 'POST', path: '/v1/audit/events', body: { events }, cert: t.cert, key: t.key, agent },
    );
    if (answer?.acknowledged !== events.length) {
      throw apiError(CONTROL_API_ERRORS.unavailable, { reason: 'acknowledgement' });
    }
    return { acknowledged: events.length, duplicates: Number(answer.duplicates) || 0 };
  };
  return Object.assign(send, { close: () => held?.agent.destroy() });
}

/** Opens the spool in `options.dir` (replaying what a previous run left) and starts delivering. */
export async function createAuditClient(options: AuditClientOptions): Promise<AuditClient> {
  const limits: AuditClientSettings = { ...AUDIT_CLIENT_DEFAULTS, ...options.limits };
  const { logger } = options;
  const metrics = clientMetrics(options.registry);
  const random = options.random ?? Math.random;
  const counts = { spooled: 0, delivered: 0, duplicates: 0, failures: 0, dropped: 0, rejected: 0 };

  const spool: Spool = await openSpool(options.dir, {
    logger,
    commitIntervalMs: limits.commitIntervalMs,
    commitMaxEvents: limits.commitMaxEvents,
    maxQueuedEvents: limits.maxQueuedEvents,
    maxSpoolBytes: limits.maxSpoolBytes,
    segmentBytes: limits.segmentBytes,
    onError: (operation, err) => {
      metrics.spoolErrors.inc({ operation });
      logger.error({ err, operation }, 'audit spool operation failed');
    },
  });
  const https = options.transport ? null : httpsTransport(options.target, limits.keepAliveMs, limits.requestTimeoutMs);
  const transport: AuditTransport = options.transport ?? https!;

  const gauges = () => {
    metrics.depth.set(spool.depth);
    metrics.bytes.set(spool.bytes);
  };
  if (spool.depth > 0) logger.info({ events: spool.depth }, 'audit spool holds undelivered events from a previous run');

  let wake: (() => void) | null = null;
  /** A commit while the sender was not waiting: its next wait returns at once (no lost wake-up). */
  let committedSinceWait = false;
  const notify = () => {
    const w = wake;
    wake = null;
    if (w) w();
    else committedSinceWait = true;
  };
  spool.onCommit((count) => {
    counts.spooled += count;
    metrics.spooled.inc(count);
    notify();
  });
  let stopping = false;
  const stop = new AbortController();

  const drop = (reason: 'spool_full' | 'invalid' | 'unwritten', n: number) => {
    counts.dropped += n;
    metrics.dropped.inc({ reason }, n);
  };

  const queue = (lines: string, count: number): boolean => {
    if (!spool.append(lines, count)) {
      drop('spool_full', count);
      return false;
    }
    gauges();
    return true;
  };

  const failed = (reason: string, err: unknown) => {
    counts.failures += 1;
    metrics.failures.inc({ reason });
    logger.debug({ err, reason }, 'audit delivery failed; will retry');
  };

  const waitForData = () =>
    new Promise<void>((resolve) => {
      if (committedSinceWait || stopping) resolve();
      else wake = resolve;
      committedSinceWait = false;
    });

  async function deliver(): Promise<void> {
    let backoff = limits.retryInitialMs;
    /** After a permanent refusal of a batch, events are sent one at a time up to here. */
    let isolateUntil: SpoolBatch['end'] | null = null;
    while (!stopping) {
      let batch: SpoolBatch | null;
      try {
        batch = await spool.read(isolateUntil ? 1 : limits.batchMaxEvents, limits.batchMaxBytes);
      } catch (err) {
        failed('spool', err);
        await delay(backoff, undefined, { signal: stop.signal }).catch(() => {});
        continue;
      }
      if (batch === null) {
        gauges();
        if (!stopping) await waitForData();
        continue;
      }
      const events: unknown[] = [];
      let unreadable = 0;
      for (const line of batch.lines) {
        try {
          events.push(JSON.parse(line));
        } catch {
          unreadable++;
        }
      }
      try {
        const ack = events.length > 0 ? await transport(events) : { acknowledged: 0, duplicates: 0 };
        await spool.ack(batch);
        counts.delivered += events.length;
        counts.duplicates += ack.duplicates;
        metrics.delivered.inc(events.length);
        if (ack.duplicates > 0) metrics.duplicates.inc(ack.duplicates);
        if (unreadable > 0) {
          counts.rejected += unreadable;
          metrics.rejected.inc(unreadable);
          logger.error({ lines: unreadable }, 'audit spool: unreadable lines skipped');
        }
        if (
          isolateUntil &&
          (batch.end.segment > isolateUntil.segment ||
            (batch.end.segment === isolateUntil.segment && batch.end.offset >= isolateUntil.offset))
        ) {
          isolateUntil = null;
        }
        backoff = limits.retryInitialMs;
        gauges();
      } catch (err) {
        if (stopping) break;
        const status = err instanceof RampartError ? err.status : 0;
        if (PERMANENT.has(status)) {
          if (batch.lines.length > 1 && isolateUntil === null) {
            // Find the event the control plane refuses: the others must still arrive.
            isolateUntil = batch.end;
            continue;
          }
          await spool.ack(batch);
          counts.rejected += batch.lines.length;
          metrics.rejected.inc(batch.lines.length);
          logger.error(
            { code: (err as RampartError).code, status, eventIds: events.map((e) => (e as { id?: unknown }).id) },
            'audit event refused by the control plane; skipped',
          );
          gauges();
          continue;
        }
        const code = err instanceof RampartError ? err.code : '';
        failed(code === CONTROL_API_ERRORS.unavailable ? 'unreachable' : 'refused', err);
        const wait = backoff * (0.5 + random() / 2);
        backoff = Math.min(limits.retryMaxMs, backoff * 2);
        await delay(wait, undefined, { signal: stop.signal }).catch(() => {});
      }
    }
  }
  const sender = deliver().catch((err) => logger.error({ err }, 'audit delivery stopped'));

  const newId = createEventIdSource();
  const client: AuditClient = {
    emit(input) {
      const event = buildAuditEvent(input, Date.now, newId);
      if (event === null) {
        drop('invalid', 1);
        logger.error({ component: input?.component, action: input?.action }, 'audit event invalid; dropped');
        return null;
      }
      return queue(auditEventLine(event), 1) ? event.id : null;
    },
    emitLines(lines, count) {
      queue(lines, count);
    },
    flush: () => spool.flush(),
    async settled(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      await spool.flush();
      while (spool.depth > 0) {
        if (Date.now() >= deadline) return false;
        await delay(20);
      }
      return true;
    },
    stats: () => ({ depth: spool.depth, ...counts }),
    async close() {
      if (stopping) return;
      if (options.transport !== undefined || options.target() !== null) {
        await client.settled(limits.closeDeliveryMs).catch(() => false);
      }
      stopping = true;
      stop.abort();
      notify();
      // An exchange in flight ends with its socket.
      https?.close();
      await sender;
      if (spool.depth > 0) logger.warn({ events: spool.depth }, 'audit events stay spooled until the next start');
      const lost = await spool.close();
      if (lost > 0) drop('unwritten', lost);
    },
  };
  return client;
}
