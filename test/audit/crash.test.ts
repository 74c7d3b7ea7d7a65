/**
 * `kill -9` during acknowledged audit writes, 10 times (issue 6 "Must show"): a child process appends
 * in a loop and prints each acknowledged index; the parent SIGKILLs it at a random moment after at
 * least 500 acknowledgements in that round. After every kill, and at the end: every acknowledged event
 * is in the log at its acknowledged index, and the whole log verifies against its pinned key.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { openAuditDatabase } from '../../src/control/audit/database.ts';
import { verifyLogFile } from '../../src/control/audit/verify.ts';
import { spawnTracked, waitForLine } from '../helpers/processes.ts';
import { kekText, scratchDir } from './helpers.ts';

const ROUNDS = 10;
const MIN_ACKS_PER_ROUND = 500;
const FIXTURE = join(import.meta.dirname, 'fixtures/append-loop.ts');

/** Complete `ack` lines only: the last line may have been cut by the kill. */
function acknowledged(stdout: string): Map<number, string> {
  const acks = new Map<number, string>();
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    if (!line.startsWith('ack ')) continue;
    for (const pair of line.slice(4).split(' ')) {
      const [index, id] = pair.split(':');
      acks.set(Number(index), id!);
    }
  }
  return acks;
}

test('SIGKILL at random moments during acknowledged appends: nothing acknowledged is lost, the tree verifies', async (t) => {
  const dir = scratchDir(t);
  const kek = kekText();
  const all = new Map<number, string>();
  let verifierKey = '';
  const kills: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const child = spawnTracked(t, process.execPath, ['--conditions=rampart-source', FIXTURE, dir], {
      env: { ...process.env, AUDIT_TEST_KEK: kek },
    });
    const ready = await waitForLine(child, /^ready (\d+) (\S+)$/m, 30_000);
    verifierKey ||= ready[2]!;
    assert.equal(ready[2], verifierKey, 'the same signing key after every restart');
    assert.ok(Number(ready[1]) >= all.size, 'the log reopened with at least what was acknowledged');
    const deadline = Date.now() + 60_000;
    while (acknowledged(child.stdout()).size < MIN_ACKS_PER_ROUND) {
      assert.ok(Date.now() < deadline, `round ${round}: too few acknowledgements\n${child.stderr()}`);
      await delay(5);
    }
    await delay(Math.floor(Math.random() * 250));
    child.signal('SIGKILL');
    const status = await child.exited;
    assert.equal(status.signal, 'SIGKILL', child.stderr());
    const acks = acknowledged(child.stdout());
    kills.push(`round ${round}: ${acks.size} acks`);
    for (const [index, id] of acks) all.set(index, id);

    // Every acknowledged event is where its receipt said, read by a fresh reader after the crash.
    const db = openAuditDatabase(join(dir, 'audit.db'), { readOnly: true });
    try {
      const lookup = db.prepare('SELECT event_id FROM entries WHERE idx = ?');
      for (const [index, id] of all) {
        const row = lookup.get(index) as { event_id: string } | undefined;
        assert.equal(row?.event_id, id, `round ${round}: acknowledged event at index ${index} lost`);
      }
    } finally {
      db.close();
    }
    const report = verifyLogFile(join(dir, 'audit.db'), { verifierKeys: [verifierKey] });
    assert.equal(report.ok, true, `round ${round}: ${JSON.stringify(report.problems)}`);
    assert.ok(report.entries >= all.size);
  }
  t.diagnostic(kills.join('; '));
  assert.ok(all.size >= 5_000, `only ${all.size} acknowledged writes`);
  const final = verifyLogFile(join(dir, 'audit.db'), { verifierKeys: [verifierKey] });
  assert.equal(final.ok, true);
  assert.ok(final.checkpoints > 0, 'checkpoints were signed between the kills');
  t.diagnostic(`${all.size} acknowledged, ${final.entries} in the log, ${final.checkpoints} checkpoints`);
});
