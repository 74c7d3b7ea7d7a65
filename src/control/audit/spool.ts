import { closeSync, constants, fsyncSync, openSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../core/logger.ts';
import { AUDIT_CLIENT_DEFAULTS } from './client-defaults.ts';
import { AUDIT_ERRORS, auditError } from './errors.ts';

/**
 * The emitting component's durable spool of audit events (issue 6 "Delivery": "when it is
 * unreachable they spool to a local append-only file (fsync'd) and deliver later"). Every event
 * passes through it, reachable control plane or not, so there is one path and one order.
 *
 * A directory of append-only segment files (`<12 digits>.spool`, one canonical event per line, mode
 * 0600) and a `cursor` file naming the first undelivered byte (`{"segment","offset"}`). Appends are
 * group-committed: queued lines are written with one synchronous write (O_DSYNC) per
 * `commitIntervalMs` on libuv's thread pool, never on a request's turn. O_DSYNC rather than
 * fdatasync: Node 24's permission model refuses fsync and fdatasync on descriptors (ERR_ACCESS_DENIED),
 * and every component runs under it; a write on an O_DSYNC descriptor returns once the data is on disk. Only committed bytes are read for delivery; the cursor
 * moves only after the control plane acknowledged (`ack`); a segment wholly behind the cursor is
 * deleted. The cursor is replaced by rename and may lag after a crash: the events after it are sent
 * again, and the control plane deduplicates them by event id (exactly once = at least once + dedupe).
 *
 * At open, the cursor is trusted only when it names a segment present and the start of a line within
 * its data; then the segments before it were delivered and are deleted. Any other cursor (unparseable,
 * beyond the last segment, in a missing one, past its data, inside a line) deletes nothing: every
 * segment present is delivered again, deduplicated by event id, since a wrong cursor must cost
 * duplicates, never events. Torn lines (a crash mid-write) are cut off, missing segment numbers
 * between present ones are reported (`onError`, AUDIT_ERR_SPOOL), the undelivered events are counted,
 * and a new segment is started. What cannot be placed is refused with AUDIT_ERR_SPOOL naming the
 * file, rather than skipped: a cursor that exists but cannot be read, a `.spool` file whose name is
 * not a segment number, a segment that is not a regular file. Undelivered bytes are bounded
 * (`maxSpoolBytes`): past it, `append` refuses and the caller counts the drop.
 */
export interface Spool {
  /** Queues JSON lines (each ending in `\n`) holding `count` events. Never blocks; false when refused (bound). */
  append(lines: string, count: number): boolean;
  /** Resolves when everything queued so far is written and synced (or the disk refused it). */
  flush(): Promise<void>;
  /**
   * The next committed lines from the cursor (at most `maxEvents` lines and `maxBytes` bytes, within
   * one segment), or null when everything committed was acknowledged. Reads the same batch again
   * until it is acknowledged.
   */
  read(maxEvents: number, maxBytes: number): Promise<SpoolBatch | null>;
  /** Moves the cursor past `batch` (which must start at the cursor); the segment behind it goes. */
  ack(batch: SpoolBatch): Promise<void>;
  /** Events not yet acknowledged: queued in memory plus committed to the spool. */
  readonly depth: number;
  /** Bytes not yet acknowledged. */
  readonly bytes: number;
  /** Called after each commit that added lines, with the number of events it made durable. */
  onCommit(listener: (count: number) => void): void;
  /**
   * Writes what is queued, then closes. Resolves with the events still queued that the disk refused:
   * they are lost, and the caller counts them.
   */
  close(): Promise<number>;
}

/** A place in the spool. */
export interface SpoolPosition {
  segment: number;
  offset: number;
}

/** Lines read from the spool: `lines[i]` is the text of one line, without its `\n`. */
export interface SpoolBatch {
  lines: string[];
  start: SpoolPosition;
  end: SpoolPosition;
}

export interface SpoolOptions {
  logger: Logger;
  commitIntervalMs?: number;
  commitMaxEvents?: number;
  maxQueuedEvents?: number;
  maxSpoolBytes?: number;
  segmentBytes?: number;
  /** Told about every failed write, sync or cursor update (for a metric). */
  onError?: (operation: 'write' | 'cursor' | 'segment', err: unknown) => void;
}

const SEGMENT = /^(\d{12})\.spool$/;
const CURSOR = 'cursor';
const NEWLINE = 0x0a;
const SCAN_CHUNK = 1024 * 1024;

const segmentName = (n: number) => `${String(n).padStart(12, '0')}.spool`;

/** A new segment: append-only, every write durable when it returns, never an existing file. */
const SEGMENT_FLAGS =
  constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;
/** The cursor's temporary file, written whole and durably before it replaces the cursor. */
const CURSOR_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_DSYNC;

/**
 * The directory entry of a new or renamed file is durable only once the directory is synced (fsync(2)).
 * Refused under the permission model (see above): then a segment created just before a power loss may
 * be missing after it, never torn.
 */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Best effort: some file systems refuse fsync on a directory; the data itself is synced.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** AUDIT_ERR_SPOOL: something in the spool directory that cannot be placed; `file` names it. */
const refuse = (file: string, reason: string, cause?: unknown) =>
  auditError(AUDIT_ERRORS.spool, { file, reason }, cause);

/** Runs a read of `file`; an I/O failure refuses the spool, naming the file. */
async function reading<T>(file: string, reason: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw refuse(file, reason, err);
  }
}

/**
 * The stored cursor: a position, `missing` (no file: a new spool, or one whose cursor was never
 * written), or `unparseable`. A cursor that exists but cannot be read (permissions, a directory, an
 * I/O error) is refused: taken as missing, it would resend everything at every start and hide the
 * fault, and the cursor could not be replaced either.
 */
async function readCursor(dir: string): Promise<SpoolPosition | 'missing' | 'unparseable'> {
  const file = join(dir, CURSOR);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw refuse(file, 'cursor_unreadable', err);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'unparseable';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'unparseable';
  const { segment, offset } = value as { segment?: unknown; offset?: unknown };
  if (!Number.isSafeInteger(segment) || !Number.isSafeInteger(offset)) return 'unparseable';
  if ((segment as number) < 1 || (offset as number) < 0) return 'unparseable';
  return { segment: segment as number, offset: offset as number };
}

/** Counts newlines from `offset` and finds the last one; returns the file size too. */
async function scanSegment(
  file: string,
  offset: number,
): Promise<{ size: number; lines: number; lastNewline: number }> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const buf = Buffer.allocUnsafe(SCAN_CHUNK);
    let lines = 0;
    let lastNewline = -1;
    for (let pos = offset; pos < size; ) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(SCAN_CHUNK, size - pos), pos);
      if (bytesRead === 0) break;
      for (let i = buf.indexOf(NEWLINE, 0); i !== -1 && i < bytesRead; i = buf.indexOf(NEWLINE, i + 1)) {
        lines++;
        lastNewline = pos + i;
      }
      pos += bytesRead;
    }
    // The last newline before `offset`, when none follows it (a torn tail right after the cursor).
    if (lastNewline === -1 && offset > 0) lastNewline = offset - 1;
    return { size, lines, lastNewline };
  } finally {
    await handle.close();
  }
}

/** The byte before `offset` is a newline (the cursor sits at the start of a line). */
async function atLineStart(file: string, offset: number): Promise<boolean> {
  if (offset === 0) return true;
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(1);
    const { bytesRead } = await handle.read(buf, 0, 1, offset - 1);
    return bytesRead === 1 && buf[0] === NEWLINE;
  } finally {
    await handle.close();
  }
}

/** Opens (creating) the spool in `dir` (mode 0700). */
export async function openSpool(dir: string, options: SpoolOptions): Promise<Spool> {
  const interval = options.commitIntervalMs ?? AUDIT_CLIENT_DEFAULTS.commitIntervalMs;
  const maxBatch = options.commitMaxEvents ?? AUDIT_CLIENT_DEFAULTS.commitMaxEvents;
  const maxQueued = options.maxQueuedEvents ?? AUDIT_CLIENT_DEFAULTS.maxQueuedEvents;
  const maxBytes = options.maxSpoolBytes ?? AUDIT_CLIENT_DEFAULTS.maxSpoolBytes;
  const segmentBytes = options.segmentBytes ?? AUDIT_CLIENT_DEFAULTS.segmentBytes;
  const { logger } = options;
  const onError = options.onError ?? (() => {});

  await mkdir(dir, { recursive: true, mode: 0o700 });
  /** Committed size of every segment still on disk, by number. */
  const segments = new Map<number, number>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.name.endsWith('.spool')) continue;
    const file = join(dir, entry.name);
    const match = SEGMENT.exec(entry.name);
    // Skipped, such a file would never be delivered, and nothing would say so.
    if (!match) throw refuse(file, 'segment_name');
    if (!entry.isFile()) throw refuse(file, 'segment_not_a_file');
    segments.set(Number(match[1]), 0);
  }
  const numbers = () => [...segments.keys()].sort((a, b) => a - b);
  const fileOf = (n: number) => join(dir, segmentName(n));

  // Nothing is deleted, cut or created before the cursor is judged: a cursor decides which segments
  // were delivered, so one that does not fit the segments (from another spool, edited, or left
  // behind by a crash whose directory changes were not all durable) is not trusted at all.
  const stored = await readCursor(dir);
  let cursor: SpoolPosition = { segment: numbers()[0] ?? 1, offset: 0 };
  let distrust: string | null = stored === 'missing' ? null : 'unparseable';
  if (typeof stored === 'object') {
    const file = fileOf(stored.segment);
    if (!segments.has(stored.segment)) {
      distrust = (numbers().at(-1) ?? 0) < stored.segment ? 'beyond_segments' : 'missing_segment';
    } else if (!(await reading(file, 'segment_unreadable', () => atLineStart(file, stored.offset)))) {
      distrust = 'not_at_line_start';
    } else {
      distrust = null;
      cursor = stored;
    }
  }
  if (distrust !== null) {
    logger.warn(
      { dir, cursor: stored, reason: distrust, from: cursor },
      'audit spool: cursor does not fit the segments; every segment present is delivered again (deduplicated by event id)',
    );
  }
  // Segments wholly behind a trusted cursor were delivered; a crash came between the cursor's move
  // and their deletion.
  for (const n of numbers()) {
    if (n < cursor.segment) {
      await unlink(fileOf(n)).catch(() => {});
      segments.delete(n);
    }
  }

  let spooledEvents = 0;
  let spooledBytes = 0;
  const existing = numbers();
  existing.forEach((n, i) => {
    const previous = existing[i - 1];
    if (previous !== undefined && n > previous + 1) {
      // Lost before this open (deleted by hand, or created just before a power loss that kept its
      // data but not its directory entry): nothing to deliver from, but it must not pass unnoticed.
      const err = auditError(AUDIT_ERRORS.spool, {
        file: fileOf(previous + 1),
        last: fileOf(n - 1),
        reason: 'missing_segment',
      });
      logger.error({ dir, first: previous + 1, last: n - 1 }, 'audit spool: segments missing; their events are lost');
      onError('segment', err);
    }
  });
  for (const n of existing) {
    const file = fileOf(n);
    const from = n === cursor.segment ? cursor.offset : 0;
    const counted = await reading(file, 'segment_unreadable', () => scanSegment(file, from));
    // Bytes after the last newline are a torn line: the write that made them never finished, so no
    // one was told they were spooled. Only whole lines count; the tail is cut when it can be (a
    // sealed segment keeps it if the cut fails: it is never read past its committed size).
    const size = counted.lastNewline + 1;
    if (size < counted.size) {
      try {
        await truncate(file, size);
        logger.warn({ segment: n, cut: counted.size - size }, 'audit spool: torn last line removed');
      } catch (err) {
        onError('segment', err);
      }
    }
    segments.set(n, size);
    spooledEvents += counted.lines;
    spooledBytes += size - from;
  }

  // Always a fresh segment to append to: the old ones are sealed as found.
  let active = (existing.at(-1) ?? 0) + 1;
  if (existing.length === 0) cursor = { segment: active, offset: 0 };
  let writer = await open(fileOf(active), SEGMENT_FLAGS, 0o600);
  segments.set(active, 0);
  syncDirectory(dir);
  // An untrusted cursor is replaced now, so the next open judges the position this one started from.
  if (stored !== 'missing' && distrust !== null) await writeCursor();

  const chunks: { lines: string; count: number; bytes: number }[] = [];
  let queued = 0;
  let queuedBytes = 0;
  let unwritten: Buffer | null = null;
  let unwrittenCount = 0;
  /** Bytes of the batch being committed, written or not. */
  let unwrittenTotal = 0;
  let timer: NodeJS.Timeout | null = null;
  let committing: Promise<void> | null = null;
  let committed = 0;
  let closed = false;
  const listeners: ((count: number) => void)[] = [];

  let reader: { segment: number; handle: FileHandle } | null = null;
  const readerFor = async (segment: number): Promise<FileHandle> => {
    if (reader?.segment === segment) return reader.handle;
    await reader?.handle.close().catch(() => {});
    reader = null;
    const handle = await open(join(dir, segmentName(segment)), 'r');
    reader = { segment, handle };
    return handle;
  };

  async function rotate(): Promise<void> {
    try {
      const next = active + 1;
      const handle = await open(join(dir, segmentName(next)), SEGMENT_FLAGS, 0o600);
      syncDirectory(dir);
      const old = writer;
      writer = handle;
      active = next;
      segments.set(next, 0);
      await old.close();
    } catch (err) {
      // Keep appending to the current segment; the next commit tries again.
      onError('segment', err);
    }
  }

  async function commitOnce(): Promise<void> {
    if (!unwritten) {
      let count = 0;
      const take: string[] = [];
      while (chunks.length > 0 && (count === 0 || count + chunks[0]!.count <= maxBatch)) {
        const chunk = chunks.shift()!;
        take.push(chunk.lines);
        count += chunk.count;
      }
      if (count === 0) return;
      unwritten = Buffer.from(take.join(''));
      unwrittenCount = count;
      unwrittenTotal = unwritten.length;
    }
    const bytes = unwrittenTotal;
    try {
      while (unwritten.length > 0) {
        const { bytesWritten } = await writer.write(unwritten);
        unwritten = unwritten.subarray(bytesWritten);
      }
    } catch (err) {
      // Partly written bytes stay in the file (O_APPEND), the rest is written next time: the line is
      // complete before the committed size covers it.
      onError('write', err);
      return;
    }
    const count = unwrittenCount;
    unwritten = null;
    unwrittenCount = 0;
    queued -= count;
    queuedBytes -= bytes;
    committed += count;
    spooledEvents += count;
    spooledBytes += bytes;
    segments.set(active, (segments.get(active) ?? 0) + bytes);
    for (const listener of listeners) listener(count);
    if ((segments.get(active) ?? 0) >= segmentBytes) await rotate();
  }

  function commit(drain = false): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = null;
    committing ??= (async () => {
      try {
        for (;;) {
          const before = committed;
          await commitOnce();
          if (queued === 0 || committed === before) break;
          if (!drain && queued < maxBatch) break;
        }
      } finally {
        committing = null;
        if (queued > 0 && !closed) schedule();
      }
    })();
    return committing;
  }

  function schedule(): void {
    if (timer || committing) return;
    timer = setTimeout(() => void commit(), interval);
    timer.unref();
  }

  async function writeCursor(): Promise<void> {
    const file = join(dir, CURSOR);
    try {
      const handle = await open(`${file}.tmp`, CURSOR_FLAGS, 0o600);
      try {
        await handle.writeFile(JSON.stringify(cursor));
      } finally {
        await handle.close();
      }
      await rename(`${file}.tmp`, file);
    } catch (err) {
      // The cursor in memory moved; after a restart the delivered events are sent again (deduplicated).
      onError('cursor', err);
    }
  }

  /** Moves past a sealed segment that the cursor reached the end of, and deletes it. */
  async function leaveSegment(): Promise<void> {
    const done = cursor.segment;
    const next = numbers().find((n) => n > done);
    if (next === undefined) return;
    cursor = { segment: next, offset: 0 };
    await writeCursor();
    if (reader?.segment === done) {
      await reader.handle.close().catch(() => {});
      reader = null;
    }
    segments.delete(done);
    await unlink(join(dir, segmentName(done))).catch((err) => onError('segment', err));
  }

  const spool: Spool = {
    get depth() {
      return queued + spooledEvents;
    },
    get bytes() {
      return queuedBytes + spooledBytes;
    },
    append(lines, count) {
      if (count <= 0) return true;
      const bytes = Buffer.byteLength(lines);
      if (closed || queued + count > maxQueued || spooledBytes + queuedBytes + bytes > maxBytes) return false;
      chunks.push({ lines, count, bytes });
      queued += count;
      queuedBytes += bytes;
      if (queued >= maxBatch && !committing) void commit();
      else schedule();
      return true;
    },
    async flush() {
      for (;;) {
        while (committing) await committing;
        if (queued === 0) return;
        const before = committed;
        await commit(true);
        if (committed === before) return;
      }
    },
    async read(maxEvents, maxBytesToRead) {
      for (;;) {
        if (closed) return null;
        const size = segments.get(cursor.segment);
        if (size === undefined) return null;
        if (cursor.offset >= size) {
          if (cursor.segment === active) return null;
          const left = cursor.segment;
          await leaveSegment();
          if (cursor.segment === left) return null;
          continue;
        }
        const start = { ...cursor };
        const length = Math.min(maxBytesToRead, size - start.offset);
        const buf = Buffer.allocUnsafe(length);
        const handle = await readerFor(start.segment);
        const { bytesRead } = await handle.read(buf, 0, length, start.offset);
        const lines: string[] = [];
        let pos = 0;
        while (lines.length < maxEvents) {
          const nl = buf.indexOf(NEWLINE, pos);
          if (nl === -1 || nl >= bytesRead) break;
          lines.push(buf.toString('utf8', pos, nl));
          pos = nl + 1;
        }
        if (lines.length === 0) {
          // No newline within the read: a line longer than any event (corruption). Handed out as
          // unreadable text so the reader skips it and the spool does not stall.
          lines.push(buf.toString('utf8', 0, bytesRead));
          pos = bytesRead;
        }
        return { lines, start, end: { segment: start.segment, offset: start.offset + pos } };
      }
    },
    async ack(batch) {
      if (batch.start.segment !== cursor.segment || batch.start.offset !== cursor.offset) return;
      cursor = { ...batch.end };
      if (cursor.segment !== active && cursor.offset >= (segments.get(cursor.segment) ?? 0)) await leaveSegment();
      else await writeCursor();
      // Counted down last: whoever waits for an empty spool sees it once the cursor is recorded.
      spooledEvents = Math.max(0, spooledEvents - batch.lines.length);
      spooledBytes = Math.max(0, spooledBytes - (batch.end.offset - batch.start.offset));
    },
    onCommit(listener) {
      listeners.push(listener);
    },
    async close() {
      if (closed) return 0;
      await spool.flush();
      closed = true;
      if (timer) clearTimeout(timer);
      const lost = queued;
      if (lost > 0) logger.error({ dir, lost }, 'audit spool closed with events it could not write');
      await reader?.handle.close().catch(() => {});
      reader = null;
      await writer.close();
      await writeCursor();
      syncDirectory(dir);
      return lost;
    },
  };
  return spool;
}
