import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { parseAuditEntry } from '../../core/audit-event.ts';
import { openCheckpoint } from './checkpoint.ts';
import { AuditStore, type CheckpointRow, openAuditDatabase, type SigningKeyRow } from './database.ts';
import { consistencyProof, EMPTY_ROOT, nodeHash, type SubtreeSource, verifyConsistency } from './merkle.ts';
import { ed25519Verifier, formatVerifierKey, type NoteVerifier, parseVerifierKey } from './note.ts';
import {
  CHECKPOINT_STEP,
  earlier,
  type Finding,
  LeafRange,
  ONE_BLOCK,
  type ParseEvent,
  type RangeResult,
  type StoredNode,
  VERIFY_PROBLEMS,
  type VerifyProblem,
  verifySqliteRange,
  WORKER_STATE,
  type WorkerPlan,
  type WorkerReply,
} from './verify-range.ts';

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
 *
 * The leaves are verified in ranges (verify-range.ts), and the ranges combined: the tree over [0, n)
 * is made of aligned blocks of 2^top leaves whose nodes lie inside one range, the levels above them are
 * recomputed from the block roots, and a checkpoint's root is folded from the subtrees left of its
 * block and the leaves of its block before it. On SQLite a log of {@link PARALLEL_FROM} entries or more
 * is cut in two, a worker thread (verify-worker.ts, its own read-only connection and read snapshot)
 * taking the first half: issue 6 asks for a million entries in 10 s on a 2-core machine. Every finding
 * carries the leaf and the step at which one pass in index order would have made it; the earliest over
 * all ranges is reported, so the verdict and the first bad index do not depend on the cut.
 */

export { VERIFY_PROBLEMS, type VerifyProblem, type VerifyProblemKind } from './verify-range.ts';

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
  /** Called every `progressEvery` entries (CLI progress); with two threads, about as often. */
  onProgress?: (verified: number) => void;
  progressEvery?: number;
  /**
   * SQLite: verify on two threads (a worker thread takes the first half of the leaves) from this many
   * entries on (default {@link PARALLEL_FROM}); `Infinity` keeps to one thread.
   */
  parallelFrom?: number;
}

/**
 * Below this many entries one thread verifies alone: starting the worker (a thread, its modules, its
 * connection) costs some 100–300 ms of CPU on the 2-core benchmark machine, about what verifying
 * 100,000 entries costs; from a quarter million on, the worker's half pays for it.
 */
export const PARALLEL_FROM = 262_144;

/** A worker that has not opened the log by then is given up (the verifier then works alone). */
const WORKER_START_MS = 10_000;
/** A worker whose progress has not moved for this long is given up and its range verified here. */
const WORKER_STALL_MS = 60_000;

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
  /** Threads that verified the entries: 2 when a worker thread took a range (SQLite, large logs). */
  threads: number;
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

/**
 * How a log of `entries` leaves is cut between two threads: blocks of 2^top leaves (about 64 of them
 * in the log, at least 4 leaves), the worker taking the whole blocks of the first half, [0, split),
 * the verifier the rest. split is 0 when there is nothing to cut.
 */
export function verifySplit(entries: number): { top: number; split: number } {
  let bits = 0;
  while (2 ** bits <= entries) bits++;
  const top = Math.max(2, bits - 6);
  const width = 2 ** top;
  return { top, split: Math.floor(entries / 2 / width) * width };
}

/**
 * Verifies an open audit database (read-only use: nothing is written). Everything is read in one read
 * transaction; a large log is verified on two threads (the worker's snapshot is checked to be the
 * same one), with the same findings, and the same first bad index, as one pass in index order.
 */
export function verifyLog(db: DatabaseSync, options: VerifyOptions = {}): VerifyReport {
  const store = new AuditStore(db);
  const path = db.location();
  const parallelFrom = options.parallelFrom ?? PARALLEL_FROM;
  // Inside the caller's transaction the snapshot may predate the check below: no worker then.
  const ownTransaction = !db.isTransaction;
  // A first look, outside the snapshot, only decides whether a worker is worth starting (not on one core).
  const helper =
    path !== null && ownTransaction && availableParallelism() > 1 && store.entryCount() >= parallelFrom
      ? startWorker(path)
      : null;
  try {
    // The worker's snapshot must be the verifier's: no commit between the two read transactions'
    // first reads, which PRAGMA data_version (on a third connection) shows.
    const probe = helper?.ready() === true ? openAuditDatabase(path!, { readOnly: true }) : null;
    const dataVersion = () =>
      Number((probe!.prepare('PRAGMA data_version').get() as { data_version: number }).data_version);
    const before = probe === null ? 0 : dataVersion();
    if (ownTransaction) db.exec('BEGIN');
    // The first read fixes the snapshot; the worker takes its own at once, before anything else is
    // read or checked here: the shorter the window, the likelier no append of a live log falls in it.
    const entries = store.entryCount();
    const plan = probe === null ? { top: ONE_BLOCK, split: 0 } : verifySplit(entries);
    let worker: WorkerRun | null = null;
    if (helper !== null && probe !== null && plan.split > 0) {
      if (helper.begin() && dataVersion() === before) worker = helper;
      else helper.cancel();
    } else {
      helper?.cancel();
    }
    probe?.close();
    const run = new Verification(
      { origin: store.meta('origin'), signingKeys: () => store.signingKeys(), checkpoints: [...store.checkpoints()] },
      options,
    );
    worker?.plan({
      lo: 0,
      end: plan.split,
      top: plan.top,
      checkpointSizes: run.checkpointSizes(0, plan.split),
      fullEvents: options.checkEvents === 'full',
    });
    const top = worker === null ? ONE_BLOCK : plan.top;
    const split = worker === null ? 0 : plan.split;

    const progressEvery = options.progressEvery ?? 100_000;
    const onProgress = options.onProgress;
    const mine = verifySqliteRange(db, {
      lo: split,
      end: entries,
      top,
      checkpointSizes: run.checkpointSizes(split, entries),
      parseEvent: run.parseEvent,
      progressEvery,
      ...(onProgress === undefined
        ? {}
        : { onProgress: (verified: number) => onProgress(verified + (worker?.progress() ?? 0)) }),
    });
    const results = [mine];
    let threads = 1;
    if (worker !== null) {
      // The worker's range, from the worker or, if it failed, verified here in the same snapshot.
      const theirs = worker.result();
      if (theirs !== null) threads = 2;
      results.unshift(
        theirs ??
          verifySqliteRange(db, {
            lo: 0,
            end: split,
            top,
            checkpointSizes: run.checkpointSizes(0, split),
            parseEvent: run.parseEvent,
          }),
      );
    }
    const node = db.prepare('SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?');
    node.setReturnArrays(true);
    run.combine(results, top, (level, index) => (node.get(level, index) as [Uint8Array] | undefined)?.[0], threads);

    if (!run.stopped) {
      // 3. Nothing stored beyond the entries: at each level, no node past those the entries complete.
      const beyond = db.prepare('SELECT idx FROM tree_nodes WHERE level = ? AND idx >= ? ORDER BY idx LIMIT 1');
      beyond.setReturnArrays(true);
      let extra: ExtraNode | null = null;
      for (let level = 0; extra === null && level <= ONE_BLOCK; level++) {
        const row = beyond.get(level, Math.floor(run.entries / 2 ** level)) as [number] | undefined;
        if (row !== undefined) extra = { level, index: Number(row[0]) };
      }
      run.finish(extra, store.source());
    }
    return run.report();
  } finally {
    if (ownTransaction && db.isTransaction) db.exec('COMMIT');
    helper?.cancel();
  }
}

/** The worker thread as the verifier drives it (synchronously: it waits on the shared state). */
interface WorkerRun {
  /** Waits until the worker opened the log; false when it failed or did not in time. */
  ready(): boolean;
  /** Tells the worker to take its snapshot and waits until it has; false when it failed. */
  begin(): boolean;
  /** Sends the worker its range. */
  plan(plan: WorkerPlan): void;
  /** Leaves verified so far. */
  progress(): number;
  /** Waits for the result; null when the worker failed or stalled. */
  result(): RangeResult | null;
  /** Stops the worker unless it is done. */
  cancel(): void;
}

// The worker runs from source in a checkout (.ts, type stripping) and from dist/ when installed (.js).
const WORKER_SCRIPT = new URL(`./verify-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** Starts the worker; null where threads are not allowed (the permission model without --allow-worker). */
function startWorker(path: string): WorkerRun | null {
  const shared = new SharedArrayBuffer(8);
  const state = new Int32Array(shared);
  const { port1, port2 } = new MessageChannel();
  let worker: Worker;
  try {
    worker = new Worker(WORKER_SCRIPT, { workerData: { path, port: port2, shared }, transferList: [port2] });
  } catch {
    port1.close();
    return null;
  }
  worker.unref();
  let finished = false;
  const now = () => performance.now();
  const waitWhile = (value: number, timeoutMs: number): number => {
    const deadline = now() + timeoutMs;
    while (Atomics.load(state, 0) === value && now() < deadline) Atomics.wait(state, 0, value, deadline - now());
    return Atomics.load(state, 0);
  };
  const cancel = () => {
    if (finished) return;
    finished = true;
    Atomics.store(state, 0, WORKER_STATE.failed);
    Atomics.notify(state, 0);
    port1.close();
    void worker.terminate();
  };
  return {
    ready() {
      let at = waitWhile(WORKER_STATE.starting, WORKER_START_MS);
      // Not started in time: withdraw, unless it got ready just now.
      if (at === WORKER_STATE.starting) {
        at = Atomics.compareExchange(state, 0, WORKER_STATE.starting, WORKER_STATE.failed);
        if (at === WORKER_STATE.starting) at = WORKER_STATE.failed;
      }
      if (at !== WORKER_STATE.ready) cancel();
      return at === WORKER_STATE.ready;
    },
    begin() {
      Atomics.store(state, 0, WORKER_STATE.go);
      Atomics.notify(state, 0);
      const at = waitWhile(WORKER_STATE.go, WORKER_START_MS);
      if (at === WORKER_STATE.begun) return true;
      cancel();
      return false;
    },
    plan(plan) {
      port1.postMessage(plan);
      Atomics.compareExchange(state, 0, WORKER_STATE.begun, WORKER_STATE.planned);
      Atomics.notify(state, 0);
    },
    progress: () => Atomics.load(state, 1),
    result() {
      let seen = Atomics.load(state, 1);
      let movedAt = now();
      while (Atomics.load(state, 0) === WORKER_STATE.planned) {
        Atomics.wait(state, 0, WORKER_STATE.planned, 1_000);
        const progress = Atomics.load(state, 1);
        if (progress !== seen) {
          seen = progress;
          movedAt = now();
        } else if (now() - movedAt > WORKER_STALL_MS) break;
      }
      const reply = Atomics.load(state, 0) === WORKER_STATE.done ? receiveMessageOnPort(port1) : undefined;
      const message = reply?.message as WorkerReply | undefined;
      if (message?.ok !== true) {
        cancel();
        return null;
      }
      finished = true;
      port1.close();
      return message.result;
    },
    cancel,
  };
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
 * The verification itself, independent of the store: fed the stored checkpoints, then the results of
 * the ranges of leaves that cover the entries ({@link LeafRange}: one, or one per thread), then what
 * lies beyond them, it builds the report. The SQLite verifier (above) and the PostgreSQL one
 * (postgres-verify.ts) differ only in how they read.
 */
export class Verification {
  readonly #problems: VerifyProblem[] = [];
  readonly #origin: string | null;
  readonly #signed: CheckpointRow[] = [];
  readonly #keySource: 'trusted' | 'log';
  readonly #verifierKeys: string[];
  /** Full event validation when asked for (`checkEvents: 'full'`), else null. */
  readonly parseEvent: ParseEvent | null;
  readonly #progressEvery: number;
  readonly #onProgress: ((verified: number) => void) | undefined;
  #entries = 0;
  #stopped = false;
  #verifiedSize = 0;
  #threads = 1;

  constructor(inputs: VerifyInputs, options: VerifyOptions) {
    this.#progressEvery = options.progressEvery ?? 100_000;
    this.parseEvent = options.checkEvents === 'full' ? parseAuditEntry : null;
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
    for (const checkpoint of signed) {
      if (checkpoint.size === 0 && !checkpoint.root.equals(EMPTY_ROOT)) {
        this.#problems.push({ kind: VERIFY_PROBLEMS.checkpointRoot, index: 0, checkpointSize: 0, range: [0, 0] });
      }
    }
  }

  /** Entries verified (all of them unless a problem stopped the pass). */
  get entries(): number {
    return this.#entries;
  }

  /** True once a problem stopped the pass over the entries. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The sizes of the verified checkpoints in (lo, end] (end null: no bound), in increasing order. */
  checkpointSizes(lo: number, end: number | null): number[] {
    return this.#signed.map((c) => c.size).filter((size) => size > lo && (end === null || size <= end));
  }

  /** A range of leaves from `lo` (to the end of the log) for a store that streams them, with one block. */
  range(lo: number, storedNode: StoredNode): LeafRange {
    return new LeafRange({
      lo,
      top: ONE_BLOCK,
      checkpointSizes: this.checkpointSizes(lo, null),
      parseEvent: this.parseEvent,
      storedNode,
      progressEvery: this.#progressEvery,
      ...(this.#onProgress === undefined ? {} : { onProgress: this.#onProgress }),
    });
  }

  /**
   * 2–4. Takes in the ranges, consecutive from leaf 0, cut in blocks of 2^top leaves: computes the
   * nodes above the blocks from the block roots and compares them with the stored ones (`storedNode`),
   * and the root at each checkpoint's size with the signed one. The first finding in index order, over
   * all of it, stops the pass: a single pass would have found none after it.
   */
  combine(
    results: readonly RangeResult[],
    top: number,
    storedNode: (level: number, index: number) => Uint8Array | undefined,
    threads = 1,
  ): void {
    this.#threads = threads;
    let first: Finding | null = null;
    const blocks: Uint8Array[] = [];
    const checkpoints: [size: number, partial: Uint8Array | null][] = [];
    let covered = 0;
    for (const result of results) {
      if (result.lo !== covered) throw new RangeError('the ranges do not follow each other');
      blocks.push(...result.blockRoots);
      result.partialRoots.forEach((partial, i) => {
        checkpoints.push([result.checkpointSizes[i]!, partial]);
      });
      covered = result.verified;
      if (result.finding !== null) {
        first = result.finding;
        break;
      }
    }

    // The perfect subtrees above the block level, as a frontier over the block roots (largest first).
    const width = 2 ** top;
    const levels: number[] = [];
    const hashes: Uint8Array[] = [];
    let pushed = 0;
    const pushBlock = (): Finding | null => {
      const block = pushed++;
      let hash = blocks[block]!;
      let level = top;
      while (levels.length > 0 && levels[levels.length - 1] === level) {
        levels.pop();
        hash = nodeHash(hashes.pop()!, hash);
        level++;
        const index = (block + 1) / 2 ** (level - top) - 1;
        const stored = storedNode(level, index);
        if (stored === undefined || Buffer.compare(stored, hash) !== 0) {
          const problem = { kind: VERIFY_PROBLEMS.treeNode, index: index * 2 ** level, level };
          return { problem, leaf: (block + 1) * width - 1, step: level };
        }
      }
      levels.push(level);
      hashes.push(hash);
      return null;
    };
    const pushUntil = (count: number): boolean => {
      while (pushed < count) {
        const finding = pushBlock();
        if (finding !== null && earlier(finding, first)) {
          first = finding;
          return false;
        }
        if (finding !== null) return false;
      }
      return true;
    };

    // The ranges were given the sizes of the signed checkpoints past 0 in order: the same rows.
    const signed = this.#signed.filter((c) => c.size > 0);
    let verifiedSize = 0;
    for (let i = 0; i < checkpoints.length; i++) {
      const [size, partial] = checkpoints[i]!;
      if (!pushUntil(Math.floor(size / width))) break;
      const at: Finding = {
        problem: {
          kind: VERIFY_PROBLEMS.checkpointRoot,
          index: verifiedSize,
          checkpointSize: size,
          range: [verifiedSize, size],
        },
        leaf: size - 1,
        step: CHECKPOINT_STEP,
      };
      if (!earlier(at, first)) break;
      // MTH(D[0:size]): the subtrees above the block level, then the block's own leaves, folded.
      let root = partial ?? hashes[hashes.length - 1]!;
      for (let j = partial === null ? hashes.length - 2 : hashes.length - 1; j >= 0; j--) {
        root = nodeHash(hashes[j]!, root);
      }
      if (signed[i]!.size !== size) throw new RangeError('the ranges were given other checkpoint sizes');
      if (Buffer.compare(root, signed[i]!.root) !== 0) {
        first = at;
        break;
      }
      verifiedSize = size;
    }
    pushUntil(blocks.length);

    const finding = first as Finding | null;
    if (finding !== null) {
      this.#problems.push(finding.problem);
      this.#stopped = true;
      this.#entries = finding.step === CHECKPOINT_STEP ? finding.leaf + 1 : finding.leaf;
    } else {
      this.#entries = covered;
    }
    this.#verifiedSize = verifiedSize;
  }

  /** The pairs of consecutive verified checkpoints within the entries, whose consistency `finish` proves. */
  consistencyPairs(): [number, number][] {
    const covered = this.#signed.filter((c) => c.size <= this.#entries);
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
    const expected = this.#entries;
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
      entries: this.#entries,
      checkpoints: this.#signed.length,
      signedSize: this.#verifiedSize,
      unsignedEntries: this.#stopped ? 0 : this.#entries - this.#verifiedSize,
      firstBadIndex: indexes.length === 0 ? null : Math.min(...indexes),
      problems,
      keySource: this.#keySource,
      verifierKeys: this.#verifierKeys,
      threads: this.#threads,
    };
  }
}
