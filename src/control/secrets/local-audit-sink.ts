import { type FileHandle, open } from 'node:fs/promises';
import { canonicalizeAuditEvent } from '../../core/audit-event.ts';
import type { AuditSink, SecretsAuditEvent } from './audit.ts';

/**
 * A stand-in audit sink for the CLI working on a local data directory, until the audit client
 * (src/control/audit) is wired in: one JSON line per event (the log's canonical bytes), appended to a 0600 file and fsync'd before
 * `append` resolves, so a read is acknowledged only once its event is on disk. It is an append-only
 * record, not a tamper-evident one (the Merkle-tree log is). Events hold HMAC references, never values.
 */
export interface JsonlAuditSink extends AuditSink {
  close(): Promise<void>;
}

export async function openJsonlAuditSink(path: string): Promise<JsonlAuditSink> {
  const handle: FileHandle = await open(path, 'a', 0o600);
  await handle.chmod(0o600);
  let queue: Promise<void> = Promise.resolve();
  return {
    append(event: SecretsAuditEvent) {
      // One write and fsync at a time, in call order.
      const next = queue.then(async () => {
        await handle.appendFile(Buffer.concat([canonicalizeAuditEvent(event), Buffer.from('\n')]));
        await handle.sync();
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
