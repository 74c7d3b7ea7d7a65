import { deny } from '../deny.ts';
import { Router } from '../router.ts';
import type { GatewayDeps, Stage } from '../stage.ts';

/** Routing: the canonical path and method select a manifest route; nothing else is reachable (deny by default). */
export function createRouting(deps: GatewayDeps): Stage {
  const router = new Router(deps.manifest);
  return {
    name: 'route',
    request: (ctx) => {
      const found = router.match(ctx.req.method ?? '', ctx.path);
      if (found.kind === 'match') {
        ctx.route = found.route;
        return;
      }
      if (found.kind === 'method') {
        throw deny(405, 'GW_ERR_METHOD', { reason: 'method_not_allowed', headers: { allow: found.allow.join(', ') } });
      }
      throw deny(404, 'GW_ERR_NO_ROUTE', { reason: 'no_route' });
    },
  };
}
