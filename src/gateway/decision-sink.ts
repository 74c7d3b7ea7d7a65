import { createWriteStream, type WriteStream } from 'node:fs';

/**
 * A security decision made by the gateway: every denial produces one. The audit log (control plane)
 * will receive these; until it exists they go to a local JSON-lines file.
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

export interface DecisionSink {
  emit(event: DecisionEvent): void;
  close(): Promise<void>;
}

/** Appends decision events to a JSON-lines file (mode 0600: they name clients and subjects). */
export function createFileDecisionSink(file: string): DecisionSink {
  const stream: WriteStream = createWriteStream(file, { flags: 'a', mode: 0o600 });
  return {
    emit(event) {
      stream.write(`${JSON.stringify(event)}\n`);
    },
    close: () => new Promise<void>((resolve) => stream.end(() => resolve())),
  };
}

/** Keeps events in memory; for tests. */
export function createMemoryDecisionSink(): DecisionSink & { events: DecisionEvent[] } {
  const events: DecisionEvent[] = [];
  return { events, emit: (event) => events.push(event), close: async () => {} };
}
