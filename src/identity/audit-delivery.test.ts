import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildAuditEvent } from '../control/audit/client.ts';
import { AUDIT_EVENTS } from './audit.ts';
import { identityAuditInput } from './audit-delivery.ts';

test('every identity event type becomes a valid audit event; refusals are denials', () => {
  const denials = new Set([
    'login.failed',
    'login.throttled',
    'account.locked',
    'mfa.failed',
    'token.reuse_detected',
    'admin.denied',
  ]);
  for (const type of Object.values(AUDIT_EVENTS)) {
    const event = buildAuditEvent(
      identityAuditInput({
        type,
        actor: 'acct_1',
        subject: 'acct_2',
        clientId: 'shop-web',
        ip: '127.0.0.1',
        reason: 'bad_credentials',
        detail: { route: 'GET users', scopes: ['openid', 'orders'] },
      }),
    );
    assert.ok(event, type);
    assert.equal(event.component, 'identity');
    assert.equal(event.action, type);
    assert.equal(event.decision, denials.has(type.replace(/^identity\./, '')) ? 'deny' : 'allow', type);
    assert.deepEqual(event.actor, { subject: 'acct_1', clientId: 'shop-web' });
    assert.equal(event.resource, 'acct_2');
    assert.deepEqual(event.detail, { clientIp: '127.0.0.1', route: 'GET users', scopes: 'openid,orders' });
  }
});

test('credential-named detail never reaches the audit event', () => {
  const input = identityAuditInput({
    type: AUDIT_EVENTS.loginFailed,
    detail: { password: 'hunter2', otpCode: '123456', route: 'POST login' },
  });
  assert.deepEqual(input.detail, { route: 'POST login' });
});
