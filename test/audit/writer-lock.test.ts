/**
 * One writer for the SQLite audit log (writer-lock.ts): a second writer, in this process or another,
 * is refused with AUDIT_ERR_LOCKED naming the holder; the readers (`rampart audit verify|tail|query`)
 * work while the writer appends; a holder killed with SIGKILL does not block the next start; and a
 * writer whose stored tree grew under it (a process that took no lock) refuses to write instead of
 * extending a stale frontier.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { type TestContext, test } from 'node:test';
import { runAudit } from '../../src/cli/audit.ts';
import { openOfflineAuditLog } from '../../src/cli/offline-audit.ts';
import { AUDIT_ERRORS } from '../../src/control/audit/errors.ts';
import { openAuditLog } from '../../src/control/audit/log.ts';
import { leafHash } from '../../src/control/audit/merkle.ts';
import { verifyLogFile } from '../../src/control/audit/verify.ts';
import { WRITER_META_KEY, writerLockFile } from '../../src/control/audit/writer-lock.ts';
import { encodeAuditEvent } from '../../src/core/audit-event.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { Capture } from '../helpers/capture.ts';
import { spawnTracked, waitForLine } from '../helpers/processes.ts';
import { kekFrom, kekText, ORIGIN, openTestLog, sampleEvent, scratchDir } from './helpers.ts';

const FIXTURE = join(import.meta.dirname, 'fixtures/hold-writer.ts');

async function cli(args: string[], cwd: string) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runAudit(args, { stdout, stderr, cwd });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Asserts AUDIT_ERR_LOCKED naming `pid` as the holder and the lock file of `path`. */
function lockedBy(path: string, pid: number | null) {
  return (err: unknown) => {
    assert.ok(isRampartError(err, AUDIT_ERRORS.locked), String(err));
    assert.equal(err.detail?.lock, writerLockFile(path));
    const holder = err.detail?.holder as { pid: number; host: string; since: string } | null;
    if (pid === null) assert.equal(holder, null);
    else {
      assert.equal(holder?.pid, pid);
      assert.equal(typeof holder?.host, 'string');
      assert.ok(!Number.isNaN(Date.parse(holder?.since ?? '')));
    }
    return true;
  };
}

test('a second writer in the same process is refused, naming the holder; after close the next one opens', async (t) => {
  const dir = scratchDir(t);
  const path = join(dir, 'audit.db');
  const kek = kekFrom(kekText());
  const first = openTestLog(t, dir, { kek });
  await first.append([sampleEvent(0)]);
  assert.throws(
    () => openAuditLog({ path, origin: ORIGIN, kek, checkpointIntervalMs: 0 }),
    lockedBy(path, process.pid),
  );
  // The refused open changed nothing: the holder still appends.
  await first.append([sampleEvent(1)]);
  await first.close();
  const second = openTestLog(t, dir, { kek });
  assert.equal(second.size(), 2);
  await second.append([sampleEvent(2)]);
  await second.close();
  assert.deepEqual(verifyLogFile(path).problems, []);
});

test('the offline CLI cannot open the log for writing while a writer holds it', async (t) => {
  const root = scratchDir(t);
  const kek = kekFrom(kekText());
  const log = openTestLog(t, root, { kek });
  await log.append([sampleEvent(0)]);
  await assert.rejects(openOfflineAuditLog(root, ORIGIN, kek), lockedBy(join(root, 'audit.db'), process.pid));
  await log.close();
  const offline = await openOfflineAuditLog(root, ORIGIN, kek);
  await offline.append(sampleEvent(1));
  await offline.close();
  assert.deepEqual(verifyLogFile(join(root, 'audit.db')).problems, []);
});

test('another process holds the log: refused naming it, readers work meanwhile, and after kill -9 the next writer starts', async (t: TestContext) => {
  const root = scratchDir(t);
  const dir = join(root, '.rampart', 'control');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'audit.db');
  const kekBase64 = kekText();
  const child = spawnTracked(t, process.execPath, ['--conditions=rampart-source', FIXTURE, dir], {
    env: { ...process.env, AUDIT_TEST_KEK: kekBase64 },
  });
  const ready = await waitForLine(child, /^ready (\d+) (\d+)$/m, 30_000);
  assert.equal(Number(ready[1]), child.pid);

  assert.throws(
    () => openAuditLog({ path, origin: ORIGIN, kek: kekFrom(kekBase64), checkpointIntervalMs: 0 }),
    lockedBy(path, child.pid),
  );

  // The readers open the file read-only and are not held up by the writer lock, while it appends.
  const verified = await cli(['verify'], root);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, /verified \d+ entries/);
  const tail = await cli(['tail', '-n', '2', '--json'], root);
  assert.equal(tail.code, 0, tail.stderr);
  assert.equal(tail.stdout.trim().split('\n').length, 2);
  const query = await cli(['query', '--action', 'http.request', '--json', '--limit', '3'], root);
  assert.equal(query.code, 0, query.stderr);
  assert.deepEqual(
    query.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { index: number }).index),
    [0, 1, 2],
  );
  const report = verifyLogFile(path);
  assert.deepEqual(report.problems, []);

  child.signal('SIGKILL');
  const status = await child.exited;
  assert.equal(status.signal, 'SIGKILL');
  // The kernel dropped the dead holder's lock: the next writer opens at once, on the stored tree.
  const next = openAuditLog({ path, origin: ORIGIN, kek: kekFrom(kekBase64), checkpointIntervalMs: 0 });
  t.after(() => next.close().catch(() => {}));
  const before = next.size();
  assert.ok(before >= Number(ready[2]));
  const [receipt] = await next.append([sampleEvent(1_000)]);
  assert.equal(receipt!.index, before);
  await next.close();
  const after = verifyLogFile(path);
  assert.deepEqual(after.problems, []);
  assert.ok(after.ok);
  assert.equal(after.entries, before + 1);
});

test('a tree that grew under the writer (appended without the lock) stops it: no append, no checkpoint on a stale frontier', async (t) => {
  const dir = scratchDir(t);
  const path = join(dir, 'audit.db');
  const log = openTestLog(t, dir);
  await log.append([sampleEvent(0), sampleEvent(1), sampleEvent(2)]);

  // What a process that ignores the lock would do: append leaf 3 itself.
  const intruder = new DatabaseSync(path, { timeout: 5_000 });
  const { event, bytes } = encodeAuditEvent(sampleEvent(3));
  intruder
    .prepare('INSERT INTO entries (idx, event_id, entry, leaf_hash) VALUES (3, ?, ?, ?)')
    .run(event.id, bytes, leafHash(bytes));
  intruder.prepare('INSERT INTO tree_nodes (level, idx, hash) VALUES (0, 3, ?)').run(leafHash(bytes));
  intruder.close();

  await assert.rejects(log.append([sampleEvent(4)]), (err) => {
    assert.ok(isRampartError(err, AUDIT_ERRORS.locked));
    assert.equal(err.detail?.reason, 'tree_moved');
    assert.equal(err.detail?.size, 3);
    assert.equal(err.detail?.leaves, 4);
    return true;
  });
  assert.throws(
    () => log.checkpoint(),
    (err) => isRampartError(err, AUDIT_ERRORS.locked),
  );
  assert.equal(log.size(), 3);
  const reader = new DatabaseSync(path, { readOnly: true });
  const count = reader.prepare('SELECT count(*) AS n FROM entries').get() as { n: number };
  const nodes = reader.prepare('SELECT count(*) AS n FROM tree_nodes WHERE idx >= 3 OR level > 1').get() as {
    n: number;
  };
  reader.close();
  assert.equal(count.n, 4, 'the writer added nothing after the foreign append');
  assert.equal(nodes.n, 1, 'no node computed from the stale frontier (only the intruder leaf 3)');
});

test('a lock file that cannot be used is refused naming it; a stale or empty one is no obstacle', async (t) => {
  const BAD: { name: string; prepare: (lock: string) => void }[] = [
    { name: 'a directory', prepare: (lock) => mkdirSync(lock) },
    { name: 'not a database', prepare: (lock) => writeFileSync(lock, 'not a lock file, not a database '.repeat(8)) },
  ];
  for (const bad of BAD) {
    const dir = scratchDir(t);
    const path = join(dir, 'audit.db');
    bad.prepare(writerLockFile(path));
    assert.throws(
      () => openAuditLog({ path, origin: ORIGIN, kek: kekFrom(kekText()), checkpointIntervalMs: 0 }),
      (err) => {
        assert.ok(isRampartError(err, AUDIT_ERRORS.storage), `${bad.name}: ${err}`);
        assert.equal(err.detail?.file, writerLockFile(path), bad.name);
        return true;
      },
    );
  }
  const dir = scratchDir(t);
  const path = join(dir, 'audit.db');
  const kek = kekFrom(kekText());
  writeFileSync(writerLockFile(path), '');
  const log = openTestLog(t, dir, { kek });
  await log.append([sampleEvent(0)]);
  await log.close();
  // Left behind by a closed (or killed) writer: the next one simply locks it again.
  const again = openTestLog(t, dir, { kek });
  assert.equal(again.size(), 1);
  await again.close();
});

test('a holder record that cannot be read still refuses the second writer, with no name', async (t) => {
  const dir = scratchDir(t);
  const path = join(dir, 'audit.db');
  const kek = kekFrom(kekText());
  const log = openTestLog(t, dir, { kek });
  const raw = new DatabaseSync(path, { timeout: 5_000 });
  for (const value of ['not json', '{"pid":"1","host":"h","since":"x"}', '[]', 'null']) {
    raw.prepare('UPDATE meta SET value = ? WHERE key = ?').run(value, WRITER_META_KEY);
    assert.throws(() => openAuditLog({ path, origin: ORIGIN, kek, checkpointIntervalMs: 0 }), lockedBy(path, null));
  }
  raw.close();
  await log.close();
});
