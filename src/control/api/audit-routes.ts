import { type AuditEvent, validateAuditEvent } from '../../core/audit-event.ts';
import { isRampartError } from '../../core/errors.ts';
import type { AnyAuditLog, SignedCheckpoint } from '../audit/log.ts';
import { apiError, CONTROL_API_ERRORS } from './errors.ts';
import { type ApiRoutes, apiCaller, integerField, onlyFields, parseJson, stringField } from './request.ts';

/** Bounds of the audit routes, each with its reason. */
export const AUDIT_ROUTE_LIMITS = Object.freeze({
  /**
   * Events per batch: the audit client sends at most 500 (AUDIT_CLIENT_DEFAULTS.batchMaxEvents);
   * twice that leaves room for a client tuned differently and bounds one request's share of a commit.
   */
  maxEvents: 1_000,
  /**
   * A batch body: the client sends at most 256 KiB of events. 1 MiB bounds what one request makes
   * the control plane parse (events are at most 8 KiB each, a typical one ~400 bytes).
   */
  maxBatchBodyBytes: 1024 * 1024,
  /** The other routes take one small JSON object. */
  maxQueryBodyBytes: 1024,
});

/** The routes, for clients and tests. */
export const AUDIT_ROUTES = Object.freeze({
  events: 'POST /v1/audit/events',
  checkpoint: 'POST /v1/audit/checkpoint',
  inclusion: 'POST /v1/audit/proofs/inclusion',
  consistency: 'POST /v1/audit/proofs/consistency',
});

export interface AuditRoutesOptions {
  /**
   * The control plane's audit log (control/audit `connectAuditLog`): SQLite, whose proofs and
   * checkpoints return at once, or PostgreSQL, where they are promises; the routes await both.
   */
  log: AnyAuditLog;
  /** Callers' SVIDs must belong to it. */
  trustDomain: string;
}

/** A signed checkpoint on the wire: the root in base64, the note byte for byte. */
export interface CheckpointResponse {
  origin: string;
  size: number;
  root: string;
  note: string;
  createdAt: number;
}

/** What `POST /v1/audit/events` answers once the batch is durable. */
export interface EventsResponse {
  /** Events of the batch now in the log, all of them. */
  acknowledged: number;
  /** Of those, events the log already had (a batch sent again after a lost answer). */
  duplicates: number;
  /** Each event's leaf index, in the batch's order. */
  indexes: number[];
}

const b64 = (buf: Buffer) => buf.toString('base64');

function checkpointBody(origin: string, c: SignedCheckpoint): CheckpointResponse {
  return { origin, size: c.size, root: b64(c.root), note: c.note, createdAt: c.createdAt };
}

/**
 * The audit log's routes on the control plane's API (issue 6 "Delivery", "inclusion and consistency
 * proofs over an API"), all over mutual TLS: the caller is the SPIFFE ID of the verified client
 * certificate (401 without one), never anything in the body.
 *
 * | route | body | answer |
 * | --- | --- | --- |
 * | `POST /v1/audit/events` | `{events: [...]}` (1–1,000) | {@link EventsResponse}, once durable |
 * | `POST /v1/audit/checkpoint` | none or `{}` | the latest signed checkpoint |
 * | `POST /v1/audit/proofs/inclusion` | `{eventId}` or `{index}` | checkpoint, index, leaf hash, proof |
 * | `POST /v1/audit/proofs/consistency` | `{fromSize}` | checkpoint, proof from `fromSize` to it |
 *
 * A submitted event must be valid as it stands (core/audit-event.ts), name the caller's own
 * workload as its `component` and carry no `reporter`: the control plane sets `reporter` to the
 * caller's SPIFFE ID, so no component can pass its events off as another's. One invalid event
 * refuses the batch (400, nothing appended; the client then sends its events one by one and skips
 * the bad one). The batch is appended with the log's group commit and answered only once durable;
 * an event id the log holds with the same content is acknowledged again as a duplicate (a retried
 * batch), with other content 409 AUDIT_ERR_ID_CONFLICT. A busy log answers 503 and the client keeps
 * its spool. Refusals carry the code and an error id only (server.ts).
 */
export function createAuditRoutes(options: AuditRoutesOptions): ApiRoutes {
  const { log, trustDomain } = options;
  return {
    [AUDIT_ROUTES.events]: {
      maxBodyBytes: AUDIT_ROUTE_LIMITS.maxBatchBodyBytes,
      handle: async (req, body): Promise<EventsResponse> => {
        const caller = apiCaller(req, trustDomain);
        if (caller.service === null) throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'not a service' });
        const json = parseJson(body);
        onlyFields(json, ['events']);
        const events = json.events;
        if (!Array.isArray(events) || events.length === 0 || events.length > AUDIT_ROUTE_LIMITS.maxEvents) {
          throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'events' });
        }
        const reporter = caller.spiffeId.id;
        const stamped: AuditEvent[] = events.map((value: unknown, i) => {
          let event: AuditEvent;
          try {
            event = validateAuditEvent(value);
          } catch (cause) {
            const detail = isRampartError(cause) ? cause.detail : undefined;
            throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'event', index: i, ...detail }, cause);
          }
          if (event.reporter !== undefined) {
            throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'event', index: i, field: 'reporter' });
          }
          if (event.component !== caller.service) {
            throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'event', index: i, field: 'component' });
          }
          return { ...event, reporter };
        });
        const receipts = await log.append(stamped);
        return {
          acknowledged: receipts.length,
          duplicates: receipts.filter((r) => r.duplicate).length,
          indexes: receipts.map((r) => r.index),
        };
      },
    },
    [AUDIT_ROUTES.checkpoint]: {
      maxBodyBytes: AUDIT_ROUTE_LIMITS.maxQueryBodyBytes,
      handle: async (req, body): Promise<CheckpointResponse> => {
        apiCaller(req, trustDomain);
        if (body !== null) onlyFields(parseJson(body), []);
        // The latest signed one: callers cannot make the log sign (the periodic timer and proofs do),
        // except the very first, so that a new log has something to show.
        const latest = log.latestCheckpoint() ?? (await log.checkpoint());
        return checkpointBody(log.origin, latest);
      },
    },
    [AUDIT_ROUTES.inclusion]: {
      maxBodyBytes: AUDIT_ROUTE_LIMITS.maxQueryBodyBytes,
      handle: async (req, body) => {
        apiCaller(req, trustDomain);
        const json = parseJson(body);
        onlyFields(json, ['eventId', 'index']);
        if ((json.eventId === undefined) === (json.index === undefined)) {
          throw apiError(CONTROL_API_ERRORS.badRequest, { reason: 'field', field: 'eventId|index' });
        }
        const target = json.eventId !== undefined ? stringField(json, 'eventId', 36) : integerField(json, 'index');
        const proof = await log.proveInclusion(target);
        return {
          checkpoint: checkpointBody(log.origin, proof.checkpoint),
          index: proof.index,
          leafHash: b64(proof.leafHash),
          proof: proof.proof.map(b64),
        };
      },
    },
    [AUDIT_ROUTES.consistency]: {
      maxBodyBytes: AUDIT_ROUTE_LIMITS.maxQueryBodyBytes,
      handle: async (req, body) => {
        apiCaller(req, trustDomain);
        const json = parseJson(body);
        onlyFields(json, ['fromSize']);
        const proof = await log.proveConsistency(integerField(json, 'fromSize'));
        return {
          checkpoint: checkpointBody(log.origin, proof.checkpoint),
          fromSize: proof.fromSize,
          proof: proof.proof.map(b64),
        };
      },
    },
  };
}
