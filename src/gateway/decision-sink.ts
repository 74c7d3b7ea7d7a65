import { auditEventLine, buildAuditEvent, createEventIdSource } from '../control/audit/client.ts';
import type { AuditEventInput } from '../core/audit-event.ts';

/**
 * A security decision made by the gateway: every denial produces one, and each becomes an audit
 * event ({@link decisionAuditInput}) delivered to the control plane's audit log by the audit client.
 */
export interface DecisionEvent {
  time: string;
  component: 'gateway';
  decision: 'deny';
  stage: string;
  reason: string;
  code: string;
  status: number;
  requestId: string;
  errorId: string;
  method: string;
  /** The canonical path when canonicalization succeeded; otherwise the raw target, truncated. */
  path: string;
  route: string | null;
  clientIp: string;
  subject: string | null;
  clientId: string | null;
}

/** Where the gateway's request path hands decision events. `emit` never blocks and never throws. */
export interface DecisionSink {
  emit(event: DecisionEvent): void;
  /** Hands over what is buffered. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Settings of the workers' side, each with the reason for its value.
 */
export const DECISION_SINK_DEFAULTS = Object.freeze({
  /**
   * Workers post their events to the main thread in batches, every 50 ms or 1,000 events, whichever
   * comes first: one message per batch, not per denial; the main thread's audit client then
   * group-commits them to its spool.
   */
  postIntervalMs: 50,
  maxBatchEvents: 1_000,
});

/**
 * The audit event of a decision: `http.request` denied, the stable code as the reason, the path as
 * the resource, the token's subject and client as the actor, and the rest (stage, internal reason,
 * status, method, route, client address, error id) as detail.
 */
export function decisionAuditInput(event: DecisionEvent): AuditEventInput {
  return {
    time: event.time,
    component: 'gateway',
    action: 'http.request',
    decision: event.decision,
    reason: event.code,
    resource: event.path,
    actor: { subject: event.subject ?? undefined, clientId: event.clientId ?? undefined },
    requestId: event.requestId,
    detail: {
      stage: event.stage,
      reason: event.reason,
      status: event.status,
      method: event.method,
      route: event.route,
      clientIp: event.clientIp,
      errorId: event.errorId,
    },
  };
}

/**
 * The worker side: turns each decision into its audit event at once (id and validation on the
 * worker that made the decision, so the CPU cost stays there) and hands the spool lines to `send` in
 * batches; the main thread passes them to its audit client (`emitLines`). The buffer is bounded by
 * the batch size. Events still buffered when a worker dies are lost (at most `postIntervalMs` worth).
 */
export function createBatchingDecisionSink(
  send: (lines: string, count: number) => void,
  options: { maxBatchEvents?: number; postIntervalMs?: number; onInvalid?: () => void } = {},
): DecisionSink & { flush(): void } {
  const maxBatch = options.maxBatchEvents ?? DECISION_SINK_DEFAULTS.maxBatchEvents;
  const interval = options.postIntervalMs ?? DECISION_SINK_DEFAULTS.postIntervalMs;
  let lines = '';
  let count = 0;
  let timer: NodeJS.Timeout | null = null;
  const newId = createEventIdSource();
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (count === 0) return;
    const batch = lines;
    const n = count;
    lines = '';
    count = 0;
    send(batch, n);
  };
  return {
    emit(event) {
      const audit = buildAuditEvent(decisionAuditInput(event), Date.now, newId);
      if (audit === null) {
        options.onInvalid?.();
        return;
      }
      lines += auditEventLine(audit);
      count += 1;
      if (count >= maxBatch) flush();
      else if (!timer) {
        timer = setTimeout(flush, interval);
        timer.unref();
      }
    },
    flush,
    close: async () => flush(),
  };
}

/** Keeps events in memory; for tests. */
export function createMemoryDecisionSink(): DecisionSink & { events: DecisionEvent[] } {
  const events: DecisionEvent[] = [];
  return { events, emit: (event) => events.push(event), close: async () => {} };
}
