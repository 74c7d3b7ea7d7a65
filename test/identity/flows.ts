/**
 * Protocol helpers for the identity tests: PKCE, authorization URLs, and a complete sign-in through
 * the provider's pages with {@link Agent}.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, type AgentResponse, actionOf, csrfOf } from './agent.ts';

export function newPkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function authorizationUrl(issuer: string, params: Record<string, string>): string {
  return `${issuer}/auth?${new URLSearchParams({ response_type: 'code', ...params })}`;
}

export interface SignIn {
  clientId: string;
  redirectUri: string;
  scope?: string;
  username: string;
  password: string;
  /** A TOTP code when the account has MFA (or to enroll). */
  totp?: (secret: string | null) => string;
  extra?: Record<string, string>;
}

export interface SignedIn {
  agent: Agent;
  code: string;
  verifier: string;
  state: string;
  callback: URL;
  /** Base32 TOTP secret shown at enrollment, if the sign-in enrolled one. */
  enrolledSecret: string | null;
  recoveryCodes: string[];
}

/** Runs an authorization request to its redirect back to the client, through login, MFA and consent. */
export async function signIn(issuer: string, input: SignIn, agent = new Agent()): Promise<SignedIn> {
  const { verifier, challenge } = newPkce();
  const state = randomBytes(8).toString('hex');
  let res: AgentResponse = await agent.follow(
    await agent.request(
      authorizationUrl(issuer, {
        client_id: input.clientId,
        redirect_uri: input.redirectUri,
        scope: input.scope ?? 'openid offline_access orders',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state,
        prompt: 'consent',
        ...input.extra,
      }),
    ),
    issuer,
  );
  const driven = await drivePages(agent, res, issuer, input);
  res = driven.res;
  const { enrolledSecret, recoveryCodes } = driven;
  assert.ok(res.location, `no redirect to the client: ${res.status}\n${res.body}`);
  const callback = new URL(res.location);
  assert.equal(callback.searchParams.get('state'), input.extra?.['state'] ?? state);
  const code = callback.searchParams.get('code');
  assert.ok(code, `no code in ${callback}`);
  return { agent, code, verifier, state: input.extra?.['state'] ?? state, callback, enrolledSecret, recoveryCodes };
}

/** Redeems a code at the token endpoint (public client, or Basic credentials). */
export async function redeem(
  issuer: string,
  input: { code: string; verifier?: string; redirectUri: string; clientId: string; secret?: string },
): Promise<Response> {
  return fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(input.secret
        ? { authorization: `Basic ${Buffer.from(`${input.clientId}:${input.secret}`).toString('base64')}` }
        : {}),
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: input.code,
      redirect_uri: input.redirectUri,
      ...(input.secret ? {} : { client_id: input.clientId }),
      ...(input.verifier ? { code_verifier: input.verifier } : {}),
    }),
  });
}

export interface PageInput {
  username: string;
  password: string;
  totp?: (secret: string | null) => string;
}

/**
 * Fills the provider's pages (login, enrollment, recovery codes, MFA, consent, device confirmation)
 * until the flow leaves the issuer (a redirect to the client) or shows the device success page.
 */
export async function drivePages(
  agent: Agent,
  first: AgentResponse,
  issuer: string,
  input: PageInput,
): Promise<{ res: AgentResponse; enrolledSecret: string | null; recoveryCodes: string[] }> {
  let res = first;
  let enrolledSecret: string | null = null;
  let recoveryCodes: string[] = [];
  for (let i = 0; i < 10; i++) {
    if (res.location && !res.location.startsWith(issuer)) break;
    assert.equal(res.status, 200, `unexpected page ${res.status} at ${res.url}:\n${res.body}`);
    if (res.body.includes('<h1>Device connected</h1>')) break;
    let next: AgentResponse;
    if (res.body.includes('Submitting Callback')) {
      // oidc-provider's auto-submitting form (no script here): submit it by hand.
      const action = /<form method="post" action="([^"]+)"/.exec(res.body)![1]!.replace(/&amp;/g, '&');
      const form = Object.fromEntries(
        [...res.body.matchAll(/name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
      );
      next = await agent.request(new URL(action, issuer).href, { form });
    } else if (res.body.includes('name="confirm"')) {
      const action = /<form method="post" action="([^"]+)"/.exec(res.body)![1]!.replace(/&amp;/g, '&');
      const form = Object.fromEntries(
        [...res.body.matchAll(/type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
      );
      next = await agent.request(new URL(action, issuer).href, { form: { ...form, confirm: 'yes' } });
    } else {
      const csrf = csrfOf(res.body);
      if (res.body.includes('/login"')) {
        next = await agent.request(actionOf(res.body, 'login', issuer), {
          form: { csrf, username: input.username, password: input.password },
        });
      } else if (res.body.includes('/enroll"')) {
        enrolledSecret = /data-totp-secret="([A-Z2-7]+)"/.exec(res.body)![1]!;
        next = await agent.request(actionOf(res.body, 'enroll', issuer), {
          form: { csrf, code: input.totp!(enrolledSecret) },
        });
        assert.equal(next.status, 200, next.body);
        recoveryCodes = [...next.body.matchAll(/data-recovery-code>([A-Z0-9-]+)</g)].map((m) => m[1]!);
        next = await agent.request(actionOf(next.body, 'continue', issuer), { form: { csrf: csrfOf(next.body) } });
      } else if (res.body.includes('/mfa"')) {
        next = await agent.request(actionOf(res.body, 'mfa', issuer), { form: { csrf, code: input.totp!(null) } });
      } else if (res.body.includes('/consent"')) {
        next = await agent.request(actionOf(res.body, 'consent', issuer), { form: { csrf } });
      } else {
        throw new Error(`unexpected page:\n${res.body}`);
      }
    }
    res = await agent.follow(next, issuer);
  }
  return { res, enrolledSecret, recoveryCodes };
}
