import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AuditEvent, createAuditEvent } from '../core/audit-event.ts';
import { createLogger } from '../core/logger.ts';
import { createWorkloadKey } from './api/workload-key.ts';
import { openAuditLog } from './audit/log.ts';
import { openTestCa } from './ca/testing.ts';
import { createControlAudit } from './control-audit.ts';

test('the CA seen through the recorder: what it issues and mints is logged after it succeeds; the rest passes through', async (t) => {
  const ca = await openTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'rampart-control-audit-'));
  const log = openAuditLog({ path: join(dir, 'audit.db'), origin: 'shop.local/rampart/audit', kek: ca.kek });
  t.after(async () => {
    await log.close();
    ca.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const recorder = createControlAudit({
    log,
    trustDomain: 'shop.local',
    logger: createLogger({ name: 'control', level: 'silent' }),
  });
  const audited = recorder.authority(ca.ca);
  const entries = (): AuditEvent[] => Array.from({ length: log.size() }, (_, i) => log.entry(i)!.event);

  const key = await createWorkloadKey();
  const svid = await audited.issue({ csr: key.csrPem, serviceName: 'orders' });
  const edge = await audited.issueEdgeCertificate({
    csr: (await createWorkloadKey()).csrPem,
    names: ['localhost', '127.0.0.1'],
  });
  audited.mintJoinToken('payments');
  await assert.rejects(audited.issueWithJoinToken({ token: 'not-a-token', csr: key.csrPem }));
  recorder.caEvent({ type: 'ca.activated', generation: 2, slot: 'B', previous: 1, emergency: false });
  recorder.refusal({
    route: 'POST /v1/svids/renew',
    code: 'CA_ERR_API_NO_CLIENT_CERTIFICATE',
    status: 401,
    errorId: 'abcdefghijkl',
  });
  recorder.refusal({ route: 'unknown', code: 'CA_ERR_API_NOT_FOUND', status: 404, errorId: 'mnopqrstuvwx' });
  await new Promise((r) => setTimeout(r, 50));

  assert.equal(audited.bundle().sequence, ca.ca.bundle().sequence, 'other members are the CA’s own');
  const summary = entries().map((e) =>
    [e.component, e.action, e.decision, e.resource, e.reason].filter(Boolean).join(' '),
  );
  assert.deepEqual(summary, [
    'ca svid.issue allow spiffe://shop.local/svc/orders',
    'ca edge_certificate.issue allow localhost,127.0.0.1',
    'ca join_token.mint allow spiffe://shop.local/svc/payments',
    'ca ca.activated allow',
    'ca svid.renew deny /v1/svids/renew CA_ERR_API_NO_CLIENT_CERTIFICATE',
    'control api.request deny CA_ERR_API_NOT_FOUND',
  ]);
  assert.equal(entries()[0]!.detail?.serial, svid.serial);
  assert.equal(entries()[1]!.detail?.serial, edge.serial);
  assert.ok(entries().every((e) => e.reporter === 'spiffe://shop.local/svc/control'));
});

test('append (the secrets sink) rejects when the log does not take the event: reads fail closed', async (t) => {
  const ca = await openTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'rampart-control-audit-'));
  const log = openAuditLog({ path: join(dir, 'audit.db'), origin: 'shop.local/rampart/audit', kek: ca.kek });
  t.after(() => {
    ca.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const recorder = createControlAudit({
    log,
    trustDomain: 'shop.local',
    logger: createLogger({ name: 'control', level: 'silent' }),
  });
  const event = {
    id: '01890a5d-ac96-774b-bcce-b302099a8057',
    time: '2026-12-06T00:00:00.000Z',
    component: 'secrets',
    action: 'secret.read',
    decision: 'allow',
  } as const;
  await recorder.append(event);
  assert.equal(log.entry(0)?.event.reporter, 'spiffe://shop.local/svc/control');
  // Made by createAuditEvent (the secrets service's way): stored with the same reporter, a forged one replaced.
  await recorder.append(createAuditEvent({ ...event, id: undefined, reporter: 'spiffe://shop.local/svc/orders' }));
  assert.equal(log.entry(1)?.event.reporter, 'spiffe://shop.local/svc/control');
  assert.equal(log.entry(1)?.event.action, 'secret.read');
  // Built by hand: checked in full, refused, nothing logged.
  await assert.rejects(
    recorder.append({ ...event, id: '01890a5d-ac96-774b-bcce-b302099a8059', resource: 'Bearer abc' }),
    {
      code: 'AUDIT_ERR_EVENT',
    },
  );
  assert.equal(log.size(), 2);
  await log.close();
  await assert.rejects(recorder.append({ ...event, id: '01890a5d-ac96-774b-bcce-b302099a8058' }), {
    code: 'AUDIT_ERR_CLOSED',
  });
});
