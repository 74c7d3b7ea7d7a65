import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { test } from 'node:test';
import pg from 'pg';
import { requireService } from '../../../test/helpers/require-service.ts';
import { canonicalizeAuditEvent, createAuditEvent } from '../../core/audit-event.ts';
import { createLogger } from '../../core/logger.ts';
import { openCheckpoint } from '../audit/checkpoint.ts';
import { connectAuditLog } from '../audit/log.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../audit/merkle.ts';
import { parseVerifierKey } from '../audit/note.ts';
import { openTestCa } from '../ca/testing.ts';
import { createControlAudit } from '../control-audit.ts';
import { createAuditRoutes } from './audit-routes.ts';
import { createControlApi } from './server.ts';
import { createServerCertificate } from './server-certificate.ts';
import { createWorkloadKey } from './workload-key.ts';

/**
 * The audit routes over the PostgreSQL log (manifest `control.store: { postgres }`), whose checkpoints,
 * proofs and entries are promises: each route answers what it answers over SQLite
 * (audit-routes.test.ts), and the proofs verify against the log's key alone.
 */

const ORIGIN = 'shop.local/rampart/audit';

test('audit routes over the PostgreSQL log: append, checkpoint, inclusion and consistency proofs', async (t) => {
  const url = await requireService(t, 'postgres');
  if (!url) return;
  const schema = `audit_routes_${randomBytes(6).toString('hex')}`;
  // Undone last to first (node:test runs `after` hooks in the order they were added).
  const cleanups: (() => unknown)[] = [
    async () => {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    },
  ];
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  const ca = await openTestCa();
  cleanups.push(() => ca.cleanup());
  const clock = setInterval(() => {
    ca.clock.now = Date.now();
  }, 50);
  clock.unref();
  cleanups.push(() => clearInterval(clock));
  const log = await connectAuditLog({
    postgres: { connectionString: url, schema },
    origin: ORIGIN,
    kek: ca.kek,
    checkpointIntervalMs: 0,
    minCheckpointIntervalMs: 0,
  });
  cleanups.push(() => log.close());
  const logger = createLogger({ name: 'control', level: 'silent' });
  const recorder = createControlAudit({ log, trustDomain: 'shop.local', logger });
  let api: ReturnType<typeof createControlApi> | undefined;
  const cert = await createServerCertificate({ ca: ca.ca, logger, onRenewed: () => api?.refreshTls() });
  cleanups.push(() => cert.close());
  api = createControlApi({
    ca: recorder.authority(ca.ca),
    launcherCredential: 'l'.repeat(43),
    credentials: () => cert.current(),
    logger,
    routes: [createAuditRoutes({ log, trustDomain: 'shop.local' })],
    onRefusal: recorder.refusal,
  });
  const base = `https://127.0.0.1:${await api.listen(0)}`;
  cleanups.push(() => api?.close());
  const key = await createWorkloadKey();
  const svid = await ca.ca.issue({ csr: key.csrPem, serviceName: 'gateway' });

  const post = (path: string, value: unknown) =>
    new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const req = request(new URL(path, base), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        ca: ca.ca.bundle().pem,
        cert: svid.certificatePem,
        key: key.keyPem,
        agent: false,
        checkServerIdentity: () => undefined,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} });
        });
      });
      req.end(JSON.stringify(value));
    });
  const event = (n: number) =>
    createAuditEvent({ component: 'gateway', action: 'http.request', decision: 'deny', detail: { n } });

  const verifier = parseVerifierKey(log.verifierKey);
  // A new log: the checkpoint route signs the first checkpoint (a promise on PostgreSQL).
  const first = await post('/v1/audit/checkpoint', {});
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const old = openCheckpoint(first.body.note as string, [verifier], ORIGIN);
  assert.equal(old.size, first.body.size);
  assert.equal(typeof first.body.size, 'number');

  const mine = event(1);
  const appended = await post('/v1/audit/events', { events: [mine, event(2)] });
  assert.equal(appended.status, 200, JSON.stringify(appended.body));
  assert.equal(appended.body.acknowledged, 2);
  const again = await post('/v1/audit/events', { events: [mine] });
  assert.deepEqual(again.body.duplicates, 1);

  const inclusion = await post('/v1/audit/proofs/inclusion', { eventId: mine.id });
  assert.equal(inclusion.status, 200, JSON.stringify(inclusion.body));
  const signed = openCheckpoint((inclusion.body.checkpoint as { note: string }).note, [verifier], ORIGIN);
  const index = inclusion.body.index as number;
  assert.equal(index, (appended.body.indexes as number[])[0]);
  const stored = await log.entry(index);
  assert.equal(stored?.event.id, mine.id);
  assert.equal(stored?.event.reporter, 'spiffe://shop.local/svc/gateway');
  const leaf = Buffer.from(inclusion.body.leafHash as string, 'base64');
  assert.deepEqual(leaf, leafHash(canonicalizeAuditEvent(stored!.event)));
  const proof = (inclusion.body.proof as string[]).map((p) => Buffer.from(p, 'base64'));
  assert.ok(verifyInclusion(index, signed.size, leaf, proof, signed.root));

  const consistency = await post('/v1/audit/proofs/consistency', { fromSize: old.size });
  assert.equal(consistency.status, 200, JSON.stringify(consistency.body));
  const latest = openCheckpoint((consistency.body.checkpoint as { note: string }).note, [verifier], ORIGIN);
  const path = (consistency.body.proof as string[]).map((p) => Buffer.from(p, 'base64'));
  assert.ok(latest.size > old.size);
  assert.ok(verifyConsistency(old.size, latest.size, old.root, latest.root, path));

  // A rejected promise is the same refusal as a thrown error.
  for (const [name, route, body, code] of [
    [
      'unknown event',
      '/v1/audit/proofs/inclusion',
      { eventId: '01890a5d-ac96-774b-bcce-b302099a8057' },
      'AUDIT_ERR_RANGE',
    ],
    ['index beyond the log', '/v1/audit/proofs/inclusion', { index: 1e9 }, 'AUDIT_ERR_RANGE'],
    ['size beyond the log', '/v1/audit/proofs/consistency', { fromSize: 1e9 }, 'AUDIT_ERR_RANGE'],
  ] as const) {
    const res = await post(route, body);
    assert.equal(res.status, 400, name);
    assert.equal(res.body.error, code, name);
  }
});
