import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { Service } from '../../config/model.ts';
import { isRampartError } from '../../core/errors.ts';
import { type Kek, loadKek } from '../../core/kek.ts';
import { createLogger } from '../../core/logger.ts';
import { compileSecretsAcl } from './acl.ts';
import type { AuditSink } from './audit.ts';
import { SECRETS_FILES } from './defaults.ts';
import { openServedSecrets } from './served.ts';
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
