import { type FileHandle, open } from 'node:fs/promises';
import { canonicalizeAuditEvent } from '../../core/audit-event.ts';
import type { AuditSink, SecretsAuditEvent } from './audit.ts';

/**
 * A stand-in audit sink for the CLI and the control plane working on a local data directory, until the
 * audit client (src/control/audit) is wired in: one JSON line per event (the log's canonical bytes),
 * appended to a 0600 file opened with O_APPEND|O_SYNC, so `append` resolves only once its event is on
 * disk and a read is acknowledged only then. O_SYNC rather than fsync: Node's permission model refuses
 * fsync on descriptors, and the control plane runs under it. O_APPEND keeps the lines of the two
 * processes whole when both write. It is an append-only record, not a tamper-evident one (the
 * Merkle-tree log is). Events hold HMAC references, never values.
 */
export interface JsonlAuditSink extends AuditSink {
  close(): Promise<void>;
}

export async function openJsonlAuditSink(path: string): Promise<JsonlAuditSink> {
  const handle: FileHandle = await open(path, 'as', 0o600);
  try {
    await handle.chmod(0o600);
  } catch (err) {
    // Node's permission model refuses fchmod (the control plane): then the mode is checked instead.
    // A new file is 0600 already (the umask only narrows it); a wider existing one is refused.
    if ((err as NodeJS.ErrnoException).code !== 'ERR_ACCESS_DENIED' || ((await handle.stat()).mode & 0o077) !== 0) {
      await handle.close();
      throw err;
    }
  }
  let queue: Promise<void> = Promise.resolve();
  return {
    append(event: SecretsAuditEvent) {
      // One synchronous write at a time, in call order: one line, durable when it returns.
      const next = queue.then(async () => {
        await handle.appendFile(Buffer.concat([canonicalizeAuditEvent(event), Buffer.from('\n')]));
      });
      queue = next.catch(() => {});
      return next;
    },
    async close() {
      await queue;
      await handle.close();
    },
  };
}
