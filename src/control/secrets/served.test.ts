import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { Service } from '../../config/model.ts';
import { isRampartError } from '../../core/errors.ts';
import { type Kek, loadKek } from '../../core/kek.ts';
import { createLogger } from '../../core/logger.ts';
import { Registry } from '../../core/metrics.ts';
import { compileSecretsAcl } from './acl.ts';
import type { AuditSink, SecretsAuditEvent } from './audit.ts';
import { SECRETS_FILES } from './defaults.ts';
import { grantsYaml } from './manifest-testing.ts';
import { openServedSecrets, type ServedSecrets } from './served.ts';
import { openSecretsService } from './service.ts';
import { openSqliteSecretsStore } from './sqlite-store.ts';

const PAYMENTS = 'spiffe://shop.local/svc/payments';
const OPERATOR = { subject: 'operator' };
const manifest = {
  trustDomain: 'shop.local',
  secrets: { 'db-password': { name: 'db-password', description: '' } },
  services: {
    payments: { name: 'payments', run: '/x.ts', routes: [], calls: [], secrets: ['db-password'], env: {} } as Service,
  },
};
const audit: AuditSink = { append: async () => {} };
const newKek = (): Kek => loadKek({ env: 'K', environment: { K: randomBytes(32).toString('base64') } });

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { lines, logger: createLogger({ name: 'control', level: 'info', destination }) };
}

describe('secrets served by the control plane (served.ts)', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-served-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('the control plane reads while the CLI writes the same SQLite file: every read is a whole, current version', async () => {
    const dir = tempDir();
    const kek = newKek();
    const { logger } = capture();
    // The operator side, as `rampart secrets` opens it: same file, same KEK, no grants.
    const cli = await openSecretsService({
      store: openSqliteSecretsStore({ path: join(dir, SECRETS_FILES.database) }),
      kek,
      audit,
      acl: compileSecretsAcl({ trustDomain: 'cli.invalid', services: {}, secrets: {} }),
    });
    await cli.set(OPERATOR, 'db-password', Buffer.from('v1'));
    const served = await openServedSecrets({ dataDir: dir, manifest, kek, audit, logger });
    assert.equal(served.unavailable, null);
    let writing = true;
    const writer = (async () => {
      for (let v = 2; v <= 30; v++) {
        await cli.set(OPERATOR, 'db-password', Buffer.from(`v${v}`), { stage: true });
        await cli.promote(OPERATOR, 'db-password');
      }
      writing = false;
    })();
    let last = 0;
    let reads = 0;
    while (writing || reads === 0) {
      const secret = await served.read(PAYMENTS, 'db-password');
      assert.equal(secret.value.toString(), `v${secret.version}`, 'the value is the version it claims');
      assert.ok(secret.version >= last, 'versions never go back');
      last = secret.version;
      reads++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await writer;
    assert.equal((await served.read(PAYMENTS, 'db-password')).version, 30);
    await served.close();
    await cli.close();
    kek.destroy();
  });

  test('a store sealed under another KEK does not stop the control plane: reads are 503 SEC_ERR_SEALED, logged once', async () => {
    const dir = tempDir();
    const first = newKek();
    const other = newKek();
    const cli = await openSecretsService({
      store: openSqliteSecretsStore({ path: join(dir, SECRETS_FILES.database) }),
      kek: first,
      audit,
      acl: compileSecretsAcl(manifest),
    });
    await cli.set(OPERATOR, 'db-password', Buffer.from('v1'));
    await cli.close();
    const { lines, logger } = capture();
    const served = await openServedSecrets({ dataDir: dir, manifest, kek: other, audit, logger });
    assert.equal(served.unavailable, 'SEC_ERR_SEALED');
    await assert.rejects(served.read(PAYMENTS, 'db-password'), (err: unknown) => {
      assert.ok(isRampartError(err, 'SEC_ERR_SEALED'));
      assert.equal(err.status, 503);
      return true;
    });
    assert.equal(lines.filter((l) => l['level'] === 'error' && l['code'] === 'SEC_ERR_SEALED').length, 1);
    await served.close();
    first.destroy();
    other.destroy();
  });

  test('a manifest that no longer loads refuses every read (503 SEC_ERR_CONFIG) instead of granting anything', async () => {
    const dir = tempDir();
    const kek = newKek();
    const { logger } = capture();
    const served = await openServedSecrets({ dataDir: dir, manifest: join(dir, 'missing.yaml'), kek, audit, logger });
    assert.equal(served.unavailable, 'SEC_ERR_CONFIG');
    await assert.rejects(served.read(PAYMENTS, 'db-password'), (err: unknown) => isRampartError(err, 'SEC_ERR_CONFIG'));
    kek.destroy();
  });
});

/** Records every event; a read's outcome as `<action>:<decision>:<reason>`. */
class RecordingSink implements AuditSink {
  events: SecretsAuditEvent[] = [];
  fail = false;
  async append(event: SecretsAuditEvent): Promise<void> {
    if (this.fail) throw new Error('audit log down');
    this.events.push(event);
  }
}

const metric = async (registry: Registry, name: string, labels: Record<string, string> = {}) =>
  (await registry.getSingleMetric(name)?.get())?.values.find((v) =>
    Object.entries(labels).every(([k, value]) => v.labels[k] === value),
  )?.value;

describe('secret grants follow the manifest (reloadGrants)', () => {
  const CATALOG = 'spiffe://shop.local/svc/catalog';
  const opened: { served: ServedSecrets; kek: Kek; dir: string }[] = [];
  after(async () => {
    for (const { served, kek, dir } of opened) {
      await served.close();
      kek.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A project directory with a manifest, a store holding both secrets, and the served secrets over them. */
  async function project(grants: Record<string, string[]>) {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-grants-'));
    for (const service of ['payments', 'catalog']) writeFileSync(join(dir, `${service}.ts`), '');
    const manifestFile = join(dir, 'rampart.yaml');
    const write = (next: Record<string, string[]> | string, trustDomain?: string) =>
      writeFileSync(manifestFile, typeof next === 'string' ? next : grantsYaml(next, trustDomain));
    write(grants);
    const kek = newKek();
    const sink = new RecordingSink();
    const { lines, logger } = capture();
    const registry = new Registry();
    const served = await openServedSecrets({
      dataDir: dir,
      manifest: manifestFile,
      kek,
      audit: sink,
      logger,
      registry,
    });
    opened.push({ served, kek, dir });
    assert.equal(served.unavailable, null);
    await served.set(OPERATOR, 'db-password', Buffer.from('hunter2'));
    await served.set(OPERATOR, 'api-key', Buffer.from('sk_test_1'));
    const settle = () => new Promise((resolve) => setImmediate(resolve));
    /** `<action>:<decision>:<reason>:<grantee or actor>` of the events since `from`. */
    const events = (from: number) =>
      sink.events
        .slice(from)
        .map(
          (e) =>
            `${e.action}:${e.decision}:${e.reason}:${e.detail?.['grantee'] ?? (e.actor as { spiffeId?: string } | undefined)?.spiffeId ?? '-'}`,
        );
    return { dir, served, sink, lines, registry, write, settle, events };
  }

  const refused = (code: string, status: number) => (err: unknown) => {
    assert.ok(isRampartError(err, code), String(err));
    assert.equal(err.status, status);
    return true;
  };

  test('a grant added to the manifest is served at the next reload, without a restart; audited and logged', async () => {
    const p = await project({ payments: ['db-password', 'api-key'], catalog: [] });
    await assert.rejects(p.served.read(CATALOG, 'db-password'), refused('SEC_ERR_FORBIDDEN', 403));
    p.write({ payments: ['db-password', 'api-key'], catalog: ['db-password'] });
    const from = p.sink.events.length;
    assert.equal(p.served.reloadGrants('manual'), 'updated');
    assert.equal((await p.served.read(CATALOG, 'db-password')).value.toString(), 'hunter2');
    await assert.rejects(p.served.read(CATALOG, 'api-key'), refused('SEC_ERR_FORBIDDEN', 403));
    await p.settle();
    const events = p.events(from);
    assert.deepEqual(events.slice(0, 1), [`secret.grant:allow:manifest_reload:${CATALOG}`]);
    assert.ok(events.includes(`secret.read:allow:ok:${CATALOG}`));
    const grant = p.sink.events[from]!;
    assert.match(grant.resource ?? '', /^secret:[0-9a-f]{64}$/, 'the secret by its HMAC reference');
    assert.equal(grant.detail?.['trigger'], 'manual');
    assert.ok(!JSON.stringify(p.sink.events).includes('db-password'), 'no secret name in an event');
    const logged = p.lines.find((l) => l['event'] === 'secrets.grants.updated');
    assert.deepEqual(
      { granted: logged?.['granted'], revoked: logged?.['revoked'], to: logged?.['grantedTo'] },
      { granted: 1, revoked: 0, to: [CATALOG] },
    );
    assert.ok(!JSON.stringify(p.lines).includes('db-password'), 'no secret name in the log');
    assert.equal(await metric(p.registry, 'rampart_control_secret_grants_reloads_total', { result: 'updated' }), 1);
  });

  test('a revoked grant is refused at once (403 SEC_ERR_FORBIDDEN, audited); the other grants keep working', async () => {
    const p = await project({ payments: ['db-password', 'api-key'], catalog: [] });
    assert.equal((await p.served.read(PAYMENTS, 'db-password')).version, 1);
    p.write({ payments: ['api-key'], catalog: [] });
    const from = p.sink.events.length;
    assert.equal(p.served.reloadGrants('file'), 'updated');
    await assert.rejects(p.served.read(PAYMENTS, 'db-password'), refused('SEC_ERR_FORBIDDEN', 403));
    assert.equal((await p.served.read(PAYMENTS, 'api-key')).value.toString(), 'sk_test_1');
    await p.settle();
    assert.deepEqual(p.events(from), [
      `secret.revoke:allow:manifest_reload:${PAYMENTS}`,
      `secret.read:deny:SEC_ERR_FORBIDDEN:${PAYMENTS}`,
      `secret.read:allow:ok:${PAYMENTS}`,
    ]);
    const logged = p.lines.find((l) => l['event'] === 'secrets.grants.updated');
    assert.deepEqual(logged?.['revokedFrom'], [PAYMENTS]);
    assert.equal(logged?.['trigger'], 'file');
  });

  test('an unchanged manifest (comments, other fields) changes nothing and records nothing', async () => {
    const p = await project({ payments: ['db-password'], catalog: [] });
    p.write(`# edited\n${grantsYaml({ payments: ['db-password'], catalog: [] })}`);
    const from = p.sink.events.length;
    assert.equal(p.served.reloadGrants('signal'), 'unchanged');
    await p.settle();
    assert.deepEqual(p.events(from), []);
    assert.equal(await metric(p.registry, 'rampart_control_secret_grants_reloads_total', { result: 'unchanged' }), 1);
  });

  const broken: ReadonlyArray<readonly [string, (p: Awaited<ReturnType<typeof project>>) => void]> = [
    ['not YAML', (p) => p.write('services: [unclosed\n')],
    ['an unknown key', (p) => p.write(`${grantsYaml({ payments: [], catalog: ['api-key'] })}colour: red\n`)],
    [
      'an undeclared secret granted',
      (p) => p.write(grantsYaml({ payments: [], catalog: ['api-key'] }).replace('api-key: {', 'other-key: {')),
    ],
    ['an empty file', (p) => p.write('')],
    ['the file removed', (p) => rmSync(join(p.dir, 'rampart.yaml'))],
    ['another trust domain', (p) => p.write({ payments: [], catalog: ['api-key'] }, 'other.local')],
  ];
  for (const [label, breakIt] of broken) {
    test(`a manifest with ${label} is refused: the last good grants stay in force, logged, metered`, async () => {
      const p = await project({ payments: ['db-password'], catalog: [] });
      breakIt(p);
      const from = p.sink.events.length;
      assert.equal(p.served.reloadGrants('file'), 'error');
      // The last good grants: payments keeps its grant, catalog gets none of what the bad file says.
      assert.equal((await p.served.read(PAYMENTS, 'db-password')).value.toString(), 'hunter2');
      await assert.rejects(p.served.read(CATALOG, 'api-key'), refused('SEC_ERR_FORBIDDEN', 403));
      await p.settle();
      assert.ok(!p.events(from).some((e) => e.startsWith('secret.grant') || e.startsWith('secret.revoke')));
      assert.equal(p.lines.filter((l) => l['level'] === 'error' && l['trigger'] === 'file').length, 1);
      assert.equal(await metric(p.registry, 'rampart_control_secret_grants_reloads_total', { result: 'error' }), 1);
      assert.equal(await metric(p.registry, 'rampart_control_secret_grants_last_reload_successful'), 0);
      // Fixed again: the next reload succeeds and says so.
      p.write({ payments: ['db-password'], catalog: [] });
      assert.equal(p.served.reloadGrants('file'), 'unchanged');
      assert.equal(await metric(p.registry, 'rampart_control_secret_grants_last_reload_successful'), 1);
    });
  }

  test('the audit log down: the grant change still takes effect, and the missing record is logged', async () => {
    const p = await project({ payments: ['db-password'], catalog: [] });
    p.sink.fail = true;
    p.write({ payments: [], catalog: ['db-password'] });
    assert.equal(p.served.reloadGrants('manual'), 'updated');
    await p.settle();
    p.sink.fail = false;
    assert.equal(p.lines.filter((l) => l['msg'] === 'secret grant change not recorded in the audit log').length, 2);
    await assert.rejects(p.served.read(PAYMENTS, 'db-password'), refused('SEC_ERR_FORBIDDEN', 403));
    assert.equal((await p.served.read(CATALOG, 'db-password')).value.toString(), 'hunter2');
  });

  test('a store that could not be opened reloads nothing: error, logged, metered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-grants-'));
    const kek = newKek();
    const { lines, logger } = capture();
    const registry = new Registry();
    const served = await openServedSecrets({
      dataDir: dir,
      manifest: join(dir, 'missing.yaml'),
      kek,
      audit,
      logger,
      registry,
    });
    opened.push({ served, kek, dir });
    assert.equal(served.reloadGrants('signal'), 'error');
    assert.equal(lines.filter((l) => l['level'] === 'error' && l['trigger'] === 'signal').length, 1);
    assert.equal(await metric(registry, 'rampart_control_secret_grants_reloads_total', { result: 'error' }), 1);
  });
});
