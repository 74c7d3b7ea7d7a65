import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sodium from 'sodium-native';
import { CONTROL_API_ERRORS } from '../control/api/errors.ts';
import {
  localOperator,
  OPERATOR_SECRETS_ROUTES,
  type OperatorRevealResponse,
  type OperatorSetRequest,
  operatorSecretsPath,
} from '../control/api/operator-secrets-routes.ts';
import { AUDIT_ERRORS } from '../control/audit/errors.ts';
import { CONTROL_FILES } from '../control/files.ts';
import { compileSecretsAcl } from '../control/secrets/acl.ts';
import type { AuditSink } from '../control/secrets/audit.ts';
import { SECRET_NAME, SECRETS_DEFAULTS, SECRETS_FILES as STORE_FILES } from '../control/secrets/defaults.ts';
import { SEC_ERRORS, type SecretsErrorCode, secError } from '../control/secrets/errors.ts';
import { isLabel, type Label, type Labels } from '../control/secrets/labels.ts';
import { openPostgresSecretsStore } from '../control/secrets/postgres-store.ts';
import {
  openSecretsService,
  type SecretsService,
  type SecretValue,
  type SetOptions,
  type VersionInfo,
  type VersionSelector,
  type WriteResult,
} from '../control/secrets/service.ts';
import { openSqliteSecretsStore } from '../control/secrets/sqlite-store.ts';
import type { SecretRecord } from '../control/secrets/store.ts';
import { isRampartError } from '../core/errors.ts';
import type { FileLock } from '../core/file-lock.ts';
import { createDevKek, KEK_ENV, type Kek, type KekSource, loadKek } from '../core/kek.ts';
import { DEFAULT_DATA_DIR, runOperatorCommand, UsageError } from './command.ts';
import {
  ControlPlaneFailure,
  findControlPlane,
  holdDataDir,
  type OperatorApi,
  operatorApi,
} from './control-plane-client.ts';
import {
  manifestPostgresStore,
  type OfflineAuditLog,
  offlineAuditOrigin,
  openOfflineAuditLog,
} from './offline-audit.ts';
import { clean, iso, oneLine, table } from './text.ts';

/**
 * `rampart secrets …`: the operator's side of the secrets module, on a control plane's data directory
 * (default `.rampart/control`). Every command is an admin action recorded in the system's audit log,
 * which has one writer: while the control plane runs, the CLI asks it over its operator routes
 * (api/operator-secrets-routes.ts, the operator credential, TLS trusting only `bundle.pem`) and the
 * control plane performs and records the command; with none running, the CLI opens the store and the
 * audit log itself and records the event before the command takes effect (fail closed). Values come
 * from stdin or `--file` (never argv) and are never printed, except by `get --reveal`; list, history
 * and get print metadata only. Values are handled as Buffers and zeroed after use.
 */
export interface SecretsIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  cwd: string;
  /** Default process.stdin. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Default process.env (RAMPART_KEK). */
  env?: Readonly<Record<string, string | undefined>>;
}

/** File names inside the data directory. */
export const SECRETS_FILES = {
  /** The store, as the control plane opens it. */
  ...STORE_FILES,
  /** Development key file (`rampart start` creates it; `set --create-dev-key` too). */
  devKey: CONTROL_FILES.kek,
} as const;

const USAGE = `Usage: rampart secrets <command> [options]

Commands:
  set <name>       store a new version as current (value from stdin or --file)
  rotate <name>    stage a new version as pending (value from stdin or --file); then promote it
  promote <name>   make the pending version current (current becomes previous)
  rollback <name>  make the previous version current again (and back, run twice)
  get <name>       show a version's metadata; with --reveal, print its value
  list             every secret's labels and rotation dates
  history <name>   every version of a secret: label, author, date, size, key id

Options:
  --data-dir <dir>       the control plane's data directory (default ${DEFAULT_DATA_DIR})
  --key-file <path>      key-encryption key file (default: $${KEK_ENV} if set, else <data-dir>/${SECRETS_FILES.devKey})
  --postgres <url>       the control plane's PostgreSQL store: the secrets (schema
                         ${SECRETS_DEFAULTS.postgresSchema}) and the audit log there instead of
                         <data-dir>/${SECRETS_FILES.database} and <data-dir>/audit.db (default: the
                         project manifest's control.store, <data-dir>/../../rampart.yaml)
  --file <path>          set, rotate: read the value from a file instead of stdin
  --raw                  set, rotate: keep the value's bytes exactly (default: drop one trailing newline)
  --rotate-every <n>     set, rotate: rotation interval, e.g. 90d, 12h, 30m
  --discard-pending      set: replace the current value even though a version is pending
  --create-dev-key       set, rotate: create a development key file when there is none (mode 0600)
  --label <label>        get: current (default), previous or pending
  --version <n>          get: a version number instead of a label
  --reveal               get: print the value (nothing else) to stdout
  --json                 list, history, get: JSON output

Every command is recorded in the system's audit log (rampart audit query --action 'secret.*').
While a control plane runs on <data-dir>, commands go through its API with the operator credential
(<data-dir>/operator.token) and it records them; --key-file, --create-dev-key and --postgres are
then refused (it holds the key and the store). Without one, the CLI opens the store and the audit
log itself. The key-encryption key is rotated for the whole control plane by rampart kek rotate.

Exit codes: 0 done, 1 refused or failed (the code is printed), 2 usage.
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  'data-dir': { type: 'string' },
  'key-file': { type: 'string' },
  postgres: { type: 'string' },
  file: { type: 'string' },
  raw: { type: 'boolean' },
  'rotate-every': { type: 'string' },
  'discard-pending': { type: 'boolean' },
  'create-dev-key': { type: 'boolean' },
  label: { type: 'string' },
  version: { type: 'string' },
  reveal: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parse>['values'];

function parse(args: string[]) {
  return parseArgs({ args, allowPositionals: true, strict: true, options: OPTIONS });
}

/** Which subcommands take a name, write, and which options each accepts. */
const COMMANDS: Record<string, { name: boolean; writes: boolean; options: readonly string[] }> = {
  set: { name: true, writes: true, options: ['file', 'raw', 'rotate-every', 'discard-pending', 'create-dev-key'] },
  rotate: { name: true, writes: true, options: ['file', 'raw', 'rotate-every', 'create-dev-key'] },
  promote: { name: true, writes: true, options: [] },
  rollback: { name: true, writes: true, options: [] },
  get: { name: true, writes: false, options: ['label', 'version', 'reveal', 'json'] },
  list: { name: false, writes: false, options: ['json'] },
  history: { name: true, writes: false, options: ['json'] },
};
const COMMON = ['help', 'data-dir', 'key-file', 'postgres'];

/** `rampart secrets …`; resolves to the exit code. */
export function runSecrets(args: string[], io: SecretsIo): Promise<number> {
  return runOperatorCommand({
    name: 'secrets',
    usage: USAGE,
    io,
    parse: () => parse(args),
    describe: describeError,
    run: async ({ values, positionals }) => {
      const [command, name, ...extra] = positionals;
      const spec = command === undefined ? undefined : COMMANDS[command];
      if (command === undefined || spec === undefined) {
        // The KEK wraps more than the secrets: it is rotated for the whole control plane, by one command.
        const moved = command === 'rotate-kek' ? ' (the key-encryption key is rotated by rampart kek rotate)' : '';
        throw new UsageError(
          command === undefined ? 'a command is required' : `unknown command "${clean(command)}"${moved}`,
        );
      }
      if (spec.name && name === undefined) throw new UsageError(`${command} needs a secret name`);
      if ((spec.name ? extra.length : positionals.length - 1) > 0) throw new UsageError('too many arguments');
      for (const option of Object.keys(values)) {
        if (!COMMON.includes(option) && !spec.options.includes(option)) {
          throw new UsageError(`--${option} does not apply to ${command}`);
        }
      }
      if (name !== undefined && !SECRET_NAME.test(name)) {
        throw new UsageError(`invalid secret name "${clean(name)}" (lower-case letters, digits and -, up to 63)`);
      }
      return await execute(command, name ?? '', values, io);
    },
  });
}

async function execute(command: string, name: string, values: Values, io: SecretsIo): Promise<number> {
  const env = io.env ?? process.env;
  const dataDir = resolve(io.cwd, values['data-dir'] ?? DEFAULT_DATA_DIR);
  const database = join(dataDir, SECRETS_FILES.database);
  // Parse everything the command needs before touching the store or reading a value.
  const rotationIntervalMs = values['rotate-every'] === undefined ? undefined : duration(values['rotate-every']);
  const selector = command === 'get' ? getSelector(values) : undefined;
  const control = findControlPlane(dataDir);
  if (control !== null) {
    for (const option of ['key-file', 'create-dev-key', 'postgres'] as const) {
      if (values[option] !== undefined) {
        throw new UsageError(
          `--${option} is for working without a running control plane (it holds the key and the store)`,
        );
      }
    }
    let value: Buffer | null = null;
    try {
      if (command === 'set' || command === 'rotate') value = await readValue(values, io);
      const api = operatorApi(dataDir, control);
      return await run(command, name, { ops: remoteOperations(api), values, io, value, selector, rotationIntervalMs });
    } finally {
      if (value) sodium.sodium_memzero(value);
    }
  }
  return executeOffline(command, name, values, io, { env, dataDir, database, selector, rotationIntervalMs });
}

/** No control plane runs: this process opens the store and the audit log (their one writer for now). */
async function executeOffline(
  command: string,
  name: string,
  values: Values,
  io: SecretsIo,
  parsed: {
    env: Readonly<Record<string, string | undefined>>;
    dataDir: string;
    database: string;
    selector: VersionSelector | undefined;
    rotationIntervalMs: number | undefined;
  },
): Promise<number> {
  const { env, dataDir, database, selector, rotationIntervalMs } = parsed;
  const inFiles = values.postgres === undefined && manifestPostgresStore(dataDir) === undefined;
  if (inFiles && !COMMANDS[command]!.writes && !existsSync(database)) {
    throw new CliFailure(`no secrets store in ${dataDir} (rampart secrets set creates one)`);
  }
  const keySource = kekSource(values, env, dataDir, io.cwd);
  if (values['create-dev-key'] && !('file' in keySource)) {
    throw new UsageError(`--create-dev-key makes a key file; $${KEK_ENV} is set`);
  }
  // The log's origin before anything is created: a command that cannot be recorded changes nothing.
  // The store the control plane uses: --postgres, else the manifest's control.store, else the files.
  const postgres = values.postgres ?? manifestPostgresStore(dataDir);
  const origin = offlineAuditOrigin(dataDir, postgres !== undefined);
  if (values['create-dev-key'] && 'file' in keySource) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    createDevKek(keySource.file).kek.destroy();
  }
  let value: Buffer | null = null;
  if (command === 'set' || command === 'rotate') value = await readValue(values, io);
  let kek: Kek | null = null;
  let lock: FileLock | null = null;
  try {
    // A piped value can take any time to arrive: a control plane may have started meanwhile. From here
    // the data directory's lock keeps one from starting (and a second command from writing) until done.
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    lock = holdDataDir(dataDir);
    try {
      kek = loadKek(keySource);
    } catch (cause) {
      const code = isRampartError(cause) ? cause.code : 'unknown';
      throw secError(SEC_ERRORS.sealed, { reason: 'kek_unavailable', kekError: code }, cause);
    }
    // Opened once the service has checked the KEK against the store; nothing is appended before.
    let log: OfflineAuditLog | null = null;
    const audit: AuditSink = {
      async append(event) {
        if (log === null) throw new Error('audit log not open');
        await log.append(event);
      },
    };
    const store =
      postgres !== undefined
        ? await openPostgresSecretsStore({ connectionString: postgres })
        : openSqliteSecretsStore({ path: database });
    // The CLI acts as an operator; services read over mTLS, so the operator's ACL grants nothing.
    const acl = compileSecretsAcl({ trustDomain: 'cli.invalid', services: {}, secrets: {} });
    const service = await openSecretsService({ store, kek, audit, acl });
    try {
      log = await openOfflineAuditLog(dataDir, origin, kek, postgres);
      try {
        return await run(command, name, {
          ops: localOperations(service),
          values,
          io,
          value,
          selector,
          rotationIntervalMs,
        });
      } finally {
        await log.close();
      }
    } finally {
      await service.close();
    }
  } finally {
    if (value) sodium.sodium_memzero(value);
    kek?.destroy();
    lock?.release();
  }
}

/** What the commands do, whether this process holds the store or the control plane does. */
interface Operations {
  set(name: string, value: Buffer, options: SetOptions): Promise<WriteResult>;
  promote(name: string): Promise<Labels>;
  rollback(name: string): Promise<Labels>;
  /** The caller zeroes the value. */
  reveal(name: string, selector: VersionSelector): Promise<SecretValue>;
  history(name: string): Promise<{ secret: SecretRecord; versions: VersionInfo[] }>;
  list(): Promise<SecretRecord[]>;
}

function localOperations(service: SecretsService): Operations {
  const actor = localOperator();
  return {
    set: (name, value, options) => service.set(actor, name, value, options),
    promote: (name) => service.promote(actor, name),
    rollback: (name) => service.rollback(actor, name),
    reveal: (name, selector) => service.reveal(actor, name, selector),
    history: (name) => service.history(actor, name),
    list: () => service.list(actor),
  };
}

/** The running control plane's operator routes; a SEC_ERR_* refusal comes back as the module's error. */
function remoteOperations(api: OperatorApi): Operations {
  const call = async <T>(route: Parameters<typeof operatorSecretsPath>[0], body: unknown): Promise<T> => {
    try {
      return await api.call<T>(operatorSecretsPath(route), body);
    } catch (err) {
      if (isRampartError(err) && err.code.startsWith('SEC_ERR_')) throw secError(err.code as SecretsErrorCode);
      throw err;
    }
  };
  return {
    set: (name, value, options) => {
      const body: OperatorSetRequest = {
        name,
        // In the JSON body over the TLS connection only; a string cannot be zeroed, it lives until collected.
        value: value.toString('base64'),
        stage: options.stage === true,
        discardPending: options.discardPending === true,
        ...(options.rotationIntervalMs === undefined ? {} : { rotationIntervalMs: options.rotationIntervalMs }),
      };
      return call<WriteResult>(OPERATOR_SECRETS_ROUTES.set, body);
    },
    promote: (name) => call<Labels>(OPERATOR_SECRETS_ROUTES.promote, { name }),
    rollback: (name) => call<Labels>(OPERATOR_SECRETS_ROUTES.rollback, { name }),
    reveal: async (name, selector) => {
      const answer = await call<OperatorRevealResponse>(OPERATOR_SECRETS_ROUTES.reveal, { name, ...selector });
      if (typeof answer?.value !== 'string')
        throw new CliFailure('the control plane answered with an unexpected value');
      return { ...answer, value: Buffer.from(answer.value, 'base64') };
    },
    history: (name) => call(OPERATOR_SECRETS_ROUTES.history, { name }),
    list: () => call(OPERATOR_SECRETS_ROUTES.list, {}),
  };
}

interface RunContext {
  ops: Operations;
  values: Values;
  io: SecretsIo;
  value: Buffer | null;
  selector: VersionSelector | undefined;
  rotationIntervalMs: number | undefined;
}

async function run(command: string, name: string, c: RunContext): Promise<number> {
  const { ops, io } = c;
  const out = (line: string) => io.stdout.write(`${line}\n`);
  switch (command) {
    case 'set':
    case 'rotate': {
      const stage = command === 'rotate';
      const result = await ops.set(name, c.value!, {
        stage,
        discardPending: c.values['discard-pending'] === true,
        ...(c.rotationIntervalMs === undefined ? {} : { rotationIntervalMs: c.rotationIntervalMs }),
      });
      out(
        stage
          ? `${name}: version ${result.version} staged as pending (promote it with: rampart secrets promote ${name})`
          : `${name}: version ${result.version} is current${labelSuffix(result.labels)}`,
      );
      return 0;
    }
    case 'promote':
    case 'rollback': {
      const labels = command === 'promote' ? await ops.promote(name) : await ops.rollback(name);
      out(`${name}: version ${labels.current} is current${labelSuffix(labels)}`);
      return 0;
    }
    case 'get': {
      const selector = c.selector!;
      if (c.values.reveal) {
        const secret = await ops.reveal(name, selector);
        try {
          await write(io.stdout, secret.value);
          if (io.stdout.isTTY) await write(io.stdout, Buffer.from('\n'));
        } finally {
          sodium.sodium_memzero(secret.value);
        }
        return 0;
      }
      const { secret, versions } = await ops.history(name);
      const wanted = 'version' in selector ? selector.version : secret.labels[selector.label];
      const version = versions.find((v) => v.version === wanted);
      if (version === undefined) throw notFound();
      if (c.values.json) {
        out(JSON.stringify(version));
      } else {
        out(
          `${name} version ${version.version}${version.label ? ` (${version.label})` : ''}: ${version.size} bytes, ` +
            `created ${iso(version.createdAt)} by ${clean(version.createdBy)}; value not shown (--reveal prints it)`,
        );
      }
      return 0;
    }
    case 'list': {
      const secrets = await ops.list();
      if (c.values.json) {
        out(JSON.stringify(secrets));
        return 0;
      }
      if (secrets.length === 0) {
        out('no secrets');
        return 0;
      }
      table(
        out,
        ['NAME', 'CURRENT', 'PREVIOUS', 'PENDING', 'VERSIONS', 'UPDATED', 'ROTATION DUE'],
        secrets.map(listRow),
      );
      return 0;
    }
    case 'history': {
      const { secret, versions } = await ops.history(name);
      if (c.values.json) {
        out(JSON.stringify({ secret, versions }));
        return 0;
      }
      out(`${name}: created ${iso(secret.createdAt)} by ${clean(secret.createdBy)}${rotationText(secret)}`);
      table(
        out,
        ['VERSION', 'LABEL', 'CREATED', 'BY', 'SIZE', 'KEK'],
        versions.map((v) => [
          String(v.version),
          v.label ?? '',
          iso(v.createdAt),
          clean(v.createdBy),
          `${v.size} B`,
          clean(v.kekId),
        ]),
      );
      return 0;
    }
  }
  throw new UsageError(`unknown command "${command}"`);
}

/** A failure the CLI explains itself (exit 1). */
class CliFailure extends Error {}

function notFound(): Error {
  return Object.assign(new CliFailure('secret not found'), { code: SEC_ERRORS.notFound });
}

function kekSource(
  values: Values,
  env: Readonly<Record<string, string | undefined>>,
  dataDir: string,
  cwd: string,
): KekSource {
  if (values['key-file'] !== undefined) return { file: resolve(cwd, values['key-file']) };
  if (env[KEK_ENV] !== undefined && env[KEK_ENV] !== '') return { env: KEK_ENV, environment: env };
  return { file: join(dataDir, SECRETS_FILES.devKey) };
}

function getSelector(values: Values): VersionSelector {
  if (values.version !== undefined && values.label !== undefined)
    throw new UsageError('--label or --version, not both');
  if (values.version !== undefined) {
    if (!/^[1-9][0-9]{0,9}$/.test(values.version)) throw new UsageError('--version takes a positive number');
    return { version: Number(values.version) };
  }
  const label = values.label ?? 'current';
  if (!isLabel(label)) throw new UsageError('--label takes current, previous or pending');
  return { label: label as Label };
}

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

function duration(text: string): number {
  const match = /^([1-9][0-9]{0,5})([mhd])$/.exec(text);
  if (!match) throw new UsageError('--rotate-every takes a number and a unit: 90d, 12h or 30m');
  return Number(match[1]) * UNITS[match[2]!]!;
}

/**
 * The value, from `--file` or stdin, at most the module's limit (+ a newline). Refuses a terminal on
 * stdin: what is typed there is echoed to the screen.
 */
async function readValue(values: Values, io: SecretsIo): Promise<Buffer> {
  const limit = SECRETS_DEFAULTS.maxValueBytes + 2;
  let value: Buffer;
  if (values.file !== undefined) {
    value = readFileLimited(resolve(io.cwd, values.file), limit);
  } else {
    const stdin = io.stdin ?? process.stdin;
    if (stdin.isTTY) throw new UsageError('pipe the value on stdin or use --file (typing it would show it on screen)');
    value = await readStreamLimited(stdin, limit);
  }
  if (!values.raw) {
    let end = value.length;
    if (end > 0 && value[end - 1] === 0x0a) end--;
    if (end > 0 && value[end - 1] === 0x0d) end--;
    if (end !== value.length) {
      const trimmed = Buffer.from(value.subarray(0, end));
      sodium.sodium_memzero(value);
      value = trimmed;
    }
  }
  if (value.length === 0) throw new CliFailure('the value is empty');
  return value;
}

function readFileLimited(path: string, limit: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new CliFailure(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > limit) throw new CliFailure(`the value is larger than ${SECRETS_DEFAULTS.maxValueBytes} bytes`);
    const buffer = Buffer.alloc(size);
    let length = 0;
    while (length < size) {
      const n = readSync(fd, buffer, length, size - length, null);
      if (n === 0) break;
      length += n;
    }
    return buffer.subarray(0, length);
  } finally {
    closeSync(fd);
  }
}

async function readStreamLimited(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      chunks.push(bytes);
      length += bytes.length;
      if (length > limit) throw new CliFailure(`the value is larger than ${SECRETS_DEFAULTS.maxValueBytes} bytes`);
    }
    return Buffer.concat(chunks, length);
  } finally {
    for (const chunk of chunks) sodium.sodium_memzero(chunk);
  }
}

/** Writes and waits until the stream took the bytes (the caller zeroes them afterwards). */
function write(stream: NodeJS.WritableStream, bytes: Buffer): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    stream.write(bytes, (err) => (err ? reject(err) : resolvePromise()));
  });
}

function labelSuffix(labels: Labels): string {
  const parts = [
    labels.previous === null ? null : `previous: ${labels.previous}`,
    labels.pending === null ? null : `pending: ${labels.pending}`,
  ].filter((p) => p !== null);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

function listRow(s: SecretRecord): string[] {
  const v = (n: number | null) => (n === null ? '-' : String(n));
  const due =
    s.rotationDueAt === null ? '-' : `${iso(s.rotationDueAt)}${s.rotationDueAt <= Date.now() ? ' (overdue)' : ''}`;
  return [
    s.name,
    v(s.labels.current),
    v(s.labels.previous),
    v(s.labels.pending),
    String(s.latestVersion),
    iso(s.updatedAt),
    due,
  ];
}

function rotationText(s: SecretRecord): string {
  if (s.rotationIntervalMs === null) return '';
  const days = s.rotationIntervalMs / 86_400_000;
  const every = Number.isInteger(days) ? `${days}d` : `${s.rotationIntervalMs / 60_000}m`;
  return `; rotate every ${every}, next due ${s.rotationDueAt === null ? '-' : iso(s.rotationDueAt)}`;
}

/** Hints for the codes an operator can act on. */
const HINTS: Readonly<Record<string, string>> = {
  [SEC_ERRORS.sealed]: `check --key-file or $${KEK_ENV}: the key-encryption key is missing or is not this store's (a development key is made by rampart start, or set --create-dev-key)`,
  [SEC_ERRORS.label]: 'see rampart secrets history <name>',
  [SEC_ERRORS.conflict]: 'another writer changed the secret; run the command again',
  [SEC_ERRORS.auditUnavailable]: 'the audit log did not take the event; nothing was read or changed',
  [AUDIT_ERRORS.sealed]: `the audit log's signing key does not open with this key-encryption key; nothing was changed`,
  [CONTROL_API_ERRORS.unauthorized]:
    'the control plane refused the operator credential (is operator.token from the running control plane?)',
  [CONTROL_API_ERRORS.wrongIdentity]: 'the process on that port is not this system’s control plane',
};

/** One line: fixed message, code, hint. Never a stack trace, never a value (errors carry none). */
function describeError(err: unknown): string {
  if (err instanceof CliFailure || err instanceof ControlPlaneFailure) return clean(err.message);
  if (isRampartError(err)) {
    // The code and reason may come from the control plane's answer: printed cleaned, as ca and kek do.
    const reason = typeof err.detail?.['reason'] === 'string' ? ` (${clean(err.detail['reason'])})` : '';
    const hint = HINTS[err.code];
    return `${clean(err.message)}${reason} [${clean(err.code)}]${hint ? `\n  ${hint}` : ''}`;
  }
  return `unexpected error: ${oneLine(err)}`;
}
