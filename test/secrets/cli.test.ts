import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { describe, test } from 'node:test';
import pg from 'pg';
import { runAudit } from '../../src/cli/audit.ts';
import { runKek } from '../../src/cli/kek.ts';
import { runSecrets, SECRETS_FILES } from '../../src/cli/secrets.ts';
import { openAuditDatabase } from '../../src/control/audit/database.ts';
import { openAuditLog } from '../../src/control/audit/log.ts';
import { queryEvents } from '../../src/control/audit/query.ts';
import { CONTROL_FILES } from '../../src/control/files.ts';
import { SEC_ERRORS } from '../../src/control/secrets/errors.ts';
import type { AuditEvent } from '../../src/core/audit-event.ts';
import { type FileLock, tryLockFile } from '../../src/core/file-lock.ts';
import { createDevKek } from '../../src/core/kek.ts';
import { postgresDatabase } from '../audit/helpers.ts';
import { leakForms } from './fixtures.ts';

const BIN = new URL('../../bin/rampart.js', import.meta.url).pathname;

class Capture extends Writable {
  chunks: Buffer[] = [];
  isTTY = false;
  override _write(chunk: Buffer, _encoding: string, callback: () => void) {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
  bytes() {
    return Buffer.concat(this.chunks);
  }
  text() {
    return this.bytes().toString();
  }
}

/** A manifest: the CLI takes the audit log's origin (`cli.test/rampart/audit`) from its trust domain. */
const MANIFEST = `version: 1
trustDomain: cli.test
gateway:
  listen: { host: 127.0.0.1, port: 8443 }
  tls: off
  trustedProxies: []
  rateLimit: { store: memory }
identity:
  builtin: { port: 8444 }
  audience: https://api.cli.test
services:
  api: { run: api.ts }
`;

/** A project directory (a manifest, no data directory yet), removed after the test. */
function project(t: import('node:test').TestContext, options: { manifest?: boolean } = {}) {
  const cwd = mkdtempSync(join(tmpdir(), 'rampart-secrets-cli-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  if (options.manifest !== false) {
    writeFileSync(join(cwd, 'rampart.yaml'), MANIFEST);
    writeFileSync(join(cwd, 'api.ts'), '');
  }
  return cwd;
}

/** The events of the project's audit log, oldest first, read as `rampart audit query` reads them. */
function auditEvents(cwd: string): AuditEvent[] {
  const db = openAuditDatabase(join(cwd, '.rampart/control/audit.db'), { readOnly: true });
  try {
    return queryEvents(db, { limit: 10_000 }).map((r) => {
      assert.ok(r.event, `entry ${r.index} parses`);
      return r.event;
    });
  } finally {
    db.close();
  }
}

/** `rampart audit verify` on the project's log: its exit code. */
async function verifyAudit(cwd: string): Promise<number> {
  const sink = new Capture();
  return runAudit(['verify', '--data', join(cwd, '.rampart/control')], { stdout: sink, stderr: sink, cwd });
}

async function cli(
  cwd: string,
  args: string[],
  stdin?: Buffer | string,
  options: { tty?: boolean; env?: Record<string, string> } = {},
) {
  const stdout = new Capture();
  const stderr = new Capture();
  const input = Object.assign(Readable.from(stdin === undefined ? [] : [Buffer.from(stdin)]), {
    isTTY: options.tty === true,
  });
  const code = await runSecrets(args, { stdout, stderr, cwd, stdin: input, env: options.env ?? {} });
  return { code, stdout: stdout.text(), stderr: stderr.text(), raw: stdout.bytes() };
}

describe('rampart secrets (in process)', () => {
  test('set, get, rotate, promote, rollback, list, history: values only with get --reveal', async (t) => {
    const cwd = project(t);
    const secret = `s3cr3t-${randomBytes(8).toString('hex')}`;
    let r = await cli(cwd, ['set', 'db-password', '--create-dev-key', '--rotate-every', '90d'], `${secret}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /db-password: version 1 is current/);
    assert.equal(statSync(join(cwd, '.rampart/control', SECRETS_FILES.devKey)).mode & 0o777, 0o600);
    assert.equal(statSync(join(cwd, '.rampart/control')).mode & 0o777, 0o700);

    r = await cli(cwd, ['get', 'db-password']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /version 1 \(current\): \d+ bytes/);
    assert.ok(!r.stdout.includes(secret));

    r = await cli(cwd, ['get', 'db-password', '--reveal']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, secret, 'exactly the value, its trailing newline dropped at set');

    r = await cli(cwd, ['rotate', 'db-password'], 'next-value');
    assert.match(r.stdout, /version 2 staged as pending/);
    r = await cli(cwd, ['get', 'db-password', '--reveal', '--label', 'pending']);
    assert.equal(r.stdout, 'next-value');
    r = await cli(cwd, ['promote', 'db-password']);
    assert.match(r.stdout, /version 2 is current \(previous: 1\)/);
    r = await cli(cwd, ['rollback', 'db-password']);
    assert.match(r.stdout, /version 1 is current \(previous: 2\)/);
    r = await cli(cwd, ['get', 'db-password', '--reveal', '--version', '2']);
    assert.equal(r.stdout, 'next-value');

    r = await cli(cwd, ['list']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^NAME\s+CURRENT\s+PREVIOUS\s+PENDING\s+VERSIONS\s+UPDATED\s+ROTATION DUE$/m);
    assert.match(r.stdout, /^db-password\s+1\s+2\s+-\s+2\s/m);
    r = await cli(cwd, ['history', 'db-password', '--json']);
    const history = JSON.parse(r.stdout) as { versions: { version: number; label: string }[] };
    assert.deepEqual(
      history.versions.map((v) => [v.version, v.label]),
      [
        [1, 'current'],
        [2, 'previous'],
      ],
    );
    for (const out of [await cli(cwd, ['list', '--json']), await cli(cwd, ['history', 'db-password'])]) {
      assert.ok(!out.stdout.includes(secret) && !out.stdout.includes('next-value'));
    }

    // Every command is an admin event in the audit log, by the local account, and the log verifies.
    const events = auditEvents(cwd);
    const actions = events.map((e) => `${e.action}:${e.decision}`);
    assert.deepEqual(actions.slice(0, 4), [
      'secret.write:allow',
      'secret.history:allow',
      'secret.reveal:allow',
      'secret.write:allow',
    ]);
    for (const action of ['secret.promote:allow', 'secret.rollback:allow', 'secret.list:allow']) {
      assert.ok(actions.includes(action), action);
    }
    assert.equal(events.length, 12, 'one event per command');
    assert.ok(events.every((e) => e.component === 'secrets' && e.actor?.subject === userInfo().username));
    assert.ok(events.every((e) => /^secret:([0-9a-f]{64}|\*)$/.test(e.resource ?? '')));
    const log = readFileSync(join(cwd, '.rampart/control/audit.db'));
    for (const plaintext of [secret, 'next-value', 'db-password']) {
      assert.equal(log.indexOf(plaintext), -1, `${plaintext} is not in the audit log`);
    }
    assert.equal(await verifyAudit(cwd), 0);
  });

  test('--file, --raw, and the trailing-newline rule', async (t) => {
    const cwd = project(t);
    writeFileSync(join(cwd, 'value.txt'), 'from-file\r\n');
    assert.equal((await cli(cwd, ['set', 'api-token', '--file', 'value.txt', '--create-dev-key'])).code, 0);
    assert.equal((await cli(cwd, ['get', 'api-token', '--reveal'])).stdout, 'from-file');
    assert.equal((await cli(cwd, ['set', 'api-token', '--raw'], 'line\n\n')).code, 0);
    assert.deepEqual((await cli(cwd, ['get', 'api-token', '--reveal'])).raw, Buffer.from('line\n\n'));
    assert.equal((await cli(cwd, ['set', 'api-token'], 'two\n\n')).code, 0);
    assert.deepEqual(
      (await cli(cwd, ['get', 'api-token', '--reveal'])).raw,
      Buffer.from('two\n'),
      'only one newline dropped',
    );
    const binary = randomBytes(64);
    writeFileSync(join(cwd, 'bin.key'), binary);
    assert.equal((await cli(cwd, ['set', 'api-token', '--file', 'bin.key', '--raw'])).code, 0);
    assert.deepEqual((await cli(cwd, ['get', 'api-token', '--reveal'])).raw, binary);
  });

  test('the key from $RAMPART_KEK or --key-file; a wrong key is SEC_ERR_SEALED (exit 1), never output', async (t) => {
    const cwd = project(t);
    const key = randomBytes(32).toString('base64');
    const env = { RAMPART_KEK: key };
    assert.equal((await cli(cwd, ['set', 'db-password'], 'v', { env })).code, 0);
    assert.equal((await cli(cwd, ['get', 'db-password', '--reveal'], undefined, { env })).stdout, 'v');
    const wrong = await cli(cwd, ['get', 'db-password', '--reveal'], undefined, {
      env: { RAMPART_KEK: randomBytes(32).toString('base64') },
    });
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stdout, '');
    assert.match(wrong.stderr, new RegExp(`\\[${SEC_ERRORS.sealed}\\]`));
    const missing = await cli(cwd, ['get', 'db-password', '--reveal']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, new RegExp(`kek_unavailable\\) \\[${SEC_ERRORS.sealed}\\]`));
    createDevKek(join(cwd, 'other.key')).kek.destroy();
    const other = await cli(cwd, ['list', '--key-file', 'other.key']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /wrong_key/);
  });

  test('after rampart kek rotate, the CLI works with the new key (store and audit log) and not with the old', async (t) => {
    const cwd = project(t);
    assert.equal((await cli(cwd, ['set', 'db-password', '--create-dev-key'], 'one')).code, 0);
    assert.equal((await cli(cwd, ['set', 'db-password'], 'two')).code, 0);
    createDevKek(join(cwd, 'new.key')).kek.destroy();
    const out = new Capture();
    const err = new Capture();
    const code = await runKek(['rotate', '--new-key-file', 'new.key'], { stdout: out, stderr: err, cwd, env: {} });
    assert.equal(code, 0, err.text());
    assert.match(out.text(), /secrets\s+2 data keys re-wrapped/);
    const old = await cli(cwd, ['list']);
    assert.equal(old.code, 1, 'the old key no longer opens the store');
    assert.match(old.stderr, /\[SEC_ERR_SEALED\]/);
    // The audit log's signing key moved with the data keys: commands are recorded under the new key.
    const revealed = await cli(cwd, ['get', 'db-password', '--reveal', '--version', '1', '--key-file', 'new.key']);
    assert.equal(revealed.code, 0, revealed.stderr);
    assert.equal(revealed.stdout, 'one');
    assert.deepEqual(
      auditEvents(cwd).map((e) => e.action),
      ['secret.write', 'secret.write', 'kek.rotate', 'secret.rotate_kek', 'kek.rotated', 'secret.reveal'],
    );
    assert.equal(await verifyAudit(cwd), 0);
  });

  test('--postgres: the store and the audit log both in that database (control.store), the log verifies', async (t) => {
    const database = await postgresDatabase(t);
    if (database === null) return;
    const url = new URL(database);
    const cwd = project(t);
    const secret = `pg-${randomBytes(8).toString('hex')}`;
    const postgres = ['--postgres', url.href];
    assert.equal((await cli(cwd, ['set', 'db-password', '--create-dev-key', ...postgres], secret)).code, 0);
    assert.equal((await cli(cwd, ['get', 'db-password', '--reveal', ...postgres])).stdout, secret);
    assert.equal(existsSync(join(cwd, '.rampart/control/audit.db')), false, 'no SQLite log beside it');
    assert.equal(existsSync(join(cwd, '.rampart/control/secrets.db')), false);
    const query = new Capture();
    const code = await runAudit(['query', '--postgres', url.href, '--json'], { stdout: query, stderr: query, cwd });
    assert.equal(code, 0, query.text());
    const actions = query
      .text()
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as AuditEvent).action);
    assert.deepEqual(actions, ['secret.write', 'secret.reveal']);
    // Without the flag, the project manifest's control.store says where the store and the log are.
    writeFileSync(join(cwd, 'rampart.yaml'), `${MANIFEST}control:\n  store: { postgres: "${url.href}" }\n`);
    const listed = await cli(cwd, ['list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^db-password\s+1\s/m);
    assert.equal(existsSync(join(cwd, '.rampart/control/audit.db')), false, 'still no SQLite log');
    const verify = new Capture();
    assert.equal(
      await runAudit(['verify', '--postgres', url.href], { stdout: verify, stderr: verify, cwd }),
      0,
      verify.text(),
    );
    // Neither the value nor the name in the log's rows.
    const reader = new pg.Client({ connectionString: url.href });
    await reader.connect();
    try {
      const rows = await reader.query('SELECT entry FROM rampart_audit.entries');
      const stored = Buffer.concat(rows.rows.map((r: { entry: Buffer }) => Buffer.from(r.entry)));
      assert.equal(rows.rowCount, 3);
      for (const plaintext of [secret, 'db-password']) assert.equal(stored.indexOf(plaintext), -1, plaintext);
    } finally {
      await reader.end();
    }
  });

  test('no manifest, CA or audit log to take the trust domain from: refused, nothing created', async (t) => {
    const cwd = project(t, { manifest: false });
    const r = await cli(cwd, ['set', 'db-password', '--create-dev-key'], 'v');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no trust domain/);
    assert.equal(existsSync(join(cwd, '.rampart')), false);
  });

  test('an audit log that cannot be written under this key: every command is refused and nothing changes', async (t) => {
    const cwd = project(t);
    assert.equal((await cli(cwd, ['set', 'db-password', '--create-dev-key'], 'kept')).code, 0);
    // Replace the log by one whose signing key another KEK wraps (same origin): it opens under no key we hold.
    const dataDir = join(cwd, '.rampart/control');
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dataDir, `audit.db${suffix}`), { force: true });
    const other = createDevKek(join(cwd, 'other.key')).kek;
    await openAuditLog({ path: join(dataDir, 'audit.db'), origin: 'cli.test/rampart/audit', kek: other }).close();
    other.destroy();
    const set = await cli(cwd, ['set', 'db-password'], 'lost');
    assert.equal(set.code, 1);
    assert.match(set.stderr, /\[AUDIT_ERR_SEALED\]/);
    const reveal = await cli(cwd, ['get', 'db-password', '--reveal']);
    assert.equal(reveal.code, 1);
    assert.equal(reveal.stdout, '', 'no value without its record');
    assert.deepEqual(auditEvents(cwd), [], 'nothing appended');
    // The store was not changed: with a fresh log the current value is still the first one.
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dataDir, `audit.db${suffix}`), { force: true });
    assert.equal((await cli(cwd, ['get', 'db-password', '--reveal'])).stdout, 'kept');
  });

  const usage: ReadonlyArray<readonly [string, string[], string | undefined, number, RegExp]> = [
    ['no command', [], undefined, 2, /a command is required/],
    ['unknown command', ['frobnicate'], undefined, 2, /unknown command/],
    ['missing name', ['set'], 'v', 2, /needs a secret name/],
    ['extra argument', ['get', 'a', 'b'], undefined, 2, /too many arguments/],
    ['invalid name, escapes shown', ['get', 'x\u001b[31m'], undefined, 2, /invalid secret name "x\\u001b\[31m"/],
    ['option for another command', ['list', '--reveal'], undefined, 2, /--reveal does not apply to list/],
    ['unknown option', ['list', '--bogus'], undefined, 2, /bogus/],
    ['bad duration', ['set', 'a', '--rotate-every', '90'], 'v', 2, /--rotate-every/],
    ['bad label', ['get', 'a', '--label', 'latest'], undefined, 2, /--label/],
    ['label and version', ['get', 'a', '--label', 'current', '--version', '1'], undefined, 2, /not both/],
    ['bad version', ['get', 'a', '--version', '0'], undefined, 2, /--version/],
    ['rotate-kek moved to rampart kek rotate', ['rotate-kek'], undefined, 2, /rampart kek rotate/],
  ];
  for (const [label, args, stdin, code, pattern] of usage) {
    test(`usage: ${label}`, async (t) => {
      const cwd = project(t);
      // A store exists, so read commands reach argument checks rather than "no store".
      await cli(cwd, ['set', 'a', '--create-dev-key'], 'v');
      const r = await cli(cwd, args, stdin);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, pattern);
      assert.ok(!r.stderr.includes('    at '), 'no stack trace');
    });
  }

  test('a terminal on stdin is refused (typing would echo the value); empty and oversized values too', async (t) => {
    const cwd = project(t);
    const tty = await cli(cwd, ['set', 'a', '--create-dev-key'], 'v', { tty: true });
    assert.equal(tty.code, 2);
    assert.match(tty.stderr, /pipe the value/);
    assert.equal((await cli(cwd, ['set', 'a', '--create-dev-key'], '\n')).code, 1);
    const big = await cli(cwd, ['set', 'a', '--create-dev-key'], Buffer.alloc(70_000, 0x61));
    assert.equal(big.code, 1);
    assert.match(big.stderr, /larger than 65536 bytes/);
  });

  test('a control plane that starts while the value is piped in: refused, the store and the log untouched', async (t) => {
    const cwd = project(t);
    assert.equal((await cli(cwd, ['set', 'db-password', '--create-dev-key'], 'first')).code, 0);
    const before = auditEvents(cwd).length;
    const dataDir = join(cwd, '.rampart/control');
    // A starting control plane takes the data directory's lock, then writes its endpoint file, before it
    // opens the store and the audit log; here it does so while the CLI still waits for the value on a
    // pipe (a live pid: this process).
    let held: FileLock | null = null;
    t.after(() => held?.release());
    const stdin = Object.assign(
      Readable.from(
        (async function* () {
          held = tryLockFile(join(dataDir, CONTROL_FILES.lock));
          assert.ok(held);
          writeFileSync(
            join(dataDir, 'control-api.json'),
            JSON.stringify({ pid: process.pid, port: 9, trustDomain: 'cli.test' }),
          );
          yield Buffer.from('second');
        })(),
      ),
      { isTTY: false },
    );
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await runSecrets(['set', 'db-password'], { stdout, stderr, cwd, stdin, env: {} });
    assert.equal(code, 1, stderr.text());
    assert.match(stderr.text(), new RegExp(`a control plane \\(pid ${process.pid}\\) runs`));
    assert.ok(!stderr.text().includes('second') && !stdout.text().includes('second'));
    assert.equal(auditEvents(cwd).length, before, 'nothing appended to the audit log');
    (held as FileLock | null)?.release();
    rmSync(join(dataDir, 'control-api.json'));
    const r = await cli(cwd, ['get', 'db-password', '--reveal']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'first', 'the value was not changed');
  });

  test('a project manifest that does not load: refused, never a guess at where the store is', async (t) => {
    const cwd = project(t);
    assert.equal((await cli(cwd, ['set', 'db-password', '--create-dev-key'], 'first')).code, 0);
    const before = auditEvents(cwd).length;
    // The control plane's store moved to PostgreSQL, in a manifest with a mistake in it: the CLI cannot
    // tell where the control plane keeps its secrets and log, so it must not write the local files.
    writeFileSync(
      join(cwd, 'rampart.yaml'),
      `${MANIFEST}control:\n  store: { postgres: "postgres://rampart:pw@127.0.0.1:1/rampart" }\nmistake: true\n`,
    );
    const r = await cli(cwd, ['set', 'db-password'], 'second');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /does not load/);
    assert.ok(!r.stderr.includes(':pw@'), "the URL's password is not printed");
    assert.equal(auditEvents(cwd).length, before, 'nothing appended to the local audit log');
    // The manifest as it was: the local value is still the first.
    writeFileSync(join(cwd, 'rampart.yaml'), MANIFEST);
    const get = await cli(cwd, ['get', 'db-password', '--reveal']);
    assert.equal(get.stdout, 'first', 'the local value was not changed');
  });

  test('reading commands do not create a store where there is none', async (t) => {
    const cwd = project(t);
    const r = await cli(cwd, ['list']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no secrets store/);
    assert.equal(existsSync(join(cwd, '.rampart')), false);
  });

  test('a refused label move names the reason; nothing changes', async (t) => {
    const cwd = project(t);
    await cli(cwd, ['set', 'a', '--create-dev-key'], 'v');
    const r = await cli(cwd, ['promote', 'a']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no_pending\) \[SEC_ERR_LABEL\]/);
    const pending = await cli(cwd, ['rotate', 'a'], 'w');
    assert.equal(pending.code, 0);
    const blocked = await cli(cwd, ['set', 'a'], 'x');
    assert.match(blocked.stderr, /pending_exists/);
    assert.equal((await cli(cwd, ['set', 'a', '--discard-pending'], 'x')).code, 0);
  });
});

describe('rampart secrets (a real process)', () => {
  test('the plaintext appears nowhere: not in any output but --reveal, not in the data directory', async (t) => {
    const cwd = project(t);
    const secrets = [`PLAIN-${randomBytes(10).toString('hex')}`, `PLAIN-${randomBytes(10).toString('hex')}`];
    const outputs: Buffer[] = [];
    const run = (args: string[], input?: string) => {
      const r = spawnSync(process.execPath, [BIN, 'secrets', ...args], {
        cwd,
        input,
        timeout: 60_000,
        env: { PATH: process.env['PATH'] ?? '' },
      });
      assert.equal(r.status, 0, r.stderr.toString());
      return r;
    };
    const keep = (r: ReturnType<typeof run>) => outputs.push(r.stdout, r.stderr);
    keep(run(['set', 'payment-provider-key', '--create-dev-key'], `${secrets[0]}\n`));
    keep(run(['rotate', 'payment-provider-key'], secrets[1]));
    keep(run(['promote', 'payment-provider-key']));
    keep(run(['get', 'payment-provider-key']));
    keep(run(['list']));
    keep(run(['history', 'payment-provider-key']));
    keep(run(['rollback', 'payment-provider-key']));
    const failed = spawnSync(process.execPath, [BIN, 'secrets', 'promote', 'payment-provider-key'], {
      cwd,
      timeout: 60_000,
    });
    assert.equal(failed.status, 1);
    outputs.push(failed.stdout, failed.stderr);
    const revealed = run(['get', 'payment-provider-key', '--reveal']);
    assert.equal(revealed.stdout.toString(), secrets[0], 'the one place a value may appear');
    outputs.push(revealed.stderr);

    const dataDir = join(cwd, '.rampart/control');
    const files = readdirSync(dataDir).map((f) => join(dataDir, f));
    assert.ok(files.some((f) => f.endsWith('audit.db')));
    const everything = Buffer.concat([...outputs, ...files.map((f) => readFileSync(f))]);
    for (const secret of secrets) {
      for (const form of leakForms(Buffer.from(secret))) {
        assert.equal(everything.indexOf(form), -1, `${form.toString()} leaked`);
      }
    }
    const events = auditEvents(cwd);
    assert.ok(events.length >= 9, `${events.length} events`);
    assert.ok(
      events.some((e) => e.action === 'secret.promote' && e.decision === 'deny' && e.reason === 'SEC_ERR_LABEL'),
      'the refused promote is recorded too',
    );
    assert.ok(!JSON.stringify(events).includes('payment-provider-key'), 'the audit log names secrets by reference');
    assert.equal(await verifyAudit(cwd), 0);
  });

  test('rampart --help lists the secrets command', () => {
    const r = spawnSync(process.execPath, [BIN, '--help'], { timeout: 30_000 });
    assert.match(r.stdout.toString(), /^ {2}secrets\s/m);
  });
});
