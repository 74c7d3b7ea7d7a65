/**
 * Audit log benchmarks (issue 6 "Benchmarks"). Not a test:
 * `node bench/audit.bench.ts [--entries N] [--seconds S] [--skip-large] [--postgres] [--postgres-url URL]`.
 *
 * Sections 2 and 3 run on SQLite, and with `--postgres` also on PostgreSQL (`--postgres-url`, else
 * RAMPART_TEST_POSTGRES_URL, else the local default; each run in a schema of its own, dropped after),
 * so both stores' figures come from the same run on the same machine.
 *
 * 1. The cost of accepting one event (validate, canonical bytes, leaf hash), without storage.
 * 2. Durable append throughput (each call resolves after its transaction is fsync'd) by events per call
 *    and concurrent callers: group commit turns many callers into one transaction per turn.
 * 3. A log of N entries (default 1,000,000): build time, bytes per entry on disk, inclusion and
 *    consistency proof latency, and the full verification (`rampart audit verify`'s work), run
 *    `--verify-runs` times (default 3): wall time, CPU time of the process (both threads), threads,
 *    load average; on SQLite each run also on one thread, for comparison.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type AnyAuditLog, openAuditLog } from '../src/control/audit/log.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../src/control/audit/merkle.ts';
import { openPostgresAuditLog } from '../src/control/audit/postgres-log.ts';
import { verifyPostgresTarget } from '../src/control/audit/postgres-verify.ts';
import { type VerifyOptions, type VerifyReport, verifyLogFile } from '../src/control/audit/verify.ts';
import {
  type AuditEvent,
  canonicalizeAuditEvent,
  createAuditEvent,
  encodeAuditEvent,
} from '../src/core/audit-event.ts';
import { loadKek } from '../src/core/kek.ts';

const { values } = parseArgs({
  options: {
    entries: { type: 'string' },
    seconds: { type: 'string' },
    'skip-large': { type: 'boolean' },
    postgres: { type: 'boolean' },
    'postgres-url': { type: 'string' },
    'verify-runs': { type: 'string' },
  },
});
const POSTGRES_URL =
  values['postgres-url'] ??
  (values.postgres === true
    ? process.env['RAMPART_TEST_POSTGRES_URL'] || 'postgres://postgres@127.0.0.1:5432/postgres'
    : undefined);
const ENTRIES = Number(values.entries ?? 1_000_000);
const SECONDS = Number(values.seconds ?? 3);
const VERIFY_RUNS = Number(values['verify-runs'] ?? 3);
const kek = () => loadKek({ env: 'K', environment: { K: randomBytes(32).toString('base64') } });
const out = (line: string) => process.stdout.write(`${line}\n`);

let counter = 0;
/** A typical gateway denial: ~400 bytes canonical. */
function event(): AuditEvent {
  counter++;
  return createAuditEvent({
    component: 'gateway',
    action: 'http.request',
    decision: 'deny',
    reason: 'GW_ERR_TOKEN_EXPIRED',
    resource: `/orders/${counter}/items`,
    actor: { subject: `user-${counter % 1000}`, clientId: 'shop-web' },
    requestId: `3f2b6c8e-1d4a-4e9b-8c7d-${String(counter).padStart(12, '0')}`,
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    detail: { method: 'GET', status: 401, route: '/orders/**' },
  });
}

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'rampart-audit-bench-'));
}

// 1. Accepting an event.
{
  const sample = Array.from({ length: 50_000 }, event);
  out(`canonical event size: ${canonicalizeAuditEvent(sample[0]!).length} bytes`);
  for (let round = 0; round < 2; round++) {
    const start = process.hrtime.bigint();
    for (const e of sample) leafHash(encodeAuditEvent(e).bytes);
    const ns = Number(process.hrtime.bigint() - start) / sample.length;
    if (round === 1) out(`validate + canonical bytes + leaf hash: ${(ns / 1000).toFixed(2)} µs/event`);
  }
}

/** One store to measure: opens fresh logs, and measures what it holds. */
interface Store {
  name: string;
  /** A new, empty log. */
  open(): Promise<{
    log: AnyAuditLog;
    bytes(): Promise<number>;
    verify(options?: VerifyOptions): Promise<VerifyReport>;
    /** The store can verify on two threads (SQLite). */
    threads: boolean;
    drop(): Promise<void>;
  }>;
}

const sqliteStore: Store = {
  name: 'SQLite (WAL, synchronous=FULL)',
  async open() {
    const dir = scratch();
    const path = join(dir, 'audit.db');
    const log = openAuditLog({ path, origin: 'bench.local/audit', kek: kek(), checkpointIntervalMs: 0 });
    return {
      log,
      bytes: async () => statSync(path).size,
      verify: async (options) => verifyLogFile(path, options),
      threads: true,
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
};

function postgresStore(url: string): Store {
  return {
    name: 'PostgreSQL (synchronous_commit=on)',
    async open() {
      const schema = `audit_bench_${randomBytes(6).toString('hex')}`;
      const target = { connectionString: url, schema };
      const log = await openPostgresAuditLog({
        postgres: target,
        origin: 'bench.local/audit',
        kek: kek(),
        checkpointIntervalMs: 0,
      });
      const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          return await fn(client);
        } finally {
          await client.end();
        }
      };
      return {
        log,
        bytes: () =>
          admin(async (client) => {
            const { rows } = await client.query(
              `SELECT sum(pg_total_relation_size(c.oid)) AS bytes FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
              [schema],
            );
            return Number(rows[0].bytes);
          }),
        verify: () => verifyPostgresTarget(target),
        threads: false,
        drop: () => admin((client) => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).then(() => {})),
      };
    },
  };
}

const stores: Store[] = [sqliteStore];
if (POSTGRES_URL !== undefined) stores.push(postgresStore(POSTGRES_URL));

// 2. Durable append throughput.
for (const store of stores) {
  out(`\n${store.name}: durable append (resolves after the commit is durable), events per call × concurrent callers:`);
  out('  events/call  callers   events/s   commits/s  events/commit');
  for (const [perCall, callers] of [
    [1, 1],
    [1, 64],
    [10, 64],
    [100, 16],
    [1_000, 4],
  ] as const) {
    const opened = await store.open();
    const log = opened.log;
    const deadline = performance.now() + SECONDS * 1_000;
    const caller = async () => {
      while (performance.now() < deadline) await log.append(Array.from({ length: perCall }, event));
    };
    const start = performance.now();
    await Promise.all(Array.from({ length: callers }, caller));
    const seconds = (performance.now() - start) / 1_000;
    const stats = log.stats();
    out(
      `  ${String(perCall).padStart(11)}  ${String(callers).padStart(7)}  ${Math.round(stats.committedEvents / seconds)
        .toLocaleString('en-US')
        .padStart(9)}  ${Math.round(stats.commits / seconds)
        .toLocaleString('en-US')
        .padStart(10)}  ${(stats.committedEvents / stats.commits).toFixed(1).padStart(13)}`,
    );
    await log.close();
    await opened.drop();
  }
}

// 3. A large log: build, size, proofs, verify.
for (const store of values['skip-large'] === true ? [] : stores) {
  const opened = await store.open();
  const log = opened.log;
  out(`\n${store.name}: log of ${ENTRIES.toLocaleString('en-US')} entries:`);
  let start = performance.now();
  const chunk = 5_000;
  const checkpointEvery = Math.max(chunk, Math.floor(ENTRIES / 10 / chunk) * chunk);
  for (let done = 0; done < ENTRIES; done += chunk) {
    const n = Math.min(chunk, ENTRIES - done);
    await Promise.all(Array.from({ length: n / 500 }, () => log.append(Array.from({ length: 500 }, event))));
    if ((done + n) % checkpointEvery === 0) await log.checkpoint();
  }
  const built = (performance.now() - start) / 1_000;
  out(
    `  built in ${built.toFixed(1)} s (${Math.round(ENTRIES / built).toLocaleString('en-US')} events/s, 500 per call)`,
  );

  const samples = 2_000;
  start = performance.now();
  for (let i = 0; i < samples; i++) {
    const r = await log.proveInclusion(Math.floor(Math.random() * ENTRIES));
    if (!verifyInclusion(r.index, r.checkpoint.size, r.leafHash, r.proof, r.checkpoint.root))
      throw new Error('bad proof');
  }
  out(`  inclusion proof + verification: ${((performance.now() - start) / samples).toFixed(3)} ms each`);
  const latest = log.latestCheckpoint()!;
  start = performance.now();
  for (let i = 0; i < samples; i++) {
    const from = 1 + Math.floor(Math.random() * (ENTRIES - 1));
    const r = await log.proveConsistency(from);
    if (r.proof.length === 0 && from !== latest.size) throw new Error('empty proof');
    void verifyConsistency;
  }
  out(`  consistency proof: ${((performance.now() - start) / samples).toFixed(3)} ms each`);
  await log.close();
  const bytes = await opened.bytes();
  out(`  database: ${(bytes / 1_048_576).toFixed(0)} MiB, ${Math.round(bytes / ENTRIES)} bytes per entry`);

  const verifyOnce = async (options: VerifyOptions) => {
    const load = loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    const cpu = process.cpuUsage();
    const begin = performance.now();
    const report = await opened.verify(options);
    const wall = (performance.now() - begin) / 1_000;
    const used = process.cpuUsage(cpu);
    if (!report.ok || report.entries !== ENTRIES) throw new Error(`verify failed: ${JSON.stringify(report.problems)}`);
    out(
      `  verify: ${wall.toFixed(2)} s (CPU ${((used.user + used.system) / 1e6).toFixed(2)} s, ${report.threads} thread${report.threads === 1 ? '' : 's'}, load ${load}) for ${report.entries.toLocaleString('en-US')} entries and ${report.checkpoints} checkpoints (goal ≤ 10 s)`,
    );
    return wall;
  };
  const walls: number[] = [];
  for (let run = 0; run < VERIFY_RUNS; run++) {
    walls.push(await verifyOnce({}));
    if (opened.threads) await verifyOnce({ parallelFrom: Number.POSITIVE_INFINITY });
  }
  walls.sort((a, b) => a - b);
  out(`  verify median: ${walls[Math.floor(walls.length / 2)]!.toFixed(2)} s over ${walls.length} runs`);
  await opened.drop();
}
