/**
 * Gateway benchmark: the Rampart gateway against nginx and HAProxy on the same upstream, in one run.
 *
 *   node bench/gateway.ts [--seconds 8] [--connections 64] [--warmup 2] [--rounds 1]
 *                         [--memory-connections 1000] [--memory-seconds 6] [--no-tls] [--no-memory]
 *                         [--only id,id] [--json file] [--keep] [--profile [--profile-seconds 10]]
 *                         [--gateway-flags '...'] [--from-dist]
 *
 * Needs `nginx`, `haproxy`, `wrk` and `openssl` (Debian: `apt-get install -y nginx-light haproxy wrk`).
 * Every line is measured with wrk, one thread, the same connections and duration, one line after
 * another, after a short warm-up. What each line is and how to read the figures: bench/README.md.
 * Exit code 1 when any measured line had an error response or a socket error (the run is invalid).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { rampartPackageRoot } from '../src/launcher/allow-list.ts';
import { freePort } from '../src/launcher/ports.ts';
import { summarizeProfile } from './gateway/cpu-profile.ts';
import { type BenchIssuer, makeTlsCertificate, startBenchIssuer, type TlsFiles } from './gateway/credentials.ts';
import { type Peers, startPeers, UPSTREAM_BODY } from './gateway/peers.ts';
import { probe } from './gateway/probe.ts';
import { cpuSeconds, openSockets, ProcessGroup, rssBytes, threadCount, waitForPort } from './gateway/processes.ts';
import {
  FULL_PATH,
  type GatewayVariant,
  PLAIN_PATH,
  type RunningGateway,
  startGateway,
  writeProject,
} from './gateway/rampart-gateway.ts';
import { formatRatios, formatTable, invalidity, type Line, type Measurement, markdownTable } from './gateway/report.ts';
import { runWrk, type WrkResult } from './gateway/wrk.ts';

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '1' },
    'memory-connections': { type: 'string', default: '1000' },
    'memory-seconds': { type: 'string', default: '6' },
    'no-tls': { type: 'boolean', default: false },
    'no-memory': { type: 'boolean', default: false },
    only: { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-seconds': { type: 'string', default: '10' },
    'gateway-flags': { type: 'string', default: '' },
    'from-dist': { type: 'boolean', default: false },
  },
});
const int = (name: keyof typeof opts, min: number): number => {
  const value = Number(opts[name]);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
  return value;
};
const SECONDS = int('seconds', 1);
const CONNECTIONS = int('connections', 1);
const WARMUP = int('warmup', 0);
const ROUNDS = int('rounds', 1);
const MEMORY_CONNECTIONS = int('memory-connections', 1);
const MEMORY_SECONDS = int('memory-seconds', 1);
const PROFILE_SECONDS = int('profile-seconds', 1);
const ONLY = opts.only ? new Set(opts.only.split(',')) : null;
/** Extra Node flags for every Rampart gateway (tuning experiments: `--gateway-flags=--max-semi-space-size=8`). */
const GATEWAY_FLAGS = (opts['gateway-flags'] ?? '').split(' ').filter(Boolean);
/** Run the Rampart gateways from a fresh build of `dist/` (what an installed package runs) instead of the sources. */
const FROM_DIST = opts['from-dist'] === true;

/** What one line needs: where to send load, what proves the line is real, whose CPU to count. */
interface LineSpec {
  id: string;
  label: string;
  url: string;
  /** Sends the bench token; the line must also refuse a request without one (401). */
  secured: boolean;
  /** Process whose tree's CPU time is the line's server cost. */
  pid: number;
  /** Extra check of the answer (Rampart's full chain must show its rate limiter ran). */
  check?: (headers: Record<string, string | string[] | undefined>) => string | null;
}

const out = (text = '') => process.stdout.write(`${text}\n`);
const root = rampartPackageRoot();
const work = mkdtempSync(join(tmpdir(), 'rampart-bench-'));
const processes = new ProcessGroup();
let issuer: BenchIssuer | null = null;
let cleaning: Promise<void> | null = null;
const cleanup = () => {
  cleaning ??= (async () => {
    await processes.stopAll();
    await issuer?.close();
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
  })();
  return cleaning;
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping every benchmark process\n`);
    void cleanup().then(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  requireTools();
  if (FROM_DIST) buildDist();
  const tls = makeTlsCertificate(work);
  issuer = await startBenchIssuer(work);
  const peers = await startPeers(processes, work, tls, issuer.publicKeyFile);
  if (opts.profile) return profileFullChain(peers, issuer);

  const features = detectFeatures(issuer.jwksUri, tls);
  out(`# Gateway benchmark, ${new Date().toISOString()}`);
  out(
    `wrk -t1 -c${CONNECTIONS} -d${SECONDS}s after ${WARMUP}s warm-up, ${ROUNDS} round(s); node ${process.version}; ` +
      `${cpus().length} cores, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  for (const note of features.notes) out(`note: ${note}`);
  if (GATEWAY_FLAGS.length > 0) out(`note: gateways run with extra Node flags ${GATEWAY_FLAGS.join(' ')}`);
  if (FROM_DIST)
    out('note: the Rampart gateways run from dist/ (built JavaScript, as installed), not the TypeScript sources');

  const gateways = new Map<string, RunningGateway>();
  for (const variant of features.variants) {
    const started = await startGateway(processes, work, variant, peers.upstream.port, issuer.jwksUri);
    if ('unsupported' in started) {
      out(`note: gateway ${variant.name} not measured: the manifest loader refuses it (${started.unsupported})`);
      continue;
    }
    gateways.set(variant.name, started);
  }

  const floorPort = await freePort();
  const floor = processes.start(
    'bare Node proxy',
    process.execPath,
    [join(root, 'bench/gateway/node-floor-proxy.ts'), String(floorPort), String(peers.upstream.port)],
    { cwd: root },
  );
  await waitForPort(floorPort, 10_000, () => floor.child.exitCode === null);

  const w1 = gateways.get('w1');
  const w2 = gateways.get('w2');
  if (w1 && w2 && threadCount(w2.process.pid) <= threadCount(w1.process.pid)) {
    out('note: the 2-worker gateway runs no more threads or processes than the 1-worker one: `workers` is ignored');
  }
  const specs = lineSpecs(peers, gateways, { port: floorPort, pid: floor.pid }).filter(
    (spec) => !ONLY || ONLY.has(spec.id),
  );
  const checked: LineSpec[] = [];
  for (const spec of specs) {
    const problem = await checkLine(spec, issuer.token, tls);
    if (problem) out(`note: ${spec.label} not measured: ${problem}`);
    else checked.push(spec);
  }

  const lines: Line[] = checked.map((spec) => ({ id: spec.id, label: spec.label, rounds: [] }));
  for (let round = 1; round <= ROUNDS; round++) {
    // Even rounds run the lines in reverse order, so a slow drift of the machine's load does not
    // always favour the same lines.
    const order = [...checked.keys()];
    if (round % 2 === 0) order.reverse();
    for (const i of order) {
      const spec = checked[i]!;
      process.stderr.write(`round ${round}/${ROUNDS}: ${spec.label}…\n`);
      const headers = spec.secured ? [`Authorization: Bearer ${issuer.token}`] : [];
      if (WARMUP > 0) await runWrk(processes, { url: spec.url, seconds: WARMUP, connections: CONNECTIONS, headers });
      lines[i]!.rounds.push(await measure(spec, headers));
    }
  }

  out();
  out(formatTable(lines));
  out();
  out(formatRatios(lines));

  // Memory is measured on fresh gateways (started now, same manifest): the figure is what 1,000
  // connections cost, not the heap high-water mark left by the throughput lines above.
  const memory: MemoryReport[] = [];
  if (!opts['no-memory']) {
    for (const variant of features.variants.filter((v) => v.name === 'w1' || v.name === 'w2')) {
      if (ONLY && !ONLY.has(`memory-${variant.name}`)) continue;
      for (const load of ['paced', 'full speed'] as const) {
        for (const old of gateways.values()) await old.process.stop();
        gateways.clear();
        const fresh = await startGateway(
          processes,
          work,
          { ...variant, name: `${variant.name}-memory` },
          peers.upstream.port,
          issuer.jwksUri,
        );
        if ('unsupported' in fresh) break;
        memory.push(await measureMemory(fresh, issuer.token, load));
        await fresh.process.stop();
      }
    }
    if (memory.length > 0) {
      out();
      out(formatMemory(memory));
    }
  }
  out();
  out(`JWKS fetches by the gateways: ${issuer.jwksFetches}`);

  const invalid = lines.flatMap((line) =>
    line.rounds.map((m, r) => [line.label, r + 1, invalidity(m)] as const).filter(([, , why]) => why !== ''),
  );
  const memoryInvalid = memory.filter((m) => m.problem !== '');
  if (opts.json) {
    writeFileSync(
      opts.json,
      JSON.stringify(
        { date: new Date().toISOString(), seconds: SECONDS, connections: CONNECTIONS, lines, memory },
        null,
        2,
      ),
    );
  }
  if (invalid.length > 0 || memoryInvalid.length > 0) {
    out();
    out('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
    out('!!! INVALID RUN: some lines answered errors; their figures do not count !!!');
    for (const [label, round, why] of invalid) out(`!!! ${label} (round ${round}): ${why}`);
    for (const m of memoryInvalid) out(`!!! memory ${m.name}: ${m.problem}`);
    out('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
    return 1;
  }
  return 0;
}

/** Builds `dist/` from this checkout's sources (`tsc -p tsconfig.build.json`, as `npm pack` does). */
function buildDist(): void {
  process.stderr.write('building dist/ (tsc -p tsconfig.build.json)…\n');
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}

function requireTools(): void {
  const missing = ['wrk', 'nginx', 'haproxy', 'openssl'].filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(', ')}: install them (Debian: apt-get install -y nginx-light haproxy wrk)`);
  }
}

/**
 * Which gateway variants this checkout can run: `gateway.workers` and `gateway.limits` are tried on the
 * manifest loader; without `workers` the gateway is one process (one core), which is what w1 measures.
 * The per-client connection cap is raised because every benchmark connection comes from 127.0.0.1.
 */
function detectFeatures(jwksUri: string, tls: TlsFiles): { variants: GatewayVariant[]; notes: string[] } {
  const notes: string[] = [];
  const accepts = (variant: GatewayVariant) => !('unsupported' in writeProject(work, variant, 1, jwksUri));
  const workers = accepts({ name: 'probe-workers', workers: 1 });
  const perClient = Math.max(MEMORY_CONNECTIONS, CONNECTIONS) + 64;
  const limits = accepts({ name: 'probe-limits', maxConnectionsPerClient: perClient });
  rmSync(join(work, 'rampart-probe-workers'), { recursive: true, force: true });
  rmSync(join(work, 'rampart-probe-limits'), { recursive: true, force: true });
  if (!workers) notes.push('this checkout has no `gateway.workers`: the gateway runs as one process');
  if (!limits) notes.push('this checkout has no `gateway.limits`: default connection caps apply');
  const base: Omit<GatewayVariant, 'name'> = {
    nodeFlags: GATEWAY_FLAGS,
    ...(FROM_DIST ? { fromDist: true } : {}),
    ...(workers ? { workers: 1 } : {}),
    ...(limits ? { maxConnectionsPerClient: perClient } : {}),
  };
  const variants: GatewayVariant[] = [{ name: 'w1', ...base }];
  if (workers) variants.push({ ...base, name: 'w2', workers: 2 });
  if (!opts['no-tls']) variants.push({ ...base, name: 'w1-tls', tls });
  return { variants, notes };
}

function lineSpecs(
  peers: Peers,
  gateways: ReadonlyMap<string, RunningGateway>,
  floor: { port: number; pid: number },
): LineSpec[] {
  const local = (port: number, path: string, scheme = 'http') => `${scheme}://127.0.0.1:${port}${path}`;
  const rateLimited = (headers: Record<string, string | string[] | undefined>) =>
    headers['ratelimit'] === undefined ? 'no RateLimit field on the answer: the limiter did not run' : null;
  const specs: LineSpec[] = [
    {
      id: 'direct',
      label: 'upstream direct (the ceiling)',
      url: local(peers.upstream.port, PLAIN_PATH),
      secured: false,
      pid: peers.upstream.process.pid,
    },
    {
      id: 'nginx',
      label: 'nginx plain proxy',
      url: local(peers.nginx.port, PLAIN_PATH),
      secured: false,
      pid: peers.nginx.process.pid,
    },
    {
      id: 'haproxy',
      label: 'HAProxy plain proxy',
      url: local(peers.haproxy.plainPort, PLAIN_PATH),
      secured: false,
      pid: peers.haproxy.process.pid,
    },
    {
      id: 'haproxy-jwt',
      label: 'HAProxy ES256 jwt_verify + claims + limit',
      url: local(peers.haproxy.securedPort, FULL_PATH),
      secured: true,
      pid: peers.haproxy.process.pid,
    },
    {
      id: 'node-floor',
      label: 'bare Node proxy (http + undici, no checks)',
      url: local(floor.port, PLAIN_PATH),
      secured: false,
      pid: floor.pid,
    },
  ];
  const w1 = gateways.get('w1');
  if (w1) {
    specs.push(
      {
        id: 'rampart-plain',
        label: 'Rampart plain route (1 worker)',
        url: w1.url + PLAIN_PATH,
        secured: false,
        pid: w1.process.pid,
      },
      {
        id: 'rampart-full',
        label: 'Rampart full chain (1 worker)',
        url: w1.url + FULL_PATH,
        secured: true,
        pid: w1.process.pid,
        check: rateLimited,
      },
    );
  }
  const w2 = gateways.get('w2');
  if (w2) {
    specs.push({
      id: 'rampart-full-w2',
      label: 'Rampart full chain (2 workers)',
      url: w2.url + FULL_PATH,
      secured: true,
      pid: w2.process.pid,
      check: rateLimited,
    });
  }
  if (!opts['no-tls']) {
    specs.push(
      {
        id: 'nginx-tls',
        label: 'nginx proxy, TLS 1.3',
        url: local(peers.nginx.tlsPort, PLAIN_PATH, 'https'),
        secured: false,
        pid: peers.nginx.process.pid,
      },
      {
        id: 'haproxy-jwt-tls',
        label: 'HAProxy jwt + limit, TLS 1.3',
        url: local(peers.haproxy.securedTlsPort, FULL_PATH, 'https'),
        secured: true,
        pid: peers.haproxy.process.pid,
      },
    );
    const tlsGateway = gateways.get('w1-tls');
    if (tlsGateway) {
      specs.push({
        id: 'rampart-full-tls',
        label: 'Rampart full chain, TLS (1 worker)',
        url: tlsGateway.url + FULL_PATH,
        secured: true,
        pid: tlsGateway.process.pid,
        check: rateLimited,
      });
    }
  }
  return specs;
}

/** Null when the line answers the upstream's body (and a secured line refuses an anonymous request). */
async function checkLine(spec: LineSpec, token: string, tls: TlsFiles): Promise<string | null> {
  const ca = readFileSync(tls.cert, 'utf8');
  try {
    const answer = await probe(spec.url, spec.secured ? { authorization: `Bearer ${token}` } : {}, ca);
    if (answer.status !== 200 || answer.body !== UPSTREAM_BODY) {
      return `expected 200 ${UPSTREAM_BODY}, got ${answer.status} ${answer.body.slice(0, 200)}`;
    }
    const extra = spec.check?.(answer.headers);
    if (extra) return extra;
    if (spec.secured) {
      const anonymous = await probe(spec.url, {}, ca);
      if (anonymous.status !== 401) return `a request without a token got ${anonymous.status}, not 401`;
    }
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
      return 'no TLS handshake on an https line (the server answered in plain HTTP: TLS not implemented?)';
    }
    return `probe failed (${(err as Error).message.trim()})`;
  }
}

async function measure(spec: LineSpec, headers: string[]): Promise<Measurement> {
  const cpuBefore = cpuSeconds(spec.pid);
  const started = performance.now();
  const result = await runWrk(processes, { url: spec.url, seconds: SECONDS, connections: CONNECTIONS, headers });
  const seconds = (performance.now() - started) / 1000;
  return { result, seconds, cpuSeconds: cpuSeconds(spec.pid) - cpuBefore };
}

interface MemoryReport {
  name: string;
  /** `full speed`: every connection sends its next request at once; `paced`: about one request per second each. */
  load: 'full speed' | 'paced';
  connections: number;
  idleRss: number;
  maxRss: number;
  /** Most sockets the gateway held at one sample (client connections, listeners, upstream pool). */
  maxSockets: number;
  result: WrkResult;
  problem: string;
}

/**
 * wrk's `delay()` hook: each connection waits 0–2 s (1 s on average) before its next request, so 1,000
 * connections offer about 1,000 rps, spread out rather than in synchronized waves.
 */
const PACED_SCRIPT = 'function delay()\n  return math.random(0, 2000)\nend\n';

/**
 * RSS of the gateway process while wrk holds `--memory-connections` keep-alive connections on the full
 * chain, sampled every 100 ms from /proc/<pid>/status (VmRSS covers every worker thread of the process).
 * Two loads: every connection at full speed (overload: 1,000 requests in flight), and paced at one
 * request per second per connection (many open, mostly idle keep-alive connections).
 */
async function measureMemory(
  gateway: RunningGateway,
  token: string,
  load: MemoryReport['load'],
): Promise<MemoryReport> {
  process.stderr.write(`memory: ${MEMORY_CONNECTIONS} connections (${load}) on gateway ${gateway.variant.name}…\n`);
  const pid = gateway.process.pid;
  await delay(500);
  const idleRss = rssBytes(pid);
  let maxRss = idleRss;
  let maxSockets = 0;
  const sampler = setInterval(() => {
    maxRss = Math.max(maxRss, rssBytes(pid));
    maxSockets = Math.max(maxSockets, openSockets(pid));
  }, 100);
  const script = join(work, 'paced.lua');
  if (load === 'paced') writeFileSync(script, PACED_SCRIPT);
  try {
    const result = await runWrk(processes, {
      url: gateway.url + FULL_PATH,
      seconds: MEMORY_SECONDS,
      connections: MEMORY_CONNECTIONS,
      headers: [`Authorization: Bearer ${token}`],
      ...(load === 'paced' ? { script } : {}),
    });
    // Timeouts under overload are a finding (reported), not an invalid measurement of memory.
    const { non2xx, socketErrors: e } = result;
    const problem = [
      non2xx > 0 ? `${non2xx} non-2xx responses` : '',
      e.connect + e.read + e.write > 0 ? `socket errors: connect ${e.connect}, read ${e.read}, write ${e.write}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    return {
      name: gateway.variant.name,
      load,
      connections: MEMORY_CONNECTIONS,
      idleRss,
      maxRss,
      maxSockets,
      result,
      problem,
    };
  } finally {
    clearInterval(sampler);
  }
}

function formatMemory(reports: readonly MemoryReport[]): string {
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  return markdownTable(
    [
      'gateway RSS, full chain',
      'load',
      'sockets held (max)',
      'RSS before (MB)',
      'max RSS (MB)',
      'rps',
      'p99 ms',
      'timeouts',
      'target ≤ 150 MB',
    ],
    reports.map((r) => [
      r.name.startsWith('w1') ? '1 worker' : '2 workers',
      `${r.connections} conns, ${r.load}`,
      String(r.maxSockets),
      mb(r.idleRss),
      mb(r.maxRss),
      r.result.rps.toFixed(0),
      r.result.p99Ms.toFixed(1),
      String(r.result.socketErrors.timeout),
      r.maxRss <= 150 * 1024 * 1024 ? 'met' : 'NOT MET',
    ]),
  );
}

/**
 * Profiles the full chain: a one-worker gateway under `node --cpu-prof` (without the permission flags,
 * which would stop the profiler writing its file), the usual load for `--profile-seconds`, then the
 * hottest functions and origins by self time.
 */
async function profileFullChain(peers: Peers, bench: BenchIssuer): Promise<number> {
  const dir = join(work, 'profile');
  const variant: GatewayVariant = {
    name: 'profile',
    withoutPermissions: true,
    nodeFlags: [...GATEWAY_FLAGS, '--cpu-prof', `--cpu-prof-dir=${dir}`],
    ...(FROM_DIST ? { fromDist: true } : {}),
  };
  if (!('unsupported' in writeProject(work, { name: 'probe-workers', workers: 1 }, await freePort(), bench.jwksUri))) {
    variant.workers = 1;
  }
  const gateway = await startGateway(processes, work, variant, peers.upstream.port, bench.jwksUri);
  if ('unsupported' in gateway) throw new Error(`cannot start the profiled gateway: ${gateway.unsupported}`);
  const headers = [`Authorization: Bearer ${bench.token}`];
  const url = gateway.url + FULL_PATH;
  if (WARMUP > 0) await runWrk(processes, { url, seconds: WARMUP, connections: CONNECTIONS, headers });
  const result = await runWrk(processes, { url, seconds: PROFILE_SECONDS, connections: CONNECTIONS, headers });
  await gateway.process.stop(30_000); // SIGTERM: the gateway exits and Node writes the profile
  // Node writes one profile per thread (the supervising main thread and each worker): the busiest
  // thread is the one serving requests.
  const profiles = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => ({ file: f, summary: summarizeProfile(join(dir, f), root) }))
    .sort((a, b) => b.summary.totalUs * (1 - b.summary.idleShare) - a.summary.totalUs * (1 - a.summary.idleShare));
  if (profiles.length === 0) throw new Error(`the gateway wrote no profile into ${dir}`);
  const { file, summary } = profiles[0]!;
  const pct = (share: number) => `${(share * 100).toFixed(1)}%`;
  out(`# CPU profile of the full chain (1 worker), ${new Date().toISOString()}`);
  out(
    `${result.rps.toFixed(0)} rps under the profiler (wrk -t1 -c${CONNECTIONS}, ${PROFILE_SECONDS}s); ` +
      `idle ${pct(summary.idleShare)} of sampled time; the busiest of ${profiles.length} thread profile(s): ` +
      `${join(dir, file)}${opts.keep ? '' : ' (deleted at exit; --keep keeps it)'}`,
  );
  out();
  out(
    markdownTable(
      ['self time by origin', 'share'],
      summary.origins.slice(0, 20).map((h) => [h.name, pct(h.share)]),
    ),
  );
  out();
  out(
    markdownTable(
      ['self time by function', 'share'],
      summary.functions.slice(0, 30).map((h) => [h.name, pct(h.share)]),
    ),
  );
  out();
  out(
    markdownTable(
      ['self time charged to the nearest Rampart or dependency caller', 'share'],
      summary.callers.slice(0, 25).map((h) => [h.name, pct(h.share)]),
    ),
  );
  return invalidity({ result, seconds: PROFILE_SECONDS, cpuSeconds: null }) === '' ? 0 : 1;
}

// Last: every declaration above is initialized before the run starts.
try {
  process.exitCode = await main();
} catch (err) {
  // After Ctrl-C the processes were stopped under the run's feet: that is not worth a stack trace.
  if (cleaning === null) console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 2;
} finally {
  await cleanup();
  if (opts.keep) out(`kept ${work}`);
}
