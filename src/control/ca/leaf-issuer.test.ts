import assert from 'node:assert/strict';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { RampartError } from '../../core/errors.ts';
import { svidIdentity } from '../../core/spiffe.ts';
import { CA_ERRORS } from './errors.ts';
import { autoSigningThreads, createLocalIssuer, createWorkerIssuer } from './leaf-issuer.ts';
import { makeCsr, openTestCa, type TestCa, type TestCsr } from './testing.ts';

function trustedBy(bundlePem: string, der: Uint8Array): boolean {
  const leaf = new NodeX509Certificate(der);
  return bundlePem
    .split(/(?<=-----END CERTIFICATE-----\n)/)
    .filter(Boolean)
    .some((pem) => {
      const ca = new NodeX509Certificate(pem);
      return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
    });
}

describe('signing threads', () => {
  let t: TestCa;
  let csrs: TestCsr[];
  before(async () => {
    t = await openTestCa({ signingThreads: 2 });
    csrs = await Promise.all(Array.from({ length: 6 }, () => makeCsr()));
  });
  after(() => t.cleanup());

  test('SVIDs signed on worker threads are the same X509-SVIDs, recorded once each', async () => {
    assert.equal(t.ca.settings.signingThreads, 2);
    const issued = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        t.ca.issue({ csr: csrs[i % csrs.length]?.pem ?? '', serviceName: 'orders' }),
      ),
    );
    assert.equal(new Set(issued.map((s) => s.serial)).size, 30);
    const bundle = t.ca.bundle().pem;
    for (const svid of issued) {
      const cert = new NodeX509Certificate(svid.certificateDer);
      assert.equal(svidIdentity(cert, 'shop.local').id, 'spiffe://shop.local/svc/orders');
      assert.equal(cert.serialNumber.toLowerCase(), svid.serial);
      assert.ok(trustedBy(bundle, svid.certificateDer));
    }
    assert.equal(t.ca.status().authorities[0]?.liveSvids, 30);
  });

  test('CSR refusals cross the thread boundary with their code and status', async () => {
    for (const [csr, code] of [
      ['garbage', CA_ERRORS.csrMalformed],
      [(await makeCsr({ key: 'p521' })).pem, CA_ERRORS.csrWeakKey],
    ] as const) {
      await assert.rejects(t.ca.issue({ csr, serviceName: 'orders' }), (err: unknown) => {
        assert.ok(err instanceof RampartError);
        assert.equal(err.code, code);
        assert.equal(err.status, 400);
        return true;
      });
    }
  });

  test('a rotation reaches the threads: the next SVIDs are signed by the new CA', async () => {
    await t.ca.rotateNow({ immediate: true });
    const [a, b, c] = await Promise.all(
      [0, 1, 2].map((i) => t.ca.issue({ csr: csrs[i]?.pem ?? '', serviceName: 'payments' })),
    );
    for (const svid of [a, b, c]) assert.equal(svid?.generation, 2);
  });

  test('join tokens with threads: of concurrent uses exactly one is recorded', async () => {
    const { token } = t.ca.mintJoinToken('catalog');
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => t.ca.issueWithJoinToken({ token, csr: csrs[i % csrs.length]?.pem ?? '' })),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) {
      if (r.status === 'rejected') assert.equal((r.reason as RampartError).code, CA_ERRORS.tokenReused);
    }
  });
});

describe('issuers', () => {
  test('a closed worker issuer refuses work; thread counts are validated', async () => {
    const issuer = createWorkerIssuer(1);
    await issuer.close();
    await assert.rejects(issuer.issue({} as never, {} as never), { code: CA_ERRORS.closed });
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => createWorkerIssuer(bad), { code: CA_ERRORS.config });
    }
  });

  test('auto: one per core but one, up to 4; none below two (or under a permission model without workers)', () => {
    const n = autoSigningThreads();
    const cores = availableParallelism();
    const permission = (process as { permission?: { has(scope: string): boolean } }).permission;
    const expected = permission && !permission.has('worker') ? 0 : cores >= 3 ? Math.min(cores - 1, 4) : 0;
    assert.equal(n, expected);
    const local = createLocalIssuer();
    local.forget(1);
    return local.close();
  });
});

describe('where leaves are signed', () => {
  test('the worker issuer signs on other threads, spread over them; the local one on this thread', async () => {
    const { createSigningCa } = await import('./signing-ca.ts');
    const { testKek } = await import('./testing.ts');
    const kek = testKek();
    const { ca } = await createSigningCa({
      trustDomain: 'shop.local',
      slot: 'A',
      generation: 1,
      now: Date.now(),
      lifetimeMs: 86_400_000,
      skewMs: 60_000,
      kek,
    });
    kek.destroy();
    const csr = (await makeCsr()).pem;
    const job = (i: number) => ({
      csr,
      spiffeId: 'spiffe://shop.local/svc/x',
      serial: `4${i.toString(16).padStart(31, '0')}`,
      notBefore: Date.now(),
      notAfter: Date.now() + 60_000,
    });
    const workers = createWorkerIssuer(2);
    try {
      const leaves = await Promise.all(Array.from({ length: 8 }, (_, i) => workers.issue(ca, job(i))));
      const threads = new Set(leaves.map((l) => l.threadId));
      assert.equal(threads.has(0), false);
      assert.equal(threads.size, 2);
    } finally {
      await workers.close();
    }
    const local = createLocalIssuer();
    assert.equal((await local.issue(ca, job(99))).threadId, 0);
  });
});
