/**
 * Control plane down ≠ system down (issue 4 §5): with 20 s SVIDs, the control plane is stopped for
 * longer than half the SVID lifetime while `orders` calls `payments` over mTLS without pause. No call
 * fails while the certificates are valid; renewals fail meanwhile and resume once it is back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type ControlApi,
  createControlApi,
  createServerCertificate,
  requestJoinToken,
  type ServerCertificate,
} from '../../src/control/api/index.ts';
import { openTestCa, type TestCa } from '../../src/control/ca/testing.ts';
import type { AccessTokenVerifier } from '../../src/core/access-token.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { InboundPolicy } from '../../src/core/runtime.ts';
import { type RampartService, service } from '../../src/sdk/index.ts';
import { freePort } from '../helpers/processes.ts';

const CREDENTIAL = 'd'.repeat(43);
const TTL_MS = 20_000;
const noTokens = (async () => {
  throw new Error('no user tokens');
}) as unknown as AccessTokenVerifier;

describe('control plane down', { timeout: 90_000 }, () => {
  let t: TestCa;
  let cert: ServerCertificate | null = null;
  let api: ControlApi | null = null;
  let controlPort = 0;
  const dirs: string[] = [];
  const services: RampartService[] = [];
  let orders: RampartService;
  let payments: RampartService;
  const logger = createLogger({ name: 'control', level: 'silent' });

  const startControl = async () => {
    const held = await createServerCertificate({ ca: t.ca, logger, onRenewed: () => api?.refreshTls() });
    cert = held;
    api = createControlApi({ ca: t.ca, launcherCredential: CREDENTIAL, credentials: () => held.current(), logger });
    controlPort = await api.listen(controlPort);
  };
  const stopControl = async () => {
    cert?.close();
    await api?.close();
    api?.server.closeAllConnections();
    api = null;
  };

  const startService = async (name: string, callers: InboundPolicy['callers'], peers: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), `rampart-down-${name}-`));
    dirs.push(dir);
    const port = await freePort();
    const control = { url: `https://127.0.0.1:${controlPort}`, bundle: t.ca.bundle().pem, trustDomain: 'shop.local' };
    const { token } = await requestJoinToken(control, CREDENTIAL, name);
    const svc = service({
      runtime: {
        kind: 'service',
        name,
        dataDir: dir,
        adminPort: await freePort(),
        manifestFile: join(dir, 'rampart.yaml'),
        port,
        identity: { issuer: 'https://issuer.invalid', audience: 'https://api.shop.local', jwksUri: null },
        peers,
        policy: { version: 1, callers },
        control,
        joinToken: token,
      },
      verifier: noTokens,
      logger: createLogger({ name, level: 'silent' }),
      // Short retries so that renewals resume within a second of the control plane's return.
      svidSchedule: { retryInitialMs: 200, retryMaxMs: 500 },
    });
    services.push(svc);
    return { svc, url: `https://127.0.0.1:${port}` };
  };

  before(async () => {
    t = await openTestCa({ svidTtlMs: TTL_MS, clockSkewMs: 500, caLifetimeMs: 3_600_000, bundlePropagationMs: 60_000 });
    const realClock = setInterval(() => {
      t.clock.now = Date.now();
    }, 50);
    realClock.unref();
    await startControl();
    const p = await startService(
      'payments',
      { 'spiffe://shop.local/svc/orders': [{ methods: ['POST'], paths: ['/charges'] }] },
      {},
    );
    payments = p.svc;
    payments.app.post('/charges', async () => ({ ok: true }));
    await payments.start();
    orders = (await startService('orders', {}, { payments: p.url })).svc;
    await orders.start();
  });
  after(async () => {
    for (const svc of services.reverse()) await svc.close();
    await stopControl();
    t.cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('no call fails while it is down for longer than half the SVID lifetime; renewals resume when it returns', async () => {
    let calls = 0;
    const failures: string[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        try {
          const res = await orders.call('payments', '/charges', { json: {} });
          if (res.status !== 200) failures.push(`status ${res.status}`);
          await res.json();
        } catch (err) {
          failures.push((err as Error).message);
        }
        calls += 1;
        await delay(50);
      }
    })();

    await delay(1_000);
    const before = { orders: orders.svid()!, payments: payments.svid()! };
    await stopControl();
    await delay(TTL_MS / 2 + 1_000);
    // Still the first SVIDs (renewal was due and failed), still valid, still serving.
    assert.equal(orders.svid()!.certificatePem, before.orders.certificatePem);
    assert.equal(payments.svid()!.certificatePem, before.payments.certificatePem);
    assert.ok(before.orders.notAfter > Date.now());
    const callsWhileDown = calls;

    await startControl();
    const deadline = Date.now() + 10_000;
    while (
      (orders.svid()!.certificatePem === before.orders.certificatePem ||
        payments.svid()!.certificatePem === before.payments.certificatePem) &&
      Date.now() < deadline
    ) {
      await delay(100);
    }
    await delay(500);
    running = false;
    await load;

    assert.notEqual(orders.svid()!.certificatePem, before.orders.certificatePem, 'orders renewed after the return');
    assert.notEqual(
      payments.svid()!.certificatePem,
      before.payments.certificatePem,
      'payments renewed after the return',
    );
    assert.ok(callsWhileDown > 50, `calls while down: ${callsWhileDown}`);
    assert.deepEqual(failures, []);
  });
});
