import type { JWK } from 'jose';
import Provider, {
  type Account,
  type ClientAuthMethod,
  type Configuration,
  errors,
  type KoaContextWithOIDC,
  type ResourceServer,
} from 'oidc-provider';
import { createAdapterFactory } from './adapter.ts';
import { IDENTITY_DEFAULTS } from './defaults.ts';
import type { ProviderViews } from './pages/provider-views.ts';
import type { Sealer } from './sealing.ts';
import type { AccountRecord, IdentityStore } from './store/store.ts';

/** The scope that opens the admin API; only accounts with the `admin` role are ever granted it. */
export const ADMIN_SCOPE = 'identity:admin';
/** The role that may use the admin API. */
export const ADMIN_ROLE = 'admin';
/** OpenID Connect scopes the provider knows (besides API scopes). */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile'] as const;

export interface ProviderTtl {
  accessToken: number;
  idToken: number;
  authorizationCode: number;
  refreshToken: number;
  grant: number;
  interaction: number;
  session: number;
  deviceCode: number;
}

export interface ProviderOptions {
  /** Exact issuer identifier (scheme, host, port, optional path; no trailing slash). */
  issuer: string;
  /** The API audience (manifest `identity.audience`): the resource every API token is for. */
  audience: string;
  /** Resource indicator of the provider's own admin API. */
  adminAudience: string;
  /** Scopes the API knows (every scope the manifest's routes require). */
  apiScopes: readonly string[];
  store: IdentityStore;
  kek: Sealer;
  /** Private signing keys, current first (signing-keys.ts providerJwks). */
  jwks: { keys: JWK[] };
  /** Keys that sign the provider's cookies (newest first). */
  cookieKeys: string[];
  findAccount(id: string): Promise<AccountRecord | undefined>;
  views: ProviderViews;
  ttl?: Partial<ProviderTtl>;
  now?: () => number;
  onReuse?: (model: string, grantId: string | null) => void;
}

/** Client metadata property (set by adapter.ts) with the API scopes a client may request. */
const API_SCOPES_PROPERTY = 'rampart_api_scopes';

function apiScopesOf(client: object): string[] {
  const value =
    (client as Record<string, unknown>)['rampartApiScopes'] ?? (client as Record<string, unknown>)[API_SCOPES_PROPERTY];
  return typeof value === 'string' && value !== '' ? value.split(' ') : [];
}

/** Asymmetric algorithms only, matching the gateway's allow-list (src/core/access-token.ts). */
const SIGNING_ALGS = ['ES256', 'EdDSA'] as const;

/**
 * Builds the oidc-provider instance with Rampart's profile (RFC 9700, OAuth 2.0 Security BCP):
 *
 * - only `response_type=code`, PKCE with S256 required for every client (oidc-provider refuses
 *   `plain`), redirect URIs matched exactly (never omitted), no implicit or password grant;
 * - refresh tokens rotate on every use; a reused one revokes its grant (oidc-provider, plus the
 *   atomic consume in adapter.ts for concurrent reuse);
 * - client credentials for machine clients, the device authorization grant (RFC 8628) for the CLI;
 * - access tokens are RFC 9068 JWTs for one audience, resolved through resource indicators (RFC 8707):
 *   the API (`audience`) or the admin API; `roles` of the account are added as a claim;
 * - revocation (RFC 7009) and introspection (RFC 7662) for the provider's opaque artifacts (refresh
 *   tokens); JWT access tokens are checked locally by resource servers and expire in minutes;
 * - `devInteractions` off: the pages are Rampart's (interactions.ts); DPoP off until the gateway
 *   verifies proofs (a DPoP-bound token presented as Bearer would lose its binding).
 */
export function createProvider(options: ProviderOptions): Provider {
  const ttl: ProviderTtl = {
    accessToken: IDENTITY_DEFAULTS.accessTokenTtl,
    idToken: IDENTITY_DEFAULTS.idTokenTtl,
    authorizationCode: IDENTITY_DEFAULTS.authorizationCodeTtl,
    refreshToken: IDENTITY_DEFAULTS.refreshTokenTtl,
    grant: IDENTITY_DEFAULTS.grantTtl,
    interaction: IDENTITY_DEFAULTS.interactionTtl,
    session: IDENTITY_DEFAULTS.sessionTtl,
    deviceCode: IDENTITY_DEFAULTS.deviceCodeTtl,
    ...options.ttl,
  };
  const now = options.now ?? Date.now;
  const apiScopes = new Set(options.apiScopes);
  const { audience, adminAudience } = options;

  const base = new URL(options.issuer).pathname.replace(/\/+$/, '');
  const resourceServer = (scopes: string[], aud: string): ResourceServer => ({
    scope: scopes.join(' '),
    audience: aud,
    accessTokenTTL: ttl.accessToken,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  });

  const configuration: Configuration = {
    adapter: createAdapterFactory({
      store: options.store,
      kek: options.kek,
      now,
      ...(options.onReuse ? { onReuse: options.onReuse } : {}),
    }),
    clients: [],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
    // client_secret_jwt (HMAC over a shared secret) adds nothing over Basic for us; private_key_jwt stays.
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'] as ClientAuthMethod[],
    responseTypes: ['code'],
    // No browser-based clients (no `spa` kind): nothing needs cross-origin access to the endpoints.
    clientBasedCORS: () => false,
    pkce: { required: () => true },
    // RFC 9700 §4.1.3 and OAuth 2.1: the redirect_uri is always sent and compared exactly.
    allowOmittingSingleRegisteredRedirectUri: false,
    scopes: [...OIDC_SCOPES],
    claims: { openid: ['sub'], profile: ['preferred_username'] },
    jwks: options.jwks as Configuration['jwks'],
    cookies: {
      keys: options.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    enabledJWA: {
      idTokenSigningAlgValues: [...SIGNING_ALGS],
      userinfoSigningAlgValues: [...SIGNING_ALGS],
      introspectionSigningAlgValues: [...SIGNING_ALGS],
      authorizationSigningAlgValues: [...SIGNING_ALGS],
      requestObjectSigningAlgValues: [...SIGNING_ALGS, 'PS256'],
      clientAuthSigningAlgValues: [...SIGNING_ALGS, 'PS256'],
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        userCodeInputSource: options.views.deviceInput,
        userCodeConfirmSource: options.views.deviceConfirm,
        successSource: options.views.deviceSuccess,
      },
      dPoP: { enabled: false },
      introspection: {
        enabled: true,
        // RFC 7662 §4: the caller must be authorized. A confidential client may introspect its own
        // tokens; public clients cannot authenticate, so they may not introspect at all.
        allowedPolicy: async (_ctx, client, token) =>
          client.clientAuthMethod !== 'none' && token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        // RFC 7009 §2.1: only the client a token was issued to may revoke it.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator, client) => {
          const allowed = new Set(apiScopesOf(client));
          if (indicator === audience) {
            return resourceServer(
              [...apiScopes].filter((s) => allowed.has(s)),
              audience,
            );
          }
          if (indicator === adminAudience) {
            return resourceServer(allowed.has(ADMIN_SCOPE) ? [ADMIN_SCOPE] : [], adminAudience);
          }
          throw new errors.InvalidTarget();
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: options.views.logout,
        postLogoutSuccessSource: options.views.postLogout,
      },
      userinfo: { enabled: true },
    },
    extraClientMetadata: {
      properties: [API_SCOPES_PROPERTY],
      validator: (_ctx, key, value) => {
        if (key === API_SCOPES_PROPERTY && value !== undefined && typeof value !== 'string') {
          throw new errors.InvalidClientMetadata(`${API_SCOPES_PROPERTY} must be a string`);
        }
      },
    },
    findAccount: async (_ctx, sub): Promise<Account | undefined> => {
      const account = await options.findAccount(sub);
      // A disabled account stops existing for the protocol: its refresh tokens and sessions fail.
      if (!account || account.disabled) return undefined;
      return {
        accountId: account.id,
        claims: async () => ({ sub: account.id, preferred_username: account.username }),
      };
    },
    extraTokenClaims: async (_ctx, token) => {
      const accountId = (token as { accountId?: string }).accountId;
      if (!accountId) return undefined;
      const account = await options.findAccount(accountId);
      return { roles: account && !account.disabled ? account.roles : [] };
    },
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: ttl.accessToken,
      ClientCredentials: ttl.accessToken,
      AuthorizationCode: ttl.authorizationCode,
      IdToken: ttl.idToken,
      DeviceCode: ttl.deviceCode,
      Interaction: ttl.interaction,
      Session: ttl.session,
      Grant: ttl.grant,
      // Each rotation starts a fresh idle lifetime, capped by the chain's absolute lifetime (`iiat`:
      // when the first token of the chain was issued).
      RefreshToken: (_ctx, token) => {
        const first = (token as { iiat?: number }).iiat ?? Math.floor(now() / 1000);
        const left = first + ttl.grant - Math.floor(now() / 1000);
        return Math.max(1, Math.min(ttl.refreshToken, left));
      },
    },
    interactions: { url: async (_ctx, interaction) => `${base}/interaction/${interaction.uid}` },
    renderError: options.views.error,
    clockTolerance: 5,
  };

  const provider = new Provider(options.issuer, configuration);
  return provider;
}

/** For views that need it: the route oidc-provider matched. */
export type ProviderContext = KoaContextWithOIDC;
