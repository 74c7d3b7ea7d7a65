/**
 * Tampering with the stored log is detected by `rampart audit verify`, naming the first bad index
 * (issue 6 "Must show"), run unchanged against SQLite (tamper-sqlite.test.ts) and PostgreSQL
 * (tamper-postgres.test.ts). One log of 100 events with signed checkpoints at sizes 40 and 100 is built
 * once per backend; each row of the table edits a copy of it the way someone with write access to the
 * database could (raw SQL, the same statements on both), then runs the verifier through the CLI
 * (in-process, JSON report) with the pinned key.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { runAudit } from '../../src/cli/audit.ts';
import { signCheckpoint } from '../../src/control/audit/checkpoint.ts';
import { Frontier, leafHash } from '../../src/control/audit/merkle.ts';
import { ed25519KeyId, ed25519Signer, rawEd25519PublicKey } from '../../src/control/audit/note.ts';
import type { VerifyReport } from '../../src/control/audit/verify.ts';
import { type AuditEvent, canonicalizeAuditEvent, newEventId } from '../../src/core/audit-event.ts';
import { Capture } from '../helpers/capture.ts';
import { ORIGIN, sampleEvent } from './helpers.ts';

/** The log every case starts from. */
export interface Pristine {
  verifierKey: string;
  lastCheckpointNote: string;
}

/** A copy of the pristine log to tamper with. */
export interface TamperCopy {
  /** Raw SQL as an attacker with database access runs it; `?` placeholders. */
  exec(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Where `rampart audit verify` finds this copy (`--data <dir>` or `--postgres <url> --schema <s>`). */
  args: string[];
  /** A scratch directory for files the case writes. */
  dir: string;
}

/** One store under test. */
export interface TamperBackend {
  /**
   * A copy of the pristine log, which `build` makes once (by appending `build`'s events with the real
   * log); null when the store is unavailable (the test was skipped).
   */
  copy(
    t: TestContext,
    build: (append: AppendTo) => Promise<Pristine>,
  ): Promise<{ copy: TamperCopy; pristine: Pristine } | null>;
}

/** What `build` gets: the real log, on this store, opened by the backend. */
export interface AppendTo {
  append(events: AuditEvent[]): Promise<unknown>;
  checkpoint(): Promise<{ note: string }> | { note: string };
  readonly verifierKey: string;
}

const SIZE = 100;

/** The pristine log: 40 events one by one, a checkpoint, 60 more in one call, another checkpoint. */
async function build(log: AppendTo): Promise<Pristine> {
  for (let i = 0; i < 40; i++) await log.append([sampleEvent(i)]);
  await log.checkpoint();
  await log.append(Array.from({ length: SIZE - 40 }, (_, i) => sampleEvent(40 + i)));
  const lastCheckpointNote = (await log.checkpoint()).note;
  return { verifierKey: log.verifierKey, lastCheckpointNote };
}

async function verify(copy: TamperCopy, extra: string[] = []): Promise<{ code: number; report: VerifyReport }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runAudit(['verify', ...copy.args, '--json', ...extra], { stdout, stderr, cwd: copy.dir });
  assert.equal(stderr.text, '');
  return { code, report: JSON.parse(stdout.text) as VerifyReport };
}

type Row = { idx: number; event_id: string; entry: Uint8Array; leaf_hash: Uint8Array };
type Db = TamperCopy;

async function rowAt(db: Db, idx: number): Promise<Row> {
  const [row] = await db.exec('SELECT idx, event_id, entry, leaf_hash FROM entries WHERE idx = ?', [idx]);
  return { ...(row as Row), idx: Number(row!.idx) };
}

async function insertRow(db: Db, r: Row): Promise<void> {
  await db.exec('INSERT INTO entries (idx, event_id, entry, leaf_hash) VALUES (?, ?, ?, ?)', [
    r.idx,
    r.event_id,
    Buffer.from(r.entry),
    Buffer.from(r.leaf_hash),
  ]);
}

/** Flips one bit of one byte inside entry `idx` (a letter of its action: the JSON stays valid). */
async function flipByte(db: Db, idx: number, fixHash: boolean): Promise<void> {
  const row = await rowAt(db, idx);
  const bytes = Buffer.from(row.entry);
  const at = bytes.indexOf('"action":"') + 11;
  bytes[at]! ^= 0x01;
  await db.exec('UPDATE entries SET entry = ? WHERE idx = ?', [bytes, idx]);
  if (fixHash) await db.exec('UPDATE entries SET leaf_hash = ? WHERE idx = ?', [leafHash(bytes), idx]);
}

/** Moves rows with idx ≥ from by `delta` (through a free range: idx is the primary key). */
async function shift(db: Db, from: number, delta: number): Promise<void> {
  await db.exec('UPDATE entries SET idx = idx + 1000000 WHERE idx >= ?', [from]);
  await db.exec('UPDATE entries SET idx = idx - 1000000 + ? WHERE idx >= 1000000', [delta]);
}

/** Rewrites the whole tree (and leaf hash columns) from the entries: an attacker who recomputes everything. */
async function rewriteTree(db: Db): Promise<Frontier> {
  await db.exec('DELETE FROM tree_nodes');
  const frontier = Frontier.empty();
  for (const row of await db.exec('SELECT idx, entry FROM entries ORDER BY idx')) {
    const leaf = leafHash(row.entry as Uint8Array);
    await db.exec('UPDATE entries SET leaf_hash = ? WHERE idx = ?', [leaf, Number(row.idx)]);
    for (const node of frontier.push(leaf)) {
      await db.exec('INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)', [node.level, node.index, node.hash]);
    }
  }
  return frontier;
}

async function swapRows(db: Db, a: number, b: number): Promise<void> {
  const ra = await rowAt(db, a);
  const rb = await rowAt(db, b);
  await db.exec('DELETE FROM entries WHERE idx IN (?, ?)', [a, b]);
  await insertRow(db, { ...rb, idx: a });
  await insertRow(db, { ...ra, idx: b });
}

function forgedRow(idx: number): Row {
  const bytes = canonicalizeAuditEvent(sampleEvent(1_000 + idx));
  return { idx, event_id: JSON.parse(bytes.toString()).id, entry: bytes, leaf_hash: leafHash(bytes) };
}

/** Deletes the entries from `from` on and every tree node covering any of them. */
async function truncate(db: Db, from: number, nodesToo: boolean): Promise<void> {
  await db.exec('DELETE FROM entries WHERE idx >= ?', [from]);
  if (nodesToo) await db.exec('DELETE FROM tree_nodes WHERE (idx + 1) * (1 << level) > ?', [from]);
}

interface Case {
  name: string;
  tamper(db: Db, pristine: Pristine): Promise<unknown>;
  firstBadIndex: number | null;
  kinds: string[];
  args?: (dir: string, pristine: Pristine) => string[];
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
    tamper: async (db) => {
      await flipByte(db, 57, true);
      await rewriteTree(db);
    },
    firstBadIndex: 40,
    kinds: ['checkpoint_root'],
  },
  {
    name: 'the event id column changed',
    tamper: (db) => db.exec('UPDATE entries SET event_id = ? WHERE idx = 57', [newEventId()]),
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
    tamper: async (db) => {
      await db.exec('DELETE FROM entries WHERE idx = 57');
      await shift(db, 58, -1);
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
    tamper: async (db) => {
      await shift(db, 57, 1);
      await insertRow(db, forgedRow(57));
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
    tamper: (db) => truncate(db, 90, true),
    firstBadIndex: 90,
    kinds: ['truncated'],
  },
  {
    name: 'the tail truncated (entries only)',
    tamper: (db) => truncate(db, 90, false),
    firstBadIndex: 90,
    kinds: ['extra_node', 'truncated'],
  },
  {
    name: 'a checkpoint signature altered',
    tamper: async (db) => {
      const [row] = await db.exec('SELECT note FROM checkpoints WHERE size = 40');
      const note = String(row!.note);
      const i = note.lastIndexOf(' ') + 10;
      const altered = note.slice(0, i) + (note[i] === 'A' ? 'B' : 'A') + note.slice(i + 1);
      await db.exec('UPDATE checkpoints SET note = ? WHERE size = 40', [altered]);
    },
    firstBadIndex: null,
    kinds: ['checkpoint_signature'],
  },
  {
    name: 'a checkpoint root column altered',
    tamper: (db) => db.exec('UPDATE checkpoints SET root = ? WHERE size = 100', [Buffer.alloc(32)]),
    firstBadIndex: null,
    kinds: ['checkpoint_row'],
  },
  {
    name: 'history rewritten and re-signed with a substituted key: the pinned key refuses every checkpoint',
    tamper: async (db) => {
      await flipByte(db, 57, true);
      const frontier = await rewriteTree(db);
      const { privateKey } = generateKeyPairSync('ed25519');
      const signer = ed25519Signer(ORIGIN, privateKey);
      const raw = rawEd25519PublicKey(privateKey);
      await db.exec('UPDATE signing_keys SET public_key = ?, key_id = ?', [
        raw,
        ed25519KeyId(ORIGIN, raw).toString('hex'),
      ]);
      await db.exec('DELETE FROM checkpoints');
      const note = signCheckpoint({ origin: ORIGIN, size: SIZE, root: frontier.root() }, signer);
      await db.exec('INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, 0)', [
        SIZE,
        frontier.root(),
        note,
      ]);
    },
    firstBadIndex: null,
    kinds: ['checkpoint_signature'],
  },
  {
    name: 'checkpoints deleted and the tail truncated: caught by a checkpoint kept outside the log',
    tamper: async (db) => {
      await db.exec('DELETE FROM checkpoints');
      await truncate(db, 90, true);
    },
    args: (dir, pristine) => {
      writeFileSync(join(dir, 'kept.checkpoint'), pristine.lastCheckpointNote);
      return ['--checkpoint', join(dir, 'kept.checkpoint')];
    },
    firstBadIndex: 90,
    kinds: ['truncated'],
  },
];

/** Registers the suite's tests for one store. */
export function tamperSuite(kind: 'sqlite' | 'postgres', backend: TamperBackend): void {
  const setup = (t: TestContext) => backend.copy(t, build);

  test(`${kind}: the untouched log verifies (exit 0), every entry and both checkpoints`, async (t) => {
    const ready = await setup(t);
    if (ready === null) return;
    const { code, report } = await verify(ready.copy, ['--key', ready.pristine.verifierKey]);
    assert.equal(code, 0, JSON.stringify(report.problems));
    assert.equal(report.ok, true);
    assert.equal(report.entries, SIZE);
    assert.equal(report.checkpoints, 2);
    assert.equal(report.signedSize, SIZE);
    assert.equal(report.keySource, 'trusted');
  });

  for (const c of CASES) {
    test(`${kind}: tampering: ${c.name} → ${c.firstBadIndex === null ? 'checkpoint refused' : `index ${c.firstBadIndex}`}`, async (t) => {
      const ready = await setup(t);
      if (ready === null) return;
      const { copy, pristine } = ready;
      await c.tamper(copy, pristine);
      const { code, report } = await verify(copy, [
        '--key',
        pristine.verifierKey,
        ...(c.args?.(copy.dir, pristine) ?? []),
      ]);
      assert.equal(code, 1, 'exit code 1');
      assert.equal(report.ok, false);
      assert.equal(report.firstBadIndex, c.firstBadIndex, JSON.stringify(report.problems));
      assert.deepEqual([...new Set(report.problems.map((p) => p.kind))], c.kinds);
    });
  }

  test(`${kind}: without a pinned key the log’s own key is used, which a key substitution fools: the report says so`, async (t) => {
    const ready = await setup(t);
    if (ready === null) return;
    await CASES.find((c) => c.name.startsWith('history rewritten'))!.tamper(ready.copy, ready.pristine);
    const { code, report } = await verify(ready.copy);
    assert.equal(code, 0);
    assert.equal(report.keySource, 'log');
    assert.notEqual(report.verifierKeys[0], ready.pristine.verifierKey);
  });

  test(`${kind}: through the real command: a deleted row names index 57 and exits 1`, async (t) => {
    const clean = await setup(t);
    const ready = await setup(t);
    if (clean === null || ready === null) return;
    await ready.copy.exec('DELETE FROM entries WHERE idx = 57');
    const bin = join(import.meta.dirname, '../../bin/rampart.js');
    const key = ready.pristine.verifierKey;
    const run = spawnSync(process.execPath, [bin, 'audit', 'verify', ...ready.copy.args, '--key', key], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stdout, /TAMPERED: first bad index 57\n/);
    assert.match(run.stdout, /index 57: entry missing \(deleted row\)/);
    const untouched = spawnSync(process.execPath, [bin, 'audit', 'verify', ...clean.copy.args, '--key', key], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(untouched.status, 0, untouched.stderr);
    assert.match(untouched.stdout, /verified 100 entries and 2 signed checkpoints/);
  });
}
