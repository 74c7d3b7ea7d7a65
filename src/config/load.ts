import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { RampartError } from '../core/errors.ts';
import { ConfigError, sortIssues } from './config-error.ts';
import { formatPath } from './config-path.ts';
import { crossCheck } from './cross-checks.ts';
import { deepFreeze } from './freeze.ts';
import { LIMIT_KEYS } from './gateway-limits.ts';
import { ISSUE } from './issue-codes.ts';
import type { ConfigIssue, CorsPolicy, GatewayLimits, Manifest, Route, Service } from './model.ts';
import { type Draft, type DraftCors, normalize } from './normalize.ts';
import { type DraftIssue, schemaIssues } from './schema-issues.ts';
import { type ManifestSource, parseYaml } from './yaml-source.ts';

export interface ParseOptions {
  /**
   * Check that `run`, TLS certificate and key files exist (default true). Tests that build a manifest
   * from inline text without files may turn it off.
   */
  checkFiles?: boolean;
}

/**
 * Reads, validates and normalizes a manifest file. Returns a deeply frozen {@link Manifest}, or throws a
 * {@link ConfigError} listing every issue in the file (a missing or unreadable file is one `CFG_ERR_FILE`).
 */
export function loadManifest(file: string, options: ParseOptions = {}): Manifest {
  const absolute = resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([
      {
        code: ISSUE.FILE,
        file: absolute,
        line: 1,
        column: 1,
        path: '',
        message: reason === 'ENOENT' ? 'manifest file not found' : `cannot read the manifest file (${reason})`,
        ...(reason === 'ENOENT' ? { hint: 'run `rampart check <file>` with the path of your rampart.yaml' } : {}),
      },
    ]);
  }
  return parseManifest(text, absolute, options);
}

/**
 * Validates and normalizes manifest text as if read from `file` (relative paths in it resolve from the
 * file's directory). The steps, in order:
 * 1. parse YAML keeping positions (syntax errors and duplicate keys stop here);
 * 2. validate against the JSON Schema (schema.ts), one issue per mistake;
 * 3. normalize: defaults, files, path patterns, rate limits, CIDRs, URLs;
 * 4. cross-check the parts against each other;
 * then either throw every issue, sorted by position, or return the frozen manifest.
 */
export function parseManifest(text: string, file: string, options: ParseOptions = {}): Manifest {
  const absolute = resolve(file);
  const dir = dirname(absolute);
  const { source, issues: yamlIssues } = parseYaml(text, absolute);
  if (yamlIssues.length > 0) throw new ConfigError(sortIssues(yamlIssues));

  const fromSchema = schemaIssues(source.data);
  const found: DraftIssue[] = [];
  const draft = normalize(source, dir, { checkFiles: options.checkFiles ?? true }, found);
  crossCheck(draft, source, found);

  // Where the code parsed a value the schema also rejected (a rate limit, a pattern, a CIDR...), the
  // code's message is the precise one: keep it and drop the schema's.
  const precise = new Set(found.map((i) => `${i.code} ${formatPath(i.path)}`));
  const issues = [...fromSchema.filter((i) => !precise.has(`${i.code} ${formatPath(i.path)}`)), ...found];
  if (issues.length > 0) throw new ConfigError(sortIssues(dedupe(issues.map((i) => place(i, source)))));
  return deepFreeze(build(draft));
}

function place(issue: DraftIssue, source: ManifestSource): ConfigIssue {
  const at = issue.where === 'key' ? source.keyAt(issue.path) : source.at(issue.path);
  return {
    code: issue.code,
    file: at.file,
    line: at.line,
    column: at.column,
    path: formatPath(issue.path),
    message: issue.message,
    ...(issue.hint ? { hint: issue.hint } : {}),
  };
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.code} ${i.path} ${i.line} ${i.column} ${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * A part of a draft that produced no issues, which must therefore be present. Fails closed if it is not
 * (a bug in validation): a manifest with a hole in it must never reach the gateway.
 */
function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) {
    throw new RampartError('CFG_ERR_INTERNAL', `manifest validation let an invalid ${what} through`);
  }
  return value;
}

function corsPolicy(draft: DraftCors): CorsPolicy {
  if (!draft.complete) return must<CorsPolicy>(undefined, 'CORS policy');
  return {
    origins: draft.origins.map((o) => o.origin),
    credentials: must(draft.credentials, 'CORS credentials'),
    headers: draft.headers,
    maxAgeSeconds: must(draft.maxAgeSeconds, 'CORS max age'),
  };
}

/** Assembles the manifest from a draft that produced no issues (so every part is present). */
function build(draft: Draft): Manifest {
  const services: Record<string, Service> = {};
  const routes: Route[] = [];
  for (const s of draft.services) {
    const serviceRoutes = s.routes.map(
      (r): Route => ({
        id: must(r.id, 'route id'),
        service: r.service,
        path: { source: must(r.path, 'route path').source, segments: must(r.path, 'route path').segments },
        methods: r.methods,
        auth: must(r.auth, 'route auth'),
        rateLimit: must(r.rateLimit, 'rate limit'),
        where: r.where,
        cors: r.cors === null ? null : corsPolicy(must(r.cors, 'CORS policy')),
      }),
    );
    routes.push(...serviceRoutes);
    services[s.name] = {
      name: s.name,
      run: must(s.run, 'run file'),
      routes: serviceRoutes,
      calls: s.calls.map((c) => ({ service: must(c.service, 'call'), methods: c.methods, paths: c.paths })),
      secrets: s.secrets.map((x) => x.name),
      env: s.env,
    };
  }
  return {
    file: draft.file,
    dir: draft.dir,
    trustDomain: must(draft.trustDomain, 'trust domain'),
    gateway: {
      listen: draft.listen,
      admin: draft.admin,
      tls: must(draft.tls, 'TLS setting'),
      trustedProxies: draft.trustedProxies,
      rateLimit: must(draft.rateLimit, 'rate-limit store'),
      workers: must(draft.workers, 'worker count'),
      redirectHttp: must(draft.redirectHttp, 'redirect listener'),
      limits: Object.fromEntries(
        LIMIT_KEYS.map((key) => [key, must(draft.limits[key], `gateway limit ${key}`)]),
      ) as unknown as GatewayLimits,
      hsts: { maxAgeSeconds: must(draft.hstsMaxAgeSeconds, 'HSTS max-age') },
    },
    identity: must(draft.identity, 'identity'),
    control: must(draft.control, 'control plane settings'),
    secrets: Object.fromEntries(draft.secrets),
    services,
    routes,
  };
}
