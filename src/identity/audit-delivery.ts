import type { AuditClient } from '../control/audit/client.ts';
import type { AuditDetailValue, AuditEventInput } from '../core/audit-event.ts';
import { AUDIT_EVENTS, type AuditEmitter, type AuditEvent, sanitize } from './audit.ts';

/** Identity events that record a refusal; every other type records something that was done. */
const DENIALS: ReadonlySet<string> = new Set([
  AUDIT_EVENTS.loginFailed,
  AUDIT_EVENTS.loginThrottled,
  AUDIT_EVENTS.accountLocked,
  AUDIT_EVENTS.mfaFailed,
  AUDIT_EVENTS.tokenReuse,
  AUDIT_EVENTS.adminDenied,
]);

/**
 * The audit-log event of an identity event: the type as the action (`identity.login.failed`), a
 * refusal as `deny` and anything done as `allow`, the acting account and client as the actor, what
 * the event is about (an account, a client, a token reference) as the resource, the client address
 * and the remaining facts as detail (lists joined with commas: the log's detail holds scalars only).
 */
export function identityAuditInput(event: AuditEvent): AuditEventInput {
  const clean = sanitize(event);
  const detail: Record<string, AuditDetailValue> = {};
  if (clean.ip !== undefined) detail.clientIp = clean.ip;
  for (const [key, value] of Object.entries(clean.detail ?? {})) {
    detail[key] = Array.isArray(value) ? value.join(',') : value;
  }
  return {
    component: 'identity',
    action: clean.type,
    decision: DENIALS.has(clean.type) ? 'deny' : 'allow',
    reason: clean.reason,
    resource: clean.subject,
    actor: { subject: clean.actor, clientId: clean.clientId },
    detail,
  };
}

/**
 * Identity events through the audit client (issue 6: every component emits through one client):
 * spooled in the identity provider's data directory, delivered to the control plane's audit log.
 */
export function createDeliveredAudit(client: AuditClient): AuditEmitter {
  return { emit: (event) => void client.emit(identityAuditInput(event)) };
}
