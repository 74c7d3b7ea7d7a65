import { AUDIT_ERRORS, auditError } from './errors.ts';
import { HASH_BYTES } from './merkle.ts';
import { isKeyName, type NoteSigner, type NoteVerifier, openNote, signNote } from './note.ts';

/**
 * C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): a signed note whose text is
 *
 *   <origin>\n              non-empty; here also a valid key name (the log's key name SHOULD match it)
 *   <tree size>\n           ASCII decimal, no leading zeroes (`0` for the empty tree)
 *   <base64 root hash>\n    standard base64 (RFC 4648 §4) of the RFC 6962 root at that size
 *   [<extension line>\n]*   optional, non-empty, NOT RECOMMENDED: Rampart writes none
 *
 * followed by the signed-note blank line and signature lines (note.ts).
 */

/** A checkpoint's content. */
export interface Checkpoint {
  origin: string;
  size: number;
  root: Buffer;
  /** Extension lines (without newlines); none in the checkpoints Rampart signs. */
  extensions: string[];
}

const SIZE = /^(?:0|[1-9][0-9]*)$/;

function checkpointError(reason: string): Error {
  return auditError(AUDIT_ERRORS.note, { reason });
}

/**
 * True when `origin` may name a Rampart log: a key name (no spaces, no `+`) of at most 200 bytes
 * (it is also part of the KEK context of the signing key, which is limited to 256 bytes).
 */
export function isOrigin(origin: string): boolean {
  return isKeyName(origin) && Buffer.byteLength(origin, 'utf8') <= 200;
}

/** The checkpoint note text (unsigned). */
export function formatCheckpoint(checkpoint: Omit<Checkpoint, 'extensions'> & { extensions?: string[] }): string {
  const { origin, size, root } = checkpoint;
  if (typeof origin !== 'string' || origin.length === 0 || origin.includes('\n')) throw checkpointError('origin');
  if (!Number.isSafeInteger(size) || size < 0) throw checkpointError('size');
  if (!(root instanceof Uint8Array) || root.length !== HASH_BYTES) throw checkpointError('root');
  const extensions = checkpoint.extensions ?? [];
  for (const line of extensions) if (line.length === 0 || line.includes('\n')) throw checkpointError('extension');
  const lines = [origin, String(size), Buffer.from(root).toString('base64'), ...extensions];
  return `${lines.join('\n')}\n`;
}

/** Parses checkpoint note text (as returned by openNote). Throws AUDIT_ERR_NOTE. */
export function parseCheckpointText(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw checkpointError('text_newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw checkpointError('too_few_lines');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) throw checkpointError('origin');
  if (!SIZE.test(sizeText)) throw checkpointError('size');
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw checkpointError('size');
  const root = Buffer.from(rootText, 'base64');
  // Canonical standard base64 of exactly 32 bytes: 44 characters, re-encoding gives the same text.
  if (root.length !== HASH_BYTES || root.toString('base64') !== rootText) throw checkpointError('root');
  for (const line of extensions) if (line.length === 0) throw checkpointError('extension');
  return { origin, size, root, extensions };
}

/** Signs a checkpoint: the full signed note. */
export function signCheckpoint(
  checkpoint: { origin: string; size: number; root: Uint8Array },
  signer: NoteSigner,
): string {
  return signNote(formatCheckpoint({ ...checkpoint, root: Buffer.from(checkpoint.root) }), [signer]);
}

/**
 * Opens a signed checkpoint with trusted verifiers and checks it names `origin` (when given). Throws
 * AUDIT_ERR_NOTE when the signature, the format or the origin is wrong.
 */
export function openCheckpoint(
  note: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
  origin?: string,
): Checkpoint {
  const { text } = openNote(note, verifiers);
  const checkpoint = parseCheckpointText(text);
  if (origin !== undefined && checkpoint.origin !== origin) throw checkpointError('origin_mismatch');
  return checkpoint;
}
