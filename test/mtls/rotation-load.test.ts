/**
 * Rotation under load (issue 4 must-show, bounded): with 4 s SVIDs, `orders` calls `payments` over mTLS
 * without pause while both renew every ~2 s and swap live, then a forced CA rotation publishes a new CA,
 * the workloads pick up the bundle and acknowledge it, the new CA activates and signs the next SVIDs.
 * Zero failed calls throughout. (The 60 s at a 10 s TTL is the same loop, longer.)
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
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
const TTL_MS = 4_000;
const noTokens = (async () => {
  throw new Error('no user tokens');
}) as unknown as AccessTokenVerifier;

describe('rotation under load', { timeout: 90_000 }, () => {
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
    const dir = mkdtempSync(join(tmpdir(), `rampart-rotation-${name}-`));
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
      svidSchedule: { retryInitialMs: 200, retryMaxMs: 500, bundleRefreshMs: 300 },
    });
    services.push(svc);
    return { svc, url: `https://127.0.0.1:${port}` };
  };

  before(async () => {
    t = await openTestCa({ svidTtlMs: TTL_MS, clockSkewMs: 500, caLifetimeMs: 3_600_000, bundlePropagationMs: 3_000 });
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

  test('zero failed calls across many SVID renewals and a forced CA rotation', async () => {
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
        await delay(20);
      }
    })();
    const seen = { orders: new Set<string>(), payments: new Set<string>() };
    let rotation: Awaited<ReturnType<typeof t.ca.rotateNow>> | null = null;
    const activeIs = (generation: number) =>
      t.ca.status().authorities.some((a) => a.generation === generation && a.state === 'active');
    const watch = setInterval(() => {
      seen.orders.add(orders.svid()!.certificatePem);
      seen.payments.add(payments.svid()!.certificatePem);
    }, 100);
    try {
      await delay(8_000);
      rotation = await t.ca.rotateNow();
      // The control plane's ticker drives activation (every holder acknowledged, or the propagation time).
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && !activeIs(rotation.generation)) {
        await t.ca.tick();
        await delay(200);
      }
      await delay(8_000);
    } finally {
      clearInterval(watch);
      running = false;
      await load;
    }
    assert.ok(rotation && activeIs(rotation.generation), 'the new CA is active');
    const newCa = t.ca.bundle().authorities.find((a) => a.generation === rotation?.generation);
    assert.ok(newCa);
    for (const svc of [orders, payments]) {
      const leaf = new X509Certificate(svc.svid()!.certificatePem);
      assert.ok(leaf.verify(new X509Certificate(newCa.pem).publicKey), `${svc.name} holds an SVID of the new CA`);
    }
    assert.ok(seen.orders.size >= 4, `orders SVIDs: ${seen.orders.size}`);
    assert.ok(seen.payments.size >= 4, `payments SVIDs: ${seen.payments.size}`);
    assert.ok(calls > 200, `calls: ${calls}`);
    assert.deepEqual(failures, []);
  });
});
