import { createHash, randomInt } from 'node:crypto';
import { TOTP_DEFAULTS } from './defaults.ts';

/**
 * Single-use recovery codes for when the authenticator is lost: 12 characters of Crockford-style
 * base32 (31 symbols: no 0/O or 1/I/L to misread; 12·log2(31) ≈ 59 random bits), shown once at enrollment and stored only as
 * hashes. A plain SHA-256 suffices: at 59 bits a code is not a low-entropy password, and attempts are
 * throttled like MFA codes.
 */
const ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';

export function newRecoveryCodes(count: number = TOTP_DEFAULTS.recoveryCodes): string[] {
  return Array.from({ length: count }, () => {
    const chars = Array.from({ length: 12 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
    return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}`;
  });
}

/** What the user typed, reduced to the code's characters (case, spaces and dashes do not matter). */
export function normalizeRecoveryCode(input: string): string | null {
  if (typeof input !== 'string' || input.length > 40) return null;
  const code = input.toUpperCase().replace(/[\s-]/g, '');
  return /^[2-9A-HJKMNP-Z]{12}$/.test(code) ? code : null;
}

/** The stored form, bound to the account so a hash copied to another account is useless. */
export function hashRecoveryCode(accountId: string, code: string): string {
  const normalized = normalizeRecoveryCode(code) ?? '';
  return createHash('sha256').update(`rampart/identity/recovery/v1\0${accountId}\0${normalized}`).digest('hex');
}
