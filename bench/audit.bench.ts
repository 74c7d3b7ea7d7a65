/**
 * Audit log benchmarks (issue 6 "Benchmarks"). Not a test: `node bench/audit.bench.ts [--entries N]`.
 *
 * 1. The cost of accepting one event (validate, canonical bytes, leaf hash), without storage.
 * 2. Durable append throughput (each call resolves after its transaction is fsync'd) by events per call
 *    and concurrent callers: group commit turns many callers into one transaction per turn.
 * 3. A log of N entries (default 1,000,000): build time, bytes per entry on disk, inclusion and
 *    consistency proof latency, and the full verification (`rampart audit verify`'s work).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openAuditLog } from '../src/control/audit/log.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../src/control/audit/merkle.ts';
import { verifyLogFile } from '../src/control/audit/verify.ts';
import {
  type AuditEvent,
  canonicalizeAuditEvent,
  createAuditEvent,
  encodeAuditEvent,
} from '../src/core/audit-event.ts';
import { loadKek } from '../src/core/kek.ts';

const { values } = parseArgs({
  options: { entries: { type: 'string' }, seconds: { type: 'string' }, 'skip-large': { type: 'boolean' } },
});
const ENTRIES = Number(values.entries ?? 1_000_000);
const SECONDS = Number(values.seconds ?? 3);
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

// 2. Durable append throughput.
out('\ndurable append (resolves after fsync), events per call × concurrent callers:');
out('  events/call  callers   events/s   commits/s  events/commit');
for (const [perCall, callers] of [
  [1, 1],
  [1, 64],
  [10, 64],
  [100, 16],
  [1_000, 4],
] as const) {
  const dir = scratch();
  const log = openAuditLog({
    path: join(dir, 'audit.db'),
    origin: 'bench.local/audit',
    kek: kek(),
    checkpointIntervalMs: 0,
  });
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
  rmSync(dir, { recursive: true, force: true });
}

// 3. A large log: build, size, proofs, verify.
if (values['skip-large'] !== true) {
  const dir = scratch();
  const path = join(dir, 'audit.db');
  const log = openAuditLog({ path, origin: 'bench.local/audit', kek: kek(), checkpointIntervalMs: 0 });
  out(`\nlog of ${ENTRIES.toLocaleString('en-US')} entries:`);
  let start = performance.now();
  const chunk = 5_000;
  const checkpointEvery = Math.max(chunk, Math.floor(ENTRIES / 10 / chunk) * chunk);
  for (let done = 0; done < ENTRIES; done += chunk) {
    const n = Math.min(chunk, ENTRIES - done);
    await Promise.all(Array.from({ length: n / 500 }, () => log.append(Array.from({ length: 500 }, event))));
    if ((done + n) % checkpointEvery === 0) log.checkpoint();
  }
  const built = (performance.now() - start) / 1_000;
  out(
    `  built in ${built.toFixed(1)} s (${Math.round(ENTRIES / built).toLocaleString('en-US')} events/s, 500 per call)`,
  );

  const samples = 2_000;
  start = performance.now();
  for (let i = 0; i < samples; i++) {
    const r = log.proveInclusion(Math.floor(Math.random() * ENTRIES));
    if (!verifyInclusion(r.index, r.checkpoint.size, r.leafHash, r.proof, r.checkpoint.root))
      throw new Error('bad proof');
  }
  out(`  inclusion proof + verification: ${((performance.now() - start) / samples).toFixed(3)} ms each`);
  const latest = log.latestCheckpoint()!;
  start = performance.now();
  for (let i = 0; i < samples; i++) {
    const from = 1 + Math.floor(Math.random() * (ENTRIES - 1));
    const r = log.proveConsistency(from);
    if (r.proof.length === 0 && from !== latest.size) throw new Error('empty proof');
    void verifyConsistency;
  }
  out(`  consistency proof: ${((performance.now() - start) / samples).toFixed(3)} ms each`);
  await log.close();
  const bytes = statSync(path).size;
  out(`  database: ${(bytes / 1_048_576).toFixed(0)} MiB, ${Math.round(bytes / ENTRIES)} bytes per entry`);

  start = performance.now();
  const report = verifyLogFile(path);
  const verifySeconds = (performance.now() - start) / 1_000;
  if (!report.ok || report.entries !== ENTRIES) throw new Error(`verify failed: ${JSON.stringify(report.problems)}`);
  out(
    `  verify: ${verifySeconds.toFixed(2)} s for ${report.entries.toLocaleString('en-US')} entries and ${report.checkpoints} checkpoints (goal ≤ 10 s)`,
  );
  rmSync(dir, { recursive: true, force: true });
}
