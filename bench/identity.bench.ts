/**
 * Benchmarks of the built-in identity provider (issue 5). Not a test: `node --conditions=rampart-source
 * bench/identity.bench.ts [seconds]` prints
 *
 * 1. login cost: one argon2id verification at the production parameters (what every login attempt,
 *    successful, failed or for an unknown user, pays), sequentially and at the provider's concurrency cap;
 * 2. client-credentials issuance: token requests per second over HTTP against an in-process provider
 *    (SQLite store; PostgreSQL too when RAMPART_TEST_POSTGRES_URL or the local server is reachable),
 *    with latency percentiles. Each token is an ES256-signed RFC 9068 JWT; nothing is stored for it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { createMemoryAudit } from '../src/identity/audit.ts';
import { ARGON2_DEFAULTS } from '../src/identity/defaults.ts';
import { createIdentity } from '../src/identity/identity.ts';
import { listenIssuer } from '../src/identity/listen.ts';
import { createPasswordHasher } from '../src/identity/passwords/argon2.ts';
import { openKeyFile } from '../src/identity/sealing.ts';
import { openPostgresStore } from '../src/identity/store/postgres-store.ts';
import { openSqliteStore } from '../src/identity/store/sqlite-store.ts';
import type { IdentityStore } from '../src/identity/store/store.ts';

const SECONDS = Number(process.argv[2] ?? 5);
const CONCURRENCY = 16;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const out = (line: string) => process.stdout.write(`${line}\n`);

async function loginCost(): Promise<void> {
  const hasher = createPasswordHasher();
  const phc = await hasher.hash('a long and unusual passphrase');
  for (let i = 0; i < 3; i++) await hasher.verify(phc, 'warm-up attempt');
  const n = 30;
  let start = performance.now();
  for (let i = 0; i < n; i++) await hasher.verify(phc, `wrong attempt ${i}`);
  const sequential = (performance.now() - start) / n;
  start = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => hasher.verify(phc, `wrong attempt ${i}`)));
  const parallel = (performance.now() - start) / n;
  const p = ARGON2_DEFAULTS;
  out(
    `login cost (argon2id m=${p.memory} KiB, t=${p.passes}, p=${p.parallelism}; ${p.memory / 1024} MiB per attempt in flight)`,
  );
  out(`  sequential         ${sequential.toFixed(1)} ms per attempt`);
  out(
    `  ${p.maxConcurrent} concurrent       ${parallel.toFixed(1)} ms per attempt amortized (${(1000 / parallel).toFixed(0)} attempts/s)`,
  );
}

async function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 5432) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function issuance(label: string, store: IdentityStore, dir: string): Promise<void> {
  const { sealer } = openKeyFile(join(dir, `kek-${label}.key`));
  let handler: RequestListener = (_req, res) => void res.writeHead(503).end();
  const listener = await listenIssuer((req, res) => handler(req, res), 0);
  const issuer = `http://127.0.0.1:${listener.port}`;
  const identity = await createIdentity({
    issuer,
    audience: 'https://api.bench',
    apiScopes: ['orders'],
    store,
    kek: sealer,
    logger: pino({ level: 'silent' }),
    audit: createMemoryAudit(),
    keyPollIntervalMs: 0,
    purgeIntervalMs: 0,
  });
  handler = identity.handler;
  const { secret } = await identity.clients.add({ kind: 'machine', clientId: `bench-${label}`, scopes: ['orders'] });
  const authorization = `Basic ${Buffer.from(`bench-${label}:${secret}`).toString('base64')}`;
  const dispatcher = new Agent({ connections: CONCURRENCY, pipelining: 1 });
  const once = async () => {
    const res = await request(`${issuer}/token`, {
      method: 'POST',
      dispatcher,
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&scope=orders',
    });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
  };
  for (let i = 0; i < 50; i++) await once();
  const latencies: number[] = [];
  const deadline = performance.now() + SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const start = performance.now();
      await once();
      latencies.push(performance.now() - start);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  out(
    `client credentials (${label}, ${CONCURRENCY} concurrent, ${SECONDS} s)  ${(latencies.length / elapsed).toFixed(0)} tokens/s  ` +
      `p50 ${percentile(latencies, 0.5).toFixed(1)} ms  p99 ${percentile(latencies, 0.99).toFixed(1)} ms`,
  );
  await dispatcher.close();
  await identity.close();
  await listener.close();
  sealer.destroy();
}

const dir = mkdtempSync(join(tmpdir(), 'rampart-identity-bench-'));
try {
  await loginCost();
  const sqlite = openSqliteStore({ file: join(dir, 'identity.db') });
  await issuance('sqlite', sqlite, dir);
  await sqlite.close();
  const url = process.env['RAMPART_TEST_POSTGRES_URL'] || 'postgres://postgres@127.0.0.1:5432/postgres';
  if (await reachable(url)) {
    const schema = `rampart_bench_${randomBytes(4).toString('hex')}`;
    const store = await openPostgresStore({ connectionString: url, schema });
    try {
      await issuance('postgres', store, dir);
    } finally {
      await store.close();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  } else {
    out('client credentials (postgres): skipped, no server reachable');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
