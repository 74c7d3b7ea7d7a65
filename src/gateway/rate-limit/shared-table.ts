import { createHmac, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { RampartError } from '../../core/errors.ts';
import { RATE_LIMIT_DEFAULTS } from './defaults.ts';
import { assertGcraInput, GCRA_EPOCH_MS, type GcraDecision, type GcraPolicy, gcra } from './gcra.ts';
import type { RateLimitBackend } from './store.ts';

/**
 * What a worker needs to use the table: post it with `worker.postMessage` or pass it in `workerData`
 * (a SharedArrayBuffer is shared, not copied, by structured clone), then call
 * {@link SharedRateLimitTable.attach}. The secret is part of it because every thread must place a key
 * in the same bucket.
 */
export interface SharedTableTransferable {
  readonly buffer: SharedArrayBuffer;
  readonly secret: Uint8Array;
}

export interface SharedTableOptions {
  /** Keys held at once, for the whole gateway. Default {@link RATE_LIMIT_DEFAULTS.capacity}. */
  capacity?: number;
}

export interface SharedTableStats {
  /** Keys the table was sized for. */
  readonly capacity: number;
  readonly buckets: number;
  readonly slotsPerBucket: number;
  /** Size of the shared memory, in bytes. */
  readonly bytes: number;
  /** Live keys with a TAT after `now` were dropped to make room, since creation (all threads). */
  readonly evictions: number;
  /** Buckets taken over from a thread that died holding them (see RATE_LIMIT_DEFAULTS.lockStaleMs). */
  readonly lockTakeovers: number;
}

/*
 * Layout of the SharedArrayBuffer (all little-endian typed arrays over one buffer):
 *
 *   0   Int32[8]      header: MAGIC, LAYOUT_VERSION, buckets, slotsPerBucket, capacity, 0, 0, 0
 *   32  BigInt64[2]   counters: evictions, lock takeovers (Atomics.add)
 *   48  Int32[B]      bucket locks: 0 free, 1 held, 2 held with sleepers (a futex mutex, Drepper's
 *                     "Futexes Are Tricky", mutex 3, with a short spin first)
 *   ..  Int32[B]      bucket turns: bumped by every holder, so a waiter can tell a busy bucket from a
 *                     dead holder's
 *   ..  Uint32[2·S]   slot fingerprints: 64 bits of HMAC-SHA-256(secret, route ‖ key); 0:0 is an empty slot
 *   ..  Float64[S]    slot TATs in milliseconds since GCRA_EPOCH_MS
 *
 * B buckets of `slotsPerBucket` slots, S = B · slotsPerBucket. 16 bytes per slot, 8 per bucket.
 */
const MAGIC = 0x31_54_4c_52; // "RLT1"
const LAYOUT_VERSION = 1;
const HEADER_INTS = 8;
const COUNTERS_OFFSET = HEADER_INTS * 4;
const LOCKS_OFFSET = COUNTERS_OFFSET + 16;
const EVICTIONS = 0;
const TAKEOVERS = 1;

interface Layout {
  buckets: number;
  slotsPerBucket: number;
  capacity: number;
  turnsOffset: number;
  keysOffset: number;
  tatsOffset: number;
  bytes: number;
}

function layoutFor(buckets: number, slotsPerBucket: number, capacity: number): Layout {
  const turnsOffset = LOCKS_OFFSET + buckets * 4;
  const keysOffset = align8(turnsOffset + buckets * 4);
  const slots = buckets * slotsPerBucket;
  const tatsOffset = keysOffset + slots * 8;
  return { buckets, slotsPerBucket, capacity, turnsOffset, keysOffset, tatsOffset, bytes: tatsOffset + slots * 8 };
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function tableError(reason: string, detail: Record<string, unknown> = {}): RampartError {
  return new RampartError('GW_ERR_RATE_LIMIT_TABLE', 'rate limit table rejected', { detail: { reason, ...detail } });
}

/**
 * The gateway's in-memory rate-limit state: one fixed-size GCRA table in a SharedArrayBuffer that every
 * worker thread attaches, so a limit holds exactly for the gateway as a whole, with no message passing
 * per request (issue 3, §4).
 *
 * - **Keyed placement.** A key's bucket and fingerprint come from HMAC-SHA-256 under a random secret
 *   made with the table, so nobody outside can compute which keys share a bucket and flood one to push
 *   a victim's key out (hash-flooding, as SipHash answers for hash tables).
 * - **One lock per bucket**, taken for a few loads and stores; threads touching different buckets never
 *   meet.
 * - **Constant memory**: capacity is fixed at creation; 16 bytes per slot, 2 slots per key of capacity.
 * - **Full bucket**: a new key reuses a slot whose TAT has passed (it carries no information: an absent
 *   key and a past TAT decide the same), else evicts the smallest TAT. Trade-off: the evicted key starts
 *   again with a full burst, so it may get up to `(TAT − now) / interval` requests more than its limit;
 *   the smallest TAT is the key with the least quota outstanding, so that excess is the smallest
 *   possible. Only admitted requests insert keys, and the keyed hash keeps a flood of fresh keys spread
 *   over all buckets, so reaching a given victim takes filling the whole table.
 */
export class SharedRateLimitTable implements RateLimitBackend {
  /** Post this to workers; they call {@link SharedRateLimitTable.attach} with it. */
  readonly transferable: SharedTableTransferable;
  readonly #layout: Layout;
  readonly #locks: Int32Array;
  readonly #turns: Int32Array;
  readonly #keys: Uint32Array;
  readonly #tats: Float64Array;
  readonly #counters: BigInt64Array;
  readonly #secret: KeyObject;
  // Per-thread digest cache in two generations (O(1), bounded, hot keys survive a rollover). Maps hold
  // small integers into one typed array, so cached entries create no objects for the GC to promote.
  readonly #ring = new Uint32Array(2 * RATE_LIMIT_DEFAULTS.digestCacheSize * 3);
  #recent = new Map<string, number>();
  #older = new Map<string, number>();
  #half = 0;
  // The placement #place computed last (single-threaded per instance; read right after the call).
  #hi = 0;
  #lo = 0;
  #bucket = 0;

  private constructor(transferable: SharedTableTransferable, layout: Layout) {
    const { buffer } = transferable;
    this.transferable = transferable;
    this.#layout = layout;
    this.#locks = new Int32Array(buffer, LOCKS_OFFSET, layout.buckets);
    this.#turns = new Int32Array(buffer, layout.turnsOffset, layout.buckets);
    this.#keys = new Uint32Array(buffer, layout.keysOffset, layout.buckets * layout.slotsPerBucket * 2);
    this.#tats = new Float64Array(buffer, layout.tatsOffset, layout.buckets * layout.slotsPerBucket);
    this.#counters = new BigInt64Array(buffer, COUNTERS_OFFSET, 2);
    this.#secret = createSecretKey(transferable.secret);
  }

  /** Allocates a table for `capacity` keys with a fresh random secret. */
  static create(options: SharedTableOptions = {}): SharedRateLimitTable {
    const capacity = options.capacity ?? RATE_LIMIT_DEFAULTS.capacity;
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > RATE_LIMIT_DEFAULTS.maxCapacity) {
      throw tableError('capacity', { capacity, max: RATE_LIMIT_DEFAULTS.maxCapacity });
    }
    const slotsPerBucket = RATE_LIMIT_DEFAULTS.slotsPerBucket;
    const buckets = Math.ceil((capacity * RATE_LIMIT_DEFAULTS.slotsPerKey) / slotsPerBucket);
    const layout = layoutFor(buckets, slotsPerBucket, capacity);
    const buffer = new SharedArrayBuffer(layout.bytes);
    const header = new Int32Array(buffer, 0, HEADER_INTS);
    header.set([MAGIC, LAYOUT_VERSION, buckets, slotsPerBucket, capacity]);
    const secret = new Uint8Array(new SharedArrayBuffer(RATE_LIMIT_DEFAULTS.secretBytes));
    secret.set(randomBytes(RATE_LIMIT_DEFAULTS.secretBytes));
    return new SharedRateLimitTable({ buffer, secret }, layout);
  }

  /** Uses a table created in another thread. Refuses anything that is not such a table. */
  static attach(transferable: SharedTableTransferable): SharedRateLimitTable {
    const { buffer, secret } = (transferable ?? {}) as Partial<SharedTableTransferable>;
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < LOCKS_OFFSET) throw tableError('buffer');
    if (!(secret instanceof Uint8Array) || secret.byteLength !== RATE_LIMIT_DEFAULTS.secretBytes) {
      throw tableError('secret');
    }
    const [magic, version, buckets = 0, slotsPerBucket = 0, capacity = 0] = new Int32Array(buffer, 0, HEADER_INTS);
    if (magic !== MAGIC || version !== LAYOUT_VERSION) throw tableError('header', { magic, version });
    if (buckets < 1 || slotsPerBucket < 1 || capacity < 1) throw tableError('geometry', { buckets, slotsPerBucket });
    const layout = layoutFor(buckets, slotsPerBucket, capacity);
    if (layout.bytes !== buffer.byteLength)
      throw tableError('size', { expected: layout.bytes, actual: buffer.byteLength });
    return new SharedRateLimitTable({ buffer, secret }, layout);
  }

  /** Decides one request for `key` on `routeId` at `now` (epoch ms); admitted requests spend quota. */
  take(routeId: string, key: string, policy: GcraPolicy, now: number): GcraDecision {
    assertGcraInput(policy, now);
    const t = now - GCRA_EPOCH_MS;
    this.#place(routeId, key);
    const hi = this.#hi;
    const lo = this.#lo;
    const bucket = this.#bucket;
    const keys = this.#keys;
    const tats = this.#tats;
    const first = bucket * this.#layout.slotsPerBucket;
    const end = first + this.#layout.slotsPerBucket;
    this.#lock(bucket);
    try {
      let found = -1;
      let empty = -1;
      for (let slot = first; slot < end; slot++) {
        const h = keys[2 * slot]!;
        const l = keys[2 * slot + 1]!;
        if (h === hi && l === lo) {
          found = slot;
          break;
        }
        if (empty === -1 && h === 0 && l === 0) empty = slot;
      }
      const decision = gcra(policy, found === -1 ? undefined : tats[found], t);
      if (decision.allowed) {
        const slot = found !== -1 ? found : empty !== -1 ? empty : this.#victim(first, end, t);
        keys[2 * slot] = hi;
        keys[2 * slot + 1] = lo;
        tats[slot] = decision.tat;
      }
      return decision;
    } finally {
      this.#unlock(bucket);
    }
  }

  /** Counters and geometry, for metrics and benchmarks. */
  stats(): SharedTableStats {
    return {
      capacity: this.#layout.capacity,
      buckets: this.#layout.buckets,
      slotsPerBucket: this.#layout.slotsPerBucket,
      bytes: this.#layout.bytes,
      evictions: Number(Atomics.load(this.#counters, EVICTIONS)),
      lockTakeovers: Number(Atomics.load(this.#counters, TAKEOVERS)),
    };
  }

  /** Keys whose TAT is after `now` (they still limit someone). Scans the whole table: for tests and benchmarks. */
  liveKeys(now: number): number {
    const t = now - GCRA_EPOCH_MS;
    let live = 0;
    for (let slot = 0; slot < this.#tats.length; slot++) {
      if ((this.#keys[2 * slot] !== 0 || this.#keys[2 * slot + 1] !== 0) && this.#tats[slot]! > t) live++;
    }
    return live;
  }

  /** The bucket `key` of `routeId` lives in: depends on the table's secret. For tests and diagnostics. */
  bucketOf(routeId: string, key: string): number {
    this.#place(routeId, key);
    return this.#bucket;
  }

  /** Nothing to release: the memory goes when the last thread drops its reference. */
  async close(): Promise<void> {}

  /** The slot a new key takes in a full bucket: the first expired one, else the smallest TAT. */
  #victim(first: number, end: number, now: number): number {
    let victim = first;
    for (let slot = first; slot < end; slot++) {
      if (this.#tats[slot]! <= now) return slot;
      if (this.#tats[slot]! < this.#tats[victim]!) victim = slot;
    }
    Atomics.add(this.#counters, EVICTIONS, 1n);
    return victim;
  }

  /** Sets #hi, #lo and #bucket for (route, key): from the digest cache, else by HMAC. Allocates nothing on a hit. */
  #place(routeId: string, key: string): void {
    // The route id is length-prefixed so no (route, key) pair can spell another; UTF-16 code units are
    // hashed as they are, so distinct strings (lone surrogates included) never share a digest input.
    const input = `${routeId.length}:${routeId}${key}`;
    const ring = this.#ring;
    let at = this.#recent.get(input);
    if (at !== undefined) {
      this.#hi = ring[at]!;
      this.#lo = ring[at + 1]!;
      this.#bucket = ring[at + 2]!;
      return;
    }
    at = this.#older.get(input);
    if (at !== undefined) {
      this.#hi = ring[at]!;
      this.#lo = ring[at + 1]!;
      this.#bucket = ring[at + 2]!;
    } else {
      const digest = createHmac('sha256', this.#secret).update(input, 'utf16le').digest();
      this.#hi = digest.readUInt32LE(0);
      // 0:0 marks an empty slot; the one fingerprint that would spell it becomes 0:1.
      this.#lo = digest.readUInt32LE(4) || (this.#hi === 0 ? 1 : 0);
      this.#bucket = digest.readUInt32LE(8) % this.#layout.buckets;
    }
    if (input.length > RATE_LIMIT_DEFAULTS.digestCacheKeyChars) return;
    const size = RATE_LIMIT_DEFAULTS.digestCacheSize;
    if (this.#recent.size >= size) {
      // The oldest generation goes; the new one reuses its half of the ring.
      this.#older = this.#recent;
      this.#recent = new Map();
      this.#half ^= 1;
    }
    at = (this.#half * size + this.#recent.size) * 3;
    ring[at] = this.#hi;
    ring[at + 1] = this.#lo;
    ring[at + 2] = this.#bucket;
    this.#recent.set(input, at);
  }

  #lock(bucket: number): void {
    const locks = this.#locks;
    let state = Atomics.compareExchange(locks, bucket, 0, 1);
    if (state === 0) {
      this.#turns[bucket] = (this.#turns[bucket]! + 1) | 0;
      return;
    }
    for (let spin = 0; spin < RATE_LIMIT_DEFAULTS.lockSpins; spin++) {
      if (Atomics.load(locks, bucket) === 0) {
        state = Atomics.compareExchange(locks, bucket, 0, 1);
        if (state === 0) {
          this.#turns[bucket] = (this.#turns[bucket]! + 1) | 0;
          return;
        }
      }
    }
    // Sleep until woken by an unlock. State 2 tells the holder to wake someone when it leaves.
    if (state !== 2) state = Atomics.exchange(locks, bucket, 2);
    let turn = Atomics.load(this.#turns, bucket);
    let stuckSince = Date.now();
    while (state !== 0) {
      Atomics.wait(locks, bucket, 2, RATE_LIMIT_DEFAULTS.lockWaitSliceMs);
      state = Atomics.exchange(locks, bucket, 2);
      if (state === 0) break;
      const now = Date.now();
      const seen = Atomics.load(this.#turns, bucket);
      if (seen !== turn) {
        turn = seen;
        stuckSince = now;
      } else if (now - stuckSince >= RATE_LIMIT_DEFAULTS.lockStaleMs) {
        // Nobody got this bucket for a whole second: its holder died inside the critical section.
        // We hold it now (we stored 2); the worst left behind is one half-written slot.
        Atomics.add(this.#counters, TAKEOVERS, 1n);
        break;
      }
    }
    this.#turns[bucket] = (this.#turns[bucket]! + 1) | 0;
  }

  #unlock(bucket: number): void {
    if (Atomics.sub(this.#locks, bucket, 1) !== 1) {
      Atomics.store(this.#locks, bucket, 0);
      Atomics.notify(this.#locks, bucket, 1);
    }
  }
}
