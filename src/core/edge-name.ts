import { isIPv4, isIPv6 } from 'node:net';

/**
 * The names an edge certificate may carry (the gateway's `tls: auto`): DNS host names and IP literals,
 * strictly. Shared by the manifest loader (issues at `rampart check`) and the certificate authority
 * (which validates again: the CA never trusts its caller's parsing).
 */

/** One subjectAltName of an edge certificate, in canonical form. */
export type EdgeName = { type: 'dns'; value: string } | { type: 'ip'; value: string };

/**
 * Most names on one edge certificate. A development gateway needs two or three (localhost, its
 * address, a host name); a bound keeps one certificate (and each handshake) small.
 */
export const MAX_EDGE_NAMES = 16;

/** RFC 1035 §2.3.4: a name is at most 253 characters in text form (255 octets on the wire). */
const MAX_DNS_NAME = 253;
/** A letter-digit-hyphen label (RFC 1123 §2.1), 1–63 characters, in lower case. */
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Why `name` cannot be on an edge certificate, or null when it can. */
function dnsProblem(name: string): string | null {
  if (name.length > MAX_DNS_NAME) return 'longer than 253 characters';
  const labels = name.split('.');
  for (const label of labels) {
    if (label === '') return 'empty label (leading, trailing or double dot)';
    // No wildcards: the gateway serves the names it is configured for, and a wildcard from a CA
    // that every developer trusts would cover hosts that are not this gateway's.
    if (label.includes('*')) return 'wildcards are not issued';
    if (!LABEL.test(label)) return 'labels are letters, digits and inner hyphens (IDNs in their xn-- form)';
  }
  // A name whose last label is numeric reads as an (incomplete or unusual) IPv4 address to some
  // resolvers and URL parsers (`127.1`, `0x7f.1`): refused, so a name and an address never mix.
  if (/^[0-9]+$/.test(labels.at(-1) ?? '')) return 'the last label is numeric (write IP addresses in full)';
  return null;
}

/**
 * Parses one name: an IPv4 address in dotted-quad form, an IPv6 address (no zone; stored compressed in
 * lower case), or a DNS host name (stored in lower case; no trailing dot, no wildcard, no underscore,
 * no Unicode). Returns the canonical name, or the reason it is refused.
 */
export function parseEdgeName(input: unknown): { ok: true; name: EdgeName } | { ok: false; reason: string } {
  if (typeof input !== 'string' || input.length === 0) return { ok: false, reason: 'not a non-empty string' };
  if (input.length > MAX_DNS_NAME) return { ok: false, reason: 'longer than 253 characters' };
  if (isIPv4(input)) {
    // Node accepts only the four-decimal form; leading zeros (octal to some parsers) are refused.
    if (input.split('.').some((part) => part.length > 1 && part.startsWith('0'))) {
      return { ok: false, reason: 'leading zeros in an IPv4 address' };
    }
    return { ok: true, name: { type: 'ip', value: input } };
  }
  const bare = input.startsWith('[') && input.endsWith(']') ? input.slice(1, -1) : input;
  if (isIPv6(bare)) {
    if (bare.includes('%')) return { ok: false, reason: 'an IPv6 zone is not part of an address' };
    // The URL parser's serialization is RFC 5952's canonical text form.
    return { ok: true, name: { type: 'ip', value: new URL(`http://[${bare}]/`).hostname.slice(1, -1) } };
  }
  const lower = input.toLowerCase();
  const problem = dnsProblem(lower);
  return problem === null ? { ok: true, name: { type: 'dns', value: lower } } : { ok: false, reason: problem };
}

/**
 * Parses a list of names (each with {@link parseEdgeName}), drops duplicates (after canonicalization)
 * and bounds the count. Returns the names in their first order, or the first refusal with its index.
 */
export function parseEdgeNames(
  inputs: readonly unknown[],
): { ok: true; names: EdgeName[] } | { ok: false; index: number; reason: string } {
  if (inputs.length === 0) return { ok: false, index: -1, reason: 'no names' };
  const names: EdgeName[] = [];
  const seen = new Set<string>();
  for (const [index, input] of inputs.entries()) {
    const parsed = parseEdgeName(input);
    if (!parsed.ok) return { ok: false, index, reason: parsed.reason };
    const key = `${parsed.name.type}:${parsed.name.value}`;
    if (seen.has(key)) continue;
    seen.add(key);
    names.push(parsed.name);
    if (names.length > MAX_EDGE_NAMES) return { ok: false, index, reason: `more than ${MAX_EDGE_NAMES} names` };
  }
  return { ok: true, names };
}
