/**
 * Rotation under load (issue 4 must-show, bounded): with 4 s SVIDs, `orders` calls `payments` over mTLS
 * without pause while both renew every ~2 s and swap live, then a forced CA rotation publishes a new CA,
 * the workloads pick up the bundle and acknowledge it, the new CA activates and signs the next SVIDs.
 * Zero failed calls throughout. (The 60 s at a 10 s TTL is the same loop, longer.)
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { callLoop, type OrdersPayments, startOrdersPayments } from './orders-payments.ts';

const TTL_MS = 4_000;

describe('rotation under load', { timeout: 90_000 }, () => {
  let system: OrdersPayments;
  before(async () => {
    system = await startOrdersPayments({
      svidTtlMs: TTL_MS,
      bundlePropagationMs: 3_000,
      svidSchedule: { retryInitialMs: 200, retryMaxMs: 500, bundleRefreshMs: 300 },
    });
  });
  after(() => system.close());

  test('zero failed calls across many SVID renewals and a forced CA rotation', async () => {
    const { t, orders, payments } = system;
    const load = callLoop(orders, 20);
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
      await load.stop();
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
    assert.ok(load.calls() > 200, `calls: ${load.calls()}`);
    assert.deepEqual(load.failures, []);
  });
});
