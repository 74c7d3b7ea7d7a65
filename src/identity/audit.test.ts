import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AUDIT_EVENTS, createFileAudit, createMemoryAudit, sanitize, tokenRef, withMetrics } from './audit.ts';

test('events are JSON lines in a 0600 file, with a timestamp, credential-named details dropped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-audit-'));
  try {
    const file = join(dir, 'audit.jsonl');
    const audit = createFileAudit(file, () => Date.UTC(2025, 0, 2, 3, 4, 5));
    audit.emit({ type: AUDIT_EVENTS.loginFailed, subject: 'acct-1', ip: '192.0.2.1', reason: 'bad_password' });
    audit.emit({
      type: AUDIT_EVENTS.adminAction,
      actor: 'acct-2',
      detail: {
        route: 'POST users',
        password: 'hunter2',
        clientSecret: 's3cret',
        refresh_token: 'rt',
        totpCode: '123456',
      },
    });
    audit.close();
    audit.emit({ type: AUDIT_EVENTS.logout });
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 2, 'nothing is written after close');
    assert.deepEqual(lines[0], {
      at: '2025-01-02T03:04:05.000Z',
      type: 'identity.login.failed',
      subject: 'acct-1',
      ip: '192.0.2.1',
      reason: 'bad_password',
    });
    assert.deepEqual(lines[1]!['detail'], { route: 'POST users' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token references are stable, short and do not contain the token', () => {
  const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig';
  assert.equal(tokenRef(token), tokenRef(token));
  assert.notEqual(tokenRef(token), tokenRef(`${token}x`));
  assert.match(tokenRef(token), /^[A-Za-z0-9_-]{22}$/);
  assert.ok(!token.includes(tokenRef(token)));
  assert.deepEqual(sanitize({ type: AUDIT_EVENTS.logout }), { type: AUDIT_EVENTS.logout });
});

test('withMetrics counts events by type (every type present from the start) and passes them on', async () => {
  const { Registry } = await import('prom-client');
  const registry = new Registry();
  const inner = createMemoryAudit();
  const audit = withMetrics(inner, registry);
  audit.emit({ type: AUDIT_EVENTS.loginFailed, reason: 'bad_password' });
  audit.emit({ type: AUDIT_EVENTS.loginFailed, reason: 'unknown_user' });
  const text = await registry.metrics();
  assert.match(text, /rampart_identity_events_total\{type="identity.login.failed"\} 2/);
  assert.match(text, /rampart_identity_events_total\{type="identity.account.locked"\} 0/);
  assert.equal(inner.events.length, 2);
});
