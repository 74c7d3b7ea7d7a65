import { type AuditEvent, type AuditEventInput, withReporter } from '../core/audit-event.ts';
import type { Logger } from '../core/logger.ts';
import { serviceSpiffeId } from '../core/spiffe.ts';
import type { ApiRefusal } from './api/server.ts';
import { buildAuditEvent } from './audit/client.ts';
import type { AnyAuditLog } from './audit/log.ts';
import type { CaEvent, CertificateAuthority, IssuedSvid } from './ca/index.ts';

/** The audit actions of the CA's API routes; other routes' refusals are `api.request`. */
const ROUTE_ACTIONS: Readonly<Record<string, string>> = {
  'POST /v1/join-tokens': 'join_token.mint',
  'POST /v1/svids': 'svid.issue',
  'POST /v1/svids/renew': 'svid.renew',
  'POST /v1/bundle/ack': 'bundle.ack',
};

export interface ControlAuditOptions {
  /** The control plane's audit log, on SQLite or PostgreSQL (only `append` is used, which is async on both). */
  log: AnyAuditLog;
  trustDomain: string;
  logger: Logger;
}

/**
 * What the control plane records in its own audit log, directly (it holds the log; the audit client
 * is for the other processes): the CA's decisions — join tokens minted, SVIDs and the gateway's edge
 * certificates issued, SVIDs renewed, the CA's rotation steps — and every refusal of its API (a join token that does not redeem, a renewal
 * without a valid SVID, a hostile audit batch). Each event's `reporter` is the control plane's own
 * SPIFFE ID. Recording never fails the operation it records (the CA journals issuance itself); a
 * failed append is logged at error.
 */
export interface ControlAudit {
  /** Appends one event; resolves once durable, or once the failure is logged. */
  record(input: AuditEventInput): Promise<void>;
  /**
   * Appends a validated event with the control plane as reporter; rejects when the append fails. The
   * secrets service's sink (secrets/audit.ts `AuditSink`): a read whose event is not durable fails closed.
   */
  append(event: AuditEvent): Promise<void>;
  /** The CA with issuance (SVIDs, edge certificates), renewal and join-token minting recorded (after they succeed). */
  authority(ca: CertificateAuthority): CertificateAuthority;
  /** For `createControlApi({ onRefusal })`. */
  refusal(refusal: ApiRefusal): void;
  /** For `openCertificateAuthority({ onEvent })`. */
  caEvent(event: CaEvent): void;
}

export function createControlAudit(options: ControlAuditOptions): ControlAudit {
  const { log, logger } = options;
  const reporter = serviceSpiffeId(options.trustDomain, 'control').id;

  const record = async (input: AuditEventInput): Promise<void> => {
    const event = buildAuditEvent(input);
    if (event === null) {
      logger.error({ action: input.action }, 'control plane audit event invalid; not recorded');
      return;
    }
    try {
      await log.append([withReporter(event, reporter)]);
    } catch (err) {
      logger.error({ err, eventId: event.id, action: event.action }, 'control plane audit append failed');
    }
  };

  const issued = (svid: IssuedSvid, action: string, attestation: string) =>
    record({
      component: 'ca',
      action,
      decision: 'allow',
      resource: svid.spiffeId,
      actor: { spiffeId: svid.spiffeId },
      detail: { serial: svid.serial, notAfter: svid.notAfter, generation: svid.generation, attestation },
    });

  return {
    record,
    async append(event) {
      await log.append([withReporter(event, reporter)]);
    },
    authority(ca) {
      const recorded: Partial<CertificateAuthority> = {
        async issue(request) {
          const svid = await ca.issue(request);
          await issued(svid, 'svid.issue', 'direct');
          return svid;
        },
        async issueWithJoinToken(request) {
          const svid = await ca.issueWithJoinToken(request);
          await issued(svid, 'svid.issue', 'join_token');
          return svid;
        },
        async renew(request) {
          const svid = await ca.renew(request);
          await issued(svid, 'svid.renew', 'svid');
          return svid;
        },
        async issueEdgeCertificate(request) {
          const edge = await ca.issueEdgeCertificate(request);
          await record({
            component: 'ca',
            action: 'edge_certificate.issue',
            decision: 'allow',
            resource: edge.names.map((n) => n.value).join(','),
            detail: { serial: edge.serial, notAfter: edge.notAfter, generation: edge.generation },
          });
          return edge;
        },
        mintJoinToken(serviceName, ttlMs) {
          const minted = ca.mintJoinToken(serviceName, ttlMs);
          void record({
            component: 'ca',
            action: 'join_token.mint',
            decision: 'allow',
            resource: serviceSpiffeId(ca.trustDomain, serviceName).id,
            detail: { expiresAt: minted.expiresAt },
          });
          return minted;
        },
      };
      // Everything else is the CA's own member, bound to it (its state is in private fields).
      return new Proxy(ca, {
        get(target, prop) {
          if (Object.hasOwn(recorded, prop)) return recorded[prop as keyof CertificateAuthority];
          const value = Reflect.get(target, prop, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
    refusal(refusal) {
      const action = ROUTE_ACTIONS[refusal.route];
      const path = refusal.route.startsWith('POST /') || refusal.route.startsWith('GET /') ? refusal.route : undefined;
      void record({
        component: action === undefined ? 'control' : 'ca',
        action: action ?? 'api.request',
        decision: refusal.status >= 500 ? 'error' : 'deny',
        reason: refusal.code,
        resource: path?.slice(path.indexOf(' ') + 1),
        detail: { status: refusal.status, errorId: refusal.errorId },
      });
    },
    caEvent(event) {
      const { type, ...facts } = event;
      const detail: Record<string, string | number | boolean | null> = {};
      for (const [key, value] of Object.entries(facts)) {
        if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || value === null) {
          detail[key] = value;
        }
      }
      void record({ component: 'ca', action: type, decision: 'allow', detail });
    },
  };
}
