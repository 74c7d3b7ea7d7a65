import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/config-error.ts';
import { formatIssues } from '../config/format.ts';
import { loadManifest } from '../config/load.ts';
import type { Manifest } from '../config/model.ts';
import { isRampartError } from '../core/errors.ts';
import { Launcher, type LauncherOptions } from '../launcher/launcher.ts';
import { LOG_FORMATS, type LogFormat } from '../launcher/log-output.ts';

export interface StartIo {
  stdout: Writable;
  stderr: Writable;
  cwd: string;
  /** The output is a terminal (colors allowed unless NO_COLOR is set). */
  color: boolean;
}

/** Test seams: launcher options and the process whose signals stop the launcher. */
export interface StartHooks {
  launcher?: Partial<LauncherOptions>;
  signals?: Pick<NodeJS.Process, 'on' | 'off'>;
  env?: NodeJS.ProcessEnv;
}

const USAGE = `Usage: rampart start [file] [--log-format pretty|json]

Runs every component and service of a manifest (default ./rampart.yaml), each as its own process
with its own data directory under <manifest dir>/.rampart/ and Node's permission model. Ctrl-C stops
everything; a second Ctrl-C kills at once.

Options:
  --log-format pretty|json  pretty (default): one prefixed, readable line per log record;
                            json: the processes' JSON lines unchanged, for machines
  -h, --help                show this help
`;

/**
 * `rampart start [file] [--log-format pretty|json]`. Resolves with the exit code: 0 after a signal
 * stopped everything, 1 when a process could not be started or kept crashing, 2 for a usage or
 * manifest error.
 */
export async function runStart(args: string[], io: StartIo, hooks: StartHooks = {}): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    io.stderr.write(`rampart start: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const env = hooks.env ?? process.env;
  const file = resolve(io.cwd, parsed.file);
  let manifest: Manifest;
  try {
    manifest = loadManifest(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(formatIssues(err.issues, { color: io.color, cwd: io.cwd }));
      return 2;
    }
    throw err;
  }

  let launcher: Launcher;
  try {
    launcher = new Launcher(manifest, {
      stdout: io.stdout,
      stderr: io.stderr,
      logFormat: parsed.logFormat,
      color: io.color && !env['NO_COLOR'],
      parentEnv: env,
      cwd: io.cwd,
      ...hooks.launcher,
    });
  } catch (err) {
    if (isRampartError(err)) {
      io.stderr.write(`rampart start: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  const signals = hooks.signals ?? process;
  let signalled = 0;
  const onSignal = () => {
    signalled += 1;
    if (signalled === 1) void launcher.stop();
    else launcher.kill();
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) signals.on(signal, onSignal);
  try {
    await launcher.start().catch((err: unknown) => {
      // The launcher has printed the reason and stopped everything; a signal during start is not an error.
      if (!isRampartError(err)) throw err;
    });
    return await launcher.done;
  } finally {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) signals.off(signal, onSignal);
  }
}

function parse(args: string[]): { file: string; logFormat: LogFormat; help: boolean } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      'log-format': { type: 'string', default: 'pretty' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (positionals.length > 1) throw new Error(`expected one manifest file, got ${positionals.length}`);
  const logFormat = values['log-format'] as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) throw new Error(`--log-format must be pretty or json, not "${logFormat}"`);
  return { file: positionals[0] ?? 'rampart.yaml', logFormat, help: values.help === true };
}
