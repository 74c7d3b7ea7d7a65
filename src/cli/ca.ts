import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CONTROL_API_ERRORS } from '../control/api/index.ts';
import { type ControlEndpoint, OPERATOR_FILES } from '../control/api/operator-access.ts';
import type { RotateRequest } from '../control/api/operator-routes.ts';
import { localOperator } from '../control/api/operator-secrets-routes.ts';
import {
  CA_ERRORS,
  CA_WARNINGS,
  type CaEvent,
  type CaStatus,
  type CaWarning,
  openCertificateAuthority,
  type RotationResult,
  readCaStatus,
} from '../control/ca/index.ts';
import { CONTROL_FILES } from '../control/files.ts';
import { createAuditEvent } from '../core/audit-event.ts';
import { isRampartError } from '../core/errors.ts';
import { KEK_ENV, KEK_ERRORS, type Kek, type KekSource, loadKek } from '../core/kek.ts';
import { DEFAULT_DATA_DIR, type OperatorIo, runOperatorCommand, subcommandPrefix, UsageError } from './command.ts';
import { ControlPlaneFailure, findControlPlane, holdDataDir, operatorApi } from './control-plane-client.ts';
import { manifestPostgresStore, offlineAuditOrigin, openOfflineAuditLog } from './offline-audit.ts';
import { clean, iso, oneLine, table } from './text.ts';

/**
 * `rampart ca status|rotate`: the operator's view of the certificate authority. While a control plane
 * runs it owns the CA's state, so the CLI asks it over its API (operator credential, TLS trusting only
 * `bundle.pem`, the server checked by its SPIFFE ID); with none running, `status` reads the database
 * read-only and `rotate` opens the CA with the KEK. "Running" means the endpoint file the control plane
 * writes before it opens the CA names a live process; then the database is never opened here, even if
 * the API does not answer.
 */
export type CaIo = OperatorIo;

/**
 * Warnings that mean an outage is coming (no CA can sign, or will not soon): `status` exits 1 on
 * them, so a cron job or monitor can alert. CA_WARN_BUNDLE_NOT_DISTRIBUTED is left out: every
 * rotation passes through it while workloads fetch the new bundle (within a minute).
 */
export const OUTAGE_WARNINGS: ReadonlySet<string> = new Set([
  CA_WARNINGS.noActive,
  CA_WARNINGS.expired,
  CA_WARNINGS.anchorExpiring,
  CA_WARNINGS.noSuccessor,
  CA_WARNINGS.rotationOverdue,
]);

const USAGE = `Usage: rampart ca <status|rotate> [options]

  status   the CA slots (generation, state, validity, activation, live SVIDs), the rotation
           schedule and warnings
  rotate   force a rotation: publish a new CA in the trust bundle now; it signs once every live
           SVID holder has the new bundle, at the latest after the propagation time (5 min)

Options:
  --data-dir <dir>   the control plane's data directory (default ${DEFAULT_DATA_DIR})
  --json             status: the CaStatus object; rotate: the rotation result
  --immediate        rotate: the new CA signs at once (key compromise). Workloads that have not
                     fetched the new bundle yet refuse peers with new SVIDs until they do (≤ 1 min)
  --key-file <path>  rotate without a running control plane: the KEK (default: $${KEK_ENV} if set,
                     else <data-dir>/${CONTROL_FILES.kek})

With a control plane running (it writes <data-dir>/${OPERATOR_FILES.endpoint}), both commands go
through its API, authenticated by <data-dir>/${OPERATOR_FILES.credential} (mode 0600: whoever can read
the data directory operates the system). Without one, status reads <data-dir>/${CONTROL_FILES.ca}
read-only and rotate opens it with the KEK. Either way a rotation is recorded in the audit log
(ca.rotate, with you as actor).

Exit codes: 0 ok; 1 failed, or (status) a warning that means an outage is coming:
  ${[...OUTAGE_WARNINGS].join(', ')}
(${CA_WARNINGS.bundleNotDistributed} is normal during a rotation and exits 0); 2 usage.
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  immediate: { type: 'boolean' },
  'key-file': { type: 'string' },
} as const;

/** Options each subcommand accepts besides --help and --data-dir. */
const SUBCOMMANDS: Record<string, readonly string[]> = {
  status: ['json'],
  rotate: ['json', 'immediate', 'key-file'],
};

/** A failure the CLI explains itself (exit 1). */
class CliFailure extends Error {}

type Values = ReturnType<typeof parse>['values'];

function parse(args: string[]) {
  return parseArgs({ args, allowPositionals: true, strict: true, options: OPTIONS });
}

/** `rampart ca …`; resolves to the exit code. Never prints a stack trace. */
export function runCa(args: string[], io: CaIo): Promise<number> {
  return runOperatorCommand({
    name: 'ca',
    usage: USAGE,
    io,
    parse: () => parse(args),
    failurePrefix: ({ positionals }) => subcommandPrefix('ca', positionals[0]),
    describe: describeError,
    run: async ({ values, positionals }) => {
      const [sub, ...extra] = positionals;
      const allowed = sub === undefined ? undefined : SUBCOMMANDS[sub];
      if (sub === undefined || allowed === undefined) {
        throw new UsageError(sub === undefined ? 'a command is required' : `unknown command "${clean(sub)}"`);
      }
      if (extra.length > 0) throw new UsageError('too many arguments');
      for (const option of Object.keys(values)) {
        if (option !== 'data-dir' && !allowed.includes(option)) {
          throw new UsageError(`--${option} does not apply to ${sub}`);
        }
      }
      const dataDir = resolve(io.cwd, values['data-dir'] ?? DEFAULT_DATA_DIR);
      const control = findControlPlane(dataDir);
      return sub === 'status' ? await status(dataDir, control, values, io) : await rotate(dataDir, control, values, io);
    },
  });
}

async function status(dataDir: string, control: ControlEndpoint | null, values: Values, io: CaIo): Promise<number> {
  let result: CaStatus;
  let source: string;
  if (control) {
    result = checkStatus(await operatorApi(dataDir, control).call<CaStatus>('/v1/ca/status', {}));
    source = `control plane running (pid ${control.pid}, port ${control.port})`;
  } else {
    const database = join(dataDir, CONTROL_FILES.ca);
    if (!existsSync(database))
      throw new CliFailure(`no certificate authority in ${dataDir} (rampart start creates it)`);
    result = readCaStatus({ databasePath: database });
    source = `no control plane running; read from ${database}`;
  }
  const outage = result.warnings.some((w) => OUTAGE_WARNINGS.has(w.code));
  if (values.json) {
    io.stdout.write(`${JSON.stringify(result)}\n`);
    return outage ? 1 : 0;
  }
  printStatus(result, source, io);
  return outage ? 1 : 0;
}

/** A status from the API, checked for the fields the printer reads. */
function checkStatus(value: unknown): CaStatus {
  const s = value as Partial<CaStatus> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    typeof s.trustDomain !== 'string' ||
    typeof s.now !== 'number' ||
    !Array.isArray(s.authorities) ||
    !Array.isArray(s.warnings)
  ) {
    throw new CliFailure('the control plane answered with an unexpected status');
  }
  return s as CaStatus;
}

async function rotate(dataDir: string, control: ControlEndpoint | null, values: Values, io: CaIo): Promise<number> {
  const request: RotateRequest = { immediate: values.immediate === true };
  let result: RotationResult;
  if (control) {
    if (values['key-file'] !== undefined) {
      throw new UsageError('--key-file is for rotating without a running control plane (it holds the key)');
    }
    result = await operatorApi(dataDir, control).call<RotationResult>('/v1/ca/rotate', request);
  } else {
    result = await rotateOffline(dataDir, values, io, request);
  }
  if (values.json) {
    io.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  }
  const out = (line: string) => io.stdout.write(`${line}\n`);
  out(
    `rotated: generation ${result.generation} (slot ${result.slot}) is in the trust bundle, sequence ${result.publishedSequence}`,
  );
  if (result.activated) {
    out(`it signs now: new SVIDs come from generation ${result.generation}`);
    if (request.immediate) {
      out(
        `workloads that have not fetched bundle ${result.publishedSequence} yet refuse peers with new SVIDs until they do (within a minute)`,
      );
    }
  } else {
    out(
      `it signs by ${iso(result.activateBy)} (${relative(result.activateBy, Date.now())}), sooner once every live SVID holder has installed the new bundle`,
    );
  }
  out(
    control
      ? `the control plane republished ${join(dataDir, CONTROL_FILES.bundle)}`
      : `no control plane running: ${join(dataDir, CONTROL_FILES.bundle)} rewritten; the control plane activates the new CA when it runs and the time has come`,
  );
  return 0;
}

/** Rotation with no control plane running: this process is the CA's only user for a moment. */
async function rotateOffline(
  dataDir: string,
  values: Values,
  io: CaIo,
  request: RotateRequest,
): Promise<RotationResult> {
  const database = join(dataDir, CONTROL_FILES.ca);
  if (!existsSync(database)) throw new CliFailure(`no certificate authority in ${dataDir} (rampart start creates it)`);
  // The trust domain the database was made for: the CA refuses any other.
  const { trustDomain } = readCaStatus({ databasePath: database });
  const env = io.env ?? process.env;
  const source: KekSource =
    values['key-file'] !== undefined
      ? { file: resolve(io.cwd, values['key-file']) }
      : env[KEK_ENV]
        ? { env: KEK_ENV, environment: env }
        : { file: join(dataDir, CONTROL_FILES.kek) };
  // The audit log where the control plane keeps it: the manifest's control.store, else audit.db.
  const postgres = manifestPostgresStore(dataDir);
  const origin = offlineAuditOrigin(dataDir, postgres !== undefined);
  // Held while the CA and the log are open: no control plane starts meanwhile, no second command writes.
  const lock = holdDataDir(dataDir);
  let kek: Kek | null = null;
  try {
    kek = loadKek(source);
    // The CA opens first: it proves the KEK is the system's before the audit log is opened (or made)
    // under it. The admin action is recorded before anything changes (no record, no rotation), the
    // CA's own steps after it; with no control plane running this process is the log's one writer.
    const steps: CaEvent[] = [];
    const ca = await openCertificateAuthority({
      trustDomain,
      databasePath: database,
      kek,
      signingThreads: 0,
      onEvent: (event) => steps.push(event),
    });
    try {
      const audit = await openOfflineAuditLog(dataDir, origin, kek, postgres);
      try {
        await audit.append(
          createAuditEvent({
            component: 'ca',
            action: 'ca.rotate',
            decision: 'allow',
            resource: `spiffe://${trustDomain}`,
            actor: localOperator(),
            detail: { immediate: request.immediate === true, controlPlane: false },
          }),
        );
        const result = await ca.rotateNow({ immediate: request.immediate === true });
        const file = join(dataDir, CONTROL_FILES.bundle);
        // As the control plane writes it: whole, then renamed.
        writeFileSync(`${file}.tmp`, ca.bundle().pem, { mode: 0o644 });
        renameSync(`${file}.tmp`, file);
        for (const { type, ...facts } of steps) {
          await audit.append(createAuditEvent({ component: 'ca', action: type, decision: 'allow', detail: facts }));
        }
        return result;
      } finally {
        await audit.close();
      }
    } finally {
      ca.close();
    }
  } finally {
    kek?.destroy();
    lock.release();
  }
}

function printStatus(s: CaStatus, source: string, io: CaIo): void {
  const out = (line: string) => io.stdout.write(`${line}\n`);
  out(`certificate authority of spiffe://${clean(s.trustDomain)} at ${iso(s.now)}`);
  out(`${source}; trust bundle sequence ${s.bundleSequence}`);
  out('');
  if (s.authorities.length === 0) {
    out('no CA yet');
  } else {
    table(
      out,
      ['SLOT', 'GEN', 'STATE', 'NOT BEFORE', 'NOT AFTER', 'ACTIVATE AT', 'LIVE SVIDS', 'SHA-256'],
      s.authorities.map((a) => [
        clean(String(a.slot)),
        String(a.generation),
        `${clean(String(a.state))}${a.forced ? ' (forced)' : ''}`,
        iso(a.notBefore),
        iso(a.notAfter),
        a.activateAt === null ? '-' : iso(a.activateAt),
        String(a.liveSvids),
        `${clean(String(a.sha256)).slice(0, 16)}…`,
      ]),
    );
  }
  out('');
  const active = s.authorities.find((a) => a.state === 'active');
  const prepared = s.authorities.find((a) => a.state === 'prepared');
  if (s.schedule && active) {
    out(
      `schedule of generation ${active.generation}: successor prepared at ${iso(s.schedule.prepareAt)} ` +
        `(${relative(s.schedule.prepareAt, s.now)}), signing at ${iso(s.schedule.activateAt)} (${relative(s.schedule.activateAt, s.now)})`,
    );
  } else {
    out('schedule: none (no active CA)');
  }
  if (prepared && prepared.activateAt !== null) {
    out(
      `generation ${prepared.generation} is prepared${prepared.forced ? ' (forced rotation)' : ''}: ` +
        `it signs by ${iso(prepared.activateAt)} (${relative(prepared.activateAt, s.now)})` +
        (prepared.forced ? ', sooner once every live SVID holder has the bundle' : ''),
    );
  }
  if (s.warnings.length === 0) {
    out('no warnings');
    return;
  }
  out('');
  out(`WARNINGS (${s.warnings.length}; !! = an outage is coming):`);
  for (const w of s.warnings) {
    const level = OUTAGE_WARNINGS.has(w.code) ? '!!' : ' !';
    out(`${level} ${clean(String(w.code))}: ${clean(String(w.message))}${detailText(w, s.now)}`);
  }
}

/** A warning's detail, with times as ISO dates and durations readable. */
function detailText(w: CaWarning, now: number): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(w.detail ?? {})) {
    if (value === null || value === undefined) continue;
    if (typeof value === 'number' && /(At|Since|notAfter|until)$/.test(key)) {
      parts.push(`${key} ${iso(value)} (${relative(value, now)})`);
    } else if (typeof value === 'number' && key.endsWith('Ms')) {
      parts.push(`${key.slice(0, -2)} ${span(value)}`);
    } else if (typeof value === 'object') {
      parts.push(`${key} ${clean(JSON.stringify(value))}`);
    } else {
      parts.push(`${key} ${clean(String(value))}`);
    }
  }
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

/** "in 5h 3m" or "2m ago". */
function relative(at: number, now: number): string {
  return at >= now ? `in ${span(at - now)}` : `${span(now - at)} ago`;
}

function span(ms: number): string {
  const minutes = Math.round(Math.abs(ms) / 60_000);
  if (minutes < 1) return `${Math.round(Math.abs(ms) / 1000)}s`;
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  return [days ? `${days}d` : '', hours ? `${hours}h` : '', rest ? `${rest}m` : ''].filter(Boolean).join(' ') || '0m';
}

/** Hints for the codes an operator can act on. */
const HINTS: Readonly<Record<string, string>> = {
  [CA_ERRORS.rotationBlocked]:
    'the other slot still holds a retiring CA whose SVIDs are live; rampart ca status shows when the last expires',
  [CA_ERRORS.sealed]: `check --key-file or $${KEK_ENV}: the key-encryption key is not this CA's`,
  [CA_ERRORS.schema]: `not a CA database this version of rampart reads`,
  [KEK_ERRORS.missing]: `no key-encryption key: set $${KEK_ENV} or --key-file`,
  [KEK_ERRORS.fileMode]: 'the key file must be a regular file of yours with mode 0600',
  [CONTROL_API_ERRORS.unauthorized]: `the control plane refused the operator credential (is ${OPERATOR_FILES.credential} from the running control plane?)`,
  [CONTROL_API_ERRORS.wrongIdentity]: 'the process on that port is not this system’s control plane',
};

/** One line: message, code, hint. Never a stack trace. */
function describeError(err: unknown): string {
  if (err instanceof CliFailure || err instanceof ControlPlaneFailure) return clean(err.message);
  if (isRampartError(err)) {
    const reason = typeof err.detail?.['reason'] === 'string' ? ` (${clean(err.detail['reason'])})` : '';
    const hint = HINTS[err.code];
    return `${clean(err.message)}${reason} [${clean(err.code)}]${hint ? `\n  ${hint}` : ''}`;
  }
  return `unexpected error: ${clean(oneLine(err))}`;
}
