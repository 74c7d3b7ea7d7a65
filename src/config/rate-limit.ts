import { GCRA_MIN_INTERVAL_MS } from '../gateway/rate-limit/gcra.ts';
import type { RateLimit, RateLimitKey } from './model.ts';
import { didYouMean } from './suggest.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Period units and their length in milliseconds. */
const UNITS: Readonly<Record<string, number>> = {
  s: SECOND,
  sec: SECOND,
  second: SECOND,
  m: MINUTE,
  min: MINUTE,
  minute: MINUTE,
  h: HOUR,
  hour: HOUR,
  d: DAY,
  day: DAY,
};

const SIMPLE_KEYS = ['ip', 'subject', 'client'] as const;

/**
 * Headers whose values are credentials: a rate limit keyed by them would keep tokens and session
 * cookies in the limiter's memory or in Redis keys. `subject` and `client` count the same callers safely.
 */
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie'] as const;

/** At most 9 digits: limits stay far inside safe integers whatever the period. */
const COUNT = '[1-9][0-9]{0,8}';
/** At most 6 digits of period multiplier (`100/10s`): up to ~2700 years of days, still a safe integer. */
const MULTIPLIER = '[1-9][0-9]{0,5}';
/** RFC 9110 §5.6.2 token characters, as header names are. */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}";

export const RATE_LIMIT_SYNTAX = '<count>/<period> per <ip|subject|client|header:Name>';
export const RATE_LIMIT_EXAMPLE = '100/min per ip';
/** The hint every malformed rate limit gets. */
export const RATE_LIMIT_HINT = `write ${RATE_LIMIT_SYNTAX}, e.g. ${RATE_LIMIT_EXAMPLE} or 20/10s per subject; periods: s, sec, second, m, min, minute, h, hour, d, day`;

/** `cookie` → `[cC][oO]...`: JSON Schema patterns have no case-insensitive flag. */
const caseless = (word: string): string =>
  [...word].map((c) => (/[a-z]/.test(c) ? `[${c}${c.toUpperCase()}]` : c)).join('');

/**
 * The rate-limit syntax as one regular expression, published in the JSON Schema so editors flag bad
 * values; {@link parseRateLimit} accepts exactly the same strings (a test holds them together).
 */
export const RATE_LIMIT_REGEX_SOURCE =
  `^\\s*${COUNT}/(?:${MULTIPLIER})?(?:${Object.keys(UNITS).join('|')})\\s+per\\s+` +
  `(?:${SIMPLE_KEYS.join('|')}|header:(?!(?:${CREDENTIAL_HEADERS.map(caseless).join('|')})\\s*$)${TOKEN})\\s*$`;

export type RateLimitParse =
  | { ok: true; value: RateLimit }
  /** `tooFast`: well-formed, but faster than the limiter can represent for one key; `syntax`: the rest. */
  | { ok: false; kind: 'syntax' | 'tooFast'; reason: string; hint: string };

/**
 * Parses `<count>/<period> per <key>`: `100/min per ip`, `20/10s per subject`, `5/h per header:X-Api-Key`.
 * On failure says what is wrong (the reason) and how to write it (the hint).
 */
export function parseRateLimit(text: string): RateLimitParse {
  const fail = (reason: string, hint = RATE_LIMIT_HINT, kind: 'syntax' | 'tooFast' = 'syntax'): RateLimitParse => ({
    ok: false,
    kind,
    reason,
    hint,
  });
  const source = text.trim();
  const parts = source.split(/\s+per\s+/);
  if (parts.length !== 2) {
    return fail(parts.length < 2 ? 'missing "per <key>"' : 'more than one "per"');
  }
  const [rate, keyText] = parts as [string, string];
  const slash = rate.indexOf('/');
  if (slash === -1) return fail('missing "/<period>"');
  const countText = rate.slice(0, slash);
  const periodText = rate.slice(slash + 1);
  if (!new RegExp(`^${COUNT}$`).test(countText)) {
    return fail(`count ${JSON.stringify(countText)} is not a whole number from 1 to 999999999`);
  }
  const period = /^([0-9]*)([A-Za-z]*)$/.exec(periodText);
  if (period === null || period[2] === '') return fail(`period ${JSON.stringify(periodText)} is not <number><unit>`);
  const [, multiplierText = '', unit = ''] = period;
  if (multiplierText !== '' && !new RegExp(`^${MULTIPLIER}$`).test(multiplierText)) {
    return fail(`period multiplier ${JSON.stringify(multiplierText)} is not a whole number from 1 to 999999`);
  }
  const unitMs = UNITS[unit];
  if (unitMs === undefined) {
    const guess = didYouMean(unit, Object.keys(UNITS));
    return fail(`unknown period unit ${JSON.stringify(unit)}${guess ? ` (${guess})` : ''}`);
  }
  const periodMs = (multiplierText === '' ? 1 : Number(multiplierText)) * unitMs;
  // The limiter stores times with microsecond resolution (src/gateway/rate-limit/gcra.ts): a faster rate
  // per key cannot be represented, and the gateway would refuse it at start.
  if (periodMs / Number(countText) < GCRA_MIN_INTERVAL_MS) {
    return fail(
      `${countText} per ${periodText} is faster than ${1 / GCRA_MIN_INTERVAL_MS / 1000} per second for one key`,
      'a rate limit admits at most 1000000/s per key; use a longer period or a smaller count',
      'tooFast',
    );
  }
  const key = parseKey(keyText);
  if (!key.ok) return fail(key.reason, key.hint);
  return {
    ok: true,
    value: {
      limit: Number(countText),
      periodMs,
      key: key.value,
      source,
    },
  };
}

function parseKey(text: string): { ok: true; value: RateLimitKey } | { ok: false; reason: string; hint: string } {
  if ((SIMPLE_KEYS as readonly string[]).includes(text)) {
    return { ok: true, value: { kind: text as (typeof SIMPLE_KEYS)[number] } as RateLimitKey };
  }
  if (text.startsWith('header:')) {
    const name = text.slice('header:'.length);
    if (!new RegExp(`^${TOKEN}$`).test(name)) {
      return {
        ok: false,
        reason: `${JSON.stringify(name)} is not a header name`,
        hint: 'a header name is 1 to 64 token characters, e.g. header:X-Api-Key',
      };
    }
    // Header names are case-insensitive (RFC 9110 §5.1); Node hands them over in lower case.
    const lower = name.toLowerCase();
    if ((CREDENTIAL_HEADERS as readonly string[]).includes(lower)) {
      return {
        ok: false,
        reason: `the ${name} header carries credentials and cannot be a rate-limit key`,
        hint: 'count callers with `per subject` (the token subject) or `per client` (its client_id)',
      };
    }
    return { ok: true, value: { kind: 'header', name: lower } };
  }
  const guess = didYouMean(text, [...SIMPLE_KEYS, 'header:']);
  return {
    ok: false,
    reason: `unknown rate-limit key ${JSON.stringify(text)}${guess ? ` (${guess})` : ''}`,
    hint: 'the key is ip, subject, client or header:<Header-Name>, e.g. 100/min per ip',
  };
}
