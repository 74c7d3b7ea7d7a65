import { randomBytes } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import QRCode from 'qrcode';
import { TOTP_DEFAULTS } from './defaults.ts';

/**
 * TOTP (RFC 6238) through `otpauth`: secret generation, the `otpauth://` enrollment URI and its QR code,
 * and verification that reports *which* time step matched, so the caller can refuse a step already
 * used (the replay guard lives in the store: `useTotpStep` only moves forward).
 */
export interface TotpOptions {
  /** Shown in the authenticator app next to the account. */
  issuer: string;
}

function totp(secret: Uint8Array, label: string, issuer: string): TOTP {
  return new TOTP({
    issuer,
    label,
    algorithm: TOTP_DEFAULTS.algorithm,
    digits: TOTP_DEFAULTS.digits,
    period: TOTP_DEFAULTS.period,
    secret: new Secret({ buffer: Uint8Array.from(secret).buffer }),
  });
}

/** A fresh 160-bit secret (RFC 4226 §4). */
export function newTotpSecret(): Buffer {
  return randomBytes(TOTP_DEFAULTS.secretBytes);
}

/** The `otpauth://totp/…` URI an authenticator app reads from the QR code. */
export function totpUri(secret: Uint8Array, username: string, issuer: string): string {
  return totp(secret, username, issuer).toString();
}

/** The secret in base32, grouped by four, for typing it in by hand. */
export function totpSecretText(secret: Uint8Array): string {
  return new Secret({ buffer: Uint8Array.from(secret).buffer }).base32.replace(/(.{4})/g, '$1 ').trim();
}

/** The QR code of `uri` as an inline SVG element (no script, no external image: the CSP allows it). */
export async function totpQrSvg(uri: string): Promise<string> {
  const svg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  // Accessible name for the image; the secret itself is also shown as text beside it.
  return svg.replace('<svg ', '<svg role="img" aria-label="QR code for your authenticator app" ');
}

/**
 * The time step `code` is valid for at `now` (± TOTP_DEFAULTS.window steps of drift), or null. Codes
 * are compared in constant time by otpauth; anything but exactly `digits` digits is refused first.
 */
export function matchTotp(secret: Uint8Array, code: string, now: number): number | null {
  if (typeof code !== 'string' || !new RegExp(`^\\d{${TOTP_DEFAULTS.digits}}$`).test(code)) return null;
  const delta = totp(secret, 'x', 'x').validate({ token: code, timestamp: now, window: TOTP_DEFAULTS.window });
  if (delta === null) return null;
  return Math.floor(now / 1000 / TOTP_DEFAULTS.period) + delta;
}

/** The current code (tests and the CLI's self-checks). */
export function currentTotp(secret: Uint8Array, now: number): string {
  return totp(secret, 'x', 'x').generate({ timestamp: now });
}
