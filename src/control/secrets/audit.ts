import { createHmac, type KeyObject } from 'node:crypto';
import { type AuditDecision, type AuditEvent, createAuditEvent } from '../../core/audit-event.ts';
import { parseSpiffeId } from '../../core/spiffe.ts';
import { MAX_VERSION } from './defaults.ts';
import { SEC_ERRORS, secError } from './errors.ts';

/**
 * What the secrets module tells the audit log. Every read and write emits one event through an injected
 * {@link AuditSink} (the tamper-evident log of src/control/audit plugs in here); an event names the
 * secret by an HMAC reference, never by its value, and not even by its name: the reference is
 * HMAC-SHA-256 over the name and version under a per-store audit key (Vault's approach to audit
 * hashing), so the log can be shared with people who may not learn which secrets exist, while whoever
 * holds the store can compute the reference of a name and search the log for it
 * ({@link SecretsService.auditRef}).
 */

/** Operations the module audits (the event's `action`, dotted lower case as core/audit-event.ts asks). */
export const SECRETS_ACTIONS = {
  /** A service read a value (SecretsService.read). */
  read: 'secret.read',
  /** An operator read a value (`rampart secrets get --reveal`). */
  reveal: 'secret.reveal',
  /** A new version (set or stage). */
  write: 'secret.write',
  promote: 'secret.promote',
  rollback: 'secret.rollback',
  /** Metadata of one secret (versions, labels, authors). */
  history: 'secret.history',
  /** Metadata of every secret. */
  list: 'secret.list',
  /** Every data key re-wrapped under a new key-encryption key. */
  rotateKek: 'secret.rotate_kek',
  /** A reloaded manifest grants a service a secret (`detail.grantee`). */
  grant: 'secret.grant',
  /** A reloaded manifest no longer grants a service a secret (`detail.grantee`). */
  revoke: 'secret.revoke',
} as const;
/** One of {@link SECRETS_ACTIONS}. */
export type SecretsAction = (typeof SECRETS_ACTIONS)[keyof typeof SECRETS_ACTIONS];

/** The `component` of every event this module emits. */
export const SECRETS_COMPONENT = 'secrets';

/**
 * Who acted: a workload (SPIFFE ID, from its verified mTLS certificate) or a person at an operator
 * interface (`subject`: the user's token `sub`, or the local account name at the CLI).
 */
export type SecretsActor = { spiffeId: string } | { subject: string };

/**
 * One audit event: the system-wide schema of src/core/audit-event.ts, built and validated with its
 * `createAuditEvent` (so a value that looks like a credential could not slip in even by mistake).
 * Writes are audited BEFORE they commit (an `allow` event means authorised and attempted; a later
 * `error` event with the same resource means it did not take effect); reads after the value is
 * decrypted and before it is returned. `resource` is `secret:<ref>` (ref = HMAC of name and version;
 * version 0 when none is involved, e.g. a refused read), `secret:*` for a listing, `kek:<id>` for a KEK
 * rotation; `detail` holds `nameRef` (the secret-level reference, for grouping), `version`, `label`.
 */
export type SecretsAuditEvent = AuditEvent;

/**
 * Where events go: the audit log's client. `append` resolves once the event is durable (the log's
 * acknowledgment) and rejects otherwise; a read whose event is not acknowledged returns no value.
 * The audit log of src/control/audit plugs in as `{ append: (e) => log.append([e]).then(() => {}) }`.
 */
export interface AuditSink {
  append(event: SecretsAuditEvent): Promise<void>;
}

/** What the service puts in an event (component, id and time are added). */
export interface SecretsEventInput {
  action: SecretsAction;
  decision: AuditDecision;
  reason: string;
  resource: string;
  actor: SecretsActor | null;
  requestId?: string | undefined;
  traceId?: string | undefined;
  detail?: Record<string, string | number>;
}

/**
 * Builds and validates an event. Request and trace ids come from the front end; one the schema refuses
 * is dropped (`detail.contextDropped`) rather than failing the operation. An actor whose SPIFFE ID is
 * not valid (a hostile caller string that reached a refused read) is left out (`detail.actorInvalid`).
 * Throws AUDIT_ERR_EVENT if the event still does not validate (then the operation fails closed).
 */
export function buildSecretsEvent(input: SecretsEventInput, now: () => number): SecretsAuditEvent {
  const detail: Record<string, string | number | boolean> = { ...input.detail };
  let actor: SecretsActor | undefined = input.actor ?? undefined;
  if (actor && 'spiffeId' in actor) {
    try {
      parseSpiffeId(actor.spiffeId);
    } catch {
      actor = undefined;
      detail['actorInvalid'] = true;
    }
  }
  const base = {
    component: SECRETS_COMPONENT,
    action: input.action,
    decision: input.decision,
    reason: input.reason,
    resource: input.resource,
    ...(actor ? { actor } : {}),
  };
  // Keep what the schema accepts of the request context: both, one, or neither.
  const contexts = [
    { requestId: input.requestId, traceId: input.traceId },
    { requestId: input.requestId },
    { traceId: input.traceId },
    {},
  ];
  let failure: unknown;
  for (const [i, context] of contexts.entries()) {
    try {
      return createAuditEvent(
        { ...base, ...context, detail: i === 0 ? detail : { ...detail, contextDropped: true } },
        { now },
      );
    } catch (err) {
      failure ??= err;
      if (input.requestId === undefined && input.traceId === undefined) break;
    }
  }
  throw failure;
}

/** HMAC key length for references (SHA-256 block-size keys are overkill; 32 bytes is HMAC-SHA-256's strength). */
export const AUDIT_KEY_BYTES = 32;
const REF_DOMAIN = Buffer.from('rampart/secret-ref/v1\0', 'latin1');
/** Longest name input a reference is computed over; a hostile over-long name gets a fixed marker instead. */
const MAX_REF_NAME_BYTES = 256;

/**
 * The reference of `name` (and `version`; 0 for the secret as a whole) under `key`: the hex of
 * HMAC-SHA-256(key, "rampart/secret-ref/v1" NUL name NUL uint32be(version)).
 * Deterministic per store, so a log can be searched; unlinkable to the name without the key.
 */
export function secretRef(key: Uint8Array | KeyObject, name: unknown, version = 0): string {
  if (typeof name !== 'string' || Buffer.byteLength(name, 'utf8') > MAX_REF_NAME_BYTES) return 'invalid-name';
  if (!Number.isInteger(version) || version < 0 || version > MAX_VERSION) return 'invalid-version';
  const suffix = Buffer.alloc(5);
  suffix.writeUInt32BE(version, 1);
  return createHmac('sha256', key).update(REF_DOMAIN).update(name, 'utf8').update(suffix).digest('hex');
}

/**
 * Appends `event`, refusing with SEC_ERR_AUDIT_UNAVAILABLE when the sink rejects, throws or does not
 * answer within `timeoutMs` (a late acknowledgment changes nothing: the operation was already refused).
 */
export async function appendOrRefuse(sink: AuditSink, event: SecretsAuditEvent, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(() => sink.append(event)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`audit append timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (cause) {
    throw secError(SEC_ERRORS.auditUnavailable, { action: event.action, eventId: event.id }, cause);
  } finally {
    clearTimeout(timer);
  }
}
