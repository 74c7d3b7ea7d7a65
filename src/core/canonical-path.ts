import { RampartError } from './errors.ts';

/**
 * The one canonicalization of request paths in Rampart, shared by the gateway and the SDK so that what
 * is matched, what is authorized and what is forwarded are the same string (the Istio CVE-2021-31920
 * class of bugs comes from two components reading one path two ways).
 *
 * Rules, applied to the path part of an origin-form request target (canonicalizeTarget splits off the
 * query), with the error code each violation throws (all status 400):
 * - the path starts with `/` (PATH_ERR_NOT_ABSOLUTE); a leading `//` is rejected (PATH_ERR_EMPTY_SEGMENT):
 *   scheme-relative confusion;
 * - raw characters are only RFC 3986 unreserved (`A-Z a-z 0-9 - . _ ~`), `! $ & ' ( ) * + , = : @`, `/`
 *   and the `%` of an escape: `pchar` minus `;`. Non-ASCII is rejected (PATH_ERR_NON_ASCII), and so are
 *   controls, space, `"` `#` `<` `>` `?` `[` `\` `]` `^` `{` `|` `}`, the backtick and `;`
 *   (PATH_ERR_CHARACTER): `\` because some servers read it as `/`, `;` because servlet containers strip
 *   `;params`, so `/admin;x` could reach `/admin` unmatched;
 * - every `%` starts a well-formed escape `%XX` (PATH_ERR_ENCODING). Escapes of unreserved characters
 *   (§2.3) are decoded, so `%2e` is a dot and `%41` is `A`; every other escape is kept, with upper-case
 *   hex (§6.2.2.1), and stays data: `%3B` is a `;` inside a segment, never a delimiter, and `%25` is a
 *   literal `%` (`%252e` is not a dot), and overlong UTF-8 such as `%C0%AE` is never turned into `.`;
 * - escapes of `/` (%2F), `\` (%5C), NUL and every other control (%00-%1F, %7F) are rejected
 *   (PATH_ERR_ENCODED_DELIMITER), because upstreams disagree on decoding them;
 * - dot segments are removed (§5.2.4) after decoding; a `..` that would climb above the root is
 *   rejected (PATH_ERR_TRAVERSAL), never clamped;
 * - empty segments (`/a//b`) are rejected (PATH_ERR_EMPTY_SEGMENT); one trailing `/` is removed, so
 *   `/a/`, `/a/.` and `/a` are one path. Case is preserved: `/Admin` and `/admin` are different paths.
 *
 * The result is a fixed point: canonicalizePath(canonicalizePath(p)) === canonicalizePath(p).
 */
export function canonicalizePath(path: string): string {
  if (path.length === 0 || path.charCodeAt(0) !== SLASH) throw pathError('PATH_ERR_NOT_ABSOLUTE', path);
  if (path.length > 1 && path.charCodeAt(1) === SLASH) throw pathError('PATH_ERR_EMPTY_SEGMENT', path);

  // Fast path: nothing to decode, no dot segment to resolve, no doubled or trailing slash. A dot
  // matters only at the start of a segment (`.` and `..` are whole segments): `/app.js` stays fast.
  let simple = true;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 128 || CLASS[c] === REJECT) throw pathError(c >= 128 ? 'PATH_ERR_NON_ASCII' : 'PATH_ERR_CHARACTER', path);
    if (c === PERCENT || (c === DOT && path.charCodeAt(i - 1) === SLASH)) simple = false;
    else if (c === SLASH && path.charCodeAt(i + 1) === SLASH) simple = false;
  }
  if (simple && (path.length === 1 || path.charCodeAt(path.length - 1) !== SLASH)) return path;

  const decoded = decodeUnreserved(path);
  const out: string[] = [];
  const parts = decoded.split('/');
  // parts[0] is the empty string before the leading slash.
  for (let i = 1; i < parts.length; i++) {
    const segment = parts[i]!;
    const last = i === parts.length - 1;
    if (segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) throw pathError('PATH_ERR_TRAVERSAL', path);
      out.pop();
      continue;
    }
    if (segment === '') {
      if (last) continue; // one trailing slash is dropped
      throw pathError('PATH_ERR_EMPTY_SEGMENT', path);
    }
    out.push(segment);
  }
  return `/${out.join('/')}`;
}

/**
 * Splits an origin-form request target at its first `?` into the canonical path and the raw query
 * (without the `?`; empty when there is none). The query is neither decoded nor normalized; it is
 * rejected (PATH_ERR_QUERY) if it holds a control, space, non-ASCII, `"` `<` `>` `\` `^` `{` `|` `}`, the
 * backtick, or `#`: fragments are never part of a request target (RFC 9112 §3.2.1). A `?` or `/`
 * inside the query is data (RFC 3986 §3.4). Absolute-form and asterisk-form targets are not
 * origin-form: PATH_ERR_NOT_ABSOLUTE.
 */
export function canonicalizeTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q + 1);
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c >= 128 || QUERY_REJECT[c] === 1) throw pathError('PATH_ERR_QUERY', target);
  }
  return { path: canonicalizePath(rawPath), query };
}

function decodeUnreserved(path: string): string {
  if (!path.includes('%')) return path;
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', from)) {
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) throw pathError('PATH_ERR_ENCODING', path);
    const byte = hi * 16 + lo;
    out += path.slice(from, i);
    if (byte === SLASH || byte === BACKSLASH || byte < 0x20 || byte === 0x7f) {
      throw pathError('PATH_ERR_ENCODED_DELIMITER', path);
    }
    out += byte < 128 && CLASS[byte] === UNRESERVED ? String.fromCharCode(byte) : `%${HEX[hi]}${HEX[lo]}`;
    from = i + 3;
  }
  return out + path.slice(from);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function pathError(code: string, path: string): RampartError {
  // The path itself is attacker input: it goes to `detail` (logs), never into the message.
  return new RampartError(code, 'invalid request path', { status: 400, detail: { path: path.slice(0, 256) } });
}

const SLASH = 0x2f;
const BACKSLASH = 0x5c;
const PERCENT = 0x25;
const DOT = 0x2e;
const HEX = '0123456789ABCDEF';

const REJECT = 0;
const UNRESERVED = 1;
const ALLOWED = 2;
/** Character classes for 0..127: RFC 3986 unreserved, other pchar/`/`/`%`, or rejected. */
const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9\-._~]/.test(ch)) CLASS[c] = UNRESERVED;
  else if ("!$&'()*+,=:@/%".includes(ch)) CLASS[c] = ALLOWED;
  else CLASS[c] = REJECT;
}
/** Query characters rejected: controls, space, and the characters RFC 3986 never allows raw. */
const QUERY_REJECT = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  if (c < 0x21 || c === 0x7f || '"<>\\^`{|}#'.includes(String.fromCharCode(c))) QUERY_REJECT[c] = 1;
}
