import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { MAX_EDGE_NAMES, parseEdgeNames } from '../core/edge-name.ts';
import { RampartError } from '../core/errors.ts';
import { type CompiledPattern, compilePattern } from '../core/path-pattern.ts';
import { type ConfigPath, code, show } from './config-path.ts';
import { CORS_MAX_AGE_MAX, parseCorsHeader, parseOrigin } from './cors.ts';
import { DEFAULTS, defaultAudience, defaultIssuer, defaultRouteId } from './defaults.ts';
import { edgeCertificateNames } from './edge-certificate-names.ts';
import { LIMIT_KEYS, limitInRange } from './gateway-limits.ts';
import { ISSUE } from './issue-codes.ts';
import {
  type ControlConfig,
  type DatabaseStoreConfig,
  type GatewayLimits,
  HTTP_METHODS,
  type HttpMethod,
  type IdentityConfig,
  type PathPattern,
  type RateLimit,
  type RateLimitStore,
  type RouteAuth,
  type SecretDeclaration,
  type SourceLocation,
  type TlsConfig,
} from './model.ts';
import { checkHost, isLoopbackHost, parseCidr } from './net.ts';
import { parseRateLimit } from './rate-limit.ts';
import { isReservedEnvName } from './reserved.ts';
import type { DraftIssue } from './schema-issues.ts';
import type { ManifestSource } from './yaml-source.ts';

/**
 * The manifest's pieces, normalized as far as each piece is valid. Built even when the schema found
 * problems, so that every mistake in the file is reported in one run: a field that is the wrong shape is
 * left undefined here (the schema already reported it) and the checks that need it skip it.
 */
export interface Draft {
  file: string;
  dir: string;
  trustDomain: string | undefined;
  listen: { host: string; port: number };
  /** False when `listen.host` is malformed (already reported; checks about the host skip it). */
  listenHostOk: boolean;
  admin: { port: number };
  tls: TlsConfig | undefined;
  trustedProxies: string[];
  rateLimit: RateLimitStore | undefined;
  /** undefined when malformed (already reported). */
  workers: number | undefined;
  /** null: none; undefined: malformed (already reported). */
  redirectHttp: { port: number } | null | undefined;
  /** Each limit as written, or its default; undefined when malformed or out of range (already reported). */
  limits: { [K in keyof GatewayLimits]: number | undefined };
  /** `max-age` as written, or its default; undefined when malformed (already reported). */
  hstsMaxAgeSeconds: number | undefined;
  identity: IdentityConfig | undefined;
  /** undefined when malformed (already reported). */
  control: ControlConfig | undefined;
  secrets: Map<string, SecretDeclaration>;
  /** False when top-level `secrets` is not a map (already reported; references to it are not checked). */
  secretsOk: boolean;
  services: DraftService[];
}

export interface DraftService {
  name: string;
  at: ConfigPath;
  run: string | undefined;
  env: Record<string, string>;
  routes: DraftRoute[];
  calls: DraftCall[];
  secrets: { name: string; at: ConfigPath }[];
}

export interface DraftRoute {
  service: string;
  at: ConfigPath;
  id: string | undefined;
  path: (PathPattern & { compiled: CompiledPattern }) | undefined;
  /** The valid methods listed (invalid ones were reported by the schema). */
  methods: HttpMethod[];
  auth: RouteAuth | undefined;
  /** null: no rate limit; undefined: malformed. */
  rateLimit: RateLimit | null | undefined;
  /** null: no CORS; undefined: not a map (already reported). */
  cors: DraftCors | null | undefined;
  where: SourceLocation;
}

/** A route's CORS policy, as far as it is valid. */
export interface DraftCors {
  at: ConfigPath;
  /** The valid origins, each with its index in the list as written. */
  origins: { origin: string; index: number }[];
  /** How many different entries `origins` has as written, valid or not. */
  distinct: number;
  /** undefined when not a boolean (already reported). */
  credentials: boolean | undefined;
  /** The valid header names, lower case. */
  headers: string[];
  maxAgeSeconds: number | undefined;
  /** False when any part is malformed (already reported): the policy must not be built. */
  complete: boolean;
}

export interface DraftCall {
  at: ConfigPath;
  service: string | undefined;
  methods: HttpMethod[];
  paths: PathPattern[];
}

export interface NormalizeOptions {
  /** Check that `run`, TLS certificate and key files exist. */
  checkFiles: boolean;
}

/** Applies defaults, resolves files, parses patterns, rate limits and CIDRs; pushes what is wrong to `issues`. */
export function normalize(source: ManifestSource, dir: string, options: NormalizeOptions, issues: DraftIssue[]): Draft {
  const report = (issue: DraftIssue) => issues.push(issue);
  const root = record(source.data) ?? {};
  const gateway = record(root['gateway']) ?? {};
  const listen = record(gateway['listen']) ?? {};
  const admin = record(gateway['admin']) ?? {};
  const trustDomain = string(root['trustDomain']);

  const host = string(listen['host']) ?? DEFAULTS.listenHost;
  const hostProblem = checkHost(host);
  if (hostProblem !== undefined) {
    report({
      code: ISSUE.HOST,
      path: ['gateway', 'listen', 'host'],
      where: 'value',
      message: hostProblem,
      hint: 'use an IP address (127.0.0.1, ::1, 0.0.0.0) or a host name',
    });
  }

  const file = (path: ConfigPath, value: string): string => {
    const absolute = resolve(dir, value);
    if (options.checkFiles && !statSync(absolute, { throwIfNoEntry: false })?.isFile()) {
      const isRun = path.at(-1) === 'run';
      report({
        code: isRun ? ISSUE.RUN_MISSING : ISSUE.TLS_FILE,
        path,
        where: 'value',
        message: `file ${show(value)} not found (looked for ${absolute})`,
        hint: isRun
          ? "the path is relative to the manifest's directory"
          : "paths are relative to the manifest's directory; the file must be a PEM file",
      });
    }
    return absolute;
  };

  let tls: TlsConfig | undefined;
  const tlsValue = gateway['tls'];
  if (tlsValue === 'off') tls = { mode: 'off' };
  else if (tlsValue === 'auto') tls = { mode: 'auto', names: [] };
  else if (record(tlsValue) && Array.isArray(record(tlsValue)!['auto'])) {
    const names = record(tlsValue)!['auto'] as unknown[];
    const parsed = parseEdgeNames(names);
    if (parsed.ok) tls = { mode: 'auto', names: parsed.names.map((n) => n.value) };
    // Wrong types and sizes are the schema's issues; these are the names that are strings but not names.
    else if (names.length > 0 && names.every((n) => typeof n === 'string' && n.length > 0 && n.length <= 253)) {
      report({
        code: ISSUE.TLS,
        path: parsed.index >= 0 ? ['gateway', 'tls', 'auto', parsed.index] : ['gateway', 'tls', 'auto'],
        where: 'value',
        message: `not a name for a certificate: ${parsed.reason}`,
        hint: 'DNS names (shop.example.test) or IP addresses (127.0.0.1, ::1); no wildcards, ports or schemes',
      });
    }
  } else if (record(tlsValue)) {
    const t = record(tlsValue)!;
    const cert = string(t['cert']);
    const key = string(t['key']);
    if (cert && key) {
      tls = {
        mode: 'files',
        cert: file(['gateway', 'tls', 'cert'], cert),
        key: file(['gateway', 'tls', 'key'], key),
      };
    }
  }

  // The CA signs the manifest's names plus the listen host and localhost (edge-certificate-names.ts),
  // and refuses the lot if that whole list is not valid: check the list it will see, not just `auto`'s.
  if (tls?.mode === 'auto' && hostProblem === undefined) {
    const all = parseEdgeNames(edgeCertificateNames({ tls, listen: { host, port: 0 } }));
    if (!all.ok) {
      report({
        code: ISSUE.TLS,
        path: ['gateway', 'tls'],
        where: 'value',
        message: `the edge certificate's names, with the listen host and localhost added: ${all.reason}`,
        hint: `the certificate also names the listen host (and localhost on loopback or every address): at most ${MAX_EDGE_NAMES} names in all, each a DNS name or IP address`,
      });
    }
  }

  const trustedProxies: string[] = [];
  list(gateway['trustedProxies']).forEach((entry, i) => {
    if (typeof entry !== 'string') return;
    const parsed = parseCidr(entry);
    if (parsed.ok) trustedProxies.push(parsed.value);
    else {
      report({
        code: ISSUE.CIDR,
        path: ['gateway', 'trustedProxies', i],
        where: 'value',
        message: `invalid CIDR ${show(entry)}: ${parsed.reason}`,
        hint: parsed.hint ?? 'write an IPv4 or IPv6 network such as 10.0.0.0/8 or fd00::/8, or one address',
      });
    }
  });

  let rateLimit: RateLimitStore | undefined = { store: 'memory' };
  const store = record(gateway['rateLimit']);
  if (store?.['store'] === 'redis') {
    const url = string(store['url']);
    const onStoreDown = store['onStoreDown'] ?? DEFAULTS.onStoreDown;
    if (url !== undefined && checkUrl(['gateway', 'rateLimit', 'url'], url, ['redis:', 'rediss:'], report)) {
      rateLimit = { store: 'redis', url, onStoreDown: onStoreDown === 'local' ? 'local' : 'deny' };
    } else rateLimit = undefined;
  }

  const workers = gateway['workers'] === undefined ? DEFAULTS.gatewayWorkers : integer(gateway['workers']);

  let redirectHttp: { port: number } | null | undefined = null;
  if (gateway['redirectHttp'] !== undefined) {
    const redirectPort = integer(record(gateway['redirectHttp'])?.['port']);
    redirectHttp =
      redirectPort !== undefined && redirectPort >= 1 && redirectPort <= 65535 ? { port: redirectPort } : undefined;
  }

  const writtenMaxAge = record(gateway['hsts'])?.['maxAge'];
  const hstsMaxAge = writtenMaxAge === undefined ? DEFAULTS.hstsMaxAgeSeconds : integer(writtenMaxAge);
  const hstsMaxAgeSeconds =
    hstsMaxAge !== undefined && hstsMaxAge >= 0 && hstsMaxAge <= DEFAULTS.hstsMaxAgeLimitSeconds
      ? hstsMaxAge
      : undefined;

  const writtenLimits = record(gateway['limits']) ?? {};
  const limits = Object.fromEntries(
    LIMIT_KEYS.map((key) => {
      const value = writtenLimits[key];
      return [key, value === undefined ? DEFAULTS.gatewayLimits[key] : limitInRange(key, value) ? value : undefined];
    }),
  ) as Draft['limits'];

  const identity = normalizeIdentity(record(root['identity']), trustDomain, report);
  const controlStore = normalizeStore(['control', 'store'], record(root['control'])?.['store'], report);
  const control = controlStore === undefined ? undefined : { store: controlStore };

  const secrets = new Map<string, SecretDeclaration>();
  for (const [name, value] of Object.entries(record(root['secrets']) ?? {})) {
    const description = string(record(value)?.['description']) ?? DEFAULTS.secretDescription;
    secrets.set(name, { name, description });
  }

  const services: DraftService[] = [];
  for (const [name, value] of Object.entries(record(root['services']) ?? {})) {
    const at = ['services', name];
    const svc = record(value) ?? {};
    const run = string(svc['run']);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(record(svc['env']) ?? {})) {
      // The launcher's own rule (launcher/child-env.ts): said here first, with the line.
      if (isReservedEnvName(k)) {
        report({
          code: ISSUE.ENV,
          path: [...at, 'env', k],
          where: 'key',
          message: `${code(k)} is reserved: the launcher does not pass it, since it would change how the process starts or loads code`,
          hint: 'RAMPART_*, NODE_* (except NODE_ENV and NODE_EXTRA_CA_CERTS), LD_* and DYLD_* are reserved; choose another name',
        });
      } else if (typeof v === 'string') env[k] = v;
    }
    services.push({
      name,
      at,
      run: run === undefined || run === '' ? undefined : file([...at, 'run'], run),
      env,
      routes: list(svc['routes']).map((r, i) => normalizeRoute(name, [...at, 'routes', i], r, i, source, report)),
      calls: list(svc['calls']).map((c, i) => normalizeCall([...at, 'calls', i], c, report)),
      secrets: list(svc['secrets']).flatMap((s, i) =>
        typeof s === 'string' ? [{ name: s, at: [...at, 'secrets', i] }] : [],
      ),
    });
  }

  return {
    file: source.file,
    dir,
    trustDomain,
    listen: { host, port: integer(listen['port']) ?? DEFAULTS.listenPort },
    listenHostOk: hostProblem === undefined && (listen['host'] === undefined || typeof listen['host'] === 'string'),
    admin: { port: integer(admin['port']) ?? DEFAULTS.adminPort },
    tls,
    trustedProxies,
    rateLimit,
    workers,
    redirectHttp,
    limits,
    hstsMaxAgeSeconds,
    identity,
    control,
    secrets,
    secretsOk: root['secrets'] === undefined || record(root['secrets']) !== undefined,
    services,
  };
}

function normalizeIdentity(
  identity: Record<string, unknown> | undefined,
  trustDomain: string | undefined,
  report: (issue: DraftIssue) => void,
): IdentityConfig | undefined {
  if (!identity) return undefined;
  const written = string(identity['audience']);
  const audience = written ?? (trustDomain ? defaultAudience(trustDomain) : undefined);
  const builtin = record(identity['builtin']);
  const external = record(identity['external']);
  if (builtin && !external) {
    const port = builtin['port'] === undefined ? DEFAULTS.identityPort : integer(builtin['port']);
    // An invalid port is reported by the schema; the default issuer built from it would only add noise.
    if (port === undefined || port < 1 || port > 65535) return undefined;
    const issuer = string(builtin['issuer']) ?? defaultIssuer(port);
    const ok = checkUrl(['identity', 'builtin', 'issuer'], issuer, ['https:', 'http:'], report, true);
    const store = normalizeStore(['identity', 'builtin', 'store'], builtin['store'], report);
    return ok && audience && store ? { mode: 'builtin', port, issuer, audience, store } : undefined;
  }
  if (external && !builtin) {
    const issuer = string(external['issuer']);
    const jwksUri = string(external['jwksUri']) ?? null;
    const issuerOk =
      issuer !== undefined && checkUrl(['identity', 'external', 'issuer'], issuer, ['https:'], report, true);
    const jwksOk = jwksUri === null || checkUrl(['identity', 'external', 'jwksUri'], jwksUri, ['https:'], report, true);
    return issuerOk && jwksOk && audience ? { mode: 'external', issuer, jwksUri, audience } : undefined;
  }
  return undefined;
}

/**
 * A module's store (schema.ts `databaseStore`): absent or `sqlite` is SQLite; `{ postgres: <url> }` is
 * PostgreSQL once the URL parses with a host (the schema checks only its scheme). undefined when
 * malformed: the schema or the URL check reported it.
 */
function normalizeStore(
  path: ConfigPath,
  value: unknown,
  report: (issue: DraftIssue) => void,
): DatabaseStoreConfig | undefined {
  if (value === undefined || value === DEFAULTS.databaseStore) return { kind: 'sqlite' };
  const url = string(record(value)?.['postgres']);
  if (url === undefined) return undefined;
  return checkUrl([...path, 'postgres'], url, ['postgres:', 'postgresql:'], report)
    ? { kind: 'postgres', url }
    : undefined;
}

/**
 * Checks a URL's syntax and scheme. With `loopbackHttp`, plain http is also accepted for loopback hosts
 * (a local IdP during development); anything that leaves the machine needs https. Issuers carry no query
 * or fragment (OpenID Connect Discovery §4.3 compares them exactly; RFC 8414 §2 forbids both).
 */
function checkUrl(
  path: ConfigPath,
  text: string,
  schemes: string[],
  report: (issue: DraftIssue) => void,
  loopbackHttp = false,
): boolean {
  const fail = (message: string, hint: string) => {
    report({ code: ISSUE.URL, path, where: 'value', message, hint });
    return false;
  };
  const url = URL.parse(text);
  if (url === null || url.hostname === '') return fail(`invalid URL ${show(text)}`, `write e.g. ${schemes[0]}//host`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const allowed = schemes.includes(url.protocol) || (loopbackHttp && url.protocol === 'http:' && isLoopbackHost(host));
  if (!allowed) {
    return fail(
      `${show(text)} uses ${url.protocol.slice(0, -1)}`,
      loopbackHttp
        ? 'use https (plain http only for loopback hosts during development)'
        : `use ${schemes.map((s) => s.slice(0, -1)).join(' or ')}`,
    );
  }
  if (path.at(-1) === 'issuer' && (url.search !== '' || url.hash !== '')) {
    return fail(`issuer ${show(text)} has a query or fragment`, 'an issuer is scheme, host, port and path only');
  }
  return true;
}

function normalizeRoute(
  service: string,
  at: ConfigPath,
  value: unknown,
  index: number,
  source: ManifestSource,
  report: (issue: DraftIssue) => void,
): DraftRoute {
  const r = record(value) ?? {};
  const pathText = string(r['path']);
  const rateText = r['rateLimit'];
  let rateLimit: RateLimit | null | undefined = null;
  if (typeof rateText === 'string') {
    const parsed = parseRateLimit(rateText);
    if (parsed.ok) rateLimit = parsed.value;
    else {
      rateLimit = undefined;
      report({
        code: ISSUE.RATE,
        path: [...at, 'rateLimit'],
        where: 'value',
        message: `invalid rate limit ${show(rateText)}: ${parsed.reason}`,
        hint: parsed.hint,
      });
    }
  } else if (rateText !== undefined) rateLimit = undefined;

  const auth = r['auth'];
  let routeAuth: RouteAuth | undefined;
  if (auth === undefined) routeAuth = { kind: 'token', scopes: [], scopeMatch: DEFAULTS.scopeMatch, roles: [] };
  else if (auth === 'none') routeAuth = { kind: 'none' };
  else if (record(auth)) {
    const a = record(auth)!;
    routeAuth = {
      kind: 'token',
      scopes: list(a['scopes']).filter((s): s is string => typeof s === 'string'),
      scopeMatch: a['scopeMatch'] === 'any' ? 'any' : DEFAULTS.scopeMatch,
      roles: list(a['roles']).filter((s): s is string => typeof s === 'string'),
    };
  }

  const id = r['id'] === undefined ? defaultRouteId(service, index) : string(r['id']);
  return {
    service,
    at,
    id,
    path: pathText === undefined ? undefined : pattern([...at, 'path'], pathText, report),
    methods: methods(r['methods']),
    auth: routeAuth,
    rateLimit,
    cors: r['cors'] === undefined ? null : normalizeCors([...at, 'cors'], r['cors'], report),
    where: source.at(at),
  };
}

function normalizeCors(at: ConfigPath, value: unknown, report: (issue: DraftIssue) => void): DraftCors | undefined {
  const c = record(value);
  if (!c) return undefined;
  let complete = Array.isArray(c['origins']) && c['origins'].length > 0;
  const origins: DraftCors['origins'] = [];
  list(c['origins']).forEach((entry, index) => {
    if (typeof entry !== 'string') {
      complete = false;
      return;
    }
    const parsed = parseOrigin(entry);
    if (parsed.ok) origins.push({ origin: parsed.value, index });
    else {
      complete = false;
      report({
        code: ISSUE.CORS_ORIGIN,
        path: [...at, 'origins', index],
        where: 'value',
        message: `invalid origin ${show(entry)}: ${parsed.reason}`,
        hint: parsed.hint,
      });
    }
  });
  if (new Set(origins.map((o) => o.origin)).size !== origins.length) complete = false; // reported by the schema

  const headers: string[] = [];
  if (c['headers'] !== undefined && !Array.isArray(c['headers'])) complete = false;
  list(c['headers']).forEach((entry, index) => {
    if (typeof entry !== 'string') {
      complete = false;
      return;
    }
    const parsed = parseCorsHeader(entry);
    if (!parsed.ok) {
      complete = false;
      report({
        code: ISSUE.CORS_HEADER,
        path: [...at, 'headers', index],
        where: 'value',
        message: `header ${show(entry)} cannot be allowed: ${parsed.reason}`,
        hint: parsed.hint,
      });
    } else if (headers.includes(parsed.value)) {
      // Header names are case-insensitive: `X-Api-Key` and `x-api-key` are one header.
      complete = false;
      report({
        code: ISSUE.DUPLICATE_ITEM,
        path: [...at, 'headers', index],
        where: 'value',
        message: `${show(entry)} is listed twice${entry === parsed.value ? '' : ' (header names are case-insensitive)'}`,
        hint: 'remove the repeated entry',
      });
    } else headers.push(parsed.value);
  });

  const credentials = c['credentials'] === undefined ? DEFAULTS.corsCredentials : c['credentials'];
  const maxAge = c['maxAge'] === undefined ? DEFAULTS.corsMaxAgeSeconds : integer(c['maxAge']);
  const maxAgeSeconds = maxAge !== undefined && maxAge >= 0 && maxAge <= CORS_MAX_AGE_MAX ? maxAge : undefined;
  const known = new Set(['origins', 'credentials', 'headers', 'maxAge']);
  if (typeof credentials !== 'boolean' || maxAgeSeconds === undefined || Object.keys(c).some((k) => !known.has(k))) {
    complete = false;
  }
  return {
    at,
    origins,
    distinct: new Set(list(c['origins'])).size,
    credentials: typeof credentials === 'boolean' ? credentials : undefined,
    headers,
    maxAgeSeconds,
    complete,
  };
}

function normalizeCall(at: ConfigPath, value: unknown, report: (issue: DraftIssue) => void): DraftCall {
  const c = record(value) ?? {};
  const paths: PathPattern[] = [];
  list(c['paths']).forEach((p, i) => {
    if (typeof p !== 'string') return;
    const compiled = pattern([...at, 'paths', i], p, report);
    if (compiled) paths.push({ source: compiled.source, segments: compiled.segments });
  });
  return { at, service: string(c['service']), methods: methods(c['methods']), paths };
}

function pattern(
  path: ConfigPath,
  text: string,
  report: (issue: DraftIssue) => void,
): (PathPattern & { compiled: CompiledPattern }) | undefined {
  try {
    const compiled = compilePattern(text);
    // Segments as written, a final `**` included, so the pattern is self-describing.
    const segments = text === '/' ? [] : text.slice(1).split('/');
    return { source: text, segments, compiled };
  } catch (err) {
    if (!(err instanceof RampartError)) throw err;
    report({
      code: ISSUE.PATTERN,
      path,
      where: 'value',
      message: `invalid path pattern ${show(text)}: ${String(err.detail?.['reason'] ?? err.message)}`,
      hint: `patterns are canonical paths: literal segments, ${code('*')} for one segment, a final ${code('**')} for the rest`,
    });
    return undefined;
  }
}

function methods(value: unknown): HttpMethod[] {
  return list(value).filter((m): m is HttpMethod => (HTTP_METHODS as readonly unknown[]).includes(m));
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function string(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function integer(value: unknown): number | undefined {
  return Number.isInteger(value) ? (value as number) : undefined;
}
