import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { parseAuditEntry } from '../../core/audit-event.ts';
import { openCheckpoint } from './checkpoint.ts';
import { AuditStore, type CheckpointRow, openAuditDatabase } from './database.ts';
import { consistencyProof, EMPTY_ROOT, Frontier, leafHash, verifyConsistency } from './merkle.ts';
import { ed25519Verifier, formatVerifierKey, type NoteVerifier, parseVerifierKey } from './note.ts';

/**
 * The verifier behind `rampart audit verify` (issue 6 "Audit log" §4). It trusts nothing stored but
 * what a trusted key signed:
 *
 * 1. every checkpoint's signature (C2SP signed note, Ed25519) against the trusted verifier keys, its
 *    origin, and that its row's size and root columns say what the signed text says;
 * 2. every entry in index order, with no gap: the leaf hash recomputed from the stored bytes equals the
 *    row's leaf hash and the tree's level-0 node; the event id inside the bytes equals the row's;
 * 3. the tree recomputed from those leaves equals every stored node (so proofs served from the store
 *    are right), with no stored node beyond the entries;
 * 4. the recomputed root at each checkpoint's size equals the signed root, and each checkpoint is
 *    consistent with the one before (an RFC 9162 §2.1.4 proof from the verified nodes, verified);
 * 5. no checkpoint (stored or given from outside) is larger than the log: a truncated tail.
 *
 * It names the first bad index. A change to one entry row, its hash column included, is pinned to its
 * index by the separate tree; a change rewritten consistently through the whole tree (every hash
 * recomputed) is caught by the first checkpoint whose signed root no longer matches, and named by the
 * range that checkpoint added. Entries after the last checkpoint are unsigned: the report counts them.
 */

/** What went wrong, by kind. */
export const VERIFY_PROBLEMS = {
  /** The database has no origin or is not an audit log. */
  meta: 'meta',
  /** A checkpoint's signature does not verify with a trusted key, or its text is malformed. */
  checkpointSignature: 'checkpoint_signature',
  /** A checkpoint row's size/root columns differ from its signed text. */
  checkpointRow: 'checkpoint_row',
  /** A checkpoint given by the caller does not verify or names another origin. */
  trustedCheckpoint: 'trusted_checkpoint',
  /** An index is missing from the entries (deleted row). */
  missingEntry: 'missing_entry',
  /** The leaf hash of the stored bytes differs from the row's leaf hash (modified bytes). */
  leafHash: 'leaf_hash',
  /** The bytes are not a canonical event, or the event id in them differs from the row's. */
  event: 'event',
  /** A stored tree node differs from the tree recomputed from the entries, or is missing. */
  treeNode: 'tree_node',
  /** Stored tree nodes beyond the entries (entry rows deleted from the tail). */
  extraNode: 'extra_node',
  /** The recomputed root at a checkpoint's size differs from the signed root. */
  checkpointRoot: 'checkpoint_root',
  /** A checkpoint is larger than the log: entries it signed are gone. */
  truncated: 'truncated',
  /** A consistency proof between two checkpoints does not verify. */
  inconsistent: 'inconsistent',
} as const;
export type VerifyProblemKind = (typeof VERIFY_PROBLEMS)[keyof typeof VERIFY_PROBLEMS];

/** One finding. `index` is the first leaf index it concerns (null for checkpoint-only problems). */
export interface VerifyProblem {
  kind: VerifyProblemKind;
  index: number | null;
  checkpointSize?: number;
  /** For root mismatches: the entries the failing checkpoint added, [from, to). */
  range?: [number, number];
  level?: number;
}

/** Options of {@link verifyLog}. */
export interface VerifyOptions {
  /**
   * Trusted verifier keys (`<name>+<key id>+<base64>`). Without any, the keys stored in the log are
   * used: that detects accidents and edits by someone who cannot re-sign, not someone who replaced the
   * key too. `keySource` in the report says which.
   */
  verifierKeys?: readonly string[];
  /** Signed checkpoints kept outside the log (a witness, an operator's copy): the log must contain them. */
  trustedCheckpoints?: readonly string[];
  /** `id` (default): the event id inside each entry must equal the row's; `full`: full event validation. */
  checkEvents?: 'id' | 'full';
  /** Called every `progressEvery` entries (CLI progress). */
  onProgress?: (verified: number) => void;
  progressEvery?: number;
}

/** The verdict. */
export interface VerifyReport {
  ok: boolean;
  origin: string | null;
  /** Entries verified (all of them when ok). */
  entries: number;
  /** Signed checkpoints whose signature verified. */
  checkpoints: number;
  /** The largest verified checkpoint size whose root matched. */
  signedSize: number;
  /** Entries after the last verified checkpoint: present and consistent, but not yet signed. */
  unsignedEntries: number;
  /** The smallest index any problem names; null when none names one. */
  firstBadIndex: number | null;
  problems: VerifyProblem[];
  keySource: 'trusted' | 'log';
  verifierKeys: string[];
}

interface NodeCursor {
  next(): { idx: number; hash: Uint8Array } | undefined;
}

/** Opens the database read-only and verifies it. */
export function verifyLogFile(path: string, options: VerifyOptions = {}): VerifyReport {
  const db = openAuditDatabase(path, { readOnly: true });
  try {
    return verifyLog(db, options);
  } finally {
    db.close();
  }
}

/** Verifies an open audit database (read-only use: nothing is written). */
export function verifyLog(db: DatabaseSync, options: VerifyOptions = {}): VerifyReport {
  const store = new AuditStore(db);
  const problems: VerifyProblem[] = [];
  const origin = store.meta('origin');
  if (origin === null) problems.push({ kind: VERIFY_PROBLEMS.meta, index: null });

  let verifiers: NoteVerifier[];
  let keySource: 'trusted' | 'log';
  let verifierKeys: string[];
  if (options.verifierKeys !== undefined && options.verifierKeys.length > 0) {
    verifiers = options.verifierKeys.map((k) => parseVerifierKey(k));
    verifierKeys = [...options.verifierKeys];
    keySource = 'trusted';
  } else {
    const keys = store.signingKeys();
    verifiers = keys.map((k) => ed25519Verifier(k.name, k.publicKey));
    verifierKeys = keys.map((k) => formatVerifierKey(k.name, k.publicKey));
    keySource = 'log';
  }

  // 1. Checkpoints: signature, origin, row columns.
  const signed: CheckpointRow[] = [];
  for (const row of store.checkpoints()) {
    let checkpoint: ReturnType<typeof openCheckpoint>;
    try {
      checkpoint = openCheckpoint(row.note, verifiers, origin ?? undefined);
    } catch {
      problems.push({ kind: VERIFY_PROBLEMS.checkpointSignature, index: null, checkpointSize: row.size });
      continue;
    }
    if (checkpoint.size !== row.size || !checkpoint.root.equals(row.root)) {
      problems.push({ kind: VERIFY_PROBLEMS.checkpointRow, index: null, checkpointSize: row.size });
      continue;
    }
    signed.push(row);
  }
  for (const note of options.trustedCheckpoints ?? []) {
    try {
      const checkpoint = openCheckpoint(note, verifiers, origin ?? undefined);
      if (!signed.some((c) => c.size === checkpoint.size && c.root.equals(checkpoint.root))) {
        signed.push({ size: checkpoint.size, root: checkpoint.root, note, createdAt: 0 });
      }
    } catch {
      problems.push({ kind: VERIFY_PROBLEMS.trustedCheckpoint, index: null });
    }
  }
  signed.sort((a, b) => a.size - b.size);

  // 2–4. Entries, tree and roots, in one pass in index order.
  const cursors: NodeCursor[] = [];
  const statements: StatementSync[] = [];
  const cursor = (level: number): NodeCursor => {
    let c = cursors[level];
    if (c === undefined) {
      const statement = db.prepare('SELECT idx, hash FROM tree_nodes WHERE level = ? ORDER BY idx');
      statements[level] = statement;
      const iterator = statement.iterate(level) as Iterator<{ idx: number; hash: Uint8Array }>;
      c = {
        next: () => {
          const step = iterator.next();
          return step.done ? undefined : { idx: Number(step.value.idx), hash: step.value.hash };
        },
      };
      cursors[level] = c;
    }
    return c;
  };

  const frontier = Frontier.empty();
  let expected = 0;
  let stopped = false;
  let nextCheckpoint = 0;
  let verifiedSize = 0;
  const progressEvery = options.progressEvery ?? 100_000;
  const fullEvents = options.checkEvents === 'full';
  const stop = (problem: VerifyProblem) => {
    problems.push(problem);
    stopped = true;
  };

  // Checkpoints of the empty tree sign SHA-256() (RFC 9162 §2.1.1).
  while (nextCheckpoint < signed.length && signed[nextCheckpoint]!.size === 0) {
    if (!signed[nextCheckpoint]!.root.equals(EMPTY_ROOT)) {
      problems.push({ kind: VERIFY_PROBLEMS.checkpointRoot, index: 0, checkpointSize: 0, range: [0, 0] });
    }
    nextCheckpoint++;
  }

  const entries = db.prepare('SELECT idx, event_id, entry, leaf_hash FROM entries ORDER BY idx');
  for (const row of entries.iterate() as Iterable<{
    idx: number;
    event_id: string;
    entry: Uint8Array;
    leaf_hash: Uint8Array;
  }>) {
    const index = Number(row.idx);
    if (index !== expected) {
      stop({ kind: VERIFY_PROBLEMS.missingEntry, index: expected });
      break;
    }
    const leaf = leafHash(row.entry);
    if (Buffer.compare(leaf, row.leaf_hash) !== 0) {
      stop({ kind: VERIFY_PROBLEMS.leafHash, index });
      break;
    }
    if (!eventMatches(row.entry, row.event_id, fullEvents)) {
      stop({ kind: VERIFY_PROBLEMS.event, index });
      break;
    }
    for (const node of frontier.push(leaf)) {
      const stored = cursor(node.level).next();
      if (stored === undefined || stored.idx !== node.index || Buffer.compare(stored.hash, node.hash) !== 0) {
        // The first leaf under the differing node; exact at level 0, which is checked first.
        stop({ kind: VERIFY_PROBLEMS.treeNode, index: node.index * 2 ** node.level, level: node.level });
        break;
      }
    }
    if (stopped) break;
    expected++;
    while (nextCheckpoint < signed.length && signed[nextCheckpoint]!.size <= expected) {
      const checkpoint = signed[nextCheckpoint]!;
      if (checkpoint.size === expected && !frontier.root().equals(checkpoint.root)) {
        stop({
          kind: VERIFY_PROBLEMS.checkpointRoot,
          index: verifiedSize,
          checkpointSize: checkpoint.size,
          range: [verifiedSize, checkpoint.size],
        });
        break;
      }
      verifiedSize = checkpoint.size;
      nextCheckpoint++;
    }
    if (stopped) break;
    if (expected % progressEvery === 0) options.onProgress?.(expected);
  }

  if (!stopped) {
    // 3. Nothing stored beyond the entries.
    for (let level = 0; level < 53; level++) {
      const extra = cursor(level).next();
      if (extra !== undefined) {
        problems.push({ kind: VERIFY_PROBLEMS.extraNode, index: extra.idx * 2 ** level, level });
        break;
      }
    }
    // 5. A checkpoint larger than the log: its tail was truncated.
    const beyond = signed.find((c) => c.size > expected);
    if (beyond !== undefined) {
      problems.push({ kind: VERIFY_PROBLEMS.truncated, index: expected, checkpointSize: beyond.size });
    }
    // 4. Consistency of each checkpoint with the previous one, from the verified nodes.
    const source = store.source();
    const covered = signed.filter((c) => c.size <= expected);
    for (let i = 1; i < covered.length; i++) {
      const a = covered[i - 1]!;
      const b = covered[i]!;
      const proof = consistencyProof(source, a.size, b.size);
      if (!verifyConsistency(a.size, b.size, a.root, b.root, proof)) {
        problems.push({ kind: VERIFY_PROBLEMS.inconsistent, index: a.size, checkpointSize: b.size });
      }
    }
  }

  const indexes = problems.map((p) => p.index).filter((i): i is number => i !== null);
  const checkpoints = signed.length;
  return {
    ok: problems.length === 0,
    origin,
    entries: expected,
    checkpoints,
    signedSize: verifiedSize,
    unsignedEntries: stopped ? 0 : expected - verifiedSize,
    firstBadIndex: indexes.length === 0 ? null : Math.min(...indexes),
    problems,
    keySource,
    verifierKeys,
  };
}

function eventMatches(entry: Uint8Array, eventId: string, full: boolean): boolean {
  try {
    if (full) return parseAuditEntry(entry).id === eventId;
    const text = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength).toString('utf8');
    return (JSON.parse(text) as { id?: unknown }).id === eventId;
  } catch {
    return false;
  }
}
