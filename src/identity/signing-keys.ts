import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { IDENTITY_DEFAULTS } from './defaults.ts';
import { IDP_ERRORS, idpError } from './errors.ts';
import type { Sealer } from './sealing.ts';
import type { IdentityStore, KeyState, SigningKeyRecord } from './store/store.ts';

/**
 * The provider's signing keys and their rotation. At any time the key set holds:
 *
 * - `current`: the one key that signs;
 * - `next`: published in the JWKS but not signing yet, so every verifier has fetched it before the
 *   first token signed with it arrives (no verifier ever meets an unknown `kid` after a rotation);
 * - `previous` (after the first rotation): no longer signs, still published so tokens it signed stay
 *   verifiable until they expire.
 *
 * `rotate` promotes next → current and current → previous, drops the older previous, and generates a
 * new next. It refuses while the next key is younger than the verifiers' JWKS freshness
 * (IDENTITY_DEFAULTS.keyPublishLeadTime) unless forced. Private keys are sealed with the KEK; the
 * store holds no private key in clear.
 */
export interface KeySet {
  readonly version: number;
  readonly keys: readonly SigningKeyRecord[];
}

export interface RotationResult {
  /** kid of the key that signs from now on. */
  current: string;
  /** kid of the newly published key. */
  next: string;
  /** kid of the key kept for verification, if any. */
  previous: string | null;
  version: number;
}

function keyContext(kid: string): string {
  return `rampart/identity/signing-key/v1/${kid}`;
}

/** A fresh key pair for `alg` (ES256 or EdDSA), its public JWK and its sealed private JWK. */
export async function generateSigningKey(
  kek: Sealer,
  alg: string,
  state: KeyState,
  now: number,
): Promise<SigningKeyRecord> {
  const pair =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : null;
  if (!pair) throw idpError(IDP_ERRORS.config, 'unsupported signing algorithm', { status: 500, detail: { alg } });
  const privateJwk = pair.privateKey.export({ format: 'jwk' }) as JWK;
  const publicJwk = pair.publicKey.export({ format: 'jwk' }) as JWK;
  // RFC 7638 thumbprint as kid: stable, derived from the key, and unique per key.
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const plain = Buffer.from(JSON.stringify({ ...privateJwk, kid, alg, use: 'sig' }), 'utf8');
  try {
    return {
      kid,
      alg,
      state,
      publicJwk: { ...publicJwk, kid, alg, use: 'sig' },
      privateJwk: kek.wrap(plain, keyContext(kid)),
      createdAt: now,
      stateSince: now,
    };
  } finally {
    plain.fill(0);
  }
}

/** Reads the key set; creates the first current + next pair when the store has none. */
export async function ensureKeys(store: IdentityStore, kek: Sealer, alg: string, now: number): Promise<KeySet> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const version = await store.keysVersion();
    const keys = await store.listKeys();
    if (keys.some((k) => k.state === 'current')) return { version, keys };
    const fresh = [await generateSigningKey(kek, alg, 'current', now), await generateSigningKey(kek, alg, 'next', now)];
    const written = await store.replaceKeys(fresh, version);
    if (written !== null) return { version: written, keys: fresh };
    // Another replica created them first: read theirs.
  }
  throw idpError(IDP_ERRORS.store, 'could not initialise signing keys', { status: 500 });
}

export interface RotateOptions {
  alg: string;
  now: number;
  /** Rotate even if the next key was published less than `leadTime` seconds ago. */
  force?: boolean;
  leadTime?: number;
}

/** Rotates the key set (see {@link KeySet}). Throws IDP_ERR_ROTATION_TOO_EARLY. */
export async function rotateKeys(store: IdentityStore, kek: Sealer, options: RotateOptions): Promise<RotationResult> {
  const leadTime = options.leadTime ?? IDENTITY_DEFAULTS.keyPublishLeadTime;
  const version = await store.keysVersion();
  const keys = await store.listKeys();
  const current = keys.find((k) => k.state === 'current');
  const next = keys.find((k) => k.state === 'next');
  if (!current || !next) throw idpError(IDP_ERRORS.store, 'the key set is incomplete', { status: 500 });
  const age = (options.now - next.stateSince) / 1000;
  if (!options.force && age < leadTime) {
    throw idpError(IDP_ERRORS.rotationTooEarly, 'the next signing key has not been published long enough', {
      status: 409,
      detail: { publishedSeconds: Math.floor(age), requiredSeconds: leadTime },
    });
  }
  const promoted: SigningKeyRecord = { ...next, state: 'current', stateSince: options.now };
  const demoted: SigningKeyRecord = { ...current, state: 'previous', stateSince: options.now };
  const fresh = await generateSigningKey(kek, options.alg, 'next', options.now);
  const written = await store.replaceKeys([demoted, promoted, fresh], version);
  if (written === null) {
    throw idpError(IDP_ERRORS.conflict, 'the key set changed during rotation; try again', { status: 409 });
  }
  return { current: promoted.kid, next: fresh.kid, previous: demoted.kid, version: written };
}

/**
 * The JWKS handed to oidc-provider: private keys, current first. Only the current key may sign: the
 * others carry `key_ops: ["verify"]`, which oidc-provider's key selection honours, so it can never pick
 * the next or previous key for a signature. The published set (public parts) keeps `key_ops` as is.
 */
export function providerJwks(kek: Sealer, keys: readonly SigningKeyRecord[]): { keys: JWK[] } {
  const order: Record<KeyState, number> = { current: 0, next: 1, previous: 2 };
  return {
    keys: [...keys]
      .sort((a, b) => order[a.state] - order[b.state])
      .map((k) => {
        const bytes = kek.unwrap(k.privateJwk, keyContext(k.kid));
        try {
          const jwk = JSON.parse(bytes.toString('utf8')) as JWK;
          return k.state === 'current' ? jwk : { ...jwk, key_ops: ['verify'] };
        } finally {
          bytes.fill(0);
        }
      }),
  };
}
