import { PASSWORD_DEFAULTS } from '../defaults.ts';
import { IDP_ERRORS, idpError } from '../errors.ts';
import { COMMON_PASSWORDS } from './common-passwords.ts';

/**
 * Password rules of NIST SP 800-63B-4 §3.1.1.2 and nothing else: a length range counted in Unicode
 * code points after NFKC, and a check against common, repetitive, sequential and context-specific
 * passwords. No composition rules ("one digit, one symbol"), no expiry, no truncation.
 */
export const WEAK_PASSWORD_REASONS = {
  tooShort: 'too_short',
  tooLong: 'too_long',
  /** In the shipped list of common passwords (also after undoing leetspeak and stripping digits/symbols around it). */
  common: 'common',
  /** A short unit repeated (`abcabcabc…`, `aaaa…`). */
  repetitive: 'repetitive',
  /** A run of a well-known sequence (`1234567…`, `abcdef…`, `qwerty…`), either direction. */
  sequential: 'sequential',
  /** Mostly the username or the service name. */
  context: 'context',
} as const;

export type WeakPasswordReason = (typeof WEAK_PASSWORD_REASONS)[keyof typeof WEAK_PASSWORD_REASONS];

export interface PasswordPolicy {
  /** Throws IDP_ERR_WEAK_PASSWORD with `detail.reason` (a {@link WeakPasswordReason}). */
  check(password: string, context?: { username?: string }): void;
  /** The reason a password is refused, or null. */
  reasonFor(password: string, context?: { username?: string }): WeakPasswordReason | null;
}

const SEQUENCES = [
  'abcdefghijklmnopqrstuvwxyz',
  '0123456789',
  'qwertyuiop',
  'asdfghjkl',
  'zxcvbnm',
  'qwertzuiop',
  'azertyuiop',
];
const LEET: Record<string, string> = {
  '@': 'a',
  '4': 'a',
  '3': 'e',
  '1': 'i',
  '!': 'i',
  '0': 'o',
  $: 's',
  '5': 's',
  '7': 't',
  '+': 't',
};
/** Context words besides the username. */
const SERVICE_WORDS = ['rampart'];

function deleet(text: string): string {
  return text.replace(/[@431!0$57+]/g, (c) => LEET[c]!);
}

/** The letters-and-more core of a password with leading and trailing digits and symbols removed. */
function stem(text: string): { core: string; affix: string } {
  const m = /^([^\p{L}]*)(.*?)([^\p{L}]*)$/u.exec(text)!;
  return { core: m[2]!, affix: m[1]! + m[3]! };
}

function isRepetitionOf(text: string, maxUnit: number): string | null {
  const chars = [...text];
  for (let unit = 1; unit <= Math.min(maxUnit, chars.length / 2); unit++) {
    if (chars.length % unit !== 0) continue;
    const first = chars.slice(0, unit).join('');
    if (first.repeat(chars.length / unit) === text) return first;
  }
  return null;
}

function isSequential(text: string): boolean {
  if (text.length < 4) return false;
  for (const sequence of SEQUENCES) {
    const forward = sequence.repeat(Math.ceil(text.length / sequence.length) + 1);
    const backward = [...forward].reverse().join('');
    if (forward.includes(text) || backward.includes(text)) return true;
  }
  return false;
}

/** Digits/symbols around a common word that add little: short, repetitive or sequential. */
function weakAffix(affix: string): boolean {
  return affix.length <= 6 || isSequential(affix) || isRepetitionOf(affix, 3) !== null;
}

export function createPasswordPolicy(
  options: { minLength?: number; maxLength?: number; blocklist?: string } = {},
): PasswordPolicy {
  const minLength = options.minLength ?? PASSWORD_DEFAULTS.minLength;
  const maxLength = options.maxLength ?? PASSWORD_DEFAULTS.maxLength;
  const list = new Set(
    (options.blocklist ?? COMMON_PASSWORDS)
      .split('\n')
      .map((w) => w.trim())
      .filter(Boolean),
  );
  const common = (text: string) => list.has(text) || list.has(deleet(text));

  const reasonFor = (password: string, context: { username?: string } = {}): WeakPasswordReason | null => {
    if (typeof password !== 'string') return WEAK_PASSWORD_REASONS.tooShort;
    const normalized = password.normalize('NFKC');
    const length = [...normalized].length;
    if (length < minLength) return WEAK_PASSWORD_REASONS.tooShort;
    if (length > maxLength) return WEAK_PASSWORD_REASONS.tooLong;
    const lower = normalized.toLowerCase();
    // Separators do not make a common phrase uncommon ("correct horse battery staple").
    const joined = lower.replace(/[\s._-]+/g, '');
    if (common(lower) || common(joined)) return WEAK_PASSWORD_REASONS.common;
    for (const variant of [lower, deleet(lower), joined, deleet(joined)]) {
      const { core, affix } = stem(variant);
      if (core.length >= 4 && common(core) && weakAffix(affix)) return WEAK_PASSWORD_REASONS.common;
    }
    const unit = isRepetitionOf(lower, Math.floor(length / 2));
    if (unit !== null && ([...unit].length <= 4 || common(unit) || list.has(stem(unit).core))) {
      return WEAK_PASSWORD_REASONS.repetitive;
    }
    if (isSequential(lower)) return WEAK_PASSWORD_REASONS.sequential;
    const words = [...SERVICE_WORDS, ...(context.username ? [context.username.normalize('NFKC').toLowerCase()] : [])];
    for (const word of words) {
      if (word.length < 3 || !lower.includes(word)) continue;
      const rest = lower.split(word).join('');
      // What is left besides the context word must stand on its own.
      if ([...rest].length < 8 || !/\p{L}/u.test(rest) || reasonForRest(rest)) return WEAK_PASSWORD_REASONS.context;
    }
    return null;
  };
  const reasonForRest = (rest: string) => common(rest) || isSequential(rest) || isRepetitionOf(rest, 4) !== null;

  return {
    reasonFor,
    check(password, context) {
      const reason = reasonFor(password, context);
      if (reason) {
        throw idpError(IDP_ERRORS.weakPassword, 'password does not meet the rules', { detail: { reason } });
      }
    },
  };
}
