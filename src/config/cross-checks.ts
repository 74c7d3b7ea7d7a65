import { patternsOverlap } from '../core/path-pattern.ts';
import { type ConfigPath, code, formatPath } from './config-path.ts';
import { ISSUE } from './issue-codes.ts';
import type { GatewayLimits } from './model.ts';
import { isLoopbackHost } from './net.ts';
import type { Draft, DraftRoute } from './normalize.ts';
import type { DraftIssue } from './schema-issues.ts';
import { didYouMean } from './suggest.ts';
import type { ManifestSource } from './yaml-source.ts';

/**
 * Checks that relate several parts of the manifest, in the order they are listed here. Each works on
 * whatever parts normalized cleanly, so they run even when other parts of the file are wrong.
 */
export function crossCheck(draft: Draft, source: ManifestSource, issues: DraftIssue[]): void {
  const report = (issue: DraftIssue) => issues.push(issue);
  checkTls(draft, report);
  checkRedirect(draft, report);
  checkPorts(draft, source, report);
  checkLimits(draft, source, report);
  checkRouteIds(draft, source, report);
  checkRouteConflicts(draft, report);
  checkRateKeys(draft, report);
  checkCors(draft, report);
  checkCalls(draft, report);
  checkSecrets(draft, report);
}

type Report = (issue: DraftIssue) => void;

/** Plain HTTP only where nobody else can listen in: a loopback host. */
function checkTls(draft: Draft, report: Report): void {
  if (draft.tls?.mode !== 'off' || !draft.listenHostOk || isLoopbackHost(draft.listen.host)) return;
  report({
    code: ISSUE.TLS,
    path: ['gateway', 'tls'],
    where: 'value',
    message: `\`tls: off\` on ${draft.listen.host}, which is not a loopback address`,
    hint: 'plain HTTP is only allowed on 127.0.0.1, ::1 or localhost; use `tls: auto` or `tls: { cert: <file>, key: <file> }`',
  });
}

/** A redirect listener sends clients to the HTTPS listener: without TLS there is none. */
function checkRedirect(draft: Draft, report: Report): void {
  if (draft.redirectHttp === null || draft.tls?.mode !== 'off') return;
  report({
    code: ISSUE.REDIRECT,
    path: ['gateway', 'redirectHttp'],
    where: 'key',
    message: '`redirectHttp` with `tls: off`: there is no HTTPS listener to redirect to',
    hint: 'remove `redirectHttp`, or turn TLS on with `tls: auto` or `tls: { cert: <file>, key: <file> }`',
  });
}

/** The gateway, its admin and redirect listeners and the builtin identity provider each need their own port. */
function checkPorts(draft: Draft, source: ManifestSource, report: Report): void {
  const listeners: { name: string; path: ConfigPath; port: number }[] = [
    { name: 'gateway.listen.port', path: ['gateway', 'listen', 'port'], port: draft.listen.port },
    { name: 'gateway.admin.port', path: ['gateway', 'admin', 'port'], port: draft.admin.port },
  ];
  if (draft.redirectHttp) {
    listeners.push({
      name: 'gateway.redirectHttp.port',
      path: ['gateway', 'redirectHttp', 'port'],
      port: draft.redirectHttp.port,
    });
  }
  if (draft.identity?.mode === 'builtin') {
    listeners.push({ name: 'identity.builtin.port', path: ['identity', 'builtin', 'port'], port: draft.identity.port });
  }
  const written = (path: ConfigPath) => isWritten(source, path);
  for (let j = 0; j < listeners.length; j++) {
    for (let i = 0; i < j; i++) {
      const a = listeners[i]!;
      const b = listeners[j]!;
      // 0 means "any free port", which never collides.
      if (a.port === 0 || a.port !== b.port) continue;
      const [blame, other] = written(b.path) || !written(a.path) ? [b, a] : [a, b];
      report({
        code: ISSUE.PORT_CONFLICT,
        path: blame.path,
        where: 'value',
        message: `port ${blame.port} is also used by ${other.name}${written(other.path) ? '' : ' (its default)'}`,
        hint: 'give each listener its own port',
      });
    }
  }
}

/**
 * Limits that contradict each other: the smaller must not exceed the larger, or one of them is dead
 * configuration (or, for the timeouts, Node refuses to start the server: `headersTimeout` must be
 * `<= requestTimeout`). Blamed on the value written, when the other one is a default.
 */
function checkLimits(draft: Draft, source: ManifestSource, report: Report): void {
  const pairs: { small: keyof GatewayLimits; large: keyof GatewayLimits; strict: boolean; why: string }[] = [
    {
      small: 'maxConnectionsPerClient',
      large: 'maxConnections',
      strict: false,
      why: 'one client can never hold more connections than the gateway accepts',
    },
    {
      small: 'headersTimeoutMs',
      large: 'requestTimeoutMs',
      strict: false,
      why: 'the headers are part of the request, and Node refuses a headers timeout above the request timeout',
    },
    {
      small: 'maxTargetLength',
      large: 'maxHeaderBytes',
      strict: true,
      why: 'the request line counts toward the header size, so the target limit could never apply',
    },
  ];
  const written = (key: keyof GatewayLimits) => isWritten(source, ['gateway', 'limits', key]);
  for (const { small, large, strict, why } of pairs) {
    const a = draft.limits[small];
    const b = draft.limits[large];
    if (a === undefined || b === undefined || (strict ? a < b : a <= b)) continue;
    const [blame, other] = written(small) || !written(large) ? [small, large] : [large, small];
    const value = (key: keyof GatewayLimits) => `${key} ${draft.limits[key]}${written(key) ? '' : ' (its default)'}`;
    report({
      code: ISSUE.LIMITS,
      path: ['gateway', 'limits', blame],
      where: 'value',
      message: `${value(small)} must be ${strict ? 'less than' : 'at most'} ${value(large)}`,
      hint: `${why}; ${written(other) ? 'change one of them' : `set \`${other}\` too, or change \`${blame}\``}`,
    });
  }
}

/** Route ids are metric labels and audit resources: two routes with one id would be indistinguishable. */
function checkRouteIds(draft: Draft, source: ManifestSource, report: Report): void {
  const seen = new Map<string, DraftRoute>();
  for (const route of draft.services.flatMap((s) => s.routes)) {
    if (route.id === undefined) continue;
    const first = seen.get(route.id);
    if (!first) {
      seen.set(route.id, route);
      continue;
    }
    const explicit = isWritten(source, [...route.at, 'id']);
    report({
      code: ISSUE.DUPLICATE_ID,
      path: explicit ? [...route.at, 'id'] : route.at,
      where: 'value',
      message: `route id ${code(route.id)}${explicit ? '' : ' (the default id of this route)'} is also the id of ${formatPath(first.at)} (line ${first.where.line})`,
      hint: 'route ids must be unique; give one of them another `id`',
    });
  }
}

/**
 * Two routes some request would match both: their patterns overlap and they share a method. Across
 * services that is a claim dispute; within one service it makes auth and rate limits depend on
 * declaration order. Reported on the later route.
 */
function checkRouteConflicts(draft: Draft, report: Report): void {
  const routes = draft.services.flatMap((s) => s.routes).filter((r) => r.path !== undefined);
  for (let j = 0; j < routes.length; j++) {
    for (let i = 0; i < j; i++) {
      const a = routes[i]!;
      const b = routes[j]!;
      const shared = b.methods.filter((m) => a.methods.includes(m));
      if (shared.length === 0 || !patternsOverlap(a.path!.compiled, b.path!.compiled)) continue;
      const owner = a.service === b.service ? 'this service' : `service ${code(a.service)}`;
      report({
        code: ISSUE.ROUTE_CONFLICT,
        path: [...b.at, 'path'],
        where: 'value',
        message: `${shared.join(', ')} ${b.path!.source} overlaps ${a.path!.source} of ${owner} (${formatPath(a.at)}, line ${a.where.line})`,
        hint:
          a.service === b.service
            ? 'merge the two routes, or make their paths or methods disjoint'
            : 'a path belongs to one service: make the patterns disjoint or the methods different',
      });
    }
  }
}

/** A route without authentication has no subject or client to count by. */
function checkRateKeys(draft: Draft, report: Report): void {
  for (const route of draft.services.flatMap((s) => s.routes)) {
    const key = route.rateLimit?.key.kind;
    if (route.auth?.kind !== 'none' || (key !== 'subject' && key !== 'client')) continue;
    report({
      code: ISSUE.RATE_KEY,
      path: [...route.at, 'rateLimit'],
      where: 'value',
      message: `\`per ${key}\` on a route with \`auth: none\`: such requests have no ${key}`,
      hint: 'count public routes `per ip`, or require a token by removing `auth: none`',
    });
  }
}

/**
 * A CORS policy that contradicts itself. The Fetch standard refuses `Access-Control-Allow-Origin: *`
 * on a credentialed request, so `*` with credentials would fail in every browser (and echoing any
 * origin instead would hand every site the user's session). `*` beside exact origins is meaningless.
 */
function checkCors(draft: Draft, report: Report): void {
  for (const route of draft.services.flatMap((s) => s.routes)) {
    const cors = route.cors;
    if (!cors) continue;
    const wildcard = cors.origins.find((o) => o.origin === '*');
    if (wildcard === undefined) continue;
    if (cors.distinct > 1) {
      report({
        code: ISSUE.CORS,
        path: [...cors.at, 'origins', wildcard.index],
        where: 'value',
        message: '`*` together with other origins',
        hint: 'write either `*` alone (any origin, no credentials) or the exact origins',
      });
    }
    if (cors.credentials === true) {
      report({
        code: ISSUE.CORS,
        path: [...cors.at, 'credentials'],
        where: 'value',
        message: '`credentials: true` with the origin `*`',
        hint: 'browsers refuse credentials with `*` (Fetch standard): list the exact origins, or remove `credentials`',
      });
    }
  }
}

/** Calls name services that exist, and not the caller itself. */
function checkCalls(draft: Draft, report: Report): void {
  const names = draft.services.map((s) => s.name);
  for (const service of draft.services) {
    for (const call of service.calls) {
      if (call.service === undefined) continue;
      if (call.service === service.name) {
        report({
          code: ISSUE.SELF_CALL,
          path: [...call.at, 'service'],
          where: 'value',
          message: `service ${code(service.name)} lists a call to itself`,
          hint: 'calls within a service need no policy; remove this entry',
        });
      } else if (!names.includes(call.service)) {
        report({
          code: ISSUE.UNKNOWN_SERVICE,
          path: [...call.at, 'service'],
          where: 'value',
          message: `no service named ${code(call.service)}`,
          hint: didYouMean(call.service, names) ?? `declared services: ${names.map(code).join(', ')}`,
        });
      }
    }
  }
}

/** Every secret a service reads is declared, and every declared secret is read by someone. */
function checkSecrets(draft: Draft, report: Report): void {
  if (!draft.secretsOk) return;
  const declared = [...draft.secrets.keys()];
  const used = new Set<string>();
  for (const service of draft.services) {
    for (const secret of service.secrets) {
      used.add(secret.name);
      if (draft.secrets.has(secret.name)) continue;
      report({
        code: ISSUE.UNKNOWN_SECRET,
        path: secret.at,
        where: 'value',
        message: `secret ${code(secret.name)} is not declared`,
        hint:
          didYouMean(secret.name, declared) ??
          `declare it under the top-level \`secrets:\` map, e.g. ${secret.name}: { description: "..." }`,
      });
    }
  }
  for (const name of declared) {
    if (used.has(name)) continue;
    report({
      code: ISSUE.UNUSED_SECRET,
      path: ['secrets', name],
      where: 'key',
      message: `no service may read secret ${code(name)}`,
      hint: 'list it under the `secrets:` of the services that need it, or remove it',
    });
  }
}

/** Whether the value at `path` is written in the file (rather than a default). */
function isWritten(source: ManifestSource, path: ConfigPath): boolean {
  let node: unknown = source.data;
  for (const part of path) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, part)) return false;
    node = (node as Record<string | number, unknown>)[part];
  }
  return true;
}
