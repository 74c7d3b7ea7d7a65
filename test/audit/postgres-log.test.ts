/**
 * The audit log on PostgreSQL (issue 6: "durable on acknowledgment (SQLite WAL with synchronous=FULL,
 * or PostgreSQL)"): appends, group commit, duplicates and conflicts, proofs and checkpoints, the checks
 * at open, the single writer, and the verifier's paging. Each test gets a database of its own on the
 * machine's server (RAMPART_TEST_POSTGRES_URL), dropped after; skipped when the server is missing
 * unless CI=true.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import pg from 'pg';
import { openCheckpoint } from '../../src/control/audit/checkpoint.ts';
import { AUDIT_DEFAULTS } from '../../src/control/audit/defaults.ts';
import { AUDIT_ERRORS } from '../../src/control/audit/errors.ts';
import { connectAuditLog } from '../../src/control/audit/log.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../../src/control/audit/merkle.ts';
import { parseVerifierKey } from '../../src/control/audit/note.ts';
import {
  openPostgresAuditDatabase,
  openPostgresAuditReader,
  POSTGRES_AUDIT_SCHEMA_VERSION,
} from '../../src/control/audit/postgres-database.ts';
import { openPostgresAuditLog } from '../../src/control/audit/postgres-log.ts';
import { verifyPostgresTarget } from '../../src/control/audit/postgres-verify.ts';
import { canonicalizeAuditEvent, createAuditEvent } from '../../src/core/audit-event.ts';
import { isRampartError } from '../../src/core/errors.ts';
import { kekFrom, kekText, ORIGIN, openTestPostgresLog, postgresDatabase, sampleEvent, scratchDir } from './helpers.ts';

const code = (c: string) => (err: unknown) => isRampartError(err, c);
const SCHEMA = AUDIT_DEFAULTS.postgresSchema;

/** A plain connection to the test database, as an operator (or an attacker) would have. */
async function side(t: TestContext, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${SCHEMA}` });
  // Dropping the database at the end terminates it; that must not fail the test.
  client.on('error', () => {});
  await client.connect();
  t.after(() => client.end().catch(() => {}));
  return client;
}

async function rowCount(client: pg.Client): Promise<number> {
  return Number((await client.query('SELECT count(*) AS n FROM entries')).rows[0].n);
}

const verify = (url: string, options = {}) => verifyPostgresTarget({ connectionString: url }, options);

test('the writer connection commits synchronously even where the database default says otherwise', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const name = new URL(url).pathname.slice(1);
  const admin = await side(t, url);
  await admin.query(`ALTER DATABASE ${name} SET synchronous_commit = off`);
  const db = await openPostgresAuditDatabase({ connectionString: url });
  t.after(() => db.close());
  assert.equal((await db.writer.query('SHOW synchronous_commit')).rows[0].synchronous_commit, 'on');
  const pooled = await db.pool.query('SHOW synchronous_commit');
  assert.equal(pooled.rows[0].synchronous_commit, 'off', 'the database default is in force elsewhere');
});

test('append resolves after COMMIT: before it, another connection sees nothing; after, the rows', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url);
  const other = await side(t, url);
  const pending = log.append([sampleEvent(1), sampleEvent(2)]);
  assert.equal(await rowCount(other), 0, 'not committed while the promise is pending');
  const receipts = await pending;
  assert.deepEqual(
    receipts.map((r) => [r.index, r.duplicate]),
    [
      [0, false],
      [1, false],
    ],
  );
  assert.equal(await rowCount(other), 2, 'committed when it resolved');
  assert.equal(log.size(), 2);
});

test('group commit: concurrent appends share transactions; indexes are dense and in call order', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url);
  const calls = Array.from({ length: 200 }, (_, i) => log.append([sampleEvent(i * 2), sampleEvent(i * 2 + 1)]));
  const receipts = (await Promise.all(calls)).flat();
  assert.deepEqual(
    receipts.map((r) => r.index),
    Array.from({ length: 400 }, (_, i) => i),
  );
  assert.equal(log.stats().committedEvents, 400);
  assert.ok(log.stats().commits <= 2, `200 concurrent calls took ${log.stats().commits} commits`);
  // Appends made while a transaction is in flight go together into the next one.
  const first = log.append([sampleEvent(1_000)]);
  await new Promise((resolve) => setImmediate(resolve));
  const during = Array.from({ length: 50 }, (_, i) => log.append([sampleEvent(1_001 + i)]));
  const before = log.stats().commits;
  await Promise.all([first, ...during]);
  assert.ok(log.stats().commits - before <= 2, `${log.stats().commits - before} commits for 51 appends`);
  await log.close();
  assert.equal((await verify(url)).ok, true);
});

test('group commit: a transaction holds at most maxBatchEvents; the rest follows at once', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url, { maxBatchEvents: 10 });
  const receipts = await Promise.all(Array.from({ length: 25 }, (_, i) => log.append([sampleEvent(i)])));
  assert.equal(receipts.length, 25);
  assert.equal(log.stats().commits, 3);
});

test('duplicates are idempotent: across calls, inside one batch and inside one call', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url);
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
  assert.equal(await rowCount(await side(t, url)), 3);
  assert.equal(log.stats().duplicates, 3);
});

test('the same event id with other content rejects that call only; nothing of it is written', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url);
  const original = sampleEvent(1);
  await log.append([original]);
  const rewritten = createAuditEvent({ ...original, decision: 'allow' });
  assert.equal(rewritten.id, original.id);
  const other = sampleEvent(12);
  const inBatch = sampleEvent(13);
  const results = await Promise.allSettled([
    log.append([sampleEvent(10), rewritten, sampleEvent(11)]),
    log.append([other]),
    // The same id twice in one batch with different bytes: the second call conflicts with the first.
    log.append([inBatch]),
    log.append([createAuditEvent({ ...inBatch, decision: 'allow' })]),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'fulfilled', 'fulfilled', 'rejected'],
  );
  assert.ok(code(AUDIT_ERRORS.conflict)((results[0] as PromiseRejectedResult).reason));
  assert.ok(code(AUDIT_ERRORS.conflict)((results[3] as PromiseRejectedResult).reason));
  assert.equal(log.size(), 3, 'the conflicting calls appended nothing');
  assert.equal((await log.entry(1))?.event.id, other.id);
  assert.equal((await log.entry(2))?.event.id, inBatch.id);
  const [next] = await log.append([sampleEvent(14)]);
  assert.equal(next!.index, 3);
  await log.close();
  assert.equal((await verify(url)).ok, true, 'the undone requests left no trace in the tree');
});

test('invalid events reject the call before anything is queued', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url);
  const good = sampleEvent(1);
  await assert.rejects(log.append([good, { ...good, id: 'nope' }]), code(AUDIT_ERRORS.event));
  await assert.rejects(log.append([{ ...sampleEvent(2), secret: 'x' }]), code(AUDIT_ERRORS.event));
  await assert.rejects(log.append('events' as unknown as unknown[]), code(AUDIT_ERRORS.event));
  assert.deepEqual(await log.append([]), []);
  assert.equal(log.size(), 0);
});

test('overload: beyond maxQueuedEvents waiting, append refuses with 503', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url, { maxQueuedEvents: 5 });
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
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url);
  await log.append([sampleEvent(0)]);
  const poison = sampleEvent(99);
  const admin = await side(t, url);
  await admin.query(`CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.event_id = '${poison.id}' THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$`);
  await admin.query('CREATE TRIGGER fail BEFORE INSERT ON entries FOR EACH ROW EXECUTE FUNCTION fail()');
  const results = await Promise.allSettled([log.append([sampleEvent(1)]), log.append([poison])]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
    'one transaction: both calls fail',
  );
  assert.ok(code(AUDIT_ERRORS.storage)((results[0] as PromiseRejectedResult).reason));
  await admin.query('DROP TRIGGER fail ON entries');
  assert.equal(log.size(), 1);
  const [r] = await log.append([sampleEvent(1)]);
  assert.equal(r!.index, 1, 'the index the failed batch had used is used again');
  await log.close();
  assert.equal((await verify(url)).ok, true);
});

test('a reopened log continues the same tree; its checkpoints stay consistent', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const kek = kekText();
  const first = await openTestPostgresLog(t, url, { kek: kekFrom(kek) });
  await first.append([0, 1, 2, 3, 4].map((n) => sampleEvent(n)));
  const early = await first.checkpoint();
  const key = first.verifierKey;
  await first.close();
  const second = await openTestPostgresLog(t, url, { kek: kekFrom(kek) });
  assert.equal(second.verifierKey, key, 'the same signing key');
  assert.equal(second.size(), 5);
  assert.equal(second.latestCheckpoint()?.size, 5);
  await second.append([5, 6, 7].map((n) => sampleEvent(n)));
  const late = await second.checkpoint();
  assert.equal((await second.checkpoint()).note, late.note, 'nothing new: the same checkpoint');
  const { proof, checkpoint } = await second.proveConsistency(early.size);
  assert.equal(checkpoint.size, 8);
  assert.equal(verifyConsistency(early.size, late.size, early.root, late.root, proof), true);
});

test('proofs: inclusion against a signed checkpoint (on demand), verifiable with nothing but the key', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  let now = Date.UTC(2026, 2, 1);
  const log = await openTestPostgresLog(t, url, { now: () => now, minCheckpointIntervalMs: 1_000 });
  const events = Array.from({ length: 21 }, (_, i) => sampleEvent(i));
  await log.append(events);
  const verifier = parseVerifierKey(log.verifierKey);
  for (const target of [events[0]!.id, 7, events[20]!.id]) {
    const result = await log.proveInclusion(target);
    const checkpoint = openCheckpoint(result.checkpoint.note, [verifier], ORIGIN);
    const event = events[result.index]!;
    assert.deepEqual(result.leafHash, leafHash(canonicalizeAuditEvent(event)));
    assert.equal(verifyInclusion(result.index, checkpoint.size, result.leafHash, result.proof, checkpoint.root), true);
  }
  assert.equal(log.stats().checkpoints, 1, 'one on-demand checkpoint served all three');
  // Every leaf of a larger tree, against a checkpoint of every size from it to the end.
  await log.append(Array.from({ length: 16 }, (_, i) => sampleEvent(100 + i)));
  now += 1_000;
  for (let i = 0; i < 37; i++) {
    const result = await log.proveInclusion(i);
    assert.equal(
      verifyInclusion(i, result.checkpoint.size, result.leafHash, result.proof, result.checkpoint.root),
      true,
      `leaf ${i}`,
    );
  }
  // A new event right after: no checkpoint covers it and the last is too recent to sign another.
  const [late] = await log.append([sampleEvent(21)]);
  await assert.rejects(
    log.proveInclusion(late!.index),
    (err: unknown) =>
      code(AUDIT_ERRORS.range)(err) && Number((err as { detail?: Record<string, unknown> }).detail?.retryAfterMs) > 0,
  );
  now += 1_000;
  assert.equal((await log.proveInclusion(late!.index)).checkpoint.size, 38);
  for (const unknown of ['01890a5d-ac96-774b-bcce-b302099a8057', 500, -1, 1.5, Number.NaN, 2 ** 60]) {
    await assert.rejects(log.proveInclusion(unknown), code(AUDIT_ERRORS.range), String(unknown));
  }
  for (const size of [39, -1, 1.5, Number.NaN]) {
    await assert.rejects(log.proveConsistency(size), code(AUDIT_ERRORS.range), String(size));
  }
  assert.equal(await log.entry(38), null);
  assert.equal(await log.entry(-1), null);
});

test('periodic checkpoints are signed when the log grew, and close() signs the tail', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url, { checkpointIntervalMs: 20 });
  await log.append([sampleEvent(1)]);
  const deadline = Date.now() + 5_000;
  while (log.latestCheckpoint()?.size !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(log.latestCheckpoint()?.size, 1);
  const count = log.stats().checkpoints;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(log.stats().checkpoints, count, 'no new checkpoint while nothing was appended');
  await log.append([sampleEvent(2)]);
  await log.close();
  const report = await verify(url);
  assert.equal(report.signedSize, 2);
  assert.equal(report.unsignedEntries, 0);
  await assert.rejects(log.append([sampleEvent(3)]), code(AUDIT_ERRORS.closed));
  await assert.rejects(log.checkpoint(), code(AUDIT_ERRORS.closed));
});

test('close() commits what is queued before it signs the last checkpoint', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url);
  const pending = Array.from({ length: 30 }, (_, i) => log.append([sampleEvent(i)]));
  await log.close();
  assert.equal((await Promise.all(pending)).length, 30);
  const report = await verify(url);
  assert.deepEqual([report.ok, report.entries, report.signedSize], [true, 30, 30]);
});

test('a periodic checkpoint that fails is counted and reported, and the next period succeeds', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const errors: string[] = [];
  const kek = kekText();
  // The tables exist (a first start), then every checkpoint insert fails, then the log starts again.
  await (await openTestPostgresLog(t, url, { kek: kekFrom(kek) })).close();
  const admin = await side(t, url);
  await admin.query('DELETE FROM checkpoints');
  await admin.query(
    "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$",
  );
  await admin.query('CREATE TRIGGER fail BEFORE INSERT ON checkpoints FOR EACH ROW EXECUTE FUNCTION fail()');
  const log = await openTestPostgresLog(t, url, {
    kek: kekFrom(kek),
    checkpointIntervalMs: 20,
    onError: (err) => errors.push((err as { code?: string }).code ?? ''),
  });
  await log.append([sampleEvent(1)]);
  const deadline = Date.now() + 5_000;
  while (log.stats().checkpointFailures === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(log.stats().checkpointFailures >= 1);
  assert.equal(errors[0], AUDIT_ERRORS.storage);
  assert.equal(log.latestCheckpoint(), null);
  await admin.query('DROP TRIGGER fail ON checkpoints');
  while (log.latestCheckpoint() === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(log.latestCheckpoint()?.size, 1);
});

test('open refuses: a wrong KEK (sealed), another origin, another schema version, a store that contradicts its checkpoint', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const kek = kekText();
  const log = await openTestPostgresLog(t, url, { kek: kekFrom(kek) });
  await log.append([0, 1, 2, 3].map((n) => sampleEvent(n)));
  await log.close();
  await assert.rejects(openTestPostgresLog(t, url, { kek: kekFrom(kekText()) }), code(AUDIT_ERRORS.sealed));
  await assert.rejects(
    openTestPostgresLog(t, url, { kek: kekFrom(kek), origin: 'other.example/log' }),
    code(AUDIT_ERRORS.schema),
  );
  const admin = await side(t, url);
  await admin.query("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
  await assert.rejects(openTestPostgresLog(t, url, { kek: kekFrom(kek) }), code(AUDIT_ERRORS.schema));
  await assert.rejects(openPostgresAuditReader({ connectionString: url }), code(AUDIT_ERRORS.schema));
  await admin.query("UPDATE meta SET value = $1 WHERE key = 'schema_version'", [String(POSTGRES_AUDIT_SCHEMA_VERSION)]);
  // Entries and tree cut back behind the signed checkpoint (size 4): a truncated log is not extended.
  await admin.query('DELETE FROM entries WHERE idx = 3');
  await admin.query('DELETE FROM tree_nodes WHERE (idx + 1) * (1 << level) > 3');
  await assert.rejects(openTestPostgresLog(t, url, { kek: kekFrom(kek) }), code(AUDIT_ERRORS.tampered));
  // Entries without their tree nodes.
  await admin.query('DELETE FROM checkpoints');
  await admin.query('DELETE FROM tree_nodes WHERE level = 0 AND idx = 2');
  await assert.rejects(openTestPostgresLog(t, url, { kek: kekFrom(kek) }), code(AUDIT_ERRORS.tampered));
});

test('one writer: a second log on the same database and schema is refused while the first is open', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const kek = kekText();
  const first = await openTestPostgresLog(t, url, { kek: kekFrom(kek) });
  await first.append([sampleEvent(0)]);
  const started = Date.now();
  await assert.rejects(
    openTestPostgresLog(t, url, { kek: kekFrom(kek), postgres: { connectionString: url, writerLockWaitMs: 300 } }),
    (err: unknown) => {
      assert.ok(code(AUDIT_ERRORS.locked)(err));
      assert.equal((err as { status: number }).status, 503);
      return true;
    },
  );
  assert.ok(Date.now() - started >= 300, 'it waited for the lock first');
  // A writer that goes away while another waits: the waiting one gets the log.
  const waiting = openTestPostgresLog(t, url, {
    kek: kekFrom(kek),
    postgres: { connectionString: url, writerLockWaitMs: 10_000 },
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  await first.close();
  const third = await waiting;
  assert.equal(third.size(), 1);
  await third.close();
  // Another schema is another log, with its own lock.
  const elsewhere = await openTestPostgresLog(t, url, { postgres: { connectionString: url, schema: 'audit_two' } });
  await elsewhere.append([sampleEvent(1)]);
  const second = await openTestPostgresLog(t, url, { kek: kekFrom(kek) });
  const [r] = await second.append([sampleEvent(2)]);
  assert.equal(r!.index, 1, 'the next writer continues the tree');
});

test('one writer: two control planes starting at once on a new database, exactly one gets the log', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const kek = kekText();
  const results = await Promise.allSettled(
    Array.from({ length: 4 }, () =>
      openTestPostgresLog(t, url, { kek: kekFrom(kek), postgres: { connectionString: url, writerLockWaitMs: 0 } }),
    ),
  );
  const opened = results.filter((r) => r.status === 'fulfilled');
  assert.equal(opened.length, 1, JSON.stringify(results.map((r) => r.status)));
  for (const r of results) {
    if (r.status === 'rejected') assert.ok(code(AUDIT_ERRORS.locked)(r.reason), String(r.reason));
  }
});

/** Terminates the backend holding the writer lock of the test database, as a server restart would. */
async function killWriter(t: TestContext, url: string): Promise<void> {
  const admin = await side(t, url);
  const holders = await admin.query(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
  );
  assert.equal(holders.rows.length, 1, 'one writer lock');
  await admin.query('SELECT pg_terminate_backend($1)', [holders.rows[0].pid]);
}

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.ok(condition(), 'in time');
}

test('a lost writer connection: the next write reconnects, takes the lock again and goes on', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const errors: unknown[] = [];
  const log = await openTestPostgresLog(t, url, { onError: (err) => errors.push(err) });
  await log.append([sampleEvent(0), sampleEvent(1)]);
  await log.checkpoint();
  await killWriter(t, url);
  await until(() => errors.length > 0);
  assert.ok(code(AUDIT_ERRORS.storage)(errors[0]));
  assert.equal((errors[0] as { detail?: Record<string, unknown> }).detail?.reason, 'writer_connection_lost');
  const [r] = await log.append([sampleEvent(2)]);
  assert.equal(r!.index, 2);
  assert.equal((await log.checkpoint()).size, 3);
  await killWriter(t, url);
  await until(() => errors.length > 1);
  assert.equal((await log.checkpoint()).size, 3, 'a checkpoint reconnects too');
  await log.close();
  const report = await verify(url);
  assert.deepEqual([report.ok, report.entries, report.signedSize], [true, 3, 3]);
});

test('a writer that lost its connection while another took the log over: refused while the other holds it, then continues the other’s tree', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const kek = kekText();
  const errors: unknown[] = [];
  const first = await openTestPostgresLog(t, url, {
    kek: kekFrom(kek),
    postgres: { connectionString: url, writerLockWaitMs: 200 },
    onError: (err) => errors.push(err),
  });
  await first.append([sampleEvent(0), sampleEvent(1)]);
  const early = await first.checkpoint();
  await killWriter(t, url);
  await until(() => errors.length > 0);
  const second = await openTestPostgresLog(t, url, { kek: kekFrom(kek) });
  assert.deepEqual(
    (await second.append([2, 3, 4].map((n) => sampleEvent(n)))).map((r) => r.index),
    [2, 3, 4],
  );
  await assert.rejects(first.append([sampleEvent(5)]), code(AUDIT_ERRORS.locked));
  assert.equal(first.size(), 2, 'nothing of the refused batch');
  await second.close();
  const [r] = await first.append([sampleEvent(6)]);
  assert.equal(r!.index, 5, 'the tree as the other writer left it, not the one in memory');
  assert.equal(first.size(), 6);
  const { proof, checkpoint } = await first.proveConsistency(early.size);
  assert.equal(verifyConsistency(early.size, checkpoint.size, early.root, checkpoint.root, proof), true);
  await first.close();
  const report = await verify(url);
  assert.deepEqual([report.ok, report.entries], [true, 6]);
});

test('options are validated: hostile schema names and connection strings never reach SQL', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const kek = kekFrom(kekText());
  for (const schema of ['', 'Upper', '1abc', 'a;drop schema public', 'a b', 'a"b', `a${'x'.repeat(63)}`, 'ünï']) {
    await assert.rejects(
      openPostgresAuditLog({ postgres: { connectionString: url, schema }, origin: ORIGIN, kek }),
      code(AUDIT_ERRORS.config),
      schema,
    );
    await assert.rejects(openPostgresAuditReader({ connectionString: url, schema }), code(AUDIT_ERRORS.config), schema);
  }
  await assert.rejects(
    openPostgresAuditLog({ postgres: { connectionString: url, writerLockWaitMs: -1 }, origin: ORIGIN, kek }),
    code(AUDIT_ERRORS.config),
  );
  for (const bad of [{ origin: 'has space' }, { maxBatchEvents: 0 }, { checkpointIntervalMs: -1 }]) {
    await assert.rejects(openTestPostgresLog(t, url, bad), code(AUDIT_ERRORS.config), JSON.stringify(bad));
  }
  await assert.rejects(
    openPostgresAuditLog({ postgres: { connectionString: '' }, origin: ORIGIN, kek }),
    code(AUDIT_ERRORS.config),
  );
  await assert.rejects(
    openPostgresAuditLog({ postgres: { connectionString: url, maxConnections: 0 }, origin: ORIGIN, kek }),
    code(AUDIT_ERRORS.config),
  );
  // A port nobody listens on: a storage error, not a crash.
  await assert.rejects(
    openPostgresAuditLog({ postgres: { connectionString: 'postgres://postgres@127.0.0.1:1/x' }, origin: ORIGIN, kek }),
    code(AUDIT_ERRORS.storage),
  );
});

test('the read-only view refuses what is not an audit log, and cannot write', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  await assert.rejects(openPostgresAuditReader({ connectionString: url }), code(AUDIT_ERRORS.schema));
  const log = await openTestPostgresLog(t, url);
  await log.append([sampleEvent(0)]);
  await log.close();
  const reader = await openPostgresAuditReader({ connectionString: url });
  t.after(() => reader.close());
  await assert.rejects(reader.client.query('DELETE FROM entries'), /read-only transaction/);
});

test('connectAuditLog opens the store the options name', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const kek = kekFrom(kekText());
  const onPostgres = await connectAuditLog({
    postgres: { connectionString: url },
    origin: ORIGIN,
    kek,
    checkpointIntervalMs: 0,
  });
  t.after(() => onPostgres.close().catch(() => {}));
  await onPostgres.append([sampleEvent(0)]);
  assert.equal((await onPostgres.checkpoint()).size, 1);
  assert.equal(await rowCount(await side(t, url)), 1);
  const dir = scratchDir(t);
  const onSqlite = await connectAuditLog({ path: `${dir}/audit.db`, origin: ORIGIN, kek, checkpointIntervalMs: 0 });
  t.after(() => onSqlite.close());
  await onSqlite.append([sampleEvent(1)]);
  assert.equal((await onSqlite.checkpoint()).size, 1);
  await assert.rejects(
    connectAuditLog({
      path: `${dir}/audit.db`,
      postgres: { connectionString: url },
      origin: ORIGIN,
      kek,
    } as unknown as Parameters<typeof connectAuditLog>[0]),
    code(AUDIT_ERRORS.config),
  );
});

test('the verifier reads in pages: the verdict does not depend on the page size', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url);
  await log.append(Array.from({ length: 40 }, (_, i) => sampleEvent(i)));
  await log.checkpoint();
  await log.append(Array.from({ length: 60 }, (_, i) => sampleEvent(40 + i)));
  await log.close();
  const sizes = [1, 2, 3, 7, 16, 64, 99, 100, 1_000];
  for (const pageSize of sizes) {
    const report = await verify(url, { pageSize });
    assert.deepEqual([report.ok, report.entries, report.signedSize], [true, 100, 100], `page ${pageSize}`);
  }
  const admin = await side(t, url);
  const original = (await admin.query('SELECT hash FROM tree_nodes WHERE level = 3 AND idx = 6')).rows[0].hash;
  // A level-3 node (leaves 48..55) replaced: the first leaf under it, whatever the paging.
  await admin.query('UPDATE tree_nodes SET hash = $1 WHERE level = 3 AND idx = 6', [Buffer.alloc(32, 7)]);
  for (const pageSize of sizes) {
    const report = await verify(url, { pageSize });
    assert.equal(report.firstBadIndex, 48, `page ${pageSize}`);
    assert.deepEqual(report.problems, [{ kind: 'tree_node', index: 48, level: 3 }]);
  }
  // Restored, and a node added beyond every entry (level 5, leaves 224..255).
  await admin.query('UPDATE tree_nodes SET hash = $1 WHERE level = 3 AND idx = 6', [original]);
  await admin.query('INSERT INTO tree_nodes (level, idx, hash) VALUES (5, 7, $1)', [Buffer.alloc(32, 1)]);
  for (const pageSize of sizes) {
    const report = await verify(url, { pageSize });
    assert.deepEqual(report.problems, [{ kind: 'extra_node', index: 224, level: 5 }], `page ${pageSize}`);
  }
  await assert.rejects(verify(url, { pageSize: 0 }), code(AUDIT_ERRORS.config));
});

test('the verifier reads one snapshot: verifying while the log appends reports no problem', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const log = await openTestPostgresLog(t, url, { checkpointIntervalMs: 15 });
  await log.append(Array.from({ length: 200 }, (_, i) => sampleEvent(i)));
  let appending = true;
  const writer = (async () => {
    for (let n = 1_000; appending; n += 10) {
      await log.append(Array.from({ length: 10 }, (_, i) => sampleEvent(n + i)));
    }
  })();
  const reports = [];
  for (let i = 0; i < 5; i++) reports.push(await verify(url, { pageSize: 16 }));
  appending = false;
  await writer;
  for (const report of reports) assert.deepEqual(report.problems, []);
  assert.ok(reports[4]!.entries > reports[0]!.entries, 'the log grew while it was verified');
});
