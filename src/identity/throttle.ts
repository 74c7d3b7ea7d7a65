import { THROTTLE_DEFAULTS } from './defaults.ts';
import type { IdentityStore, ThrottleRecord } from './store/store.ts';

/** One throttling rule (see THROTTLE_DEFAULTS for the meaning and the reasons of each number). */
export interface ThrottleRule {
  free: number;
  baseDelay: number;
  maxDelay: number;
  lockAt: number;
  lockDuration: number;
  forgetAfter: number;
}

export interface ThrottlePolicy {
  account: ThrottleRule;
  address: ThrottleRule;
  /** Wrong device-flow user codes, per address. */
  deviceCode: ThrottleRule;
}

/** Seconds an attempt must wait after `failures` consecutive failures (0: none). */
export function delayAfter(rule: ThrottleRule, failures: number): number {
  if (failures >= rule.lockAt) return rule.lockDuration;
  if (failures < rule.free) return 0;
  return Math.min(rule.maxDelay, rule.baseDelay * 2 ** (failures - rule.free));
}

/** The outcome of asking to try a password. */
export type AttemptGate = { allowed: true; attempt: Attempt } | { allowed: false; retryAfter: number; locked: boolean };

/** An admitted attempt: report how it ended, exactly once. */
export interface Attempt {
  /** The credentials were right: the username's counter is cleared, the address's attempt given back. */
  succeeded(): Promise<void>;
  /** Wrong credentials: the counters keep this attempt as a failure. Resolves with whether it locked the username. */
  failed(): Promise<{ locked: boolean }>;
}

export interface Throttle {
  /**
   * Admits an attempt for `username` from `address`, or refuses it with the seconds to wait. Each
   * admitted attempt is counted as a failure *before* the password is checked (and given back on
   * success), so a burst of parallel guesses cannot all slip in before the first failure is recorded.
   */
  begin(username: string, address: string): Promise<AttemptGate>;
  /** Forgets the username's failures (an administrator unlocking an account). */
  clear(username: string): Promise<void>;
}

const MAX_CAS_RETRIES = 5;

/**
 * Brute-force throttling keyed by the submitted username — whether or not such an account exists, so
 * lockouts reveal nothing about which accounts exist — and by the client address. State lives in the
 * store (compare-and-set), so every replica of the provider sees the same counters.
 */
export function createThrottle(
  store: IdentityStore,
  policy: Pick<ThrottlePolicy, 'account' | 'address'> = THROTTLE_DEFAULTS,
  now: () => number = Date.now,
): Throttle {
  const accountKey = (username: string) => `account:${username}`;
  const addressKey = (address: string) => `address:${address}`;

  /** Current failures of a key, forgetting them after `forgetAfter` seconds of quiet. */
  const current = (record: ThrottleRecord | undefined, rule: ThrottleRule, at: number) => {
    if (!record) return { stored: 0, failures: 0, notBefore: 0 };
    const stale = at - record.lastFailureAt > rule.forgetAfter * 1000;
    return { stored: record.failures, failures: stale ? 0 : record.failures, notBefore: stale ? 0 : record.notBefore };
  };

  /** Counts one more failure on `key` unless it must wait; null when admitted, else seconds to wait. */
  const claim = async (key: string, rule: ThrottleRule): Promise<{ wait: number; locked: boolean } | null> => {
    for (let i = 0; i < MAX_CAS_RETRIES; i++) {
      const at = now();
      const state = current(await store.getThrottle(key), rule, at);
      if (state.notBefore > at) {
        return { wait: Math.ceil((state.notBefore - at) / 1000), locked: state.failures >= rule.lockAt };
      }
      const failures = state.failures + 1;
      const next = { failures, lastFailureAt: at, notBefore: at + delayAfter(rule, failures) * 1000 };
      if (await store.casThrottle(key, state.stored, next)) return null;
    }
    // Contended beyond reason: someone is hammering this key. Refuse rather than admit unchecked.
    return { wait: 1, locked: false };
  };

  /** Gives one counted failure back (a successful attempt, or one refused by the other key). */
  const release = async (key: string, rule: ThrottleRule) => {
    for (let i = 0; i < MAX_CAS_RETRIES; i++) {
      const record = await store.getThrottle(key);
      if (!record || record.failures === 0) return;
      const failures = record.failures - 1;
      const next = {
        failures,
        lastFailureAt: record.lastFailureAt,
        notBefore: record.lastFailureAt + delayAfter(rule, failures) * 1000,
      };
      if (await store.casThrottle(key, record.failures, next)) return;
    }
  };

  return {
    async begin(username, address) {
      const ak = addressKey(address);
      const uk = accountKey(username);
      const byAddress = await claim(ak, policy.address);
      if (byAddress) return { allowed: false, retryAfter: byAddress.wait, locked: false };
      const byAccount = await claim(uk, policy.account);
      if (byAccount) {
        await release(ak, policy.address);
        return { allowed: false, retryAfter: byAccount.wait, locked: byAccount.locked };
      }
      let settled = false;
      const settle = () => {
        if (settled) throw new Error('attempt already settled');
        settled = true;
      };
      return {
        allowed: true,
        attempt: {
          async succeeded() {
            settle();
            await store.clearThrottle(uk);
            await release(ak, policy.address);
          },
          async failed() {
            settle();
            const record = await store.getThrottle(uk);
            return { locked: record !== undefined && record.failures === policy.account.lockAt };
          },
        },
      };
    },
    async clear(username) {
      await store.clearThrottle(accountKey(username));
    },
  };
}

/**
 * A counter of failures per key, for inputs the provider cannot gate before it knows the outcome
 * (device-flow user codes are checked inside oidc-provider): ask `waitFor` before accepting an input,
 * report `failed` after a wrong one. Same delays and lockout as {@link delayAfter}.
 */
export interface FailureLimiter {
  /** Seconds the key must still wait (0: it may try now). */
  waitFor(key: string): Promise<number>;
  failed(key: string): Promise<void>;
}

export function createFailureLimiter(
  store: IdentityStore,
  rule: ThrottleRule,
  now: () => number = Date.now,
): FailureLimiter {
  const fresh = (record: ThrottleRecord | undefined, at: number) =>
    record && at - record.lastFailureAt <= rule.forgetAfter * 1000 ? record : undefined;
  return {
    async waitFor(key) {
      const at = now();
      const record = fresh(await store.getThrottle(key), at);
      return record && record.notBefore > at ? Math.ceil((record.notBefore - at) / 1000) : 0;
    },
    async failed(key) {
      for (let i = 0; i < MAX_CAS_RETRIES; i++) {
        const at = now();
        const stored = await store.getThrottle(key);
        const failures = (fresh(stored, at)?.failures ?? 0) + 1;
        const next = { failures, lastFailureAt: at, notBefore: at + delayAfter(rule, failures) * 1000 };
        if (await store.casThrottle(key, stored?.failures ?? 0, next)) return;
      }
    },
  };
}
