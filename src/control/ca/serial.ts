import { randomBytes } from 'node:crypto';

/**
 * A certificate serial number: 16 random bytes (126 of them random) as 32 lower-case hex digits.
 *
 * RFC 5280 §4.1.2.2: a positive integer of at most 20 octets, unique per CA. The CA/Browser Forum asks
 * for ≥ 64 bits from a CSPRNG; we take 126. The first byte is forced to 01xxxxxx: its top bit clear, so
 * the DER INTEGER is positive without a 0x00 pad, and its second bit set, so it never starts with a
 * zero octet that DER would strip. Every serial is therefore exactly 16 octets, and the hex we store
 * is exactly what the certificate carries. Uniqueness is also enforced by the issuance log's key.
 */
export function newSerial(random: (size: number) => Uint8Array = randomBytes): string {
  const bytes = Buffer.from(random(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x3f) | 0x40;
  return bytes.toString('hex');
}
