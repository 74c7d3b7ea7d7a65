import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { AUDIT_DECISIONS, type AuditDecision, type AuditEvent, parseAuditEntry } from '../../core/audit-event.ts';
import { AUDIT_ERRORS, auditError } from './errors.ts';

/**
 * Reading the log back (`rampart audit tail|query`): filters by actor, action, decision, component and
 * time, evaluated by SQLite over the stored canonical JSON (json_extract), newest or oldest first.
 * Results are what is stored, not proof of anything: `rampart audit verify` says whether to believe it.
 */

/** A filter; every field present must match. */
export interface AuditQuery {
  /** Equals the actor's SPIFFE ID, subject or client id. */
  actor?: string;
  /** The action, exactly; or a prefix when it ends in `*` (`secret.*`). */
  action?: string;
  decision?: AuditDecision;
  component?: string;
  /** RFC 3339 UTC bounds: `since` inclusive, `until` exclusive. */
  since?: string;
  until?: string;
  /** Only entries with an index above this (tail --follow). */
  afterIndex?: number;
  /** At most this many results (default 100, at most 100,000). */
  limit?: number;
  /** `asc` (default): oldest first; `desc`: newest first. */
  order?: 'asc' | 'desc';
}

/** One result: the event, or null when the stored bytes no longer parse as one (tampering). */
export interface QueryResult {
  index: number;
  event: AuditEvent | null;
}

/** Query limits, with their reasons. */
export const QUERY_LIMITS = Object.freeze({
  /** What a screen or a pipe wants by default. */
  defaultLimit: 100,
  /** Bounds one query's memory and time; page with `afterIndex`. */
  maxLimit: 100_000,
});

const TEXT = 'CAST(entry AS TEXT)';

function queryError(field: string): Error {
  return auditError(AUDIT_ERRORS.event, { field, reason: 'query' });
}

/** Normalizes a time bound to the stored format (`Date#toISOString`), so text comparison is time order. */
function timeBound(field: string, value: string): string {
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw queryError(field);
  return new Date(ms).toISOString();
}

/** Runs a query. Throws AUDIT_ERR_EVENT (detail.field) for a malformed filter. */
export function queryEvents(db: DatabaseSync, query: AuditQuery = {}): QueryResult[] {
  const where: string[] = [];
  const params: SQLInputValue[] = [];
  if (query.actor !== undefined) {
    where.push(
      `(json_extract(${TEXT}, '$.actor.spiffeId') = ? OR json_extract(${TEXT}, '$.actor.subject') = ? OR json_extract(${TEXT}, '$.actor.clientId') = ?)`,
    );
    params.push(query.actor, query.actor, query.actor);
  }
  if (query.action !== undefined) {
    if (query.action.endsWith('*')) {
      const prefix = query.action.slice(0, -1);
      where.push(`substr(json_extract(${TEXT}, '$.action'), 1, ?) = ?`);
      params.push(prefix.length, prefix);
    } else {
      where.push(`json_extract(${TEXT}, '$.action') = ?`);
      params.push(query.action);
    }
  }
  if (query.decision !== undefined) {
    if (!(AUDIT_DECISIONS as readonly string[]).includes(query.decision)) throw queryError('decision');
    where.push(`json_extract(${TEXT}, '$.decision') = ?`);
    params.push(query.decision);
  }
  if (query.component !== undefined) {
    where.push(`json_extract(${TEXT}, '$.component') = ?`);
    params.push(query.component);
  }
  if (query.since !== undefined) {
    where.push(`json_extract(${TEXT}, '$.time') >= ?`);
    params.push(timeBound('since', query.since));
  }
  if (query.until !== undefined) {
    where.push(`json_extract(${TEXT}, '$.time') < ?`);
    params.push(timeBound('until', query.until));
  }
  if (query.afterIndex !== undefined) {
    if (!Number.isSafeInteger(query.afterIndex)) throw queryError('afterIndex');
    where.push('idx > ?');
    params.push(query.afterIndex);
  }
  const limit = query.limit ?? QUERY_LIMITS.defaultLimit;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > QUERY_LIMITS.maxLimit) throw queryError('limit');
  const order = query.order === 'desc' ? 'DESC' : 'ASC';
  if (query.order !== undefined && query.order !== 'asc' && query.order !== 'desc') throw queryError('order');
  // A stored entry that is not JSON makes json_extract fail the whole statement; json_valid keeps
  // such rows out of filtered queries (they still show in unfiltered ones, as unreadable).
  const filter = where.length === 0 ? '' : `WHERE json_valid(${TEXT}) AND ${where.join(' AND ')}`;
  const sql = `SELECT idx, entry FROM entries ${filter} ORDER BY idx ${order} LIMIT ?`;
  const rows = db.prepare(sql).all(...params, limit) as { idx: number; entry: Uint8Array }[];
  return rows.map((row) => {
    let event: AuditEvent | null;
    try {
      event = parseAuditEntry(row.entry);
    } catch {
      event = null;
    }
    return { index: Number(row.idx), event };
  });
}

/** The last `count` matching events, oldest first. */
export function tailEvents(db: DatabaseSync, query: Omit<AuditQuery, 'order' | 'limit'>, count: number): QueryResult[] {
  return queryEvents(db, { ...query, order: 'desc', limit: count }).reverse();
}
