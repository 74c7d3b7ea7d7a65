import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger } from '../core/logger.ts';
import { createSecretsRoutes } from './api/secrets-routes.ts';
import { TestAuditSink } from './api/secrets-testing.ts';
import { rawRequest, startTestControlPlane, type TestControlPlane, type TestCredentials } from './api/testing.ts';
import { openTestCa, type TestCa } from './ca/testing.ts';
import { followManifest, type ManifestReloadTrigger } from './manifest-reloads.ts';
import { grantsYaml } from './secrets/manifest-testing.ts';
import { openServedSecrets, type ServedSecrets } from './secrets/served.ts';

const OPERATOR = { subject: 'operator' };
const logger = createLogger({ name: 'control', level: 'silent' });

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/**
 * The control plane's wiring (main.ts) in process: the served secrets and a second follower (standing in
 * for the policy store) behind one manifest watcher and SIGHUP handler, the read route over mTLS.
 */
describe('one manifest watcher and SIGHUP handler for the policy and the secrets grants', () => {
  let dir: string;
  let manifestFile: string;
  let testCa: TestCa;
  let plane: TestControlPlane;
  let served: ServedSecrets;
  const audit = new TestAuditSink();
  let payments: TestCredentials;
  let catalog: TestCredentials;
  /** Reloads the other follower saw, by trigger. */
  const policyReloads: ManifestReloadTrigger[] = [];

  const write = (grants: Record<string, string[]>) => writeFileSync(manifestFile, grantsYaml(grants));
  /** An editor-style save: a new file renamed over the old one. */
  const save = (grants: Record<string, string[]>) => {
    writeFileSync(`${manifestFile}.swp`, grantsYaml(grants));
    renameSync(`${manifestFile}.swp`, manifestFile);
  };
  const read = (credentials: TestCredentials, name: string) =>
    rawRequest(plane.target, {
      path: '/v1/secrets/read',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
      credentials,
    });
  /** Polls the read until it answers `status` (a file event takes its time). */
  const untilRead = async (credentials: TestCredentials, name: string, status: number) => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const res = await read(credentials, name);
      if (res.status === status) return res;
      if (Date.now() > deadline) assert.fail(`read of ${name} is still ${res.status}, not ${status}`);
      await delay(20);
    }
  };
  const follow = (debounceMs: number, extra: { name: string; reload: (t: ManifestReloadTrigger) => unknown }[] = []) =>
    followManifest({
      file: manifestFile,
      logger,
      debounceMs,
      rewatchMs: 50,
      followers: [
        ...extra,
        { name: 'policy', reload: (trigger) => policyReloads.push(trigger) },
        { name: 'secret grants', reload: (trigger) => served.reloadGrants(trigger) },
      ],
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rampart-reloads-'));
    for (const service of ['payments', 'catalog']) writeFileSync(join(dir, `${service}.ts`), '');
    manifestFile = join(dir, 'rampart.yaml');
    write({ payments: ['db-password'], catalog: [] });
    testCa = await openTestCa();
    served = await openServedSecrets({ dataDir: dir, manifest: manifestFile, kek: testCa.kek, audit, logger });
    assert.equal(served.unavailable, null);
    await served.set(OPERATOR, 'db-password', Buffer.from('hunter2'));
    plane = await startTestControlPlane({
      testCa,
      routes: () => [createSecretsRoutes({ secrets: served, trustDomain: testCa.ca.trustDomain })],
    });
    payments = await plane.svid('payments');
    catalog = await plane.svid('catalog');
  });
  after(async () => {
    await plane.close();
    await served.close();
    testCa.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a change of the file: a revoked grant is 403 (audited), a new one is served, a broken file keeps them', async (t) => {
    const reloads = follow(20);
    t.after(() => reloads.close());
    assert.equal((await read(payments, 'db-password')).status, 200);

    const from = audit.events.length;
    write({ payments: [], catalog: ['db-password'] });
    const denied = await untilRead(payments, 'db-password', 403);
    assert.equal(denied.body['error'], 'SEC_ERR_FORBIDDEN');
    assert.equal(denied.body['value'], undefined);
    const granted = await untilRead(catalog, 'db-password', 200);
    assert.equal(Buffer.from(String(granted.body['value']), 'base64').toString(), 'hunter2');
    const actions = audit.events.slice(from).map((e) => `${e.action}:${e.decision}:${e.detail?.['trigger'] ?? '-'}`);
    assert.ok(actions.includes('secret.revoke:allow:file'), actions.join());
    assert.ok(actions.includes('secret.grant:allow:file'), actions.join());
    assert.ok(audit.reads().includes('deny:SEC_ERR_FORBIDDEN:spiffe://shop.local/svc/payments'));
    assert.ok(policyReloads.includes('file'), 'the same change reloaded the other follower');

    // A broken save: the grants in force stay (catalog reads, payments does not).
    const seen = policyReloads.length;
    writeFileSync(manifestFile, 'services: [unclosed\n');
    await until(() => policyReloads.length > seen, 'the reload of the broken file');
    assert.equal((await read(catalog, 'db-password')).status, 200);
    assert.equal((await read(payments, 'db-password')).status, 403);

    // An editor-style save is followed too, and so is the next edit.
    save({ payments: ['db-password'], catalog: [] });
    await untilRead(payments, 'db-password', 200);
    await untilRead(catalog, 'db-password', 403);
  });

  test('SIGHUP reloads every follower at once; closing stops both the signal and the file', async (t) => {
    const listeners = process.listenerCount('SIGHUP');
    // A debounce no test waits for: what reloads here is the signal.
    const reloads = follow(600_000);
    t.after(() => reloads.close());
    assert.equal(process.listenerCount('SIGHUP'), listeners + 1);
    write({ payments: ['db-password'], catalog: ['db-password'] });
    await delay(100);
    assert.equal((await read(catalog, 'db-password')).status, 403, 'no reload before the signal');
    const seen = policyReloads.length;
    process.kill(process.pid, 'SIGHUP');
    await until(() => policyReloads.length > seen, 'the SIGHUP reload');
    assert.deepEqual(policyReloads.slice(seen), ['signal']);
    assert.equal((await read(catalog, 'db-password')).status, 200);

    reloads.close();
    assert.equal(process.listenerCount('SIGHUP'), listeners);
    write({ payments: [], catalog: [] });
    await delay(200);
    assert.equal((await read(catalog, 'db-password')).status, 200, 'closed: the file is no longer followed');
  });

  test('a follower that throws does not keep the next from reloading', async (t) => {
    const reloads = follow(600_000, [
      {
        name: 'broken',
        reload: () => {
          throw new Error('bug');
        },
      },
    ]);
    t.after(() => reloads.close());
    write({ payments: [], catalog: ['db-password'] });
    const seen = policyReloads.length;
    reloads.reload('manual');
    assert.deepEqual(policyReloads.slice(seen), ['manual']);
    assert.equal((await read(payments, 'db-password')).status, 403);
  });
});
