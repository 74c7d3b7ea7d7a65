/**
 * Tampering with the stored log is detected by `rampart audit verify`, naming the first bad index
 * (issue 6 "Must show"). One log of 100 events with signed checkpoints at sizes 40 and 100 is built
 * once; each row of the table edits a copy of its database the way someone with write access to the
 * file could, then runs the verifier through the CLI (in-process, JSON report) with the pinned key.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Writable } from 'node:stream';
import { before, test } from 'node:test';
import { runAudit } from '../../src/cli/audit.ts';
import { signCheckpoint } from '../../src/control/audit/checkpoint.ts';
import { Frontier, leafHash } from '../../src/control/audit/merkle.ts';
import { ed25519KeyId, ed25519Signer, rawEd25519PublicKey } from '../../src/control/audit/note.ts';
import type { VerifyReport } from '../../src/control/audit/verify.ts';
import { canonicalizeAuditEvent, newEventId } from '../../src/core/audit-event.ts';
import { ORIGIN, openTestLog, sampleEvent, scratchDir } from './helpers.ts';

const SIZE = 100;
let pristine = '';
let verifierKey = '';
let lastCheckpointNote = '';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function verify(dir: string, extra: string[] = []): Promise<{ code: number; report: VerifyReport }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runAudit(['verify', '--data', dir, '--json', ...extra], { stdout, stderr, cwd: dir });
  assert.equal(stderr.text, '');
  return { code, report: JSON.parse(stdout.text) as VerifyReport };
}

before(async () => {
  const ctx = { after: (_fn: () => unknown) => {} };
  const dir = scratchDir({ after: (fn) => process.on('exit', () => fn()) });
  const log = openTestLog(ctx, dir);
  for (let i = 0; i < 40; i++) await log.append([sampleEvent(i)]);
  log.checkpoint();
  await log.append(Array.from({ length: SIZE - 40 }, (_, i) => sampleEvent(40 + i)));
  lastCheckpointNote = log.checkpoint().note;
  verifierKey = log.verifierKey;
  await log.close();
  assert.equal(existsSync(join(dir, 'audit.db-wal')), false, 'closed: everything is in the main file');
  pristine = join(dir, 'audit.db');
});

/** A copy of the pristine log in its own directory, opened for raw edits. */
function copy(t: { after(fn: () => unknown): void }): { dir: string; db: DatabaseSync } {
  const dir = join(scratchDir(t), 'control');
  mkdirSync(dir);
  copyFileSync(pristine, join(dir, 'audit.db'));
  const db = new DatabaseSync(join(dir, 'audit.db'));
  return { dir, db };
}

type Row = { idx: number; event_id: string; entry: Uint8Array; leaf_hash: Uint8Array };
const rowAt = (db: DatabaseSync, idx: number) =>
  db.prepare('SELECT idx, event_id, entry, leaf_hash FROM entries WHERE idx = ?').get(idx) as Row;
const insertRow = (db: DatabaseSync, r: Row) =>
  db
    .prepare('INSERT INTO entries (idx, event_id, entry, leaf_hash) VALUES (?, ?, ?, ?)')
    .run(r.idx, r.event_id, r.entry, r.leaf_hash);

/** Flips one bit of one byte inside entry `idx` (a letter of its action: the JSON stays valid). */
function flipByte(db: DatabaseSync, idx: number, fixHash: boolean): void {
  const row = rowAt(db, idx);
  const bytes = Buffer.from(row.entry);
  const at = bytes.indexOf('"action":"') + 11;
  bytes[at]! ^= 0x01;
  db.prepare('UPDATE entries SET entry = ? WHERE idx = ?').run(bytes, idx);
  if (fixHash) db.prepare('UPDATE entries SET leaf_hash = ? WHERE idx = ?').run(leafHash(bytes), idx);
}

/** Moves rows with idx ≥ from by `delta` (through a free range: idx is the primary key). */
function shift(db: DatabaseSync, from: number, delta: number): void {
  db.prepare('UPDATE entries SET idx = idx + 1000000 WHERE idx >= ?').run(from);
  db.prepare('UPDATE entries SET idx = idx - 1000000 + ? WHERE idx >= 1000000').run(delta);
}

/** Rewrites the whole tree (and leaf hash columns) from the entries: an attacker who recomputes everything. */
function rewriteTree(db: DatabaseSync): Frontier {
  db.exec('DELETE FROM tree_nodes');
  const frontier = Frontier.empty();
  const insert = db.prepare('INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)');
  for (const row of db.prepare('SELECT idx, entry FROM entries ORDER BY idx').all() as Row[]) {
    const leaf = leafHash(row.entry);
    db.prepare('UPDATE entries SET leaf_hash = ? WHERE idx = ?').run(leaf, row.idx);
    for (const node of frontier.push(leaf)) insert.run(node.level, node.index, node.hash);
  }
  return frontier;
}

function swapRows(db: DatabaseSync, a: number, b: number): void {
  const ra = rowAt(db, a);
  const rb = rowAt(db, b);
  db.prepare('DELETE FROM entries WHERE idx IN (?, ?)').run(a, b);
  insertRow(db, { ...rb, idx: a });
  insertRow(db, { ...ra, idx: b });
}

function forgedRow(idx: number): Row {
  const bytes = canonicalizeAuditEvent(sampleEvent(1_000 + idx));
  return { idx, event_id: JSON.parse(bytes.toString()).id, entry: bytes, leaf_hash: leafHash(bytes) };
}

interface Case {
  name: string;
  tamper(db: DatabaseSync): void;
  firstBadIndex: number | null;
  kinds: string[];
  args?: (dir: string) => string[];
}

const CASES: Case[] = [
  {
    name: 'one byte of an entry changed',
    tamper: (db) => flipByte(db, 57, false),
    firstBadIndex: 57,
    kinds: ['leaf_hash'],
  },
  {
    name: 'one byte changed and its leaf hash column recomputed',
    tamper: (db) => flipByte(db, 57, true),
    firstBadIndex: 57,
    kinds: ['tree_node'],
  },
  {
    name: 'one byte changed in the first entry',
    tamper: (db) => flipByte(db, 0, true),
    firstBadIndex: 0,
    kinds: ['tree_node'],
  },
  {
    name: 'one byte changed and the whole tree recomputed: caught by the signed root, named by its range',
    tamper: (db) => {
      flipByte(db, 57, true);
      rewriteTree(db);
    },
    firstBadIndex: 40,
    kinds: ['checkpoint_root'],
  },
  {
    name: 'the event id column changed',
    tamper: (db) => db.prepare('UPDATE entries SET event_id = ? WHERE idx = 57').run(newEventId()),
    firstBadIndex: 57,
    kinds: ['event'],
  },
  {
    name: 'a row deleted',
    tamper: (db) => db.exec('DELETE FROM entries WHERE idx = 57'),
    firstBadIndex: 57,
    kinds: ['missing_entry'],
  },
  {
    name: 'a row deleted and the rest renumbered',
    tamper: (db) => {
      db.exec('DELETE FROM entries WHERE idx = 57');
      shift(db, 58, -1);
    },
    firstBadIndex: 57,
    kinds: ['tree_node'],
  },
  {
    name: 'two neighbouring rows swapped (57, 58)',
    tamper: (db) => swapRows(db, 57, 58),
    firstBadIndex: 57,
    kinds: ['tree_node'],
  },
  {
    name: 'two distant rows swapped (23, 77)',
    tamper: (db) => swapRows(db, 23, 77),
    firstBadIndex: 23,
    kinds: ['tree_node'],
  },
  {
    name: 'two rows swapped at an even index (56, 91)',
    tamper: (db) => swapRows(db, 56, 91),
    firstBadIndex: 56,
    kinds: ['tree_node'],
  },
  {
    name: 'a row inserted in the middle (the rest renumbered)',
    tamper: (db) => {
      shift(db, 57, 1);
      insertRow(db, forgedRow(57));
    },
    firstBadIndex: 57,
    kinds: ['tree_node'],
  },
  {
    name: 'a row appended without its tree node',
    tamper: (db) => insertRow(db, forgedRow(SIZE)),
    firstBadIndex: SIZE,
    kinds: ['tree_node'],
  },
  {
    name: 'the tail behind the last checkpoint truncated (entries and tree)',
    tamper: (db) => {
      db.exec('DELETE FROM entries WHERE idx >= 90');
      db.exec('DELETE FROM tree_nodes WHERE (idx + 1) * (1 << level) > 90');
    },
    firstBadIndex: 90,
    kinds: ['truncated'],
  },
  {
    name: 'the tail truncated (entries only)',
    tamper: (db) => db.exec('DELETE FROM entries WHERE idx >= 90'),
    firstBadIndex: 90,
    kinds: ['extra_node', 'truncated'],
  },
  {
    name: 'a checkpoint signature altered',
    tamper: (db) => {
      const note = (db.prepare('SELECT note FROM checkpoints WHERE size = 40').get() as { note: string }).note;
      const i = note.lastIndexOf(' ') + 10;
      const altered = note.slice(0, i) + (note[i] === 'A' ? 'B' : 'A') + note.slice(i + 1);
      db.prepare('UPDATE checkpoints SET note = ? WHERE size = 40').run(altered);
    },
    firstBadIndex: null,
    kinds: ['checkpoint_signature'],
  },
  {
    name: 'a checkpoint root column altered',
    tamper: (db) => db.exec('UPDATE checkpoints SET root = zeroblob(32) WHERE size = 100'),
    firstBadIndex: null,
    kinds: ['checkpoint_row'],
  },
  {
    name: 'history rewritten and re-signed with a substituted key: the pinned key refuses every checkpoint',
    tamper: (db) => {
      flipByte(db, 57, true);
      const frontier = rewriteTree(db);
      const { privateKey } = generateKeyPairSync('ed25519');
      const signer = ed25519Signer(ORIGIN, privateKey);
      const raw = rawEd25519PublicKey(privateKey);
      db.prepare('UPDATE signing_keys SET public_key = ?, key_id = ?').run(
        raw,
        ed25519KeyId(ORIGIN, raw).toString('hex'),
      );
      db.exec('DELETE FROM checkpoints');
      const note = signCheckpoint({ origin: ORIGIN, size: SIZE, root: frontier.root() }, signer);
      db.prepare('INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, 0)').run(
        SIZE,
        frontier.root(),
        note,
      );
    },
    firstBadIndex: null,
    kinds: ['checkpoint_signature'],
  },
  {
    name: 'checkpoints deleted and the tail truncated: caught by a checkpoint kept outside the log',
    tamper: (db) => {
      db.exec('DELETE FROM checkpoints');
      db.exec('DELETE FROM entries WHERE idx >= 90');
      db.exec('DELETE FROM tree_nodes WHERE (idx + 1) * (1 << level) > 90');
    },
    args: (dir) => {
      writeFileSync(join(dir, 'kept.checkpoint'), lastCheckpointNote);
      return ['--checkpoint', join(dir, 'kept.checkpoint')];
    },
    firstBadIndex: 90,
    kinds: ['truncated'],
  },
];

test('the untouched log verifies (exit 0), every entry and both checkpoints', async (t) => {
  const { dir, db } = copy(t);
  db.close();
  const { code, report } = await verify(dir, ['--key', verifierKey]);
  assert.equal(code, 0, JSON.stringify(report.problems));
  assert.equal(report.ok, true);
  assert.equal(report.entries, SIZE);
  assert.equal(report.checkpoints, 2);
  assert.equal(report.signedSize, SIZE);
  assert.equal(report.keySource, 'trusted');
});

for (const c of CASES) {
  test(`tampering: ${c.name} → ${c.firstBadIndex === null ? 'checkpoint refused' : `index ${c.firstBadIndex}`}`, async (t) => {
    const { dir, db } = copy(t);
    c.tamper(db);
    db.close();
    const { code, report } = await verify(dir, ['--key', verifierKey, ...(c.args?.(dir) ?? [])]);
    assert.equal(code, 1, 'exit code 1');
    assert.equal(report.ok, false);
    assert.equal(report.firstBadIndex, c.firstBadIndex, JSON.stringify(report.problems));
    assert.deepEqual([...new Set(report.problems.map((p) => p.kind))], c.kinds);
  });
}

test('without a pinned key the log’s own key is used, which a key substitution fools: the report says so', async (t) => {
  const { dir, db } = copy(t);
  CASES.find((c) => c.name.startsWith('history rewritten'))!.tamper(db);
  db.close();
  const { code, report } = await verify(dir);
  assert.equal(code, 0);
  assert.equal(report.keySource, 'log');
  assert.notEqual(report.verifierKeys[0], verifierKey);
});

test('through the real command: a deleted row names index 57 and exits 1', (t) => {
  const { dir, db } = copy(t);
  db.exec('DELETE FROM entries WHERE idx = 57');
  db.close();
  const bin = join(import.meta.dirname, '../../bin/rampart.js');
  const run = spawnSync(process.execPath, [bin, 'audit', 'verify', '--data', dir, '--key', verifierKey], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stdout, /TAMPERED: first bad index 57\n/);
  assert.match(run.stdout, /index 57: entry missing \(deleted row\)/);
  const clean = spawnSync(process.execPath, [bin, 'audit', 'verify', '--data', pristine, '--key', verifierKey], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(clean.status, 0, clean.stderr);
  assert.match(clean.stdout, /verified 100 entries and 2 signed checkpoints/);
});
