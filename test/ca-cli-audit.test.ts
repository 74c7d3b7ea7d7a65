/**
 * `rampart ca rotate` with no control plane running is an admin action in the audit log: the CLI opens
 * the log itself (its one writer while nothing runs), records `ca.rotate` with the local operator as
 * actor before the rotation and the CA's steps after it, and signs a checkpoint, so `rampart audit
 * verify` passes. A KEK that is not the CA's is refused before the log is opened: no log is made under
 * a key the control plane could not open. (Through a running control plane: test/secrets/served.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { runAudit } from '../src/cli/audit.ts';
import { runCa } from '../src/cli/ca.ts';
import { openAuditDatabase } from '../src/control/audit/database.ts';
import { queryEvents } from '../src/control/audit/query.ts';
import { openCertificateAuthority } from '../src/control/ca/index.ts';
import type { AuditEvent } from '../src/core/audit-event.ts';
import { createDevKek, KEK_ENV, loadKek } from '../src/core/kek.ts';

/** A stopped system's control-plane data directory: a CA and its dev KEK, no audit log yet. */
async function stoppedSystem(t: import('node:test').TestContext) {
  const cwd = mkdtempSync(join(tmpdir(), 'rampart-ca-audit-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  const dataDir = join(cwd, '.rampart', 'control');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  createDevKek(join(dataDir, 'kek.key')).kek.destroy();
  const kek = loadKek({ file: join(dataDir, 'kek.key') });
  const ca = await openCertificateAuthority({
    trustDomain: 'shop.local',
    databasePath: join(dataDir, 'ca.db'),
    kek,
    signingThreads: 0,
  });
  writeFileSync(join(dataDir, 'bundle.pem'), ca.bundle().pem);
  ca.close();
  kek.destroy();
  return { cwd, dataDir };
}

async function run(cli: typeof runCa | typeof runAudit, cwd: string, args: string[], env: Record<string, string> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const code = await cli(args, { stdout, stderr, cwd, env });
  return { code, stdout: String(stdout.read() ?? ''), stderr: String(stderr.read() ?? '') };
}

function events(dataDir: string): AuditEvent[] {
  const db = openAuditDatabase(join(dataDir, 'audit.db'), { readOnly: true });
  try {
    return queryEvents(db, { limit: 1_000 }).map((r) => r.event!);
  } finally {
    db.close();
  }
}

describe('rampart ca rotate without a control plane records itself in the audit log', () => {
  test('ca.rotate by the local operator, then the CA steps; the log verifies', async (t) => {
    const { cwd, dataDir } = await stoppedSystem(t);
    const r = await run(runCa, cwd, ['rotate', '--immediate']);
    assert.equal(r.code, 0, r.stderr);
    const logged = events(dataDir);
    assert.deepEqual(
      logged.map((e) => e.action),
      ['ca.rotate', 'ca.prepared', 'ca.activated', 'ca.retired'],
    );
    const [rotate] = logged;
    assert.equal(rotate?.component, 'ca');
    assert.equal(rotate?.actor?.subject, userInfo().username);
    assert.equal(rotate?.resource, 'spiffe://shop.local');
    assert.deepEqual(rotate?.detail, { immediate: true, controlPlane: false });
    const verify = await run(runAudit, cwd, ['verify', '--data', dataDir]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /shop\.local\/rampart\/audit: verified 4 entries/);

    // A second rotation appends to the same log (its origin read back from it).
    assert.equal((await run(runCa, cwd, ['rotate'])).code, 0);
    assert.deepEqual(
      events(dataDir)
        .slice(4)
        .map((e) => e.action),
      ['ca.rotate', 'ca.prepared', 'ca.activated', 'ca.retired'],
      'no live SVID holds the new bundle back: it signs at once',
    );
    assert.equal((await run(runAudit, cwd, ['verify', '--data', dataDir])).code, 0);
  });

  test('a KEK that is not the CA’s: refused before the audit log is made, nothing recorded', async (t) => {
    const { cwd, dataDir } = await stoppedSystem(t);
    const r = await run(runCa, cwd, ['rotate'], { [KEK_ENV]: randomBytes(32).toString('base64') });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[CA_ERR_SEALED\]/);
    assert.equal(existsSync(join(dataDir, 'audit.db')), false);
  });
});
