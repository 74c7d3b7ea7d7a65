import type { RateLimit, RateLimitKey } from '../../config/model.ts';
import { isRampartError } from '../../core/errors.ts';
import type { RequestContext } from '../context.ts';
import { deny } from '../deny.ts';
import { assertGcraPolicy, type GcraDecision } from '../rate-limit/gcra.ts';
import { SharedRateLimitTable } from '../rate-limit/shared-table.ts';
import type { RateLimitBackend } from '../rate-limit/store.ts';
import type { GatewayDeps, Stage } from '../stage.ts';

/** Header values longer than this are cut before keying: a limit key is an identifier, not a payload. */
const MAX_HEADER_KEY_CHARS = 256;

/**
 * Rate limiting, in two slots of the pipeline: limits keyed by the client address or a header run
 * before authentication (so floods never reach signature checks), limits keyed by the token's subject or
 * client run after authorization (they need the verified identity, and a refused request must not spend
 * the caller's quota). The backend keys state by route id and caller, so routes never share a budget.
 *
 * The backend is `deps.rateLimit` (the gateway's shared table, or Redis), so a limit holds for the
 * whole gateway across worker threads and configuration reloads. Without one (an in-process gateway in
 * a test), the stage makes a private table on first use. The memory table answers synchronously and
 * the stage then stays synchronous; Redis answers with a promise.
 *
 * A backend that cannot decide fails closed: 503 with reason `ratelimit_store_down`, never a silent
 * pass (the `local` fallback, when configured, happens inside the Redis backend).
 *
 * Responses carry `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers) and, on 429,
 * `Retry-After` (RFC 9110 §10.2.3).
 */
export function createRateLimit(slot: 'pre-auth' | 'post-auth') {
  return (deps: GatewayDeps): Stage => {
    const inSlot = (key: RateLimitKey) =>
      slot === 'pre-auth'
        ? key.kind === 'ip' || key.kind === 'header'
        : key.kind === 'subject' || key.kind === 'client';
    const limited = new Set<string>();
    for (const route of deps.manifest.routes) {
      if (route.rateLimit && inSlot(route.rateLimit.key)) {
        // Refuse at start a policy the stores cannot compute (rather than 500 on every request).
        assertGcraPolicy(route.rateLimit);
        limited.add(route.id);
      }
    }
    let backend: RateLimitBackend | undefined = deps.rateLimit;
    const decisions = new WeakMap<RequestContext, { policy: RateLimit; remaining: number; resetMs: number }>();

    const apply = (ctx: RequestContext, routeId: string, policy: RateLimit, decision: GcraDecision): void => {
      decisions.set(ctx, { policy, remaining: decision.remaining, resetMs: decision.resetMs });
      deps.metrics.rateLimit.inc({ route: routeId, decision: decision.allowed ? 'allow' : 'deny' });
      if (!decision.allowed) {
        throw deny(429, 'GW_ERR_RATE_LIMITED', {
          reason: 'rate_limited',
          headers: { 'retry-after': String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))) },
        });
      }
    };

    return {
      name: `ratelimit-${slot}`,
      request: (ctx) => {
        const route = ctx.route?.route;
        const policy = route?.rateLimit;
        if (!route || !policy || !limited.has(route.id)) return;
        backend ??= SharedRateLimitTable.create();
        let result: GcraDecision | Promise<GcraDecision>;
        try {
          result = backend.take(route.id, keyOf(ctx, policy.key), policy, deps.now());
        } catch (err) {
          throw undecided(err);
        }
        if (result instanceof Promise) {
          return result.then(
            (decision) => apply(ctx, route.id, policy, decision),
            (err: unknown) => {
              throw undecided(err);
            },
          );
        }
        apply(ctx, route.id, policy, result);
      },
      respond: (ctx, headers) => {
        const d = decisions.get(ctx);
        if (!d) return;
        headers['ratelimit-policy'] =
          `"${ctx.route!.route.id}";q=${d.policy.limit};w=${Math.ceil(d.policy.periodMs / 1000)}`;
        headers.ratelimit = `"${ctx.route!.route.id}";r=${d.remaining};t=${Math.ceil(d.resetMs / 1000)}`;
      },
    };
  };
}

/** A request the backend could not decide: the store is down (503), or a defect (500); never admitted. */
function undecided(err: unknown): Error {
  if (isRampartError(err, 'GW_ERR_RATE_LIMIT_INPUT')) return err;
  return deny(
    503,
    'GW_ERR_RATE_LIMIT_STORE_DOWN',
    { reason: 'ratelimit_store_down', headers: { 'retry-after': '1' } },
    err,
  );
}

function keyOf(ctx: RequestContext, key: RateLimitKey): string {
  switch (key.kind) {
    case 'ip':
      return ctx.clientIp;
    case 'header': {
      const value = ctx.req.headers[key.name];
      return typeof value === 'string' ? value.slice(0, MAX_HEADER_KEY_CHARS) : '';
    }
    case 'subject':
      return ctx.identity?.subject ?? '';
    case 'client':
      return ctx.identity?.clientId ?? ctx.identity?.subject ?? '';
  }
}
