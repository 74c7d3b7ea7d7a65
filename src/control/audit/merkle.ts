import { createHash, hash } from 'node:crypto';

/**
 * The Merkle tree of RFC 9162 §2.1 over SHA-256 (node:crypto), with inclusion and consistency proofs.
 *
 *   MTH({})      = SHA-256()                                   §2.1.1
 *   MTH({d0})    = SHA-256(0x00 ‖ d0)                           (leaf hash)
 *   MTH(D[n])    = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))   k = largest power of two < n
 *
 * Sizes and indexes are JavaScript numbers and every step uses arithmetic, never the 32-bit bitwise
 * operators, so trees up to 2^53 leaves are exact.
 *
 * Proofs are generated from a {@link SubtreeSource}: the hash of any perfect, aligned subtree (the
 * stored tree nodes). Any MTH(D[a:b]) the RFC's recursions ask for is a perfect subtree or splits
 * into at most log2(n) of them, so proofs cost O(log n) lookups whatever the size.
 */

/** Bytes in a SHA-256 hash. */
export const HASH_BYTES = 32;

/** The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1). */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

// One-shot crypto.hash over one buffer is about a third cheaper than a Hash object with several
// updates, and the verifier computes two hashes per entry: the prefix is copied in front instead.

/** SHA-256(0x00 ‖ entry): the hash of a leaf (RFC 9162 §2.1.1). */
export function leafHash(entry: Uint8Array): Buffer {
  const data = Buffer.allocUnsafe(1 + entry.length);
  data[0] = 0x00;
  data.set(entry, 1);
  return hash('sha256', data, 'buffer');
}

/** SHA-256(0x01 ‖ left ‖ right): the hash of an interior node (RFC 9162 §2.1.1). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  const data = Buffer.allocUnsafe(1 + left.length + right.length);
  data[0] = 0x01;
  data.set(left, 1);
  data.set(right, 1 + left.length);
  return hash('sha256', data, 'buffer');
}

/** The largest power of two strictly less than `n` (n ≥ 2): the RFC's split point k. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** log2(n) when n is a power of two, else -1. */
function exactLog2(n: number): number {
  let level = 0;
  let p = 1;
  while (p < n) {
    p *= 2;
    level++;
  }
  return p === n ? level : -1;
}

/** Where proofs read subtree hashes from. */
export interface SubtreeSource {
  /**
   * The hash of the perfect subtree at `level` whose leaves are [index·2^level, (index+1)·2^level):
   * level 0 is a leaf hash. Called only for subtrees inside the tree the proof is about.
   */
  perfect(level: number, index: number): Uint8Array;
}

/** A {@link SubtreeSource} over leaf hashes in memory (tests, small trees); computes on demand. */
export function memorySource(leaves: readonly Uint8Array[]): SubtreeSource {
  const cache = new Map<string, Uint8Array>();
  const perfect = (level: number, index: number): Uint8Array => {
    if (level === 0) {
      const leaf = leaves[index];
      if (leaf === undefined) throw new RangeError(`no leaf ${index}`);
      return leaf;
    }
    const key = `${level}/${index}`;
    let hash = cache.get(key);
    if (hash === undefined) {
      hash = nodeHash(perfect(level - 1, index * 2), perfect(level - 1, index * 2 + 1));
      cache.set(key, hash);
    }
    return hash;
  };
  return { perfect };
}

/** MTH(D[lo:hi]) from the source (§2.1.1), hi > lo. */
export function subtreeHash(source: SubtreeSource, lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  if (n === 1) return source.perfect(0, lo);
  const level = exactLog2(n);
  if (level > 0 && lo % n === 0) return source.perfect(level, lo / n);
  const k = splitPoint(n);
  return nodeHash(subtreeHash(source, lo, lo + k), subtreeHash(source, lo + k, hi));
}

/** MTH(D[0:size]): the root of the tree of the first `size` leaves. */
export function rootAt(source: SubtreeSource, size: number): Uint8Array {
  checkSize(size);
  return size === 0 ? EMPTY_ROOT : subtreeHash(source, 0, size);
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError('tree size must be a non-negative safe integer');
}

/**
 * The inclusion proof (audit path) of leaf `index` in the tree of `size` leaves: PATH(m, D[n]) of
 * RFC 9162 §2.1.3.1, nodes from the leaf's sibling up to the root's child.
 */
export function inclusionProof(source: SubtreeSource, index: number, size: number): Uint8Array[] {
  checkSize(size);
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) throw new RangeError('leaf index out of range');
  const proof: Uint8Array[] = [];
  const path = (m: number, lo: number, hi: number): void => {
    const n = hi - lo;
    if (n === 1) return; // PATH(0, {d0}) = {}
    const k = splitPoint(n);
    if (m < k) {
      path(m, lo, lo + k); // PATH(m, D[0:k]) : MTH(D[k:n])
      proof.push(subtreeHash(source, lo + k, hi));
    } else {
      path(m - k, lo + k, hi); // PATH(m - k, D[k:n]) : MTH(D[0:k])
      proof.push(subtreeHash(source, lo, lo + k));
    }
  };
  path(index, 0, size);
  return proof;
}

/**
 * The consistency proof between the trees of `first` and `second` leaves: PROOF(m, D[n]) of RFC 9162
 * §2.1.4.1. Empty when first is 0 or equals second (nothing to prove).
 */
export function consistencyProof(source: SubtreeSource, first: number, second: number): Uint8Array[] {
  checkSize(first);
  checkSize(second);
  if (first > second) throw new RangeError('first tree size is larger than the second');
  const proof: Uint8Array[] = [];
  if (first === 0 || first === second) return proof;
  const subproof = (m: number, lo: number, hi: number, complete: boolean): void => {
    const n = hi - lo;
    if (m === n) {
      // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
      if (!complete) proof.push(subtreeHash(source, lo, hi));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      subproof(m, lo, lo + k, complete); // SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
      proof.push(subtreeHash(source, lo + k, hi));
    } else {
      subproof(m - k, lo + k, hi, false); // SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
      proof.push(subtreeHash(source, lo, lo + k));
    }
  };
  subproof(first, 0, second, true);
  return proof;
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_BYTES;
}

function equalHashes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

const odd = (n: number) => n % 2 === 1;
const half = (n: number) => Math.floor(n / 2);

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1–5 without the final comparison),
 * or null when the proof cannot belong to a tree of that size (index out of range, wrong length,
 * malformed hashes).
 */
export function rootFromInclusionProof(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0) return null;
  // 1. leaf_index must be < tree_size.
  if (index >= size) return null;
  if (!isHash(leaf) || !proof.every(isHash)) return null;
  // 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = leaf;
  // 4. For each p in inclusion_path:
  for (const p of proof) {
    // a. If sn is 0, the path is too long.
    if (sn === 0) return null;
    // b. If LSB(fn) is set, or fn equals sn: r = HASH(0x01 ‖ p ‖ r), then, if LSB(fn) is not set,
    //    shift fn and sn right until LSB(fn) is set or fn is 0. Otherwise r = HASH(0x01 ‖ r ‖ p).
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    // c. Shift fn and sn right once.
    fn = half(fn);
    sn = half(sn);
  }
  // 5. sn must be 0 (the path was long enough).
  return sn === 0 ? r : null;
}

/** RFC 9162 §2.1.3.2: true when `proof` proves `leaf` is leaf `index` of the tree of `size` with `root`. */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isHash(root)) return false;
  const computed = rootFromInclusionProof(index, size, leaf, proof);
  return computed !== null && equalHashes(computed, root);
}

/**
 * RFC 9162 §2.1.4.2: true when `proof` shows the tree of `first` leaves with root `firstRoot` is a
 * prefix of the tree of `second` leaves with root `secondRoot`. The RFC's algorithm covers
 * 0 < first < second; the trivial cases are: equal sizes need equal roots and an empty proof; the
 * empty tree (root SHA-256()) is a prefix of every tree, with an empty proof.
 */
export function verifyConsistency(
  first: number,
  second: number,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || second < first) return false;
  if (!isHash(firstRoot) || !isHash(secondRoot) || !proof.every(isHash)) return false;
  if (first === second) return proof.length === 0 && equalHashes(firstRoot, secondRoot);
  if (first === 0) return proof.length === 0 && equalHashes(firstRoot, EMPTY_ROOT);
  // 1. An empty consistency_path fails.
  if (proof.length === 0) return false;
  // 2. If first is an exact power of 2, prepend first_hash.
  const path = exactLog2(first) >= 0 ? [firstRoot, ...proof] : [...proof];
  // 3. fn = first - 1, sn = second - 1.
  let fn = first - 1;
  let sn = second - 1;
  // 4. While LSB(fn) is set, shift fn and sn right.
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // 5. fr = sr = the first value of the path.
  let fr = path[0]!;
  let sr = path[0]!;
  // 6. For each subsequent value c:
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    // a. If sn is 0, the path is too long.
    if (sn === 0) return false;
    // b. If LSB(fn) is set or fn equals sn: fr = HASH(0x01 ‖ c ‖ fr), sr = HASH(0x01 ‖ c ‖ sr); then,
    //    if LSB(fn) is not set, shift fn and sn right until LSB(fn) is set or fn is 0.
    //    Otherwise: sr = HASH(0x01 ‖ sr ‖ c).
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    // c. Shift fn and sn right once.
    fn = half(fn);
    sn = half(sn);
  }
  // 7. fr must equal first_hash, sr second_hash, and sn must be 0.
  return sn === 0 && equalHashes(fr, firstRoot) && equalHashes(sr, secondRoot);
}

/** A node a {@link Frontier} completed while appending: the hash of a perfect subtree. */
export interface CompletedNode {
  level: number;
  index: number;
  hash: Buffer;
}

/**
 * The compact frontier of a tree: the roots of the perfect subtrees that make up D[0:size] (one per
 * set bit of `size`, largest first). Appending a leaf costs O(log n) hashes and reports every perfect
 * subtree it completed (the nodes a store keeps); the root at the current size is a fold of at most
 * log2(n) hashes.
 */
export class Frontier {
  #size: number;
  #levels: number[];
  #hashes: Buffer[];

  private constructor(size: number, levels: number[], hashes: Buffer[]) {
    this.#size = size;
    this.#levels = levels;
    this.#hashes = hashes;
  }

  /** An empty tree. */
  static empty(): Frontier {
    return new Frontier(0, [], []);
  }

  /** The frontier of the first `size` leaves of `source` (log2(size) lookups). */
  static fromSource(source: SubtreeSource, size: number): Frontier {
    checkSize(size);
    const levels: number[] = [];
    const hashes: Buffer[] = [];
    let offset = 0;
    for (let level = 52; level >= 0; level--) {
      const width = 2 ** level;
      if (size - offset >= width) {
        levels.push(level);
        hashes.push(Buffer.from(source.perfect(level, offset / width)));
        offset += width;
      }
    }
    return new Frontier(size, levels, hashes);
  }

  get size(): number {
    return this.#size;
  }

  /** Appends a leaf hash; returns the nodes completed, the leaf itself (level 0) first. */
  push(leaf: Buffer): CompletedNode[] {
    let hash = leaf;
    let level = 0;
    let index = this.#size;
    const completed: CompletedNode[] = [{ level, index, hash }];
    while (this.#levels.length > 0 && this.#levels[this.#levels.length - 1] === level) {
      this.#levels.pop();
      hash = nodeHash(this.#hashes.pop()!, hash);
      level++;
      index = half(index);
      completed.push({ level, index, hash });
    }
    this.#levels.push(level);
    this.#hashes.push(hash);
    this.#size++;
    return completed;
  }

  /** MTH of the leaves appended so far. */
  root(): Buffer {
    if (this.#hashes.length === 0) return EMPTY_ROOT;
    let root = this.#hashes[this.#hashes.length - 1]!;
    for (let i = this.#hashes.length - 2; i >= 0; i--) root = nodeHash(this.#hashes[i]!, root);
    return root;
  }

  /** A copy to return to if a transaction fails. */
  clone(): Frontier {
    return new Frontier(this.#size, [...this.#levels], [...this.#hashes]);
  }
}
