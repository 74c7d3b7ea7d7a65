/**
 * SDK denials through the audit client: a service refuses a caller its policy does not name (403) and
 * the decision reaches the control plane's audit log, reported by the service's own SPIFFE ID; while
 * the control plane is away the denial waits in the service's spool.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createAuditRoutes } from '../../src/control/api/audit-routes.ts';
import {
  type ControlApi,
  createControlApi,
  createServerCertificate,
  createWorkloadKey,
  type ServerCertificate,
} from '../../src/control/api/index.ts';
import { type AuditLog, openAuditLog } from '../../src/control/audit/log.ts';
import { openTestCa, type TestCa } from '../../src/control/ca/testing.ts';
import type { AccessTokenVerifier } from '../../src/core/access-token.ts';
import type { AuditEvent } from '../../src/core/audit-event.ts';
import { createLogger } from '../../src/core/logger.ts';
import { type RampartService, service } from '../../src/sdk/index.ts';
import { freePort } from '../helpers/processes.ts';

const noTokens = (async () => {
  throw new Error('no user tokens');
}) as unknown as AccessTokenVerifier;

describe('SDK denials reach the audit log', { timeout: 60_000 }, () => {
  let t: TestCa;
  let dir: string;
  let log: AuditLog;
  let cert: ServerCertificate | null = null;
  let api: ControlApi | null = null;
  let controlPort = 0;
  let payments: RampartService;
  let paymentsPort: number;
  let clock: NodeJS.Timeout;

  const startControl = async () => {
    const logger = createLogger({ name: 'control', level: 'silent' });
    const held = await createServerCertificate({ ca: t.ca, logger, onRenewed: () => api?.refreshTls() });
    cert = held;
    api = createControlApi({
      ca: t.ca,
      launcherCredential: 'l'.repeat(43),
      credentials: () => held.current(),
      logger,
      routes: [createAuditRoutes({ log, trustDomain: 'shop.local' })],
    });
    controlPort = await api.listen(controlPort);
  };
  const stopControl = async () => {
    cert?.close();
    await api?.close();
    api?.server.closeAllConnections();
    api = null;
  };
  const credentialsFor = async (name: string) => {
    const key = await createWorkloadKey();
    const svid = await t.ca.issue({ csr: key.csrPem, serviceName: name });
    return { cert: svid.certificatePem, key: key.keyPem };
  };
  const charge = (credentials: { cert: string; key: string }) =>
    new Promise<number>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: paymentsPort,
        path: '/charges',
        method: 'POST',
        ca: t.ca.bundle().pem,
        ...credentials,
        agent: false,
        checkServerIdentity: () => undefined,
        headers: { 'content-type': 'application/json' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.end('{}');
    });
  const paymentsEvents = (): AuditEvent[] => {
    const out: AuditEvent[] = [];
    for (let i = 0; i < log.size(); i++) {
      const e = log.entry(i)!.event;
      if (e.component === 'payments') out.push(e);
    }
    return out;
  };
  const waitFor = async (ok: () => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!ok() && Date.now() < deadline) await delay(50);
  };

  before(async () => {
    t = await openTestCa({ svidTtlMs: 600_000 });
    clock = setInterval(() => {
      t.clock.now = Date.now();
    }, 50);
    clock.unref();
    dir = mkdtempSync(join(tmpdir(), 'rampart-sdk-denials-'));
    log = openAuditLog({ path: join(dir, 'audit.db'), origin: 'shop.local/rampart/audit', kek: t.kek });
    await startControl();
    paymentsPort = await freePort();
    const dataDir = join(dir, 'payments');
    payments = service({
      runtime: {
        kind: 'service',
        name: 'payments',
        dataDir,
        adminPort: await freePort(),
        manifestFile: join(dir, 'rampart.yaml'),
        port: paymentsPort,
        identity: { issuer: 'https://issuer.invalid', audience: 'https://api.shop.local', jwksUri: null },
        peers: {},
        policy: {
          version: 1,
          callers: { 'spiffe://shop.local/svc/orders': [{ methods: ['POST'], paths: ['/charges'] }] },
        },
        control: { url: `https://127.0.0.1:${controlPort}`, bundle: t.ca.bundle().pem, trustDomain: 'shop.local' },
        joinToken: t.ca.mintJoinToken('payments').token,
      },
      verifier: noTokens,
      logger: createLogger({ name: 'payments', level: 'silent' }),
      audit: { retryInitialMs: 50, retryMaxMs: 200 },
    });
    payments.app.post('/charges', async () => ({ ok: true }));
    await payments.start();
  });
  after(async () => {
    clearInterval(clock);
    await payments.close();
    await stopControl();
    await log.close();
    t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a refused caller is an audit event of the service, delivered now or after an outage', async () => {
    const catalog = await credentialsFor('catalog');
    assert.equal(await charge(catalog), 403);
    await waitFor(() => paymentsEvents().length === 1, 5_000);
    const [first] = paymentsEvents();
    assert.ok(first);
    assert.equal(first.action, 'http.request');
    assert.equal(first.decision, 'deny');
    assert.equal(first.resource, '/charges');
    assert.equal(first.actor?.spiffeId, 'spiffe://shop.local/svc/catalog');
    assert.equal(first.reporter, 'spiffe://shop.local/svc/payments');

    // The allowed caller makes no event.
    assert.equal(await charge(await credentialsFor('orders')), 200);

    await stopControl();
    assert.equal(await charge(catalog), 403);
    await delay(500);
    assert.equal(paymentsEvents().length, 1, 'nothing arrives while the control plane is away');
    await startControl();
    await waitFor(() => paymentsEvents().length === 2, 10_000);
    const events = paymentsEvents();
    assert.equal(events.length, 2);
    assert.notEqual(events[0]!.id, events[1]!.id);
  });
});
