/**
 * What mutual TLS costs a service-to-service hop (issue 4 goal: ≤ 10 % of requests per second lost
 * against plain HTTP on a keep-alive pool). Not a test:
 * `node --conditions=rampart-source bench/mtls.bench.ts [seconds] [connections] [rounds] [line,line]`
 * (defaults 5 s per line, 16 connections — the SDK's pool size per peer — 3 rounds, every line).
 *
 * The server is the real SDK service (src/sdk/service.ts) answering `POST /charges` with `{"ok":true}`,
 * started twice in this thread: once as `rampart start` runs it — it obtains its SVID from a real
 * control plane API (join token, CSR, local CA) and serves HTTPS that requires a client certificate
 * chained to the bundle, checks the caller's SPIFFE ID once per connection and the inbound policy per
 * request — and once without a control plane: plain HTTP, no caller checks. The client is the
 * `orders` workload, with an SVID from the same control plane, in a worker thread (bench/mtls/
 * load-worker.ts): the SDK's undici dispatcher, pipelining 1, N connections, one request in flight per
 * connection. Lines are interleaved (plain, mTLS, plain, mTLS, …) and the table shows medians.
 *
 * The floor, measured in the same run with the same client: a bare `node:http` server and a bare
 * `node:https` server (requestCert, rejectUnauthorized, payments' SVID and bundle), both answering the
 * same `{"ok":true}` once the request body has been read — no fastify, no SDK. Its loss is what Node's
 * TLS costs this client and handler; the SDK line's loss beyond it is fastify's and the SDK's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Agent, request } from 'undici';
import {
  CONTROL_API_ERRORS,
  type ControlApi,
  type CurrentSvid,
  createControlApi,
  createServerCertificate,
  createWorkloadKey,
  requestJoinToken,
  requestSvid,
  type ServerCertificate,
  spiffeServerCheck,
} from '../src/control/api/index.ts';
import { openTestCa } from '../src/control/ca/testing.ts';
import type { AccessTokenVerifier } from '../src/core/access-token.ts';
import { createLogger } from '../src/core/logger.ts';
import { serviceSpiffeId } from '../src/core/spiffe.ts';
import { freePort } from '../src/launcher/ports.ts';
import { type RampartService, service } from '../src/sdk/index.ts';
import { SDK_TLS_DEFAULTS } from '../src/sdk/service.ts';
import type { ClientTls, LoadJob, LoadReply } from './mtls/load-worker.ts';

const seconds = Number(process.argv[2] ?? 5);
const connections = Number(process.argv[3] ?? 16);
const rounds = Number(process.argv[4] ?? 3);
/**
 * Measure only these line ids (comma-separated: http, mtls, floor-http, floor-https, tcp, handshake, resumed,
 * sdk-handshake).
 */
const only = process.argv[5]?.split(',') ?? null;
const WARMUP_MS = 1_000;
const TRUST_DOMAIN = 'shop.local';
const CREDENTIAL = 'b'.repeat(43);
const silent = (name: string) => createLogger({ name, level: 'silent' });
const noTokens = (async () => {
  throw new Error('no user tokens in this benchmark');
}) as unknown as AccessTokenVerifier;

// ── the system: a CA, the control plane's API, payments with and without mTLS ──────────────────────

const t = await openTestCa({ trustDomain: TRUST_DOMAIN });
const realClock = setInterval(() => {
  t.clock.now = Date.now();
}, 50);
realClock.unref();
const dirs: string[] = [];
const services: RampartService[] = [];
let cert: ServerCertificate | null = null;
let api: ControlApi | null = null;

async function startPayments(controlUrl: string | null): Promise<{ svc: RampartService; port: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-mtls-bench-'));
  dirs.push(dir);
  const port = await freePort();
  const control = controlUrl ? { url: controlUrl, bundle: t.ca.bundle().pem, trustDomain: TRUST_DOMAIN } : null;
  const svc = service({
    runtime: {
      kind: 'service',
      name: 'payments',
      dataDir: dir,
      adminPort: await freePort(),
      manifestFile: join(dir, 'rampart.yaml'),
      port,
      identity: { issuer: 'https://issuer.invalid', audience: 'https://api.shop.local', jwksUri: null },
      peers: {},
      ...(control
        ? {
            control,
            joinToken: (await requestJoinToken(control, CREDENTIAL, 'payments')).token,
            policy: {
              version: 1,
              callers: { [serviceSpiffeId(TRUST_DOMAIN, 'orders').id]: [{ methods: ['POST'], paths: ['/charges'] }] },
            },
          }
        : {}),
    },
    verifier: noTokens,
    logger: silent('payments'),
  });
  services.push(svc);
  svc.app.post('/charges', async () => ({ ok: true }));
  await svc.start();
  return { svc, port };
}

/**
 * The floor's handler: read the request body, answer what the SDK's route answers (fastify sends the
 * same body, type and length), nothing else.
 */
const FLOOR_BODY = '{"ok":true}';
const FLOOR_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'content-length': String(Buffer.byteLength(FLOOR_BODY)),
};
function floorHandler(req: IncomingMessage, res: ServerResponse): void {
  req.on('end', () => {
    res.writeHead(200, FLOOR_HEADERS);
    res.end(FLOOR_BODY);
  });
  req.resume();
}
const floors: Server[] = [];

/**
 * The floor servers: bare `node:http`, and bare `node:https` with the TLS settings of the SDK's server
 * (client certificate required, chained to the bundle; TLS 1.2 floor) and payments' SVID, so the client's
 * SPIFFE check of the server passes as it does against the SDK.
 */
async function startFloor(svid: CurrentSvid | null): Promise<number> {
  const server = svid
    ? createHttpsServer(
        {
          key: svid.keyPem,
          cert: svid.certificatePem,
          ca: svid.bundlePem,
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: SDK_TLS_DEFAULTS.minVersion,
        },
        floorHandler,
      )
    : createHttpServer(floorHandler);
  floors.push(server);
  const port = await freePort();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return port;
}

/** `orders`' SVID, the way a workload gets its first one: its own key, a join token, `POST /v1/svids`. */
async function ordersSvid(controlUrl: string): Promise<ClientTls> {
  const control = { url: controlUrl, bundle: t.ca.bundle().pem, trustDomain: TRUST_DOMAIN };
  const { token } = await requestJoinToken(control, CREDENTIAL, 'orders');
  const key = await createWorkloadKey();
  const svid = await requestSvid(control, token, key.csrPem);
  return {
    cert: svid.certificate,
    key: key.keyPem,
    ca: svid.bundle.pem,
    expectedId: serviceSpiffeId(TRUST_DOMAIN, 'payments').id,
    trustDomain: TRUST_DOMAIN,
  };
}

/**
 * A secured line must refuse what it is there to refuse, or its figures mean nothing: `ok` expects
 * 200 `{"ok":true}`; `refused` sends no client certificate and expects the TLS layer to refuse it.
 */
async function probe(url: string, tls: ClientTls | null, expect: 'ok' | 'refused'): Promise<void> {
  const connect = tls
    ? {
        ca: tls.ca,
        checkServerIdentity: spiffeServerCheck(tls.expectedId, tls.trustDomain),
        ...(expect === 'ok' ? { cert: tls.cert, key: tls.key } : {}),
      }
    : {};
  const dispatcher = new Agent({ connect });
  let answer: string;
  try {
    const res = await request(url, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
      dispatcher,
    });
    answer = `${res.statusCode} ${await res.body.text()}`;
  } catch (err) {
    answer = `error ${(err as { code?: string }).code ?? (err as Error).message}`;
  } finally {
    await dispatcher.close();
  }
  const refused = answer.startsWith('error ') && !answer.includes(CONTROL_API_ERRORS.wrongIdentity);
  if (expect === 'ok' ? answer !== '200 {"ok":true}' : !refused) {
    throw new Error(`probe ${expect} of ${url}: got ${answer}`);
  }
}

// ── measuring ──────────────────────────────────────────────────────────────────────────────────────

const worker = new Worker(new URL('./mtls/load-worker.ts', import.meta.url));

interface Measurement {
  /** Per second of the window. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU µs of the server thread (this one) per request or connection. */
  serverCpuUs: number;
  /** CPU µs of the load generator's thread per request or connection. */
  clientCpuUs: number;
  /** Server thread CPU as a share of one core. */
  serverBusy: number;
  resumedShare: number;
}

function measure(job: LoadJob): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    let cpu: NodeJS.CpuUsage | null = null;
    const onMessage = (reply: LoadReply | { type: 'error'; message: string }) => {
      if (reply.type === 'measuring') {
        cpu = process.threadCpuUsage();
        return;
      }
      worker.off('message', onMessage);
      if (reply.type === 'error') return reject(new Error(reply.message));
      const used = process.threadCpuUsage(cpu ?? undefined);
      if (reply.failures > 0 || reply.completed === 0) {
        return reject(new Error(`INVALID RUN: ${reply.failures} failures (first: ${reply.firstFailure})`));
      }
      const serverUs = used.user + used.system;
      resolve({
        rate: reply.completed / (reply.elapsedMs / 1_000),
        p50Ms: reply.p50Ms,
        p99Ms: reply.p99Ms,
        serverCpuUs: serverUs / reply.completed,
        clientCpuUs: reply.clientCpuUs / reply.completed,
        serverBusy: serverUs / 1_000 / reply.elapsedMs,
        resumedShare: reply.resumed / reply.completed,
      });
    };
    worker.on('message', onMessage);
    worker.postMessage(job);
  });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const fmt = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '–';

interface Line {
  id: string;
  what: string;
  unit: 'req' | 'conn';
  job: LoadJob;
  results: Measurement[];
}

function table(lines: Line[]): string {
  const header = ['line', 'per s', 'min–max', 'p50 ms', 'p99 ms', 'server µs CPU', 'server busy', 'client µs CPU'];
  const rows = lines.map((line) => {
    const r = line.results;
    const rates = r.map((m) => m.rate);
    return [
      line.what,
      fmt(median(rates)),
      `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`,
      fmt(median(r.map((m) => m.p50Ms)), 2),
      fmt(median(r.map((m) => m.p99Ms)), 2),
      fmt(median(r.map((m) => m.serverCpuUs)), line.unit === 'req' ? 1 : 0),
      `${fmt(median(r.map((m) => m.serverBusy)) * 100)} %`,
      fmt(median(r.map((m) => m.clientCpuUs)), line.unit === 'req' ? 1 : 0),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const render = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [render(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(render)].join('\n');
}

/** Median CPU µs per request or connection of one side. */
function cpu(line: Line, side: 'server' | 'client'): number {
  return median(line.results.map((m) => (side === 'server' ? m.serverCpuUs : m.clientCpuUs)));
}

/** Median over rounds of a per-round ratio (lines of one round ran seconds apart). */
function ratio(a: Line, b: Line, of: (m: Measurement) => number): { median: number; perRound: number[] } {
  const perRound = a.results.map((m, i) => of(m) / of(b.results[i] as Measurement));
  return { median: median(perRound), perRound };
}

try {
  cert = await createServerCertificate({ ca: t.ca, logger: silent('control'), onRenewed: () => api?.refreshTls() });
  const held = cert;
  api = createControlApi({
    ca: t.ca,
    launcherCredential: CREDENTIAL,
    credentials: () => held.current(),
    logger: silent('control'),
  });
  const controlUrl = `https://127.0.0.1:${await api.listen(0)}`;
  const plain = await startPayments(null);
  const secured = await startPayments(controlUrl);
  const tls = await ordersSvid(controlUrl);
  const plainUrl = `http://127.0.0.1:${plain.port}/charges`;
  const securedUrl = `https://127.0.0.1:${secured.port}/charges`;
  const paymentsSvid = secured.svc.svid();
  if (!paymentsSvid) throw new Error('payments has no SVID');
  const floorHttpUrl = `http://127.0.0.1:${await startFloor(null)}/charges`;
  const floorHttpsUrl = `https://127.0.0.1:${await startFloor(paymentsSvid)}/charges`;
  await probe(plainUrl, null, 'ok');
  await probe(securedUrl, tls, 'ok');
  await probe(securedUrl, tls, 'refused');
  await probe(floorHttpUrl, null, 'ok');
  await probe(floorHttpsUrl, tls, 'ok');
  await probe(floorHttpsUrl, tls, 'refused');

  const window = { connections, warmupMs: WARMUP_MS, durationMs: seconds * 1_000 };
  const lines: Line[] = [
    {
      id: 'http',
      what: 'keep-alive: plain HTTP',
      unit: 'req',
      job: { type: 'requests', url: plainUrl, tls: null, ...window },
      results: [],
    },
    {
      id: 'mtls',
      what: 'keep-alive: mTLS',
      unit: 'req',
      job: { type: 'requests', url: securedUrl, tls, ...window },
      results: [],
    },
    {
      id: 'floor-http',
      what: 'floor: bare node:http',
      unit: 'req',
      job: { type: 'requests', url: floorHttpUrl, tls: null, ...window },
      results: [],
    },
    {
      id: 'floor-https',
      what: 'floor: bare node:https, client cert',
      unit: 'req',
      job: { type: 'requests', url: floorHttpsUrl, tls, ...window },
      results: [],
    },
    {
      id: 'tcp',
      what: 'new connection: TCP',
      unit: 'conn',
      job: { type: 'connects', port: plain.port, tls: null, ...window },
      results: [],
    },
    {
      id: 'handshake',
      what: 'new connection: mTLS full handshake',
      unit: 'conn',
      job: { type: 'connects', port: secured.port, tls: { ...tls, resume: false, sharedContext: true }, ...window },
      results: [],
    },
    {
      id: 'resumed',
      what: 'new connection: mTLS resumed',
      unit: 'conn',
      job: { type: 'connects', port: secured.port, tls: { ...tls, resume: true, sharedContext: true }, ...window },
      results: [],
    },
    {
      id: 'sdk-handshake',
      what: 'new connection: mTLS full, context per connection',
      unit: 'conn',
      job: { type: 'connects', port: secured.port, tls: { ...tls, resume: false, sharedContext: false }, ...window },
      results: [],
    },
  ];
  const started = loadavg()[0] ?? 0;
  for (let round = 0; round < rounds; round++) {
    for (const line of lines) {
      if (only && !only.includes(line.id)) continue;
      const m = await measure(line.job);
      line.results.push(m);
      process.stderr.write(
        `round ${round + 1}/${rounds} ${line.what}: ${fmt(m.rate)}/s, p99 ${fmt(m.p99Ms, 2)} ms, ` +
          `server ${fmt(m.serverCpuUs, 1)} µs, client ${fmt(m.clientCpuUs, 1)} µs CPU per ${line.unit}\n`,
      );
    }
  }
  const byId = (id: string): Line => {
    const found = lines.find((line) => line.id === id);
    if (!found) throw new Error(`no line ${id}`);
    return found;
  };
  const [http, mtls, floorHttp, floorHttps, tcp, handshake, resumed, sdkHandshake] = [
    'http',
    'mtls',
    'floor-http',
    'floor-https',
    'tcp',
    'handshake',
    'resumed',
    'sdk-handshake',
  ].map(byId) as [Line, Line, Line, Line, Line, Line, Line, Line];
  const rps = ratio(mtls, http, (m) => m.rate);
  const floorRps = ratio(floorHttps, floorHttp, (m) => m.rate);
  const perCpu = ratio(mtls, http, (m) => 1 / m.serverCpuUs);
  const floorPerCpu = ratio(floorHttps, floorHttp, (m) => 1 / m.serverCpuUs);
  const pct = (x: number) => `${fmt((1 - x) * 100, 1)} %`;
  const rounds_ = (r: { perRound: number[] }) => `per round ${r.perRound.map(pct).join(', ')}`;
  const added = (tlsLine: Line, plainLine: Line, side: 'server' | 'client') =>
    `${fmt(cpu(tlsLine, side) - cpu(plainLine, side), 1)} µs`;
  const out = [
    '',
    `mTLS benchmark: ${seconds} s per line after ${WARMUP_MS / 1_000} s of warm-up, ${connections} connections, ` +
      `${rounds} rounds (medians), ${availableParallelism()} cores, load average ${fmt(started, 2)} → ` +
      `${fmt(loadavg()[0] ?? 0, 2)}, Node ${process.version}`,
    '',
    table(lines.filter((line) => line.results.length > 0)),
    '',
    `rps lost to mTLS on the keep-alive pool: ${pct(rps.median)} (${rounds_(rps)}; goal ≤ 10 %)`,
    `  floor, bare node:http → node:https with a client certificate: ${pct(floorRps.median)} (${rounds_(floorRps)})`,
    `server requests per CPU-second lost to mTLS: ${pct(perCpu.median)} (${rounds_(perCpu)}); ` +
      `floor ${pct(floorPerCpu.median)} (${rounds_(floorPerCpu)})`,
    `CPU per request added by TLS: server ${added(mtls, http, 'server')} (floor ${added(floorHttps, floorHttp, 'server')}), ` +
      `client ${added(mtls, http, 'client')} (floor ${added(floorHttps, floorHttp, 'client')})`,
    `server CPU per mTLS handshake beyond a TCP connect: full ${fmt(cpu(handshake, 'server') - cpu(tcp, 'server'))} µs, ` +
      `resumed ${fmt(cpu(resumed, 'server') - cpu(tcp, 'server'))} µs ` +
      `(${fmt(median(resumed.results.map((m) => m.resumedShare)) * 100)} % of the resumed line's handshakes resumed)`,
    `client CPU per full handshake: ${fmt(cpu(handshake, 'client'))} µs with one TLS context (what the SDK does: ` +
      `one per SVID), ${fmt(cpu(sdkHandshake, 'client'))} µs building it per connection from the PEM (the SDK before 33e445d)`,
    '',
    'What each line is (the server is the SDK service in the main thread; the client a worker thread):',
    '- keep-alive: plain HTTP — POST /charges over reused connections to the service started without a control plane',
    '  (no TLS, no caller check). per s = requests per second; p50/p99 = request latency seen by the client.',
    '- keep-alive: mTLS — the same requests to the service as it runs under `rampart start`: TLS 1.3 with the',
    '  client SVID, caller SPIFFE ID checked once per connection, inbound policy per request; the client checks',
    "  the server's SPIFFE ID. Connections are reused: after the first handshakes, this is record encryption and",
    '  the policy check.',
    '- floor: bare node:http, floor: bare node:https, client cert — the same client and requests against a bare Node',
    '  server in the same thread answering the same {"ok":true} after reading the body: no fastify, no SDK; the https',
    "  one requires a client certificate chained to the bundle and presents payments' SVID. Its loss is Node's TLS;",
    "  the SDK line's loss beyond it is fastify's and the SDK's.",
    '- new connection: TCP — connect, close, wait for the close: no request. per s = connections per second.',
    '- new connection: mTLS full handshake — the same with a TLS 1.3 handshake, both certificates verified (P-256',
    '  SVIDs, ECDHE), no session reuse: what every new pooled connection to a peer costs. The client builds its',
    "  TLS context once. The server's SPIFFE check of the caller runs at the first request, so not here.",
    '- new connection: mTLS resumed — the same resuming a session ticket from an earlier connection (no certificate',
    '  exchange; still an ECDHE key exchange).',
    '- new connection: mTLS full, context per connection — the full handshake with a new TLS context (bundle,',
    "  certificate and key parsed from PEM) for every connection: what PEM connect options cost undici (the SDK's",
    '  before 33e445d; it now builds one context per SVID).',
    '- server µs CPU = CPU time of the server thread in the window ÷ requests (or connections); server busy = that',
    "  thread's CPU as a share of one core (below 100 %: it waited for the client or for a core); client µs CPU =",
    '  the same for the load generator. On a shared machine compare CPU µs, not rates, across runs.',
  ];
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await worker.terminate();
  for (const server of floors) {
    server.closeAllConnections();
    server.close();
  }
  for (const svc of services.reverse()) await svc.close();
  cert?.close();
  await api?.close();
  api?.server.closeAllConnections();
  clearInterval(realClock);
  t.cleanup();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
