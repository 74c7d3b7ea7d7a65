import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { canonicalizePath, canonicalizeTarget } from './canonical-path.ts';
import { RampartError } from './errors.ts';

type Code =
  | 'PATH_ERR_NOT_ABSOLUTE'
  | 'PATH_ERR_EMPTY_SEGMENT'
  | 'PATH_ERR_NON_ASCII'
  | 'PATH_ERR_CHARACTER'
  | 'PATH_ERR_ENCODING'
  | 'PATH_ERR_ENCODED_DELIMITER'
  | 'PATH_ERR_TRAVERSAL'
  | 'PATH_ERR_QUERY';
const CODES: ReadonlySet<string> = new Set<Code>([
  'PATH_ERR_NOT_ABSOLUTE',
  'PATH_ERR_EMPTY_SEGMENT',
  'PATH_ERR_NON_ASCII',
  'PATH_ERR_CHARACTER',
  'PATH_ERR_ENCODING',
  'PATH_ERR_ENCODED_DELIMITER',
  'PATH_ERR_TRAVERSAL',
  'PATH_ERR_QUERY',
]);

type Outcome = { ok: string } | { code: string };

function run(input: string): Outcome {
  try {
    return { ok: canonicalizePath(input) };
  } catch (err) {
    assert.ok(err instanceof RampartError, `non-Rampart error for ${JSON.stringify(input)}: ${String(err)}`);
    assert.ok(CODES.has(err.code), `unknown code ${err.code}`);
    return { code: err.code };
  }
}

const NOT_ABSOLUTE = { code: 'PATH_ERR_NOT_ABSOLUTE' };
const EMPTY = { code: 'PATH_ERR_EMPTY_SEGMENT' };
const NON_ASCII = { code: 'PATH_ERR_NON_ASCII' };
const CHARACTER = { code: 'PATH_ERR_CHARACTER' };
const ENCODING = { code: 'PATH_ERR_ENCODING' };
const DELIMITER = { code: 'PATH_ERR_ENCODED_DELIMITER' };
const TRAVERSAL = { code: 'PATH_ERR_TRAVERSAL' };

/** [input, expected]: a string is the canonical output; an object is the error code. */
const TABLE: readonly (readonly [string, string | { code: string }])[] = [
  // Benign, already canonical (the fast path returns them as they are).
  ['/', '/'],
  ['/a', '/a'],
  ['/orders/123/items', '/orders/123/items'],
  ['/static/app.min.js', '/static/app.min.js'],
  ['/a/b.c/d..e', '/a/b.c/d..e'],
  ['/...', '/...'],
  ['/a/.hidden', '/a/.hidden'],
  ['/a/..x/x..', '/a/..x/x..'],
  ['/a-b_c~d', '/a-b_c~d'],
  ["/!$&'()*+,=:@", "/!$&'()*+,=:@"],
  ['/*', '/*'],
  ['/~user/x', '/~user/x'],
  // Case is preserved: /Admin is not /admin.
  ['/Admin', '/Admin'],
  ['/ADMIN/Users', '/ADMIN/Users'],
  ['/%41dmin', '/Admin'],
  // One trailing slash is dropped.
  ['/a/', '/a'],
  ['/a/b/', '/a/b'],
  ['/admin/', '/admin'],
  // Escapes of unreserved characters are decoded; others kept with upper-case hex.
  ['/%41%42', '/AB'],
  ['/%61dmin', '/admin'],
  ['/adm%69n/', '/admin'],
  ['/%7e%7E', '/~~'],
  ['/x%2d%5f%7e', '/x-_~'],
  ['/a%2a', '/a%2A'],
  ['/a%2A', '/a%2A'],
  ['/a%20b', '/a%20b'],
  ['/a%3bb', '/a%3Bb'],
  ['/a%3Bb', '/a%3Bb'],
  ['/admin%3b/x', '/admin%3B/x'],
  ['/a%3f', '/a%3F'],
  ['/a%23', '/a%23'],
  ['/a%2c%3d%40', '/a%2C%3D%40'],
  // Encoded non-ASCII stays encoded (normalized hex); raw non-ASCII is rejected below.
  ['/%c3%a9', '/%C3%A9'],
  ['/a%ef%bc%8fadmin', '/a%EF%BC%8Fadmin'],
  ['/a%e2%88%95admin', '/a%E2%88%95admin'],
  ['/%80%ff', '/%80%FF'],
  // Overlong / invalid UTF-8 for '.' and '/' is not decoded: never a dot, never a slash.
  ['/%c0%ae', '/%C0%AE'],
  ['/%c0%ae%c0%ae/admin', '/%C0%AE%C0%AE/admin'],
  ['/a/%c0%ae%c0%ae/b', '/a/%C0%AE%C0%AE/b'],
  ['/%e0%80%ae%e0%80%ae', '/%E0%80%AE%E0%80%AE'],
  ['/%c0%af', '/%C0%AF'],
  // Double encoding is data: %25 is a literal '%', decoded exactly once.
  ['/%252e%252e', '/%252e%252e'],
  ['/%252e%252e/admin', '/%252e%252e/admin'],
  ['/%252E', '/%252E'],
  ['/%25%32%66', '/%252f'],
  ['/%25%32%65%25%32%65', '/%252e%252e'],
  ['/%252f', '/%252f'],
  ['/%255c', '/%255c'],
  ['/%25', '/%25'],
  ['/100%25', '/100%25'],
  // Dot segments in every spelling.
  ['/.', '/'],
  ['/./', '/'],
  ['/a/.', '/a'],
  ['/a/./b', '/a/b'],
  ['/a/./././b', '/a/b'],
  ['/a/b/..', '/a'],
  ['/a/b/../', '/a'],
  ['/a/..', '/'],
  ['/a/../', '/'],
  ['/a/../b', '/b'],
  ['/%2e', '/'],
  ['/%2E/', '/'],
  ['/a/%2e/b', '/a/b'],
  ['/a/%2e%2e', '/'],
  ['/a/%2E%2e/b', '/b'],
  ['/a/.%2e/b', '/b'],
  ['/a/%2e./b', '/b'],
  ['/a/b/%2e%2e/%2e%2e/c', '/c'],
  ['/public/../admin', '/admin'],
  ['/public/%2e%2e/admin', '/admin'],
  ['/public/%2E%2E/admin/', '/admin'],
  ['/admin/x/..', '/admin'],
  ['/a/b/c/../../d', '/a/d'],
  // Traversal above the root is rejected, never clamped.
  ['/..', TRAVERSAL],
  ['/../', TRAVERSAL],
  ['/../admin', TRAVERSAL],
  ['/a/../..', TRAVERSAL],
  ['/a/../../admin', TRAVERSAL],
  ['/%2e%2e', TRAVERSAL],
  ['/%2E%2e/etc/passwd', TRAVERSAL],
  ['/.%2e', TRAVERSAL],
  ['/%2e.', TRAVERSAL],
  ['/./..', TRAVERSAL],
  ['/a/b/../../../c', TRAVERSAL],
  // Not an absolute path.
  ['', NOT_ABSOLUTE],
  ['a', NOT_ABSOLUTE],
  ['*', NOT_ABSOLUTE],
  ['http://evil.example/admin', NOT_ABSOLUTE],
  ['%2fadmin', NOT_ABSOLUTE],
  ['\\admin', NOT_ABSOLUTE],
  [' /a', NOT_ABSOLUTE],
  ['./a', NOT_ABSOLUTE],
  ['\uff0fadmin', NOT_ABSOLUTE],
  // Leading '//' and empty segments.
  ['//', EMPTY],
  ['//evil.example', EMPTY],
  ['//evil.example/%2e%2e', EMPTY],
  ['///', EMPTY],
  ['///a', EMPTY],
  ['/a//b', EMPTY],
  ['/a//', EMPTY],
  ['/a/b//', EMPTY],
  ['/a/.//b', EMPTY],
  ['/a//../b', EMPTY],
  ['/.//evil.example', EMPTY],
  ['/%2e//evil.example', EMPTY],
  // Encoded '/', '\', NUL and controls.
  ['/a%2fb', DELIMITER],
  ['/a%2Fb', DELIMITER],
  ['/%2F/admin', DELIMITER],
  ['/..%2f..%2fadmin', DELIMITER],
  ['/public%2f..%2fadmin', DELIMITER],
  ['/a%5cb', DELIMITER],
  ['/a%5Cb', DELIMITER],
  ['/..%5cadmin', DELIMITER],
  ['/a%00', DELIMITER],
  ['/a%00.html', DELIMITER],
  ['/a%01', DELIMITER],
  ['/a%09', DELIMITER],
  ['/a%0a', DELIMITER],
  ['/a%0D%0ASet-Cookie:x', DELIMITER],
  ['/a%1f', DELIMITER],
  ['/a%7f', DELIMITER],
  ['/a%7F', DELIMITER],
  // Raw controls, whitespace and characters outside pchar.
  ['/a\0b', CHARACTER],
  ['/a\x01', CHARACTER],
  ['/a\tb', CHARACTER],
  ['/a b', CHARACTER],
  ['/a\r\nb', CHARACTER],
  ['/a\n', CHARACTER],
  ['/a\r', CHARACTER],
  ['/a\x0b\x0c', CHARACTER],
  ['/a\x7f', CHARACTER],
  ['/a\\b', CHARACTER],
  ['/a\\..\\admin', CHARACTER],
  ['/\\\\evil.example', CHARACTER],
  ['/admin;x', CHARACTER],
  ['/admin;', CHARACTER],
  ['/admin/..;/x', CHARACTER],
  ['/;/admin', CHARACTER],
  ['/a#b', CHARACTER],
  ['/a#', CHARACTER],
  ['/a?b', CHARACTER],
  ['/a"b', CHARACTER],
  ['/a<b>', CHARACTER],
  ['/a[0]', CHARACTER],
  ['/a{b}', CHARACTER],
  ['/a|b', CHARACTER],
  ['/a^b', CHARACTER],
  ['/a`b', CHARACTER],
  ['/% 41', CHARACTER],
  // Raw non-ASCII, including look-alikes of '/' and '.'.
  ['/é', NON_ASCII],
  ['/caf\u00e9', NON_ASCII],
  ['/cafe\u0301', NON_ASCII],
  ['/a\uff0fadmin', NON_ASCII],
  ['/a\u2215admin', NON_ASCII],
  ['/\uff0e\uff0e/admin', NON_ASCII],
  ['/\u2025/admin', NON_ASCII],
  ['/\u0130', NON_ASCII],
  ['/a\u00a0', NON_ASCII],
  ['/a\u0085', NON_ASCII],
  ['/a\u2028', NON_ASCII],
  ['/\ud83d\ude00', NON_ASCII],
  ['/\ud800', NON_ASCII],
  ['/a\ufeff', NON_ASCII],
  // Malformed escapes.
  ['/%', ENCODING],
  ['/a%', ENCODING],
  ['/%4', ENCODING],
  ['/a/%4/b', ENCODING],
  ['/%zz', ENCODING],
  ['/%G0', ENCODING],
  ['/%0G', ENCODING],
  ['/%%41', ENCODING],
  ['/%u002e%u002e', ENCODING],
  ['/%-1', ENCODING],
  ['/%+1', ENCODING],
  ['/.%', ENCODING],
];

// ---------------------------------------------------------------------------------------------------
// Generators.

const UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~';
const SUB_DELIMS_KEPT = "!$&'()*+,=:@";
const HEX = '0123456789ABCDEF';

/** `%XX` for a byte, with each hex digit in a random case. */
function escapeArb(bytes: fc.Arbitrary<number> = fc.integer({ min: 0, max: 255 })): fc.Arbitrary<string> {
  return fc.tuple(bytes, fc.boolean(), fc.boolean()).map(([b, upHi, upLo]) => {
    const hi = HEX[b >> 4]!;
    const lo = HEX[b & 15]!;
    return `%${upHi ? hi : hi.toLowerCase()}${upLo ? lo : lo.toLowerCase()}`;
  });
}

/** Tokens that make up hostile paths: dots in every spelling, delimiters raw and encoded, look-alikes. */
const HOSTILE_TOKENS = [
  '/',
  '//',
  '.',
  '..',
  '%2e',
  '%2E',
  '%2E%2e',
  '.%2e',
  '%2e.',
  'admin',
  'Admin',
  '%61dmin',
  'adm%69n',
  'public',
  ';',
  '%3b',
  '%3B',
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '\\',
  '%00',
  '%0a',
  '%7f',
  '%25',
  '%252e',
  '%252f',
  '%25%32%65',
  '%c0%ae',
  '%C0%AF',
  '%e0%80%ae',
  '%',
  '%4',
  '%zz',
  '%G0',
  ' ',
  '\t',
  '\r\n',
  '\0',
  '#',
  '?',
  'é',
  '\uff0f',
  '\u2215',
  '\uff0e',
  '*',
  '~',
  '%7e',
  '%41',
  '%2a',
  '%20',
  '@',
  ':',
  "'",
  '+',
  '=',
];

function hostileInput(): fc.Arbitrary<string> {
  const token = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_TOKENS) },
    { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...UNRESERVED), minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: escapeArb() },
  );
  const body = fc.array(token, { maxLength: 14 }).map((ts) => ts.join(''));
  return fc.oneof({ weight: 6, arbitrary: body.map((b) => `/${b}`) }, { weight: 1, arbitrary: body });
}

/**
 * Paths that are accepted more often than not: segments of unreserved characters, kept sub-delims,
 * escapes of allowed bytes, and dot segments in several spellings; an optional trailing slash.
 */
function mostlyValidPath(): fc.Arbitrary<string> {
  const allowedByte = fc.integer({ min: 0x20, max: 0xff }).filter((b) => b !== 0x2f && b !== 0x5c && b !== 0x7f);
  const piece = fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...UNRESERVED), minLength: 1, maxLength: 3 }) },
    { weight: 1, arbitrary: fc.constantFrom(...SUB_DELIMS_KEPT) },
    { weight: 2, arbitrary: escapeArb(allowedByte) },
  );
  const segment = fc.oneof(
    { weight: 5, arbitrary: fc.array(piece, { minLength: 1, maxLength: 4 }).map((ps) => ps.join('')) },
    { weight: 2, arbitrary: fc.constantFrom('.', '..', '%2e', '%2E%2e', '.%2E', '%2e.') },
  );
  return fc
    .tuple(fc.array(segment, { maxLength: 8 }), fc.boolean())
    .map(([segs, trailing]) => `/${segs.join('/')}${trailing && segs.length > 0 ? '/' : ''}`);
}

// ---------------------------------------------------------------------------------------------------
// Independent reference model: RFC 3986 normalization (§6.2.2.1, §6.2.2.2) then remove_dot_segments
// (§5.2.4) written as the RFC's buffer algorithm, with Rampart's rejections listed as a set of codes.

type Reference = { ok: string } | { codes: ReadonlySet<string> };

const RAW_ALLOWED = /^[A-Za-z0-9\-._~!$&'()*+,=:@/%]$/;

function reference(input: string): Reference {
  if (!input.startsWith('/')) return { codes: new Set(['PATH_ERR_NOT_ABSOLUTE']) };
  const codes = new Set<string>();
  if (input.startsWith('//')) codes.add('PATH_ERR_EMPTY_SEGMENT');
  for (const ch of input) {
    if (ch.codePointAt(0)! > 0x7f) codes.add('PATH_ERR_NON_ASCII');
    else if (!RAW_ALLOWED.test(ch)) codes.add('PATH_ERR_CHARACTER');
  }
  if (/%(?![0-9A-Fa-f]{2})/.test(input)) codes.add('PATH_ERR_ENCODING');
  for (const [, hex] of input.matchAll(/%([0-9A-Fa-f]{2})/g)) {
    const byte = Number.parseInt(hex!, 16);
    if (byte === 0x2f || byte === 0x5c || byte < 0x20 || byte === 0x7f) codes.add('PATH_ERR_ENCODED_DELIMITER');
  }
  if (codes.size > 0) return { codes };

  // §6.2.2.1 upper-case hex, §6.2.2.2 decode unreserved.
  const normalized = input.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const ch = String.fromCharCode(Number.parseInt(hex, 16));
    return /^[A-Za-z0-9\-._~]$/.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
  // Rampart: empty segments other than a final one are errors (checked before dot removal).
  const segments = normalized.split('/');
  if (segments.slice(1, -1).some((s) => s === '')) codes.add('PATH_ERR_EMPTY_SEGMENT');

  const { output, climbed } = removeDotSegments(normalized);
  if (climbed) codes.add('PATH_ERR_TRAVERSAL');
  if (codes.size > 0) return { codes };
  return { ok: output.length > 1 && output.endsWith('/') ? output.slice(0, -1) : output };
}

/** RFC 3986 §5.2.4, literally; `climbed` records a ".." applied with nothing left to remove. */
function removeDotSegments(path: string): { output: string; climbed: boolean } {
  let input = path;
  let output = '';
  let climbed = false;
  const removeLast = () => {
    if (output === '') climbed = true;
    output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
  };
  while (input.length > 0) {
    if (input.startsWith('../')) input = input.slice(3);
    else if (input.startsWith('./')) input = input.slice(2);
    else if (input.startsWith('/./')) input = input.slice(2);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../')) {
      input = input.slice(3);
      removeLast();
    } else if (input === '/..') {
      input = '/';
      removeLast();
    } else if (input === '.' || input === '..') input = '';
    else {
      const next = input.indexOf('/', 1);
      const end = next === -1 ? input.length : next;
      output += input.slice(0, end);
      input = input.slice(end);
    }
  }
  return { output, climbed };
}

/** Percent-decodes every escape once, bytes as Latin-1: what an upstream that decodes the path sees. */
function decodeAll(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/** Decode everything once, then resolve dot segments per segment: the meaning of the path. */
function meaning(input: string): string {
  const out: string[] = [];
  for (const segment of decodeAll(input).split('/').slice(1)) {
    if (segment === '.' || segment === '') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return `/${out.join('/')}`;
}

function isUnder(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

function assertCanonicalForm(p: string): void {
  assert.equal(p.charCodeAt(0), 0x2f, p);
  assert.ok(!p.startsWith('//'), p);
  assert.ok(p === '/' || !p.endsWith('/'), `trailing slash: ${p}`);
  // ASCII only, allowed raw characters and upper-case escapes only.
  assert.match(p, /^(?:[A-Za-z0-9\-._~!$&'()*+,=:@/]|%[0-9A-F]{2})*$/);
  for (const [, hex] of p.matchAll(/%([0-9A-F]{2})/g)) {
    const byte = Number.parseInt(hex!, 16);
    const ch = String.fromCharCode(byte);
    assert.ok(!/^[A-Za-z0-9\-._~]$/.test(ch), `escape of an unreserved character in ${p}`);
    assert.ok(byte !== 0x2f && byte !== 0x5c && byte >= 0x20 && byte !== 0x7f, `forbidden escape in ${p}`);
  }
  assert.ok(!/%2F|%5C|%00/i.test(p), p);
  if (p !== '/') {
    for (const segment of p.slice(1).split('/')) {
      assert.ok(segment !== '' && segment !== '.' && segment !== '..', `bad segment in ${p}`);
    }
  }
}

describe('canonicalizePath: table of hostile and benign inputs', () => {
  test('the table is large enough', () => {
    assert.ok(TABLE.length >= 80, `${TABLE.length} rows`);
    assert.equal(new Set(TABLE.map(([input]) => input)).size, TABLE.length, 'duplicate rows');
  });
  for (const [input, expected] of TABLE) {
    test(JSON.stringify(input), () => {
      assert.deepEqual(run(input), typeof expected === 'string' ? { ok: expected } : expected);
    });
  }
});

describe('canonicalizePath: errors', () => {
  test('are 400s with a fixed message that never echoes the input', () => {
    const input = `/${'x'.repeat(1000)}/%2f`;
    let err: unknown;
    try {
      canonicalizePath(input);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof RampartError);
    assert.equal(err.code, 'PATH_ERR_ENCODED_DELIMITER');
    assert.equal(err.status, 400);
    assert.equal(err.expose, true);
    assert.ok(!err.message.includes('x'.repeat(10)));
    // The logged copy is bounded.
    assert.equal(String(err.detail?.['path']).length, 256);
  });

  test('every code thrown on arbitrary input is a known one (never a TypeError or RangeError)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary-ascii' }), hostileInput()), (x) => {
        run(x);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('canonicalizePath: long paths', () => {
  test('a path with 50 000 segments is kept', () => {
    const input = `/${'a/'.repeat(50_000)}b`;
    assert.equal(canonicalizePath(input), input);
  });
  test('a 100 000 character segment is kept', () => {
    const input = `/${'a'.repeat(100_000)}`;
    assert.equal(canonicalizePath(input), input);
  });
  test('10 000 encoded dot segments collapse', () => {
    assert.equal(canonicalizePath(`/${'%2e/'.repeat(10_000)}x`), '/x');
  });
  test('deep climb resolves, one more step is traversal', () => {
    const down = 'a/'.repeat(1000);
    assert.equal(canonicalizePath(`/${down}${'../'.repeat(1000)}x`), '/x');
    assert.throws(() => canonicalizePath(`/${down}${'../'.repeat(1001)}x`), { code: 'PATH_ERR_TRAVERSAL' });
  });
  test('escape at the very end of a long path is still checked', () => {
    assert.throws(() => canonicalizePath(`/${'a'.repeat(10_000)}%2`), { code: 'PATH_ERR_ENCODING' });
    assert.throws(() => canonicalizePath(`/${'a'.repeat(10_000)}%2F`), { code: 'PATH_ERR_ENCODED_DELIMITER' });
  });
});

describe('canonicalizeTarget', () => {
  const ok: readonly (readonly [string, string, string])[] = [
    ['/', '/', ''],
    ['/a', '/a', ''],
    ['/a?', '/a', ''],
    ['/a?x=1', '/a', 'x=1'],
    ['/a/?x=1', '/a', 'x=1'],
    ['/a/../b?x=1', '/b', 'x=1'],
    ['/%61?x', '/a', 'x'],
    // The query is kept raw: not decoded, not normalized, dots and slashes in it are data.
    ['/a?x=%2e%2e/..', '/a', 'x=%2e%2e/..'],
    ['/a?x=%2f%5c%00', '/a', 'x=%2f%5c%00'],
    ['/a?x=%zz', '/a', 'x=%zz'],
    ['/a?q=a%20b&r=c+d', '/a', 'q=a%20b&r=c+d'],
    // A '?' inside the query is data (RFC 3986 §3.4); only the first '?' splits.
    ['/a?x=1?y=2', '/a', 'x=1?y=2'],
    ['/a??', '/a', '?'],
    ['/a?/b/../c', '/a', '/b/../c'],
    ['/a?x;y', '/a', 'x;y'],
    ["/a?x=!$&'()*+,;=:@", '/a', "x=!$&'()*+,;=:@"],
  ];
  for (const [target, path, query] of ok) {
    test(`accepts ${JSON.stringify(target)}`, () => {
      assert.deepEqual(canonicalizeTarget(target), { path, query });
    });
  }

  const bad: readonly (readonly [string, string])[] = [
    ['', 'PATH_ERR_NOT_ABSOLUTE'],
    ['?x=1', 'PATH_ERR_NOT_ABSOLUTE'],
    ['*', 'PATH_ERR_NOT_ABSOLUTE'],
    ['http://evil.example/a?x', 'PATH_ERR_NOT_ABSOLUTE'],
    ['//evil.example/a?x', 'PATH_ERR_EMPTY_SEGMENT'],
    ['/a%2f?x', 'PATH_ERR_ENCODED_DELIMITER'],
    ['/a;b?x', 'PATH_ERR_CHARACTER'],
    ['/a#b?c', 'PATH_ERR_CHARACTER'],
    ['/..?x', 'PATH_ERR_TRAVERSAL'],
    ['/a?x=1#frag', 'PATH_ERR_QUERY'],
    ['/a?#', 'PATH_ERR_QUERY'],
    ['/a?x y', 'PATH_ERR_QUERY'],
    ['/a?x\ty', 'PATH_ERR_QUERY'],
    ['/a?x\r\nSet-Cookie: a=b', 'PATH_ERR_QUERY'],
    ['/a?x\0', 'PATH_ERR_QUERY'],
    ['/a?x\x7f', 'PATH_ERR_QUERY'],
    ['/a?é', 'PATH_ERR_QUERY'],
    ['/a?\uff0f', 'PATH_ERR_QUERY'],
    ['/a?<script>', 'PATH_ERR_QUERY'],
    ['/a?x="', 'PATH_ERR_QUERY'],
    ['/a?x=\\', 'PATH_ERR_QUERY'],
    ['/a?x={}', 'PATH_ERR_QUERY'],
    ['/a?x=|', 'PATH_ERR_QUERY'],
    ['/a?x=^', 'PATH_ERR_QUERY'],
    ['/a?x=`', 'PATH_ERR_QUERY'],
  ];
  for (const [target, code] of bad) {
    test(`rejects ${JSON.stringify(target)} with ${code}`, () => {
      assert.throws(
        () => canonicalizeTarget(target),
        (err: unknown) => err instanceof RampartError && err.code === code,
      );
    });
  }

  test('property: splits at the first "?", path as canonicalizePath, query untouched', () => {
    const queryChar = fc.constantFrom(...`${UNRESERVED}!$&'()*+,;=:@/?%[]`);
    fc.assert(
      fc.property(hostileInput(), fc.option(fc.string({ unit: queryChar, maxLength: 20 })), (raw, query) => {
        const path = raw.split('?')[0]!;
        const target = query === null ? path : `${path}?${query}`;
        const expected = run(path);
        let got: Outcome;
        try {
          got = { ok: JSON.stringify(canonicalizeTarget(target)) };
        } catch (err) {
          got = { code: (err as RampartError).code };
        }
        if ('ok' in expected) {
          assert.deepEqual(got, { ok: JSON.stringify({ path: expected.ok, query: query ?? '' }) });
          // Re-canonicalizing the result changes nothing.
          const again = canonicalizeTarget(query === null ? expected.ok : `${expected.ok}?${query}`);
          assert.deepEqual(again, { path: expected.ok, query: query ?? '' });
        } else {
          assert.deepEqual(got, expected);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Properties.

describe('canonicalizePath: properties', () => {
  const anyInput = fc.oneof(
    { weight: 3, arbitrary: mostlyValidPath() },
    { weight: 3, arbitrary: hostileInput() },
    { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii' }).map((s) => `/${s}`) },
  );

  test('(a) idempotence: canonical(canonical(x)) === canonical(x)', () => {
    let accepted = 0;
    fc.assert(
      fc.property(anyInput, (x) => {
        const first = run(x);
        if (!('ok' in first)) return;
        accepted++;
        assert.equal(canonicalizePath(first.ok), first.ok);
      }),
      { numRuns: 5000 },
    );
    assert.ok(accepted > 1000, `only ${accepted} accepted inputs: the property is vacuous`);
  });

  test('(b) every output is in canonical form', () => {
    let accepted = 0;
    fc.assert(
      fc.property(anyInput, (x) => {
        const r = run(x);
        if (!('ok' in r)) return;
        accepted++;
        assertCanonicalForm(r.ok);
      }),
      { numRuns: 5000 },
    );
    assert.ok(accepted > 1000, `only ${accepted} accepted inputs`);
  });

  test('(c) percent-encoding unreserved characters (any hex case) does not change the result', () => {
    const ch = fc.constantFrom(...`${UNRESERVED}${SUB_DELIMS_KEPT}`);
    const segment = fc.oneof(
      fc.string({ unit: ch, minLength: 1, maxLength: 6 }),
      fc.constantFrom('.', '..', 'admin', '...'),
    );
    const plan = fc.array(fc.tuple(segment, fc.array(fc.nat(3), { minLength: 6, maxLength: 6 })), { maxLength: 7 });
    fc.assert(
      fc.property(plan, fc.boolean(), (segs, trailing) => {
        const plain = `/${segs.map(([s]) => s).join('/')}${trailing ? '/' : ''}`;
        const encoded = `/${segs
          .map(([s, how]) =>
            [...s]
              .map((c, i) => {
                // 0: raw; 1: upper-case escape; 2: lower-case escape; 3: mixed. Only unreserved get encoded.
                const mode = how[i % how.length]!;
                if (mode === 0 || !UNRESERVED.includes(c)) return c;
                const hex = c.charCodeAt(0).toString(16).padStart(2, '0');
                if (mode === 1) return `%${hex.toUpperCase()}`;
                if (mode === 2) return `%${hex.toLowerCase()}`;
                return `%${hex[0]!.toUpperCase()}${hex[1]!.toLowerCase()}`;
              })
              .join(''),
          )
          .join('/')}${trailing ? '/' : ''}`;
        assert.deepEqual(run(encoded), run(plain), `${encoded} vs ${plain}`);
      }),
      { numRuns: 5000 },
    );
  });

  test('(c) escapes of reserved and non-ASCII bytes are equal up to hex case, and stay encoded', () => {
    const reservedByte = fc
      .integer({ min: 0x20, max: 0xff })
      .filter((b) => b !== 0x2f && b !== 0x5c && b !== 0x7f && !UNRESERVED.includes(String.fromCharCode(b)));
    fc.assert(
      fc.property(fc.array(reservedByte, { minLength: 1, maxLength: 6 }), (bytes) => {
        const upper = `/x${bytes.map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('')}`;
        const lower = upper.toLowerCase();
        assert.equal(canonicalizePath(lower), upper);
        assert.equal(canonicalizePath(upper), upper);
      }),
    );
  });

  test('agrees with the reference model (RFC 3986 §6.2.2 + §5.2.4) on every input', () => {
    let accepted = 0;
    fc.assert(
      fc.property(anyInput, (x) => {
        const got = run(x);
        const want = reference(x);
        if ('ok' in want) {
          accepted++;
          assert.deepEqual(got, want, JSON.stringify(x));
        } else {
          assert.ok('code' in got, `accepted ${JSON.stringify(x)} as ${JSON.stringify(got)}`);
          assert.ok(want.codes.has(got.code), `${JSON.stringify(x)}: ${got.code} not in ${[...want.codes]}`);
        }
      }),
      { numRuns: 10_000 },
    );
    assert.ok(accepted > 2000, `only ${accepted} accepted inputs`);
  });

  test('(d) nothing reaches /admin unless its decoded, dot-resolved meaning is under /admin', () => {
    const token = fc.constantFrom(
      'admin',
      'Admin',
      '%61dmin',
      'ADMIN',
      'admin.',
      'x',
      'public',
      '.',
      '..',
      '%2e',
      '%2E%2e',
      '.%2e',
      '%2e.',
      '%c0%ae',
      '%252e',
      '/',
      '//',
      ';',
      '%3b',
      '%2f',
      '%5c',
      '\\',
      '%00',
      '%20',
      '%25',
      '~',
      '*',
    );
    const input = fc.oneof(
      fc.array(token, { maxLength: 12 }).map((ts) => `/${ts.join('')}`),
      fc.array(token, { maxLength: 8 }).map((ts) => `/${ts.join('/')}`),
    );
    let reached = 0;
    let obfuscated = 0;
    fc.assert(
      fc.property(input, (x) => {
        const r = run(x);
        if (!('ok' in r)) return;
        const m = meaning(x);
        // What the canonical path means to an upstream that decodes once is what the input meant.
        assert.equal(decodeAll(r.ok), m, JSON.stringify(x));
        assert.equal(isUnder(r.ok, '/admin'), isUnder(m, '/admin'), JSON.stringify(x));
        if (isUnder(r.ok, '/admin')) {
          reached++;
          if (!x.startsWith('/admin')) obfuscated++;
        }
      }),
      { numRuns: 20_000 },
    );
    // The generator must actually produce disguised ways to reach /admin, or the test proves nothing.
    assert.ok(reached > 50 && obfuscated > 20, `reached ${reached}, obfuscated ${obfuscated}`);
  });

  test('(d) the reference model agrees on the protected-prefix generator too', () => {
    const token = fc.constantFrom('admin', '.', '..', '%2e', '%2E%2e', '/', '//', ';', '%2f', '%5c', 'x', '%3B');
    fc.assert(
      fc.property(
        fc.array(token, { maxLength: 12 }).map((ts) => `/${ts.join('')}`),
        (x) => {
          const got = run(x);
          const want = reference(x);
          if ('ok' in want) assert.deepEqual(got, want, JSON.stringify(x));
          else assert.ok('code' in got && want.codes.has(got.code), JSON.stringify(x));
        },
      ),
      { numRuns: 10_000 },
    );
  });
});

describe('reference model sanity', () => {
  // The reference must itself be right, or agreement proves nothing.
  test('RFC 3986 §5.2.4 examples', () => {
    assert.equal(removeDotSegments('/a/b/c/./../../g').output, '/a/g');
    assert.equal(removeDotSegments('mid/content=5/../6').output, 'mid/6');
    assert.equal(removeDotSegments('/..').climbed, true);
    assert.equal(removeDotSegments('/a/..').climbed, false);
  });
  test('known answers', () => {
    assert.deepEqual(reference('/a/%2E%2e/%7eb/'), { ok: '/~b' });
    assert.deepEqual(reference('/a%2fb'), { codes: new Set(['PATH_ERR_ENCODED_DELIMITER']) });
    assert.equal(meaning('/a/%2e%2e/admin%3Bx'), '/admin;x');
  });
});
