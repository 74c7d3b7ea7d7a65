import type pg from 'pg';
import { AUDIT_ERRORS, auditError } from './errors.ts';
import { type AuditQuery, compileQuery, type QueryResult, toQueryResult } from './query.ts';

/**
 * `rampart audit tail|query` over PostgreSQL: the filters of query.ts, evaluated by the server over the
 * stored canonical JSON (`entry_json`, created with the schema: NULL for bytes that are not JSON, so a
 * tampered row drops out of filtered queries instead of failing them, as json_valid does in SQLite).
 * Times compare in the "C" collation: byte order, as SQLite compares them, whatever the database's
 * collation.
 */

const FIELD = (path: string) => `entry_json(entry) #>> '{${path}}'`;

/** Runs a query over the log visible through `client`. Throws AUDIT_ERR_EVENT for a malformed filter. */
export async function queryPostgresEvents(
  client: Pick<pg.ClientBase, 'query'>,
  query: AuditQuery = {},
): Promise<QueryResult[]> {
  const q = compileQuery(query);
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (q.actor !== undefined) {
    const actor = param(q.actor);
    where.push(
      `(${FIELD('actor,spiffeId')} = ${actor} OR ${FIELD('actor,subject')} = ${actor} OR ${FIELD('actor,clientId')} = ${actor})`,
    );
  }
  if (q.action !== undefined) {
    if ('prefix' in q.action) {
      where.push(`left(${FIELD('action')}, ${param(q.action.prefix.length)}) = ${param(q.action.prefix)}`);
    } else {
      where.push(`${FIELD('action')} = ${param(q.action.exact)}`);
    }
  }
  if (q.decision !== undefined) where.push(`${FIELD('decision')} = ${param(q.decision)}`);
  if (q.component !== undefined) where.push(`${FIELD('component')} = ${param(q.component)}`);
  if (q.since !== undefined) where.push(`${FIELD('time')} COLLATE "C" >= ${param(q.since)}`);
  if (q.until !== undefined) where.push(`${FIELD('time')} COLLATE "C" < ${param(q.until)}`);
  if (q.afterIndex !== undefined) where.push(`idx > ${param(q.afterIndex)}`);
  const filter = where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`;
  const sql = `SELECT idx, entry FROM entries ${filter} ORDER BY idx ${q.order} LIMIT ${param(q.limit)}`;
  let rows: { idx: string; entry: Buffer }[];
  try {
    rows = (await client.query(sql, params)).rows;
  } catch (cause) {
    throw auditError(AUDIT_ERRORS.storage, { reason: 'read' }, cause);
  }
  return rows.map((row) => toQueryResult(Number(row.idx), row.entry));
}

/** The last `count` matching events, oldest first. */
export async function tailPostgresEvents(
  client: Pick<pg.ClientBase, 'query'>,
  query: Omit<AuditQuery, 'order' | 'limit'>,
  count: number,
): Promise<QueryResult[]> {
  return (await queryPostgresEvents(client, { ...query, order: 'desc', limit: count })).reverse();
}
