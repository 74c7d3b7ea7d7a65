/**
 * `kill -9` of the control plane during acknowledged audit writes, 10 times (issue 6 "Must show"),
 * against the real process: src/control/main.ts started as the launcher starts it (its Node arguments
 * under the permission model, its environment, a production KEK in RAMPART_KEK). A workload with its
 * own SVID (join token from the launcher credential) posts batches of events to
 * `POST /v1/audit/events` over mutual TLS, several in flight, and records every event the control
 * plane acknowledged; the test SIGKILLs the control plane at a random moment after at least 500
 * acknowledgements in that round and starts it again on the same data directory. Each new round first
 * sends again the batches whose answer the kill cut off (as the audit client does): the log recognizes
 * those it already had. After every kill, and at the end with `rampart audit verify` and a pinned key:
 * every acknowledged event is in the log at the index its answer gave, no event is there twice, the
 * whole log verifies.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { runAudit } from '../../src/cli/audit.ts';
import type { EventsResponse } from '../../src/control/api/audit-routes.ts';
import {
  CONTROL_API_ERRORS,
  type ControlTarget,
  controlRequest,
  createWorkloadKey,
  requestJoinToken,
  requestSvid,
} from '../../src/control/api/index.ts';
import { openAuditDatabase } from '../../src/control/audit/database.ts';
import { AUDIT_DEFAULTS } from '../../src/control/audit/defaults.ts';
import { AUDIT_ERRORS } from '../../src/control/audit/errors.ts';
import type { VerifyReport } from '../../src/control/audit/verify.ts';
import { verifyLogFile } from '../../src/control/audit/verify.ts';
import { type AuditEvent, createAuditEvent } from '../../src/core/audit-event.ts';
import { isRampartError } from '../../src/core/errors.ts';
import type { ControlRuntime } from '../../src/core/runtime.ts';
import { childEnv } from '../../src/launcher/child-env.ts';
import { Capture } from '../helpers/capture.ts';
import { CONTROL_PROJECT_SERVICE, controlProject } from '../helpers/control-process.ts';
import { freePort, httpGet, spawnTracked, type Tracked, waitForHttp } from '../helpers/processes.ts';

const ROUNDS = 10;
const MIN_ACKS_PER_ROUND = 500;
const MIN_ACKS_TOTAL = 5_000;
/** Events per request and requests in flight: a kill always cuts some batches off mid-append. */
const BATCH_EVENTS = 20;
const IN_FLIGHT = 4;
/** The emitting workload; an event's `component` must be its caller's own service name. */
const SERVICE = CONTROL_PROJECT_SERVICE;
/** The project and the control plane's command line, with a random KEK. */
async function project(t: TestContext) {
  const p = await controlProject(t, 'rampart-control-crash-');
  return { dataDir: p.dataDir, runtime: p.runtime, args: p.args, env: p.env(randomBytes(32).toString('base64')) };
}

/**
 * Event id → the index the log stored it at, and the row count. "None twice" is not checked here: `entries.event_id` is
 * UNIQUE, so the table cannot show it; the re-send of cut-off batches checks it (duplicates counted, old
 * indexes kept).
 */
function storedEvents(dataDir: string): { ids: Map<string, number>; rows: number } {
  const db = openAuditDatabase(join(dataDir, AUDIT_DEFAULTS.databaseFile), { readOnly: true });
  try {
    const rows = db.prepare('SELECT idx, event_id FROM entries').all() as { idx: number; event_id: string }[];
    return { ids: new Map(rows.map((row) => [row.event_id, Number(row.idx)])), rows: rows.length };
  } finally {
    db.close();
  }
}

test('SIGKILL of the control plane process at random moments during acknowledged audit posts: nothing acknowledged is lost, none twice, the tree verifies', {
  timeout: 150_000,
}, async (t) => {
  const { dataDir, runtime, args, env } = await project(t);
  let control: Tracked;
  const start = async () => {
    control = spawnTracked(t, process.execPath, args, { cwd: dataDir, env });
    try {
      await waitForHttp(`http://127.0.0.1:${runtime.adminPort}/readyz`, undefined, 30_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- stderr ---\n${control.stderr()}\n${control.stdout()}`);
    }
  };

  await start();
  const target: ControlTarget = {
    url: `https://127.0.0.1:${runtime.port}`,
    bundle: readFileSync(join(dataDir, 'bundle.pem'), 'utf8'),
    trustDomain: runtime.trustDomain,
  };
  const { token } = await requestJoinToken(target, runtime.launcherCredential, SERVICE);
  const key = await createWorkloadKey();
  const svid = await requestSvid(target, token, key.csrPem);
  const client = { cert: svid.certificate, key: key.keyPem };

  /** Every acknowledged event id, with the index its answer gave. */
  const acknowledged = new Map<string, number>();
  /** Batches sent whose answer never came (the kill): sent again in the next round. */
  let cutOff: AuditEvent[][] = [];
  let sequence = 0;
  let resentStored = 0;
  const rounds: string[] = [];
  let verifierKey = '';

  const post = (events: readonly AuditEvent[]) =>
    controlRequest<EventsResponse>(target, { method: 'POST', path: '/v1/audit/events', body: { events }, ...client });
  const record = (events: readonly AuditEvent[], answer: EventsResponse) => {
    assert.equal(answer.acknowledged, events.length);
    assert.equal(answer.indexes.length, events.length);
    events.forEach((event, i) => {
      assert.equal(acknowledged.has(event.id), false, 'an event acknowledged twice was sent twice');
      acknowledged.set(event.id, answer.indexes[i]!);
    });
  };
  const batch = (round: number) =>
    Array.from({ length: BATCH_EVENTS }, () => {
      const n = sequence++;
      return createAuditEvent({
        component: SERVICE,
        action: 'http.request',
        decision: n % 3 === 0 ? 'deny' : 'allow',
        resource: `/orders/${n}`,
        actor: { subject: `user-${n % 7}` },
        requestId: `round-${round}-req-${n}`,
        detail: { status: n % 3 === 0 ? 403 : 200, method: 'GET' },
      });
    });

  for (let round = 1; round <= ROUNDS; round++) {
    // The batches the last kill cut off: some, all or none of their events may be in the log; the
    // answer counts those it had as duplicates, at their old indexes.
    const before = storedEvents(dataDir).ids;
    for (const events of cutOff) {
      const answer = await post(events);
      const already = events.filter((event) => before.has(event.id));
      assert.equal(answer.duplicates, already.length);
      for (const event of already) assert.equal(answer.indexes[events.indexOf(event)], before.get(event.id));
      resentStored += already.length;
      record(events, answer);
    }
    cutOff = [];

    let killed = false;
    let roundAcks = 0;
    let proved = false;
    const sender = async () => {
      while (!killed) {
        const events = batch(round);
        try {
          const answer = await post(events);
          record(events, answer);
          roundAcks += events.length;
        } catch (err) {
          // Before the kill every batch must be acknowledged; after it, none can be.
          if (!killed) throw err;
          assert.ok(isRampartError(err, CONTROL_API_ERRORS.unavailable), String(err));
          cutOff.push(events);
        }
        if (!proved && roundAcks >= MIN_ACKS_PER_ROUND / 2) {
          proved = true;
          // An inclusion proof makes the log sign a checkpoint now (not only every minute), so that
          // checkpoints made between kills are verified too. At most one per 10 s: a refusal is fine.
          await controlRequest(target, {
            method: 'POST',
            path: '/v1/audit/proofs/inclusion',
            body: { eventId: events[0]!.id },
            ...client,
          }).catch((err) => {
            if (!killed && !isRampartError(err, AUDIT_ERRORS.range)) throw err;
          });
        }
      }
    };
    const senders = Promise.all(Array.from({ length: IN_FLIGHT }, sender));
    const deadline = Date.now() + 30_000;
    while (roundAcks < MIN_ACKS_PER_ROUND) {
      assert.ok(Date.now() < deadline, `round ${round}: only ${roundAcks} acknowledged\n${control!.stderr()}`);
      await Promise.race([delay(5), senders]);
    }
    await delay(Math.floor(Math.random() * 250));
    killed = true;
    control!.signal('SIGKILL');
    const status = await control!.exited;
    assert.equal(status.signal, 'SIGKILL', control!.stderr());
    await senders;
    rounds.push(`round ${round}: ${roundAcks} acks, ${cutOff.length * BATCH_EVENTS} cut off`);

    // Stopped: every acknowledged event is in the log where its answer said; it verifies.
    const stored = storedEvents(dataDir);
    for (const [id, index] of acknowledged) {
      assert.equal(stored.ids.get(id), index, `round ${round}: acknowledged event ${id} (index ${index}) lost`);
    }
    const report: VerifyReport = verifyLogFile(join(dataDir, AUDIT_DEFAULTS.databaseFile), {
      verifierKeys: verifierKey === '' ? [] : [verifierKey],
    });
    assert.equal(report.ok, true, `round ${round}: ${JSON.stringify(report.problems)}`);
    assert.equal(report.entries, stored.rows);
    // Pinned from the first round on: every restart must sign with the same key.
    verifierKey ||= report.verifierKeys[0]!;
    assert.equal(report.keySource, round === 1 ? 'log' : 'trusted');

    if (round < ROUNDS) await start();
  }
  t.diagnostic(rounds.join('; '));
  assert.ok(acknowledged.size >= MIN_ACKS_TOTAL, `only ${acknowledged.size} acknowledged`);

  // The operator's check, on the data directory with the pinned key.
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runAudit(['verify', '--data', dataDir, '--key', verifierKey, '--json'], {
    stdout,
    stderr,
    cwd: dataDir,
  });
  assert.equal(code, 0, stdout.text + stderr.text);
  const final = JSON.parse(stdout.text) as VerifyReport;
  assert.equal(final.ok, true);
  assert.equal(final.firstBadIndex, null);
  assert.equal(final.keySource, 'trusted');
  assert.ok(final.checkpoints > 0, 'checkpoints were signed between the kills');
  const stored = storedEvents(dataDir);
  assert.equal(final.entries, stored.rows);
  for (const [id, index] of acknowledged) assert.equal(stored.ids.get(id), index);
  t.diagnostic(
    `${acknowledged.size} acknowledged (${resentStored} of them stored before their answer was cut off, recognized when sent again), ${final.entries} in the log, ${final.checkpoints} checkpoints`,
  );
});

test('one control plane per data directory: a second is refused before it writes anything there, and starts once the first is gone (even after kill -9)', {
  timeout: 90_000,
}, async (t) => {
  const { dataDir, runtime, args, env } = await project(t);
  const first = spawnTracked(t, process.execPath, args, { cwd: dataDir, env });
  await waitForHttp(`http://127.0.0.1:${runtime.adminPort}/readyz`, undefined, 30_000);
  const endpointBefore = readFileSync(join(dataDir, 'control-api.json'), 'utf8');
  const credentialBefore = readFileSync(join(dataDir, 'operator.token'), 'utf8');

  // The second gets its own ports, as a second `rampart start` of the same project would.
  const secondRuntime: ControlRuntime = { ...runtime, port: await freePort(), adminPort: await freePort() };
  const secondEnv = childEnv(secondRuntime, {}, process.env, { RAMPART_KEK: env['RAMPART_KEK']! });
  const second = spawnTracked(t, process.execPath, args, { cwd: dataDir, env: secondEnv });
  const status = await second.exited;
  assert.equal(status.code, 1, second.stderr());
  assert.match(second.stdout() + second.stderr(), /CONTROL_ERR_RUNNING/);
  assert.match(second.stdout() + second.stderr(), new RegExp(`"pid":${first.pid}\\b`), 'names the running one');
  assert.equal(readFileSync(join(dataDir, 'control-api.json'), 'utf8'), endpointBefore, 'endpoint file untouched');
  assert.equal(readFileSync(join(dataDir, 'operator.token'), 'utf8'), credentialBefore, 'credential untouched');
  assert.equal((await httpGet(`http://127.0.0.1:${runtime.adminPort}/readyz`)).status, 200, 'the first still serves');

  first.signal('SIGKILL');
  await first.exited;
  const third = spawnTracked(t, process.execPath, args, { cwd: dataDir, env: secondEnv });
  try {
    await waitForHttp(`http://127.0.0.1:${secondRuntime.adminPort}/readyz`, undefined, 30_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- stderr ---\n${third.stderr()}\n${third.stdout()}`);
  }
  const endpoint = JSON.parse(readFileSync(join(dataDir, 'control-api.json'), 'utf8')) as { pid: number };
  assert.equal(endpoint.pid, third.pid);
  await third.stop();
});
