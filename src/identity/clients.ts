import { randomBytes } from 'node:crypto';
import { IDP_ERRORS, idpError } from './errors.ts';
import type { Sealer } from './sealing.ts';
import type { ClientRecord, IdentityStore } from './store/store.ts';

/** RFC 8628 grant type. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/**
 * The three kinds of client Rampart registers; each fixes the grant types and how the client
 * authenticates, so no combination the security profile forbids can be registered (RFC 9700):
 *
 * - `web`: a server-side web application. Confidential (client secret), authorization code + PKCE and
 *   refresh tokens, redirect URIs `https` only.
 * - `native`: a CLI, desktop or mobile app (RFC 8252). Public (no secret: it could not keep one),
 *   authorization code + PKCE, device flow (RFC 8628) and refresh tokens; redirect URIs on the
 *   loopback interface over http (any port, RFC 8252 §7.3), a claimed https URI, or a private-use
 *   scheme in reverse-domain form (§7.1).
 * - `machine`: a service calling APIs on its own behalf. Confidential, client credentials only, no
 *   redirect URIs, no refresh tokens, no user.
 */
export const CLIENT_KINDS = ['web', 'native', 'machine'] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

export interface ClientInput {
  /** Default: a random id. */
  clientId?: string;
  kind: ClientKind;
  name?: string;
  redirectUris?: readonly string[];
  postLogoutRedirectUris?: readonly string[];
  /** Scopes the client may request (OIDC scopes and API scopes); anything else is refused or dropped. */
  scopes: readonly string[];
}

/** What the admin API shows of a client: never its secret. */
export interface ClientView {
  clientId: string;
  kind: ClientKind;
  name: string | null;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  scopes: string[];
  grantTypes: string[];
  confidential: boolean;
  disabled: boolean;
  createdAt: number;
  updatedAt: number;
}

const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;
/** RFC 8252 §7.1: a private-use scheme must be a reverse domain name (contain a dot). */
const PRIVATE_SCHEME = /^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/;
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '[::1]']);
const MAX_URIS = 10;
const MAX_URI_LENGTH = 2048;
const MAX_SCOPES = 50;
const MAX_NAME = 100;
/** 256-bit secrets: beyond guessing, and oidc-provider compares them in constant time. */
const SECRET_BYTES = 32;

function invalid(field: string, message: string): never {
  throw idpError(IDP_ERRORS.invalidClient, message, { detail: { field } });
}

function checkRedirectUri(kind: ClientKind, text: string, field: string): string {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_URI_LENGTH)
    invalid(field, 'invalid redirect URI');
  const url = URL.parse(text);
  if (!url) invalid(field, 'invalid redirect URI');
  // RFC 9700 §4.1.3 / RFC 6749 §3.1.2: exact registration, no fragment; we also refuse credentials in
  // the URI and require the written form to be the canonical one, so comparison is byte-exact.
  if (url.hash !== '' || text.includes('#')) invalid(field, 'a redirect URI must not have a fragment');
  if (url.username !== '' || url.password !== '') invalid(field, 'a redirect URI must not carry credentials');
  if (url.href !== text) invalid(field, 'a redirect URI must be written in canonical form');
  if (kind === 'web') {
    if (url.protocol !== 'https:') invalid(field, 'web clients redirect over https only');
    return text;
  }
  if (url.protocol === 'http:') {
    // RFC 8252 §8.3: use the loopback IP literal, not `localhost` (which DNS or hosts files may map elsewhere).
    if (!LOOPBACK_HOSTS.has(url.host.replace(/:\d+$/, ''))) {
      invalid(field, 'native clients use http only on the loopback address 127.0.0.1 or [::1]');
    }
    return text;
  }
  if (url.protocol === 'https:') {
    if (LOOPBACK_HOSTS.has(url.hostname) || url.hostname === 'localhost') invalid(field, 'loopback redirects use http');
    return text;
  }
  if (!PRIVATE_SCHEME.test(url.protocol)) invalid(field, 'a private-use scheme must be a reverse domain name');
  return text;
}

function checkScopes(scopes: readonly string[]): string[] {
  if (!Array.isArray(scopes) || scopes.length > MAX_SCOPES) invalid('scopes', 'invalid scopes');
  for (const scope of scopes)
    if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) invalid('scopes', 'invalid scope');
  return [...new Set(scopes)];
}

function grantTypesOf(kind: ClientKind): string[] {
  if (kind === 'machine') return ['client_credentials'];
  if (kind === 'native') return ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT];
  return ['authorization_code', 'refresh_token'];
}

/** Validates a client and builds its oidc-provider metadata. Pure; throws IDP_ERR_INVALID_CLIENT. */
export function clientMetadata(input: ClientInput): Record<string, unknown> {
  if (!(CLIENT_KINDS as readonly string[]).includes(input.kind)) invalid('kind', 'unknown client kind');
  const name = input.name ?? null;
  if (name !== null && (typeof name !== 'string' || name.length > MAX_NAME || /[\p{Cc}]/u.test(name))) {
    invalid('name', 'invalid client name');
  }
  const redirects = input.redirectUris ?? [];
  const postLogout = input.postLogoutRedirectUris ?? [];
  if (!Array.isArray(redirects) || redirects.length > MAX_URIS) invalid('redirectUris', 'too many redirect URIs');
  if (!Array.isArray(postLogout) || postLogout.length > MAX_URIS) invalid('postLogoutRedirectUris', 'too many URIs');
  if (input.kind === 'machine' && (redirects.length > 0 || postLogout.length > 0)) {
    invalid('redirectUris', 'machine clients have no redirect URIs');
  }
  if (input.kind === 'web' && redirects.length === 0) invalid('redirectUris', 'web clients need a redirect URI');
  const scopes = checkScopes(input.scopes);
  const confidential = input.kind !== 'native';
  return {
    ...(name === null ? {} : { client_name: name }),
    application_type: input.kind === 'native' ? 'native' : 'web',
    token_endpoint_auth_method: confidential ? 'client_secret_basic' : 'none',
    grant_types: grantTypesOf(input.kind),
    response_types: input.kind === 'machine' ? [] : ['code'],
    redirect_uris: redirects.map((uri, i) => checkRedirectUri(input.kind, uri, `redirectUris[${i}]`)),
    post_logout_redirect_uris: postLogout.map((uri, i) =>
      checkRedirectUri(input.kind, uri, `postLogoutRedirectUris[${i}]`),
    ),
    scope: scopes.join(' '),
    id_token_signed_response_alg: 'ES256',
    rampart_kind: input.kind,
  };
}

/** The key-wrapping context of a client secret: a sealed secret only opens for its own client id. */
function secretContext(clientId: string): string {
  return `rampart/identity/client-secret/v1/${clientId}`;
}

function newSecret(kek: Sealer, clientId: string): { secret: string; sealed: Buffer } {
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  return { secret, sealed: kek.wrap(Buffer.from(secret, 'utf8'), secretContext(clientId)) };
}

/** Unseals a client secret (only the provider's client lookup needs it in clear). */
export function openClientSecret(kek: Sealer, clientId: string, sealed: Buffer): string {
  const bytes = kek.unwrap(sealed, secretContext(clientId));
  try {
    return bytes.toString('utf8');
  } finally {
    bytes.fill(0);
  }
}

export function clientView(record: ClientRecord): ClientView {
  const m = record.metadata;
  const kind = (m['rampart_kind'] as ClientKind | undefined) ?? 'web';
  return {
    clientId: record.clientId,
    kind,
    name: typeof m['client_name'] === 'string' ? m['client_name'] : null,
    redirectUris: (m['redirect_uris'] as string[] | undefined) ?? [],
    postLogoutRedirectUris: (m['post_logout_redirect_uris'] as string[] | undefined) ?? [],
    scopes: typeof m['scope'] === 'string' && m['scope'] !== '' ? m['scope'].split(' ') : [],
    grantTypes: (m['grant_types'] as string[] | undefined) ?? [],
    confidential: m['token_endpoint_auth_method'] !== 'none',
    disabled: record.disabled,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
}

/** The client registry: what `rampart clients add|list|rotate-secret` do through the admin API. */
export interface ClientRegistry {
  /** Registers a client; returns its secret (once, for confidential clients) — it is never shown again. */
  add(input: ClientInput): Promise<{ client: ClientView; secret: string | null }>;
  list(): Promise<ClientView[]>;
  get(clientId: string): Promise<ClientView | undefined>;
  /** A new secret replaces the old one at once (the old one stops working). */
  rotateSecret(clientId: string): Promise<string>;
  setDisabled(clientId: string, disabled: boolean): Promise<void>;
  /**
   * Registers a public client, or brings an existing one's metadata up to date (the provider's own
   * CLI client, whose scopes follow the manifest). Never for confidential clients (no secret to show).
   */
  ensurePublic(input: ClientInput & { clientId: string }): Promise<ClientView>;
}

export function createClientRegistry(store: IdentityStore, kek: Sealer, now: () => number = Date.now): ClientRegistry {
  const registry: ClientRegistry = {
    async add(input) {
      const clientId = input.clientId ?? randomBytes(12).toString('base64url');
      if (typeof clientId !== 'string' || !CLIENT_ID.test(clientId)) invalid('clientId', 'invalid client id');
      const metadata = clientMetadata(input);
      const confidential = metadata['token_endpoint_auth_method'] !== 'none';
      const issued = confidential ? newSecret(kek, clientId) : null;
      const at = now();
      const record: ClientRecord = {
        clientId,
        metadata,
        secret: issued?.sealed ?? null,
        disabled: false,
        createdAt: at,
        updatedAt: at,
      };
      await store.createClient(record);
      return { client: clientView(record), secret: issued?.secret ?? null };
    },
    async list() {
      return (await store.listClients()).map(clientView);
    },
    async get(clientId) {
      const record = await store.findClient(clientId);
      return record ? clientView(record) : undefined;
    },
    async rotateSecret(clientId) {
      const record = await store.findClient(clientId);
      if (!record) throw idpError(IDP_ERRORS.notFound, 'no such client', { status: 404 });
      if (record.metadata['token_endpoint_auth_method'] === 'none')
        invalid('clientId', 'public clients have no secret');
      const issued = newSecret(kek, clientId);
      await store.updateClient(clientId, { secret: issued.sealed });
      return issued.secret;
    },
    async ensurePublic(input) {
      const metadata = clientMetadata(input);
      if (metadata['token_endpoint_auth_method'] !== 'none') invalid('kind', 'only public clients are ensured');
      const existing = await store.findClient(input.clientId);
      if (!existing) return (await registry.add(input)).client;
      await store.updateClient(input.clientId, { metadata });
      return clientView((await store.findClient(input.clientId))!);
    },
    async setDisabled(clientId, disabled) {
      if (!(await store.updateClient(clientId, { disabled }))) {
        throw idpError(IDP_ERRORS.notFound, 'no such client', { status: 404 });
      }
    },
  };
  return registry;
}
