import { deny } from '../deny.ts';
import type { Stage } from '../stage.ts';

/**
 * Authorization: the route's required scopes (all or any) and roles (any one) against the verified
 * token. A machine token (client credentials) has no roles of a user, so a role requirement keeps machines out.
 */
export function createAuthorize(): Stage {
  return {
    name: 'authorize',
    request: (ctx) => {
      const auth = ctx.route?.route.auth;
      if (!auth || auth.kind === 'none') return;
      const identity = ctx.identity;
      if (!identity) throw deny(401, 'GW_ERR_NO_TOKEN', { reason: 'no_identity' }); // unreachable by order; fail closed
      const has = (scope: string) => identity.scopes.has(scope);
      const scopesOk =
        auth.scopes.length === 0 || (auth.scopeMatch === 'all' ? auth.scopes.every(has) : auth.scopes.some(has));
      if (!scopesOk) {
        throw deny(403, 'GW_ERR_INSUFFICIENT_SCOPE', {
          reason: 'missing_scope',
          headers: {
            'www-authenticate': `Bearer realm="rampart", error="insufficient_scope", scope="${auth.scopes.join(' ')}"`,
          },
        });
      }
      if (auth.roles.length > 0 && (identity.machine || !auth.roles.some((role) => identity.roles.has(role)))) {
        throw deny(403, 'GW_ERR_FORBIDDEN', { reason: 'missing_role' });
      }
    },
  };
}
