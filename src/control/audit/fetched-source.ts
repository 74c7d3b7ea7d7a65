import { AUDIT_ERRORS, auditError } from './errors.ts';
import { HASH_BYTES, type SubtreeSource } from './merkle.ts';

/**
 * Proofs and roots over a store that answers asynchronously (PostgreSQL). The merkle.ts functions ask a
 * {@link SubtreeSource} synchronously, and which subtrees they ask for depends only on sizes and
 * indexes, never on hash values: so a computation is run once against a recording source to learn the
 * (level, index) pairs it needs, those are fetched in one query, and it is run again over the fetched
 * hashes. One round trip per proof instead of one per node.
 */

/** A perfect subtree: (level, index). */
export type NodeKey = readonly [level: number, index: number];

/** Fetches stored subtree hashes; a key not stored is simply absent from the result. */
export type FetchNodes = (keys: readonly NodeKey[]) => Promise<Map<string, Buffer>>;

/** The map key of a node. */
export function nodeKey(level: number, index: number): string {
  return `${level}/${index}`;
}

const PLACEHOLDER = Buffer.alloc(HASH_BYTES);

/** The subtrees `compute` reads, without their hashes. */
export function nodesNeeded(compute: (source: SubtreeSource) => unknown): NodeKey[] {
  const seen = new Map<string, NodeKey>();
  compute({
    perfect: (level, index) => {
      seen.set(nodeKey(level, index), [level, index]);
      return PLACEHOLDER;
    },
  });
  return [...seen.values()];
}

/** A source over fetched hashes; a node the store lacks is a damaged store (AUDIT_ERR_TAMPERED). */
export function fetchedSource(nodes: ReadonlyMap<string, Buffer>): SubtreeSource {
  return {
    perfect: (level, index) => {
      const hash = nodes.get(nodeKey(level, index));
      if (hash === undefined) throw auditError(AUDIT_ERRORS.tampered, { reason: 'missing_node', level, index });
      return hash;
    },
  };
}

/** Runs `compute` over the stored subtree hashes it needs, fetched in one call. */
export async function withFetchedNodes<T>(fetch: FetchNodes, compute: (source: SubtreeSource) => T): Promise<T> {
  const keys = nodesNeeded(compute);
  const nodes = keys.length === 0 ? new Map<string, Buffer>() : await fetch(keys);
  return compute(fetchedSource(nodes));
}
