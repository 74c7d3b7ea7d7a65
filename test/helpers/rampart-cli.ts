import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const RAMPART = join(fileURLToPath(new URL('../..', import.meta.url)), 'bin', 'rampart.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `rampart <args>` as an operator does (a separate process, in `cwd`), with `stdin` piped in. */
export function runRampart(args: string[], cwd: string, stdin?: Buffer): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [RAMPART, ...args],
      { cwd, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin);
  });
}

/** The fields of an audit event the system tests look at. */
export interface LoggedEvent {
  component: string;
  action: string;
  decision: string;
  reason?: string;
  reporter?: string;
  resource?: string;
  actor?: { spiffeId?: string };
}

/**
 * Every event in the audit log that `where` selects (`--data <dir>` or `--postgres <url>`), through
 * `rampart audit query --json`. Its output is appended to `printed` when given (for tests that check
 * nothing secret is ever printed).
 */
export async function queryAuditLog(where: string[], cwd: string, printed?: string[]): Promise<LoggedEvent[]> {
  const res = await runRampart(['audit', 'query', ...where, '--json', '--limit', '10000'], cwd);
  printed?.push(res.stdout, res.stderr);
  assert.equal(res.code, 0, res.stderr);
  return res.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LoggedEvent);
}

/** Polls `query` until an event matches (the log is written asynchronously); fails after 30 s naming `what`. */
export async function waitForAuditEvent(
  query: () => Promise<LoggedEvent[]>,
  what: string,
  match: (e: LoggedEvent) => boolean,
): Promise<LoggedEvent> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = (await query()).find(match);
    if (found) return found;
    assert.ok(Date.now() < deadline, `no ${what} in the audit log`);
    await delay(250);
  }
}
