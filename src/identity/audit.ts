import { createHash } from 'node:crypto';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { Counter, type Registry } from 'prom-client';

/**
 * Security events of the identity provider (issue 5 §6). The tamper-evident audit log is its own issue;
 * until it lands, events go through this interface to a JSON-lines file in the identity's data
 * directory. Events never carry a password, code, secret or token in clear: tokens are named by
 * {@link tokenRef}, a one-way reference.
 */
export const AUDIT_EVENTS = {
  loginSucceeded: 'identity.login.succeeded',
  loginFailed: 'identity.login.failed',
  loginThrottled: 'identity.login.throttled',
  accountLocked: 'identity.account.locked',
  mfaEnrolled: 'identity.mfa.enrolled',
  mfaFailed: 'identity.mfa.failed',
  mfaReset: 'identity.mfa.reset',
  recoveryCodeUsed: 'identity.mfa.recovery_code_used',
  tokenIssued: 'identity.token.issued',
  tokenRevoked: 'identity.token.revoked',
  grantRevoked: 'identity.grant.revoked',
  tokenReuse: 'identity.token.reuse_detected',
  adminAction: 'identity.admin.action',
  adminDenied: 'identity.admin.denied',
  keysRotated: 'identity.keys.rotated',
  logout: 'identity.logout',
} as const;

export type AuditEventType = (typeof AUDIT_EVENTS)[keyof typeof AUDIT_EVENTS];

export interface AuditEvent {
  type: AuditEventType;
  /** Account id, client id or `bootstrap`, when known. */
  actor?: string;
  /** What the event is about (an account id, a client id, a token reference). */
  subject?: string;
  clientId?: string;
  /** Client address (the socket's). */
  ip?: string;
  /** A stable reason code (`bad_credentials`, `throttled`, …). */
  reason?: string;
  detail?: Record<string, string | number | boolean | null | string[]>;
}

export interface AuditEmitter {
  emit(event: AuditEvent): void;
}

/** Field names that must never reach the audit file, whatever a caller puts in `detail`. */
const FORBIDDEN_DETAIL = /pass|secret|token|code|otp|cookie|authorization/i;

/** A one-way reference to a token or opaque artifact id: enough to correlate, useless to replay. */
export function tokenRef(value: string): string {
  return createHash('sha256').update('rampart/identity/token-ref/v1\0').update(value).digest('base64url').slice(0, 22);
}

/** Removes detail fields whose names suggest a credential (defense in depth). */
export function sanitize(event: AuditEvent): AuditEvent {
  if (!event.detail) return event;
  const detail: AuditEvent['detail'] = {};
  for (const [key, value] of Object.entries(event.detail)) if (!FORBIDDEN_DETAIL.test(key)) detail[key] = value;
  return { ...event, detail };
}

/**
 * Appends events as JSON lines to `file` (mode 0600), one synchronous `write` per event (`O_SYNC`: the
 * permission model the launcher runs this process under disables `fsync`), so an event the provider
 * acted on is on disk before it answers (security events are few: logins, admin actions).
 */
export function createFileAudit(file: string, now: () => number = Date.now): AuditEmitter & { close(): void } {
  const fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_SYNC, 0o600);
  let open = true;
  return {
    emit(event) {
      if (!open) return;
      const line = `${JSON.stringify({ at: new Date(now()).toISOString(), ...sanitize(event) })}\n`;
      writeSync(fd, line);
    },
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

/** Events kept in memory (tests). */
export function createMemoryAudit(): AuditEmitter & { events: AuditEvent[] } {
  const events: AuditEvent[] = [];
  return {
    events,
    emit(event) {
      events.push(sanitize(event));
    },
  };
}

/**
 * Counts every event by type in `rampart_identity_events_total{type}` (a bounded label: the event
 * types above) before passing it on: logins, failures, lockouts and token issuance become metrics
 * for alerting without a second code path.
 */
export function withMetrics(inner: AuditEmitter, registry: Registry): AuditEmitter {
  const counter = new Counter({
    name: 'rampart_identity_events_total',
    help: 'Security events of the identity provider, by type',
    labelNames: ['type'],
    registers: [registry],
  });
  for (const type of Object.values(AUDIT_EVENTS)) counter.inc({ type }, 0);
  return {
    emit(event) {
      counter.inc({ type: event.type });
      inner.emit(event);
    },
  };
}
