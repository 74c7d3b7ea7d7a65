import { EventEmitter } from 'node:events';
import { MessageChannel, type MessagePort, threadId } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerData } from './messages.ts';

/**
 * What an entry module exports to be run in the main thread (src/gateway/worker.ts does): serve on
 * `port` with the protocol of messages.ts, and call `exit` once drained. A rejection is a failed start.
 */
export type ServeWorker = (port: MessagePort, data: WorkerData, exit: () => void) => Promise<void>;

/** The part of a `Worker` the pool uses; {@link InThreadWorker} is the other implementation. */
export interface PoolThread {
  readonly threadId: number;
  postMessage(message: ToWorker): void;
  on(event: 'message', listener: (message: FromWorker) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  once(event: 'exit', listener: (code: number) => void): unknown;
  terminate(): Promise<number>;
}

/**
 * A gateway worker run in the main thread, behind the same interface and message protocol as a
 * worker thread (a MessageChannel instead of the thread's port, so messages are still structured
 * clones, delivered in order). One worker in its own thread costs a second V8 isolate (tens of MB of
 * RSS: its own heap, young generation and copies of every module) and buys nothing a single listener
 * needs: the supervisor's work (admin listener, decision log, reloads) is light, and the shared table
 * is shared with nobody.
 *
 * Events as a Worker emits them: `message`, then `error` when the start fails (the promise of
 * {@link ServeWorker} rejects), and `exit` (0 after a drain, 1 after a failed start) once every message
 * posted before it has been delivered. What differs from a thread: an uncaught exception while serving
 * ends the process, not just the worker (the launcher's supervision restarts the process), and
 * `terminate` can only stop listening to it, not stop its JavaScript.
 */
export class InThreadWorker extends EventEmitter implements PoolThread {
  readonly threadId = threadId;
  readonly #port: MessagePort;
  #code = 0;
  #exited = false;

  constructor(entry: URL, data: WorkerData) {
    super();
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    port1.on('message', (message: FromWorker) => this.emit('message', message));
    // Emitted after the messages posted before the close were delivered (MessagePort semantics).
    port1.once('close', () => {
      this.#exited = true;
      this.emit('exit', this.#code);
    });
    void (async () => {
      const module = (await import(entry.href)) as { serveGatewayWorker?: ServeWorker };
      if (typeof module.serveGatewayWorker !== 'function') {
        throw new TypeError(`${entry.href} exports no serveGatewayWorker: it cannot run in the main thread`);
      }
      await module.serveGatewayWorker(port2, data, () => port2.close());
    })().catch((err: unknown) => {
      this.#code = 1;
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
      port2.close();
    });
  }

  postMessage(message: ToWorker): void {
    this.#port.postMessage(message);
  }

  terminate(): Promise<number> {
    if (this.#exited) return Promise.resolve(this.#code);
    const exited = new Promise<number>((resolve) => this.once('exit', resolve));
    this.#port.close();
    return exited;
  }
}
