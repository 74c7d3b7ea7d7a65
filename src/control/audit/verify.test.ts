import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { type TestContext, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { kekFrom, kekText, ORIGIN, sampleEvent, scratchDir } from '../../../test/audit/helpers.ts';
import { newEventId } from '../../core/audit-event.ts';
import { openAuditLog } from './log.ts';
import { Frontier, leafHash } from './merkle.ts';
import { type VerifyOptions, type VerifyReport, verifyLogFile, verifySplit } from './verify.ts';

// The verifier on two threads (a worker takes the leaves [0, split)) must report exactly what one pass
// in index order reports: every check, and the first bad index, on both sides of the cut and across it.

/** Builds a log of `size` events with a signed checkpoint at each of `checkpoints` (sizes ≤ size). */
async function buildLog(dir: string, size: number, checkpoints: readonly number[], kek = kekText()): Promise<string> {
  const path = join(dir, 'audit.db');
  const log = openAuditLog({ path, origin: ORIGIN, kek: kekFrom(kek), checkpointIntervalMs: 0 });
  let appended = 0;
  for (const at of [...new Set([...checkpoints, size])].sort((a, b) => a - b)) {
    if (at > appended) await log.append(Array.from({ length: at - appended }, (_, i) => sampleEvent(appended + i)));
    appended = at;
    if (checkpoints.includes(at)) await log.checkpoint();
  }
  await log.close();
  return path;
}

/** Verifies on two threads and on one; the reports must agree but for the thread count. */
function verifyBoth(path: string, options: VerifyOptions = {}): { split: VerifyReport; single: VerifyReport } {
  const split = verifyLogFile(path, { ...options, parallelFrom: 0 });
  const single = verifyLogFile(path, { ...options, parallelFrom: Number.POSITIVE_INFINITY });
  const { threads: _a, ...splitRest } = split;
  const { threads: _b, ...singleRest } = single;
  assert.deepEqual(splitRest, singleRest, 'two threads report what one pass reports');
  assert.equal(single.threads, 1);
  return { split, single };
}

test('verifySplit: whole blocks of 2^top leaves (top ≥ 2) for the worker, about half the log', () => {
  const table: [entries: number, top: number, split: number][] = [
    [0, 2, 0],
    [1, 2, 0],
    [7, 2, 0],
    [8, 2, 4],
    [100, 2, 48],
    [128, 2, 64],
    [1_000_000, 14, 491_520],
    [2 ** 20, 15, 2 ** 19],
  ];
  for (const [entries, top, split] of table) assert.deepEqual(verifySplit(entries), { top, split }, String(entries));
});

for (const size of [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100]) {
  test(`a log of ${size} entries verifies on two threads as on one, checkpoints on both sides of the cut`, async (t) => {
    const { split } = verifySplit(size);
    const checkpoints = [...new Set([0, Math.floor(size / 3), split - 1, split, split + 1, size])].filter(
      (c) => c >= 0 && c <= size,
    );
    const path = await buildLog(scratchDir(t), size, checkpoints);
    const { split: report } = verifyBoth(path);
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.equal(report.entries, size);
    assert.equal(report.checkpoints, checkpoints.length);
    assert.equal(report.signedSize, size);
    assert.equal(report.threads, split > 0 ? 2 : 1, 'a worker takes the first range whenever there is one');
  });
}

// The tampered log: 100 entries, cut at 48 in blocks of 4 (levels 1–2 are verified in each range, 3–6
// from the block roots), checkpoints at 20 and 47 (worker), 48 (the cut), 49 and 100 (verifier).
const SIZE = 100;
const CHECKPOINTS = [20, 47, 48, 49, 100];
let pristine: Promise<string> | null = null;

async function tamperedCopy(t: TestContext): Promise<{ path: string; exec: Exec }> {
  pristine ??= buildLog(scratchDir({ after: (fn) => process.on('exit', () => fn()) }), SIZE, CHECKPOINTS);
  const path = join(scratchDir(t), 'audit.db');
  copyFileSync(await pristine, path);
  const exec: Exec = (sql, params = []) => {
    const db = new DatabaseSync(path);
    try {
      return db.prepare(sql).all(...params) as Record<string, unknown>[];
    } finally {
      db.close();
    }
  };
  return { path, exec };
}

type Exec = (sql: string, params?: SQLInputValue[]) => Record<string, unknown>[];

function flipByte(exec: Exec, idx: number, fixHash: boolean): void {
  const [row] = exec('SELECT entry FROM entries WHERE idx = ?', [idx]);
  const bytes = Buffer.from(row!.entry as Uint8Array);
  bytes[bytes.indexOf('"action":"') + 11]! ^= 0x01;
  exec('UPDATE entries SET entry = ? WHERE idx = ?', [bytes, idx]);
  if (fixHash) exec('UPDATE entries SET leaf_hash = ? WHERE idx = ?', [leafHash(bytes), idx]);
}

/** Recomputes every leaf hash column and the whole tree from the entries. */
function rewriteTree(exec: Exec): void {
  exec('DELETE FROM tree_nodes');
  const frontier = Frontier.empty();
  for (const row of exec('SELECT idx, entry FROM entries ORDER BY idx')) {
    const leaf = leafHash(row.entry as Uint8Array);
    exec('UPDATE entries SET leaf_hash = ? WHERE idx = ?', [leaf, Number(row.idx)]);
    for (const node of frontier.push(leaf)) {
      exec('INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)', [node.level, node.index, node.hash]);
    }
  }
}

function swapRows(exec: Exec, a: number, b: number): void {
  const rows = exec('SELECT idx, event_id, entry, leaf_hash FROM entries WHERE idx IN (?, ?) ORDER BY idx', [a, b]);
  exec('DELETE FROM entries WHERE idx IN (?, ?)', [a, b]);
  for (const [row, idx] of [
    [rows[1]!, a],
    [rows[0]!, b],
  ] as const) {
    exec('INSERT INTO entries (idx, event_id, entry, leaf_hash) VALUES (?, ?, ?, ?)', [
      idx,
      row.event_id as string,
      row.entry as Uint8Array,
      row.leaf_hash as Uint8Array,
    ]);
  }
}

const setNode = (exec: Exec, level: number, idx: number) =>
  exec('UPDATE tree_nodes SET hash = ? WHERE level = ? AND idx = ?', [Buffer.alloc(32, 7), level, idx]);

interface Case {
  name: string;
  tamper: (exec: Exec) => unknown;
  firstBadIndex: number;
  kinds: string[];
}

const CASES: Case[] = [
  ...[0, 17, 47, 48, 99].map((i) => ({
    name: `entry ${i} changed`,
    tamper: (exec: Exec) => flipByte(exec, i, false),
    firstBadIndex: i,
    kinds: ['leaf_hash'],
  })),
  ...[17, 47, 48].map((i) => ({
    name: `entry ${i} changed with its leaf hash column`,
    tamper: (exec: Exec) => flipByte(exec, i, true),
    firstBadIndex: i,
    kinds: ['tree_node'],
  })),
  ...[0, 47, 48].map((i) => ({
    name: `row ${i} deleted`,
    tamper: (exec: Exec) => exec('DELETE FROM entries WHERE idx = ?', [i]),
    firstBadIndex: i,
    kinds: ['missing_entry'],
  })),
  {
    name: 'the last row deleted (entries only)',
    tamper: (exec) => exec('DELETE FROM entries WHERE idx = 99'),
    firstBadIndex: 99,
    kinds: ['extra_node', 'truncated'],
  },
  ...[47, 48].map((i) => ({
    name: `event id of row ${i} changed`,
    tamper: (exec: Exec) => exec('UPDATE entries SET event_id = ? WHERE idx = ?', [newEventId(), i]),
    firstBadIndex: i,
    kinds: ['event'],
  })),
  {
    name: 'rows 47 and 48 swapped across the cut',
    tamper: (exec) => swapRows(exec, 47, 48),
    firstBadIndex: 47,
    kinds: ['tree_node'],
  },
  // Stored nodes: [level, index at that level, first leaf under it].
  ...(
    [
      [1, 23, 46], // in the worker's range
      [2, 11, 44], // a block root of the worker's
      [3, 5, 40], // above the blocks, left of the cut
      [4, 2, 32],
      [4, 3, 48], // above the blocks, right of the cut
      [6, 0, 0], // over the cut
      [1, 24, 48], // in the verifier's range
    ] as const
  ).map(([level, idx, first]) => ({
    name: `tree node (${level}, ${idx}) altered`,
    tamper: (exec: Exec) => setNode(exec, level, idx),
    firstBadIndex: first,
    kinds: ['tree_node'],
  })),
  {
    name: 'tree node (5, 1) deleted',
    tamper: (exec) => exec('DELETE FROM tree_nodes WHERE level = 5 AND idx = 1'),
    firstBadIndex: 32,
    kinds: ['tree_node'],
  },
  // Everything recomputed: the first checkpoint past the change refuses it, named by its range.
  ...(
    [
      [30, 20], // checkpoint 47 (worker's range) after 20
      [47, 47], // checkpoint 48, at the cut
      [48, 48], // checkpoint 49, past the cut
      [57, 49], // checkpoint 100
    ] as const
  ).map(([i, from]) => ({
    name: `entry ${i} changed and the whole tree recomputed`,
    tamper: (exec: Exec) => {
      flipByte(exec, i, true);
      rewriteTree(exec);
    },
    firstBadIndex: from,
    kinds: ['checkpoint_root'],
  })),
];

for (const c of CASES) {
  test(`two threads name the same first bad index: ${c.name} → ${c.firstBadIndex}`, async (t) => {
    const { path, exec } = await tamperedCopy(t);
    c.tamper(exec);
    const { split } = verifyBoth(path);
    assert.equal(split.ok, false);
    assert.equal(split.firstBadIndex, c.firstBadIndex, JSON.stringify(split.problems));
    assert.deepEqual([...new Set(split.problems.map((p) => p.kind))], c.kinds);
    assert.equal(split.threads, 2);
  });
}

test('an untouched copy verifies on two threads; below parallelFrom one thread verifies alone', async (t) => {
  const { path } = await tamperedCopy(t);
  const { split } = verifyBoth(path);
  assert.equal(split.ok, true, JSON.stringify(split.problems));
  assert.equal(split.threads, 2);
  assert.equal(split.signedSize, SIZE);
  assert.equal(verifyLogFile(path).threads, 1, 'the default threshold keeps a small log on one thread');
});

test('full event validation runs in the worker too: bytes that keep their id but are no longer canonical', async (t) => {
  const { path, exec } = await tamperedCopy(t);
  const [row] = exec('SELECT entry FROM entries WHERE idx = 17');
  const bytes = Buffer.concat([row!.entry as Uint8Array, Buffer.from(' ')]);
  exec('UPDATE entries SET entry = ? WHERE idx = 17', [bytes]);
  rewriteTree(exec);
  const full = verifyBoth(path, { checkEvents: 'full' }).split;
  assert.equal(full.firstBadIndex, 17, JSON.stringify(full.problems));
  assert.deepEqual(
    full.problems.map((p) => p.kind),
    ['event'],
  );
  assert.equal(full.threads, 2);
  // The id alone still matches: only the signed root of the next checkpoint (20, the first) refuses it.
  const idOnly = verifyBoth(path).split;
  assert.equal(idOnly.firstBadIndex, 0, JSON.stringify(idOnly.problems));
  assert.deepEqual(
    idOnly.problems.map((p) => p.kind),
    ['checkpoint_root'],
  );
});

// A longer log, so that the entries (runs of 1,024) and the level-0 nodes (runs of 4,096) are read in
// several runs: damage at a run's edge, and a run that cannot be taken whole (read row by row instead).
const LONG = 5_000;
let longPristine: Promise<string> | null = null;

async function longCopy(t: TestContext): Promise<{ path: string; exec: Exec }> {
  longPristine ??= buildLog(scratchDir({ after: (fn) => process.on('exit', () => fn()) }), LONG, [1_024, 2_432, LONG]);
  const path = join(scratchDir(t), 'audit.db');
  copyFileSync(await longPristine, path);
  const exec: Exec = (sql, params = []) => {
    const db = new DatabaseSync(path);
    try {
      return db.prepare(sql).all(...params) as Record<string, unknown>[];
    } finally {
      db.close();
    }
  };
  return { path, exec };
}

const LONG_CASES: Case[] = [
  {
    name: 'entry 1023 changed',
    tamper: (exec) => flipByte(exec, 1_023, false),
    firstBadIndex: 1_023,
    kinds: ['leaf_hash'],
  },
  {
    name: 'entry 1024 changed',
    tamper: (exec) => flipByte(exec, 1_024, false),
    firstBadIndex: 1_024,
    kinds: ['leaf_hash'],
  },
  {
    name: 'row 1024 deleted',
    tamper: (exec) => exec('DELETE FROM entries WHERE idx = 1024'),
    firstBadIndex: 1_024,
    kinds: ['missing_entry'],
  },
  {
    name: 'rows 2047–2050 deleted',
    tamper: (exec) => exec('DELETE FROM entries WHERE idx BETWEEN 2047 AND 2050'),
    firstBadIndex: 2_047,
    kinds: ['missing_entry'],
  },
  {
    name: 'an event id with a space in it (the run is read row by row)',
    tamper: (exec) => exec("UPDATE entries SET event_id = 'a b' WHERE idx = 3000"),
    firstBadIndex: 3_000,
    kinds: ['event'],
  },
  {
    name: 'entry 4095 changed with its leaf hash column',
    tamper: (exec) => flipByte(exec, 4_095, true),
    firstBadIndex: 4_095,
    kinds: ['tree_node'],
  },
  {
    name: 'level-0 node 4096 altered',
    tamper: (exec) => setNode(exec, 0, 4_096),
    firstBadIndex: 4_096,
    kinds: ['tree_node'],
  },
  {
    name: 'level-0 node 4097 deleted',
    tamper: (exec) => exec('DELETE FROM tree_nodes WHERE level = 0 AND idx = 4097'),
    firstBadIndex: 4_097,
    kinds: ['tree_node'],
  },
];

test('a longer log verifies on two threads as on one', async (t) => {
  const { path } = await longCopy(t);
  const { split } = verifyBoth(path);
  assert.equal(split.ok, true, JSON.stringify(split.problems));
  assert.equal(split.entries, LONG);
  assert.equal(split.threads, 2);
});

for (const c of LONG_CASES) {
  test(`across runs, two threads and one name the same first bad index: ${c.name} → ${c.firstBadIndex}`, async (t) => {
    const { path, exec } = await longCopy(t);
    c.tamper(exec);
    const { split } = verifyBoth(path);
    assert.equal(split.firstBadIndex, c.firstBadIndex, JSON.stringify(split.problems));
    assert.deepEqual([...new Set(split.problems.map((p) => p.kind))], c.kinds);
    assert.equal(split.threads, 2);
  });
}

test('a log appended by another process while it is verified: each verification sees one snapshot', async (t) => {
  const dir = scratchDir(t);
  const kek = kekText();
  const path = await buildLog(dir, 300, [100, 300], kek);
  // The writer appends (and signs a checkpoint now and then) until it is killed.
  const writer = join(dir, 'writer.ts');
  const url = (file: string) => pathToFileURL(join(import.meta.dirname, file)).href;
  writeFileSync(
    writer,
    `import { openAuditLog } from '${url('log.ts')}';
     import { kekFrom, ORIGIN, sampleEvent } from '${url('../../../test/audit/helpers.ts')}';
     const log = openAuditLog({ path: process.argv[2], origin: ORIGIN, kek: kekFrom(process.argv[3]), checkpointIntervalMs: 0 });
     process.stdout.write('open\\n');
     for (let n = 300; ; n += 7) {
       await log.append(Array.from({ length: 7 }, (_, i) => sampleEvent(n + i)));
       if (n % 5 === 0) await log.checkpoint();
     }`,
  );
  const child = spawn(process.execPath, ['--conditions=rampart-source', writer, path, kek], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => child.kill());
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`writer exited (${code})`)));
  });
  let sizes = 0;
  let last = 0;
  for (let i = 0; i < 20; i++) {
    const report = verifyLogFile(path, { parallelFrom: 0 });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
    assert.ok(report.entries >= last, 'the log only grows');
    if (report.entries > last) sizes++;
    last = report.entries;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(sizes >= 2, 'the log grew while it was verified');
});
