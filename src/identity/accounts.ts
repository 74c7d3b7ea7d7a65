import { randomUUID } from 'node:crypto';
import { AUDIT_EVENTS, type AuditEmitter } from './audit.ts';
import { IDP_ERRORS, idpError } from './errors.ts';
import type { PasswordHasher } from './passwords/argon2.ts';
import type { PasswordPolicy } from './passwords/policy.ts';
import type { AccountRecord, IdentityStore } from './store/store.ts';
import type { Throttle } from './throttle.ts';

/** Lower-case letters, digits and `._@+-`, 1–64 characters, after NFKC: no look-alike or invisible characters. */
const USERNAME = /^[a-z0-9][a-z0-9._@+-]{0,63}$/;
/** Role names: what the gateway compares with the `roles` claim. */
const ROLE = /^[a-z][a-z0-9:_-]{0,63}$/;
const MAX_ROLES = 20;

/** What the admin API shows of an account: never its password hash or MFA secret. */
export interface AccountView {
  id: string;
  username: string;
  roles: string[];
  disabled: boolean;
  mfaRequired: boolean;
  mfaEnrolled: boolean;
  createdAt: number;
  updatedAt: number;
}

export function accountView(a: AccountRecord): AccountView {
  return {
    id: a.id,
    username: a.username,
    roles: [...a.roles],
    disabled: a.disabled,
    mfaRequired: a.mfaRequired,
    mfaEnrolled: a.totpEnrolledAt !== null,
    createdAt: a.createdAt,
    updatedAt: a.updatedAt,
  };
}

/** The username as stored and compared: NFKC, lower case, trimmed. Null when it cannot be a username. */
export function normalizeUsername(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 256) return null;
  const u = input.normalize('NFKC').trim().toLowerCase();
  return USERNAME.test(u) ? u : null;
}

export type LoginResult =
  | { ok: true; account: AccountRecord }
  /** Wrong username or password, unknown or disabled account: one outcome, so nothing is revealed. */
  | { ok: false; reason: 'invalid_credentials' }
  | { ok: false; reason: 'too_many_attempts'; retryAfter: number };

export interface NewAccount {
  username: string;
  password: string;
  roles?: readonly string[];
  /** MFA must be enrolled at the first login. Default: true for admins. */
  mfaRequired?: boolean;
}

export interface Accounts {
  create(input: NewAccount, actor?: string): Promise<AccountView>;
  get(id: string): Promise<AccountView | undefined>;
  getByUsername(username: string): Promise<AccountView | undefined>;
  list(): Promise<AccountView[]>;
  setDisabled(id: string, disabled: boolean, actor?: string): Promise<void>;
  setRoles(id: string, roles: readonly string[], actor?: string): Promise<void>;
  setPassword(id: string, password: string, actor?: string): Promise<void>;
  /**
   * Checks a username and password. Every path costs one argon2id verification (unknown and disabled
   * accounts are verified against a dummy hash), every path is throttled by username and address, and
   * every failure looks the same to the caller.
   */
  login(username: string, password: string, address: string): Promise<LoginResult>;
  /** Forgets the failed-login counter of a username (unlock). */
  unlock(username: string, actor?: string): Promise<void>;
  /** Removes the TOTP secret and recovery codes: the next login enrolls again (if MFA is required). */
  resetMfa(id: string, actor?: string): Promise<void>;
}

export interface AccountsOptions {
  store: IdentityStore;
  hasher: PasswordHasher;
  policy: PasswordPolicy;
  throttle: Throttle;
  audit: AuditEmitter;
  now?: () => number;
}

function checkRoles(roles: readonly string[]): string[] {
  if (!Array.isArray(roles) || roles.length > MAX_ROLES || !roles.every((r) => typeof r === 'string' && ROLE.test(r))) {
    throw idpError(IDP_ERRORS.invalidInput, 'invalid roles', { detail: { field: 'roles' } });
  }
  return [...new Set(roles)];
}

export function createAccounts(options: AccountsOptions): Accounts {
  const { store, hasher, policy, throttle, audit } = options;
  const now = options.now ?? Date.now;

  const mustExist = async (id: string) => {
    const account = await store.findAccount(id);
    if (!account) throw idpError(IDP_ERRORS.notFound, 'no such account', { status: 404 });
    return account;
  };
  const adminAction = (actor: string | undefined, action: string, subject: string) =>
    audit.emit({ type: AUDIT_EVENTS.adminAction, ...(actor ? { actor } : {}), subject, reason: action });

  return {
    async create(input, actor) {
      const username = normalizeUsername(input.username);
      if (!username) throw idpError(IDP_ERRORS.invalidInput, 'invalid username', { detail: { field: 'username' } });
      const roles = checkRoles(input.roles ?? []);
      policy.check(input.password, { username });
      const at = now();
      const record: AccountRecord = {
        id: randomUUID(),
        username,
        passwordHash: await hasher.hash(input.password),
        roles,
        disabled: false,
        mfaRequired: input.mfaRequired ?? roles.includes('admin'),
        totpSecret: null,
        totpEnrolledAt: null,
        totpLastStep: null,
        createdAt: at,
        updatedAt: at,
      };
      await store.createAccount(record);
      adminAction(actor, 'account.create', record.id);
      return accountView(record);
    },
    async get(id) {
      const a = await store.findAccount(id);
      return a ? accountView(a) : undefined;
    },
    async getByUsername(username) {
      const normalized = normalizeUsername(username);
      const a = normalized ? await store.findAccountByUsername(normalized) : undefined;
      return a ? accountView(a) : undefined;
    },
    async list() {
      return (await store.listAccounts()).map(accountView);
    },
    async setDisabled(id, disabled, actor) {
      await mustExist(id);
      await store.updateAccount(id, { disabled });
      adminAction(actor, disabled ? 'account.disable' : 'account.enable', id);
    },
    async setRoles(id, roles, actor) {
      await mustExist(id);
      await store.updateAccount(id, { roles: checkRoles(roles) });
      adminAction(actor, 'account.roles', id);
    },
    async setPassword(id, password, actor) {
      const account = await mustExist(id);
      policy.check(password, { username: account.username });
      await store.updateAccount(id, { passwordHash: await hasher.hash(password) });
      adminAction(actor, 'account.password', id);
    },
    async login(usernameInput, password, address) {
      // An impossible username is still throttled and still costs a verification: its own key space.
      const username = normalizeUsername(usernameInput) ?? `invalid:${String(usernameInput).slice(0, 64)}`;
      const gate = await throttle.begin(username, address);
      if (!gate.allowed) {
        audit.emit({
          type: AUDIT_EVENTS.loginThrottled,
          subject: username,
          ip: address,
          reason: gate.locked ? 'locked' : 'delay',
        });
        return { ok: false, reason: 'too_many_attempts', retryAfter: gate.retryAfter };
      }
      const account = await store.findAccountByUsername(username);
      const pw = typeof password === 'string' ? password : '';
      const matched = account ? await hasher.verify(account.passwordHash, pw) : await hasher.verifyDummy(pw);
      if (matched && account && !account.disabled) {
        await gate.attempt.succeeded();
        if (hasher.needsRehash(account.passwordHash)) {
          await store.updateAccount(account.id, { passwordHash: await hasher.hash(pw) });
        }
        return { ok: true, account };
      }
      const { locked } = await gate.attempt.failed();
      const reason = !account ? 'unknown_user' : account.disabled ? 'disabled' : 'bad_password';
      audit.emit({ type: AUDIT_EVENTS.loginFailed, subject: account?.id ?? username, ip: address, reason });
      if (locked) audit.emit({ type: AUDIT_EVENTS.accountLocked, subject: account?.id ?? username, ip: address });
      return { ok: false, reason: 'invalid_credentials' };
    },
    async resetMfa(id, actor) {
      await mustExist(id);
      await store.updateAccount(id, { totpSecret: null, totpEnrolledAt: null, totpLastStep: null });
      await store.replaceRecoveryCodes(id, []);
      audit.emit({ type: AUDIT_EVENTS.mfaReset, ...(actor ? { actor } : {}), subject: id });
    },
    async unlock(username, actor) {
      const normalized = normalizeUsername(username);
      if (!normalized) throw idpError(IDP_ERRORS.invalidInput, 'invalid username', { detail: { field: 'username' } });
      await throttle.clear(normalized);
      adminAction(actor, 'account.unlock', normalized);
    },
  };
}
