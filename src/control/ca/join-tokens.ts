import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { serviceSpiffeId } from '../../core/spiffe.ts';
import type { CaStore } from './database.ts';
import { CA_DEFAULTS } from './defaults.ts';
import { CA_ERRORS, caError } from './errors.ts';

/**
 * Join tokens: the launcher mints one per service process; the process presents it once, with its
 * CSR, for its first SVID (issue 4 "Attestation"; SPIRE's join-token attestor, 600 s TTL).
 *
 * A token is 48 random bytes, base64url (64 characters): a 16-byte selector, which is stored and used
 * to find the row, and a 32-byte secret. The database holds the selector and SHA-256 of the whole
 * token, never the token: a copy of the database redeems nothing. Redemption compares the hash in
 * constant time, then consumes the row with one conditional UPDATE, so a token is used at most once
 * even under concurrent redemptions. Distinct codes tell audit what was tried: malformed, unknown,
 * forged (a real selector with a wrong secret: part of a real token leaked), reused, expired.
 */

const TOKEN_BYTES = 48;
const SELECTOR_BYTES = 16;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{64}$/;

/** A freshly minted token. The token itself is returned once and never stored. */
export interface MintedJoinToken {
  token: string;
  serviceName: string;
  expiresAt: number;
}

function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Mints a single-use token for `serviceName`, valid `ttlMs` from `now`. */
export function mintJoinToken(
  store: CaStore,
  trustDomain: string,
  serviceName: string,
  ttlMs: number,
  now: number,
): MintedJoinToken {
  try {
    serviceSpiffeId(trustDomain, serviceName);
  } catch (cause) {
    throw caError(CA_ERRORS.serviceName, { serviceName: String(serviceName).slice(0, 100) }, cause);
  }
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1_000 || ttlMs > CA_DEFAULTS.maxJoinTokenTtlMs) {
    throw caError(CA_ERRORS.tokenTtl, { ttlMs });
  }
  const raw = randomBytes(TOKEN_BYTES);
  const selector = raw.subarray(0, SELECTOR_BYTES).toString('hex');
  const expiresAt = now + ttlMs;
  store.insertJoinToken(selector, sha256(raw), serviceName, now, expiresAt);
  return { token: raw.toString('base64url'), serviceName, expiresAt };
}

/** A token that passed the checks that consume nothing; {@link consumeJoinToken} spends it. */
export interface CheckedJoinToken {
  readonly selector: string;
  /** The service the token was minted for. */
  readonly serviceName: string;
}

function refuseSpent(store: CaStore, selector: string): never {
  const row = store.joinToken(selector);
  if (row?.usedAt !== null && row?.usedAt !== undefined) {
    throw caError(CA_ERRORS.tokenReused, { selector, usedAt: row.usedAt });
  }
  throw caError(CA_ERRORS.tokenExpired, { selector, expiresAt: row?.expiresAt });
}

/**
 * Checks a token without spending it, in this order: format, selector known, secret matches (constant
 * time), unused, unexpired. Throws CA_ERR_TOKEN_* (401). Callers check the token before any costly work
 * (a CSR signature), so requests without a real token cost nothing, then spend it.
 */
export function checkJoinToken(store: CaStore, token: string, now: number): CheckedJoinToken {
  if (typeof token !== 'string' || !TOKEN_PATTERN.test(token)) {
    throw caError(CA_ERRORS.tokenMalformed, { length: typeof token === 'string' ? token.length : typeof token });
  }
  const raw = Buffer.from(token, 'base64url');
  // base64url of 48 bytes is exactly 64 characters with no padding bits, so this round-trips; check anyway.
  if (raw.length !== TOKEN_BYTES || raw.toString('base64url') !== token) {
    throw caError(CA_ERRORS.tokenMalformed, { reason: 'encoding' });
  }
  const selector = raw.subarray(0, SELECTOR_BYTES).toString('hex');
  const row = store.joinToken(selector);
  if (!row) throw caError(CA_ERRORS.tokenUnknown, { selector });
  const expected = Buffer.from(row.tokenSha256);
  if (expected.length !== 32 || !timingSafeEqual(sha256(raw), expected)) {
    throw caError(CA_ERRORS.tokenForged, { selector });
  }
  if (row.usedAt !== null || row.expiresAt <= now) refuseSpent(store, selector);
  return Object.freeze({ selector, serviceName: row.serviceName });
}

/**
 * Spends a checked token: one conditional UPDATE, so of concurrent redemptions (in this process or
 * another) exactly one wins; the others get CA_ERR_TOKEN_REUSED (or EXPIRED if it expired meanwhile).
 * Returns the service the token was minted for.
 */
export function consumeJoinToken(store: CaStore, checked: CheckedJoinToken, now: number): string {
  const serviceName = store.consumeJoinToken(checked.selector, now);
  if (serviceName === null) refuseSpent(store, checked.selector);
  return serviceName;
}

/** Checks and spends a token; returns its service. */
export function redeemJoinToken(store: CaStore, token: string, now: number): string {
  return consumeJoinToken(store, checkJoinToken(store, token, now), now);
}
