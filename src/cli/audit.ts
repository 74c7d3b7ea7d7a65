import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { openAuditDatabase } from '../control/audit/database.ts';
import { AUDIT_DEFAULTS } from '../control/audit/defaults.ts';
import { AUDIT_ERRORS } from '../control/audit/errors.ts';
import { type AuditQuery, type QueryResult, queryEvents, tailEvents } from '../control/audit/query.ts';
import {
  VERIFY_PROBLEMS,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyReport,
  verifyLog,
} from '../control/audit/verify.ts';
import type { AuditDecision } from '../core/audit-event.ts';
import { isRampartError } from '../core/errors.ts';
import { DEFAULT_DATA_DIR, runOperatorCommand, subcommandPrefix, UsageError } from './command.ts';
import { clean, oneLine } from './text.ts';

export interface AuditIo {
  stdout: Writable;
  stderr: Writable;
  cwd: string;
  /** Stops `tail --follow` (Ctrl-C in the real CLI). */
  signal?: AbortSignal;
  /** `tail --follow` poll interval (tests). */
  pollMs?: number;
  /** Clock for relative times (`--since 15m`). */
  now?: () => number;
}

const USAGE = `Usage: rampart audit <verify|tail|query> [options]

  verify   recompute the audit log's Merkle tree from the stored events, check every signed
           checkpoint and name the first bad index if anything was changed
  tail     the last events (and, with --follow, new ones as they arrive)
  query    events matching filters, oldest first

Options:
  --data <dir|file>       the control plane's data directory (default ${DEFAULT_DATA_DIR}) or the
                          ${AUDIT_DEFAULTS.databaseFile} file itself
  --postgres <url>        a log kept in PostgreSQL instead (postgres://user@host:port/database; the
                          password may come from PGPASSWORD rather than the URL); read only
  --schema <name>         the PostgreSQL schema holding the log (default ${AUDIT_DEFAULTS.postgresSchema})
  --json                  JSON (verify: the report; tail/query: one event per line)

verify:
  --key <vkey|@file>      trusted verifier key (<name>+<id>+<key>); repeatable. Without one the key
                          stored in the log is used, which cannot detect a replaced key
  --checkpoint <file>     a signed checkpoint kept outside the log; the log must contain it (repeatable)
  --full                  validate every event fully, not only its id

tail and query filters:
  --actor <id>            SPIFFE ID, user subject or client id
  --action <action>       exact, or a prefix ending in * (secret.*)
  --decision <d>          allow, deny or error
  --component <name>      gateway, ca, secrets, identity, admin or a service name
  --since <time>          RFC 3339 time, or a duration ago: 30s, 15m, 2h, 7d
  --until <time>          same forms; exclusive
tail:    -n <count> (default 20), --follow
query:   --limit <count> (default 100), --desc (newest first)

Exit codes: 0 ok (verify: verified), 1 problems found or the log cannot be read, 2 usage.
`;

/** `rampart audit …`: resolves to the exit code. Never prints a stack trace. */
export async function runAudit(args: string[], io: AuditIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined) {
    io.stderr.write(USAGE);
    return 2;
  }
  // Each subcommand parses its own options (its --help included): only the first word is read here.
  return runOperatorCommand({
    name: 'audit',
    usage: USAGE,
    io,
    parse: () => ({ values: { help: sub === '--help' || sub === '-h' }, positionals: [sub] }),
    run: async () => {
      if (sub === 'verify') return await runVerify(rest, io);
      if (sub === 'tail') return await runTail(rest, io);
      if (sub === 'query') return await runQuery(rest, io);
      throw new UsageError(`unknown subcommand "${clean(sub)}"`);
    },
    describe: describeError,
    failurePrefix: () => subcommandPrefix('audit', sub),
  });
}

const COMMON = {
  data: { type: 'string' },
  postgres: { type: 'string' },
  schema: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const FILTERS = {
  actor: { type: 'string' },
  action: { type: 'string' },
  decision: { type: 'string' },
  component: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
} as const;

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;
type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: string[], options: Options): Values {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values as Values;
  } catch (err) {
    throw new UsageError(oneLine(err));
  }
}

/** The database file: `--data` may name the data directory or the file. */
function databasePath(data: string | undefined, io: AuditIo): string {
  const target = resolve(io.cwd, data ?? DEFAULT_DATA_DIR);
  let isDirectory = false;
  try {
    isDirectory = statSync(target).isDirectory();
  } catch {
    throw new Error(`no audit log at ${target}`);
  }
  const file = isDirectory ? resolve(target, AUDIT_DEFAULTS.databaseFile) : target;
  try {
    statSync(file);
  } catch {
    throw new Error(`no audit log at ${file}`);
  }
  return file;
}

function withDatabase<T>(file: string, fn: (db: DatabaseSync) => T): T {
  const db = openAuditDatabase(file, { readOnly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** What the subcommands read, from either store. */
interface LogReader {
  verify(options: VerifyOptions): Promise<VerifyReport>;
  query(query: AuditQuery): Promise<QueryResult[]>;
  tail(query: AuditQuery, count: number): Promise<QueryResult[]>;
  close(): Promise<void>;
}

/**
 * The log the options name: `--postgres` (one read-only connection for the command) or the SQLite file
 * of `--data` (opened read-only for each read, so `tail --follow` never holds the file open).
 */
async function openReader(values: Values, io: AuditIo): Promise<LogReader> {
  const url = values.postgres as string | undefined;
  if (url === undefined) {
    if (values.schema !== undefined) throw new UsageError('--schema needs --postgres');
    const file = databasePath(values.data as string | undefined, io);
    return {
      verify: async (options) => withDatabase(file, (db) => verifyLog(db, options)),
      query: async (query) => withDatabase(file, (db) => queryEvents(db, query)),
      tail: async (query, count) => withDatabase(file, (db) => tailEvents(db, query, count)),
      close: async () => {},
    };
  }
  if (values.data !== undefined) throw new UsageError('--data and --postgres name two different logs: give one');
  let protocol = '';
  try {
    protocol = new URL(url).protocol;
  } catch {
    // reported below
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new UsageError('--postgres must be a postgres:// URL');
  }
  // Loaded only for PostgreSQL: the SQLite commands never load pg.
  const { openPostgresAuditReader } = await import('../control/audit/postgres-database.ts');
  const { verifyPostgresLog } = await import('../control/audit/postgres-verify.ts');
  const { queryPostgresEvents, tailPostgresEvents } = await import('../control/audit/postgres-query.ts');
  const target = { connectionString: url, schema: values.schema as string | undefined };
  let reader: Awaited<ReturnType<typeof openPostgresAuditReader>>;
  try {
    reader = await openPostgresAuditReader(target);
  } catch (err) {
    if (isRampartError(err) && err.code === AUDIT_ERRORS.config) {
      throw new UsageError('--schema must be a lower-case SQL name (letters, digits, _; at most 63)');
    }
    throw err;
  }
  return {
    verify: (options) => verifyPostgresLog(reader.client, options),
    query: (query) => queryPostgresEvents(reader.client, query),
    tail: (query, count) => tailPostgresEvents(reader.client, query, count),
    close: () => reader.close(),
  };
}

async function withReader<T>(values: Values, io: AuditIo, fn: (reader: LogReader) => Promise<T>): Promise<T> {
  const reader = await openReader(values, io);
  try {
    return await fn(reader);
  } finally {
    await reader.close().catch(() => {});
  }
}

function readArgFile(value: string, io: AuditIo, what: string): string {
  try {
    return readFileSync(resolve(io.cwd, value), 'utf8');
  } catch {
    throw new UsageError(`cannot read ${what} file ${clean(value)}`);
  }
}

async function runVerify(args: string[], io: AuditIo): Promise<number> {
  const values = parse(args, {
    ...COMMON,
    key: { type: 'string', multiple: true },
    checkpoint: { type: 'string', multiple: true },
    full: { type: 'boolean' },
  });
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const keys = ((values.key as string[] | undefined) ?? []).map((k) =>
    k.startsWith('@') ? readArgFile(k.slice(1), io, 'key').trim() : k,
  );
  const checkpoints = ((values.checkpoint as string[] | undefined) ?? []).map((f) => readArgFile(f, io, 'checkpoint'));
  const report = await withReader(values, io, (reader) =>
    reader.verify({
      verifierKeys: keys,
      trustedCheckpoints: checkpoints,
      checkEvents: values.full === true ? 'full' : 'id',
    }),
  );
  if (values.json === true) io.stdout.write(`${JSON.stringify(report)}\n`);
  else io.stdout.write(formatReport(report));
  return report.ok ? 0 : 1;
}

const PROBLEM_TEXT: Record<string, string> = {
  [VERIFY_PROBLEMS.meta]: 'the database names no log origin',
  [VERIFY_PROBLEMS.checkpointSignature]: 'checkpoint signature does not verify with a trusted key',
  [VERIFY_PROBLEMS.checkpointRow]: 'checkpoint row differs from its signed text',
  [VERIFY_PROBLEMS.trustedCheckpoint]: 'a given checkpoint does not verify for this log',
  [VERIFY_PROBLEMS.missingEntry]: 'entry missing (deleted row)',
  [VERIFY_PROBLEMS.leafHash]: 'stored bytes do not match their leaf hash (modified entry)',
  [VERIFY_PROBLEMS.event]: 'entry is not the event its row says (modified entry or event id)',
  [VERIFY_PROBLEMS.treeNode]: 'entry does not match the Merkle tree (modified, moved, inserted or deleted row)',
  [VERIFY_PROBLEMS.extraNode]: 'the tree has leaves without entries (rows deleted from the tail)',
  [VERIFY_PROBLEMS.checkpointRoot]: 'recomputed root differs from the signed checkpoint (rewritten history)',
  [VERIFY_PROBLEMS.truncated]: 'a signed checkpoint covers entries that are gone (truncated tail)',
  [VERIFY_PROBLEMS.inconsistent]: 'checkpoint is not consistent with the previous one',
};

function describeProblem(p: VerifyProblem): string {
  const where =
    p.index === null
      ? p.checkpointSize === undefined
        ? ''
        : `checkpoint ${p.checkpointSize}: `
      : `index ${p.index}: `;
  const range = p.range === undefined ? '' : ` (somewhere in [${p.range[0]}, ${p.range[1]}))`;
  const cp = p.index !== null && p.checkpointSize !== undefined ? ` (checkpoint of size ${p.checkpointSize})` : '';
  return `  ${where}${PROBLEM_TEXT[p.kind] ?? p.kind}${range}${cp}\n`;
}

function formatReport(r: VerifyReport): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const origin = r.origin === null ? '(no origin)' : clean(r.origin);
  let out = '';
  if (r.ok) {
    out += `audit log ${origin}: verified ${n(r.entries)} entries and ${n(r.checkpoints)} signed checkpoint${r.checkpoints === 1 ? '' : 's'}\n`;
    if (r.checkpoints === 0)
      out += '  warning: no signed checkpoint: nothing proves these entries were not rewritten\n';
    if (r.unsignedEntries > 0) {
      out += `  ${n(r.unsignedEntries)} entr${r.unsignedEntries === 1 ? 'y' : 'ies'} after the last checkpoint (size ${n(r.signedSize)}) not signed yet\n`;
    }
  } else {
    const first = r.firstBadIndex === null ? '' : `: first bad index ${r.firstBadIndex}`;
    out += `audit log ${origin}: TAMPERED${first}\n`;
    for (const p of r.problems) out += describeProblem(p);
  }
  for (const key of r.verifierKeys) out += `  signing key: ${clean(key)}\n`;
  if (r.keySource === 'log') {
    out += '  note: the key was read from the log itself; pin it with --key to detect a replaced key\n';
  }
  return out;
}

function parseTime(value: string | undefined, field: string, io: AuditIo): string | undefined {
  if (value === undefined) return undefined;
  const relative = /^(\d{1,9})(s|m|h|d)$/.exec(value);
  if (relative) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 's' | 'm' | 'h' | 'd'];
    return new Date((io.now ?? Date.now)() - Number(relative[1]) * unit).toISOString();
  }
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new UsageError(`--${field} must be an RFC 3339 time or a duration like 15m`);
  return new Date(ms).toISOString();
}

function filters(values: Record<string, unknown>, io: AuditIo): AuditQuery {
  const decision = values.decision as string | undefined;
  if (decision !== undefined && !['allow', 'deny', 'error'].includes(decision)) {
    throw new UsageError('--decision must be allow, deny or error');
  }
  const query: AuditQuery = {};
  if (values.actor !== undefined) query.actor = String(values.actor);
  if (values.action !== undefined) query.action = String(values.action);
  if (decision !== undefined) query.decision = decision as AuditDecision;
  if (values.component !== undefined) query.component = String(values.component);
  const since = parseTime(values.since as string | undefined, 'since', io);
  const until = parseTime(values.until as string | undefined, 'until', io);
  if (since !== undefined) query.since = since;
  if (until !== undefined) query.until = until;
  return query;
}

function count(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^[1-9][0-9]{0,5}$/.test(String(value)) || n > 100_000) throw new UsageError(`${name} must be 1 to 100000`);
  return n;
}

async function runTail(args: string[], io: AuditIo): Promise<number> {
  const values = parse(args, {
    ...COMMON,
    ...FILTERS,
    n: { type: 'string', short: 'n' },
    follow: { type: 'boolean', short: 'f' },
  });
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const query = filters(values, io);
  const n = count(values.n, '-n', 20);
  const json = values.json === true;
  let last = -1;
  const print = (results: QueryResult[], header: boolean) => {
    if (results.length > 0) last = results[results.length - 1]!.index;
    io.stdout.write(json ? jsonLines(results) : table(results, header));
  };
  return withReader(values, io, async (reader) => {
    print(await reader.tail(query, n), true);
    if (values.follow !== true) return 0;
    const pollMs = io.pollMs ?? 1_000;
    while (io.signal?.aborted !== true) {
      try {
        await delay(pollMs, undefined, { signal: io.signal });
      } catch {
        break;
      }
      for (;;) {
        const batch = await reader.query({ ...query, afterIndex: last, limit: 1_000 });
        if (batch.length === 0) break;
        print(batch, false);
      }
    }
    return 0;
  });
}

async function runQuery(args: string[], io: AuditIo): Promise<number> {
  const values = parse(args, { ...COMMON, ...FILTERS, limit: { type: 'string' }, desc: { type: 'boolean' } });
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const query = filters(values, io);
  query.limit = count(values.limit, '--limit', 100);
  query.order = values.desc === true ? 'desc' : 'asc';
  const results = await withReader(values, io, (reader) => reader.query(query));
  io.stdout.write(values.json === true ? jsonLines(results) : table(results, true));
  return 0;
}

function jsonLines(results: QueryResult[]): string {
  return results.map((r) => `${JSON.stringify({ index: r.index, ...(r.event ?? { unreadable: true }) })}\n`).join('');
}

const COLUMNS = ['INDEX', 'TIME', 'DECISION', 'COMPONENT', 'ACTION', 'ACTOR', 'RESOURCE', 'REASON'] as const;

function table(results: QueryResult[], header: boolean): string {
  const rows = results.map((r) => {
    const e = r.event;
    if (e === null) return [String(r.index), '(unreadable entry: run rampart audit verify)', '', '', '', '', '', ''];
    const actor = e.actor?.subject ?? e.actor?.clientId ?? e.actor?.spiffeId ?? '-';
    return [String(r.index), e.time, e.decision, e.component, e.action, actor, e.resource ?? '-', e.reason ?? '-'].map(
      (cell) => clean(cell),
    );
  });
  if (rows.length === 0) return header ? '(no matching events)\n' : '';
  const all = header ? [[...COLUMNS] as string[], ...rows] : rows;
  const widths = COLUMNS.map((_, i) => Math.min(48, Math.max(...all.map((row) => row[i]!.length))));
  return all
    .map((row) =>
      row
        .map((cell, i) => (cell.length > widths[i]! ? `${cell.slice(0, widths[i]! - 1)}…` : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

function describeError(err: unknown): string {
  if (isRampartError(err)) {
    const reason = err.detail?.reason === undefined ? '' : ` (${String(err.detail.reason)})`;
    // The cause's code only (ECONNREFUSED, a PostgreSQL SQLSTATE such as 28P01): says what failed
    // without echoing a server message, which could quote the connection's parameters.
    const cause = (err.cause as { code?: unknown } | undefined)?.code;
    const because = typeof cause === 'string' && /^[A-Z0-9_]{1,32}$/.test(cause) ? `: ${cause}` : '';
    return `${err.message}${reason}${because} [${err.code}]`;
  }
  return oneLine(err);
}
