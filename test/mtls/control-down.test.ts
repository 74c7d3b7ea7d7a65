/**
 * Control plane down ≠ system down (issue 4 §5): with 20 s SVIDs, the control plane is stopped for
 * longer than half the SVID lifetime while `orders` calls `payments` over mTLS without pause. No call
 * fails while the certificates are valid; renewals fail meanwhile and resume once it is back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { callLoop, type OrdersPayments, startOrdersPayments } from './orders-payments.ts';

const TTL_MS = 20_000;

describe('control plane down', { timeout: 90_000 }, () => {
  let system: OrdersPayments;
  before(async () => {
    system = await startOrdersPayments({
      svidTtlMs: TTL_MS,
      bundlePropagationMs: 60_000,
      // Short retries so that renewals resume within a second of the control plane's return.
      svidSchedule: { retryInitialMs: 200, retryMaxMs: 500 },
    });
  });
  after(() => system.close());

  test('no call fails while it is down for longer than half the SVID lifetime; renewals resume when it returns', async () => {
    const { orders, payments } = system;
    const load = callLoop(orders, 50);

    await delay(1_000);
    const before = { orders: orders.svid()!, payments: payments.svid()! };
    await system.stopControl();
    await delay(TTL_MS / 2 + 1_000);
    // Still the first SVIDs (renewal was due and failed), still valid, still serving.
    assert.equal(orders.svid()!.certificatePem, before.orders.certificatePem);
    assert.equal(payments.svid()!.certificatePem, before.payments.certificatePem);
    assert.ok(before.orders.notAfter > Date.now());
    const callsWhileDown = load.calls();

    await system.startControl();
    const deadline = Date.now() + 10_000;
    while (
      (orders.svid()!.certificatePem === before.orders.certificatePem ||
        payments.svid()!.certificatePem === before.payments.certificatePem) &&
      Date.now() < deadline
    ) {
      await delay(100);
    }
    await delay(500);
    await load.stop();

    assert.notEqual(orders.svid()!.certificatePem, before.orders.certificatePem, 'orders renewed after the return');
    assert.notEqual(
      payments.svid()!.certificatePem,
      before.payments.certificatePem,
      'payments renewed after the return',
    );
    assert.ok(callsWhileDown > 50, `calls while down: ${callsWhileDown}`);
    assert.deepEqual(load.failures, []);
  });
});
