import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createAuditEvent } from '../../core/audit-event.ts';
import { isRampartError } from '../../core/errors.ts';
import { type Kek, loadKek } from '../../core/kek.ts';
import { AuditStore, openAuditDatabase } from './database.ts';
import { AUDIT_ERRORS } from './errors.ts';
import { openAuditLog } from './log.ts';
import { rewrapSigningKeys, signingKeyContext } from './signing-key.ts';
import { verifyLogFile } from './verify.ts';

const ORIGIN = 'shop.local/rampart/audit';
const kek = (): Kek => loadKek({ env: 'K', environment: { K: randomBytes(32).toString('base64') } });

function scratch(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-audit-key-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'audit.db');
}

async function logOnce(path: string, key: Kek): Promise<string> {
  const log = openAuditLog({ path, origin: ORIGIN, kek: key, checkpointIntervalMs: 0 });
  await log.append([createAuditEvent({ component: 'gateway', action: 'http.request', decision: 'allow' })]);
  const verifierKey = log.verifierKey;
  await log.close();
  return verifierKey;
}

/** Re-wraps the log's keys in one transaction, as `rampart kek rotate` does. */
function rewrap(path: string, from: Kek, to: Kek): { rewrapped: number; kept: number } {
  const store = new AuditStore(openAuditDatabase(path));
  try {
    return store.transaction(() => {
      const { rewrapped, kept } = rewrapSigningKeys(store.signingKeys(), from, to);
      for (const r of rewrapped) store.replaceWrappedSigningKey(r.name, r.keyId, r.wrappedKey);
      return { rewrapped: rewrapped.length, kept };
    });
  } finally {
    store.db.close();
  }
}

test('the signing key moves to the new KEK: same key, the log opens and signs under it, not under the old', async (t) => {
  const path = scratch(t);
  const [old, next] = [kek(), kek()];
  t.after(() => {
    old.destroy();
    next.destroy();
  });
  const verifierKey = await logOnce(path, old);
  assert.deepEqual(rewrap(path, old, next), { rewrapped: 1, kept: 0 });
  assert.deepEqual(rewrap(path, old, next), { rewrapped: 0, kept: 1 }, 'a rerun changes nothing');
  assert.equal(await logOnce(path, next), verifierKey, 'the same Ed25519 key, only re-wrapped');
  const report = verifyLogFile(path, { verifierKeys: [verifierKey] });
  assert.equal(report.ok, true, JSON.stringify(report.problems));
  assert.equal(report.entries, 2);
  assert.throws(
    () => openAuditLog({ path, origin: ORIGIN, kek: old, checkpointIntervalMs: 0 }),
    (err) => {
      assert.ok(isRampartError(err, AUDIT_ERRORS.sealed));
      assert.equal(err.detail?.['reason'], 'wrong_key');
      assert.equal(err.detail?.['sealedBy'], next.id, 'the refusal names the KEK that sealed the key');
      return true;
    },
  );
});

test('a key under neither KEK, or altered, is refused before anything is written', async (t) => {
  const [old, next, third] = [kek(), kek(), kek()];
  t.after(() => {
    for (const k of [old, next, third]) k.destroy();
  });
  const cases: [string, (row: { name: string; keyId: string; wrappedKey: Buffer }) => Buffer][] = [
    ['sealed by a third KEK', (row) => third.wrap(Buffer.alloc(48, 1), signingKeyContext(row.name, row.keyId))],
    [
      'a byte flipped',
      (row) => {
        const altered = Buffer.from(row.wrappedKey);
        altered[altered.length - 1]! ^= 1;
        return altered;
      },
    ],
  ];
  for (const [name, damage] of cases) {
    const path = scratch(t);
    await logOnce(path, old);
    const store = new AuditStore(openAuditDatabase(path));
    try {
      const [row] = store.signingKeys();
      store.transaction(() => store.replaceWrappedSigningKey(row!.name, row!.keyId, damage(row as never)));
      const before = store.signingKeys();
      assert.throws(
        () => rewrapSigningKeys(store.signingKeys(), old, next),
        (err) => isRampartError(err, AUDIT_ERRORS.sealed),
        name,
      );
      assert.deepEqual(store.signingKeys(), before, name);
    } finally {
      store.db.close();
    }
  }
});
