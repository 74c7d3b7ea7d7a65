import { argon2, randomBytes, timingSafeEqual } from 'node:crypto';
import { ARGON2_DEFAULTS } from '../defaults.ts';

/** argon2id cost parameters (RFC 9106 §3.1). `memory` is in KiB. */
export interface Argon2Params {
  memory: number;
  passes: number;
  parallelism: number;
  tagLength: number;
  saltLength: number;
}

/** Hashes are PHC strings: `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>` (unpadded base64, as argon2's reference tools write them). */
const PHC = /^\$argon2id\$v=19\$m=(\d{1,8}),t=(\d{1,3}),p=(\d{1,2})\$([A-Za-z0-9+/]{11,86})\$([A-Za-z0-9+/]{22,86})$/;

/** Floors below which a stored hash is refused outright (a tampered row must not make verification cheap). */
const MIN = { memory: 8 * 1024, passes: 1, tagLength: 16, saltLength: 8 };

export interface PasswordHasher {
  readonly params: Readonly<Argon2Params>;
  /** PHC string of argon2id over the NFKC form of `password`. */
  hash(password: string): Promise<string>;
  /**
   * True when `password` matches `phc`. Always runs one full argon2id computation with the stored
   * parameters, and compares in constant time. A malformed `phc` is verified against the dummy hash
   * (same cost) and returns false.
   */
  verify(phc: string, password: string): Promise<boolean>;
  /** Runs a verification that cannot succeed, at the cost of a real one (unknown users: no enumeration by timing). */
  verifyDummy(password: string): Promise<false>;
  /** True when `phc` was made with weaker parameters than the current ones (rehash at next login). */
  needsRehash(phc: string): boolean;
}

/**
 * Passwords are normalized to NFKC before hashing (SP 800-63B-4 §3.1.1.2: normalize Unicode so the same
 * password typed on two keyboards matches); nothing is truncated: argon2 takes the whole input.
 */
function encode(password: string): Buffer {
  return Buffer.from(password.normalize('NFKC'), 'utf8');
}

function b64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}

function parse(phc: string): { params: Argon2Params; salt: Buffer; hash: Buffer } | null {
  const m = PHC.exec(phc);
  if (!m) return null;
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  const params: Argon2Params = {
    memory: Number(m[1]),
    passes: Number(m[2]),
    parallelism: Number(m[3]),
    tagLength: hash.length,
    saltLength: salt.length,
  };
  if (
    params.memory < MIN.memory ||
    params.memory > 4 * 1024 * 1024 ||
    params.passes < MIN.passes ||
    params.parallelism < 1 ||
    params.tagLength < MIN.tagLength ||
    params.saltLength < MIN.saltLength
  ) {
    return null;
  }
  return { params, salt, hash };
}

/** A counting semaphore: at most `limit` argon2 computations at once (each holds `memory` KiB). */
function limiter(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: (() => void)[] = [];
  return async (fn) => {
    if (running >= limit) await new Promise<void>((resolve) => queue.push(resolve));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      queue.shift()?.();
    }
  };
}

export function createPasswordHasher(
  overrides: Partial<Argon2Params & { maxConcurrent: number }> = {},
): PasswordHasher {
  const { maxConcurrent, ...rest } = { ...ARGON2_DEFAULTS, ...overrides };
  const params: Argon2Params = Object.freeze({
    memory: rest.memory,
    passes: rest.passes,
    parallelism: rest.parallelism,
    tagLength: rest.tagLength,
    saltLength: rest.saltLength,
  });
  const run = limiter(maxConcurrent);
  const derive = (message: Buffer, salt: Buffer, p: Argon2Params) =>
    run(
      () =>
        new Promise<Buffer>((resolve, reject) =>
          argon2(
            'argon2id',
            {
              message,
              nonce: salt,
              memory: p.memory,
              passes: p.passes,
              parallelism: p.parallelism,
              tagLength: p.tagLength,
            },
            (err, key) => (err ? reject(err) : resolve(key)),
          ),
        ),
    );
  const format = (p: Argon2Params, salt: Buffer, hash: Buffer) =>
    `$argon2id$v=19$m=${p.memory},t=${p.passes},p=${p.parallelism}$${b64(salt)}$${b64(hash)}`;

  // The dummy: a real hash of a random secret with the current parameters, made once, so an unknown
  // user costs exactly what a known one does.
  let dummy: Promise<{ params: Argon2Params; salt: Buffer; hash: Buffer }> | null = null;
  const dummyHash = () => {
    dummy ??= (async () => {
      const salt = randomBytes(params.saltLength);
      return { params, salt, hash: await derive(randomBytes(32), salt, params) };
    })();
    return dummy;
  };

  const compare = async (target: { params: Argon2Params; salt: Buffer; hash: Buffer }, password: string) => {
    const computed = await derive(encode(password), target.salt, target.params);
    return computed.length === target.hash.length && timingSafeEqual(computed, target.hash);
  };

  return {
    params,
    async hash(password) {
      const salt = randomBytes(params.saltLength);
      return format(params, salt, await derive(encode(password), salt, params));
    },
    async verify(phc, password) {
      const parsed = parse(phc);
      if (!parsed) {
        await compare(await dummyHash(), password);
        return false;
      }
      return compare(parsed, password);
    },
    async verifyDummy(password) {
      await compare(await dummyHash(), password);
      return false;
    },
    needsRehash(phc) {
      const parsed = parse(phc);
      if (!parsed) return true;
      const p = parsed.params;
      return (
        p.memory < params.memory ||
        p.passes < params.passes ||
        p.tagLength < params.tagLength ||
        p.saltLength < params.saltLength
      );
    },
  };
}
