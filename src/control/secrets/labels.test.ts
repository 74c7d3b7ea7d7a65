import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isRampartError } from '../../core/errors.ts';
import { SEC_ERRORS } from './errors.ts';
import { LABEL_REASONS, type LabelMove, type Labels, moveLabels, NO_LABELS, sameLabels } from './labels.ts';

type Op = { op: 'set'; discardPending: boolean } | { op: 'stage' } | { op: 'promote' } | { op: 'rollback' };

const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('set' as const), discardPending: fc.boolean() }),
    fc.constant({ op: 'stage' as const }),
    fc.constant({ op: 'promote' as const }),
    fc.constant({ op: 'rollback' as const }),
  ),
  { maxLength: 40 },
);

/** Applies `op` the way the service does: set/stage allocate the next version. */
function step(labels: Labels, latest: number, op: Op): { labels: Labels; latest: number; refused: string | null } {
  const move: LabelMove =
    op.op === 'set' || op.op === 'stage' ? ({ ...op, version: latest + 1 } as LabelMove) : (op as LabelMove);
  try {
    const next = moveLabels(labels, move);
    return { labels: next, latest: op.op === 'set' || op.op === 'stage' ? latest + 1 : latest, refused: null };
  } catch (err) {
    assert.ok(isRampartError(err, SEC_ERRORS.label));
    return { labels, latest, refused: String(err.detail?.['reason']) };
  }
}

describe('labels: state machine properties', () => {
  test('invariants hold after any sequence: labels name existing versions, at most one label per version', () => {
    fc.assert(
      fc.property(ops, (sequence) => {
        let labels = NO_LABELS;
        let latest = 0;
        for (const op of sequence) {
          ({ labels, latest } = step(labels, latest, op));
          const named = [labels.current, labels.previous, labels.pending].filter((v) => v !== null);
          assert.equal(new Set(named).size, named.length, 'a version holds two labels');
          for (const v of named) assert.ok(v >= 1 && v <= latest, 'a label names a version that does not exist');
          if (labels.current === null) assert.equal(labels.previous, null, 'previous without current');
          assert.ok(Object.isFrozen(labels));
        }
      }),
      { numRuns: 500 },
    );
  });

  test('each move does exactly what its name says, and is refused exactly when it cannot', () => {
    fc.assert(
      fc.property(ops, (sequence) => {
        let labels = NO_LABELS;
        let latest = 0;
        for (const op of sequence) {
          const before = labels;
          const result = step(labels, latest, op);
          switch (op.op) {
            case 'set':
              if (before.pending !== null && !op.discardPending) {
                assert.equal(result.refused, LABEL_REASONS.pendingExists);
              } else {
                assert.deepEqual(result.labels, { current: latest + 1, previous: before.current, pending: null });
              }
              break;
            case 'stage':
              assert.deepEqual(result.labels, {
                current: before.current,
                previous: before.previous,
                pending: latest + 1,
              });
              break;
            case 'promote':
              if (before.pending === null) assert.equal(result.refused, LABEL_REASONS.noPending);
              else
                assert.deepEqual(result.labels, { current: before.pending, previous: before.current, pending: null });
              break;
            case 'rollback':
              if (before.previous === null) assert.equal(result.refused, LABEL_REASONS.noPrevious);
              else
                assert.deepEqual(result.labels, {
                  current: before.previous,
                  previous: before.current,
                  pending: before.pending,
                });
              break;
          }
          if (result.refused !== null) assert.ok(sameLabels(result.labels, before), 'a refused move changed labels');
          ({ labels, latest } = result);
        }
      }),
      { numRuns: 500 },
    );
  });

  test('rolling back twice restores the labels; stage then promote equals set', () => {
    fc.assert(
      fc.property(ops, (sequence) => {
        let labels = NO_LABELS;
        let latest = 0;
        for (const op of sequence) ({ labels, latest } = step(labels, latest, op));
        if (labels.previous !== null) {
          const twice = moveLabels(moveLabels(labels, { op: 'rollback' }), { op: 'rollback' });
          assert.ok(sameLabels(twice, labels));
        }
        if (labels.pending === null) {
          const staged = moveLabels(moveLabels(labels, { op: 'stage', version: latest + 1 }), { op: 'promote' });
          assert.ok(sameLabels(staged, moveLabels(labels, { op: 'set', version: latest + 1 })));
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a first version staged, then promoted, is current with no previous', () => {
    const staged = moveLabels(NO_LABELS, { op: 'stage', version: 1 });
    assert.deepEqual(staged, { current: null, previous: null, pending: 1 });
    assert.deepEqual(moveLabels(staged, { op: 'promote' }), { current: 1, previous: null, pending: null });
  });
});
