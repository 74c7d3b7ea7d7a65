import { closeSync, fsyncSync, openSync } from 'node:fs';
import { chmod, type FileHandle, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { Counter, Gauge, Histogram, type Registry } from '../core/metrics.ts';

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

/** Where the gateway's request path hands decision events. `emit` never blocks and never throws. */
export interface DecisionSink {
  emit(event: DecisionEvent): void;
  /** Hands over what is buffered. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Decision-log settings, each with the reason for its value.
 */
export const DECISION_LOG_DEFAULTS = Object.freeze({
  /**
   * A commit (write + fdatasync) at least every 50 ms: an event is durable within ~50 ms plus one
   * fsync, and a busy gateway pays one fsync per batch rather than per event (group commit, as
   * PostgreSQL's commit_delay and every write-ahead log do).
   */
  commitIntervalMs: 50,
  /** ...or as soon as 1,000 events wait: bounds the size of one write. */
  maxBatchEvents: 1_000,
  /**
   * Events held in memory when the disk cannot keep up: 100,000 (about 40 MB at ~400 bytes each).
   * Past that, new events are dropped and counted (`rampart_gateway_decisions_dropped_total`):
   * memory stays bounded and request handling never waits for the disk.
   */
  maxQueuedEvents: 100_000,
  /** Workers post their events in batches: every 50 ms or 1,000 events, whichever comes first. */
  postIntervalMs: 50,
});

/**
 * The worker side: serializes each event to a JSON line at once (the CPU cost stays on the worker that
 * made the decision) and hands the lines to `send` in batches. The buffer is bounded by the batch size.
 * Events still buffered when a worker dies are lost (at most `postIntervalMs` worth).
 */
export function createBatchingDecisionSink(
  send: (lines: string, count: number) => void,
  options: { maxBatchEvents?: number; postIntervalMs?: number } = {},
): DecisionSink & { flush(): void } {
  const maxBatch = options.maxBatchEvents ?? DECISION_LOG_DEFAULTS.maxBatchEvents;
  const interval = options.postIntervalMs ?? DECISION_LOG_DEFAULTS.postIntervalMs;
  let lines = '';
  let count = 0;
  let timer: NodeJS.Timeout | null = null;
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
      lines += `${JSON.stringify(event)}\n`;
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

/** The main thread's durable file of decision events. */
export interface DecisionLog extends DecisionSink {
  /** Queues JSON lines (each ending in `\n`) holding `count` events. Never blocks; drops past the bound. */
  append(lines: string, count: number): void;
  /** Resolves when everything queued so far is written and synced. */
  flush(): Promise<void>;
  /** Events waiting for the disk. */
  readonly queued: number;
}

export interface DecisionLogOptions {
  logger: Logger;
  registry: Registry;
  commitIntervalMs?: number;
  maxBatchEvents?: number;
  maxQueuedEvents?: number;
  /** Opens the file; for tests that need a disk that fails. */
  openFile?: (file: string) => Promise<FileHandle>;
}

/**
 * Appends decision events to a JSON-lines file durably, with group commit: queued lines are written
 * and `fdatasync`ed in one batch per `commitIntervalMs` (or per `maxBatchEvents`), on libuv's thread
 * pool, never on a thread that serves requests. The file is created mode 0600 (events name clients and
 * subjects) and forced to 0600 if it existed. The queue is bounded ({@link DECISION_LOG_DEFAULTS}).
 *
 * A failed write keeps the unwritten rest of the batch and tries again at the next commit (no line is
 * written twice); a failed fsync is counted and logged (the data may not be on disk).
 */
export async function openDecisionLog(file: string, options: DecisionLogOptions): Promise<DecisionLog> {
  const interval = options.commitIntervalMs ?? DECISION_LOG_DEFAULTS.commitIntervalMs;
  const maxBatch = options.maxBatchEvents ?? DECISION_LOG_DEFAULTS.maxBatchEvents;
  const maxQueued = options.maxQueuedEvents ?? DECISION_LOG_DEFAULTS.maxQueuedEvents;
  const { logger } = options;
  const metrics = decisionLogMetrics(options.registry);

  const handle = await (options.openFile ?? ((f: string) => open(f, 'a', 0o600)))(file);
  // By path: the permission model disables fchmod (Node 24), but allows chmod inside the writable directory.
  await chmod(file, 0o600);
  syncDirectory(dirname(file));

  const chunks: { lines: string; count: number }[] = [];
  let queued = 0;
  /** Bytes of the batch being committed that are not written yet (after a failed write). */
  let unwritten: Buffer | null = null;
  let unwrittenCount = 0;
  let timer: NodeJS.Timeout | null = null;
  let committing: Promise<void> | null = null;
  /** Events written since the log was opened: tells a commit that made progress from one that did not. */
  let committed = 0;
  let closed = false;
  let lastErrorLog = 0;
  metrics.queue.set(0);

  const reportError = (err: unknown, what: 'write' | 'sync') => {
    metrics.errors.inc({ operation: what });
    const now = Date.now();
    // One log line per 10 s at most: a full disk must not also flood the log.
    if (now - lastErrorLog >= 10_000) {
      lastErrorLog = now;
      logger.error({ err, file, queued }, `decision log ${what} failed`);
    }
  };

  async function commitOnce(): Promise<void> {
    if (!unwritten) {
      let count = 0;
      const take: string[] = [];
      while (chunks.length > 0 && (count === 0 || count + chunks[0]!.count <= maxBatch)) {
        const chunk = chunks.shift()!;
        take.push(chunk.lines);
        count += chunk.count;
      }
      if (count === 0) return;
      unwritten = Buffer.from(take.join(''));
      unwrittenCount = count;
    }
    const started = performance.now();
    try {
      while (unwritten.length > 0) {
        const { bytesWritten } = await handle.write(unwritten);
        unwritten = unwritten.subarray(bytesWritten);
      }
    } catch (err) {
      reportError(err, 'write');
      return;
    }
    const count = unwrittenCount;
    unwritten = null;
    unwrittenCount = 0;
    try {
      await handle.datasync();
    } catch (err) {
      reportError(err, 'sync');
    }
    queued -= count;
    committed += count;
    metrics.queue.set(queued);
    metrics.written.inc(count);
    metrics.commit.observe((performance.now() - started) / 1000);
  }

  /**
   * Commits one batch, or with `drain` until the queue is empty; stops early when a commit makes no
   * progress (the disk fails: the next attempt is the next scheduled commit).
   */
  function commit(drain = false): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = null;
    committing ??= (async () => {
      try {
        for (;;) {
          const before = committed;
          await commitOnce();
          if (queued === 0 || committed === before) break;
          if (!drain && queued < maxBatch) break;
        }
      } finally {
        committing = null;
        if (queued > 0 && !closed) schedule();
      }
    })();
    return committing;
  }

  function schedule(): void {
    if (timer || committing) return;
    timer = setTimeout(() => void commit(), interval);
    timer.unref();
  }

  const log: DecisionLog = {
    get queued() {
      return queued;
    },
    append(lines, count) {
      if (count <= 0) return;
      if (closed || queued + count > maxQueued) {
        metrics.dropped.inc(count);
        return;
      }
      chunks.push({ lines, count });
      queued += count;
      metrics.queue.set(queued);
      if (queued >= maxBatch && !committing) void commit();
      else schedule();
    },
    emit(event) {
      log.append(`${JSON.stringify(event)}\n`, 1);
    },
    async flush() {
      for (;;) {
        while (committing) await committing;
        if (queued === 0) return;
        const before = committed;
        await commit(true);
        if (committed === before) return; // the disk fails: what is left stays queued
      }
    },
    async close() {
      if (closed) return;
      await log.flush();
      closed = true;
      await log.flush(); // events that arrived during the first flush
      if (timer) clearTimeout(timer);
      if (queued > 0) {
        logger.error({ file, lost: queued }, 'decision log closed with events it could not write');
        metrics.dropped.inc(queued);
      }
      await handle.close();
    },
  };
  return log;
}

/** The directory entry of a new file is durable only once the directory is synced (fsync(2)). */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Best effort: some file systems refuse fsync on a directory; the data itself is still synced.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function decisionLogMetrics(registry: Registry) {
  return {
    written: new Counter({
      name: 'rampart_gateway_decisions_written_total',
      help: 'Decision events written and synced to the decision log.',
      registers: [registry],
    }),
    dropped: new Counter({
      name: 'rampart_gateway_decisions_dropped_total',
      help: 'Decision events dropped because the decision log queue was full (the disk could not keep up).',
      registers: [registry],
    }),
    errors: new Counter({
      name: 'rampart_gateway_decision_log_errors_total',
      help: 'Failed writes and syncs of the decision log, by operation.',
      labelNames: ['operation'],
      registers: [registry],
    }),
    queue: new Gauge({
      name: 'rampart_gateway_decision_log_queue_events',
      help: 'Decision events waiting to be written.',
      registers: [registry],
    }),
    commit: new Histogram({
      name: 'rampart_gateway_decision_log_commit_seconds',
      help: 'Time to write and sync one batch of decision events.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}

/** Keeps events in memory; for tests. */
export function createMemoryDecisionSink(): DecisionSink & { events: DecisionEvent[] } {
  const events: DecisionEvent[] = [];
  return { events, emit: (event) => events.push(event), close: async () => {} };
}
