/**
 * The login, MFA and consent pages without a browser (the real browser is browser.test.ts): the
 * refusals the issue lists, each with its OAuth error or page code; no user enumeration by body, status
 * or timing; throttling and lockout; TOTP enrollment, challenge and replay; CSRF and page headers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test as nodeTest } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { decodeJwt } from 'jose';
import { AUDIT_EVENTS } from '../../src/identity/audit.ts';
import { currentTotp } from '../../src/identity/totp.ts';
import { requireService } from '../helpers/require-service.ts';
import { Agent, actionOf, csrfOf, errorOf } from './agent.ts';
import { authorizationUrl, newPkce, redeem, signIn } from './flows.ts';
import { type StoreKind, startTestIdentity, type TestIdentity } from './harness.ts';

const REDIRECT = 'http://127.0.0.1/cb';
const PASSWORD = 'a long and unusual passphrase';
const base32 = (text: string) => {
  // RFC 4648 base32 decode of the secret shown on the enrollment page.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  return Buffer.from(bits.match(/.{8}/g)!.map((b) => Number.parseInt(b, 2)));
};

for (const kind of ['sqlite', 'postgres'] as StoreKind[])
  describe(`login, MFA and consent pages (${kind} store)`, () => {
    let idp: TestIdentity;
    let clock = 0;
    const now = () => Date.now() + clock;
    let unavailable = false;

    before(async () => {
      const postgresUrl = kind === 'postgres' ? await requireService({ skip: () => {} } as never, 'postgres') : null;
      if (kind === 'postgres' && !postgresUrl) {
        unavailable = true;
        return;
      }
      idp = await startTestIdentity({
        store: kind,
        postgresUrl,
        now,
        // Small thresholds so lockout is reachable in a test; the shapes are the production ones.
        throttle: {
          account: { free: 2, baseDelay: 1, maxDelay: 2, lockAt: 5, lockDuration: 900, forgetAfter: 3600 },
          address: { free: 1000, baseDelay: 1, maxDelay: 2, lockAt: 10_000, lockDuration: 900, forgetAfter: 3600 },
        },
        ttl: { interaction: 60 },
      });
      await idp.identity.clients.add({
        kind: 'native',
        clientId: 'cli',
        redirectUris: [REDIRECT],
        scopes: ['openid', 'offline_access', 'orders'],
      });
      await idp.identity.accounts.create({ username: 'alice', password: PASSWORD, roles: ['user'] });
    });
    after(async () => {
      await idp?.close();
    });
    /** Every test of this suite: skipped (failed under CI) when its store is not reachable. */
    const test = (name: string, fn: () => Promise<void>) =>
      nodeTest(name, async (t) => {
        if (unavailable) {
          await requireService(t, 'postgres');
          return;
        }
        await fn();
      });

    /** Starts an authorization request and returns the agent at the login page. */
    const atLogin = async (extra: Record<string, string> = {}) => {
      const agent = new Agent();
      const { challenge } = newPkce();
      const res = await agent.follow(
        await agent.request(
          authorizationUrl(idp.issuer, {
            client_id: 'cli',
            redirect_uri: REDIRECT,
            scope: 'openid orders',
            code_challenge: challenge,
            code_challenge_method: 'S256',
            ...extra,
          }),
        ),
        idp.issuer,
      );
      assert.equal(res.status, 200, res.body);
      return { agent, page: res };
    };
    const submitLogin = async (username: string, password: string, at?: Awaited<ReturnType<typeof atLogin>>) => {
      const { agent, page } = at ?? (await atLogin());
      return agent.request(actionOf(page.body, 'login', idp.issuer), {
        form: { csrf: csrfOf(page.body), username, password },
      });
    };

    test('a full sign-in: PKCE code flow through the pages, new session, tokens with roles', async () => {
      const first = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'alice',
        password: PASSWORD,
      });
      assert.equal(first.callback.searchParams.get('iss'), idp.issuer, 'RFC 9207 iss in the response');
      const res = await redeem(idp.issuer, {
        code: first.code,
        verifier: first.verifier,
        redirectUri: REDIRECT,
        clientId: 'cli',
      });
      assert.equal(res.status, 200);
      const tokens = (await res.json()) as { access_token: string; refresh_token: string; id_token: string };
      const claims = decodeJwt(tokens.access_token);
      assert.deepEqual(claims['roles'], ['user']);
      assert.equal(claims['scope'], 'orders');
      assert.ok(tokens.refresh_token);
      assert.equal(decodeJwt(tokens.id_token).aud, 'cli');
    });

    test('a new session on login: the session cookie before and after login differ', async () => {
      // First login creates a session; logging in again (prompt=login) must not keep its identifier.
      const first = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'alice',
        password: PASSWORD,
      });
      const before = first.agent.cookie('_session');
      assert.ok(before);
      const again = await signIn(
        idp.issuer,
        {
          clientId: 'cli',
          redirectUri: REDIRECT,
          username: 'alice',
          password: PASSWORD,
          extra: { prompt: 'login consent' },
        },
        first.agent,
      );
      assert.ok(again.agent.cookie('_session'));
      assert.notEqual(again.agent.cookie('_session'), before);
    });

    test('pages: strict CSP without inline script, no framing, labels, language, one heading', async () => {
      const { page } = await atLogin();
      const csp = page.headers.get('content-security-policy')!;
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'none'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.match(csp, /form-action 'self' http:\/\/127\.0\.0\.1/, 'forms may lead back to the client only');
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(page.headers.get('x-frame-options'), 'DENY');
      assert.equal(page.headers.get('cache-control'), 'no-store');
      assert.doesNotMatch(page.body, /<script|\son[a-z]+=|style="/i);
      assert.match(page.body, /<html lang="en">/);
      assert.equal(page.body.match(/<h1>/g)?.length, 1);
      for (const [, id] of page.body.matchAll(/<input id="([^"]+)"/g)) {
        assert.match(page.body, new RegExp(`<label for="${id}">`), `label for ${id}`);
      }
      const cookies = page.headers.getSetCookie().join('\n');
      assert.ok(cookies === '' || /samesite=lax/i.test(cookies));
    });

    test('refused: redirect_uri mismatch → invalid_redirect_uri, shown at the provider, never redirected', async () => {
      const agent = new Agent();
      const { challenge } = newPkce();
      const res = await agent.request(
        authorizationUrl(idp.issuer, {
          client_id: 'cli',
          redirect_uri: 'http://127.0.0.1/cb/other',
          scope: 'openid',
          code_challenge: challenge,
          code_challenge_method: 'S256',
        }),
      );
      assert.equal(res.status, 400);
      assert.equal(res.location, null);
      assert.equal(errorOf(res.body), 'invalid_redirect_uri');
    });

    const authorizeError = async (params: Record<string, string>) => {
      const agent = new Agent();
      const res = await agent.request(
        authorizationUrl(idp.issuer, { client_id: 'cli', redirect_uri: REDIRECT, scope: 'openid', ...params }),
      );
      assert.ok(
        res.location?.startsWith(REDIRECT),
        `expected a redirect to the client, got ${res.status}\n${res.body}`,
      );
      const url = new URL(res.location!);
      // Errors for token-bearing response types come back in the fragment (OAuth 2.0 Multiple Response Types §5).
      return url.searchParams.get('error') ?? new URLSearchParams(url.hash.slice(1)).get('error');
    };

    test('refused: missing PKCE → invalid_request back to the client', async () => {
      assert.equal(await authorizeError({}), 'invalid_request');
    });

    test('refused: PKCE downgrade to plain → invalid_request', async () => {
      assert.equal(
        await authorizeError({ code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }),
        'invalid_request',
      );
      assert.equal(
        await authorizeError({ code_challenge: 'a'.repeat(43) }),
        'invalid_request',
        'method omitted (plain by default in RFC 7636)',
      );
    });

    test('refused: implicit and hybrid response types → unsupported_response_type', async () => {
      const { challenge } = newPkce();
      for (const type of ['token', 'id_token', 'code id_token', 'code token']) {
        assert.equal(
          await authorizeError({
            response_type: type,
            code_challenge: challenge,
            code_challenge_method: 'S256',
            nonce: 'n',
          }),
          'unsupported_response_type',
          type,
        );
      }
    });

    test('refused: a code redeemed without its verifier, or with the wrong one → invalid_grant', async () => {
      for (const verifier of [undefined, newPkce().verifier]) {
        const s = await signIn(idp.issuer, {
          clientId: 'cli',
          redirectUri: REDIRECT,
          username: 'alice',
          password: PASSWORD,
        });
        const res = await redeem(idp.issuer, {
          code: s.code,
          ...(verifier ? { verifier } : {}),
          redirectUri: REDIRECT,
          clientId: 'cli',
        });
        assert.equal(res.status, 400);
        assert.equal(((await res.json()) as { error: string }).error, 'invalid_grant');
      }
    });

    test('refused: code reuse → invalid_grant, and the tokens of the first redemption are revoked', async () => {
      const s = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'alice',
        password: PASSWORD,
      });
      const first = await redeem(idp.issuer, {
        code: s.code,
        verifier: s.verifier,
        redirectUri: REDIRECT,
        clientId: 'cli',
      });
      assert.equal(first.status, 200);
      const { refresh_token } = (await first.json()) as { refresh_token: string };
      const second = await redeem(idp.issuer, {
        code: s.code,
        verifier: s.verifier,
        redirectUri: REDIRECT,
        clientId: 'cli',
      });
      assert.equal(second.status, 400);
      assert.equal(((await second.json()) as { error: string }).error, 'invalid_grant');
      const refresh = await fetch(`${idp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token, client_id: 'cli' }),
      });
      assert.equal(((await refresh.json()) as { error: string }).error, 'invalid_grant', 'the grant was revoked');
    });

    test('refused: a code raced by concurrent redemptions is issued once, and the grant is revoked', async () => {
      const s = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'alice',
        password: PASSWORD,
      });
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          redeem(idp.issuer, { code: s.code, verifier: s.verifier, redirectUri: REDIRECT, clientId: 'cli' }),
        ),
      );
      const ok = results.filter((r) => r.status === 200);
      assert.equal(ok.length, 1, 'exactly one redemption succeeds');
      for (const r of results.filter((x) => x.status !== 200)) {
        assert.equal(((await r.json()) as { error: string }).error, 'invalid_grant');
      }
      const { refresh_token } = (await ok[0]!.json()) as { refresh_token: string };
      const refresh = await fetch(`${idp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token, client_id: 'cli' }),
      });
      assert.equal(refresh.status, 400, 'the race revoked the grant the winner got');
    });

    test('refused: a code redeemed with another redirect_uri → invalid_grant', async () => {
      const s = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'alice',
        password: PASSWORD,
      });
      const res = await redeem(idp.issuer, {
        code: s.code,
        verifier: s.verifier,
        redirectUri: 'http://127.0.0.1/other',
        clientId: 'cli',
      });
      assert.equal(((await res.json()) as { error: string }).error, 'invalid_grant');
    });

    test('unknown user and wrong password: same status, same body', async () => {
      const at = await atLogin();
      const unknown = await submitLogin('nobody-here', PASSWORD, at);
      const wrong = await submitLogin('alice', 'not the right passphrase at all', at);
      assert.equal(unknown.status, 400);
      assert.equal(wrong.status, unknown.status);
      assert.equal(wrong.body, unknown.body, 'byte-identical pages');
      assert.equal(errorOf(wrong.body), 'invalid_credentials');
      await idp.identity.accounts.unlock('alice');
    });

    test('a disabled account looks like a wrong password, and its refresh tokens stop working (invalid_grant)', async () => {
      const bob = await idp.identity.accounts.create({ username: 'bob', password: PASSWORD, roles: [] });
      const s = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'bob',
        password: PASSWORD,
      });
      const { refresh_token } = (await (
        await redeem(idp.issuer, { code: s.code, verifier: s.verifier, redirectUri: REDIRECT, clientId: 'cli' })
      ).json()) as { refresh_token: string };
      await idp.identity.accounts.setDisabled(bob.id, true);
      const login = await submitLogin('bob', PASSWORD);
      assert.equal(login.status, 400);
      assert.equal(errorOf(login.body), 'invalid_credentials');
      const refresh = await fetch(`${idp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token, client_id: 'cli' }),
      });
      assert.equal(((await refresh.json()) as { error: string }).error, 'invalid_grant');
    });

    test('throttling: growing delays, then a lockout that refuses even the right password (429, Retry-After)', async () => {
      await idp.identity.accounts.create({ username: 'carol', password: PASSWORD, roles: [] });
      const codes: (string | null)[] = [];
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await submitLogin('carol', `wrong passphrase number ${i}`);
        statuses.push(res.status);
        codes.push(errorOf(res.body));
        clock += 3_000; // past each growing delay (max 2 s here), not past the lockout
      }
      assert.deepEqual(statuses, [400, 400, 400, 400, 400]);
      const locked = await submitLogin('carol', PASSWORD);
      assert.equal(locked.status, 429, 'locked: the right password is refused too');
      assert.equal(errorOf(locked.body), 'too_many_attempts');
      assert.ok(Number(locked.headers.get('retry-after')) > 60);
      assert.ok(idp.audit.events.some((e) => e.type === AUDIT_EVENTS.accountLocked));
      // The same happens for a username that does not exist: lockouts reveal nothing.
      for (let i = 0; i < 5; i++) {
        await submitLogin('nobody-carol', `wrong passphrase number ${i}`);
        clock += 3_000;
      }
      assert.equal((await submitLogin('nobody-carol', PASSWORD)).status, 429);
      // Cancelling from the locked page returns access_denied to the client.
      const at = await atLogin();
      const cancel = await at.agent.request(actionOf(at.page.body, 'abort', idp.issuer), {
        form: { csrf: csrfOf(at.page.body) },
      });
      const back = await at.agent.follow(cancel, idp.issuer);
      assert.equal(new URL(back.location!).searchParams.get('error'), 'access_denied');
      // After the lockout, and after an administrator's unlock, the right password works again.
      clock += 901_000;
      const after = await submitLogin('carol', PASSWORD);
      assert.equal(after.status, 303);
      await idp.identity.accounts.unlock('carol');
    });

    test('a delay between failures: an attempt inside it is refused without checking the password', async () => {
      await idp.identity.accounts.create({ username: 'dave', password: PASSWORD, roles: [] });
      await submitLogin('dave', 'wrong passphrase one!');
      await submitLogin('dave', 'wrong passphrase two!');
      const early = await submitLogin('dave', PASSWORD);
      assert.equal(early.status, 429);
      clock += 3_000;
      assert.equal((await submitLogin('dave', PASSWORD)).status, 303);
    });

    test('refused: expired interaction → invalid_request', async () => {
      const at = await atLogin();
      clock += 61_000;
      const res = await submitLogin('alice', PASSWORD, at);
      assert.equal(res.status, 400);
      assert.equal(errorOf(res.body), 'invalid_request');
      clock -= 61_000;
    });

    test('CSRF: a missing or foreign token, or a cross-site origin, is refused', async () => {
      const at = await atLogin();
      const url = actionOf(at.page.body, 'login', idp.issuer);
      const form = { username: 'alice', password: PASSWORD };
      assert.equal((await at.agent.request(url, { form })).status, 403);
      assert.equal((await at.agent.request(url, { form: { ...form, csrf: 'x'.repeat(43) } })).status, 403);
      const other = await atLogin();
      assert.equal((await at.agent.request(url, { form: { ...form, csrf: csrfOf(other.page.body) } })).status, 403);
      const cross = await at.agent.request(url, {
        form: { ...form, csrf: csrfOf(at.page.body) },
        headers: { origin: 'https://evil.example' },
      });
      assert.equal(cross.status, 403);
      const site = await at.agent.request(url, {
        form: { ...form, csrf: csrfOf(at.page.body) },
        headers: { 'sec-fetch-site': 'cross-site' },
      });
      assert.equal(site.status, 403);
    });

    test('hostile form bodies: duplicates, wrong content type, oversized', async () => {
      const at = await atLogin();
      const url = actionOf(at.page.body, 'login', idp.issuer);
      const csrf = csrfOf(at.page.body);
      const cookie = at.agent.cookieHeader(new URL(url));
      const post = (body: string, type = 'application/x-www-form-urlencoded') =>
        fetch(url, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': type }, body });
      assert.equal((await post(`csrf=${csrf}&username=alice&username=mallory&password=x`)).status, 400);
      assert.equal((await post(JSON.stringify({ csrf, username: 'alice' }), 'application/json')).status, 415);
      assert.equal((await post(`csrf=${csrf}&password=${'x'.repeat(20_000)}`)).status, 413);
      assert.equal((await fetch(url, { method: 'GET' })).status, 405);
      assert.equal((await fetch(`${idp.issuer}/interaction/..%2f..%2fadmin`)).status, 404);
    });

    test('TOTP: enrollment at first login when MFA is required, challenge next time, replay refused, recovery codes single use', async () => {
      await idp.identity.accounts.create({ username: 'erin', password: PASSWORD, roles: ['admin'] });
      let secret: Buffer | null = null;
      const first = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'erin',
        password: PASSWORD,
        totp: (shown) => {
          secret = base32(shown!);
          return currentTotp(secret, now());
        },
      });
      assert.ok(secret);
      assert.equal(first.recoveryCodes.length, 10);
      assert.ok(idp.audit.events.some((e) => e.type === AUDIT_EVENTS.mfaEnrolled));
      const stored = await idp.identity.accounts.getByUsername('erin');
      assert.equal(stored?.mfaEnrolled, true);
      const record = (await idp.store.findAccountByUsername('erin'))!;
      assert.ok(!record.totpSecret!.includes(secret!), 'the TOTP secret is sealed at rest');

      // Same 30-second step: the code just used at enrollment is refused at the next login (replay).
      const replayedCode = currentTotp(secret!, now());
      const at = await atLogin({ prompt: 'login' });
      const afterPassword = await at.agent.follow(await submitLogin('erin', PASSWORD, at), idp.issuer);
      assert.match(afterPassword.body, /\/mfa"/);
      const replay = await at.agent.request(actionOf(afterPassword.body, 'mfa', idp.issuer), {
        form: { csrf: csrfOf(afterPassword.body), code: replayedCode },
      });
      assert.equal(replay.status, 400);
      assert.equal(errorOf(replay.body), 'invalid_code');
      assert.ok(idp.audit.events.some((e) => e.type === AUDIT_EVENTS.mfaFailed && e.reason === 'replayed_code'));

      // The next step's code works once.
      clock += 30_000;
      const fresh = currentTotp(secret!, now());
      const ok = await at.agent.request(actionOf(afterPassword.body, 'mfa', idp.issuer), {
        form: { csrf: csrfOf(afterPassword.body), code: fresh },
      });
      assert.equal(ok.status, 303);
      const consented = await signIn(
        idp.issuer,
        {
          clientId: 'cli',
          redirectUri: REDIRECT,
          username: 'erin',
          password: PASSWORD,
          totp: () => fresh,
          extra: { prompt: 'login consent' },
        },
        new Agent(),
      ).catch((err: unknown) => err);
      assert.ok(consented instanceof Error, 'the same code cannot sign in a second browser');

      // A recovery code signs in once.
      const code = first.recoveryCodes[0]!;
      const viaRecovery = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'erin',
        password: PASSWORD,
        totp: () => code.toLowerCase(),
      });
      assert.ok(viaRecovery.code);
      const reuse = await signIn(idp.issuer, {
        clientId: 'cli',
        redirectUri: REDIRECT,
        username: 'erin',
        password: PASSWORD,
        totp: () => code,
      }).catch((err: unknown) => err);
      assert.ok(reuse instanceof Error, 'a recovery code works once');
      assert.ok(idp.audit.events.some((e) => e.type === AUDIT_EVENTS.recoveryCodeUsed));
    });

    test('audit events never contain passwords, codes or tokens', async () => {
      const text = JSON.stringify(idp.audit.events);
      assert.ok(!text.includes(PASSWORD));
      assert.ok(!text.includes('wrong passphrase'));
      assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}/);
    });

    test('timing: unknown user and wrong password are indistinguishable within noise', async () => {
      // Fresh usernames each time so no throttling delay applies; interleaved to share the noise.
      const samples = { unknown: [] as number[], wrong: [] as number[] };
      const users: string[] = [];
      for (let i = 0; i < 6; i++) {
        const name = `timing-${i}`;
        await idp.identity.accounts.create({ username: name, password: PASSWORD, roles: [] });
        users.push(name);
      }
      const at = await atLogin();
      const url = actionOf(at.page.body, 'login', idp.issuer);
      const csrf = csrfOf(at.page.body);
      const time = async (username: string) => {
        const start = performance.now();
        const res = await at.agent.request(url, { form: { csrf, username, password: 'definitely wrong passphrase' } });
        assert.equal(res.status, 400);
        return performance.now() - start;
      };
      for (let round = 0; round < 24; round++) {
        const user = users[round % users.length]!;
        if (round % 2 === 0) {
          samples.unknown.push(await time(`ghost-${round}`));
          samples.wrong.push(await time(user));
        } else {
          samples.wrong.push(await time(user));
          samples.unknown.push(await time(`ghost-${round}`));
        }
        // Stay under the free failures of each username.
        if (round % users.length === users.length - 1) {
          for (const u of users) await idp.identity.accounts.unlock(u);
        }
        await delay(1);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const mu = median(samples.unknown);
      const mw = median(samples.wrong);
      // Both pay one argon2id verification (~tens of ms); skipping it for unknown users would make the
      // unknown median a small fraction of the other. Generous bound: the machine is shared.
      assert.ok(
        Math.min(mu, mw) / Math.max(mu, mw) > 0.6,
        `medians unknown=${mu.toFixed(1)} ms, wrong=${mw.toFixed(1)} ms`,
      );
    });
  });
