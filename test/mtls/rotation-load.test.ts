/**
 * Rotation under load (issue 4 must-show): "With SVID TTL shortened to 10 s, 60 s of steady
 * service-to-service load sees zero failed requests across many rotations; a forced CA rotation under
 * load sees zero failures."
 *
 * `orders` calls `payments` over mTLS without pause for 60 s while both renew at about half their 10 s
 * lifetime and swap their certificates live. Half-way through, a forced CA rotation publishes a new CA;
 * the workloads fetch the bundle and acknowledge it, the new CA activates (a ticker stands in for the
 * control plane's) and signs every SVID after that; about ten seconds later the old CA's last SVID
 * expires and the ticker retires it, so the bundle changes once more under load. Not one call may fail.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { callLoop, type OrdersPayments, startOrdersPayments } from './orders-payments.ts';

const TTL_MS = 10_000;
const LOAD_MS = 60_000;
/** When, into the minute of load, the CA rotation is forced. */
const ROTATE_AT_MS = 25_000;

describe('rotation under load', { timeout: 150_000 }, () => {
  let system: OrdersPayments;
  before(async () => {
    system = await startOrdersPayments({
      svidTtlMs: TTL_MS,
      // Five bundle refreshes, the ratio of the production defaults (CA_DEFAULTS.bundlePropagationMs to
      // SVID_RENEWAL_DEFAULTS.bundleRefreshMs). The new CA activates at this deadline, not sooner on
      // acknowledgements: the control plane's own server certificate (issued directly) never acknowledges.
      bundlePropagationMs: 5_000,
      svidSchedule: { retryInitialMs: 200, retryMaxMs: 1_000, bundleRefreshMs: 1_000 },
    });
  });
  after(() => system.close());

  test('60 s of calls with 10 s SVIDs and a forced CA rotation: zero failures', async (ctx) => {
    const { t, orders, payments } = system;
    const generationOf = (pem: string) => {
      const leaf = new X509Certificate(pem);
      return t.ca.bundle().authorities.find((a) => leaf.verify(new X509Certificate(a.pem).publicKey))?.generation;
    };
    const firstGeneration = generationOf(orders.svid()!.certificatePem);
    const seen = { orders: new Set<string>(), payments: new Set<string>() };
    const sample = () => {
      seen.orders.add(orders.svid()!.certificatePem);
      seen.payments.add(payments.svid()!.certificatePem);
    };
    const tickErrors: unknown[] = [];
    const ticker = setInterval(() => {
      t.ca.tick().catch((err: unknown) => tickErrors.push(err));
    }, 1_000);
    const watch = setInterval(sample, 100);
    const start = Date.now();
    const load = callLoop(orders, 20);
    let rotation: Awaited<ReturnType<typeof t.ca.rotateNow>> | null = null;
    let activatedAfterMs: number | null = null;
    let signedByNew = { orders: 0, payments: 0 };
    try {
      await delay(ROTATE_AT_MS);
      rotation = await t.ca.rotateNow();
      const rotatedAt = Date.now();
      const newGeneration = rotation.generation;
      while (Date.now() - start < LOAD_MS) {
        const active = t.ca.status().authorities.find((a) => a.state === 'active');
        if (activatedAfterMs === null && active?.generation === newGeneration)
          activatedAfterMs = Date.now() - rotatedAt;
        await delay(100);
      }
      sample();
      // Count SVIDs the new CA signed while the old was still in the bundle or after it retired.
      signedByNew = {
        orders: [...seen.orders].filter((pem) => generationOf(pem) === newGeneration).length,
        payments: [...seen.payments].filter((pem) => generationOf(pem) === newGeneration).length,
      };
    } finally {
      clearInterval(watch);
      clearInterval(ticker);
      await load.stop();
    }
    const elapsed = Date.now() - start;
    ctx.diagnostic(
      `${load.calls()} calls in ${elapsed} ms, ${load.failures.length} failed; SVIDs seen: orders ${seen.orders.size}, ` +
        `payments ${seen.payments.size} (from the new CA: ${signedByNew.orders}, ${signedByNew.payments}); ` +
        `new CA active ${activatedAfterMs} ms after the forced rotation`,
    );

    assert.deepEqual(load.failures, []);
    assert.deepEqual(tickErrors, []);
    assert.ok(elapsed >= LOAD_MS, `load ran ${elapsed} ms`);
    // At a 20 ms pause a call takes a few ms: thousands in a minute, even on a loaded machine.
    assert.ok(load.calls() >= 1_000, `calls: ${load.calls()}`);
    // Renewal at ½ TTL (minus up to 10 % jitter): about twelve SVIDs each in a minute.
    assert.ok(seen.orders.size >= 5, `orders SVIDs: ${seen.orders.size}`);
    assert.ok(seen.payments.size >= 5, `payments SVIDs: ${seen.payments.size}`);

    assert.ok(rotation, 'rotated');
    assert.notEqual(rotation.generation, firstGeneration);
    assert.equal(rotation.activated, false, 'a forced rotation publishes first, it does not sign at once');
    assert.ok(activatedAfterMs !== null, 'the new CA activated');
    // Due at the propagation time (5 s); the 1 s ticker and a loaded event loop add a little.
    assert.ok(activatedAfterMs <= 10_000, `activated after ${activatedAfterMs} ms (propagation 5 s)`);
    const status = t.ca.status();
    assert.equal(status.authorities.find((a) => a.state === 'active')?.generation, rotation.generation);
    // The old CA's SVIDs have all expired (≥ 25 s since activation, 10 s TTL): the ticker retired it.
    assert.ok(!status.authorities.some((a) => a.generation === firstGeneration), 'the old CA is retired');
    assert.ok(t.ca.bundle().sequence > rotation.publishedSequence, 'retirement published a new bundle');
    for (const svc of [orders, payments]) {
      const svid = svc.svid()!;
      assert.equal(generationOf(svid.certificatePem), rotation.generation, `${svc.name} holds an SVID of the new CA`);
      assert.ok(svid.bundleSequence >= rotation.publishedSequence, `${svc.name} installed the new bundle`);
    }
    assert.ok(signedByNew.orders >= 2, `orders SVIDs from the new CA: ${signedByNew.orders}`);
    assert.ok(signedByNew.payments >= 2, `payments SVIDs from the new CA: ${signedByNew.payments}`);
  });
});
