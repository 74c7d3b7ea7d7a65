import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { Logger } from '../core/logger.ts';
import type { Accounts } from './accounts.ts';
import { AUDIT_EVENTS, type AuditEmitter } from './audit.ts';
import { formTargetsOf, pageCsp } from './http-security.ts';
import {
  type ConsentItem,
  consentPage,
  enrollPage,
  errorPage,
  type FormContext,
  loginPage,
  mfaPage,
  PAGE_ERRORS,
  type PageError,
  recoveryCodesPage,
} from './pages/interaction-pages.ts';
import { ADMIN_ROLE, ADMIN_SCOPE } from './provider.ts';
import { hashRecoveryCode, newRecoveryCodes, normalizeRecoveryCode } from './recovery-codes.ts';
import type { Sealer } from './sealing.ts';
import type { AccountRecord, IdentityStore } from './store/store.ts';
import type { Throttle } from './throttle.ts';
import { matchTotp, newTotpSecret, totpQrSvg, totpSecretText, totpUri } from './totp.ts';

/**
 * Rampart's interaction pages for oidc-provider (issue 5 §3): login, TOTP challenge, TOTP enrollment
 * with recovery codes, consent. The flow of one interaction:
 *
 *   GET  /interaction/:uid            the step the interaction is at (login, mfa, enroll, consent)
 *   POST /interaction/:uid/login      username + password (throttled, no enumeration)
 *   POST /interaction/:uid/mfa        TOTP code (replay guard) or a recovery code
 *   POST /interaction/:uid/enroll     first TOTP code for a new secret, then the recovery codes page
 *   POST /interaction/:uid/continue   after the recovery codes page
 *   POST /interaction/:uid/consent    grant the requested scopes
 *   POST /interaction/:uid/abort      access_denied back to the client
 *
 * Between steps, what is proven so far (the password, for which account) is kept server-side, keyed
 * by the interaction (model `RampartLogin` in the store, expiring with it); oidc-provider's interaction
 * cookie ties the interaction to this browser. Every POST carries an HMAC token bound to the
 * interaction and must come from the provider's own origin (CSRF).
 */
export interface InteractionsOptions {
  provider: () => Provider;
  accounts: Accounts;
  store: IdentityStore;
  kek: Sealer;
  throttle: Throttle;
  audit: AuditEmitter;
  logger: Logger;
  issuer: string;
  /** Issuer path prefix ('' at the root). */
  base: string;
  adminAudience: string;
  /** Key of the anti-CSRF tokens. */
  csrfKey: Buffer;
  /** Name shown in authenticator apps. */
  totpIssuer: string;
  /** Lifetime of an interaction (seconds): what is proven during a login is kept no longer. */
  interactionTtl: number;
  now: () => number;
}

type Stage = 'mfa' | 'enroll' | 'enrolled';

interface LoginState {
  accountId: string;
  stage: Stage;
  /** Sealed TOTP secret being enrolled. */
  pending?: string;
}

const LOGIN_MODEL = 'RampartLogin';
const UID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_FORM_BYTES = 16 * 1024;
const FORM_FIELDS = new Set(['csrf', 'username', 'password', 'code']);

class PageFailure extends Error {
  readonly status: number;
  readonly page: PageError;
  constructor(status: number, page: PageError) {
    super(page.code);
    this.status = status;
    this.page = page;
  }
}

/** The route handler for `/interaction/…` paths (relative to the issuer). */
export function createInteractions(
  options: InteractionsOptions,
): (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void> {
  const { store, accounts, audit, kek, throttle, base, now } = options;
  const issuerOrigin = new URL(options.issuer).origin;

  const csrfFor = (uid: string) =>
    createHmac('sha256', options.csrfKey).update(`rampart/identity/csrf/v1\0${uid}`).digest('base64url');
  const checkCsrf = (req: IncomingMessage, uid: string, token: string | undefined) => {
    const expected = Buffer.from(csrfFor(uid));
    const given = Buffer.from(token ?? '');
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    if (
      given.length !== expected.length ||
      !timingSafeEqual(given, expected) ||
      (origin !== undefined && origin !== issuerOrigin) ||
      (site !== undefined && site !== 'same-origin')
    ) {
      throw new PageFailure(403, { code: 'invalid_request', text: 'This form has expired. Start again.' });
    }
  };

  const pendingContext = (uid: string) => `rampart/identity/totp-pending/v1/${uid}`;
  const totpContext = (accountId: string) => `rampart/identity/totp/v1/${accountId}`;

  const loadState = async (uid: string) =>
    (await store.findArtifact(LOGIN_MODEL, uid, now())) as unknown as LoginState | undefined;
  const saveState = async (uid: string, state: LoginState, expiresAt: number) =>
    store.upsertArtifact({
      model: LOGIN_MODEL,
      id: uid,
      payload: state as unknown as Record<string, unknown>,
      grantId: null,
      uid: null,
      userCode: null,
      expiresAt,
    });

  const send = (
    res: ServerResponse,
    status: number,
    body: string,
    formTargets: string[],
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(status, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': pageCsp(formTargets),
      ...headers,
    });
    res.end(body);
  };

  const readForm = async (req: IncomingMessage): Promise<Record<string, string>> => {
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) {
      throw new PageFailure(415, { code: 'invalid_request', text: 'Unsupported form submission.' });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_FORM_BYTES)
        throw new PageFailure(413, { code: 'invalid_request', text: 'The form is too large.' });
      chunks.push(chunk);
    }
    const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const form: Record<string, string> = {};
    for (const [name, value] of params) {
      if (!FORM_FIELDS.has(name)) continue;
      // Two values for one field: which one counts would depend on the parser. Refuse.
      if (Object.hasOwn(form, name)) throw new PageFailure(400, { code: 'invalid_request', text: 'Invalid form.' });
      form[name] = value;
    }
    return form;
  };

  const address = (req: IncomingMessage) => req.socket.remoteAddress ?? 'unknown';

  return async (req, res, path) => {
    const [, uid, step, extra] = path.split('/').slice(1);
    let formTargets: string[] = [];
    try {
      if (!uid || !UID.test(uid) || extra !== undefined)
        throw new PageFailure(404, { code: 'not_found', text: 'Not found.' });
      const method = req.method ?? 'GET';
      if (step === undefined ? method !== 'GET' && method !== 'HEAD' : method !== 'POST') {
        res.setHeader('allow', step === undefined ? 'GET, HEAD' : 'POST');
        throw new PageFailure(405, { code: 'invalid_request', text: 'Method not allowed.' });
      }
      const form = step === undefined ? {} : await readForm(req);
      if (step !== undefined) checkCsrf(req, uid, form['csrf']);

      const provider = options.provider();
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== uid)
        throw new PageFailure(400, { code: 'invalid_request', text: 'This sign-in has expired.' });
      const params = details.params as Record<string, unknown>;
      formTargets = formTargetsOf(params['redirect_uri']);
      const client = await provider.Client.find(String(params['client_id']));
      const f: FormContext = {
        base,
        uid,
        csrf: csrfFor(uid),
        clientName: client?.clientName ?? String(params['client_id']),
      };
      const expiresAt = now() + options.interactionTtl * 1000;
      const prompt = details.prompt.name;

      const finishLogin = async (account: AccountRecord, amr: string[]) => {
        await store.destroyArtifact(LOGIN_MODEL, uid);
        audit.emit({
          type: AUDIT_EVENTS.loginSucceeded,
          subject: account.id,
          clientId: f.clientName,
          ip: address(req),
          detail: { amr },
        });
        await provider.interactionFinished(
          req,
          res,
          { login: { accountId: account.id, amr } },
          { mergeWithLastSubmission: false },
        );
      };
      const stateAccount = async (expected: Stage) => {
        const state = await loadState(uid);
        const account = state?.stage === expected ? await store.findAccount(state.accountId) : undefined;
        if (!state || !account || account.disabled) {
          throw new PageFailure(400, { code: 'invalid_request', text: 'This sign-in has expired.' });
        }
        return { state, account };
      };
      const renderEnroll = async (
        state: LoginState,
        account: AccountRecord,
        status: number,
        error: PageError | null,
      ) => {
        const secret = kek.unwrap(Buffer.from(state.pending!, 'base64'), pendingContext(uid));
        try {
          const qr = await totpQrSvg(totpUri(secret, account.username, options.totpIssuer));
          send(res, status, enrollPage(f, qr, totpSecretText(secret), error), formTargets);
        } finally {
          secret.fill(0);
        }
      };
      /** Throttles second-factor attempts per account like passwords (a 6-digit code is guessable). */
      const secondFactorGate = async (account: AccountRecord) => {
        const gate = await throttle.begin(`mfa:${account.id}`, address(req));
        if (!gate.allowed) {
          throw new PageFailure(429, PAGE_ERRORS.tooManyAttempts);
        }
        return gate.attempt;
      };

      if (step === undefined) {
        if (prompt === 'login') {
          const state = await loadState(uid);
          if (state?.stage === 'mfa') return send(res, 200, mfaPage(f, null), formTargets);
          if (state?.stage === 'enroll') {
            const { account } = await stateAccount('enroll');
            return await renderEnroll(state, account, 200, null);
          }
          return send(res, 200, loginPage(f, null), formTargets);
        }
        if (prompt === 'consent') return send(res, 200, consentPage(f, consentItems(details)), formTargets);
        throw new PageFailure(400, { code: 'invalid_request', text: 'This sign-in cannot continue.' });
      }

      if (step === 'abort') {
        await store.destroyArtifact(LOGIN_MODEL, uid);
        await provider.interactionFinished(
          req,
          res,
          { error: 'access_denied', error_description: 'End-User aborted interaction' },
          { mergeWithLastSubmission: false },
        );
        return;
      }

      if (step === 'login') {
        if (prompt !== 'login')
          throw new PageFailure(400, { code: 'invalid_request', text: 'This sign-in cannot continue.' });
        const result = await accounts.login(form['username'] ?? '', form['password'] ?? '', address(req));
        if (!result.ok) {
          if (result.reason === 'too_many_attempts') {
            return send(res, 429, loginPage(f, PAGE_ERRORS.tooManyAttempts), formTargets, {
              'retry-after': String(result.retryAfter),
            });
          }
          return send(res, 400, loginPage(f, PAGE_ERRORS.invalidCredentials), formTargets);
        }
        const account = result.account;
        if (account.totpEnrolledAt !== null && account.totpSecret) {
          await saveState(uid, { accountId: account.id, stage: 'mfa' }, expiresAt);
          return redirect(res, `${base}/interaction/${uid}`);
        }
        if (account.mfaRequired) {
          const secret = newTotpSecret();
          const pending = kek.wrap(secret, pendingContext(uid)).toString('base64');
          secret.fill(0);
          await saveState(uid, { accountId: account.id, stage: 'enroll', pending }, expiresAt);
          return redirect(res, `${base}/interaction/${uid}`);
        }
        return await finishLogin(account, ['pwd']);
      }

      if (step === 'mfa') {
        const { account } = await stateAccount('mfa');
        const attempt = await secondFactorGate(account);
        const code = (form['code'] ?? '').trim();
        let ok = false;
        let reason = 'wrong_code';
        if (/^\d{6}$/.test(code) && account.totpSecret) {
          const secret = kek.unwrap(account.totpSecret, totpContext(account.id));
          try {
            const stepMatched = matchTotp(secret, code, now());
            if (stepMatched !== null) {
              ok = await store.useTotpStep(account.id, stepMatched);
              if (!ok) reason = 'replayed_code';
            }
          } finally {
            secret.fill(0);
          }
        } else if (normalizeRecoveryCode(code)) {
          ok = await store.useRecoveryCode(account.id, hashRecoveryCode(account.id, code));
          if (ok) audit.emit({ type: AUDIT_EVENTS.recoveryCodeUsed, subject: account.id, ip: address(req) });
        }
        if (!ok) {
          await attempt.failed();
          audit.emit({ type: AUDIT_EVENTS.mfaFailed, subject: account.id, ip: address(req), reason });
          return send(res, 400, mfaPage(f, PAGE_ERRORS.invalidCode), formTargets);
        }
        await attempt.succeeded();
        return await finishLogin(account, ['pwd', 'otp', 'mfa']);
      }

      if (step === 'enroll') {
        const { state, account } = await stateAccount('enroll');
        const attempt = await secondFactorGate(account);
        const secret = kek.unwrap(Buffer.from(state.pending!, 'base64'), pendingContext(uid));
        let stepMatched: number | null;
        try {
          stepMatched = matchTotp(secret, (form['code'] ?? '').trim(), now());
          if (stepMatched !== null) {
            await store.updateAccount(account.id, {
              totpSecret: kek.wrap(secret, totpContext(account.id)),
              totpEnrolledAt: now(),
              // The code just typed is used: it cannot be replayed at the next login.
              totpLastStep: stepMatched,
            });
          }
        } finally {
          secret.fill(0);
        }
        if (stepMatched === null) {
          await attempt.failed();
          return await renderEnroll(state, account, 400, PAGE_ERRORS.invalidEnrollmentCode);
        }
        await attempt.succeeded();
        const codes = newRecoveryCodes();
        await store.replaceRecoveryCodes(
          account.id,
          codes.map((c) => hashRecoveryCode(account.id, c)),
        );
        await saveState(uid, { accountId: account.id, stage: 'enrolled' }, expiresAt);
        audit.emit({ type: AUDIT_EVENTS.mfaEnrolled, subject: account.id, ip: address(req) });
        return send(res, 200, recoveryCodesPage(f, codes), formTargets);
      }

      if (step === 'continue') {
        const { account } = await stateAccount('enrolled');
        return await finishLogin(account, ['pwd', 'otp', 'mfa']);
      }

      if (step === 'consent') {
        if (prompt !== 'consent')
          throw new PageFailure(400, { code: 'invalid_request', text: 'This sign-in cannot continue.' });
        const accountId = details.session?.accountId;
        const account = accountId ? await store.findAccount(accountId) : undefined;
        if (!account || account.disabled)
          throw new PageFailure(400, { code: 'invalid_request', text: 'This sign-in has expired.' });
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: account.id, clientId: String(params['client_id']) });
        if (!grant) throw new PageFailure(400, { code: 'invalid_request', text: 'This sign-in has expired.' });
        const missing = details.prompt.details as {
          missingOIDCScope?: string[];
          missingOIDCClaims?: string[];
          missingResourceScopes?: Record<string, string[]>;
        };
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
          // The admin API's scope is only ever granted to administrators (and refused, not just left
          // out, so the consent prompt does not come back for it).
          const refused = scopes.filter(
            (s) => indicator === options.adminAudience && s === ADMIN_SCOPE && !account.roles.includes(ADMIN_ROLE),
          );
          const granted = scopes.filter((s) => !refused.includes(s));
          if (granted.length > 0) grant.addResourceScope(indicator, granted.join(' '));
          if (refused.length > 0) grant.rejectResourceScope(indicator, refused.join(' '));
        }
        const grantId = await grant.save();
        await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
        return;
      }

      throw new PageFailure(404, { code: 'not_found', text: 'Not found.' });
    } catch (err) {
      if (res.headersSent) {
        options.logger.error({ err }, 'interaction failed after the response started');
        res.destroy();
        return;
      }
      if (err instanceof PageFailure) return send(res, err.status, errorPage(base, err.page), formTargets);
      // oidc-provider errors (SessionNotFound for an expired or unknown interaction, …) carry OAuth codes.
      const oauth = err as { error?: string; statusCode?: number; expose?: boolean };
      if (typeof oauth.error === 'string' && oauth.expose !== false) {
        return send(
          res,
          oauth.statusCode ?? 400,
          errorPage(base, { code: oauth.error, text: 'This sign-in has expired or is not valid. Start again.' }),
          formTargets,
        );
      }
      options.logger.error({ err }, 'interaction failed');
      return send(res, 500, errorPage(base, { code: 'server_error', text: 'Something went wrong.' }), formTargets);
    }
  };
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { location, 'cache-control': 'no-store' }).end();
}

/** What the consent page lists: OpenID Connect scopes in words, API scopes by name. */
function consentItems(details: { prompt: { details: unknown } }): ConsentItem[] {
  const d = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
  const words: Record<string, string> = {
    openid: 'Know who you are',
    profile: 'See your username',
    offline_access: 'Stay signed in (refresh tokens)',
  };
  const items: ConsentItem[] = [];
  for (const scope of d.missingOIDCScope ?? []) items.push({ scope, text: words[scope] ?? scope });
  for (const scopes of Object.values(d.missingResourceScopes ?? {})) {
    for (const scope of scopes) items.push({ scope, text: `Use the API with scope “${scope}”` });
  }
  if (items.length === 0) items.push({ scope: '', text: 'Sign you in' });
  return items;
}
