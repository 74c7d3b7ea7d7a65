/**
 * `kill -9` while a component spools audit events with the control plane away: a child process emits
 * in a loop and prints the ids each `flush()` made durable; the test SIGKILLs it at random moments,
 * five times, restarting it on the same spool. Then the control plane "returns": every event the child
 * reported spooled arrives, once, in the order it was emitted.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createAuditClient } from '../../src/control/audit/client.ts';
import { spawnTracked, waitForLine } from '../helpers/processes.ts';
import { scratchDir } from './helpers.ts';

const ROUNDS = 5;
const MIN_SPOOLED_PER_ROUND = 500;
const FIXTURE = join(import.meta.dirname, 'fixtures/spool-loop.ts');

/** Ids of complete `spooled` lines only: the last line may have been cut by the kill. */
function spooled(stdout: string): string[] {
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter((line) => line.startsWith('spooled '))
    .flatMap((line) => line.slice(8).split(' '));
}

test('SIGKILL at random moments while spooling: every spooled event is delivered once, in order', async (t) => {
  const dir = join(scratchDir(t), 'audit-spool');
  const reported: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const child = spawnTracked(t, process.execPath, ['--conditions=rampart-source', FIXTURE, dir], {
      env: { ...process.env },
    });
    const ready = await waitForLine(child, /^ready (\d+)$/m, 30_000);
    assert.ok(Number(ready[1]) >= reported.length, 'the spool reopened with at least what was reported');
    const deadline = Date.now() + 60_000;
    while (spooled(child.stdout()).length < MIN_SPOOLED_PER_ROUND) {
      assert.ok(Date.now() < deadline, `round ${round}: too few spooled\n${child.stderr()}`);
      await delay(5);
    }
    await delay(Math.floor(Math.random() * 100));
    child.signal('SIGKILL');
    const status = await child.exited;
    assert.equal(status.signal, 'SIGKILL', child.stderr());
    reported.push(...spooled(child.stdout()));
  }

  const received: string[] = [];
  const seen = new Set<string>();
  const client = await createAuditClient({
    dir,
    target: () => null,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    limits: { retryInitialMs: 5, retryMaxMs: 20 },
    transport: async (events) => {
      let duplicates = 0;
      for (const e of events as { id: string }[]) {
        if (seen.has(e.id)) duplicates++;
        else {
          seen.add(e.id);
          received.push(e.id);
        }
      }
      return { acknowledged: events.length, duplicates };
    },
  });
  assert.ok(await client.settled(30_000));
  await client.close();

  // Everything reported arrived; in emission order (events written but not yet reported may arrive too).
  const position = new Map(received.map((id, i) => [id, i]));
  const missing = reported.filter((id) => !position.has(id));
  assert.deepEqual(missing, [], `${missing.length} of ${reported.length} spooled events lost`);
  const positions = reported.map((id) => position.get(id)!);
  assert.ok(
    positions.every((p, i) => i === 0 || p > positions[i - 1]!),
    'delivered in the order emitted',
  );
  assert.equal(received.length, seen.size, 'no event twice');
  assert.equal(client.stats().rejected, 0, 'no torn line reached the control plane');
  t.diagnostic(`${reported.length} events reported spooled over ${ROUNDS} kills; ${received.length} delivered`);
});
