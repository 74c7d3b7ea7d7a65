import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { isRampartError } from '../../core/errors.ts';
import { AUDIT_ERRORS } from './errors.ts';
import { openSpool } from './spool.ts';

const silent = pino({ level: 'silent' });

function scratch(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-audit-spool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const name = (n: number) => `${String(n).padStart(12, '0')}.spool`;
/** The lines of events `ns`, each `e<n>` and a newline (3 bytes for n < 10). */
const lines = (...ns: number[]) => ns.map((n) => `e${n}\n`).join('');
const cursor = (segment: unknown, offset: unknown) => JSON.stringify({ segment, offset });

/** What a spool directory holds before it is opened. */
interface State {
  /** Segment number and contents, written in this order. */
  segments: [number, string][];
  /** The cursor file's contents; null for none. */
  cursor: string | null;
  /** Anything else to put in the directory first. */
  prepare?: (dir: string) => void;
}

interface Opened {
  delivered: string[];
  errors: { operation: string; code: string | undefined; detail: Record<string, unknown> | undefined }[];
}

/**
 * Opens the spool on `dir`, appends one new event (`new`), and reads and acknowledges everything, as
 * the client's sender does. Returns the lines handed out, in order, and what was reported to onError.
 */
async function openAndDeliver(dir: string): Promise<Opened> {
  const errors: Opened['errors'] = [];
  const spool = await openSpool(dir, {
    logger: silent,
    commitIntervalMs: 1,
    onError: (operation, err) =>
      errors.push({
        operation,
        code: isRampartError(err) ? err.code : undefined,
        detail: isRampartError(err) ? err.detail : undefined,
      }),
  });
  assert.ok(spool.append('new\n', 1));
  await spool.flush();
  const delivered: string[] = [];
  for (let guard = 0; guard < 1_000; guard++) {
    const batch = await spool.read(2, 1 << 20);
    if (batch === null) break;
    delivered.push(...batch.lines);
    await spool.ack(batch);
  }
  assert.equal(spool.depth, 0, 'everything handed out was acknowledged');
  await spool.close();
  return { delivered, errors };
}

function build(dir: string, state: State): void {
  state.prepare?.(dir);
  for (const [n, text] of state.segments) writeFileSync(join(dir, name(n)), text, { mode: 0o600 });
  if (state.cursor !== null) writeFileSync(join(dir, 'cursor'), state.cursor, { mode: 0o600 });
}

/**
 * Every state a spool directory can be found in at open, with the events that must be delivered. A
 * cursor is trusted (the segments before it deleted as delivered) only when it names an existing
 * segment at the start of a line within its data; otherwise everything present is delivered again
 * (the control plane deduplicates by event id), never skipped.
 */
const RECOVERED: { state: string; given: State; delivered: string[]; missing?: string[] }[] = [
  {
    state: 'no cursor file: everything from the oldest segment',
    given: {
      segments: [
        [1, lines(1, 2)],
        [2, lines(3)],
      ],
      cursor: null,
    },
    delivered: ['e1', 'e2', 'e3'],
  },
  {
    state: 'valid cursor inside the first segment',
    given: {
      segments: [
        [1, lines(1, 2)],
        [2, lines(3)],
      ],
      cursor: cursor(1, 3),
    },
    delivered: ['e2', 'e3'],
  },
  {
    state: 'valid cursor in a later segment: the ones before it were delivered (crash before their deletion)',
    given: {
      segments: [
        [1, lines(1, 2)],
        [2, lines(3, 4)],
      ],
      cursor: cursor(2, 3),
    },
    delivered: ['e4'],
  },
  {
    state: 'valid cursor at the very end: nothing old to send',
    given: {
      segments: [
        [1, lines(1)],
        [2, lines(2)],
      ],
      cursor: cursor(2, 3),
    },
    delivered: [],
  },
  {
    state: 'valid cursor at the end of a sealed segment',
    given: {
      segments: [
        [1, lines(1)],
        [2, lines(2)],
      ],
      cursor: cursor(1, 3),
    },
    delivered: ['e2'],
  },
  {
    state: 'cursor beyond the last segment (from an older, longer spool)',
    given: {
      segments: [
        [1, lines(1, 2)],
        [2, lines(3)],
      ],
      cursor: cursor(9, 0),
    },
    delivered: ['e1', 'e2', 'e3'],
  },
  {
    state: 'cursor beyond the last segment, far beyond',
    given: {
      segments: [
        [4, lines(1)],
        [5, lines(2)],
      ],
      cursor: cursor(999_999_999_999, 12),
    },
    delivered: ['e1', 'e2'],
  },
  {
    state: 'cursor inside a missing segment between two present ones',
    given: {
      segments: [
        [1, lines(1)],
        [3, lines(3)],
      ],
      cursor: cursor(2, 3),
    },
    delivered: ['e1', 'e3'],
    missing: [name(2)],
  },
  {
    state: 'cursor names a segment before the oldest (its deletion was durable, the cursor was not)',
    given: { segments: [[3, lines(3, 4)]], cursor: cursor(2, 6) },
    delivered: ['e3', 'e4'],
  },
  {
    state: 'cursor offset beyond the data of its segment',
    given: {
      segments: [
        [1, lines(1)],
        [2, lines(2, 3)],
      ],
      cursor: cursor(2, 999),
    },
    delivered: ['e1', 'e2', 'e3'],
  },
  {
    state: 'cursor offset inside a line',
    given: {
      segments: [
        [1, lines(1)],
        [2, lines(2, 3)],
      ],
      cursor: cursor(2, 2),
    },
    delivered: ['e1', 'e2', 'e3'],
  },
  {
    state: 'cursor offset inside the torn tail of the last segment',
    given: {
      segments: [
        [1, lines(1)],
        [2, `${lines(2)}{"tor`],
      ],
      cursor: cursor(2, 5),
    },
    delivered: ['e1', 'e2'],
  },
  {
    state: 'cursor offset in an empty segment',
    given: {
      segments: [
        [1, ''],
        [2, lines(1)],
      ],
      cursor: cursor(1, 3),
    },
    delivered: ['e1'],
  },
  ...[
    ['not JSON', 'garbage'],
    ['empty file', ''],
    ['JSON null', 'null'],
    ['an array', '[2,3]'],
    ['segment as a string', cursor('2', 3)],
    ['offset as a string', cursor(2, '3')],
    ['negative offset', cursor(2, -3)],
    ['fractional offset', cursor(2, 1.5)],
    ['segment 0', cursor(0, 0)],
    ['negative segment', cursor(-2, 0)],
    ['offset past 2^53', '{"segment":2,"offset":9007199254740993}'],
    ['segment 1e300', '{"segment":1e300,"offset":0}'],
    ['torn JSON (a crash while it was written in place)', '{"segment":2,"off'],
    ['missing offset', '{"segment":2}'],
  ].map(([what, text]) => ({
    state: `cursor file unparseable: ${what}`,
    given: {
      segments: [
        [1, lines(1)],
        [2, lines(2, 3)],
      ],
      cursor: text,
    } as State,
    delivered: ['e1', 'e2', 'e3'],
  })),
  {
    state: 'torn last record (crash mid-write): cut off, the complete lines delivered',
    given: {
      segments: [
        [1, lines(1)],
        [2, `${lines(2)}{"action":"http.req`],
      ],
      cursor: null,
    },
    delivered: ['e1', 'e2'],
  },
  {
    state: 'torn record at the end of a sealed segment (its cut at a previous open was not durable)',
    given: {
      segments: [
        [1, `${lines(1)}{"act`],
        [2, ''],
        [3, lines(2)],
      ],
      cursor: cursor(1, 0),
    },
    delivered: ['e1', 'e2'],
  },
  {
    state: 'a segment holding only a torn record',
    given: {
      segments: [
        [1, lines(1)],
        [2, '{"act'],
      ],
      cursor: cursor(1, 0),
    },
    delivered: ['e1'],
  },
  {
    state: 'gap in segment numbers after the cursor: what is present is delivered, the gap reported',
    given: {
      segments: [
        [1, lines(1, 2)],
        [3, lines(3)],
        [6, lines(6)],
      ],
      cursor: cursor(1, 3),
    },
    delivered: ['e2', 'e3', 'e6'],
    missing: [name(2), name(4)],
  },
  {
    state: 'gap before a valid cursor is no loss (delivered segments)',
    given: {
      segments: [
        [1, lines(1)],
        [3, lines(3, 4)],
      ],
      cursor: cursor(3, 3),
    },
    delivered: ['e4'],
  },
  {
    state: 'empty segments (opened, then a crash before any write)',
    given: {
      segments: [
        [1, ''],
        [2, lines(1)],
        [3, ''],
      ],
      cursor: cursor(1, 0),
    },
    delivered: ['e1'],
  },
  {
    state: 'segments created out of name order: delivered in number order',
    given: {
      segments: [
        [12, lines(3)],
        [10, lines(1)],
        [11, lines(2)],
      ],
      cursor: null,
    },
    delivered: ['e1', 'e2', 'e3'],
  },
  {
    state: 'a leftover cursor.tmp (crash before the rename) is ignored',
    given: {
      segments: [[1, lines(1, 2)]],
      cursor: cursor(1, 3),
      prepare: (dir) => writeFileSync(join(dir, 'cursor.tmp'), cursor(1, 6)),
    },
    delivered: ['e2'],
  },
];

describe('audit spool: inconsistent state at open', () => {
  for (const row of RECOVERED) {
    test(row.state, async (t) => {
      const dir = scratch(t);
      build(dir, row.given);
      const first = await openAndDeliver(dir);
      assert.deepEqual(first.delivered, [...row.delivered, 'new']);
      const missing = first.errors
        .filter((e) => e.code === AUDIT_ERRORS.spool && e.detail?.reason === 'missing_segment')
        .map((e) => basename(String(e.detail?.file)));
      assert.deepEqual(missing, row.missing ?? []);
      assert.deepEqual(
        first.errors.filter((e) => e.detail?.reason !== 'missing_segment'),
        [],
      );
      // The cursor now says all of it was delivered: a second open sends nothing old again.
      const second = await openAndDeliver(dir);
      assert.deepEqual(second.delivered, ['new']);
    });
  }
});

describe('audit spool: states it refuses to open, naming the file', () => {
  const REFUSED: { state: string; given: State; file: string; reason: string }[] = [
    {
      state: 'the cursor is a directory',
      given: { segments: [[1, lines(1)]], cursor: null, prepare: (dir) => mkdirSync(join(dir, 'cursor')) },
      file: 'cursor',
      reason: 'cursor_unreadable',
    },
    {
      state: 'a segment is a directory',
      given: { segments: [[1, lines(1)]], cursor: null, prepare: (dir) => mkdirSync(join(dir, name(2))) },
      file: name(2),
      reason: 'segment_not_a_file',
    },
    ...['1.spool', '0000000000002.spool', '00000000000a.spool', '000000000003.SPOOL.spool'].map((file) => ({
      state: `a .spool file whose name is not a segment number: ${file}`,
      given: {
        segments: [[1, lines(1)]],
        cursor: null,
        prepare: (dir: string) => writeFileSync(join(dir, file), lines(2)),
      } as State,
      file,
      reason: 'segment_name',
    })),
  ];
  for (const row of REFUSED) {
    test(row.state, async (t) => {
      const dir = scratch(t);
      build(dir, row.given);
      const before = readdirSync(dir).sort();
      await assert.rejects(openSpool(dir, { logger: silent }), (err) => {
        assert.ok(isRampartError(err, AUDIT_ERRORS.spool));
        assert.equal(err.detail?.file, join(dir, row.file));
        assert.equal(err.detail?.reason, row.reason);
        return true;
      });
      assert.deepEqual(readdirSync(dir).sort(), before, 'nothing deleted or created');
    });
  }
});

test('an invalid cursor is replaced at open, so the next open does not distrust it again', async (t) => {
  const dir = scratch(t);
  build(dir, {
    segments: [
      [1, lines(1)],
      [2, lines(2)],
    ],
    cursor: cursor(9, 0),
  });
  const spool = await openSpool(dir, { logger: silent });
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'cursor'), 'utf8')), { segment: 1, offset: 0 });
  assert.equal(spool.depth, 2);
  await spool.close();
  assert.ok(statSync(join(dir, name(1))).isFile(), 'no segment deleted');
});
