import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { openClientSecret } from './clients.ts';
import type { Sealer } from './sealing.ts';
import type { IdentityStore } from './store/store.ts';

/** Scopes oidc-provider itself knows (provider.ts OIDC_SCOPES; repeated here to avoid an import cycle). */
const OIDC_SCOPE_SET: ReadonlySet<string> = new Set(['openid', 'offline_access', 'profile']);

/** oidc-provider models whose artifacts belong to a grant (revoked with it). */
const GRANTABLE: ReadonlySet<string> = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

export interface AdapterOptions {
  store: IdentityStore;
  kek: Sealer;
  now?: () => number;
  /**
   * Called when a second redemption of a code or refresh token lost the race (or came later): the grant
   * has already been revoked. For audit; never receives the artifact's id (for opaque tokens the id is
   * the token).
   */
  onReuse?: (model: string, grantId: string | null) => void;
}

/**
 * oidc-provider's storage adapter over the identity store. One adapter per model name; the `Client`
 * model reads Rampart's client registry (disabled clients do not exist for the protocol; the secret
 * is unsealed only here, when the provider authenticates the client).
 *
 * `consume` is where replay protection lives: oidc-provider reads a code or refresh token, checks it,
 * then consumes it, so two concurrent redemptions both pass the check. The store's consume is atomic;
 * the loser gets `invalid_grant` and the grant is revoked (RFC 6749 §4.1.2: a code used twice revokes
 * what it issued; RFC 9700 §4.14.2: refresh token reuse revokes the grant).
 */
export function createAdapterFactory(options: AdapterOptions): (model: string) => Adapter {
  const { store, kek } = options;
  const now = options.now ?? Date.now;

  const clientAdapter: Adapter = {
    async find(id) {
      const client = await store.findClient(id);
      if (!client || client.disabled) return undefined;
      // `rampart_kind` is Rampart's bookkeeping, not client metadata oidc-provider knows. The scope
      // list splits in two: OpenID Connect scopes stay `scope` (oidc-provider checks them against its
      // own list), API scopes go to `rampart_api_scopes`, read by the resource-server lookup.
      const { rampart_kind: _kind, scope, ...rest } = client.metadata;
      const scopes = typeof scope === 'string' && scope !== '' ? scope.split(' ') : [];
      const oidcScopes = scopes.filter((s) => OIDC_SCOPE_SET.has(s));
      const metadata = {
        ...rest,
        client_id: client.clientId,
        ...(oidcScopes.length > 0 ? { scope: oidcScopes.join(' ') } : {}),
        rampart_api_scopes: scopes.filter((s) => !OIDC_SCOPE_SET.has(s)).join(' '),
      } as AdapterPayload;
      if (client.secret) metadata.client_secret = openClientSecret(kek, client.clientId, client.secret);
      return metadata;
    },
    // Clients are managed through the admin API (clients.ts), never through the protocol.
    upsert: refuse,
    consume: refuse,
    destroy: refuse,
    findByUid: async () => undefined,
    findByUserCode: async () => undefined,
    revokeByGrantId: async () => undefined,
  };

  return (model: string): Adapter => {
    if (model === 'Client') return clientAdapter;
    return {
      async upsert(id, payload, expiresIn) {
        await store.upsertArtifact({
          model,
          id,
          payload: payload as Record<string, unknown>,
          grantId: GRANTABLE.has(model) && typeof payload.grantId === 'string' ? payload.grantId : null,
          uid: model === 'Session' && typeof payload.uid === 'string' ? payload.uid : null,
          userCode: typeof payload.userCode === 'string' ? payload.userCode : null,
          expiresAt: typeof expiresIn === 'number' ? now() + expiresIn * 1000 : null,
        });
      },
      async find(id) {
        return (await store.findArtifact(model, id, now())) as AdapterPayload | undefined;
      },
      async findByUid(uid) {
        return (await store.findArtifactByUid(model, uid, now())) as AdapterPayload | undefined;
      },
      async findByUserCode(userCode) {
        return (await store.findArtifactByUserCode(model, userCode, now())) as AdapterPayload | undefined;
      },
      async consume(id) {
        const { consumed, grantId } = await store.consumeArtifact(model, id, now());
        if (!consumed) {
          if (grantId) await store.revokeGrant(grantId, true);
          options.onReuse?.(model, grantId);
          throw new errors.InvalidGrant('grant source already used');
        }
      },
      async destroy(id) {
        await store.destroyArtifact(model, id);
      },
      async revokeByGrantId(grantId) {
        // oidc-provider destroys the Grant itself when its revokeGrantPolicy says so.
        await store.revokeGrant(grantId, false);
      },
    };
  };
}

async function refuse(): Promise<never> {
  throw new Error('clients are managed through the Rampart admin API');
}
