import { hash } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import sodium from 'sodium-native';

/**
 * The per-entry work of `rampart audit verify` (verify.ts) over one range of leaves, so that ranges can
 * be verified apart (two threads on SQLite) and combined. It loads nothing but node:crypto and the
 * event parser: the verifier's worker thread (verify-worker.ts) imports it alone.
 *
 * A range starts at a multiple of the block size 2^top. Inside it, every leaf is recomputed and compared
 * (leaf hash column, level-0 node, event id) and every node of levels 1..top it completes is recomputed
 * and compared with the stored one; those subtrees lie wholly inside the range. What spans ranges is
 * left to the caller: the root of each complete block (a level-`top` node, already compared), from
 * which the levels above are recomputed, and, at each checkpoint size t in the range, the root of the
 * leaves [⌊t/2^top⌋·2^top, t), from which the root at t is folded (RFC 9162 §2.1.1: the tree of t
 * leaves is the perfect subtrees of t's set bits, largest first, the block's ones last).
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

/**
 * Where a one-pass verifier in index order would have found a problem: while taking in `leaf`, at
 * `step` (0 the entry itself, ℓ the level-ℓ node that leaf completes, {@link CHECKPOINT_STEP} the
 * checkpoint of size leaf + 1). The earliest finding across ranges is the one reported.
 */
export interface Finding {
  problem: VerifyProblem;
  leaf: number;
  step: number;
}

/** The step of a checkpoint root comparison: after every node its last leaf completes. */
export const CHECKPOINT_STEP = 64;

/** True when finding `a` comes before `b` (null: never found). */
export function earlier(a: Finding | null, b: Finding | null): boolean {
  if (a === null) return false;
  if (b === null) return true;
  return a.leaf < b.leaf || (a.leaf === b.leaf && a.step < b.step);
}

/** The block level of a range that is not cut into blocks: 2^52 leaves, past any log (levels 0..52). */
export const ONE_BLOCK = 52;

/** What a range hands back. */
export interface RangeResult {
  lo: number;
  /** The checkpoint sizes the range was given. */
  checkpointSizes: readonly number[];
  /** The next index to verify: the end of the range unless a finding stopped it there. */
  verified: number;
  /** The first problem in the range, if any. */
  finding: Finding | null;
  /** The root of each complete block of 2^top leaves, in order. */
  blockRoots: Uint8Array[];
  /**
   * For each checkpoint size given to the range that it reached, in the order given: the root of the
   * leaves from the start of that size's block up to the size, or null when the size ends a block.
   */
  partialRoots: (Uint8Array | null)[];
}

/** Parses and validates an entry's bytes as an event (throws when they are not one). */
export type ParseEvent = (bytes: Uint8Array) => { id: string };

/**
 * The stored node (level ≥ 1, index), undefined when there is none. Asked in index order at each
 * level, for the nodes the range's leaves complete.
 */
export type StoredNode = (level: number, index: number) => Uint8Array | undefined;

/** Options of a {@link LeafRange}. */
export interface LeafRangeOptions {
  /** First leaf: a multiple of 2^top. */
  lo: number;
  /** Block level: nodes up to it are verified here, those above by the caller from the block roots. */
  top: number;
  /** Checkpoint sizes in (lo, end of range], increasing (repeats allowed). */
  checkpointSizes: readonly number[];
  /**
   * Full event validation (core/audit-event.ts `parseAuditEntry`, passed in so that a worker loads the
   * event schema only when asked for it); null: the event id alone.
   */
  parseEvent: ParseEvent | null;
  storedNode: StoredNode;
  /** Called after each leaf whose index + 1 is a multiple of `progressEvery`. */
  onProgress?: (verifiedInRange: number) => void;
  progressEvery?: number;
}

/**
 * One range of leaves, fed its entries in index order. Stops at the first problem, as a single pass
 * over the whole log would: what it reports is exactly what that pass reports for these leaves.
 */
export class LeafRange {
  readonly #lo: number;
  readonly #top: number;
  readonly #sizes: readonly number[];
  readonly #parseEvent: ParseEvent | null;
  readonly #storedNode: StoredNode;
  readonly #onProgress: ((verified: number) => void) | undefined;
  readonly #progressEvery: number;
  // The perfect subtrees of [block start, next leaf) below the block level, largest first.
  readonly #levels: number[] = [];
  readonly #hashes: Buffer[] = [];
  readonly #blockRoots: Buffer[] = [];
  readonly #partialRoots: (Buffer | null)[] = [];
  readonly #node = Buffer.allocUnsafe(1 + 64);
  #scratch = Buffer.allocUnsafe(1 + 16_384);
  #expected: number;
  #nextSize = 0;
  #finding: Finding | null = null;

  constructor(options: LeafRangeOptions) {
    this.#lo = options.lo;
    this.#expected = options.lo;
    this.#top = options.top;
    this.#sizes = options.checkpointSizes;
    this.#parseEvent = options.parseEvent;
    this.#storedNode = options.storedNode;
    this.#onProgress = options.onProgress;
    this.#progressEvery = options.progressEvery ?? 100_000;
    if (this.#lo % 2 ** this.#top !== 0) throw new RangeError('a range starts at a block boundary');
  }

  /** True once a problem stopped the range. */
  get stopped(): boolean {
    return this.#finding !== null;
  }

  /** The next expected index. */
  get expected(): number {
    return this.#expected;
  }

  #stop(problem: VerifyProblem, step: number): false {
    this.#finding = { problem, leaf: this.#expected, step };
    return false;
  }

  /**
   * The next stored entry (rows in index order) with its leaf hash column; `inTree` says the level-0
   * node at its index equals that column. False when it stopped the range.
   */
  entry(index: number, eventId: string, entry: Uint8Array, storedLeaf: Uint8Array, inTree: boolean): boolean {
    if (this.#finding !== null) return false;
    const at = this.#expected;
    if (index !== at) return this.#stop({ kind: VERIFY_PROBLEMS.missingEntry, index: at }, 0);
    // leafHash(entry), through one reused buffer: no allocation per entry for the prefixed copy.
    if (this.#scratch.length < entry.length + 1) this.#scratch = Buffer.allocUnsafe(entry.length + 1);
    this.#scratch[0] = 0x00;
    this.#scratch.set(entry, 1);
    let node: Buffer = hash('sha256', this.#scratch.subarray(0, entry.length + 1), 'buffer');
    if (Buffer.compare(node, storedLeaf) !== 0) return this.#stop({ kind: VERIFY_PROBLEMS.leafHash, index }, 0);
    if (!eventMatches(entry, eventId, this.#parseEvent)) return this.#stop({ kind: VERIFY_PROBLEMS.event, index }, 0);
    if (!inTree) return this.#stop({ kind: VERIFY_PROBLEMS.treeNode, index, level: 0 }, 0);

    // Fold the leaf into the subtrees it completes, comparing each with the stored node.
    const levels = this.#levels;
    const hashes = this.#hashes;
    const top = this.#top;
    let level = 0;
    while (level < top && levels.length > 0 && levels[levels.length - 1] === level) {
      levels.pop();
      node = nodeHashInto(this.#node, hashes.pop()!, node);
      level++;
      const width = 2 ** level;
      const nodeIndex = (at + 1) / width - 1;
      const stored = this.#storedNode(level, nodeIndex);
      if (stored === undefined || Buffer.compare(stored, node) !== 0) {
        // The first leaf under the differing node (level 0 was checked above, exactly).
        return this.#stop({ kind: VERIFY_PROBLEMS.treeNode, index: nodeIndex * width, level }, level);
      }
    }
    if (level === top) this.#blockRoots.push(node);
    else {
      levels.push(level);
      hashes.push(node);
    }
    this.#expected = at + 1;

    const sizes = this.#sizes;
    while (this.#nextSize < sizes.length && sizes[this.#nextSize]! <= at + 1) {
      this.#partialRoots.push(hashes.length === 0 ? null : this.#fold());
      this.#nextSize++;
    }
    if (this.#onProgress !== undefined && (at + 1) % this.#progressEvery === 0) this.#onProgress(at + 1 - this.#lo);
    return true;
  }

  /** MTH of the current block's leaves: its subtrees folded right to left. */
  #fold(): Buffer {
    const hashes = this.#hashes;
    let root = hashes[hashes.length - 1]!;
    for (let i = hashes.length - 2; i >= 0; i--) root = nodeHashInto(this.#node, hashes[i]!, root);
    return root;
  }

  /**
   * After the range's entries: an entry missing before `end` (the range's end, which a later entry
   * proves the log reaches; null when the range runs to the end of the log) stops it.
   */
  end(end: number | null): RangeResult {
    if (this.#finding === null && end !== null && this.#expected < end) {
      this.#stop({ kind: VERIFY_PROBLEMS.missingEntry, index: this.#expected }, 0);
    }
    return {
      lo: this.#lo,
      checkpointSizes: this.#sizes,
      verified: this.#expected,
      finding: this.#finding,
      blockRoots: this.#blockRoots,
      partialRoots: this.#partialRoots,
    };
  }
}

/** Options of {@link verifySqliteRange}. */
export interface SqliteRangeOptions extends Omit<LeafRangeOptions, 'storedNode'> {
  /** The end of the range (exclusive). */
  end: number;
}

/** Stored nodes read per level in runs of this many consecutive indexes. */
const NODE_RUN = 4_096;
/** Entries read in runs of this many consecutive indexes. */
const ENTRY_RUN = 1_024;

/**
 * Verifies leaves [lo, end) of the SQLite log `db` reads (inside the caller's read transaction).
 * node:sqlite makes an ArrayBuffer for every blob it returns, which cost more than the hashing: so
 * the entries come in runs, each run's bytes as one blob, its leaf hash columns as another, with their
 * lengths, event ids and flags alongside, and the nodes of each level in runs of consecutive indexes,
 * each run one blob. A run is taken only when it is whole (every index once, in order); any other is
 * read row by row, so a damaged stretch is judged exactly as a single pass over the rows judges it.
 */
export function verifySqliteRange(db: DatabaseSync, options: SqliteRangeOptions): RangeResult {
  const { lo, end } = options;
  const utf8 = (db.prepare('PRAGMA encoding').get() as { encoding: string }).encoding === 'UTF-8';
  const readers: (NodeRuns | undefined)[] = [];
  const storedNode: StoredNode = (level, index) => {
    let reader = readers[level];
    if (reader === undefined) {
      // The nodes that complete inside the range: those of index in [lo/2^level, end/2^level).
      reader = new NodeRuns(db, level, Math.floor(end / 2 ** level), utf8);
      readers[level] = reader;
    }
    return reader.at(index);
  };
  const range = new LeafRange({ ...options, storedNode });

  // The flag compares the level-0 node with the leaf hash column in SQLite: that node is never read.
  const join = `FROM entries e LEFT JOIN tree_nodes n ON n.level = 0 AND n.idx = e.idx WHERE e.idx >= ? AND e.idx < ?`;
  const rows = db.prepare(
    `SELECT e.idx, e.event_id, e.entry, e.leaf_hash, coalesce(n.hash = e.leaf_hash, 0) ${join} ORDER BY e.idx`,
  );
  rows.setReturnArrays(true);
  // One aggregation steps every aggregate through the rows in the same order, so the index list shows
  // the order of the others (an ORDER BY inside each would sort each). Blobs concatenate as text, byte
  // for byte, in a UTF-8 database.
  const runs = db.prepare(
    `SELECT count(*), group_concat(e.idx), group_concat(length(e.entry)), CAST(group_concat(e.entry, '') AS BLOB),
            group_concat(e.event_id, ' '), group_concat(coalesce(n.hash = e.leaf_hash, 0), ''),
            coalesce(sum(length(e.leaf_hash) = 32), 0), CAST(group_concat(e.leaf_hash, '') AS BLOB) ${join}`,
  );
  runs.setReturnArrays(true);
  for (let from = lo; from < end; from += ENTRY_RUN) {
    const to = Math.min(from + ENTRY_RUN, end);
    const run = utf8 ? wholeRun(runs.get(from, to) as unknown as RunRow, from, to) : null;
    if (run !== null) {
      let at = 0;
      for (let i = 0; i < run.ids.length; i++) {
        const length = run.lengths[i]!;
        const entry = run.bytes.subarray(at, at + length);
        at += length;
        const leaf = run.leaves.subarray(i * 32, i * 32 + 32);
        if (!range.entry(from + i, run.ids[i]!, entry, leaf, run.flags.charCodeAt(i) === 0x31)) break;
      }
    } else {
      // Rows in order: a missing one shows as the next index differing from the expected one.
      for (const [index, eventId, entry, leaf, inTree] of rows.iterate(from, to) as unknown as Iterable<
        [number, string, Uint8Array, Uint8Array, number]
      >) {
        if (!range.entry(Number(index), eventId, entry, leaf, Number(inTree) === 1)) break;
      }
    }
    if (range.stopped) break;
  }
  return range.end(end);
}

type RunRow = [
  count: number,
  indexes: string | null,
  lengths: string | null,
  bytes: Uint8Array | null,
  ids: string | null,
  flags: string | null,
  whole: number,
  leaves: Uint8Array | null,
];

/** "from,from+1,…,to-1": the index list of a whole run in order. */
function consecutive(from: number, to: number): string {
  let list = String(from);
  for (let i = from + 1; i < to; i++) list += `,${i}`;
  return list;
}

const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** A run of entries [from, to) when it is whole: every index once, in order, the parts agreeing. */
function wholeRun(
  row: RunRow,
  from: number,
  to: number,
): { ids: string[]; lengths: number[]; bytes: Buffer; flags: string; leaves: Buffer } | null {
  const [count, indexes, lengthList, bytes, idList, flags, whole, leaves] = row;
  const n = to - from;
  if (Number(count) !== n || indexes !== consecutive(from, to)) return null;
  if (lengthList === null || bytes === null || idList === null || flags === null || leaves === null) return null;
  if (flags.length !== n || Number(whole) !== n || leaves.byteLength !== 32 * n) return null;
  // An event id holding the separator would split in two: the count no longer matches.
  const ids = idList.split(' ');
  const lengths = lengthList.split(',').map(Number);
  if (ids.length !== n || lengths.length !== n) return null;
  let total = 0;
  for (const length of lengths) total += length;
  if (total !== bytes.byteLength) return null;
  return { ids, lengths, bytes: asBuffer(bytes), flags, leaves: asBuffer(leaves) };
}

/**
 * The stored nodes of one level, read in runs of {@link NODE_RUN} consecutive indexes below `below`
 * (as the entries are; one node at a time in a run that is not whole, or in a non-UTF-8 database).
 */
class NodeRuns {
  readonly #level: number;
  readonly #below: number;
  readonly #utf8: boolean;
  readonly #run: StatementSync;
  readonly #one: StatementSync;
  #start = 0;
  #length = 0;
  // The run's hashes end to end when every index in it is stored with a 32-byte hash; else null.
  #hashes: Buffer | null = null;

  constructor(db: DatabaseSync, level: number, below: number, utf8: boolean) {
    this.#level = level;
    this.#below = below;
    this.#utf8 = utf8;
    this.#run = db.prepare(
      `SELECT count(*), group_concat(idx), coalesce(sum(length(hash) = 32), 0), CAST(group_concat(hash, '') AS BLOB)
         FROM tree_nodes WHERE level = ? AND idx >= ? AND idx < ?`,
    );
    this.#run.setReturnArrays(true);
    this.#one = db.prepare('SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?');
    this.#one.setReturnArrays(true);
  }

  at(index: number): Uint8Array | undefined {
    if (index < this.#start || index >= this.#start + this.#length) {
      if (index >= this.#below) return this.#single(index);
      this.#start = index;
      this.#length = Math.min(NODE_RUN, this.#below - index);
      const end = index + this.#length;
      const [count, indexes, whole, hashes] = (
        this.#utf8 ? this.#run.get(this.#level, index, end) : [0, null, 0, null]
      ) as [number, string | null, number, Uint8Array | null];
      const complete =
        Number(count) === this.#length &&
        indexes === consecutive(index, end) &&
        Number(whole) === this.#length &&
        hashes !== null &&
        hashes.byteLength === 32 * this.#length;
      this.#hashes = complete ? asBuffer(hashes) : null;
    }
    if (this.#hashes === null) return this.#single(index);
    const at = (index - this.#start) * 32;
    return this.#hashes.subarray(at, at + 32);
  }

  #single(index: number): Uint8Array | undefined {
    return (this.#one.get(this.#level, index) as [Uint8Array] | undefined)?.[0];
  }
}

/**
 * The handshake between the verifier and its worker thread (verify.ts, verify-worker.ts), in slot 0
 * of a shared Int32Array; slot 1 counts the leaves the worker verified (progress, and a sign of life).
 */
export const WORKER_STATE = {
  /** The worker is loading. */
  starting: 0,
  /** The worker opened the database and waits for the plan. */
  ready: 1,
  /** The verifier took its snapshot: the worker takes its own. */
  go: 2,
  /** The worker's read transaction has read: its snapshot is fixed. It waits for the plan. */
  begun: 3,
  /** The verifier posted the plan. */
  planned: 4,
  /** The worker posted its result. */
  done: 5,
  /** The worker posted an error, or the verifier gave up on it. */
  failed: 6,
} as const;

/** What the verifier sends its worker with `planned`. */
export interface WorkerPlan {
  lo: number;
  end: number;
  top: number;
  checkpointSizes: number[];
  fullEvents: boolean;
}

/** What the worker posts back. */
export type WorkerReply = { ok: true; result: RangeResult } | { ok: false; error: string };

/**
 * SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1), the input assembled in `scratch` (65 bytes). Through
 * libsodium: for 65 bytes the call costs most of the hash, and node:crypto's costs some 0.5 µs more (a
 * second on a million-entry log); a leaf's hundreds of bytes go through node:crypto (OpenSSL's SHA
 * extensions) instead.
 */
function nodeHashInto(scratch: Buffer, left: Uint8Array, right: Uint8Array): Buffer {
  scratch[0] = 0x01;
  scratch.set(left, 1);
  scratch.set(right, 33);
  const out = Buffer.allocUnsafe(32);
  sodium.crypto_hash_sha256(out, scratch);
  return out;
}

const ID_MEMBER = Buffer.from(',"id":"');

function eventMatches(entry: Uint8Array, eventId: string, parse: ParseEvent | null): boolean {
  if (parse !== null) {
    try {
      return parse(entry).id === eventId;
    } catch {
      return false;
    }
  }
  // In canonical JSON a bare `,"id":"` is a member name (quotes inside strings are escaped), the
  // members are sorted, and only `detail` (before `id`) can hold another member named id: the last
  // occurrence is the event's id. A byte search costs a fraction of JSON.parse; `full` parses.
  const bytes = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength);
  const at = bytes.lastIndexOf(ID_MEMBER);
  if (at === -1) return false;
  const start = at + ID_MEMBER.length;
  return bytes[start + eventId.length] === 0x22 && bytes.toString('latin1', start, start + eventId.length) === eventId;
}
