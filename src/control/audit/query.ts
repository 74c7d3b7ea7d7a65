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

/** A validated query: what both stores' SQL is built from. */
export interface CompiledQuery {
  actor?: string;
  action?: { exact: string } | { prefix: string };
  decision?: AuditDecision;
  component?: string;
  /** Normalized to the stored format (`Date#toISOString`), so text comparison is time order. */
  since?: string;
  until?: string;
  afterIndex?: number;
  limit: number;
  order: 'ASC' | 'DESC';
}

function queryError(field: string): Error {
  return auditError(AUDIT_ERRORS.event, { field, reason: 'query' });
}

/** Normalizes a time bound to the stored format, so text comparison is time order. */
function timeBound(field: string, value: string): string {
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw queryError(field);
  return new Date(ms).toISOString();
}

/** Validates a query. Throws AUDIT_ERR_EVENT (detail.field) for a malformed filter. */
export function compileQuery(query: AuditQuery = {}): CompiledQuery {
  const limit = query.limit ?? QUERY_LIMITS.defaultLimit;
  if (query.decision !== undefined && !(AUDIT_DECISIONS as readonly string[]).includes(query.decision)) {
    throw queryError('decision');
  }
  if (query.afterIndex !== undefined && !Number.isSafeInteger(query.afterIndex)) throw queryError('afterIndex');
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > QUERY_LIMITS.maxLimit) throw queryError('limit');
  if (query.order !== undefined && query.order !== 'asc' && query.order !== 'desc') throw queryError('order');
  const compiled: CompiledQuery = { limit, order: query.order === 'desc' ? 'DESC' : 'ASC' };
  if (query.actor !== undefined) compiled.actor = query.actor;
  if (query.action !== undefined) {
    compiled.action = query.action.endsWith('*') ? { prefix: query.action.slice(0, -1) } : { exact: query.action };
  }
  if (query.decision !== undefined) compiled.decision = query.decision;
  if (query.component !== undefined) compiled.component = query.component;
  if (query.since !== undefined) compiled.since = timeBound('since', query.since);
  if (query.until !== undefined) compiled.until = timeBound('until', query.until);
  if (query.afterIndex !== undefined) compiled.afterIndex = query.afterIndex;
  return compiled;
}

/** A stored row as a result: the event, or null when its bytes no longer parse as one. */
export function toQueryResult(index: number, entry: Uint8Array): QueryResult {
  let event: AuditEvent | null;
  try {
    event = parseAuditEntry(entry);
  } catch {
    event = null;
  }
  return { index, event };
}

const TEXT = 'CAST(entry AS TEXT)';

/** Runs a query. Throws AUDIT_ERR_EVENT (detail.field) for a malformed filter. */
export function queryEvents(db: DatabaseSync, query: AuditQuery = {}): QueryResult[] {
  const q = compileQuery(query);
  const where: string[] = [];
  const params: SQLInputValue[] = [];
  if (q.actor !== undefined) {
    where.push(
      `(json_extract(${TEXT}, '$.actor.spiffeId') = ? OR json_extract(${TEXT}, '$.actor.subject') = ? OR json_extract(${TEXT}, '$.actor.clientId') = ?)`,
    );
    params.push(q.actor, q.actor, q.actor);
  }
  if (q.action !== undefined) {
    if ('prefix' in q.action) {
      where.push(`substr(json_extract(${TEXT}, '$.action'), 1, ?) = ?`);
      params.push(q.action.prefix.length, q.action.prefix);
    } else {
      where.push(`json_extract(${TEXT}, '$.action') = ?`);
      params.push(q.action.exact);
    }
  }
  if (q.decision !== undefined) {
    where.push(`json_extract(${TEXT}, '$.decision') = ?`);
    params.push(q.decision);
  }
  if (q.component !== undefined) {
    where.push(`json_extract(${TEXT}, '$.component') = ?`);
    params.push(q.component);
  }
  if (q.since !== undefined) {
    where.push(`json_extract(${TEXT}, '$.time') >= ?`);
    params.push(q.since);
  }
  if (q.until !== undefined) {
    where.push(`json_extract(${TEXT}, '$.time') < ?`);
    params.push(q.until);
  }
  if (q.afterIndex !== undefined) {
    where.push('idx > ?');
    params.push(q.afterIndex);
  }
  // A stored entry that is not JSON makes json_extract fail the whole statement; json_valid keeps
  // such rows out of filtered queries (they still show in unfiltered ones, as unreadable).
  const filter = where.length === 0 ? '' : `WHERE json_valid(${TEXT}) AND ${where.join(' AND ')}`;
  const sql = `SELECT idx, entry FROM entries ${filter} ORDER BY idx ${q.order} LIMIT ?`;
  const rows = db.prepare(sql).all(...params, q.limit) as { idx: number; entry: Uint8Array }[];
  return rows.map((row) => toQueryResult(Number(row.idx), row.entry));
}

/** The last `count` matching events, oldest first. */
export function tailEvents(db: DatabaseSync, query: Omit<AuditQuery, 'order' | 'limit'>, count: number): QueryResult[] {
  return queryEvents(db, { ...query, order: 'desc', limit: count }).reverse();
}
