/**
 * A real browser (Debian's chromium, headless, driven by playwright-core) signs in through the
 * provider's pages: authorization code + PKCE, password, TOTP enrollment (secret read off the page),
 * recovery codes, consent; then a second sign-in with the TOTP challenge, and a replayed code refused.
 * The access token it ends with opens a protected shop route at the gateway. The pages are found by
 * their accessible names (labels, button text), and the browser must report no CSP violation.
 *
 * Needs /usr/bin/chromium (`apt-get install chromium`); skipped without it (failed under CI=true).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { currentTotp } from '../../src/identity/totp.ts';
import { authorizationUrl, newPkce, redeem } from './flows.ts';
import { startGatewayFor, type TestGateway } from './gateway.ts';
import { startTestIdentity, TEST_AUDIENCE, type TestIdentity } from './harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'a long and unusual passphrase';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function base32(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  return Buffer.from(bits.match(/.{8}/g)!.map((b) => Number.parseInt(b, 2)));
}

describe('a real browser signs in with TOTP; the token opens a protected route', { timeout: 120_000 }, () => {
  let idp: TestIdentity;
  let gateway: TestGateway;
  let callbackServer: Server;
  let redirectUri: string;
  const callbacks: URL[] = [];
  let context: BrowserContext | null = null;
  let profile = '';
  let clock = 0;
  const now = () => Date.now() + clock;
  const violations: string[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) return;
    callbackServer = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname !== '/callback') return void res.writeHead(404).end();
      callbacks.push(url);
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html><title>done</title><p>signed in</p>');
    });
    await new Promise<void>((resolve) => callbackServer.listen(0, '127.0.0.1', resolve));
    redirectUri = `http://127.0.0.1:${(callbackServer.address() as AddressInfo).port}/callback`;
    idp = await startTestIdentity({ now });
    await idp.identity.clients.add({
      kind: 'native',
      clientId: 'shop-cli',
      name: 'Shop',
      redirectUris: [redirectUri],
      scopes: ['openid', 'offline_access', 'orders'],
    });
    await idp.identity.accounts.create({
      username: 'alice',
      password: PASSWORD,
      roles: ['customer'],
      mfaRequired: true,
    });
    gateway = await startGatewayFor(idp.issuer, TEST_AUDIENCE);
    profile = mkdtempSync(join(tmpdir(), 'rampart-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS });
    context.setDefaultTimeout(15_000);
  });
  after(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await gateway?.close();
    await idp?.close();
    await new Promise<void>((resolve) => (callbackServer ? callbackServer.close(() => resolve()) : resolve()));
  });

  const skipWithoutBrowser = (t: { skip(reason: string): void }) => {
    if (context) return false;
    const reason = `${CHROMIUM} not installed (apt-get install chromium)`;
    if (process.env['CI'] === 'true') throw new Error(`${reason}; under CI=true this is a failure`);
    t.skip(reason);
    return true;
  };

  const watch = (page: Page) => {
    page.on('console', (msg) => {
      if (/Content Security Policy|Refused to/i.test(msg.text())) violations.push(msg.text());
    });
  };

  /** Opens the authorization request in a fresh page; returns the page and the PKCE verifier. */
  const authorize = async (extra: Record<string, string> = {}) => {
    const { verifier, challenge } = newPkce();
    const page = await context!.newPage();
    watch(page);
    await page.goto(
      authorizationUrl(idp.issuer, {
        client_id: 'shop-cli',
        redirect_uri: redirectUri,
        scope: 'openid offline_access orders',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: 'st4te',
        prompt: 'login consent',
        ...extra,
      }),
    );
    return { page, verifier };
  };

  const passwordStep = async (page: Page) => {
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
  };

  const consentAndCode = async (page: Page) => {
    await page.getByRole('heading', { name: 'Allow access' }).waitFor();
    const before = callbacks.length;
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((url) => url.href.startsWith(redirectUri));
    assert.equal(callbacks.length, before + 1);
    const callback = callbacks.at(-1)!;
    assert.equal(callback.searchParams.get('state'), 'st4te');
    assert.equal(callback.searchParams.get('iss'), idp.issuer);
    return callback.searchParams.get('code')!;
  };

  let secret: Buffer;
  /** When the enrollment code was computed: its time step is the one a replay reuses. */
  let enrolledAt: number;

  test('first sign-in: password, TOTP enrollment from the page, recovery codes, consent; the token opens /orders', async (t) => {
    if (skipWithoutBrowser(t)) return;
    const { page, verifier } = await authorize();
    await passwordStep(page);

    await page.getByRole('heading', { name: 'Set up two-step verification' }).waitFor();
    assert.ok(await page.getByRole('img', { name: /QR code/ }).isVisible(), 'the QR code is shown');
    secret = base32((await page.locator('[data-totp-secret]').getAttribute('data-totp-secret'))!);
    enrolledAt = now();
    await page.getByLabel('6-digit code').fill(currentTotp(secret, enrolledAt));
    await page.getByRole('button', { name: 'Turn on' }).click();

    await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
    assert.equal(await page.locator('[data-recovery-code]').count(), 10);
    await page.getByRole('button', { name: /continue/i }).click();

    const code = await consentAndCode(page);
    const res = await redeem(idp.issuer, { code, verifier, redirectUri, clientId: 'shop-cli' });
    assert.equal(res.status, 200);
    const { access_token } = (await res.json()) as { access_token: string };
    assert.deepEqual(decodeJwt(access_token)['roles'], ['customer']);

    const shop = await fetch(`${gateway.base}/orders/17`, { headers: { authorization: `Bearer ${access_token}` } });
    assert.equal(shop.status, 200, 'the gateway accepts the token on a protected shop route');
    const forged = `${access_token.slice(0, -4)}AAAA`;
    assert.equal(
      (await fetch(`${gateway.base}/orders/17`, { headers: { authorization: `Bearer ${forged}` } })).status,
      401,
    );
    await page.close();
  });

  test('second sign-in: the TOTP challenge; a replayed code is refused, the next one works', async (t) => {
    if (skipWithoutBrowser(t)) return;
    assert.ok(secret, 'needs the enrollment of the previous test');
    // The enrollment code again: a replay of a used time step (recomputing it from the current time could
    // land in the next step if the previous test ran across a 30 s boundary).
    const replayed = currentTotp(secret, enrolledAt);
    const { page, verifier } = await authorize();
    await passwordStep(page);
    await page.getByRole('heading', { name: 'Two-step verification' }).waitFor();
    await page.getByLabel(/authenticator app/).fill(replayed);
    await page.getByRole('button', { name: 'Verify' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.equal(await alert.getAttribute('data-error'), 'invalid_code');

    clock += 30_000;
    await page.getByLabel(/authenticator app/).fill(currentTotp(secret, now()));
    await page.getByRole('button', { name: 'Verify' }).click();
    const code = await consentAndCode(page);
    const res = await redeem(idp.issuer, { code, verifier, redirectUri, clientId: 'shop-cli' });
    assert.equal(res.status, 200);
    const { access_token } = (await res.json()) as { access_token: string };
    assert.deepEqual(decodeJwt(access_token)['amr'] ?? null, null, 'amr belongs in the ID token, not the access token');
    assert.equal(
      (await fetch(`${gateway.base}/orders/1`, { headers: { authorization: `Bearer ${access_token}` } })).status,
      200,
    );
    await page.close();
  });

  test('the browser reported no Content-Security-Policy violation on any page', (t) => {
    if (skipWithoutBrowser(t)) return;
    assert.deepEqual(violations, []);
  });
});
