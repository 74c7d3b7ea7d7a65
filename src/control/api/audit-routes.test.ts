import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { canonicalizeAuditEvent, createAuditEvent } from '../../core/audit-event.ts';
import { createLogger } from '../../core/logger.ts';
import { openCheckpoint } from '../audit/checkpoint.ts';
import { createAuditClient } from '../audit/client.ts';
import { type AuditLog, openAuditLog } from '../audit/log.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../audit/merkle.ts';
import { parseVerifierKey } from '../audit/note.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { createControlAudit } from '../control-audit.ts';
import { AUDIT_ROUTE_LIMITS, createAuditRoutes } from './audit-routes.ts';
import { type ControlApi, createControlApi } from './server.ts';
import { createServerCertificate, type ServerCertificate } from './server-certificate.ts';
import { createWorkloadKey } from './workload-key.ts';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

type Credentials = { cert: string; key: string } | null;

const ORIGIN = 'shop.local/rampart/audit';

describe('control plane: audit routes', () => {
  let t: TestCa;
  let other: TestCa;
  let dir: string;
  let log: AuditLog;
  let cert: ServerCertificate;
  let api: ControlApi;
  let url: string;
  let clock: NodeJS.Timeout;
  let gateway: Credentials;
  let orders: Credentials;
  let foreign: Credentials;

  const send = (credentials: Credentials, path: string, body: string | Buffer | undefined, type = 'application/json') =>
    new Promise<Answer>((resolve, reject) => {
      const req = request(new URL(path, url), {
        method: 'POST',
        headers: { 'content-type': type },
        ca: t.ca.bundle().pem,
        ...(credentials ?? {}),
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
      req.end(body);
    });
  const post = (credentials: Credentials, path: string, value: unknown) =>
    send(credentials, path, JSON.stringify(value));
  const event = (component: string, n: number, extra: Record<string, unknown> = {}) =>
    createAuditEvent({ component, action: 'http.request', decision: 'deny', detail: { n }, ...extra });
  const entriesSince = (from: number) => {
    const out = [];
    for (let i = from; i < log.size(); i++) out.push(log.entry(i)!.event);
    return out;
  };
  /** Entries a workload submitted (not the control plane's own records of refusals). */
  const submittedSince = (from: number) =>
    entriesSince(from).filter((e) => e.reporter !== 'spiffe://shop.local/svc/control');
  const settle = async (size: number) => {
    const deadline = Date.now() + 2_000;
    while (log.size() < size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  };
  const credentialsFor = async (ca: TestCa, service: string) => {
    const key = await createWorkloadKey();
    const svid = await ca.ca.issue({ csr: key.csrPem, serviceName: service });
    return { cert: svid.certificatePem, key: key.keyPem };
  };

  before(async () => {
    t = await openTestCa();
    other = await openTestCa({ trustDomain: 'other.local' });
    clock = setInterval(() => {
      t.clock.now = Date.now();
      other.clock.now = Date.now();
    }, 50);
    clock.unref();
    dir = mkdtempSync(join(tmpdir(), 'rampart-audit-routes-'));
    log = openAuditLog({
      path: join(dir, 'audit.db'),
      origin: ORIGIN,
      kek: t.kek,
      checkpointIntervalMs: 0,
      // Proofs of just-appended events sign a checkpoint on demand, at any pace here.
      minCheckpointIntervalMs: 0,
    });
    const logger = createLogger({ name: 'control', level: 'silent' });
    const recorder = createControlAudit({ log, trustDomain: 'shop.local', logger });
    cert = await createServerCertificate({ ca: t.ca, logger, onRenewed: () => api?.refreshTls() });
    api = createControlApi({
      ca: recorder.authority(t.ca),
      launcherCredential: 'l'.repeat(43),
      credentials: () => cert.current(),
      logger,
      routes: [createAuditRoutes({ log, trustDomain: 'shop.local' })],
      onRefusal: recorder.refusal,
    });
    url = `https://127.0.0.1:${await api.listen(0)}`;
    gateway = await credentialsFor(t, 'gateway');
    orders = await credentialsFor(t, 'orders');
    foreign = await credentialsFor(other, 'gateway');
  });
  after(async () => {
    clearInterval(clock);
    cert.close();
    await api.close();
    await log.close();
    t.cleanup();
    other.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a batch is appended in order, acknowledged once durable, with the caller as reporter', async () => {
    const events = [event('gateway', 1), event('gateway', 2), event('gateway', 3)];
    const size = log.size();
    const res = await post(gateway, '/v1/audit/events', { events });
    assert.equal(res.status, 200);
    assert.equal(res.body.acknowledged, 3);
    assert.equal(res.body.duplicates, 0);
    assert.deepEqual(res.body.indexes, [size, size + 1, size + 2]);
    for (let i = 0; i < 3; i++) {
      const stored = log.entry(size + i)!.event;
      assert.equal(stored.id, events[i]!.id);
      assert.equal(stored.reporter, 'spiffe://shop.local/svc/gateway');
    }
  });

  test('idempotent by event id: the same batch again is acknowledged as duplicates, nothing appended', async () => {
    const events = [event('orders', 10), event('orders', 11)];
    const first = await post(orders, '/v1/audit/events', { events });
    assert.equal(first.status, 200);
    const size = log.size();
    const again = await post(orders, '/v1/audit/events', { events });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { acknowledged: 2, duplicates: 2, indexes: first.body.indexes });
    assert.equal(log.size(), size);
  });

  test("a component cannot pass an event off as another's, nor reuse another's event id", async () => {
    const size = log.size();
    const claimed = await post(orders, '/v1/audit/events', { events: [event('gateway', 20)] });
    assert.equal(claimed.status, 400);
    const reporter = await post(orders, '/v1/audit/events', {
      events: [event('orders', 21, { reporter: 'spiffe://shop.local/svc/orders' })],
    });
    assert.equal(reporter.status, 400);
    // The gateway's event sent by orders under its own name: same id, other bytes (reporter) → conflict.
    const mine = event('gateway', 22);
    assert.equal((await post(gateway, '/v1/audit/events', { events: [mine] })).status, 200);
    const copy = await post(orders, '/v1/audit/events', { events: [{ ...mine, component: 'orders' }] });
    assert.equal(copy.status, 409);
    assert.equal(copy.body.error, 'AUDIT_ERR_ID_CONFLICT');
    assert.deepEqual(
      submittedSince(size).map((e) => e.id),
      [mine.id],
    );
  });

  test('the caller is the verified client certificate: none, or one from another trust domain, is 401', async () => {
    const body = { events: [event('gateway', 30)] };
    const none = await post(null, '/v1/audit/events', body);
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'CA_ERR_API_NO_CLIENT_CERTIFICATE');
    const stranger = await post(foreign, '/v1/audit/events', body);
    assert.equal(stranger.status, 401);
    for (const path of ['/v1/audit/checkpoint', '/v1/audit/proofs/inclusion', '/v1/audit/proofs/consistency']) {
      assert.equal((await post(null, path, { index: 0 })).status, 401, path);
    }
  });

  test('hostile bodies: 400 (413 when too large) with a code and an error id only, nothing appended', async () => {
    const ok = event('gateway', 40);
    const many = Array.from({ length: AUDIT_ROUTE_LIMITS.maxEvents + 1 }, (_, i) => event('gateway', 1000 + i));
    const table: [string, string | Buffer, number, string?][] = [
      ['not JSON', '{"events": [', 400],
      ['JSON array', JSON.stringify([ok]), 400],
      ['events missing', '{}', 400],
      ['events not an array', JSON.stringify({ events: ok }), 400],
      ['no events', JSON.stringify({ events: [] }), 400],
      ['too many events', JSON.stringify({ events: many }), 400],
      ['unknown field', JSON.stringify({ events: [ok], component: 'ca' }), 400],
      ['event with unknown field', JSON.stringify({ events: [{ ...ok, extra: 1 }] }), 400],
      ['event is a string', JSON.stringify({ events: ['x'] }), 400],
      ['event with a token', JSON.stringify({ events: [{ ...ok, resource: `Bearer ${'a1B2'.repeat(10)}` }] }), 400],
      ['event without id', JSON.stringify({ events: [{ ...ok, id: undefined }] }), 400],
      ['__proto__ event', `{"events":[{"__proto__":{"x":1}}]}`, 400],
      ['deeply nested', `{"events":[${'['.repeat(5000)}${']'.repeat(5000)}]}`, 400],
      ['not UTF-8 JSON', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 400],
      ['body over the limit', `{"events":["${'x'.repeat(AUDIT_ROUTE_LIMITS.maxBatchBodyBytes)}"]}`, 413],
      ['wrong content type', JSON.stringify({ events: [ok] }), 400, 'text/plain'],
    ];
    const size = log.size();
    for (const [name, body, status, type] of table) {
      const res = await send(gateway, '/v1/audit/events', body, type);
      assert.equal(res.status, status, name);
      assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id'], name);
    }
    assert.deepEqual(submittedSince(size), []);
    // Each refusal is itself recorded, by the control plane.
    await settle(size + table.length);
    const refusals = entriesSince(size).filter((e) => e.component === 'control' && e.action === 'api.request');
    assert.equal(refusals.length, table.length);
  });

  test('checkpoint, inclusion and consistency proofs verify against the log key alone', async () => {
    const verifier = parseVerifierKey(log.verifierKey);
    const first = await post(gateway, '/v1/audit/checkpoint', {});
    assert.equal(first.status, 200);
    const old = openCheckpoint(first.body.note as string, [verifier], ORIGIN);
    assert.equal(old.size, first.body.size);

    const mine = event('gateway', 50);
    const appended = await post(gateway, '/v1/audit/events', { events: [mine, event('gateway', 51)] });
    assert.equal(appended.status, 200);
    const inclusion = await post(gateway, '/v1/audit/proofs/inclusion', { eventId: mine.id });
    assert.equal(inclusion.status, 200, JSON.stringify(inclusion.body));
    const checkpoint = inclusion.body.checkpoint as { note: string; size: number };
    const signed = openCheckpoint(checkpoint.note, [verifier], ORIGIN);
    const index = inclusion.body.index as number;
    assert.equal(index, (appended.body.indexes as number[])[0]);
    const stored = log.entry(index)!.event;
    assert.equal(stored.id, mine.id);
    const proof = (inclusion.body.proof as string[]).map((p) => Buffer.from(p, 'base64'));
    const leaf = Buffer.from(inclusion.body.leafHash as string, 'base64');
    assert.ok(verifyInclusion(index, signed.size, leaf, proof, signed.root));
    assert.deepEqual(leaf, leafHash(canonicalizeAuditEvent(stored)));
    // Flip one proof byte: it no longer verifies (the check above can fail).
    const bad = proof.map((p) => Buffer.from(p));
    if (bad.length > 0) bad[0]![0]! ^= 1;
    assert.ok(bad.length === 0 || !verifyInclusion(index, signed.size, leaf, bad, signed.root));

    const consistency = await post(gateway, '/v1/audit/proofs/consistency', { fromSize: old.size });
    assert.equal(consistency.status, 200);
    const latest = openCheckpoint((consistency.body.checkpoint as { note: string }).note, [verifier], ORIGIN);
    const path = (consistency.body.proof as string[]).map((p) => Buffer.from(p, 'base64'));
    assert.ok(verifyConsistency(old.size, latest.size, old.root, latest.root, path));

    const table: [string, unknown, string][] = [
      ['unknown event', { eventId: '01890a5d-ac96-774b-bcce-b302099a8057' }, 'AUDIT_ERR_RANGE'],
      ['both id and index', { eventId: mine.id, index: 0 }, 'CA_ERR_API_BAD_REQUEST'],
      ['neither', {}, 'CA_ERR_API_BAD_REQUEST'],
      ['negative index', { index: -1 }, 'CA_ERR_API_BAD_REQUEST'],
      ['index beyond the log', { index: 1e9 }, 'AUDIT_ERR_RANGE'],
      ['id too long', { eventId: 'x'.repeat(37) }, 'CA_ERR_API_BAD_REQUEST'],
    ];
    for (const [name, body, code] of table) {
      const res = await post(gateway, '/v1/audit/proofs/inclusion', body);
      assert.equal(res.status, 400, name);
      assert.equal(res.body.error, code, name);
    }
    for (const body of [{ fromSize: -1 }, { fromSize: 1e12 }, { fromSize: '1' }, { size: 1 }]) {
      assert.equal((await post(gateway, '/v1/audit/proofs/consistency', body)).status, 400, JSON.stringify(body));
    }
  });

  test('the audit client delivers batch after batch on one keep-alive mTLS connection, with the caller as reporter', async () => {
    let handshakes = 0;
    const count = () => handshakes++;
    api.server.on('secureConnection', count);
    const client = await createAuditClient({
      dir: join(dir, 'spool-keepalive'),
      target: () => ({
        control: { url, bundle: t.ca.bundle().pem, trustDomain: 'shop.local' },
        cert: gateway!.cert,
        key: gateway!.key,
      }),
      logger: createLogger({ name: 'gateway', level: 'silent' }),
      registry: new Registry(),
      limits: { commitIntervalMs: 5 },
    });
    const ids: string[] = [];
    try {
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < 5; i++) {
          ids.push(
            client.emit({ component: 'gateway', action: 'http.request', decision: 'deny', detail: { round, i } })!,
          );
        }
        assert.ok(await client.settled(5_000));
      }
    } finally {
      await client.close();
      api.server.off('secureConnection', count);
    }
    assert.equal(client.stats().delivered, 50);
    assert.equal(handshakes, 1, 'ten batches, one connection');
    const stored = submittedSince(log.size() - 50);
    assert.deepEqual(
      stored.map((e) => e.id),
      ids,
    );
    assert.ok(stored.every((e) => e.reporter === 'spiffe://shop.local/svc/gateway'));
  });

  test('the control plane records CA decisions and API refusals in the log itself', async () => {
    const size = log.size();
    const key = await createWorkloadKey();
    const token = t.ca.mintJoinToken('payments').token;
    const issued = await post(null, '/v1/svids', { token, csr: key.csrPem });
    assert.equal(issued.status, 200);
    const replay = await post(null, '/v1/svids', { token, csr: key.csrPem });
    assert.ok(replay.status >= 400 && replay.status < 500);
    const refusedRenewal = await post(null, '/v1/svids/renew', { csr: key.csrPem });
    assert.equal(refusedRenewal.status, 401);
    // Recording is awaited before the answer for issuance; refusals are recorded right after it.
    await settle(size + 3);
    const recorded = entriesSince(size);
    const summary = recorded.map((e) => `${e.component} ${e.action} ${e.decision} ${e.reason ?? ''}`.trim());
    assert.deepEqual(summary, [
      'ca svid.issue allow',
      `ca svid.issue deny ${replay.body.error}`,
      'ca svid.renew deny CA_ERR_API_NO_CLIENT_CERTIFICATE',
    ]);
    assert.equal(recorded[0]!.resource, 'spiffe://shop.local/svc/payments');
    assert.ok(recorded.every((e) => e.reporter === 'spiffe://shop.local/svc/control'));
  });
});
