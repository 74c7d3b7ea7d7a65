import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { kekFrom, kekText, ORIGIN, openTestLog, sampleEvent, scratchDir } from '../../../test/audit/helpers.ts';
import { canonicalizeAuditEvent, createAuditEvent } from '../../core/audit-event.ts';
import { isRampartError } from '../../core/errors.ts';
import { openCheckpoint } from './checkpoint.ts';
import { openAuditDatabase } from './database.ts';
import { AUDIT_ERRORS } from './errors.ts';
import { leafHash, verifyConsistency, verifyInclusion } from './merkle.ts';
import { parseVerifierKey } from './note.ts';
import { verifyLogFile } from './verify.ts';

const code = (c: string) => (err: unknown) => isRampartError(err, c);

function rowCount(dir: string): number {
  const db = new DatabaseSync(join(dir, 'audit.db'), { readOnly: true });
  try {
    return Number((db.prepare('SELECT count(*) AS n FROM entries').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

test('the database is WAL with synchronous=FULL', (t) => {
  const dir = scratchDir(t);
  const db = openAuditDatabase(join(dir, 'audit.db'));
  t.after(() => db.close());
  assert.equal(db.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal');
  assert.equal(db.prepare('PRAGMA synchronous').get()?.synchronous, 2, '2 is FULL');
});

test('append resolves after the commit: before it, another connection sees nothing; after, the row', async (t) => {
  const dir = scratchDir(t);
  const log = openTestLog(t, dir);
  const pending = log.append([sampleEvent(1), sampleEvent(2)]);
  assert.equal(rowCount(dir), 0, 'not committed while the promise is pending');
  const receipts = await pending;
  assert.deepEqual(
    receipts.map((r) => [r.index, r.duplicate]),
    [
      [0, false],
      [1, false],
    ],
  );
  assert.equal(rowCount(dir), 2, 'committed when it resolved');
  assert.equal(log.size(), 2);
});

test('group commit: concurrent appends share transactions; indexes are dense and in call order', async (t) => {
  const log = openTestLog(t, scratchDir(t));
  const calls = Array.from({ length: 200 }, (_, i) => log.append([sampleEvent(i * 2), sampleEvent(i * 2 + 1)]));
  const receipts = (await Promise.all(calls)).flat();
  assert.deepEqual(
    receipts.map((r) => r.index),
    Array.from({ length: 400 }, (_, i) => i),
  );
  const stats = log.stats();
  assert.equal(stats.committedEvents, 400);
  assert.ok(stats.commits <= 2, `200 concurrent calls took ${stats.commits} commits`);
});

test('group commit: a transaction holds at most maxBatchEvents; the rest follows at once', async (t) => {
  const log = openTestLog(t, scratchDir(t), { maxBatchEvents: 10 });
  const receipts = await Promise.all(Array.from({ length: 25 }, (_, i) => log.append([sampleEvent(i)])));
  assert.equal(receipts.length, 25);
  assert.equal(log.stats().commits, 3);
});

test('duplicates are idempotent: across calls, inside one batch and inside one call', async (t) => {
  const dir = scratchDir(t);
  const log = openTestLog(t, dir);
  const a = sampleEvent(1);
  const b = sampleEvent(2);
  const [first] = await log.append([a]);
  const [again] = await log.append([a]);
  assert.deepEqual(again, { eventId: a.id, index: first!.index, duplicate: true });
  const [x, y] = await Promise.all([log.append([b]), log.append([b])]);
  assert.deepEqual([x![0]!.duplicate, y![0]!.duplicate, x![0]!.index === y![0]!.index], [false, true, true]);
  const c = sampleEvent(3);
  const inside = await log.append([c, c]);
  assert.deepEqual(
    inside.map((r) => [r.index, r.duplicate]),
    [
      [2, false],
      [2, true],
    ],
  );
  assert.equal(log.size(), 3);
  assert.equal(rowCount(dir), 3);
  assert.equal(log.stats().duplicates, 3);
});

test('the same event id with other content rejects that call only; nothing of it is written', async (t) => {
  const dir = scratchDir(t);
  const log = openTestLog(t, dir);
  const original = sampleEvent(1);
  await log.append([original]);
  const rewritten = createAuditEvent({ ...original, decision: 'allow' });
  assert.equal(rewritten.id, original.id);
  const other = sampleEvent(12);
  const results = await Promise.allSettled([
    log.append([sampleEvent(10), rewritten, sampleEvent(11)]),
    log.append([other]),
  ]);
  assert.equal(results[0].status, 'rejected');
  assert.ok(code(AUDIT_ERRORS.conflict)((results[0] as PromiseRejectedResult).reason));
  assert.equal(results[1].status, 'fulfilled');
  assert.equal(log.size(), 2, 'the conflicting call appended nothing, the other call its one event');
  assert.equal(log.entry(1)?.event.id, other.id);
  const [next] = await log.append([sampleEvent(13)]);
  assert.equal(next!.index, 2);
  await log.close();
  assert.equal(verifyLogFile(join(dir, 'audit.db')).ok, true, 'the undone rows left no trace in the tree');
});

test('invalid events reject the call before anything is queued', async (t) => {
  const log = openTestLog(t, scratchDir(t));
  const good = sampleEvent(1);
  await assert.rejects(log.append([good, { ...good, id: 'nope' }]), code(AUDIT_ERRORS.event));
  await assert.rejects(log.append([{ ...sampleEvent(2), secret: 'x' }]), code(AUDIT_ERRORS.event));
  await assert.rejects(log.append('events' as unknown as unknown[]), code(AUDIT_ERRORS.event));
  assert.deepEqual(await log.append([]), []);
  assert.equal(log.size(), 0);
});

test('events not created by this process are validated in full by append: copies, hand-built, wrapped', async (t) => {
  const dir = scratchDir(t);
  const log = openTestLog(t, dir);
  const created = sampleEvent(2);
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
  const bad: [string, unknown, string, string][] = [
    ['copy, resource changed', { ...created, resource: `/orders/${jwt}` }, 'resource', 'looks_like_jwt'],
    ['copy, field added', { ...created, secret: 'x' }, 'secret', 'unknown_field'],
    [
      'copy, actor changed',
      { ...created, actor: { subject: 'Bearer abc' } },
      'actor.subject',
      'looks_like_credentials',
    ],
    ['copy, bad time', { ...created, time: '2026-02-30T00:00:00.000Z' }, 'time', 'format'],
    ['JSON round trip, bad id', { ...JSON.parse(JSON.stringify(created)), id: 'nope' }, 'id', 'format'],
    [
      'hand-built, frozen',
      Object.freeze({ ...JSON.parse(JSON.stringify(created)), detail: Object.freeze({ password: 'x' }) }),
      'detail.password',
      'secret_field_name',
    ],
    ['inherits from a created event', Object.create(created), '', 'not_an_object'],
    [
      'proxy over a created event',
      new Proxy(created, { get: (target, key) => (key === 'reason' ? 'not a code' : Reflect.get(target, key)) }),
      'reason',
      'format',
    ],
  ];
  for (const [name, event, field, reason] of bad) {
    await assert.rejects(
      log.append([event]),
      (err: unknown) =>
        code(AUDIT_ERRORS.event)(err) &&
        isRampartError(err) &&
        err.detail?.field === field &&
        err.detail?.reason === reason,
      name,
    );
  }
  assert.equal(log.size(), 0);
  assert.equal(rowCount(dir), 0);
  // The created event itself is taken, stored as the canonical bytes of a full validation of a copy.
  await log.append([created]);
  const copy = JSON.parse(JSON.stringify(created)) as typeof created;
  assert.deepEqual(log.entry(0)?.event, created);
  assert.deepEqual(canonicalizeAuditEvent(log.entry(0)!.event), canonicalizeAuditEvent(copy));
});

test('overload: beyond maxQueuedEvents waiting, append refuses with 503 and memory stays bounded', async (t) => {
  const log = openTestLog(t, scratchDir(t), { maxQueuedEvents: 5 });
  const accepted = log.append([1, 2, 3, 4].map((n) => sampleEvent(n)));
  await assert.rejects(log.append([sampleEvent(5), sampleEvent(6)]), (err: unknown) => {
    assert.ok(code(AUDIT_ERRORS.overloaded)(err));
    assert.equal((err as { status: number }).status, 503);
    return true;
  });
  assert.equal((await accepted).length, 4);
  assert.equal((await log.append([sampleEvent(5)])).length, 1, 'accepted again once committed');
});

test('a failed transaction rejects its batch, rolls the tree back, and the log goes on', async (t) => {
  const dir = scratchDir(t);
  const log = openTestLog(t, dir);
  await log.append([sampleEvent(0)]);
  const poison = sampleEvent(99);
  const side = new DatabaseSync(join(dir, 'audit.db'));
  side.exec(
    `CREATE TRIGGER fail BEFORE INSERT ON entries WHEN NEW.event_id = '${poison.id}' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`,
  );
  const results = await Promise.allSettled([log.append([sampleEvent(1)]), log.append([poison])]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
    'one transaction: both calls fail',
  );
  assert.ok(code(AUDIT_ERRORS.storage)((results[0] as PromiseRejectedResult).reason));
  side.exec('DROP TRIGGER fail');
  side.close();
  assert.equal(log.size(), 1);
  const [r] = await log.append([sampleEvent(1)]);
  assert.equal(r!.index, 1, 'the index the failed batch had used is used again');
  await log.close();
  assert.equal(verifyLogFile(join(dir, 'audit.db')).ok, true);
});

test('a reopened log continues the same tree; its checkpoints stay consistent', async (t) => {
  const dir = scratchDir(t);
  const kek = kekText();
  const first = openTestLog(t, dir, { kek: kekFrom(kek) });
  await first.append([0, 1, 2, 3, 4].map((n) => sampleEvent(n)));
  const early = first.checkpoint();
  const key = first.verifierKey;
  await first.close();
  const second = openTestLog(t, dir, { kek: kekFrom(kek) });
  assert.equal(second.verifierKey, key, 'the same signing key');
  assert.equal(second.size(), 5);
  await second.append([5, 6, 7].map((n) => sampleEvent(n)));
  const late = second.checkpoint();
  const { proof, checkpoint } = second.proveConsistency(early.size);
  assert.equal(checkpoint.size, 8);
  assert.equal(verifyConsistency(early.size, late.size, early.root, late.root, proof), true);
});

test('proofs: inclusion against a signed checkpoint (on demand), verifiable with nothing but the key', async (t) => {
  let now = Date.UTC(2026, 2, 1);
  const log = openTestLog(t, scratchDir(t), { now: () => now, minCheckpointIntervalMs: 1_000 });
  const events = Array.from({ length: 21 }, (_, i) => sampleEvent(i));
  await log.append(events);
  const verifier = parseVerifierKey(log.verifierKey);
  for (const target of [events[0]!.id, 7, events[20]!.id]) {
    const result = log.proveInclusion(target);
    const checkpoint = openCheckpoint(result.checkpoint.note, [verifier], ORIGIN);
    const event = events[result.index]!;
    assert.deepEqual(result.leafHash, leafHash(canonicalizeAuditEvent(event)));
    assert.equal(verifyInclusion(result.index, checkpoint.size, result.leafHash, result.proof, checkpoint.root), true);
  }
  assert.equal(log.stats().checkpoints, 1, 'one on-demand checkpoint served all three');
  // A new event right after: no checkpoint covers it and the last is too recent to sign another.
  const [late] = await log.append([sampleEvent(21)]);
  assert.throws(
    () => log.proveInclusion(late!.index),
    (err: unknown) =>
      code(AUDIT_ERRORS.range)(err) && Number((err as { detail?: Record<string, unknown> }).detail?.retryAfterMs) > 0,
  );
  now += 1_000;
  assert.equal(log.proveInclusion(late!.index).checkpoint.size, 22);
  assert.throws(() => log.proveInclusion('01890a5d-ac96-774b-bcce-b302099a8057'), code(AUDIT_ERRORS.range));
  assert.throws(() => log.proveInclusion(500), code(AUDIT_ERRORS.range));
  assert.throws(() => log.proveConsistency(23), code(AUDIT_ERRORS.range));
});

test('periodic checkpoints are signed when the log grew, and close() signs the tail', async (t) => {
  const dir = scratchDir(t);
  const log = openTestLog(t, dir, { checkpointIntervalMs: 20 });
  await log.append([sampleEvent(1)]);
  const deadline = Date.now() + 5_000;
  while (log.latestCheckpoint()?.size !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(log.latestCheckpoint()?.size, 1);
  const count = log.stats().checkpoints;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(log.stats().checkpoints, count, 'no new checkpoint while nothing was appended');
  await log.append([sampleEvent(2)]);
  await log.close();
  const report = verifyLogFile(join(dir, 'audit.db'));
  assert.equal(report.signedSize, 2);
  assert.equal(report.unsignedEntries, 0);
  await assert.rejects(log.append([sampleEvent(3)]), code(AUDIT_ERRORS.closed));
});

test('a periodic checkpoint that fails is counted and reported, and the next period succeeds', async (t) => {
  const dir = scratchDir(t);
  const errors: string[] = [];
  const log = openTestLog(t, dir, {
    checkpointIntervalMs: 20,
    onError: (err) => errors.push((err as { code?: string }).code ?? ''),
  });
  const side = new DatabaseSync(join(dir, 'audit.db'));
  side.exec("CREATE TRIGGER fail BEFORE INSERT ON checkpoints BEGIN SELECT RAISE(ABORT, 'disk on fire'); END");
  await log.append([sampleEvent(1)]);
  const deadline = Date.now() + 5_000;
  while (log.stats().checkpointFailures === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(log.stats().checkpointFailures >= 1);
  assert.equal(errors[0], AUDIT_ERRORS.storage);
  assert.equal(log.latestCheckpoint(), null);
  side.exec('DROP TRIGGER fail');
  side.close();
  while (log.latestCheckpoint() === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(log.latestCheckpoint()?.size, 1);
});

test('open refuses: a wrong KEK (sealed), another origin, a store that contradicts its checkpoint', async (t) => {
  const dir = scratchDir(t);
  const kek = kekText();
  const log = openTestLog(t, dir, { kek: kekFrom(kek) });
  await log.append([0, 1, 2, 3].map((n) => sampleEvent(n)));
  await log.close();
  assert.throws(() => openTestLog(t, dir, { kek: kekFrom(kekText()) }), code(AUDIT_ERRORS.sealed));
  assert.throws(
    () => openTestLog(t, dir, { kek: kekFrom(kek), origin: 'other.example/log' }),
    code(AUDIT_ERRORS.schema),
  );
  const db = new DatabaseSync(join(dir, 'audit.db'));
  db.exec('DELETE FROM entries WHERE idx = 3; DELETE FROM tree_nodes WHERE level = 0 AND idx = 3;');
  db.close();
  assert.throws(() => openTestLog(t, dir, { kek: kekFrom(kek) }), code(AUDIT_ERRORS.tampered));
});

test('options are validated', (t) => {
  const dir = scratchDir(t);
  for (const bad of [
    { origin: '' },
    { origin: 'has space' },
    { origin: 'a+b' },
    { maxBatchEvents: 0 },
    { checkpointIntervalMs: -1 },
  ]) {
    assert.throws(() => openTestLog(t, dir, bad), code(AUDIT_ERRORS.config), JSON.stringify(bad));
  }
});
