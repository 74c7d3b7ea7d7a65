import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import type { WorkerPlan } from './verify-range.ts';

/**
 * The second thread of `rampart audit verify` on SQLite (verify.ts `verifyLog`): it opens the log
 * read-only, waits for the verifier's plan, takes its own read snapshot when told to (the verifier
 * checks no commit fell between the two), verifies its range of leaves (verify-range.ts) and posts the
 * result (its snapshot is taken before the plan comes, to keep the window short). It writes nothing. The handshake is a shared Int32Array (`WORKER_STATE`), since the verifier
 * waits synchronously and runs no event loop meanwhile.
 */

interface Data {
  path: string;
  port: MessagePort;
  shared: SharedArrayBuffer;
}

const { path, port, shared } = workerData as Data;
const state = new Int32Array(shared);
// The values of WORKER_STATE, before verify-range.ts is loaded (a failed load is reported too).
const READY = 1;
const GO = 2;
const BEGUN = 3;
const PLANNED = 4;
const DONE = 5;
const FAILED = 6;
const STARTING = 0;

const signal = (value: number): void => {
  Atomics.store(state, 0, value);
  Atomics.notify(state, 0);
};

let close = (): void => {};
try {
  const { openAuditDatabase } = await import('./database.ts');
  const { verifySqliteRange } = await import('./verify-range.ts');
  const db = openAuditDatabase(path, { readOnly: true });
  close = () => db.close();
  // The verifier may have stopped waiting (it then verifies alone): only a starting worker gets ready.
  if (Atomics.compareExchange(state, 0, STARTING, READY) === STARTING) {
    Atomics.notify(state, 0);
    Atomics.wait(state, 0, READY);
    if (Atomics.load(state, 0) === GO) {
      db.exec('BEGIN');
      db.prepare('SELECT count(*) FROM meta').get();
      signal(BEGUN);
      Atomics.wait(state, 0, BEGUN);
    }
    if (Atomics.load(state, 0) === PLANNED) {
      const plan = receiveMessageOnPort(port)?.message as WorkerPlan;
      // The event schema (and what it loads) only for full validation.
      const parseEvent = plan.fullEvents ? (await import('../../core/audit-event.ts')).parseAuditEntry : null;
      const result = verifySqliteRange(db, {
        lo: plan.lo,
        end: plan.end,
        top: plan.top,
        checkpointSizes: plan.checkpointSizes,
        parseEvent,
        progressEvery: 4_096,
        onProgress: (verified) => Atomics.store(state, 1, verified),
      });
      db.exec('COMMIT');
      port.postMessage({ ok: true, result });
      signal(DONE);
    }
  }
} catch (err) {
  port.postMessage({ ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  signal(FAILED);
} finally {
  close();
  port.close();
}
