import type { Readable, Writable } from 'node:stream';
import { LineSplitter, launcherRecord, prettyLine } from './log-lines.ts';

export type LogFormat = 'pretty' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json'];

export interface LogOutputOptions {
  stdout: Writable;
  stderr: Writable;
  format: LogFormat;
  /** ANSI colors (pretty only): the caller decides (a TTY, and NO_COLOR unset). */
  color: boolean;
  /** Every process name, in start order: sets the padding and each name's color. */
  names: readonly string[];
}

const LAUNCHER = 'rampart';

/**
 * Where the children's lines and the launcher's own go. `pretty`: every line prefixed with the
 * process name, pino JSON rendered for people. `json`: the children's lines exactly as written (each
 * already carries its `name`) and the launcher's own as pino-shaped JSON, for machines.
 */
export class LogOutput {
  readonly #options: LogOutputOptions;
  readonly #width: number;
  readonly #index: Map<string, number>;
  readonly #ignore = () => {};

  constructor(options: LogOutputOptions) {
    this.#options = options;
    this.#width = Math.max(LAUNCHER.length, ...options.names.map((name) => name.length));
    this.#index = new Map(options.names.map((name, i) => [name, i]));
    // A reader that went away (`rampart start | head`) must not crash the launcher mid-shutdown.
    options.stdout.on('error', this.#ignore);
    options.stderr.on('error', this.#ignore);
  }

  /** Forwards a child's stream line by line; `onLine` sees each line too (the stderr tail). */
  attach(name: string, stream: Readable, to: 'stdout' | 'stderr', onLine?: (line: string) => void): void {
    const splitter = new LineSplitter();
    const emit = (lines: string[]) => {
      for (const line of lines) {
        onLine?.(line);
        this.#write(to, this.#render(name, line));
      }
    };
    stream.on('data', (chunk: Buffer) => emit(splitter.push(chunk)));
    stream.on('end', () => emit(splitter.end()));
    stream.on('error', () => {});
  }

  info(msg: string, fields: Record<string, unknown> = {}): void {
    this.#own('info', msg, fields, 'stdout');
  }

  warn(msg: string, fields: Record<string, unknown> = {}): void {
    this.#own('warn', msg, fields, 'stderr');
  }

  error(msg: string, fields: Record<string, unknown> = {}): void {
    this.#own('error', msg, fields, 'stderr');
  }

  /**
   * Why the launcher is giving up, with the last stderr lines of the process concerned. In `json`
   * format one record carrying `process` and `stderr`.
   */
  failure(process: string, reason: string, stderr: readonly string[]): void {
    if (this.#options.format === 'json') {
      this.#write('stderr', launcherRecord('error', reason, { process, stderr }));
      return;
    }
    this.#own('error', reason, {}, 'stderr');
    if (stderr.length === 0) return;
    this.#own('error', `last stderr lines of ${process}:`, {}, 'stderr');
    for (const line of stderr) this.#write('stderr', this.#render(process, `  ${line}`));
  }

  /** Text for people (the banner); in `json` format it becomes one record with `fields`. */
  banner(text: string, fields: Record<string, unknown>): void {
    if (this.#options.format === 'json') this.#write('stdout', launcherRecord('info', 'ready', fields));
    else this.#write('stdout', text.replace(/\n$/, ''));
  }

  /** Stops swallowing write errors on the caller's streams. */
  close(): void {
    this.#options.stdout.off('error', this.#ignore);
    this.#options.stderr.off('error', this.#ignore);
  }

  #own(level: string, msg: string, fields: Record<string, unknown>, to: 'stdout' | 'stderr'): void {
    this.#write(to, this.#render(LAUNCHER, launcherRecord(level, msg, fields)));
  }

  #render(name: string, line: string): string {
    if (this.#options.format === 'json') return line;
    return prettyLine(name, line, {
      width: this.#width,
      color: this.#options.color,
      index: this.#index.get(name) ?? this.#options.names.length,
    });
  }

  #write(to: 'stdout' | 'stderr', text: string): void {
    const stream = to === 'stdout' ? this.#options.stdout : this.#options.stderr;
    if (stream.writable) stream.write(`${text}\n`);
  }
}
