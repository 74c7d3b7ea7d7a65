import type { OutgoingHttpHeaders } from 'node:http';
import { type CorsPolicy, HTTP_METHODS } from '../../config/model.ts';
import { RampartError } from '../../core/errors.ts';
import { StageAnswer } from '../answer.ts';
import type { RequestContext } from '../context.ts';
import { deny } from '../deny.ts';
import { type CompiledRoute, Router } from '../router.ts';
import type { GatewayDeps, Stage } from '../stage.ts';

/** A route's CORS policy, precomputed. */
interface CompiledCors {
  readonly anyOrigin: boolean;
  readonly origins: ReadonlySet<string>;
  readonly credentials: boolean;
  readonly headers: ReadonlySet<string>;
  readonly maxAge: string;
}

/** A field name (RFC 9110 §5.1 token), as browsers send them in Access-Control-Request-Headers, lower case. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]{1,128}$/;
/** Request headers considered in one preflight; browsers send a handful. */
const MAX_REQUESTED_HEADERS = 64;
/** A preflight's answer depends on all three request fields: caches must key on them (Fetch §3.2.5). */
const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';

/**
 * CORS (Fetch standard, CORS protocol), only on routes whose manifest entry enables it.
 *
 * Preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) to a path that has a CORS
 * route are answered here, with no token and without reaching the service: 204 with the exact origin
 * (never a reflected arbitrary one), `Vary`, the methods whose routes allow that origin, the requested
 * headers the route allows, and the max-age. An origin the path's routes do not allow, or a method
 * they do not allow for it, is a 403 decision. A preflight to a path without CORS routes is left to
 * routing (404, 405, or the service if its route lists OPTIONS).
 *
 * On the way out, every response loses any `Access-Control-*` field a service sent (the gateway owns
 * CORS), and responses of CORS routes — denials included, so a browser app can read its 401 — carry
 * `Access-Control-Allow-Origin` (and `-Credentials` when configured) for an allowed origin, and
 * `Vary: Origin`. A disallowed origin gets no CORS field at all.
 */
export function createCors(deps: GatewayDeps): Stage {
  const policies = new Map<string, CompiledCors>();
  for (const route of deps.manifest.routes) {
    if (route.cors) policies.set(route.id, compile(route.id, route.cors));
  }
  const router = new Router(deps.manifest);
  const preflights = new WeakSet<RequestContext>();

  return {
    name: 'cors',
    request: (ctx) => {
      const { req } = ctx;
      if (req.method !== 'OPTIONS' || policies.size === 0) return;
      const origin = req.headers.origin;
      const requested = req.headers['access-control-request-method'];
      if (typeof origin !== 'string' || typeof requested !== 'string') return;

      // Every method is matched against the one pattern that owns this path (router.ts): the methods
      // whose routes allow this origin are the answer's Allow-Methods.
      let corsPath = false;
      const allowed: string[] = [];
      let target: CompiledRoute | null = null;
      for (const method of HTTP_METHODS) {
        const found = router.match(method, ctx.path);
        if (found.kind !== 'match') continue;
        const policy = policies.get(found.route.route.id);
        if (!policy) continue;
        corsPath = true;
        if (!allows(policy, origin)) continue;
        allowed.push(method);
        if (method === requested) target = found.route;
      }
      if (!corsPath) return;
      if (allowed.length === 0) throw deny(403, 'GW_ERR_CORS_ORIGIN', { reason: 'cors_origin' });
      if (!target) throw deny(403, 'GW_ERR_CORS_METHOD', { reason: 'cors_method' });

      const policy = policies.get(target.route.id)!;
      const headers: OutgoingHttpHeaders = {
        'access-control-allow-origin': policy.anyOrigin ? '*' : origin,
        'access-control-allow-methods': allowed.join(', '),
        'access-control-max-age': policy.maxAge,
        vary: PREFLIGHT_VARY,
      };
      if (policy.credentials) headers['access-control-allow-credentials'] = 'true';
      const granted = requestedHeaders(req.headers['access-control-request-headers']).filter((h) =>
        policy.headers.has(h),
      );
      if (granted.length > 0) headers['access-control-allow-headers'] = granted.join(', ');
      ctx.route = target; // attributes the preflight to its route in metrics and the access log
      preflights.add(ctx);
      throw new StageAnswer(204, headers);
    },
    respond: (ctx, headers) => {
      if (preflights.has(ctx)) return;
      for (const name of Object.keys(headers)) {
        if (name.toLowerCase().startsWith('access-control-')) delete headers[name];
      }
      const policy = ctx.route ? policies.get(ctx.route.route.id) : undefined;
      if (!policy) return;
      if (!policy.anyOrigin) appendVary(headers, 'Origin');
      const origin = ctx.req.headers.origin;
      if (typeof origin !== 'string' || !allows(policy, origin)) return;
      headers['access-control-allow-origin'] = policy.anyOrigin ? '*' : origin;
      if (policy.credentials) headers['access-control-allow-credentials'] = 'true';
    },
  };
}

function compile(routeId: string, cors: CorsPolicy): CompiledCors {
  const anyOrigin = cors.origins.includes('*');
  if (anyOrigin && cors.credentials) {
    // Fetch §3.2.5: browsers refuse `*` with credentials; the manifest must name the origins.
    throw new RampartError('GW_ERR_CORS_CONFIG', 'CORS "*" cannot be combined with credentials', {
      detail: { route: routeId },
    });
  }
  return {
    anyOrigin,
    origins: new Set(cors.origins),
    credentials: cors.credentials,
    headers: new Set(cors.headers.map((h) => h.toLowerCase())),
    maxAge: String(cors.maxAgeSeconds),
  };
}

/** Exact, case-sensitive comparison of the serialized origin (Fetch §3.2.5): never a prefix or pattern. */
function allows(policy: CompiledCors, origin: string): boolean {
  return policy.anyOrigin || policy.origins.has(origin);
}

function requestedHeaders(value: string | undefined): string[] {
  if (!value) return [];
  const out: string[] = [];
  for (const part of value.split(',', MAX_REQUESTED_HEADERS)) {
    const name = part.trim().toLowerCase();
    if (TOKEN.test(name)) out.push(name);
  }
  return out;
}

function appendVary(headers: OutgoingHttpHeaders, field: string): void {
  const existing = headers.vary;
  if (existing === undefined) {
    headers.vary = field;
    return;
  }
  const text = Array.isArray(existing) ? existing.join(', ') : String(existing);
  const tokens = text.split(',').map((t) => t.trim().toLowerCase());
  if (tokens.includes('*') || tokens.includes(field.toLowerCase())) return;
  headers.vary = `${text}, ${field}`;
}
