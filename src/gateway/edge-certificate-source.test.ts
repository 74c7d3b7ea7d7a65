import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { ControlTarget } from '../control/api/client.ts';
import { createEdgeRoutes } from '../control/api/edge-routes.ts';
import { CONTROL_API_ERRORS } from '../control/api/errors.ts';
import type { ApiRoutes } from '../control/api/request.ts';
import { startTestControlPlane, type TestControlPlane } from '../control/api/testing.ts';
import { createWorkloadKey } from '../control/api/workload-key.ts';
import { openTestCa, type TestCa } from '../control/ca/testing.ts';
import { isRampartError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import {
  type ClientCredentials,
  createEdgeCertificateSource,
  type EdgeCertificate,
} from './edge-certificate-source.ts';

const logger = createLogger({ name: 'gateway', level: 'silent' });
const FAST = { retryInitialMs: 20, retryMaxMs: 50, firstSvidDeadlineMs: 400 };

/** A control API on the test CA with `routes` (the real edge route, or a misbehaving stand-in). */
function serve(t: TestCa, routes: ApiRoutes[]): Promise<TestControlPlane> {
  return startTestControlPlane({ testCa: t, routes: () => routes });
}

describe('edge certificate source', () => {
  let t: TestCa;
  let other: TestCa;
  let real: TestControlPlane;
  let gateway: ClientCredentials;
  let catalog: ClientCredentials;
  const closers: (() => unknown)[] = [];

  const source = (
    target: ControlTarget,
    credentials: () => ClientCredentials,
    registry = new Registry(),
    schedule: Record<string, number> = FAST,
  ) => {
    const s = createEdgeCertificateSource({ control: () => target, credentials, logger, registry, schedule });
    closers.push(() => s.close());
    return s;
  };

  before(async () => {
    t = await openTestCa({ edgeCertificateTtlMs: 6_000, clockSkewMs: 500 });
    other = await openTestCa();
    const gatewaySection = {
      listen: { host: '127.0.0.1', port: 8443 },
      tls: { mode: 'auto' as const, names: [] },
    };
    real = await serve(t, [
      createEdgeRoutes({ ca: t.ca, trustDomain: 'shop.local', gateway: () => gatewaySection, logger }),
    ]);
    gateway = await real.svid('gateway');
    catalog = await real.svid('catalog');
  });

  after(async () => {
    for (const close of closers) await close();
    await real.close();
    t.cleanup();
    other.cleanup();
  });

  test('obtains a certificate for its own key, then renews with a new key; listeners get each', async () => {
    const registry = new Registry();
    const s = source(real.target, () => gateway, registry, { ...FAST, renewAtFraction: 100 });
    const first = await s.start();
    assert.deepEqual(first.names, ['127.0.0.1', 'localhost']);
    const leaf = new X509Certificate(first.certificatePem);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(first.keyPem)));
    assert.equal(s.current(), first);
    const seen: EdgeCertificate[] = [];
    s.onRenewed((c) => seen.push(c));
    const next = await s.renewNow();
    assert.notEqual(next.keyPem, first.keyPem);
    assert.notEqual(new X509Certificate(next.certificatePem).serialNumber, leaf.serialNumber);
    assert.deepEqual(seen, [next]);
    const metrics = await registry.getMetricsAsJSON();
    const renewals = metrics.find((m) => m.name === 'rampart_gateway_edge_certificate_renewals_total');
    assert.deepEqual(
      renewals?.values.map((v) => [v.labels.outcome, v.value]),
      [['ok', 1]],
    );
  });

  test('renews by itself at about half the lifetime', async () => {
    const s = source(real.target, () => gateway);
    const startedAt = Date.now();
    const first = await s.start();
    const renewed = await new Promise<EdgeCertificate>((resolve) => s.onRenewed(resolve));
    // X.509 times have one-second resolution: the lifetime seen is 6–7.5 s, its half 2.4–3.75 s
    // after a notBefore up to 1.5 s in the past.
    const elapsed = Date.now() - startedAt;
    assert.ok(elapsed >= 500 && Date.now() < first.notAfter, `renewed after ${elapsed} ms`);
    assert.notEqual(
      new X509Certificate(renewed.certificatePem).serialNumber,
      new X509Certificate(first.certificatePem).serialNumber,
    );
  });

  test('a failed renewal keeps the certificate in service and counts the error', async () => {
    const registry = new Registry();
    let credentials = gateway;
    const s = source(real.target, () => credentials, registry, { ...FAST, renewAtFraction: 100 });
    const first = await s.start();
    credentials = catalog;
    await assert.rejects(s.renewNow(), (err) => isRampartError(err, CONTROL_API_ERRORS.forbidden));
    assert.equal(s.current(), first);
    const metrics = await registry.getMetricsAsJSON();
    const renewals = metrics.find((m) => m.name === 'rampart_gateway_edge_certificate_renewals_total');
    assert.deepEqual(
      renewals?.values.map((v) => [v.labels.outcome, v.value]),
      [['error', 1]],
    );
  });

  test('a refusal is not retried', async () => {
    const refused = source(real.target, () => catalog);
    await assert.rejects(refused.start(), (err) => isRampartError(err, CONTROL_API_ERRORS.forbidden));
  });

  test('an unreachable control plane is waited for past the first-SVID deadline, logged once, until it answers', async () => {
    const closed = await serve(t, []);
    await closed.close();
    let target = closed.target;
    const lines: { level: string; msg: string; code?: string }[] = [];
    const captured = createLogger({
      name: 'gateway',
      destination: { write: (line: string) => lines.push(JSON.parse(line)) },
    });
    const s = createEdgeCertificateSource({
      control: () => target,
      credentials: () => gateway,
      logger: captured,
      registry: new Registry(),
      schedule: FAST,
    });
    closers.push(() => s.close());
    const started = Date.now();
    let settled = false;
    const first = s.start().finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, FAST.firstSvidDeadlineMs + 400));
    assert.equal(settled, false, 'still waiting after the deadline');
    target = real.target;
    const certificate = await first;
    assert.ok(Date.now() - started >= FAST.firstSvidDeadlineMs);
    assert.deepEqual(certificate.names, ['127.0.0.1', 'localhost']);
    const waiting = lines.filter((l) => /waiting for the edge certificate/.test(l.msg));
    assert.equal(waiting.length, 1, 'one line for the wait, not one per attempt');
    assert.equal(waiting[0]?.level, 'warn');
    assert.equal(waiting[0]?.code, CONTROL_API_ERRORS.unavailable);
    assert.equal(lines.filter((l) => l.msg === 'control plane reachable again').length, 1);
    assert.equal(lines.filter((l) => /retrying/.test(l.msg)).length, 0, 'no line per attempt');
  });

  test('close() ends the wait for an unreachable control plane at once', async () => {
    const closed = await serve(t, []);
    await closed.close();
    const s = source(closed.target, () => gateway, new Registry(), {
      ...FAST,
      retryInitialMs: 5_000,
      retryMaxMs: 5_000,
    });
    const first = s.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const began = Date.now();
    s.close();
    await assert.rejects(first, (err) => isRampartError(err, CONTROL_API_ERRORS.unavailable));
    assert.ok(Date.now() - began < 1_000, 'not after the backoff');
  });

  test('the wait ends when the credentials have expired: only a restart with a new join token helps then', async () => {
    const closed = await serve(t, []);
    await closed.close();
    let valid = true;
    const s = createEdgeCertificateSource({
      control: () => closed.target,
      credentials: () => gateway,
      credentialsValid: () => valid,
      logger,
      registry: new Registry(),
      schedule: FAST,
    });
    closers.push(() => s.close());
    const first = s.start();
    setTimeout(() => {
      valid = false;
    }, 100);
    await assert.rejects(first, (err) => isRampartError(err, CONTROL_API_ERRORS.unavailable));
  });

  const liars: [string, (csr: string) => Promise<unknown>][] = [
    [
      'a certificate for another key',
      async () => {
        const stranger = await createWorkloadKey();
        const issued = await t.ca.issueEdgeCertificate({ csr: stranger.csrPem, names: ['localhost'] });
        return { certificate: issued.certificatePem, names: ['localhost'], bundle: { sequence: 1, pem: '' } };
      },
    ],
    [
      'a certificate from a CA outside the bundle',
      async (csr) => {
        const issued = await other.ca.issueEdgeCertificate({ csr, names: ['localhost'] });
        return { certificate: issued.certificatePem, names: ['localhost'], bundle: { sequence: 1, pem: '' } };
      },
    ],
    ['not a certificate', async () => ({ certificate: 'hello', names: ['localhost'] })],
    ['no certificate at all', async () => ({ names: ['localhost'] })],
  ];
  for (const [name, answer] of liars) {
    test(`a control plane that answers ${name} is not believed`, async () => {
      const liar = await serve(t, [
        {
          'POST /v1/edge-certificates': {
            handle: async (_req, body) => answer(JSON.parse(String(body)).csr as string),
          },
        },
      ]);
      try {
        const s = source(liar.target, () => gateway);
        await assert.rejects(s.start(), (err) => isRampartError(err, CONTROL_API_ERRORS.wrongIdentity));
      } finally {
        await liar.close();
      }
    });
  }

  test('an answer without names is not installed', async () => {
    const liar = await serve(t, [
      {
        'POST /v1/edge-certificates': {
          handle: async (_req, body) => {
            const issued = await t.ca.issueEdgeCertificate({ csr: JSON.parse(String(body)).csr, names: ['localhost'] });
            return { certificate: issued.certificatePem, names: [] };
          },
        },
      },
    ]);
    try {
      const s = source(liar.target, () => gateway, new Registry(), { ...FAST, firstSvidDeadlineMs: 0 });
      await assert.rejects(s.start(), (err) => isRampartError(err, CONTROL_API_ERRORS.unavailable));
    } finally {
      await liar.close();
    }
  });
});
