/**
 * The load generator of bench/mtls.bench.ts, on its own thread (its own event loop and V8 isolate), so
 * the server in the main thread and the client never share a loop. It receives one job at a time,
 * warms up, posts `{ type: 'measuring' }` when the measured window opens (the main thread then samples
 * its own CPU) and `{ type: 'done', ... }` when it closes.
 *
 * - `requests`: N loops, each keeping one request in flight on an undici `Agent` with N connections and
 *   pipelining 1 — the SDK's dispatcher (src/sdk/service.ts `peerDispatcher`), with the same `connect`
 *   options for mTLS: one TLS context built once from the client SVID and the bundle as the only trust
 *   (TLS 1.2+), and the SPIFFE ID check of the server instead of a host name check. Connections are
 *   reused (keep-alive).
 * - `connects`: N loops, each opening a connection, waiting until it is established, closing it and
 *   waiting for the close: plain TCP, or a TLS handshake with the same options (full, or resumed from
 *   a session ticket of an earlier connection; the TLS context built once, or per connection).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { createSecureContext, type SecureContext, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { parentPort } from 'node:worker_threads';
import { Agent, request } from 'undici';
import { spiffeServerCheck } from '../../src/control/api/index.ts';

/** What the client presents and checks on an mTLS connection. */
export interface ClientTls {
  cert: string;
  key: string;
  /** The trust bundle (PEM). */
  ca: string;
  /** The server's SPIFFE ID. */
  expectedId: string;
  trustDomain: string;
}

export type LoadJob =
  | {
      type: 'requests';
      url: string;
      tls: ClientTls | null;
      connections: number;
      warmupMs: number;
      durationMs: number;
    }
  | {
      type: 'connects';
      port: number;
      /**
       * `resume`: offer the session ticket of an earlier connection. `sharedContext`: build the TLS
       * context (CA, certificate, key) once, as the SDK does; otherwise every connection builds its
       * own from the PEM, as undici does with PEM `connect` options (the SDK's before 33e445d).
       */
      tls: (ClientTls & { resume: boolean; sharedContext: boolean }) | null;
      connections: number;
      warmupMs: number;
      durationMs: number;
    };

export type LoadReply =
  | { type: 'measuring' }
  | {
      type: 'done';
      /** Requests answered 200, or connections established, in the measured window. */
      completed: number;
      /** Non-200 answers, errors, refused handshakes: any of them makes the run invalid. */
      failures: number;
      firstFailure: string | null;
      elapsedMs: number;
      p50Ms: number;
      p99Ms: number;
      /** CPU time of this thread during the window, µs. */
      clientCpuUs: number;
      /** `connects` with TLS: how many handshakes resumed a session. */
      resumed: number;
    };

const port = parentPort;
if (!port) throw new Error('load-worker.ts runs as a worker thread only');

const MINIMUM_TLS = 'TLSv1.2';

function tlsConnectOptions(tls: ClientTls) {
  return {
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    minVersion: MINIMUM_TLS,
    checkServerIdentity: spiffeServerCheck(tls.expectedId, tls.trustDomain),
  } as const;
}

interface Window {
  measuring: boolean;
  histogram: RecordableHistogram;
  completed: number;
  failures: number;
  firstFailure: string | null;
  resumed: number;
}

function fail(window: Window, err: unknown): void {
  window.failures += 1;
  window.firstFailure ??=
    err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}` : String(err);
}

async function oneRequest(job: Extract<LoadJob, { type: 'requests' }>, dispatcher: Agent, window: Window) {
  const started = performance.now();
  try {
    const res = await request(job.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
      dispatcher,
    });
    const body = await res.body.text();
    if (!window.measuring) return;
    if (res.statusCode !== 200) fail(window, `status ${res.statusCode}: ${body.slice(0, 200)}`);
    else {
      window.completed += 1;
      window.histogram.record(Math.max(1, Math.round((performance.now() - started) * 1e6)));
    }
  } catch (err) {
    if (window.measuring) fail(window, err);
  }
}

function openConnection(
  job: Extract<LoadJob, { type: 'connects' }>,
  session: { ticket: Buffer | null },
  context: SecureContext | null,
) {
  return new Promise<{ resumed: boolean }>((resolve, reject) => {
    let socket: Socket | TLSSocket;
    const done = (resumed: boolean) => {
      socket.once('close', () => resolve({ resumed }));
      socket.end();
    };
    if (job.tls) {
      const tls = job.tls;
      const s = tlsConnect({
        host: '127.0.0.1',
        port: job.port,
        ...tlsConnectOptions(tls),
        ...(context ? { secureContext: context } : {}),
        ...(tls.resume && session.ticket ? { session: session.ticket } : {}),
      });
      socket = s;
      // TLS 1.3: after a full handshake the server sends its tickets once it has processed our
      // Finished (with our certificate): waiting for one means the server side is complete too, and
      // gives the resumed line its ticket. A resumed handshake exchanges no certificates.
      let established = false;
      const check = () => {
        if (established) return;
        established = true;
        if (!s.authorized) reject(s.authorizationError ?? new Error('unauthorized'));
        else done(s.isSessionReused());
      };
      s.once('session', (ticket: Buffer) => {
        if (tls.resume) session.ticket = ticket;
        check();
      });
      s.once('secureConnect', () => {
        if (s.isSessionReused()) check();
      });
    } else {
      socket = netConnect({ host: '127.0.0.1', port: job.port }, () => done(false));
    }
    socket.once('error', reject);
  });
}

async function run(job: LoadJob): Promise<Extract<LoadReply, { type: 'done' }>> {
  const window: Window = {
    measuring: false,
    histogram: createHistogram(),
    completed: 0,
    failures: 0,
    firstFailure: null,
    resumed: 0,
  };
  let running = true;
  let dispatcher: Agent | null = null;
  let loop: () => Promise<void>;
  if (job.type === 'requests') {
    const tls = job.tls;
    const agent = new Agent({
      connections: job.connections,
      pipelining: 1,
      ...(tls
        ? {
            connect: {
              secureContext: createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: MINIMUM_TLS }),
              checkServerIdentity: spiffeServerCheck(tls.expectedId, tls.trustDomain),
            },
          }
        : {}),
    });
    dispatcher = agent;
    loop = async () => {
      while (running) await oneRequest(job, agent, window);
    };
  } else {
    const session = { ticket: null as Buffer | null };
    const tls = job.tls;
    const context = tls?.sharedContext
      ? createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: MINIMUM_TLS })
      : null;
    loop = async () => {
      while (running) {
        const started = performance.now();
        try {
          const { resumed } = await openConnection(job, session, context);
          if (!window.measuring) continue;
          window.completed += 1;
          if (resumed) window.resumed += 1;
          window.histogram.record(Math.max(1, Math.round((performance.now() - started) * 1e6)));
        } catch (err) {
          if (window.measuring) fail(window, err);
        }
      }
    };
  }
  const loops = Array.from({ length: job.connections }, () => loop());
  await new Promise((resolve) => setTimeout(resolve, job.warmupMs));
  window.measuring = true;
  port?.postMessage({ type: 'measuring' } satisfies LoadReply);
  const cpu = process.threadCpuUsage();
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, job.durationMs));
  window.measuring = false;
  const elapsedMs = performance.now() - started;
  const used = process.threadCpuUsage(cpu);
  running = false;
  await Promise.all(loops);
  await dispatcher?.close();
  return {
    type: 'done',
    completed: window.completed,
    failures: window.failures,
    firstFailure: window.firstFailure,
    elapsedMs,
    p50Ms: window.histogram.count > 0 ? window.histogram.percentile(50) / 1e6 : Number.NaN,
    p99Ms: window.histogram.count > 0 ? window.histogram.percentile(99) / 1e6 : Number.NaN,
    clientCpuUs: used.user + used.system,
    resumed: window.resumed,
  };
}

port.on('message', (job: LoadJob) => {
  run(job).then(
    (reply) => port.postMessage(reply),
    (err: unknown) => port.postMessage({ type: 'error', message: String((err as Error)?.stack ?? err) }),
  );
});
