/**
 * A real control plane process (src/control/main.ts, as the launcher starts it) and a workload's SVID
 * source: first SVID with a join token, renewal over mTLS, a token used twice, the control plane
 * killed (the workload keeps its SVID, renewals fail and are counted) and back (renewals resume).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CONTROL_API_ERRORS,
  type ControlTarget,
  createSvidSource,
  createWorkloadKey,
  requestBundle,
  requestJoinToken,
  requestSvid,
} from '../../src/control/api/index.ts';
import { CA_ERRORS } from '../../src/control/ca/index.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createMetrics } from '../../src/core/metrics.ts';
import type { ControlRuntime } from '../../src/core/runtime.ts';
import { freePort, spawnTracked, type Tracked, waitForHttp } from '../helpers/processes.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const CREDENTIAL = randomBytes(32).toString('base64url');
const KEK = randomBytes(32).toString('base64');

describe('control plane process', { timeout: 60_000 }, () => {
  const cleanups: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanups.push(fn) };
  let dir: string;
  let runtime: ControlRuntime;
  let control: Tracked;
  let target: ControlTarget;

  const startControl = async () => {
    control = spawnTracked(ctx, process.execPath, ['--conditions=rampart-source', join(root, 'src/control/main.ts')], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', RAMPART_RUNTIME: JSON.stringify(runtime), RAMPART_KEK: KEK },
    });
    await waitForHttp(`http://127.0.0.1:${runtime.adminPort}/readyz`, undefined, 30_000);
  };

  before(async () => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'rampart-control-')));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    runtime = {
      kind: 'control',
      name: 'control',
      dataDir: dir,
      adminPort: await freePort(),
      manifestFile: join(dir, 'rampart.yaml'),
      port: await freePort(),
      launcherCredential: CREDENTIAL,
      trustDomain: 'shop.local',
    };
    await startControl();
    target = {
      url: `https://127.0.0.1:${runtime.port}`,
      bundle: readFileSync(join(dir, 'bundle.pem'), 'utf8'),
      trustDomain: 'shop.local',
    };
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('the bundle file the launcher bootstraps from is the bundle the API serves', async () => {
    const bundle = await requestBundle(target);
    assert.equal(bundle.pem, target.bundle);
    assert.ok(bundle.sequence >= 1);
  });

  test('a workload obtains its SVID with a join token and renews it over mTLS', async () => {
    const { token } = await requestJoinToken(target, CREDENTIAL, 'catalog');
    const registry = createMetrics('catalog');
    const source = createSvidSource({
      control: target,
      joinToken: token,
      expectedId: 'spiffe://shop.local/svc/catalog',
      logger: createLogger({ name: 'catalog', level: 'silent' }),
      registry,
    });
    cleanups.push(() => source.close());
    const renewed: string[] = [];
    source.onRenewed((svid) => renewed.push(svid.certificatePem));
    const first = await source.start();
    assert.equal(first.spiffeId, 'spiffe://shop.local/svc/catalog');
    assert.ok(first.notAfter - Date.now() > 50 * 60_000, 'a 1 h SVID');
    const metrics = await registry.metrics();
    assert.match(metrics, new RegExp(`rampart_svid_expiry_timestamp_seconds\\{[^}]*\\} ${first.notAfter / 1000}`));

    const second = await source.renewNow();
    assert.equal(second.spiffeId, first.spiffeId);
    assert.notEqual(second.certificatePem, first.certificatePem);
    assert.notEqual(second.keyPem, first.keyPem, 'a renewal rotates the key');
    assert.equal(source.current(), second);
    assert.equal(renewed.length, 2);
  });

  test('a join token used twice is refused', async () => {
    const { token } = await requestJoinToken(target, CREDENTIAL, 'orders');
    await requestSvid(target, token, (await createWorkloadKey()).csrPem);
    await assert.rejects(requestSvid(target, token, (await createWorkloadKey()).csrPem), (err) =>
      isRampartError(err, CA_ERRORS.tokenReused),
    );
  });

  test('an SVID for another identity than expected is refused by the workload', async () => {
    const { token } = await requestJoinToken(target, CREDENTIAL, 'payments');
    const source = createSvidSource({
      control: target,
      joinToken: token,
      expectedId: 'spiffe://shop.local/svc/orders',
      logger: createLogger({ name: 'orders', level: 'silent' }),
      registry: createMetrics('orders'),
    });
    await assert.rejects(source.start(), (err) => isRampartError(err, CONTROL_API_ERRORS.wrongIdentity));
    source.close();
  });

  test('control plane down: the workload keeps its SVID, renewals fail and are counted; back: renewals resume', async () => {
    const { token } = await requestJoinToken(target, CREDENTIAL, 'payments');
    const registry = createMetrics('payments');
    const source = createSvidSource({
      control: target,
      joinToken: token,
      expectedId: 'spiffe://shop.local/svc/payments',
      logger: createLogger({ name: 'payments', level: 'silent' }),
      registry,
      // The test drives renewals itself.
      schedule: { retryInitialMs: 60_000, retryMaxMs: 60_000 },
    });
    cleanups.push(() => source.close());
    const held = await source.start();

    await control.stop();
    await assert.rejects(source.renewNow(), (err) => isRampartError(err, CONTROL_API_ERRORS.unavailable));
    assert.equal(source.current(), held, 'the current SVID is kept');
    assert.match(await registry.metrics(), /rampart_svid_renewals_total\{[^}]*outcome="error"[^}]*\} 1/);

    await startControl();
    const next = await source.renewNow();
    assert.equal(next.spiffeId, held.spiffeId);
    assert.notEqual(next.certificatePem, held.certificatePem);
    assert.match(await registry.metrics(), /rampart_svid_renewals_total\{[^}]*outcome="ok"[^}]*\} 1/);
  });
});
