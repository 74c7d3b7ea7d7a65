import { canonicalizePath } from './canonical-path.ts';
import { RampartError } from './errors.ts';

/**
 * A compiled path pattern: literal segments, `*` for exactly one segment, and `**` as the last segment
 * for zero or more segments (`/orders/**` matches `/orders` and `/orders/a/b`). Patterns must be
 * canonical paths (so a pattern can never mean something the canonical request path cannot be).
 */
export interface CompiledPattern {
  readonly source: string;
  readonly segments: readonly string[];
  /** True when the pattern ends in `**`. */
  readonly rest: boolean;
  /**
   * Sort key, compared from the left, higher first: a literal segment (3) beats `*` (2), which beats the
   * end of a pattern without `**` (1), which beats `**` (0). So with a common prefix a literal beats `*`,
   * `*` beats `**`, longer beats shorter, and `/a` beats `/a/**`; a pattern always sorts before every
   * pattern that matches a strict superset of its paths.
   */
  readonly specificity: readonly number[];
}

/** Parses and validates a pattern; throws CFG_ERR_PATTERN with a reason in `detail.reason`. */
export function compilePattern(source: string): CompiledPattern {
  const fail = (reason: string): never => {
    throw new RampartError('CFG_ERR_PATTERN', `invalid path pattern: ${reason}`, { status: 400, detail: { reason } });
  };
  if (!source.startsWith('/')) fail('a pattern starts with "/"');
  const probe = source.replaceAll('**', 'x').replaceAll('*', 'x');
  let canonical: string;
  try {
    canonical = canonicalizePath(probe);
  } catch (err) {
    return fail(`not a canonical path (${(err as RampartError).code})`);
  }
  if (canonical !== probe) fail(`not in canonical form (would be "${canonical}")`);
  const segments = source === '/' ? [] : source.slice(1).split('/');
  segments.forEach((segment, i) => {
    if (segment.includes('*') && segment !== '*' && segment !== '**') {
      fail(`"*" and "**" must be whole segments, found "${segment}"`);
    }
    if (segment === '**' && i !== segments.length - 1) fail('"**" may only be the last segment');
  });
  const rest = segments.at(-1) === '**';
  const fixed = rest ? segments.slice(0, -1) : segments;
  const specificity = [...fixed.map((s) => (s === '*' ? 2 : 3)), rest ? 0 : 1];
  return { source, segments: fixed, rest, specificity };
}

/**
 * Whether a canonical path (see canonicalizePath) matches the pattern. The path must already be canonical:
 * matching a raw request path here would bring back the two-readings bug canonicalization exists to stop.
 */
export function matchPattern(pattern: CompiledPattern, path: string): boolean {
  let pos = 1; // just after the leading slash; past the end once every segment is consumed
  for (const segment of pattern.segments) {
    if (pos >= path.length) return false;
    let next = path.indexOf('/', pos);
    if (next === -1) next = path.length;
    if (segment !== '*' && (next - pos !== segment.length || !path.startsWith(segment, pos))) return false;
    pos = next + 1;
  }
  return pattern.rest || pos >= path.length;
}

/** Orders patterns most specific first (stable for equal specificity). */
export function compareSpecificity(a: CompiledPattern, b: CompiledPattern): number {
  const n = Math.max(a.specificity.length, b.specificity.length);
  for (let i = 0; i < n; i++) {
    const x = a.specificity[i] ?? -1;
    const y = b.specificity[i] ?? -1;
    if (x !== y) return y - x;
  }
  return 0;
}

/**
 * Whether some canonical path matches both patterns (used to find routes two services claim).
 * Exact for this pattern language: walk both segment lists; `**` absorbs the rest of the other.
 */
export function patternsOverlap(a: CompiledPattern, b: CompiledPattern): boolean {
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const x = a.segments[i]!;
    const y = b.segments[i]!;
    if (x !== '*' && y !== '*' && x !== y) return false;
  }
  if (a.segments.length === b.segments.length) return true;
  const shorter = a.segments.length < b.segments.length ? a : b;
  return shorter.rest;
}
