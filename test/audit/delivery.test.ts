/**
 * Audit delivery end to end (issue 6 "Delivery"): the real gateway process (permission model, its
 * own SVID from the control plane) denies requests (401: no token) while the control plane is down.
 * Its decision events spool durably in its data directory; when the control plane returns they
 * arrive in its Merkle-tree log exactly once, in the order the requests were refused, reported by
 * the gateway's SPIFFE ID; `rampart audit verify` then passes on the log with its pinned key.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createAuditRoutes } from '../../src/control/api/audit-routes.ts';
import {
  type ControlApi,
  createControlApi,
  createServerCertificate,
  type ServerCertificate,
} from '../../src/control/api/index.ts';
import { AUDIT_DEFAULTS } from '../../src/control/audit/defaults.ts';
import { type AuditLog, openAuditLog } from '../../src/control/audit/log.ts';
import { openTestCa, type TestCa } from '../../src/control/ca/testing.ts';
import type { AuditEvent } from '../../src/core/audit-event.ts';
import { createLogger } from '../../src/core/logger.ts';
import { type GatewayProcess, metricSum, REPO, startGatewayProcess } from '../helpers/gateway-process.ts';
import { httpGet } from '../helpers/processes.ts';

const ORIGIN = 'shop.local/rampart/audit';
const GATEWAY_ID = 'spiffe://shop.local/svc/gateway';

function manifest(port: number): string {
  return `
trustDomain: shop.local
gateway:
  listen: { host: 127.0.0.1, port: ${port} }
  tls: off
  workers: 1
identity:
  external: { issuer: "https://idp.example.com", jwksUri: "http://127.0.0.1:1/jwks" }
  audience: https://api.shop.local
services:
  orders:
    run: services/orders.ts
    routes:
      - { id: orders-list, path: /orders/**, methods: [GET], auth: { scopes: [orders] } }
`;
}

describe('audit delivery: control plane down while the gateway denies requests', { timeout: 120_000 }, () => {
  let t: TestCa;
  let dataDir: string;
  let log: AuditLog | null = null;
  let verifierKey = '';
  let cert: ServerCertificate | null = null;
  let api: ControlApi | null = null;
  let controlPort = 0;
  let gateway: GatewayProcess;
  let clock: NodeJS.Timeout;
  const cleanups: (() => unknown)[] = [];

  /** The control plane's audit log and API, as its process would open them (same files, same port). */
  const startControl = async () => {
    const logger = createLogger({ name: 'control', level: 'silent' });
    const opened = openAuditLog({
      path: join(dataDir, AUDIT_DEFAULTS.databaseFile),
      origin: ORIGIN,
      kek: t.kek,
      checkpointIntervalMs: 0,
    });
    log = opened;
    verifierKey = opened.verifierKey;
    const held = await createServerCertificate({ ca: t.ca, logger, onRenewed: () => api?.refreshTls() });
    cert = held;
    api = createControlApi({
      ca: t.ca,
      launcherCredential: 'l'.repeat(43),
      credentials: () => held.current(),
      logger,
      routes: [createAuditRoutes({ log: opened, trustDomain: 'shop.local' })],
    });
    controlPort = await api.listen(controlPort);
  };
  const stopControl = async () => {
    cert?.close();
    await api?.close();
    api?.server.closeAllConnections();
    api = null;
    await log?.close();
    log = null;
  };

  const gatewayEvents = (): AuditEvent[] => {
    const out: AuditEvent[] = [];
    const l = log!;
    for (let i = 0; i < l.size(); i++) {
      const entry = l.entry(i)!.event;
      if (entry.component === 'gateway') out.push(entry);
    }
    return out;
  };
  const waitFor = async (what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await delay(50);
    }
  };
  const deny = async (path: string) => {
    const res = await httpGet(`${gateway.base}${path}`);
    assert.equal(res.status, 401, path);
  };

  before(async () => {
    t = await openTestCa({ svidTtlMs: 600_000 });
    clock = setInterval(() => {
      t.clock.now = Date.now();
    }, 50);
    clock.unref();
    dataDir = mkdtempSync(join(tmpdir(), 'rampart-delivery-control-'));
    await startControl();
    const { token } = t.ca.mintJoinToken('gateway');
    gateway = await startGatewayProcess(
      { after: (fn) => cleanups.push(fn) },
      {
        manifest,
        upstreams: { orders: 'https://127.0.0.1:9' },
        runtime: {
          control: { url: `https://127.0.0.1:${controlPort}`, bundle: t.ca.bundle().pem, trustDomain: 'shop.local' },
          joinToken: token,
        },
      },
    );
  });
  after(async () => {
    clearInterval(clock);
    for (const fn of cleanups.reverse()) await fn();
    await stopControl();
    t.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('events spool while it is down and arrive once it returns: exactly once, in order; verify passes', async () => {
    // Up: delivered within moments.
    for (let i = 0; i < 5; i++) await deny(`/orders/up-${i}`);
    await waitFor('the first events', () => gatewayEvents().length === 5, 10_000);

    await stopControl();
    const whileDown = Array.from({ length: 40 }, (_, i) => `/orders/down-${i}`);
    for (const path of whileDown) await deny(path);
    await waitFor(
      'the spool to hold every denial',
      async () => metricSum(await gateway.metrics(), 'rampart_audit_client_spool_events') === 40,
      10_000,
    );
    await waitFor(
      'a failed delivery',
      async () => metricSum(await gateway.metrics(), 'rampart_audit_client_delivery_failures_total') > 0,
      10_000,
    );

    await startControl();
    await waitFor('the spooled events to arrive', () => gatewayEvents().length >= 45, 30_000);
    for (let i = 0; i < 3; i++) await deny(`/orders/after-${i}`);
    await waitFor('the last events', () => gatewayEvents().length >= 48, 10_000);
    await delay(300);

    const events = gatewayEvents();
    const expected = [
      ...Array.from({ length: 5 }, (_, i) => `/orders/up-${i}`),
      ...whileDown,
      ...Array.from({ length: 3 }, (_, i) => `/orders/after-${i}`),
    ];
    assert.deepEqual(
      events.map((e) => e.resource),
      expected,
      'every denial once, in the order it was made',
    );
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no event id twice');
    assert.ok(events.every((e) => e.reporter === GATEWAY_ID && e.decision === 'deny' && e.detail?.status === 401));
    const metrics = await gateway.metrics();
    assert.equal(metricSum(metrics, 'rampart_audit_client_spool_events'), 0);
    assert.equal(metricSum(metrics, 'rampart_audit_client_delivered_total'), 48);
    assert.equal(metricSum(metrics, 'rampart_audit_client_dropped_total'), 0);

    await stopControl();
    const verify = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(REPO, 'bin', 'rampart.js'), 'audit', 'verify', '--data', dataDir, '--key', verifierKey],
        { cwd: REPO },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`);
    assert.match(verify.stdout, /verified 48 entries/);
  });
});
