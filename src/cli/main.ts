import { readFileSync } from 'node:fs';
import { stdout } from 'node:process';

/** A subcommand: resolves to the process exit code (0 ok, 1 failure, 2 usage or configuration error). */
type Command = (args: string[]) => Promise<number>;

const io = () => ({ stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), color: stdout.isTTY === true });

/** Subcommands, loaded on demand so `rampart check` does not pay for the launcher's imports. */
const COMMANDS: Record<string, { summary: string; run: Command }> = {
  start: {
    summary: 'run every component and service of a manifest (default ./rampart.yaml)',
    run: async (args) => (await import('./start.ts')).runStart(args, io()),
  },
  check: {
    summary: 'validate a manifest and print a summary of the system',
    run: async (args) => (await import('./check.ts')).runCheck(args, io()),
  },
  audit: {
    summary: 'verify the audit log, or show its events (verify, tail, query)',
    run: async (args) => (await import('./audit.ts')).runAudit(args, io()),
  },
  ca: {
    summary: 'show the certificate authority (slots, expiries, warnings) or force a rotation',
    run: async (args) => (await import('./ca.ts')).runCa(args, io()),
  },
  secrets: {
    summary: 'set, read, rotate and roll back secrets (local data directory)',
    run: async (args) => (await import('./secrets.ts')).runSecrets(args, io()),
  },
  kek: {
    summary: 'rotate the key-encryption key of the whole control plane (offline)',
    run: async (args) => (await import('./kek.ts')).runKek(args, io()),
  },
  users: {
    summary: 'manage accounts of the built-in identity provider (add, list, disable, reset-mfa)',
    run: async (args) => (await import('./identity-commands.ts')).runUsers(args),
  },
  clients: {
    summary: 'manage OAuth clients of the built-in identity provider (add, list, rotate-secret)',
    run: async (args) => (await import('./identity-commands.ts')).runClients(args),
  },
  login: {
    summary: 'sign in to the built-in identity provider (device flow) and store a token',
    run: async (args) => (await import('./identity-commands.ts')).runLogin(args),
  },
  token: {
    summary: 'print the stored access token of `rampart login` (refreshed when needed)',
    run: async (args) => (await import('./identity-commands.ts')).runToken(args),
  },
  identity: {
    summary: 'operate the built-in identity provider (keys, rotate-keys)',
    run: async (args) => (await import('./identity-commands.ts')).runIdentity(args),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: rampart <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nrampart <command> --help for a command's options.\n`;
}

/** The CLI entry point; returns the exit code instead of exiting so it can be tested in-process. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    // Two levels up from src/cli and from dist/cli alike.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`rampart: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}
