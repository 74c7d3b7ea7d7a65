import { relative, resolve } from 'node:path';
import { parseArgs, styleText } from 'node:util';
import { ConfigError } from '../config/config-error.ts';
import { redactUrlPasswords } from '../config/config-path.ts';
import { DEFAULTS } from '../config/defaults.ts';
import { edgeCertificateNames } from '../config/edge-certificate-names.ts';
import { formatIssues } from '../config/format.ts';
import { LIMIT_KEYS } from '../config/gateway-limits.ts';
import { loadManifest } from '../config/load.ts';
import type { CorsPolicy, GatewayConfig, Manifest, Route, RouteAuth } from '../config/model.ts';
import { clean, oneLine } from './text.ts';

export interface CheckIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  cwd: string;
  color: boolean;
}

const USAGE = `Usage: rampart check [file]

Validates a manifest (default ./${DEFAULTS.manifestFile}) and prints a summary of the system:
gateway, identity, routes and their CORS, who may call whom, and which service reads which secret.
Exit codes: 0 valid, 2 invalid manifest or usage, 1 unexpected error.
`;

/**
 * `rampart check [file]`: prints a summary and returns 0 for a valid manifest; prints every issue and
 * returns 2 for an invalid one. Never prints a stack trace: an unexpected error is one line and exit 1.
 */
export async function runCheck(args: string[], io: CheckIo): Promise<number> {
  let positionals: string[];
  let help: boolean | undefined;
  try {
    ({
      positionals,
      values: { help },
    } = parseArgs({
      args,
      allowPositionals: true,
      options: { help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    io.stderr.write(`rampart check: ${oneLine(err)}\n\n${USAGE}`);
    return 2;
  }
  if (help) {
    io.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 1) {
    io.stderr.write(`rampart check: one manifest at a time\n\n${USAGE}`);
    return 2;
  }
  const file = resolve(io.cwd, positionals[0] ?? DEFAULTS.manifestFile);
  const shown = relative(io.cwd, file) || file;
  try {
    const manifest = loadManifest(file);
    io.stdout.write(summarize(manifest, io));
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      const n = err.issues.length;
      io.stderr.write(formatIssues(err.issues, { color: io.color, cwd: io.cwd }));
      io.stderr.write(`\n${n} problem${n === 1 ? '' : 's'} in ${shown}\n`);
      return 2;
    }
    io.stderr.write(`rampart check: unexpected error while checking ${shown}: ${oneLine(err)}\n`);
    return 1;
  }
}

function summarize(m: Manifest, io: CheckIo): string {
  const bold = (t: string) => (io.color ? styleText('bold', t, { validateStream: false }) : t);
  const ok = (t: string) => (io.color ? styleText('green', t, { validateStream: false }) : t);
  const rel = (p: string) => relative(io.cwd, p) || p;
  const out: string[] = [];

  out.push(ok(`${rel(m.file)} is valid`), '');
  const g = m.gateway;
  const scheme = g.tls.mode === 'off' ? 'http' : 'https';
  const host = g.listen.host.includes(':') ? `[${g.listen.host}]` : g.listen.host;
  const tls =
    g.tls.mode === 'off'
      ? 'TLS off (loopback only)'
      : g.tls.mode === 'auto'
        ? `TLS auto (local CA) for ${edgeCertificateNames(g).join(', ')}`
        : `TLS cert ${rel(g.tls.cert)}, key ${rel(g.tls.key)}`;
  const store =
    g.rateLimit.store === 'memory'
      ? 'memory'
      : `redis ${redactUrlPasswords(g.rateLimit.url)} (when down: ${g.rateLimit.onStoreDown})`;
  const id = m.identity;
  const identity =
    id.mode === 'builtin'
      ? `builtin provider on port ${id.port}, issuer ${id.issuer}, store ${id.store.kind === 'postgres' ? `postgres ${redactUrlPasswords(id.store.url)}` : 'sqlite'}`
      : `external issuer ${id.issuer}${id.jwksUri ? `, JWKS ${id.jwksUri}` : ''}`;
  out.push(
    ...table([
      ['trust domain', m.trustDomain],
      ['gateway', `${scheme}://${host}:${g.listen.port}  ${tls}`],
      ['', `admin port ${g.admin.port === 0 ? '0 (launcher picks)' : g.admin.port}`],
      ['', `trusted proxies: ${g.trustedProxies.length === 0 ? 'none' : g.trustedProxies.join(', ')}`],
      ['', `rate-limit store: ${store}`],
      ['', `workers: ${g.workers === 0 ? 'one per core' : g.workers}`],
      [
        '',
        `HTTP redirect: ${g.redirectHttp === null ? 'none' : `http://${host}:${g.redirectHttp.port} -> https://${host}:${g.listen.port}`}`,
      ],
      ...describeLimits(g).map((line) => ['', line]),
      ['identity', identity],
      ['', `audience ${id.audience}`],
      [
        'control plane',
        `audit log and secrets in ${m.control.store.kind === 'postgres' ? `postgres ${redactUrlPasswords(m.control.store.url)}` : 'sqlite'}`,
      ],
    ]),
    '',
  );

  out.push(bold(`Routes (${m.routes.length})`));
  if (m.routes.length === 0) out.push('  none: nothing is reachable through the gateway');
  else {
    out.push(
      ...table(
        [
          ['METHODS', 'PATH', 'SERVICE', 'AUTH', 'RATE LIMIT', 'ID'],
          ...m.routes.map((r: Route) => [
            r.methods.join(','),
            r.path.source,
            r.service,
            describeAuth(r.auth),
            r.rateLimit?.source ?? '-',
            r.id,
          ]),
        ],
        '  ',
      ),
    );
  }
  out.push('');

  const cors = m.routes.filter((r): r is Route & { cors: CorsPolicy } => r.cors !== null);
  out.push(bold(`CORS (${cors.length})`));
  if (cors.length === 0) out.push('  none: no route answers cross-origin requests from browsers');
  else {
    out.push(
      ...table(
        [
          ['ROUTE', 'ORIGINS', 'CREDENTIALS', 'HEADERS', 'MAX-AGE'],
          ...cors.map((r) => [
            r.id,
            r.cors.origins.join(' '),
            r.cors.credentials ? 'yes' : 'no',
            r.cors.headers.length === 0 ? '-' : r.cors.headers.join(','),
            `${r.cors.maxAgeSeconds}s`,
          ]),
        ],
        '  ',
      ),
    );
  }
  out.push('');

  const calls = Object.values(m.services).flatMap((s) => s.calls.map((c) => ({ from: s.name, ...c })));
  out.push(bold(`Calls (${calls.length})`));
  if (calls.length === 0) out.push('  none: no service may call another');
  else {
    out.push(
      ...table(
        calls.map((c) => [`${c.from} -> ${c.service}`, c.methods.join(','), c.paths.map((p) => p.source).join(' ')]),
        '  ',
      ),
    );
  }
  out.push('');

  const secrets = Object.values(m.secrets);
  out.push(bold(`Secrets (${secrets.length})`));
  if (secrets.length === 0) out.push('  none');
  else {
    const readers = (name: string) =>
      Object.values(m.services)
        .filter((s) => s.secrets.includes(name))
        .map((s) => s.name)
        .join(', ');
    out.push(
      ...table(
        secrets.map((s) => [s.name, `read by ${readers(s.name)}`, clean(s.description)]),
        '  ',
      ),
    );
  }
  out.push('');

  const services = Object.values(m.services);
  out.push(bold(`Services (${services.length})`));
  out.push(
    ...table(
      services.map((s) => [
        s.name,
        rel(s.run),
        s.routes.length === 0 ? 'no routes: reachable only by calls' : `${s.routes.length} route(s)`,
        Object.keys(s.env).length === 0 ? '' : `env ${Object.keys(s.env).join(', ')}`,
      ]),
      '  ',
    ),
  );
  return `${out.join('\n')}\n`;
}

function describeAuth(auth: RouteAuth): string {
  if (auth.kind === 'none') return 'public';
  const parts = ['token'];
  if (auth.scopes.length > 0) {
    parts.push(
      auth.scopes.length === 1 ? `scope ${auth.scopes[0]}` : `${auth.scopeMatch} of scopes ${auth.scopes.join(' ')}`,
    );
  }
  if (auth.roles.length > 0)
    parts.push(auth.roles.length === 1 ? `role ${auth.roles[0]}` : `a role of ${auth.roles.join(' ')}`);
  return parts.join(', ');
}

/** The limits that differ from their defaults, one line each; one line when none does. */
function describeLimits(g: GatewayConfig): string[] {
  const changed = LIMIT_KEYS.filter((key) => g.limits[key] !== DEFAULTS.gatewayLimits[key]);
  if (changed.length === 0) return ['limits: defaults'];
  return changed.map((key) => `limit ${key} ${g.limits[key]} (default ${DEFAULTS.gatewayLimits[key]})`);
}

/** Left-aligned columns separated by two spaces; trailing blanks trimmed. */
function table(rows: string[][], indent = ''): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows.map((row) =>
    `${indent}${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}`.trimEnd(),
  );
}
