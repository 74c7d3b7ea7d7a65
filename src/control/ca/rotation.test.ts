import assert from 'node:assert/strict';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, test } from 'node:test';
import { RampartError } from '../../core/errors.ts';
import { type CaEvent, openCertificateAuthority } from './authority.ts';
import type { TrustBundle } from './bundle.ts';
import { CA_ERRORS } from './errors.ts';
import { CA_WARNINGS } from './status.ts';
import { makeCsr, openTestCa, type TestCa } from './testing.ts';

const HOUR = 3_600_000;
const MIN = 60_000;
const DAY = 24 * HOUR;

/** True when `leafDer` chains to one of the bundle's CAs (signature and issuer name). */
function trusted(bundle: TrustBundle, leafDer: Uint8Array): boolean {
  const leaf = new NodeX509Certificate(leafDer);
  return bundle.authorities.some((a) => {
    const ca = new NodeX509Certificate(a.pem);
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  });
}

const warningCodes = (t: TestCa, now: number) =>
  t.ca
    .status(now)
    .warnings.map((w) => w.code)
    .sort();

let current: TestCa | null = null;
afterEach(() => {
  current?.cleanup();
  current = null;
});
async function open(options: Parameters<typeof openTestCa>[0] = {}): Promise<TestCa> {
  current = await openTestCa(options);
  return current;
}

describe('rotation (SPIRE scheme: prepare at ½, activate at ⅙ left, retire after the last SVID)', () => {
  test('a full cycle, step by step, with the bundle sequence rising at every change', async () => {
    const t = await open();
    const t0 = t.clock.now;
    const csr = (await makeCsr()).pem;
    const gen1 = t.ca.status().authorities[0];
    assert.ok(gen1);
    assert.deepEqual([gen1.generation, gen1.slot, gen1.state], [1, 'A', 'active']);
    assert.equal(t.ca.bundle().sequence, 1);
    assert.equal(
      gen1.notAfter - gen1.notBefore,
      Math.floor((t0 + DAY) / 1000) * 1000 - Math.floor((t0 - MIN) / 1000) * 1000,
    );
    const { prepareAt, activateAt } = t.ca.status().schedule ?? { prepareAt: 0, activateAt: 0 };
    const lifetime = gen1.notAfter - gen1.notBefore;
    assert.equal(prepareAt, gen1.notBefore + lifetime / 2);
    assert.equal(activateAt, gen1.notAfter - Math.floor(lifetime / 6));

    // Just before ½: nothing happens.
    assert.deepEqual(await t.ca.tick(prepareAt - 1), []);
    // At ½: gen 2 is prepared in slot B and published (sequence 2) before it signs anything.
    const prepared = await t.ca.tick(prepareAt);
    assert.equal(prepared.length, 1);
    assert.deepEqual(
      { ...prepared[0], notAfter: 0 },
      {
        type: 'ca.prepared',
        generation: 2,
        slot: 'B',
        notAfter: 0,
        bundleSequence: 2,
        activateAt,
        forced: false,
      },
    );
    const published = t.ca.bundle();
    assert.equal(published.sequence, 2);
    assert.deepEqual(
      published.authorities.map((a) => [a.generation, a.state]),
      [
        [1, 'active'],
        [2, 'prepared'],
      ],
    );
    // Between ½ and ⅚ the old CA still signs.
    t.clock.now = activateAt - 30 * MIN;
    const old = await t.ca.issue({ csr, serviceName: 'orders' });
    assert.equal(old.generation, 1);
    assert.equal(await t.ca.tick(activateAt - 1).then((e) => e.length), 0);

    // At ⅚: gen 2 signs; gen 1 is retiring and stays in the bundle for its SVIDs.
    const activated = await t.ca.tick(activateAt);
    assert.deepEqual(activated, [{ type: 'ca.activated', generation: 2, slot: 'B', previous: 1, emergency: false }]);
    t.clock.now = activateAt + MIN;
    const fresh = await t.ca.issue({ csr, serviceName: 'orders' });
    assert.equal(fresh.generation, 2);
    const overlap = t.ca.bundle();
    assert.equal(overlap.sequence, 2, 'activation does not change the set of CAs');
    assert.ok(trusted(overlap, old.certificateDer), 'an SVID of the old CA is trusted during the overlap');
    assert.ok(trusted(overlap, fresh.certificateDer));

    // Retire exactly when the old CA's last SVID expires, not before.
    assert.deepEqual(await t.ca.tick(old.notAfter - 1), []);
    const retired = await t.ca.tick(old.notAfter);
    assert.deepEqual(retired, [{ type: 'ca.retired', generation: 1, slot: 'A', bundleSequence: 3 }]);
    const after = t.ca.bundle();
    assert.deepEqual(
      after.authorities.map((a) => a.generation),
      [2],
    );
    assert.equal(trusted(after, old.certificateDer), false);
    assert.ok(trusted(after, fresh.certificateDer));
    // The retired CA's wrapped key is erased; its certificate stays as history.
    const db = new DatabaseSync(t.databasePath, { readOnly: true });
    try {
      const row = db.prepare('SELECT state, wrapped_key, certificate FROM authorities WHERE generation = 1').get() as {
        state: string;
        wrapped_key: null;
        certificate: Uint8Array;
      };
      assert.equal(row.state, 'retired');
      assert.equal(row.wrapped_key, null);
      assert.ok(row.certificate.length > 0);
    } finally {
      db.close();
    }

    // Next cycle: slot A is reused by generation 3.
    const gen2 = t.ca.status(old.notAfter).authorities[0];
    assert.ok(gen2);
    const next = await t.ca.tick(gen2.notBefore + (gen2.notAfter - gen2.notBefore) / 2);
    assert.deepEqual(
      next.map((e) => [e.type, e.generation, e.slot]),
      [['ca.prepared', 3, 'A']],
    );
    assert.equal(t.ca.bundle().sequence, 4);
  });

  test('a CA without SVIDs retires as soon as it is replaced', async () => {
    const t = await open();
    const { prepareAt = 0, activateAt = 0 } = t.ca.status().schedule ?? {};
    await t.ca.tick(prepareAt);
    const events = await t.ca.tick(activateAt);
    assert.deepEqual(
      events.map((e) => e.type),
      ['ca.activated', 'ca.retired'],
    );
  });

  test('downtime past ⅚: the successor is published first and activates only after the propagation time', async () => {
    const t = await open();
    const gen1 = t.ca.status().authorities[0];
    assert.ok(gen1);
    const late = gen1.notAfter - 2 * HOUR; // past ⅚ (4 h left), no successor yet
    assert.deepEqual(warningCodes(t, late), [
      CA_WARNINGS.anchorExpiring,
      CA_WARNINGS.noSuccessor,
      CA_WARNINGS.rotationOverdue,
    ]);
    const prepared = await t.ca.tick(late);
    assert.deepEqual(
      prepared.map((e) => e.type),
      ['ca.prepared'],
    );
    assert.equal(prepared[0]?.type === 'ca.prepared' && prepared[0].activateAt, late + 5 * MIN);
    assert.deepEqual(await t.ca.tick(late + 5 * MIN - 1), []);
    assert.deepEqual(
      (await t.ca.tick(late + 5 * MIN)).map((e) => e.type),
      ['ca.activated', 'ca.retired'],
    );
  });

  test('downtime past expiry: emergency rotation at once (nothing valid is left to protect)', async () => {
    const t = await open();
    const csr = (await makeCsr()).pem;
    await t.ca.issue({ csr, serviceName: 'orders' });
    const gen1 = t.ca.status().authorities[0];
    assert.ok(gen1);
    const later = gen1.notAfter + HOUR;
    assert.deepEqual(warningCodes(t, later), [
      CA_WARNINGS.expired,
      CA_WARNINGS.noSuccessor,
      CA_WARNINGS.rotationOverdue,
    ]);
    t.clock.now = later;
    assert.equal(
      await t.ca.issue({ csr, serviceName: 'orders' }).catch((e: RampartError) => e.code),
      CA_ERRORS.noActiveCa,
    );
    // A restart after the downtime catches up in its first tick.
    t.ca.close();
    const events: CaEvent[] = [];
    const reopened = await openCertificateAuthority({
      trustDomain: 'shop.local',
      databasePath: t.databasePath,
      kek: t.kek,
      clock: () => later,
      onEvent: (e) => events.push(e),
    });
    try {
      assert.deepEqual(
        events.map((e) => [e.type, e.generation, e.type === 'ca.activated' ? e.emergency : null]),
        [
          ['ca.prepared', 2, null],
          ['ca.activated', 2, true],
          ['ca.retired', 1, null],
        ],
      );
      const status = reopened.status();
      assert.deepEqual(
        status.authorities.map((a) => [a.generation, a.state]),
        [[2, 'active']],
      );
      assert.deepEqual(status.warnings, []);
      assert.equal((await reopened.issue({ csr, serviceName: 'orders' })).generation, 2);
    } finally {
      reopened.close();
    }
  });

  test('the bundle sequence never goes back, across restarts', async () => {
    const t = await open();
    const seen = [t.ca.bundle().sequence];
    let now = t.clock.now;
    for (let i = 0; i < 6; i++) {
      now += 10 * HOUR;
      await t.ca.tick(now);
      seen.push(t.ca.bundle().sequence);
    }
    t.ca.close();
    const reopened = await openCertificateAuthority({
      trustDomain: 'shop.local',
      databasePath: t.databasePath,
      kek: t.kek,
      clock: () => now,
    });
    seen.push(reopened.bundle().sequence);
    reopened.close();
    for (let i = 1; i < seen.length; i++) assert.ok((seen[i] ?? 0) >= (seen[i - 1] ?? 0), String(seen));
    assert.ok((seen.at(-1) ?? 0) > 4, String(seen));
  });
});

describe('forced rotation', () => {
  test('with no live SVIDs it activates at once', async () => {
    const t = await open();
    const result = await t.ca.rotateNow();
    assert.deepEqual(
      { ...result, activateBy: 0 },
      {
        generation: 2,
        slot: 'B',
        publishedSequence: 2,
        activated: true,
        activateBy: 0,
      },
    );
  });

  test('with live SVIDs it waits for every holder to acknowledge the new bundle', async () => {
    const t = await open();
    const csr = (await makeCsr()).pem;
    const a = await t.ca.issue({ csr, serviceName: 'orders' });
    const b = await t.ca.issue({ csr, serviceName: 'payments' });
    const result = await t.ca.rotateNow();
    assert.equal(result.activated, false);
    assert.equal(result.activateBy, t.clock.now + 5 * MIN);
    assert.equal(t.ca.bundle().sequence, 2);
    const pending = t.ca.status().warnings.find((w) => w.code === CA_WARNINGS.bundleNotDistributed);
    assert.equal(pending?.detail.holdersBehind, 2);
    // Until then the old CA signs.
    t.clock.now += 1;
    assert.equal((await t.ca.issue({ csr, serviceName: 'orders' })).generation, 1);
    // That SVID, issued after the publication, came with bundle 2. The other two must confirm.
    t.ca.acknowledgeBundle(a.serial, 2);
    assert.deepEqual(await t.ca.tick(), []);
    t.ca.acknowledgeBundle(b.serial.toUpperCase(), 2); // Node prints serials in upper case
    assert.deepEqual(
      (await t.ca.tick()).map((e) => e.type),
      ['ca.activated'],
    );
    assert.equal((await t.ca.issue({ csr, serviceName: 'orders' })).generation, 2);
    assert.equal(
      t.ca.status().warnings.some((w) => w.code === CA_WARNINGS.bundleNotDistributed),
      false,
    );
  });

  test('a renewed SVID supersedes the one it renewed (only the new one must acknowledge)', async () => {
    const t = await open();
    const csr = (await makeCsr()).pem;
    const first = await t.ca.issue({ csr, serviceName: 'orders' });
    await t.ca.rotateNow();
    t.clock.now += 1;
    const renewed = await t.ca.renew({ peerCertificate: first.certificateDer, csr });
    assert.equal(renewed.generation, 1);
    assert.equal(
      t.ca.status().warnings.some((w) => w.code === CA_WARNINGS.bundleNotDistributed),
      false,
    );
    assert.deepEqual(
      (await t.ca.tick()).map((e) => e.type),
      ['ca.activated'],
    );
  });

  test('without acknowledgements it activates at the propagation deadline', async () => {
    const t = await open();
    await t.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
    const { activateBy } = await t.ca.rotateNow();
    assert.deepEqual(await t.ca.tick(activateBy - 1), []);
    assert.deepEqual(
      (await t.ca.tick(activateBy)).map((e) => e.type),
      ['ca.activated'],
    );
  });

  test('immediate: activates even though holders lack the bundle', async () => {
    const t = await open();
    await t.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
    const result = await t.ca.rotateNow({ immediate: true });
    assert.equal(result.activated, true);
    assert.equal(t.ca.bundle().authorities.length, 2, 'the old CA stays for its live SVID');
  });

  test('a prepared successor is taken over and activated early', async () => {
    const t = await open();
    const { prepareAt = 0 } = t.ca.status().schedule ?? {};
    await t.ca.tick(prepareAt);
    t.clock.now = prepareAt + HOUR;
    const result = await t.ca.rotateNow();
    // Activated (nothing to wait for), and generation 1, which signed nothing, retired at once: sequence 3.
    assert.deepEqual([result.generation, result.activated, t.ca.bundle().sequence], [2, true, 3]);
  });

  test('a second rotation while the previous CA still has live SVIDs is refused (both slots in use)', async () => {
    const t = await open();
    const svid = await t.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
    await t.ca.rotateNow({ immediate: true });
    await assert.rejects(t.ca.rotateNow({ immediate: true }), (err: unknown) => {
      assert.ok(err instanceof RampartError);
      assert.equal(err.code, CA_ERRORS.rotationBlocked);
      assert.equal(err.status, 409);
      assert.equal(err.detail?.until, svid.notAfter);
      return true;
    });
    // Once that SVID expired the slot is free again.
    t.clock.now = svid.notAfter;
    await t.ca.tick();
    assert.equal((await t.ca.rotateNow({ immediate: true })).activated, true);
    assert.deepEqual(
      t.ca.status().authorities.map((a) => [a.generation, a.slot, a.state]),
      [[3, 'A', 'active']],
    );
  });

  test('acknowledgements are validated', async () => {
    const t = await open();
    const svid = await t.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
    const code = (fn: () => void) => {
      try {
        fn();
        return 'ok';
      } catch (err) {
        return (err as RampartError).code;
      }
    };
    assert.equal(
      code(() => t.ca.acknowledgeBundle(svid.serial, 1)),
      'ok',
    );
    assert.equal(
      code(() => t.ca.acknowledgeBundle(svid.serial, 2)),
      CA_ERRORS.bundleSequence,
    );
    assert.equal(
      code(() => t.ca.acknowledgeBundle(svid.serial, 0)),
      CA_ERRORS.bundleSequence,
    );
    assert.equal(
      code(() => t.ca.acknowledgeBundle('00'.repeat(16), 1)),
      CA_ERRORS.renewalUnknown,
    );
    assert.equal(
      code(() => t.ca.acknowledgeBundle("' OR 1=1 --", 1)),
      CA_ERRORS.renewalUnknown,
    );
  });
});

describe('status', () => {
  test('a healthy CA has no warnings; each warning appears when its condition holds', async () => {
    const t = await open();
    const gen1 = t.ca.status().authorities[0];
    assert.ok(gen1);
    const { prepareAt = 0 } = t.ca.status().schedule ?? {};
    assert.deepEqual(warningCodes(t, t.clock.now), []);
    assert.deepEqual(warningCodes(t, prepareAt - 1), []);
    assert.deepEqual(warningCodes(t, prepareAt), [CA_WARNINGS.noSuccessor]);
    // Within two SVID TTLs of expiry.
    assert.ok(warningCodes(t, gen1.notAfter - 2 * HOUR).includes(CA_WARNINGS.anchorExpiring));
    assert.equal(warningCodes(t, gen1.notAfter - 2 * HOUR - 1).includes(CA_WARNINGS.anchorExpiring), false);
    assert.ok(warningCodes(t, gen1.notAfter).includes(CA_WARNINGS.expired));
  });

  test('warnings and slots as `rampart ca status` will show them', async () => {
    const t = await open();
    await t.ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
    const status = t.ca.status();
    assert.equal(status.trustDomain, 'shop.local');
    assert.equal(status.bundleSequence, 1);
    const [a] = status.authorities;
    assert.ok(a);
    assert.equal(a.liveSvids, 1);
    assert.match(a.sha256, /^[0-9a-f]{64}$/);
    assert.equal(a.sha256, t.ca.bundle().authorities[0]?.sha256);
    assert.ok(a.lastSvidNotAfter !== null && a.lastSvidNotAfter > t.clock.now);
  });
});
