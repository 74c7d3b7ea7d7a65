import { hash } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { parseAuditEntry } from '../../core/audit-event.ts';
import { openCheckpoint } from './checkpoint.ts';
import { AuditStore, type CheckpointRow, openAuditDatabase, type SigningKeyRow } from './database.ts';
import { consistencyProof, EMPTY_ROOT, Frontier, type SubtreeSource, verifyConsistency } from './merkle.ts';
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
  // Rows as arrays: node:sqlite builds no object per row (the verifier reads a million of them).
  const cursors: Iterator<[number, Uint8Array]>[] = [];
  const nextNode = (level: number): [number, Uint8Array] | undefined => {
    let iterator = cursors[level];
    if (iterator === undefined) {
      const statement = db.prepare('SELECT idx, hash FROM tree_nodes WHERE level = ? ORDER BY idx');
      statement.setReturnArrays(true);
      iterator = statement.iterate(level) as unknown as Iterator<[number, Uint8Array]>;
      cursors[level] = iterator;
    }
    const step = iterator.next();
    return step.done ? undefined : step.value;
  };
  const run = new Verification(
    { origin: store.meta('origin'), signingKeys: () => store.signingKeys(), checkpoints: [...store.checkpoints()] },
    options,
    nextNode,
  );

  // The level-0 node is joined in and compared by SQLite (a flag, not a second blob per row): the
  // verifier reads a million rows fewer through JavaScript.
  const entries = db.prepare(
    `SELECT e.idx, e.event_id, e.entry, e.leaf_hash, coalesce(n.hash = e.leaf_hash, 0)
       FROM entries e LEFT JOIN tree_nodes n ON n.level = 0 AND n.idx = e.idx ORDER BY e.idx`,
  );
  entries.setReturnArrays(true);
  for (const [index, eventId, entry, storedLeaf, inTree] of entries.iterate() as unknown as Iterable<
    [number, string, Uint8Array, Uint8Array, number]
  >) {
    if (!run.entry(Number(index), eventId, entry, storedLeaf, Number(inTree) === 1)) break;
  }

  if (!run.stopped) {
    // 3. Nothing stored beyond the entries.
    const leafBeyond = db
      .prepare('SELECT idx FROM tree_nodes WHERE level = 0 AND idx >= ? ORDER BY idx LIMIT 1')
      .get(run.entries) as { idx: number } | undefined;
    let extra: ExtraNode | null = leafBeyond === undefined ? null : { level: 0, index: Number(leafBeyond.idx) };
    for (let level = 1; extra === null && level < 53; level++) {
      const node = nextNode(level);
      if (node !== undefined) extra = { level, index: Number(node[0]) };
    }
    run.finish(extra, store.source());
  }
  return run.report();
}

/** A stored tree node beyond the entries: its level and its index at that level. */
export interface ExtraNode {
  level: number;
  index: number;
}

/** What the verifier reads before the entries. */
export interface VerifyInputs {
  origin: string | null;
  /** The keys stored in the log (read only when no trusted key is given). */
  signingKeys: () => SigningKeyRow[];
  /** Every stored checkpoint, in increasing size. */
  checkpoints: readonly CheckpointRow[];
}

/**
 * The verification itself, independent of the store: fed the stored checkpoints, then every entry in
 * index order, then what lies beyond them, it builds the report. The SQLite verifier (above) and the
 * PostgreSQL one (postgres-verify.ts) differ only in how they read.
 */
export class Verification {
  readonly #problems: VerifyProblem[] = [];
  readonly #origin: string | null;
  readonly #signed: CheckpointRow[] = [];
  readonly #keySource: 'trusted' | 'log';
  readonly #verifierKeys: string[];
  readonly #nextNode: (level: number) => [number, Uint8Array] | undefined;
  readonly #frontier = Frontier.empty();
  readonly #progressEvery: number;
  readonly #fullEvents: boolean;
  readonly #onProgress: ((verified: number) => void) | undefined;
  #expected = 0;
  #stopped = false;
  #nextCheckpoint = 0;
  #verifiedSize = 0;
  #scratch = Buffer.allocUnsafe(1 + 16_384);

  /**
   * @param nextNode the next stored node at a level (≥ 1), in index order, as [index, hash]: called
   *   as each node completes, so a store can stream every level alongside the entries.
   */
  constructor(
    inputs: VerifyInputs,
    options: VerifyOptions,
    nextNode: (level: number) => [number, Uint8Array] | undefined,
  ) {
    this.#nextNode = nextNode;
    this.#progressEvery = options.progressEvery ?? 100_000;
    this.#fullEvents = options.checkEvents === 'full';
    this.#onProgress = options.onProgress;
    const origin = inputs.origin;
    this.#origin = origin;
    if (origin === null) this.#problems.push({ kind: VERIFY_PROBLEMS.meta, index: null });

    let verifiers: NoteVerifier[];
    if (options.verifierKeys !== undefined && options.verifierKeys.length > 0) {
      verifiers = options.verifierKeys.map((k) => parseVerifierKey(k));
      this.#verifierKeys = [...options.verifierKeys];
      this.#keySource = 'trusted';
    } else {
      const keys = inputs.signingKeys();
      verifiers = keys.map((k) => ed25519Verifier(k.name, k.publicKey));
      this.#verifierKeys = keys.map((k) => formatVerifierKey(k.name, k.publicKey));
      this.#keySource = 'log';
    }

    // 1. Checkpoints: signature, origin, row columns.
    const signed = this.#signed;
    for (const row of inputs.checkpoints) {
      let checkpoint: ReturnType<typeof openCheckpoint>;
      try {
        checkpoint = openCheckpoint(row.note, verifiers, origin ?? undefined);
      } catch {
        this.#problems.push({ kind: VERIFY_PROBLEMS.checkpointSignature, index: null, checkpointSize: row.size });
        continue;
      }
      if (checkpoint.size !== row.size || !checkpoint.root.equals(row.root)) {
        this.#problems.push({ kind: VERIFY_PROBLEMS.checkpointRow, index: null, checkpointSize: row.size });
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
        this.#problems.push({ kind: VERIFY_PROBLEMS.trustedCheckpoint, index: null });
      }
    }
    signed.sort((a, b) => a.size - b.size);

    // Checkpoints of the empty tree sign SHA-256() (RFC 9162 §2.1.1).
    while (this.#nextCheckpoint < signed.length && signed[this.#nextCheckpoint]!.size === 0) {
      if (!signed[this.#nextCheckpoint]!.root.equals(EMPTY_ROOT)) {
        this.#problems.push({ kind: VERIFY_PROBLEMS.checkpointRoot, index: 0, checkpointSize: 0, range: [0, 0] });
      }
      this.#nextCheckpoint++;
    }
  }

  /** Entries verified so far (the next expected index). */
  get entries(): number {
    return this.#expected;
  }

  /** True once a problem stopped the pass over the entries. */
  get stopped(): boolean {
    return this.#stopped;
  }

  #stop(problem: VerifyProblem): false {
    this.#problems.push(problem);
    this.#stopped = true;
    return false;
  }

  /**
   * 2–4. The next stored entry (rows in index order); `inTree` says the level-0 node at its index equals
   * its leaf hash column. False when it stopped the verification.
   */
  entry(index: number, eventId: string, entry: Uint8Array, storedLeaf: Uint8Array, inTree: boolean): boolean {
    if (this.#stopped) return false;
    if (index !== this.#expected) return this.#stop({ kind: VERIFY_PROBLEMS.missingEntry, index: this.#expected });
    // leafHash(entry), through one reused buffer: no allocation per entry for the prefixed copy.
    if (this.#scratch.length < entry.length + 1) this.#scratch = Buffer.allocUnsafe(entry.length + 1);
    this.#scratch[0] = 0x00;
    this.#scratch.set(entry, 1);
    const leaf = hash('sha256', this.#scratch.subarray(0, entry.length + 1), 'buffer');
    if (Buffer.compare(leaf, storedLeaf) !== 0) return this.#stop({ kind: VERIFY_PROBLEMS.leafHash, index });
    if (!eventMatches(entry, eventId, this.#fullEvents)) return this.#stop({ kind: VERIFY_PROBLEMS.event, index });
    if (!inTree) return this.#stop({ kind: VERIFY_PROBLEMS.treeNode, index, level: 0 });
    const completed = this.#frontier.push(leaf);
    for (let i = 1; i < completed.length; i++) {
      const node = completed[i]!;
      const stored = this.#nextNode(node.level);
      if (stored === undefined || Number(stored[0]) !== node.index || Buffer.compare(stored[1], node.hash) !== 0) {
        // The first leaf under the differing node (level 0 was checked above, exactly).
        return this.#stop({ kind: VERIFY_PROBLEMS.treeNode, index: node.index * 2 ** node.level, level: node.level });
      }
    }
    this.#expected++;
    const signed = this.#signed;
    while (this.#nextCheckpoint < signed.length && signed[this.#nextCheckpoint]!.size <= this.#expected) {
      const checkpoint = signed[this.#nextCheckpoint]!;
      if (checkpoint.size === this.#expected && !this.#frontier.root().equals(checkpoint.root)) {
        return this.#stop({
          kind: VERIFY_PROBLEMS.checkpointRoot,
          index: this.#verifiedSize,
          checkpointSize: checkpoint.size,
          range: [this.#verifiedSize, checkpoint.size],
        });
      }
      this.#verifiedSize = checkpoint.size;
      this.#nextCheckpoint++;
    }
    if (this.#expected % this.#progressEvery === 0) this.#onProgress?.(this.#expected);
    return true;
  }

  /** The pairs of consecutive verified checkpoints within the entries, whose consistency `finish` proves. */
  consistencyPairs(): [number, number][] {
    const covered = this.#signed.filter((c) => c.size <= this.#expected);
    const pairs: [number, number][] = [];
    for (let i = 1; i < covered.length; i++) pairs.push([covered[i - 1]!.size, covered[i]!.size]);
    return pairs;
  }

  /**
   * After every entry (unless stopped): the first stored node beyond them, if any, and the stored
   * nodes (verified equal to the recomputed ones) for the consistency proofs between checkpoints.
   */
  finish(extra: ExtraNode | null, source: SubtreeSource): void {
    if (this.#stopped) return;
    const expected = this.#expected;
    // 3. Nothing stored beyond the entries.
    if (extra !== null) {
      this.#problems.push({
        kind: VERIFY_PROBLEMS.extraNode,
        index: extra.index * 2 ** extra.level,
        level: extra.level,
      });
    }
    // 5. A checkpoint larger than the log: its tail was truncated.
    const beyond = this.#signed.find((c) => c.size > expected);
    if (beyond !== undefined) {
      this.#problems.push({ kind: VERIFY_PROBLEMS.truncated, index: expected, checkpointSize: beyond.size });
    }
    // 4. Consistency of each checkpoint with the previous one, from the verified nodes.
    const covered = this.#signed.filter((c) => c.size <= expected);
    for (let i = 1; i < covered.length; i++) {
      const a = covered[i - 1]!;
      const b = covered[i]!;
      const proof = consistencyProof(source, a.size, b.size);
      if (!verifyConsistency(a.size, b.size, a.root, b.root, proof)) {
        this.#problems.push({ kind: VERIFY_PROBLEMS.inconsistent, index: a.size, checkpointSize: b.size });
      }
    }
  }

  report(): VerifyReport {
    const problems = this.#problems;
    const indexes = problems.map((p) => p.index).filter((i): i is number => i !== null);
    return {
      ok: problems.length === 0,
      origin: this.#origin,
      entries: this.#expected,
      checkpoints: this.#signed.length,
      signedSize: this.#verifiedSize,
      unsignedEntries: this.#stopped ? 0 : this.#expected - this.#verifiedSize,
      firstBadIndex: indexes.length === 0 ? null : Math.min(...indexes),
      problems,
      keySource: this.#keySource,
      verifierKeys: this.#verifierKeys,
    };
  }
}

const ID_MEMBER = Buffer.from(',"id":"');

function eventMatches(entry: Uint8Array, eventId: string, full: boolean): boolean {
  if (full) {
    try {
      return parseAuditEntry(entry).id === eventId;
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
