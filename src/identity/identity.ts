import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type Provider from 'oidc-provider';
import type { Logger } from '../core/logger.ts';
import { type Accounts, createAccounts } from './accounts.ts';
import { createAdminApi } from './admin-api.ts';
import { AUDIT_EVENTS, type AuditEmitter, tokenRef } from './audit.ts';
import { type ClientRegistry, createClientRegistry } from './clients.ts';
import { IDENTITY_DEFAULTS, IDENTITY_NAMES, THROTTLE_DEFAULTS } from './defaults.ts';
import { IDP_ERRORS, idpError } from './errors.ts';
import { formTargetsOf, issuerHsts, pageCsp, scriptHashesOf, setBaseHeaders } from './http-security.ts';
import { createInteractions } from './interactions.ts';
import { STYLESHEET, STYLESHEET_PATH } from './pages/html.ts';
import { errorPage, PAGE_ERRORS } from './pages/interaction-pages.ts';
import { createProviderViews } from './pages/provider-views.ts';
import { type Argon2Params, createPasswordHasher } from './passwords/argon2.ts';
import { createPasswordPolicy } from './passwords/policy.ts';
import { ADMIN_ROLE, ADMIN_SCOPE, createProvider, OIDC_SCOPES, type ProviderTtl } from './provider.ts';
import type { Sealer } from './sealing.ts';
import { ensureKeys, providerJwks, type RotationResult, rotateKeys } from './signing-keys.ts';
import type { IdentityStore } from './store/store.ts';
import { createFailureLimiter, createThrottle, type ThrottlePolicy } from './throttle.ts';

export interface IdentityOptions {
  /** Exact issuer (manifest `identity.builtin.issuer`, default `http://127.0.0.1:<port>`). */
  issuer: string;
  /** HSTS `max-age` when the issuer is https (manifest `gateway.hsts.maxAge`; default one year). */
  hstsMaxAgeSeconds?: number;
  /** The API audience (manifest `identity.audience`). */
  audience: string;
  /** Every scope the manifest's routes require: what API tokens may carry. */
  apiScopes: readonly string[];
  store: IdentityStore;
  kek: Sealer;
  logger: Logger;
  audit: AuditEmitter;
  ttl?: Partial<ProviderTtl>;
  now?: () => number;
  /** How often to look for a key set changed elsewhere (ms); 0 disables. */
  keyPollIntervalMs?: number;
  /** How often to delete expired artifacts (ms); 0 disables. */
  purgeIntervalMs?: number;
  /** Brute-force throttling (default THROTTLE_DEFAULTS; rules given here replace the defaults' ones). */
  throttle?: Partial<ThrottlePolicy>;
  /** argon2id parameters (default ARGON2_DEFAULTS; never below OWASP's minimum in production). */
  argon2?: Partial<Argon2Params>;
  /**
   * Where to write the one-time bootstrap token while no administrator exists (mode 0600, in the
   * identity's data directory). It lets `rampart users add --role admin` create the first
   * administrator; the file is deleted once one exists. Undefined: no bootstrap.
   */
  bootstrapFile?: string;
}

/** A running identity provider (without its listener: see listen.ts). */
export interface Identity {
  readonly issuer: string;
  readonly audience: string;
  /** Resource indicator of the admin API (`<issuer>/admin`). */
  readonly adminAudience: string;
  /** The request handler for the issuer's listener. */
  readonly handler: RequestListener;
  readonly clients: ClientRegistry;
  readonly accounts: Accounts;
  /** The oidc-provider instance serving right now (replaced when the key set changes). */
  provider(): Provider;
  /** Rotates the signing keys (see signing-keys.ts) and starts signing with the new current key. */
  rotateKeys(options?: { force?: boolean }): Promise<RotationResult>;
  /** Re-reads the key set; true when it changed and the provider was rebuilt. */
  reloadKeys(): Promise<boolean>;
  /** Stops timers. The store is the caller's to close. */
  close(): Promise<void>;
}

/** Random keys the provider makes once and keeps sealed in its store. */
const KEYS = {
  cookie: { setting: 'cookie_key_v1', context: 'rampart/identity/cookie-key/v1' },
  csrf: { setting: 'csrf_key_v1', context: 'rampart/identity/csrf-key/v1' },
} as const;
/** Headers a client could use to make the provider believe it was reached under another name. */
const FORWARDING_HEADERS = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
];

/**
 * Assembles the identity provider: signing keys (created on first start), cookie keys, the
 * oidc-provider instance, Rampart's pages and admin API, and the request handler in front of them.
 *
 * The handler makes the issuer canonical: a request whose Host is not the issuer's host is refused
 * (421), forwarding headers from clients are dropped, and when the issuer is https but the listener is
 * plain loopback HTTP behind a TLS terminator, the provider is told so (oidc-provider's `proxy` with a
 * fixed `X-Forwarded-Proto`). Every URL in discovery is therefore built from the issuer, never from
 * what a client sent (a Host-header attack cannot redirect endpoints).
 */
export async function createIdentity(options: IdentityOptions): Promise<Identity> {
  const { store, kek, logger, audit } = options;
  const now = options.now ?? Date.now;
  const issuerUrl = new URL(options.issuer);
  if (options.issuer.endsWith('/') || issuerUrl.search || issuerUrl.hash) {
    throw idpError(IDP_ERRORS.config, 'the issuer must not end with / or carry a query or fragment', { status: 500 });
  }
  const https = issuerUrl.protocol === 'https:';
  const hsts = issuerHsts(issuerUrl, options.hstsMaxAgeSeconds);
  const prefix = issuerUrl.pathname === '/' ? '' : issuerUrl.pathname;
  const expectedHost = issuerUrl.host.toLowerCase();
  const adminAudience = `${options.issuer}/admin`;

  const storedKey = async (which: keyof typeof KEYS) => {
    const { setting, context } = KEYS[which];
    return kek.unwrap(await store.initSetting(setting, kek.wrap(randomBytes(32), context)), context);
  };
  const cookieKey = await storedKey('cookie');
  const cookieKeys = [cookieKey.toString('base64url')];
  cookieKey.fill(0);
  const csrfKey = await storedKey('csrf');

  const clients = createClientRegistry(store, kek, now);
  const throttlePolicy: ThrottlePolicy = { ...THROTTLE_DEFAULTS, ...options.throttle };
  const deviceCodes = createFailureLimiter(store, throttlePolicy.deviceCode, now);
  const deviceKey = (req: IncomingMessage) => `device:${req.socket.remoteAddress ?? 'unknown'}`;
  const views = createProviderViews(prefix, { onWrongDeviceCode: (ctx) => deviceCodes.failed(deviceKey(ctx.req)) });
  const hasher = createPasswordHasher(options.argon2);
  const throttle = createThrottle(store, throttlePolicy, now);
  const accounts = createAccounts({ store, hasher, policy: createPasswordPolicy(), throttle, audit, now });
  // Make the dummy hash now: the first login of an unknown user must not pay for it (timing).
  await hasher.verifyDummy('warm-up');
  await clients.ensurePublic({
    clientId: IDENTITY_NAMES.cliClientId,
    kind: 'native',
    name: 'Rampart CLI',
    redirectUris: [IDENTITY_NAMES.cliRedirectUri],
    scopes: [...OIDC_SCOPES, ...options.apiScopes, ADMIN_SCOPE],
  });

  // Bootstrap: while no administrator exists, a random token in a file only the operator reads.
  let bootstrapHash: Buffer | null = null;
  const hasAdmin = async () => (await accounts.list()).some((a) => !a.disabled && a.roles.includes(ADMIN_ROLE));
  if (options.bootstrapFile && !(await hasAdmin())) {
    const token = randomBytes(32).toString('base64url');
    rmSync(options.bootstrapFile, { force: true });
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_SYNC;
    const fd = openSync(options.bootstrapFile, flags, 0o600);
    try {
      writeSync(fd, `${token}\n`);
    } finally {
      closeSync(fd);
    }
    bootstrapHash = createHash('sha256').update(token).digest();
    logger.warn(
      { file: options.bootstrapFile },
      'no administrator yet: `rampart users add <name> --role admin` creates one',
    );
  }

  let keysVersion = -1;
  let provider: Provider | null = null;
  let callback: RequestListener | null = null;

  const build = async () => {
    const set = await ensureKeys(store, kek, IDENTITY_DEFAULTS.signingAlg, now());
    if (set.version === keysVersion && provider) return false;
    const next = createProvider({
      issuer: options.issuer,
      audience: options.audience,
      adminAudience,
      apiScopes: options.apiScopes,
      store,
      kek,
      jwks: providerJwks(kek, set.keys),
      cookieKeys,
      findAccount: (id) => store.findAccount(id),
      views,
      ...(options.ttl ? { ttl: options.ttl } : {}),
      now,
      onReuse: (model, grantId) =>
        audit.emit({
          type: AUDIT_EVENTS.tokenReuse,
          reason: model === 'RefreshToken' ? 'refresh_token_reuse' : 'code_reuse',
          ...(grantId ? { subject: tokenRef(grantId) } : {}),
        }),
    });
    if (https) next.proxy = true;
    instrument(next, audit, logger);
    provider = next;
    callback = next.callback() as RequestListener;
    keysVersion = set.version;
    return true;
  };
  await build();

  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number | undefined, fallback: number, fn: () => Promise<unknown>, what: string) => {
    const interval = ms ?? fallback;
    if (interval <= 0) return;
    const timer = setInterval(() => {
      fn().catch((err: unknown) => logger.error({ err }, `${what} failed`));
    }, interval);
    timer.unref();
    timers.push(timer);
  };
  every(
    options.keyPollIntervalMs,
    IDENTITY_DEFAULTS.keyPollInterval * 1000,
    async () => {
      if ((await store.keysVersion()) !== keysVersion && (await build())) logger.info('signing keys reloaded');
    },
    'key reload',
  );
  every(options.purgeIntervalMs, IDENTITY_DEFAULTS.purgeInterval * 1000, () => store.purgeExpired(now()), 'purge');

  const interactions = createInteractions({
    provider: () => provider!,
    accounts,
    store,
    kek,
    throttle,
    audit,
    logger,
    issuer: options.issuer,
    base: prefix,
    adminAudience,
    csrfKey,
    totpIssuer: `Rampart (${issuerUrl.host})`,
    interactionTtl: options.ttl?.interaction ?? IDENTITY_DEFAULTS.interactionTtl,
    now,
  });

  const adminApi = createAdminApi({
    issuer: options.issuer,
    adminAudience,
    accounts,
    clients,
    store,
    audit,
    logger,
    publicKeys: async () => (await store.listKeys()).map((k) => k.publicJwk),
    rotateKeys: (force) => identity.rotateKeys({ force }),
    bootstrapHash: () => bootstrapHash,
    bootstrapDone: async () => {
      if (!bootstrapHash || !(await hasAdmin())) return;
      bootstrapHash = null;
      if (options.bootstrapFile) rmSync(options.bootstrapFile, { force: true });
    },
  });

  const handler: RequestListener = (req: IncomingMessage, res: ServerResponse) => {
    setBaseHeaders(res, hsts);
    const host = (req.headers.host ?? '').toLowerCase();
    if (host !== expectedHost) {
      // RFC 9110 §15.5.20: this server is not the one for that authority.
      sendJson(res, 421, { error: 'invalid_request' });
      return;
    }
    for (const name of FORWARDING_HEADERS) delete req.headers[name];
    if (https && !(req.socket as TLSSocket).encrypted) req.headers['x-forwarded-proto'] = 'https';

    const original = req.url ?? '/';
    if (prefix) {
      if (original !== prefix && !original.startsWith(`${prefix}/`) && !original.startsWith(`${prefix}?`)) {
        sendJson(res, 404, { error: 'not_found' });
        return;
      }
      (req as IncomingMessage & { originalUrl?: string }).originalUrl = original;
      req.url = original.slice(prefix.length) || '/';
    }
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (path === STYLESHEET_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'public, max-age=3600' });
      res.end(req.method === 'HEAD' ? undefined : STYLESHEET);
      return;
    }
    if (path === '/admin' || path.startsWith('/admin/')) {
      adminApi(req, res, path).catch((err: unknown) => {
        logger.error({ err }, 'admin handler failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
      return;
    }
    if (path === '/device' && req.method === 'POST') {
      // RFC 8628 §5.1: user codes are guessable; an address entering wrong ones waits, then is locked out.
      deviceCodes.waitFor(deviceKey(req)).then(
        (wait) => {
          if (wait === 0) return callback!(req, res);
          res.writeHead(429, {
            'content-type': 'text/html; charset=utf-8',
            'cache-control': 'no-store',
            'retry-after': String(wait),
          });
          res.end(errorPage(prefix, PAGE_ERRORS.tooManyAttempts));
        },
        (err: unknown) => {
          logger.error({ err }, 'device code throttle failed');
          if (!res.headersSent) res.writeHead(500).end();
        },
      );
      return;
    }
    if (path.startsWith('/interaction/')) {
      interactions(req, res, path).catch((err: unknown) => {
        logger.error({ err }, 'interaction handler failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
      return;
    }
    callback!(req, res);
  };

  const identity: Identity = {
    issuer: options.issuer,
    audience: options.audience,
    adminAudience,
    handler,
    clients,
    accounts,
    provider: () => provider!,
    async rotateKeys(rotation = {}) {
      const result = await rotateKeys(store, kek, {
        alg: IDENTITY_DEFAULTS.signingAlg,
        now: now(),
        ...(rotation.force ? { force: true } : {}),
      });
      await build();
      audit.emit({ type: AUDIT_EVENTS.keysRotated, subject: result.current, detail: { next: result.next } });
      return result;
    },
    reloadKeys: build,
    async close() {
      for (const timer of timers) clearInterval(timer);
    },
  };
  return identity;
}

/** Audit events and the CSP of oidc-provider's own pages. */
function instrument(provider: Provider, audit: AuditEmitter, logger: Logger): void {
  provider.use(async (ctx, next) => {
    // Set before the library renders: its form_post page appends the hash of its script to script-src.
    ctx.set('content-security-policy', pageCsp([], ["'none'"]));
    await next();
    const oidc = (
      ctx as {
        oidc?: { route?: string; client?: { grantTypeAllowed(t: string): boolean }; params?: Record<string, unknown> };
      }
    ).oidc;
    // RFC 6749 §5.2: a client using a grant type it is not registered for is `unauthorized_client`;
    // oidc-provider answers `invalid_request`. Decided from the facts, not from the message text.
    const grantType = oidc?.params?.['grant_type'];
    const body = ctx.body as { error?: string } | undefined;
    if (
      oidc?.route === 'token' &&
      ctx.status === 400 &&
      body?.error === 'invalid_request' &&
      typeof grantType === 'string' &&
      oidc.client &&
      !oidc.client.grantTypeAllowed(grantType)
    ) {
      body.error = 'unauthorized_client';
    }
    if (!/html/.test(ctx.response.type ?? '')) return;
    const params = (ctx as { oidc?: { params?: Record<string, unknown> } }).oidc?.params ?? {};
    const hashes = scriptHashesOf(ctx.response.get('content-security-policy'));
    ctx.set(
      'content-security-policy',
      pageCsp(formTargetsOf(params['redirect_uri'], params['post_logout_redirect_uri']), hashes),
    );
  });
  provider.on('access_token.issued', (token) =>
    audit.emit({
      type: AUDIT_EVENTS.tokenIssued,
      clientId: token.clientId,
      ...(token.accountId ? { subject: token.accountId } : {}),
      detail: { kind: 'access_token', ref: tokenRef(token.jti), scope: token.scope ?? '' },
    }),
  );
  provider.on('client_credentials.issued', (token) =>
    audit.emit({
      type: AUDIT_EVENTS.tokenIssued,
      clientId: token.clientId,
      subject: token.clientId,
      detail: { kind: 'client_credentials', ref: tokenRef(token.jti), scope: token.scope ?? '' },
    }),
  );
  provider.on('refresh_token.saved', (token) =>
    audit.emit({
      type: AUDIT_EVENTS.tokenIssued,
      clientId: token.clientId,
      subject: token.accountId,
      detail: { kind: 'refresh_token', ref: tokenRef(token.jti) },
    }),
  );
  provider.on('refresh_token.destroyed', (token) =>
    audit.emit({
      type: AUDIT_EVENTS.tokenRevoked,
      clientId: token.clientId,
      subject: token.accountId,
      detail: { kind: 'refresh_token', ref: tokenRef(token.jti) },
    }),
  );
  provider.on('grant.revoked', (_ctx, grantId) =>
    audit.emit({ type: AUDIT_EVENTS.grantRevoked, subject: tokenRef(grantId) }),
  );
  provider.on('end_session.success', (ctx) =>
    audit.emit({ type: AUDIT_EVENTS.logout, ...(ctx.oidc.client ? { clientId: ctx.oidc.client.clientId } : {}) }),
  );
  provider.on('server_error', (_ctx, err) => logger.error({ err }, 'identity provider error'));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(text);
}
