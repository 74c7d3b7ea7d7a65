import { SEC_ERRORS, secError } from './errors.ts';

/**
 * Version labels, after AWS Secrets Manager's staging labels: `current` is what services read,
 * `previous` the version before it (for roll back), `pending` a staged version under test in a two-phase
 * rotation. A label names at most one version and a version carries at most one label. This file is the
 * whole state machine, pure, so the stores only apply its result (compare-and-set) and a model test can
 * drive it (labels.test.ts).
 */

/** The three labels. */
export const LABELS = ['current', 'previous', 'pending'] as const;
/** One of {@link LABELS}. */
export type Label = (typeof LABELS)[number];

/** Which version each label names (null: none). */
export interface Labels {
  readonly current: number | null;
  readonly previous: number | null;
  readonly pending: number | null;
}

/** No version yet. */
export const NO_LABELS: Labels = Object.freeze({ current: null, previous: null, pending: null });

/** A change of labels. */
export type LabelMove =
  /** A new version becomes current; the old current becomes previous. Refused while a version is pending, unless `discardPending`. */
  | { op: 'set'; version: number; discardPending?: boolean }
  /** A new version becomes pending (an older pending version loses the label; it stays in the history). */
  | { op: 'stage'; version: number }
  /** Pending becomes current; the old current becomes previous. */
  | { op: 'promote' }
  /** Previous and current swap (a second roll back rolls forward again, as AWS's label moves do). */
  | { op: 'rollback' };

/** Why a move is refused (`detail.reason` of SEC_ERR_LABEL). */
export const LABEL_REASONS = {
  noPending: 'no_pending',
  noPrevious: 'no_previous',
  pendingExists: 'pending_exists',
} as const;

/** True for the three label names. */
export function isLabel(value: unknown): value is Label {
  return value === 'current' || value === 'previous' || value === 'pending';
}

/**
 * The labels after `move`. Throws SEC_ERR_LABEL when the move is impossible. `version` of set/stage is
 * the new version's number (the caller allocates it: one more than the highest).
 */
export function moveLabels(labels: Labels, move: LabelMove): Labels {
  switch (move.op) {
    case 'set':
      if (labels.pending !== null && move.discardPending !== true) {
        // Setting a value directly while a rotation is staged would silently strand that rotation.
        throw secError(SEC_ERRORS.label, { reason: LABEL_REASONS.pendingExists, pending: labels.pending });
      }
      return freeze(move.version, labels.current, null);
    case 'stage':
      return freeze(labels.current, labels.previous, move.version);
    case 'promote':
      if (labels.pending === null) throw secError(SEC_ERRORS.label, { reason: LABEL_REASONS.noPending });
      return freeze(labels.pending, labels.current, null);
    case 'rollback':
      if (labels.previous === null) throw secError(SEC_ERRORS.label, { reason: LABEL_REASONS.noPrevious });
      return freeze(labels.previous, labels.current, labels.pending);
  }
}

/** True when both name the same versions. */
export function sameLabels(a: Labels, b: Labels): boolean {
  return a.current === b.current && a.previous === b.previous && a.pending === b.pending;
}

function freeze(current: number | null, previous: number | null, pending: number | null): Labels {
  return Object.freeze({ current, previous, pending });
}
