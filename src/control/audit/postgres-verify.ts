import type pg from 'pg';
import { AUDIT_DEFAULTS } from './defaults.ts';
import { AUDIT_ERRORS, auditError } from './errors.ts';
import { fetchedSource, nodesNeeded } from './fetched-source.ts';
import { consistencyProof } from './merkle.ts';
import { openPostgresAuditReader, PostgresAuditQueries, type PostgresAuditTarget } from './postgres-database.ts';
import { type ExtraNode, Verification, type VerifyOptions, type VerifyReport } from './verify.ts';
import { ONE_BLOCK } from './verify-range.ts';

/**
 * `rampart audit verify` over PostgreSQL: the checks of verify.ts, reading the entries in pages of
 * {@link AUDIT_DEFAULTS.postgresVerifyPage} by index, each page with the tree nodes its leaves complete
 * (one indexed range per level), all inside one REPEATABLE READ, READ ONLY transaction: every page sees
 * the same snapshot while the log goes on appending.
 */

/** Options of {@link verifyPostgresLog}: those of the SQLite verifier, plus the page size (tests). */
export interface PostgresVerifyOptions extends VerifyOptions {
  pageSize?: number;
}

/** Connects read-only to the log at `target` and verifies it. */
export async function verifyPostgresTarget(
  target: PostgresAuditTarget,
  options: PostgresVerifyOptions = {},
): Promise<VerifyReport> {
  const reader = await openPostgresAuditReader(target);
  try {
    return await verifyPostgresLog(reader.client, options);
  } finally {
    await reader.close();
  }
}

type Row = Record<string, unknown>;

/** Verifies the log visible through `client` (search_path at its schema); nothing is written. */
export async function verifyPostgresLog(
  client: pg.ClientBase,
  options: PostgresVerifyOptions = {},
): Promise<VerifyReport> {
  const pageSize = options.pageSize ?? AUDIT_DEFAULTS.postgresVerifyPage;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) throw auditError(AUDIT_ERRORS.config, { option: 'pageSize' });
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const report = await verifyInSnapshot(client, options, pageSize);
    await client.query('COMMIT');
    return report;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    if (err instanceof Error && 'code' in err && String(err.code).startsWith('AUDIT_ERR_')) throw err;
    throw auditError(AUDIT_ERRORS.storage, { reason: 'read' }, err);
  }
}

async function verifyInSnapshot(
  client: pg.ClientBase,
  options: VerifyOptions,
  pageSize: number,
): Promise<VerifyReport> {
  const store = new PostgresAuditQueries(client);
  const origin = await store.meta('origin');
  const keys = await store.signingKeys();
  const checkpoints = await store.checkpoints();

  // Nodes of levels ≥ 1 fetched for the current page, consumed in index order per level.
  const buffered: [number, Buffer][][] = [];
  const read: number[] = [];
  const nextNode = (level: number): [number, Uint8Array] | undefined => {
    const at = read[level] ?? 0;
    const node = buffered[level]?.[at];
    if (node !== undefined) read[level] = at + 1;
    return node;
  };
  const run = new Verification({ origin, signingKeys: () => keys, checkpoints }, options);
  // The stored node where the recomputed one completes: the next one fetched at its level, in place.
  const range = run.range(0, (level, index) => {
    const node = nextNode(level);
    return node !== undefined && node[0] === index ? node[1] : undefined;
  });

  let after = -1;
  // Leaves [0, done) were covered by earlier pages: their nodes were fetched then.
  let done = 0;
  for (;;) {
    const { rows } = await client.query({
      text: `SELECT e.idx, e.event_id, e.entry, e.leaf_hash, coalesce(n.hash = e.leaf_hash, false) AS in_tree
               FROM entries e LEFT JOIN tree_nodes n ON n.level = 0 AND n.idx = e.idx
              WHERE e.idx > $1 ORDER BY e.idx LIMIT $2`,
      values: [after, pageSize],
    });
    if (rows.length === 0) break;
    const end = Number((rows[rows.length - 1] as Row).idx) + 1;
    await fetchCompletedNodes(client, done, end, buffered, read);
    done = end;
    for (const row of rows as Row[]) {
      if (
        !range.entry(
          Number(row.idx),
          String(row.event_id),
          row.entry as Buffer,
          row.leaf_hash as Buffer,
          row.in_tree === true,
        )
      ) {
        break;
      }
    }
    if (range.stopped || rows.length < pageSize) break;
    after = end - 1;
  }
  // One range, one block: every node is compared as the entries complete it.
  run.combine([range.end(null)], ONE_BLOCK, () => undefined);

  if (!run.stopped) {
    const extra = await firstNodeBeyond(client, run.entries);
    // The stored nodes the consistency proofs read, in one query.
    const keys = run.consistencyPairs().flatMap(([a, b]) => nodesNeeded((source) => consistencyProof(source, a, b)));
    const nodes = keys.length === 0 ? new Map<string, Buffer>() : await store.nodes(keys);
    run.finish(extra, fetchedSource(nodes));
  }
  return run.report();
}

/**
 * The nodes at levels ≥ 1 that leaves [from, to) complete: at level ℓ, the node of index i ends at leaf
 * (i+1)·2^ℓ, so those with from < (i+1)·2^ℓ ≤ to, i.e. i in [⌊from/2^ℓ⌋, ⌊to/2^ℓ⌋). Consecutive pages
 * therefore read each level once, in order, as the SQLite verifier's per-level cursors do; a node
 * missing or out of place shows where the recomputed one is compared.
 */
async function fetchCompletedNodes(
  client: pg.ClientBase,
  from: number,
  to: number,
  buffered: [number, Buffer][][],
  read: number[],
): Promise<void> {
  const levels: number[] = [];
  const lows: number[] = [];
  const highs: number[] = [];
  for (let level = 1; 2 ** level <= to; level++) {
    const width = 2 ** level;
    const lo = Math.floor(from / width);
    const hi = Math.floor(to / width);
    if (hi > lo) {
      levels.push(level);
      lows.push(lo);
      highs.push(hi);
    }
  }
  for (let level = 1; level < 53; level++) {
    // What the previous page fetched and did not consume stays first (it would be a misplaced node).
    const left = (buffered[level] ?? []).slice(read[level] ?? 0);
    buffered[level] = left;
    read[level] = 0;
  }
  if (levels.length === 0) return;
  const { rows } = await client.query({
    text: `SELECT n.level, n.idx, n.hash FROM unnest($1::smallint[], $2::bigint[], $3::bigint[]) AS r(level, lo, hi)
             JOIN tree_nodes n ON n.level = r.level AND n.idx >= r.lo AND n.idx < r.hi
            ORDER BY n.level, n.idx`,
    values: [levels, lows, highs],
  });
  for (const row of rows as Row[]) buffered[Number(row.level)]!.push([Number(row.idx), row.hash as Buffer]);
}

/**
 * The first stored node beyond `entries` leaves, lowest level first (as the SQLite verifier reports):
 * a leaf at index ≥ entries, or a node at level ℓ ≥ 1 of index ≥ ⌊entries/2^ℓ⌋ (those below were all
 * matched against the recomputed tree).
 */
async function firstNodeBeyond(client: pg.ClientBase, entries: number): Promise<ExtraNode | null> {
  const levels = Array.from({ length: 53 }, (_, level) => level);
  const { rows } = await client.query({
    text: `SELECT r.level, (SELECT n.idx FROM tree_nodes n WHERE n.level = r.level AND n.idx >= r.lo ORDER BY n.idx LIMIT 1) AS idx
             FROM unnest($1::smallint[], $2::bigint[]) AS r(level, lo)
            ORDER BY r.level`,
    values: [levels, levels.map((level) => Math.floor(entries / 2 ** level))],
  });
  const first = (rows as Row[]).find((row) => row.idx !== null);
  return first === undefined ? null : { level: Number(first.level), index: Number(first.idx) };
}
