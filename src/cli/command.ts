import { clean, oneLine } from './text.ts';

/** A mistake in how the command was called: printed with the usage, exit 2. */
export class UsageError extends Error {}

/** What an operator command writes to. */
export interface CommandOutput {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** What `rampart ca` and `rampart kek` run with (tests pass their own). */
export interface OperatorIo extends CommandOutput {
  cwd: string;
  /** Default process.env (RAMPART_KEK). */
  env?: Readonly<Record<string, string | undefined>>;
}

/** The control plane's data directory, relative to the project (`--data-dir` overrides it). */
export const DEFAULT_DATA_DIR = '.rampart/control';

export interface OperatorCommand<P extends { values: { help?: boolean | undefined }; positionals: string[] }> {
  /** `rampart <name>`, as messages start. */
  name: string;
  usage: string;
  io: CommandOutput;
  /** Parses the arguments (node:util parseArgs, strict): a throw is a usage error. */
  parse: () => P;
  /** Runs the parsed command; UsageError for a mistake in the call, anything else is a failure. */
  run: (parsed: P) => Promise<number>;
  /** One line (or a few) saying what failed, without a stack trace or a value. */
  describe: (err: unknown) => string;
  /** Before a failure's description: default `rampart <name>`. */
  failurePrefix?: (parsed: P) => string;
}

/**
 * The frame every operator command (`rampart ca|kek|secrets|audit`) shares: exit 2 with the usage for a
 * mistake in the call, 0 with the usage for `help`/`--help`, 1 with a description for a failure, and
 * never a stack trace.
 */
export async function runOperatorCommand<P extends { values: { help?: boolean | undefined }; positionals: string[] }>(
  command: OperatorCommand<P>,
): Promise<number> {
  const { io, name, usage } = command;
  let parsed: P;
  try {
    parsed = command.parse();
  } catch (err) {
    io.stderr.write(`rampart ${name}: ${oneLine(err)}\n\n${usage}`);
    return 2;
  }
  if (parsed.values.help || parsed.positionals[0] === 'help') {
    io.stdout.write(usage);
    return 0;
  }
  try {
    return await command.run(parsed);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`rampart ${name}: ${err.message}\n\n${usage}`);
      return 2;
    }
    const prefix = command.failurePrefix?.(parsed) ?? `rampart ${name}`;
    io.stderr.write(`${prefix}: ${command.describe(err)}\n`);
    return 1;
  }
}

/** `rampart <name> <sub>` for a failure's prefix, the subcommand cleaned. */
export const subcommandPrefix = (name: string, sub: string | undefined): string =>
  `rampart ${name} ${clean(sub ?? '')}`;
