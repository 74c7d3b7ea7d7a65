/**
 * `rampart audit tail|query|verify` as a user runs them: filters, output formats, follow, usage errors;
 * on the SQLite file of a data directory (`--data`, by default `.rampart/control`) and on PostgreSQL
 * (`--postgres <url>`, a database of the test's own on the machine's server).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { type AuditIo, runAudit } from '../../src/cli/audit.ts';
import type { AnyAuditLog } from '../../src/control/audit/log.ts';
import { Capture } from '../helpers/capture.ts';
import {
  kekFrom,
  kekText,
  openTestLog,
  openTestPostgresLog,
  postgresDatabase,
  sampleEvent,
  scratchDir,
} from './helpers.ts';

const START = Date.UTC(2026, 2, 1);

async function run(args: string[], cwd: string, extra: Partial<AuditIo> = {}) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runAudit(args, { stdout, stderr, cwd, now: () => START + 3_600_000, ...extra });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** A log of 30 events, one per second from START (sampleEvent's pattern), and how the CLI finds it. */
interface Fixture {
  /** The location arguments (none for SQLite: from `cwd`, --data defaults to .rampart/control). */
  args: string[];
  cwd: string;
  events: ReturnType<typeof sampleEvent>[];
  /** The same log opened again for writing (closed when the test ends). */
  reopen(): Promise<AnyAuditLog>;
}

type Store = 'sqlite' | 'postgres';

async function fixture(t: TestContext, store: Store = 'sqlite'): Promise<Fixture | null> {
  const kek = kekText();
  const events = Array.from({ length: 30 }, (_, i) => sampleEvent(i));
  if (store === 'postgres') {
    const url = await postgresDatabase(t);
    if (url === null) return null;
    const log = await openTestPostgresLog(t, url, { kek: kekFrom(kek) });
    await log.append(events);
    await log.close();
    return {
      args: ['--postgres', url],
      cwd: scratchDir(t),
      events,
      reopen: () => openTestPostgresLog(t, url, { kek: kekFrom(kek) }),
    };
  }
  const root = scratchDir(t);
  const dir = join(root, '.rampart', 'control');
  mkdirSync(dir, { recursive: true });
  const log = openTestLog(t, dir, { kek: kekFrom(kek) });
  await log.append(events);
  await log.close();
  return { args: [], cwd: root, events, reopen: async () => openTestLog(t, dir, { kek: kekFrom(kek) }) };
}

const lines = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map(
      (l) =>
        JSON.parse(l) as {
          index: number;
          action: string;
          decision: string;
          actor?: { subject?: string };
          time: string;
        },
    );

for (const store of ['sqlite', 'postgres'] as const) {
  test(`${store}: query filters by actor, action (exact and prefix), decision, component and time; JSON lines`, async (t) => {
    const f = await fixture(t, store);
    if (f === null) return;
    const { events } = f;
    const q = (args: string[]) => run(['query', ...f.args, ...args], f.cwd);
    const bySubject = lines((await q(['--actor', 'user-3', '--json'])).stdout);
    assert.deepEqual(
      bySubject.map((e) => e.index),
      events.flatMap((e, i) => (e.actor?.subject === 'user-3' ? [i] : [])),
    );
    assert.ok(bySubject.length > 0);
    const byClient = lines((await q(['--actor', 'shop-web', '--json', '--limit', '3'])).stdout);
    assert.deepEqual(
      byClient.map((e) => e.index),
      [1, 3, 5],
    );
    const secrets = lines((await q(['--action', 'secret.*', '--json'])).stdout);
    assert.ok(secrets.length > 0 && secrets.every((e) => e.action.startsWith('secret.')));
    const exact = lines((await q(['--action', 'svid.issue', '--decision', 'error', '--json'])).stdout);
    assert.ok(exact.every((e) => e.action === 'svid.issue' && e.decision === 'error'));
    assert.deepEqual(
      exact.map((e) => e.index),
      events.flatMap((e, i) => (e.action === 'svid.issue' && e.decision === 'error' ? [i] : [])),
    );
    const window = lines(
      (await q(['--since', new Date(START + 10_000).toISOString(), '--until', '2026-03-01T00:00:15.000Z', '--json']))
        .stdout,
    );
    assert.deepEqual(
      window.map((e) => e.index),
      [10, 11, 12, 13, 14],
    );
    const newest = lines((await q(['--desc', '--limit', '2', '--json', '--component', 'secrets'])).stdout);
    assert.deepEqual(
      newest.map((e) => e.index),
      [25, 20],
    );
    // Relative times: an hour after START, "--since 2h" is everything, "--since 30m" nothing.
    assert.equal(lines((await q(['--since', '2h', '--json', '--limit', '100'])).stdout).length, 30);
    assert.equal((await q(['--since', '30m'])).stdout, '(no matching events)\n');
  });

  test(`${store}: tail: the last N as a readable table, oldest first`, async (t) => {
    const f = await fixture(t, store);
    if (f === null) return;
    const { events } = f;
    const { code, stdout } = await run(['tail', '-n', '3', ...f.args], f.cwd);
    assert.equal(code, 0);
    const rows = stdout.trim().split('\n');
    assert.match(rows[0]!, /^INDEX\s+TIME\s+DECISION\s+COMPONENT\s+ACTION\s+ACTOR\s+RESOURCE\s+REASON$/);
    assert.deepEqual(
      rows.slice(1).map((r) => Number(r.split(/\s+/)[0])),
      [27, 28, 29],
    );
    assert.ok(rows[3]!.includes(events[29]!.time) && rows[3]!.includes('/orders/29'));
  });

  test(`${store}: tail --follow prints events appended after it started, until stopped`, async (t) => {
    const f = await fixture(t, store);
    if (f === null) return;
    const log = await f.reopen();
    const stop = new AbortController();
    t.after(() => stop.abort());
    const stdout = new Capture();
    const following = runAudit(['tail', '-n', '1', '--follow', '--json', ...f.args], {
      stdout,
      stderr: new Capture(),
      cwd: f.cwd,
      signal: stop.signal,
      pollMs: 20,
    });
    // Appended only once the initial tail is out, or those lines would be the last one.
    const deadline = Date.now() + 10_000;
    while (lines(stdout.text).length < 1 && Date.now() < deadline) await delay(10);
    await log.append([sampleEvent(100), sampleEvent(101)]);
    while (lines(stdout.text).length < 3 && Date.now() < deadline) await delay(20);
    stop.abort();
    assert.equal(await following, 0);
    assert.deepEqual(
      lines(stdout.text).map((e) => e.index),
      [29, 30, 31],
    );
  });

  test(`${store}: verify prints a readable verdict with the key to pin`, async (t) => {
    const f = await fixture(t, store);
    if (f === null) return;
    const r = await run(['verify', ...f.args], f.cwd);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^audit log shop\.local\/rampart\/audit: verified 30 entries and 1 signed checkpoint\n/);
    assert.match(r.stdout, /signing key: shop\.local\/rampart\/audit\+[0-9a-f]{8}\+/);
    assert.match(r.stdout, /pin it with --key/);
  });
}

test('usage errors exit 2; an unreadable log exits 1 with one line; --help exits 0', async (t) => {
  const root = scratchDir(t);
  const usage = [
    ['frobnicate'],
    ['query', '--decision', 'maybe'],
    ['query', '--since', 'yesterday'],
    ['query', '--limit', '0'],
    ['tail', '-n', 'many'],
    ['verify', '--bogus'],
    ['verify', '--key', '@/nonexistent/key'],
  ];
  for (const args of usage) {
    const r = await run(args, root);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /Usage: rampart audit/);
  }
  assert.equal((await run([], root)).code, 2);
  const missing = await run(['verify', '--data', join(root, 'nowhere')], root);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^rampart audit verify: no audit log at .*nowhere\n$/);
  writeFileSync(join(root, 'audit.db'), 'not a database');
  const garbage = await run(['query', '--data', root], root);
  assert.equal(garbage.code, 1);
  assert.equal(garbage.stderr.split('\n').length, 2, 'one line, no stack');
  const help = await run(['--help'], root);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /rampart audit <verify\|tail\|query>/);
});

test('--postgres: usage errors exit 2; an unreachable server or a database without a log exits 1 with one line and no password', async (t) => {
  const url = await postgresDatabase(t);
  if (url === null) return;
  const cwd = scratchDir(t);
  const usage = [
    ['query', '--postgres', url, '--data', cwd],
    ['query', '--postgres', 'http://127.0.0.1/x'],
    ['query', '--postgres', 'not a url'],
    ['verify', '--schema', 'rampart_audit'],
    ['tail', '--postgres', url, '--schema', 'x;drop table entries'],
    ['verify', '--postgres', url, '--schema', 'Upper'],
  ];
  for (const args of usage) {
    const r = await run(args, cwd);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /Usage: rampart audit/);
  }
  const secret = 'hunter2-not-printed';
  for (const args of [
    ['verify', '--postgres', `postgres://postgres:${secret}@127.0.0.1:1/postgres`],
    ['query', '--postgres', url],
    ['verify', '--postgres', url, '--schema', 'no_such_schema'],
  ]) {
    const r = await run(args, cwd);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
    assert.ok(!r.stderr.includes(secret));
  }
});

test('--postgres: an entry whose bytes are not JSON shows as unreadable, and filtered queries skip it', async (t) => {
  const f = await fixture(t, 'postgres');
  if (f === null) return;
  const client = new pg.Client({ connectionString: f.args[1], options: '-c search_path=rampart_audit' });
  client.on('error', () => {});
  await client.connect();
  t.after(() => client.end().catch(() => {}));
  await client.query("UPDATE entries SET entry = '\\xff00'::bytea WHERE idx = 4");
  await client.query('UPDATE entries SET entry = $1 WHERE idx = 5', [Buffer.from('{"action": "secret.read"')]);
  const all = await run(['query', ...f.args, '--limit', '8'], f.cwd);
  assert.equal(all.code, 0, all.stderr);
  assert.match(all.stdout, /^4\s+\(unreadable entry: run rampart audit verify\)$/m);
  assert.match(all.stdout, /^5\s+\(unreadable entry: run rampart audit verify\)$/m);
  const filtered = await run(['query', ...f.args, '--decision', 'allow', '--json'], f.cwd);
  assert.equal(filtered.code, 0, filtered.stderr);
  const indexes = lines(filtered.stdout).map((e) => e.index);
  assert.deepEqual(
    indexes,
    f.events.flatMap((e, i) => (e.decision === 'allow' && i !== 4 && i !== 5 ? [i] : [])),
  );
  const verdict = await run(['verify', ...f.args, '--json'], f.cwd);
  assert.equal(verdict.code, 1);
  assert.equal(JSON.parse(verdict.stdout).firstBadIndex, 4);
});
