import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import type { Logger } from '../core/logger.ts';
import type { Accounts } from './accounts.ts';
import { AUDIT_EVENTS, type AuditEmitter } from './audit.ts';
import type { ClientInput, ClientRegistry } from './clients.ts';
import { IDP_ERRORS, idpError } from './errors.ts';
import { ADMIN_ROLE, ADMIN_SCOPE } from './provider.ts';
import type { RotationResult } from './signing-keys.ts';
import type { IdentityStore } from './store/store.ts';

/**
 * The admin API (issue 5 §4), under `<issuer>/admin/`, JSON in and out. Only an administrator may use
 * it: a bearer access token issued by this provider for the admin resource (`<issuer>/admin`) with
 * scope `identity:admin`, held by an account that has the `admin` role *now* (re-checked on every
 * call: a demoted or disabled admin's unexpired token stops working), or by a machine client that is
 * still registered with that scope. Tokens come in the Authorization header only: no cookies, so no
 * CSRF. Before the first administrator exists, a one-time bootstrap token (a file only the operator
 * can read) may create exactly that administrator and nothing else.
 *
 *   GET  /admin/users                        POST /admin/users {username, password, roles?, mfaRequired?}
 *   POST /admin/users/:username/disable      POST /admin/users/:username/enable
 *   POST /admin/users/:username/reset-mfa    POST /admin/users/:username/unlock
 *   GET  /admin/clients                      POST /admin/clients {kind, clientId?, name?, redirectUris?, scopes}
 *   POST /admin/clients/:id/rotate-secret    POST /admin/clients/:id/disable | enable
 *   GET  /admin/keys                         POST /admin/keys/rotate {force?}
 */
export interface AdminApiOptions {
  issuer: string;
  adminAudience: string;
  accounts: Accounts;
  clients: ClientRegistry;
  store: IdentityStore;
  audit: AuditEmitter;
  logger: Logger;
  /** The public keys tokens are verified with (the provider's JWKS, read from the store). */
  publicKeys(): Promise<JWK[]>;
  rotateKeys(force: boolean): Promise<RotationResult>;
  /** SHA-256 of the current bootstrap token, or null when bootstrapping is over. */
  bootstrapHash(): Buffer | null;
  /** Called once the first administrator exists. */
  bootstrapDone(): Promise<void>;
}

interface Caller {
  /** Account id, client id, or `bootstrap`. */
  actor: string;
  bootstrap: boolean;
}

const MAX_BODY = 64 * 1024;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

class ApiError extends Error {
  readonly status: number;
  readonly error: string;
  readonly code: string;
  constructor(status: number, error: string, code: string) {
    super(error);
    this.status = status;
    this.error = error;
    this.code = code;
  }
}

const unauthorized = () => new ApiError(401, 'invalid_token', IDP_ERRORS.unauthenticated);
const forbidden = () => new ApiError(403, 'insufficient_scope', IDP_ERRORS.forbidden);

export function createAdminApi(
  options: AdminApiOptions,
): (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void> {
  const { accounts, clients, audit, store } = options;

  const authenticate = async (req: IncomingMessage): Promise<Caller> => {
    const header = req.headers.authorization ?? '';
    const bootstrap = /^Bootstrap ([A-Za-z0-9_-]{20,128})$/.exec(header);
    if (bootstrap) {
      const expected = options.bootstrapHash();
      const given = createHash('sha256').update(bootstrap[1]!).digest();
      if (!expected || !timingSafeEqual(given, expected)) throw unauthorized();
      return { actor: 'bootstrap', bootstrap: true };
    }
    const bearer = /^Bearer ([A-Za-z0-9._-]{1,8192})$/.exec(header);
    if (!bearer) throw unauthorized();
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(bearer[1]!, createLocalJWKSet({ keys: await options.publicKeys() }), {
        issuer: options.issuer,
        audience: options.adminAudience,
        typ: 'at+jwt',
        algorithms: ['ES256', 'EdDSA'],
        requiredClaims: ['exp', 'iat', 'sub'],
        clockTolerance: 5,
      }));
    } catch {
      throw unauthorized();
    }
    const scopes = new Set(String(payload['scope'] ?? '').split(' '));
    if (!scopes.has(ADMIN_SCOPE)) throw forbidden();
    const sub = String(payload['sub']);
    if (payload['client_id'] === sub) {
      const client = await clients.get(sub);
      if (!client || client.disabled || !client.scopes.includes(ADMIN_SCOPE)) throw forbidden();
      return { actor: `client:${sub}`, bootstrap: false };
    }
    const account = await accounts.get(sub);
    if (!account || account.disabled || !account.roles.includes(ADMIN_ROLE)) throw forbidden();
    return { actor: sub, bootstrap: false };
  };

  const readJson = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      throw new ApiError(415, 'invalid_request', IDP_ERRORS.invalidInput);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY) throw new ApiError(413, 'invalid_request', IDP_ERRORS.invalidInput);
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString('utf8') || '{}';
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ApiError(400, 'invalid_request', IDP_ERRORS.invalidInput);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ApiError(400, 'invalid_request', IDP_ERRORS.invalidInput);
    }
    return value as Record<string, unknown>;
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  const accountByName = async (username: string) => {
    const account = await accounts.getByUsername(decodeURIComponent(username));
    if (!account) throw idpError(IDP_ERRORS.notFound, 'no such account', { status: 404 });
    return account;
  };

  const strings = (value: unknown, field: string): string[] | undefined => {
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw idpError(IDP_ERRORS.invalidInput, 'invalid field', { detail: { field } });
    }
    return value as string[];
  };

  return async (req, res, path) => {
    const method = req.method ?? 'GET';
    const parts = path.split('/').slice(2); // ['', 'admin', …]
    let caller: Caller | null = null;
    try {
      if (parts.some((p) => p === '' || p.length > 200)) throw new ApiError(404, 'not_found', IDP_ERRORS.notFound);
      caller = await authenticate(req);
      const [collection, name, action, extra] = parts;
      if (extra !== undefined || (name !== undefined && !NAME.test(decodeURIComponent(name)))) {
        throw new ApiError(404, 'not_found', IDP_ERRORS.notFound);
      }
      const actor = caller.actor;
      const route =
        collection === 'keys' && name === 'rotate' && action === undefined
          ? `${method} keys/rotate`
          : `${method} ${collection}${name === undefined ? '' : '/:name'}${action === undefined ? '' : `/${action}`}`;
      // The bootstrap token creates the first administrator, and nothing else.
      if (caller.bootstrap && route !== 'POST users') throw forbidden();

      switch (route) {
        case 'GET users':
          return send(res, 200, { users: await accounts.list() });
        case 'POST users': {
          const body = await readJson(req);
          const roles = strings(body['roles'], 'roles') ?? [];
          if (caller.bootstrap && !roles.includes(ADMIN_ROLE)) throw forbidden();
          if (typeof body['username'] !== 'string' || typeof body['password'] !== 'string') {
            throw idpError(IDP_ERRORS.invalidInput, 'username and password are required', {
              detail: { field: 'username' },
            });
          }
          const created = await accounts.create(
            {
              username: body['username'],
              password: body['password'],
              roles,
              ...(typeof body['mfaRequired'] === 'boolean' ? { mfaRequired: body['mfaRequired'] } : {}),
            },
            actor,
          );
          if (roles.includes(ADMIN_ROLE)) await options.bootstrapDone();
          return send(res, 201, { user: created });
        }
        case 'POST users/:name/disable':
        case 'POST users/:name/enable': {
          const account = await accountByName(name!);
          await accounts.setDisabled(account.id, action === 'disable', actor);
          return send(res, 200, { user: await accounts.get(account.id) });
        }
        case 'POST users/:name/reset-mfa': {
          const account = await accountByName(name!);
          await accounts.resetMfa(account.id, actor);
          return send(res, 200, { user: await accounts.get(account.id) });
        }
        case 'POST users/:name/unlock': {
          const account = await accountByName(name!);
          await accounts.unlock(account.username, actor);
          return send(res, 200, { user: account });
        }
        case 'GET clients':
          return send(res, 200, { clients: await clients.list() });
        case 'POST clients': {
          const body = await readJson(req);
          const input: ClientInput = {
            kind: body['kind'] as ClientInput['kind'],
            scopes: strings(body['scopes'], 'scopes') ?? [],
            ...(typeof body['clientId'] === 'string' ? { clientId: body['clientId'] } : {}),
            ...(typeof body['name'] === 'string' ? { name: body['name'] } : {}),
          };
          const redirects = strings(body['redirectUris'], 'redirectUris');
          const postLogout = strings(body['postLogoutRedirectUris'], 'postLogoutRedirectUris');
          if (redirects) input.redirectUris = redirects;
          if (postLogout) input.postLogoutRedirectUris = postLogout;
          const added = await clients.add(input);
          audit.emit({
            type: AUDIT_EVENTS.adminAction,
            actor,
            subject: added.client.clientId,
            reason: 'client.create',
          });
          return send(res, 201, added);
        }
        case 'POST clients/:name/rotate-secret': {
          const secret = await clients.rotateSecret(decodeURIComponent(name!));
          audit.emit({ type: AUDIT_EVENTS.adminAction, actor, subject: name!, reason: 'client.rotate_secret' });
          return send(res, 200, { clientId: name, secret });
        }
        case 'POST clients/:name/disable':
        case 'POST clients/:name/enable': {
          await clients.setDisabled(decodeURIComponent(name!), action === 'disable');
          audit.emit({ type: AUDIT_EVENTS.adminAction, actor, subject: name!, reason: `client.${action}` });
          return send(res, 200, { client: await clients.get(decodeURIComponent(name!)) });
        }
        case 'GET keys':
          return send(res, 200, {
            keys: (await store.listKeys()).map((k) => ({
              kid: k.kid,
              alg: k.alg,
              state: k.state,
              since: k.stateSince,
            })),
          });
        case 'POST keys/rotate': {
          const body = await readJson(req);
          const result = await options.rotateKeys(body['force'] === true);
          audit.emit({ type: AUDIT_EVENTS.adminAction, actor, subject: result.current, reason: 'keys.rotate' });
          return send(res, 200, result);
        }
        default:
          throw new ApiError(method === 'GET' || method === 'POST' ? 404 : 405, 'not_found', IDP_ERRORS.notFound);
      }
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof ApiError) {
        if (err.status === 401 || err.status === 403) {
          audit.emit({
            type: AUDIT_EVENTS.adminDenied,
            ...(caller ? { actor: caller.actor } : {}),
            reason: err.error,
            ip: req.socket.remoteAddress ?? 'unknown',
            detail: { route: `${method} ${parts[0] ?? ''}` },
          });
        }
        if (err.status === 401) res.setHeader('www-authenticate', 'Bearer realm="rampart-identity"');
        return send(res, err.status, { error: err.error, code: err.code });
      }
      const e = err as { code?: string; status?: number; detail?: Record<string, unknown> };
      if (typeof e.code === 'string' && e.code.startsWith('IDP_ERR_') && e.status !== undefined && e.status < 500) {
        return send(res, e.status, {
          error: e.status === 404 ? 'not_found' : e.status === 409 ? 'conflict' : 'invalid_request',
          code: e.code,
          ...(e.detail?.['reason'] ? { reason: e.detail['reason'] } : {}),
          ...(e.detail?.['field'] ? { field: e.detail['field'] } : {}),
        });
      }
      options.logger.error({ err }, 'admin API failed');
      return send(res, 500, { error: 'server_error' });
    }
  };
}
