import { StringDecoder } from 'node:string_decoder';

/** Longest line kept whole; a child that writes more without a newline is cut there (memory bound). */
export const MAX_LINE = 256 * 1024;

/**
 * Splits a byte stream into lines (UTF-8 safe across chunk boundaries). `push` returns the complete
 * lines of a chunk; `end` returns what was left without a trailing newline.
 */
export class LineSplitter {
  #decoder = new StringDecoder('utf8');
  #partial = '';

  push(chunk: Buffer | string): string[] {
    const text = this.#partial + (typeof chunk === 'string' ? chunk : this.#decoder.write(chunk));
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    while (this.#partial.length > MAX_LINE) {
      lines.push(this.#partial.slice(0, MAX_LINE));
      this.#partial = this.#partial.slice(MAX_LINE);
    }
    return lines.map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  }

  end(): string[] {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = '';
    return rest === '' ? [] : [rest];
  }
}

const ANSI = {
  reset: '\x1b[0m',
  dim: '\x1b[2m',
  bold: '\x1b[1m',
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  blue: '\x1b[34m',
  magenta: '\x1b[35m',
  cyan: '\x1b[36m',
  gray: '\x1b[90m',
} as const;

/** Name colors, assigned in start order; red and gray are left for levels. */
const NAME_COLORS = ['\x1b[36m', '\x1b[35m', '\x1b[34m', '\x1b[33m', '\x1b[32m', '\x1b[96m', '\x1b[95m', '\x1b[94m'];

const PINO_LEVELS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const LEVEL_COLORS: Record<string, string> = {
  trace: ANSI.gray,
  debug: ANSI.gray,
  info: ANSI.green,
  warn: ANSI.yellow,
  error: ANSI.red,
  fatal: ANSI.red + ANSI.bold,
};
/** Fields shown elsewhere on the line, or noise for a person reading a terminal. */
const HIDDEN_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'v']);

export interface PrettyOptions {
  /** Width the process names are padded to. */
  width: number;
  color: boolean;
  /** Index of the process (its color). */
  index: number;
}

/** Control characters (ESC above all) from a child's log values must not reach the terminal raw. */
function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function clock(time: unknown): string {
  const date = typeof time === 'number' || typeof time === 'string' ? new Date(time) : new Date();
  const valid = Number.isNaN(date.getTime()) ? new Date() : date;
  return [valid.getHours(), valid.getMinutes(), valid.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function renderValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]*$/.test(value) && value !== '' ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/** Renders one line a child wrote: pino JSON as `12:00:01 catalog │ info  listening port=4100`. */
export function prettyLine(name: string, line: string, options: PrettyOptions): string {
  const paint = (code: string, text: string) => (options.color ? `${code}${text}${ANSI.reset}` : text);
  const nameColor = NAME_COLORS[options.index % NAME_COLORS.length]!;
  const record = parseRecord(line);
  if (record === null) {
    return `${paint(ANSI.dim, '        ')} ${paint(nameColor, name.padEnd(options.width))} ${paint(ANSI.dim, '│')} ${line}`;
  }
  const level =
    typeof record.level === 'number'
      ? (PINO_LEVELS[record.level] ?? String(record.level))
      : String(record.level ?? 'info');
  const fields: string[] = [];
  const trailer: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (HIDDEN_FIELDS.has(key)) continue;
    if ((key === 'err' || key === 'error') && typeof value === 'object' && value !== null) {
      const err = value as { message?: unknown; stack?: unknown; code?: unknown };
      fields.push(`${key}=${renderValue(err.message ?? err.code ?? value)}`);
      if (typeof err.stack === 'string') trailer.push(...err.stack.split('\n').slice(1));
      continue;
    }
    fields.push(`${key}=${renderValue(value)}`);
  }
  const head = `${paint(ANSI.dim, clock(record.time))} ${paint(nameColor, name.padEnd(options.width))} ${paint(ANSI.dim, '│')}`;
  const msg = typeof record.msg === 'string' ? record.msg : '';
  const body = [paint(LEVEL_COLORS[level] ?? '', clean(level).padEnd(5)), clean(msg), ...fields.map(clean)];
  const lines = [`${head} ${body.filter((part) => part !== '').join(' ')}`];
  for (const extra of trailer) {
    lines.push(
      `${' '.repeat(8)} ${' '.repeat(options.width)} ${paint(ANSI.dim, '│')} ${paint(ANSI.dim, clean(extra))}`,
    );
  }
  return lines.join('\n');
}

function parseRecord(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** A line of the launcher's own, in the format of its output (pino-shaped JSON for `--log-format json`). */
export function launcherRecord(level: string, msg: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ level, time: new Date().toISOString(), name: 'rampart', msg, ...fields });
}
