/**
 * Secret read latency on a cache miss (issue 6 goal: p99 ≤ 2 ms through the SDK), first through the
 * library, then through `svc.secrets.get` over mTLS to the control plane's route. Not a test:
 * `node --conditions=rampart-source bench/secrets.bench.ts [reads] [sdk]` (`sdk`: the SDK rows only).
 *
 * Each read is `SecretsService.read(spiffeId, name)`: the ACL lookup, one indexed query (label → version
 * row), unwrapping the data key with the KEK and decrypting the value (XChaCha20-Poly1305), building
 * and validating the audit event (HMAC references, core/audit-event.ts), and waiting for the sink's
 * acknowledgment. Rows:
 *
 * - parts: the store query alone, the decryption alone (µs);
 * - SQLite store (WAL, synchronous=FULL) with a sink that acknowledges at once: the library's own cost;
 * - the same with the real audit log (src/control/audit, SQLite WAL, synchronous=FULL: every read waits
 *   for an fsync), one read at a time and 16 in flight (group commit shares the fsync);
 * - PostgreSQL store (when 127.0.0.1:5432 answers, or RAMPART_TEST_POSTGRES_URL) with the immediate sink;
 * - the SDK (src/sdk/secrets.ts) against the control plane's API (`POST /v1/secrets/read`, TLS 1.3,
 *   client certificate, SPIFFE ID checks) in this process, over a SQLite file store: every `get` a miss
 *   (the cache's clock jumps past the lifetime), on the SDK's keep-alive connection, with a sink that
 *   acknowledges at once and with the audit log the control plane runs with (src/control/audit, every
 *   read waits for its group-committed fsync); then misses that each open a new connection (a
 *   service whose connection went idle: full TLS handshake), and hits for contrast. Client and server
 *   share one event loop here, so their CPU adds up; across two processes they would overlap.
 *
 * Rows with a rate also give CPU µs per read: this process's user + system time over the row divided by
 * its reads (client and server together in the SDK rows), steadier than latency on a shared machine.
 *
 * 200 secrets of 64 bytes are read round-robin (a database password's size), so no row is hot in a cache
 * of ours (SQLite's page cache is warm, as it is in a running control plane).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Service } from '../src/config/model.ts';
import { OPERATOR as PLANE_OPERATOR, startSecretsTestPlane } from '../src/control/api/secrets-testing.ts';
import { openVersion } from '../src/control/secrets/envelope.ts';
import {
  type AuditSink,
  compileSecretsAcl,
  openPostgresSecretsStore,
  openSecretsService,
  openSqliteSecretsStore,
  type SecretsService,
  type SecretsStore,
  wipeSecret,
} from '../src/control/secrets/index.ts';
import { loadKek } from '../src/core/kek.ts';
import { createServiceSecrets } from '../src/sdk/secrets.ts';

const READS = Number(process.argv[2] ?? 20_000);
/** `sdk` as the second argument runs the SDK rows only. */
const SDK_ONLY = process.argv[3] === 'sdk';
const SECRETS = 200;
const CALLER = 'spiffe://shop.local/svc/payments';
const OPERATOR = { subject: 'bench' };
const out = (line: string) => process.stdout.write(`${line}\n`);

const dir = mkdtempSync(join(tmpdir(), 'rampart-secrets-bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kek = loadKek({ env: 'K', environment: { K: randomBytes(32).toString('base64') } });
const names = Array.from({ length: SECRETS }, (_, i) => `secret-${i}`);
const acl = compileSecretsAcl({
  trustDomain: 'shop.local',
  secrets: Object.fromEntries(names.map((name) => [name, { name, description: '' }])),
  services: { payments: { name: 'payments', run: '/x.ts', routes: [], calls: [], secrets: names, env: {} } as Service },
});
const immediate: AuditSink = { append: async () => {} };

/** CPU time (user + system, µs) this process spent since `since` (a `process.cpuUsage()` reading). */
function cpuSince(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

/**
 * One row: latency quantiles, and when given, throughput and CPU µs per read (this process's user +
 * system time over the row divided by its reads: steadier than wall time on a loaded machine).
 */
function summary(label: string, samples: number[], wallMs?: number, cpuUs?: number): void {
  const sorted = Float64Array.from(samples).sort();
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);
  const rate = wallMs === undefined ? '' : `  ${Math.round((samples.length / wallMs) * 1000)} reads/s`;
  const cpu = cpuUs === undefined ? '' : `  cpu ${Math.round(cpuUs / samples.length)} µs/read`;
  out(
    `${label.padEnd(52)} p50 ${fmt(q(0.5)).padStart(8)}  p90 ${fmt(q(0.9)).padStart(8)}  p99 ${fmt(q(0.99)).padStart(8)}  max ${fmt(sorted.at(-1)!).padStart(8)}${rate}${cpu}`,
  );
}

async function populate(service: SecretsService): Promise<void> {
  for (const name of names) await service.set(OPERATOR, name, randomBytes(64));
}

/** Sequential reads: latency of each. */
async function sequential(
  service: SecretsService,
  count: number,
): Promise<{ samples: number[]; wallMs: number; cpuUs: number }> {
  const samples: number[] = [];
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const secret = await service.read(CALLER, names[i % SECRETS]!);
    samples.push(performance.now() - t0);
    wipeSecret(secret);
  }
  return { samples, wallMs: performance.now() - start, cpuUs: cpuSince(cpu) };
}

/** `inFlight` readers at once: latency of each read, and throughput. */
async function concurrent(service: SecretsService, count: number, inFlight: number) {
  const samples: number[] = [];
  let next = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        wipeSecret(await service.read(CALLER, names[i % SECRETS]!));
        samples.push(performance.now() - t0);
      }
    }),
  );
  return { samples, wallMs: performance.now() - start, cpuUs: cpuSince(cpu) };
}

async function open(store: SecretsStore, audit: AuditSink): Promise<SecretsService> {
  return openSecretsService({ store, kek, acl, audit, auditTimeoutMs: 10_000 });
}

out(
  `# secret reads through the library (${READS} reads, ${SECRETS} secrets of 64 bytes, node ${process.version}, load ${loadavg()[0]!.toFixed(2)})`,
);

// Parts.
if (!SDK_ONLY) {
  const store = openSqliteSecretsStore({ path: join(dir, 'parts.db') });
  const service = await open(store, immediate);
  await populate(service);
  await service.close();
  const raw = openSqliteSecretsStore({ path: join(dir, 'parts.db') });
  const query: number[] = [];
  const decrypt: number[] = [];
  for (let i = 0; i < READS; i++) {
    const name = names[i % SECRETS]!;
    const t0 = performance.now();
    const row = (await raw.versionByLabel(name, 'current'))!;
    const t1 = performance.now();
    openVersion(kek, name, row.version, row).fill(0);
    const t2 = performance.now();
    if (i >= 1000) {
      query.push(t1 - t0);
      decrypt.push(t2 - t1);
    }
  }
  summary('part: SQLite query (label → row)', query);
  summary('part: unwrap data key + decrypt value', decrypt);
  await raw.close();
}

// SQLite, immediate sink.
if (!SDK_ONLY) {
  const service = await open(openSqliteSecretsStore({ path: join(dir, 'sqlite.db') }), immediate);
  await populate(service);
  await sequential(service, 2_000);
  const run = await sequential(service, READS);
  summary('SQLite, sink acknowledges at once (library cost)', run.samples, run.wallMs, run.cpuUs);
  const many = await concurrent(service, READS, 16);
  summary('SQLite, sink at once, 16 in flight', many.samples, many.wallMs, many.cpuUs);
  await service.close();
}

// SQLite with the real audit log.
if (!SDK_ONLY)
  try {
    const { openAuditLog } = await import('../src/control/audit/index.ts');
    const log = openAuditLog({
      path: join(dir, 'audit.db'),
      origin: 'shop.local/rampart/audit',
      kek,
      checkpointIntervalMs: 0,
    });
    const sink: AuditSink = { append: async (event) => void (await log.append([event])) };
    const service = await open(openSqliteSecretsStore({ path: join(dir, 'sqlite-audit.db') }), sink);
    await populate(service);
    const count = Math.min(READS, 2_000); // each sequential read waits for one fsync
    await sequential(service, 100);
    const run = await sequential(service, count);
    summary('SQLite + real audit log (fsync per read), sequential', run.samples, run.wallMs, run.cpuUs);
    const many = await concurrent(service, READS, 16);
    summary('SQLite + real audit log, 16 in flight (group commit)', many.samples, many.wallMs, many.cpuUs);
    await service.close();
    await log.close();
  } catch (err) {
    out(`(audit log row skipped: ${(err as Error).message.split('\n')[0]})`);
  }

// PostgreSQL.
const url = process.env['RAMPART_TEST_POSTGRES_URL'] || 'postgres://postgres@127.0.0.1:5432/postgres';
const reachable = await new Promise<boolean>((resolve) => {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port || 5432) });
  socket.setTimeout(1000, () => {
    socket.destroy();
    resolve(false);
  });
  socket.once('connect', () => {
    socket.destroy();
    resolve(true);
  });
  socket.once('error', () => resolve(false));
});
if (SDK_ONLY) {
  // library rows skipped
} else if (reachable) {
  const schema = `rampart_secrets_bench_${randomBytes(4).toString('hex')}`;
  const service = await open(await openPostgresSecretsStore({ connectionString: url, schema }), immediate);
  try {
    await populate(service);
    await sequential(service, 1_000);
    const run = await sequential(service, Math.min(READS, 10_000));
    summary('PostgreSQL (loopback), sink at once', run.samples, run.wallMs, run.cpuUs);
    const many = await concurrent(service, Math.min(READS, 10_000), 16);
    summary('PostgreSQL (loopback), sink at once, 16 in flight', many.samples, many.wallMs, many.cpuUs);
  } finally {
    await service.close();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
} else {
  out('(PostgreSQL row skipped: not reachable)');
}

// The SDK over mTLS, against the control plane's route.
async function sdkRows(label: string, audit: AuditSink, database: string, others: boolean): Promise<void> {
  const grants = { payments: names };
  // The sink is always given: the test plane's own (which copies and keeps every event) is not the cost measured.
  const plane = await startSecretsTestPlane(grants, { database, audit });
  try {
    for (const name of names) await plane.secrets.set(PLANE_OPERATOR, name, randomBytes(64));
    const svid = await plane.svidFor('payments');
    const control = { url: plane.url, bundle: plane.testCa.ca.bundle().pem, trustDomain: plane.trustDomain };
    let clock = 0;
    // Every get is a miss: the cache's clock passes the lifetime between two reads.
    const missing = createServiceSecrets({ control, svid: () => svid, ttlMs: 1, now: () => (clock += 2) });
    const count = Math.min(READS, 5_000);
    const samples: number[] = [];
    let cpu = process.cpuUsage();
    let start = 0;
    for (let i = 0; i < count + 500; i++) {
      if (i === 500) {
        cpu = process.cpuUsage();
        start = performance.now();
      }
      const t0 = performance.now();
      const secret = await missing.get(names[i % SECRETS]!);
      if (i >= 500) samples.push(performance.now() - t0);
      secret.value.fill(0);
    }
    summary(`SDK miss, keep-alive mTLS, ${label}`, samples, performance.now() - start, cpuSince(cpu));
    await missing.close();
    if (others) {
      const cold: number[] = [];
      for (let i = 0; i < 300; i++) {
        const fresh = createServiceSecrets({ control, svid: () => svid });
        const t0 = performance.now();
        (await fresh.get(names[i % SECRETS]!)).value.fill(0);
        cold.push(performance.now() - t0);
        await fresh.close();
      }
      summary(`SDK miss, new mTLS connection, ${label}`, cold);
      const warm = createServiceSecrets({ control, svid: () => svid });
      await warm.get(names[0]!);
      const hits: number[] = [];
      for (let i = 0; i < count; i++) {
        const t0 = performance.now();
        (await warm.get(names[0]!)).value.fill(0);
        hits.push(performance.now() - t0);
      }
      summary('SDK hit (cache)', hits);
      await warm.close();
    }
  } finally {
    await plane.close();
  }
}
await sdkRows('sink at once', immediate, join(dir, 'sdk.db'), true);
{
  const { openAuditLog } = await import('../src/control/audit/index.ts');
  const log = openAuditLog({
    path: join(dir, 'sdk-audit.db'),
    origin: 'shop.local/rampart/audit',
    kek,
    checkpointIntervalMs: 0,
  });
  await sdkRows('audit log', { append: (e) => log.append([e]).then(() => {}) }, join(dir, 'sdk-log.db'), false);
  await log.close();
}
