/**
 * `rampart kek rotate` against the real control plane process (src/control/main.ts started as the
 * launcher starts it, under the permission model, its KEK in RAMPART_KEK): it makes its CA, audit log
 * and secrets store under the old key and is stopped; a secret is set offline; the rotation runs with
 * RAMPART_KEK still the old key; then the control plane starts under the new key, issues an SVID to a
 * workload with a join token, serves the secret to the operator, and its audit log verifies with the
 * rotation on record. Started under the old key afterwards, it refuses to start.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type TestContext, test } from 'node:test';
import { runKek } from '../../src/cli/kek.ts';
import { runSecrets } from '../../src/cli/secrets.ts';
import { type ControlTarget, createWorkloadKey, requestJoinToken, requestSvid } from '../../src/control/api/index.ts';
import { AuditStore, openAuditDatabase } from '../../src/control/audit/database.ts';
import { verifyLogFile } from '../../src/control/audit/verify.ts';
import { parseAuditEntry } from '../../src/core/audit-event.ts';
import { loadKek } from '../../src/core/kek.ts';
import { Capture } from '../helpers/capture.ts';
import { controlProject } from '../helpers/control-process.ts';
import { spawnTracked, waitForHttp } from '../helpers/processes.ts';

async function project(t: TestContext) {
  const p = await controlProject(t, 'rampart-kek-process-');
  /** The control plane with `kek` (base64) in RAMPART_KEK. */
  const start = (kek: string) => spawnTracked(t, process.execPath, p.args, { cwd: p.dataDir, env: p.env(kek) });
  return { dir: p.dir, dataDir: p.dataDir, runtime: p.runtime, start };
}

test('after rampart kek rotate the real control plane starts under the new key: it signs, serves secrets, its log verifies', {
  timeout: 120_000,
}, async (t) => {
  const { dir, dataDir, runtime, start } = await project(t);
  const oldKey = randomBytes(32).toString('base64');
  const newKey = randomBytes(32).toString('base64');
  const newKeyFile = join(dir, 'new.key');
  writeFileSync(newKeyFile, `${newKey}\n`, { mode: 0o600 });
  const ready = async (control: ReturnType<typeof start>) => {
    try {
      await waitForHttp(`http://127.0.0.1:${runtime.adminPort}/readyz`, undefined, 30_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- stderr ---\n${control.stderr()}\n${control.stdout()}`);
    }
  };

  // 1. The control plane makes its stores under the old key; stopped, the operator sets a secret.
  let control = start(oldKey);
  await ready(control);
  await control.stop();
  const secret = `value-${randomBytes(8).toString('hex')}`;
  const secrets = async (args: string[], env: Record<string, string>, stdin?: string) => {
    const stdout = new Capture();
    const stderr = new Capture();
    const input = Object.assign(Readable.from(stdin === undefined ? [] : [Buffer.from(stdin)]), { isTTY: false });
    const code = await runSecrets([...args, '--data-dir', dataDir], { stdout, stderr, cwd: dir, stdin: input, env });
    return { code, stdout: stdout.text, stderr: stderr.text };
  };
  const set = await secrets(['set', 'api-key'], { RAMPART_KEK: oldKey }, secret);
  assert.equal(set.code, 0, set.stderr);

  // 2. The rotation, with the key in use where the control plane takes it from.
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await runKek(['rotate', '--new-key-file', newKeyFile, '--data-dir', dataDir], {
    stdout,
    stderr,
    cwd: dir,
    env: { RAMPART_KEK: oldKey },
  });
  assert.equal(code, 0, stderr.text);
  assert.match(stdout.text, /secrets\s+1 data keys re-wrapped/);
  assert.match(stdout.text, /CA\s+1 signing keys re-wrapped/);
  assert.match(stdout.text, /audit log\s+1 signing keys re-wrapped/);
  assert.match(stdout.text, /set RAMPART_KEK to the new key/);

  // 3. Under the new key: it starts, signs an SVID for a workload, serves the secret to the operator.
  control = start(newKey);
  await ready(control);
  const target: ControlTarget = {
    url: `https://127.0.0.1:${runtime.port}`,
    bundle: readFileSync(join(dataDir, 'bundle.pem'), 'utf8'),
    trustDomain: runtime.trustDomain,
  };
  const { token } = await requestJoinToken(target, runtime.launcherCredential, 'orders');
  const key = await createWorkloadKey();
  const svid = await requestSvid(target, token, key.csrPem);
  assert.match(svid.certificate, /BEGIN CERTIFICATE/);
  const revealed = await secrets(['get', 'api-key', '--reveal'], {});
  assert.equal(revealed.code, 0, revealed.stderr);
  assert.equal(revealed.stdout, secret);
  const stopped = await control.stop();
  assert.equal(stopped.code, 0, control.stderr());

  const report = verifyLogFile(join(dataDir, 'audit.db'));
  assert.equal(report.ok, true, JSON.stringify(report.problems));
  const db = openAuditDatabase(join(dataDir, 'audit.db'), { readOnly: true });
  let actions: string[];
  try {
    const store = new AuditStore(db);
    actions = Array.from({ length: store.entryCount() }, (_, i) => parseAuditEntry(store.entryAt(i)!.entry).action);
  } finally {
    db.close();
  }
  for (const action of ['kek.rotate', 'secret.rotate_kek', 'kek.rotated', 'secret.reveal']) {
    assert.ok(actions.includes(action), `${action} in the log`);
  }

  // 4. Under the old key it does not start, and says which store and which key.
  control = start(oldKey);
  const refused = await control.exited;
  assert.equal(refused.code, 1);
  // One fatal log line with the code and detail, no stack trace on stderr.
  const output = control.stdout();
  const fatal = output.split('\n').find((line) => line.includes('"level":"fatal"'));
  assert.ok(fatal, output + control.stderr());
  assert.match(fatal, /"code":"AUDIT_ERR_SEALED"/);
  assert.doesNotMatch(control.stderr(), /at .*main\.ts/);
  const newKek = loadKek({ env: 'K', environment: { K: newKey } });
  try {
    assert.ok(fatal.includes(newKek.id), 'the refusal names the KEK that sealed the log');
  } finally {
    newKek.destroy();
  }
});
