/**
 * `kill -9` during acknowledged audit writes, 10 times (issue 6 "Must show"): a child process appends
 * in a loop and prints each acknowledged index; the parent SIGKILLs it at a random moment after at
 * least 500 acknowledgements in that round. After every kill, and at the end: every acknowledged event
 * is in the log at its acknowledged index, and the whole log verifies against its pinned key. The same
 * against PostgreSQL: there the kill also drops the writer's session and with it the writer lock,
 * which the next start must get.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { openAuditDatabase } from '../../src/control/audit/database.ts';
import { openPostgresAuditReader } from '../../src/control/audit/postgres-database.ts';
import { verifyPostgresTarget } from '../../src/control/audit/postgres-verify.ts';
import { type VerifyReport, verifyLogFile } from '../../src/control/audit/verify.ts';
import { spawnTracked, waitForLine } from '../helpers/processes.ts';
import { kekText, postgresDatabase, scratchDir } from './helpers.ts';

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

/** Where the victim keeps its log, and how to read it back after a kill. */
interface Target {
  location: string;
  /** The event id stored at each index (only those asked for). */
  eventIds(indexes: number[]): Promise<Map<number, string>>;
  verify(verifierKey: string): Promise<VerifyReport>;
}

function sqliteTarget(dir: string): Target {
  const path = join(dir, 'audit.db');
  return {
    location: dir,
    async eventIds(indexes) {
      // A fresh read-only reader after the crash.
      const db = openAuditDatabase(path, { readOnly: true });
      try {
        const lookup = db.prepare('SELECT event_id FROM entries WHERE idx = ?');
        const found = new Map<number, string>();
        for (const index of indexes) {
          const row = lookup.get(index) as { event_id: string } | undefined;
          if (row !== undefined) found.set(index, row.event_id);
        }
        return found;
      } finally {
        db.close();
      }
    },
    verify: async (verifierKey) => verifyLogFile(path, { verifierKeys: [verifierKey] }),
  };
}

function postgresTarget(url: string): Target {
  return {
    location: url,
    async eventIds(indexes) {
      const reader = await openPostgresAuditReader({ connectionString: url });
      try {
        const { rows } = await reader.client.query('SELECT idx, event_id FROM entries WHERE idx = ANY($1::bigint[])', [
          indexes,
        ]);
        return new Map(rows.map((row: { idx: string; event_id: string }) => [Number(row.idx), row.event_id]));
      } finally {
        await reader.close();
      }
    },
    verify: (verifierKey) => verifyPostgresTarget({ connectionString: url }, { verifierKeys: [verifierKey] }),
  };
}

async function killLoop(t: TestContext, target: Target, rounds: number, minTotal: number): Promise<void> {
  const kek = kekText();
  const all = new Map<number, string>();
  let verifierKey = '';
  const kills: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    const child = spawnTracked(t, process.execPath, ['--conditions=rampart-source', FIXTURE, target.location], {
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
    // Every acknowledged event is where its receipt said.
    const stored = await target.eventIds([...all.keys()]);
    for (const [index, id] of all) {
      assert.equal(stored.get(index), id, `round ${round}: acknowledged event at index ${index} lost`);
    }
    const report = await target.verify(verifierKey);
    assert.equal(report.ok, true, `round ${round}: ${JSON.stringify(report.problems)}`);
    assert.ok(report.entries >= all.size);
  }
  t.diagnostic(kills.join('; '));
  assert.ok(all.size >= minTotal, `only ${all.size} acknowledged writes`);
  const final = await target.verify(verifierKey);
  assert.equal(final.ok, true);
  assert.ok(final.checkpoints > 0, 'checkpoints were signed between the kills');
  t.diagnostic(`${all.size} acknowledged, ${final.entries} in the log, ${final.checkpoints} checkpoints`);
}

test('SIGKILL at random moments during acknowledged appends: nothing acknowledged is lost, the tree verifies', async (t) => {
  await killLoop(t, sqliteTarget(scratchDir(t)), ROUNDS, 5_000);
});

test('PostgreSQL: SIGKILL of the writer at random moments: nothing acknowledged is lost, the next writer gets the lock, the tree verifies', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  // Fewer rounds: each restart also waits for the server to release the killed writer's lock.
  await killLoop(t, postgresTarget(url), 5, 2_500);
});
