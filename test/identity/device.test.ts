/**
 * The device authorization grant's user-facing side (RFC 8628): wrong user codes are rate limited per
 * address, a denied confirmation reaches the polling device as access_denied; and RP-initiated logout
 * through the provider's pages.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { CliError, deviceLogin } from '../../src/cli/identity-client.ts';
import { AUDIT_EVENTS } from '../../src/identity/audit.ts';
import { Agent, errorOf } from './agent.ts';
import { signIn } from './flows.ts';
import { startTestIdentity, TEST_AUDIENCE, type TestIdentity } from './harness.ts';

const PASSWORD = 'a long and unusual passphrase';

/** The hidden fields and action of the one form on a page. */
function formOf(html: string): { action: string; fields: Record<string, string> } {
  const action = /<form method="post" action="([^"]+)"/.exec(html)![1]!.replace(/&amp;/g, '&');
  const fields = Object.fromEntries(
    [...html.matchAll(/type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
  );
  return { action, fields };
}

describe('device flow pages and logout', () => {
  let idp: TestIdentity;

  before(async () => {
    idp = await startTestIdentity({
      throttle: {
        deviceCode: { free: 2, baseDelay: 60, maxDelay: 60, lockAt: 5, lockDuration: 900, forgetAfter: 3600 },
      },
    });
    await idp.identity.accounts.create({ username: 'alice', password: PASSWORD, roles: [] });
    await idp.identity.clients.add({
      kind: 'native',
      clientId: 'app',
      redirectUris: ['http://127.0.0.1/cb'],
      scopes: ['openid'],
    });
  });
  after(async () => {
    await idp?.close();
  });

  test('a denied confirmation ends the device’s polling with access_denied', async () => {
    let verification = '';
    const polling = deviceLogin({
      issuer: idp.issuer,
      resource: TEST_AUDIENCE,
      scope: 'openid',
      sleep: () => delay(20),
      prompt: (v) => {
        verification = v.uriComplete;
      },
    });
    polling.catch(() => {}); // asserted below; never an unhandled rejection if an earlier step fails
    while (!verification) await delay(10);
    const agent = new Agent();
    // The verification URI auto-submits the code (oidc-provider's form_post page); submit it by hand.
    const auto = await agent.request(verification);
    const submitted = formOf(
      auto.body.replace(
        /<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g,
        '<input type="hidden" name="$1" value="$2">',
      ),
    );
    const confirm = await agent.request(new URL(submitted.action, idp.issuer).href, { form: submitted.fields });
    assert.equal(confirm.status, 200);
    assert.match(confirm.body, /<h1>Confirm the device<\/h1>/);
    const { action, fields } = formOf(confirm.body);
    const denied = await agent.request(new URL(action, idp.issuer).href, { form: { ...fields, abort: 'yes' } });
    assert.equal(errorOf(denied.body), 'aborted');
    await assert.rejects(polling, (err) => err instanceof CliError && /denied/.test(err.message));
  });

  test('logout: a confirmation page, then the session is gone and the event is audited', async () => {
    const s = await signIn(idp.issuer, {
      clientId: 'app',
      redirectUri: 'http://127.0.0.1/cb',
      scope: 'openid',
      username: 'alice',
      password: PASSWORD,
    });
    assert.ok(s.agent.cookie('_session'));
    const page = await s.agent.request(`${idp.issuer}/session/end`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<h1>Sign out<\/h1>/);
    assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    const { action, fields } = formOf(page.body);
    const done = await s.agent.follow(
      await s.agent.request(new URL(action, idp.issuer).href, { form: { ...fields, logout: 'yes' } }),
      idp.issuer,
    );
    assert.match(done.body, /<h1>Signed out<\/h1>/);
    assert.equal(s.agent.cookie('_session'), undefined);
    assert.ok(idp.audit.events.some((e) => e.type === AUDIT_EVENTS.logout));
  });
  // Last: it leaves this test process's address throttled for device codes.
  test('wrong user codes: re-rendered with an error, then the address must wait (429)', async () => {
    const agent = new Agent();
    let page = await agent.request(`${idp.issuer}/device`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<label for="user_code">/);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { action, fields } = formOf(page.body);
      page = await agent.request(new URL(action, idp.issuer).href, { form: { ...fields, user_code: `BCDF-GHJ${i}` } });
      statuses.push(page.status);
      if (page.status === 200) assert.equal(errorOf(page.body), 'code_invalid');
    }
    assert.deepEqual(statuses, [200, 200, 429]);
    assert.equal(errorOf(page.body), 'too_many_attempts');
  });
});
