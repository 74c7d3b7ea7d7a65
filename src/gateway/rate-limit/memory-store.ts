import { type GcraDecision, type GcraPolicy, gcra } from './gcra.ts';

/**
 * In-process GCRA state: a Map from key to TAT. Bounded: when full, entries whose TAT has passed are
 * swept (they carry no information: an absent key and a past TAT decide the same), and if it is still
 * full the oldest insertion is evicted. No per-key timers (@nestjs/throttler's per-hit timers exhausted
 * memory); memory is one number and one key string per client.
 */
export class MemoryRateLimitStore {
  readonly #tats = new Map<string, number>();
  readonly #maxKeys: number;

  constructor(maxKeys: number) {
    this.#maxKeys = maxKeys;
  }

  get size(): number {
    return this.#tats.size;
  }

  take(key: string, policy: GcraPolicy, now: number): GcraDecision {
    const decision = gcra(policy, this.#tats.get(key), now);
    if (decision.allowed) {
      if (!this.#tats.has(key) && this.#tats.size >= this.#maxKeys) this.#makeRoom(now);
      this.#tats.set(key, decision.tat);
    }
    return decision;
  }

  #makeRoom(now: number): void {
    for (const [key, tat] of this.#tats) if (tat <= now) this.#tats.delete(key);
    if (this.#tats.size >= this.#maxKeys) {
      const oldest = this.#tats.keys().next();
      if (!oldest.done) this.#tats.delete(oldest.value);
    }
  }
}
