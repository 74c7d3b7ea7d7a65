import type { RateLimit, RateLimitKey } from '../../config/model.ts';
import type { RequestContext } from '../context.ts';
import { GATEWAY_LIMITS } from '../defaults.ts';
import { deny } from '../deny.ts';
import { MemoryRateLimitStore } from '../rate-limit/memory-store.ts';
import type { GatewayDeps, Stage } from '../stage.ts';

/**
 * Rate limiting, in two slots of the pipeline: limits keyed by the client address or a header run
 * before authentication (so floods never reach signature checks), limits keyed by the token's subject or
 * client run after authorization (they need the verified identity, and a refused request must not spend
 * the caller's quota). Each route has its own store, so routes never share a budget by accident.
 *
 * Responses carry `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers) and, on 429,
 * `Retry-After` (RFC 9110 §10.2.3).
 */
export function createRateLimit(slot: 'pre-auth' | 'post-auth') {
  return (deps: GatewayDeps): Stage => {
    const stores = new Map<string, MemoryRateLimitStore>();
    const inSlot = (key: RateLimitKey) =>
      slot === 'pre-auth'
        ? key.kind === 'ip' || key.kind === 'header'
        : key.kind === 'subject' || key.kind === 'client';
    for (const route of deps.manifest.routes) {
      if (route.rateLimit && inSlot(route.rateLimit.key)) {
        stores.set(route.id, new MemoryRateLimitStore(GATEWAY_LIMITS.rateLimitMaxKeys));
      }
    }
    const decisions = new WeakMap<RequestContext, { policy: RateLimit; remaining: number; resetMs: number }>();

    return {
      name: `ratelimit-${slot}`,
      request: (ctx) => {
        const limit = ctx.route?.route.rateLimit;
        const store = ctx.route ? stores.get(ctx.route.route.id) : undefined;
        if (!limit || !store) return;
        const key = keyOf(ctx, limit.key);
        const decision = store.take(key, limit, deps.now());
        decisions.set(ctx, { policy: limit, remaining: decision.remaining, resetMs: decision.resetMs });
        deps.metrics.rateLimit.inc({ route: ctx.route!.route.id, decision: decision.allowed ? 'allow' : 'deny' });
        if (!decision.allowed) {
          throw deny(429, 'GW_ERR_RATE_LIMITED', {
            reason: 'rate_limited',
            headers: { 'retry-after': String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))) },
          });
        }
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

function keyOf(ctx: RequestContext, key: RateLimitKey): string {
  switch (key.kind) {
    case 'ip':
      return ctx.clientIp;
    case 'header': {
      const value = ctx.req.headers[key.name];
      return typeof value === 'string' ? value.slice(0, 256) : '';
    }
    case 'subject':
      return ctx.identity?.subject ?? '';
    case 'client':
      return ctx.identity?.clientId ?? ctx.identity?.subject ?? '';
  }
}
