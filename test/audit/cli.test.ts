/**
 * `rampart audit tail|query|verify` as a user runs them: filters, output formats, follow, usage errors.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type AuditIo, runAudit } from '../../src/cli/audit.ts';
import { kekFrom, kekText, openTestLog, sampleEvent, scratchDir } from './helpers.ts';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

const START = Date.UTC(2026, 2, 1);

async function run(args: string[], cwd: string, extra: Partial<AuditIo> = {}) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runAudit(args, { stdout, stderr, cwd, now: () => START + 3_600_000, ...extra });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** 30 events, one per second from START (sampleEvent's pattern), in `<dir>/.rampart/control/audit.db`. */
async function fixture(t: { after(fn: () => unknown): void }) {
  const root = scratchDir(t);
  const dir = join(root, '.rampart', 'control');
  mkdirSync(dir, { recursive: true });
  const kek = kekText();
  const log = openTestLog(t, dir, { kek: kekFrom(kek) });
  const events = Array.from({ length: 30 }, (_, i) => sampleEvent(i));
  await log.append(events);
  await log.close();
  return { root, dir, events, kek };
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

test('query filters by actor, action (exact and prefix), decision, component and time; JSON lines', async (t) => {
  const { root, events } = await fixture(t);
  // From the manifest directory, --data defaults to .rampart/control.
  const bySubject = lines((await run(['query', '--actor', 'user-3', '--json'], root)).stdout);
  assert.deepEqual(
    bySubject.map((e) => e.index),
    events.flatMap((e, i) => (e.actor?.subject === 'user-3' ? [i] : [])),
  );
  assert.ok(bySubject.length > 0);
  const byClient = lines((await run(['query', '--actor', 'shop-web', '--json', '--limit', '3'], root)).stdout);
  assert.deepEqual(
    byClient.map((e) => e.index),
    [1, 3, 5],
  );
  const secrets = lines((await run(['query', '--action', 'secret.*', '--json'], root)).stdout);
  assert.ok(secrets.length > 0 && secrets.every((e) => e.action.startsWith('secret.')));
  const exact = lines((await run(['query', '--action', 'svid.issue', '--decision', 'error', '--json'], root)).stdout);
  assert.ok(exact.every((e) => e.action === 'svid.issue' && e.decision === 'error'));
  assert.deepEqual(
    exact.map((e) => e.index),
    events.flatMap((e, i) => (e.action === 'svid.issue' && e.decision === 'error' ? [i] : [])),
  );
  const window = lines(
    (
      await run(
        ['query', '--since', new Date(START + 10_000).toISOString(), '--until', '2026-03-01T00:00:15.000Z', '--json'],
        root,
      )
    ).stdout,
  );
  assert.deepEqual(
    window.map((e) => e.index),
    [10, 11, 12, 13, 14],
  );
  const newest = lines(
    (await run(['query', '--desc', '--limit', '2', '--json', '--component', 'secrets'], root)).stdout,
  );
  assert.deepEqual(
    newest.map((e) => e.index),
    [25, 20],
  );
  // Relative times: an hour after START, "--since 2h" is everything, "--since 30m" nothing.
  assert.equal(lines((await run(['query', '--since', '2h', '--json', '--limit', '100'], root)).stdout).length, 30);
  assert.equal((await run(['query', '--since', '30m'], root)).stdout, '(no matching events)\n');
});

test('tail: the last N as a readable table, oldest first', async (t) => {
  const { dir, events } = await fixture(t);
  const { code, stdout } = await run(['tail', '-n', '3', '--data', dir], '/');
  assert.equal(code, 0);
  const rows = stdout.trim().split('\n');
  assert.match(rows[0]!, /^INDEX\s+TIME\s+DECISION\s+COMPONENT\s+ACTION\s+ACTOR\s+RESOURCE\s+REASON$/);
  assert.deepEqual(
    rows.slice(1).map((r) => Number(r.split(/\s+/)[0])),
    [27, 28, 29],
  );
  assert.ok(rows[3]!.includes(events[29]!.time) && rows[3]!.includes('/orders/29'));
});

test('tail --follow prints events appended after it started, until stopped', async (t) => {
  const { dir, kek } = await fixture(t);
  const log = openTestLog(t, dir, { kek: kekFrom(kek) });
  const stop = new AbortController();
  t.after(() => stop.abort());
  const stdout = new Capture();
  const following = runAudit(['tail', '-n', '1', '--follow', '--json', '--data', dir], {
    stdout,
    stderr: new Capture(),
    cwd: '/',
    signal: stop.signal,
    pollMs: 20,
  });
  await delay(50);
  await log.append([sampleEvent(100), sampleEvent(101)]);
  const deadline = Date.now() + 10_000;
  while (lines(stdout.text).length < 3 && Date.now() < deadline) await delay(20);
  stop.abort();
  assert.equal(await following, 0);
  assert.deepEqual(
    lines(stdout.text).map((e) => e.index),
    [29, 30, 31],
  );
});

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

test('verify prints a readable verdict with the key to pin', async (t) => {
  const { dir } = await fixture(t);
  const r = await run(['verify', '--data', dir], '/');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^audit log shop\.local\/rampart\/audit: verified 30 entries and 1 signed checkpoint\n/);
  assert.match(r.stdout, /signing key: shop\.local\/rampart\/audit\+[0-9a-f]{8}\+/);
  assert.match(r.stdout, /pin it with --key/);
});
