/**
 * `rampart kek rotate` (src/cli/kek.ts, src/control/kek-rotation.ts): one command moves the whole
 * control plane to a new key-encryption key. On a data directory seeded as the control plane makes it
 * (a CA with two keys, an audit log, secrets with several versions), and again with the secrets and
 * the audit log in PostgreSQL:
 *
 * - afterwards, under the new key, the CA opens and issues an SVID, the audit log opens and signs a
 *   checkpoint that the verifier accepts, every secret version reads back; the old key opens none of
 *   the three; ciphertexts, certificates and earlier log entries are byte for byte what they were;
 * - the rotation is on record (kek.rotate, secret.rotate_kek, kek.rotated; the operator as actor);
 * - a process killed after any store's transaction leaves every store under one of the two keys, the
 *   control plane's components refuse to open under either key naming the KEK that sealed them, and
 *   running the same command again finishes the rotation with nothing lost;
 * - bad inputs (same key, malformed, missing, readable by others, wrong current key, a running
 *   control plane, usage mistakes) are refused with stable codes and exit codes, and change nothing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runKek } from '../../src/cli/kek.ts';
import { runSecrets } from '../../src/cli/secrets.ts';
import { writeControlEndpoint } from '../../src/control/api/operator-access.ts';
import { AuditStore, openAuditDatabase } from '../../src/control/audit/database.ts';
import { AUDIT_ERRORS } from '../../src/control/audit/errors.ts';
import { type AnyAuditLog, connectAuditLog } from '../../src/control/audit/log.ts';
import { openPostgresAuditReader, PostgresAuditQueries } from '../../src/control/audit/postgres-database.ts';
import { verifyPostgresTarget } from '../../src/control/audit/postgres-verify.ts';
import { verifyLogFile } from '../../src/control/audit/verify.ts';
import { CaStore, openCaDatabase } from '../../src/control/ca/database.ts';
import { CA_ERRORS, openCertificateAuthority } from '../../src/control/ca/index.ts';
import { makeCsr } from '../../src/control/ca/testing.ts';
import { inspectKekStores, KEK_ROTATION_ERRORS, rotateControlPlaneKek } from '../../src/control/kek-rotation.ts';
import { compileSecretsAcl } from '../../src/control/secrets/acl.ts';
import { SEC_ERRORS } from '../../src/control/secrets/errors.ts';
import { openPostgresSecretsStore } from '../../src/control/secrets/postgres-store.ts';
import { openSecretsService } from '../../src/control/secrets/service.ts';
import { openSqliteSecretsStore } from '../../src/control/secrets/sqlite-store.ts';
import type { SecretsStore } from '../../src/control/secrets/store.ts';
import { type AuditEvent, createAuditEvent, parseAuditEntry } from '../../src/core/audit-event.ts';
import { isRampartError, RampartError } from '../../src/core/errors.ts';
import { createDevKek, KEK_ERRORS, type Kek, loadKek } from '../../src/core/kek.ts';
import { postgresDatabase } from '../audit/helpers.ts';
import { Capture } from '../helpers/capture.ts';

const TRUST_DOMAIN = 'kek.test';
const ORIGIN = `${TRUST_DOMAIN}/rampart/audit`;
const SEEDER = { subject: 'seeder' };
/** name → the values of its versions, oldest first. */
const VALUES: Record<string, string[]> = {
  'db-password': ['first-value', 'second-value', 'third-value'],
  'api-key': ['only-value'],
};

/** The printed `[CODE]` of a refusal. */
const coded = (code: string) => new RegExp(`\\[${code}\\]`);

const is = (code: string) => (err: unknown) => {
  assert.ok(isRampartError(err), `expected ${code}, got ${String(err)}`);
  assert.equal(err.code, code);
  return true;
};

/** A project as `rampart start` lays it out: `<cwd>/.rampart/control` holding `kek.key`. */
interface System {
  cwd: string;
  dataDir: string;
  /** The key in use (`<data-dir>/kek.key`). */
  oldKeyFile: string;
  /** A fresh key next to the project. */
  newKeyFile: string;
  postgres: string | undefined;
}

function loadFile(file: string): Kek {
  return loadKek({ file });
}

function openLog(system: System, kek: Kek): Promise<AnyAuditLog> {
  return connectAuditLog({
    ...(system.postgres === undefined
      ? { path: join(system.dataDir, 'audit.db') }
      : { postgres: { connectionString: system.postgres } }),
    origin: ORIGIN,
    kek,
    checkpointIntervalMs: 0,
  });
}

function openStore(system: System): Promise<SecretsStore> {
  return system.postgres === undefined
    ? Promise.resolve(openSqliteSecretsStore({ path: join(system.dataDir, 'secrets.db') }))
    : openPostgresSecretsStore({ connectionString: system.postgres });
}

function openCa(system: System, kek: Kek) {
  return openCertificateAuthority({
    trustDomain: TRUST_DOMAIN,
    databasePath: join(system.dataDir, 'ca.db'),
    kek,
    signingThreads: 0,
  });
}

const acl = () => compileSecretsAcl({ trustDomain: TRUST_DOMAIN, services: {}, secrets: {} });

/** The control plane's three stores under the key of `<data-dir>/kek.key`, with something in each. */
async function seed(t: import('node:test').TestContext, postgres?: string): Promise<System> {
  const cwd = mkdtempSync(join(tmpdir(), 'rampart-kek-'));
  t.after(() => rmSync(cwd, { recursive: true, force: true }));
  const dataDir = join(cwd, '.rampart', 'control');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const system: System = {
    cwd,
    dataDir,
    oldKeyFile: join(dataDir, 'kek.key'),
    newKeyFile: join(cwd, 'new.key'),
    postgres,
  };
  const { kek } = createDevKek(system.oldKeyFile);
  createDevKek(system.newKeyFile).kek.destroy();
  try {
    const ca = await openCa(system, kek);
    try {
      // An SVID, then a rotation: the first CA keeps its key while that SVID lives (two wrapped keys).
      await ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
      await ca.rotateNow();
      assert.equal(ca.status().authorities.filter((a) => a.state !== 'retired').length, 2);
    } finally {
      ca.close();
    }
    const log = await openLog(system, kek);
    try {
      await log.append([createAuditEvent({ component: 'gateway', action: 'http.request', decision: 'allow' })]);
      const service = await openSecretsService({
        store: await openStore(system),
        kek,
        audit: { append: async (event) => void (await log.append([event])) },
        acl: acl(),
      });
      try {
        for (const [name, values] of Object.entries(VALUES)) {
          for (const value of values) await service.set(SEEDER, name, Buffer.from(value));
        }
      } finally {
        await service.close();
      }
    } finally {
      await log.close();
    }
  } finally {
    kek.destroy();
  }
  return system;
}

/** What no rotation may change: certificates, ciphertexts and nonces, log entries. */
async function snapshot(system: System) {
  const ca = new CaStore(openCaDatabase(join(system.dataDir, 'ca.db')));
  const certificates = ca.liveAuthorities().map((a) => [a.generation, Buffer.from(a.certificate).toString('hex')]);
  const wrappedCa = ca.liveAuthorities().map((a) => Buffer.from(a.wrappedKey!).toString('hex'));
  ca.close();
  const store = await openStore(system);
  const ciphertexts: string[] = [];
  const wrapped: string[] = [];
  try {
    for (const [name, values] of Object.entries(VALUES)) {
      for (let v = 1; v <= values.length; v++) {
        const row = (await store.version(name, v))!;
        ciphertexts.push(
          `${name}/${v}:${Buffer.from(row.nonce).toString('hex')}:${Buffer.from(row.ciphertext).toString('hex')}`,
        );
        wrapped.push(Buffer.from(row.wrappedKey).toString('hex'));
      }
    }
  } finally {
    await store.close();
  }
  return { certificates, ciphertexts, wrapped, wrappedCa, entries: await logEntries(system) };
}

/** The log's entries as stored (bytes, hex), oldest first. */
async function logEntries(system: System): Promise<string[]> {
  if (system.postgres === undefined) {
    const db = openAuditDatabase(join(system.dataDir, 'audit.db'), { readOnly: true });
    try {
      const store = new AuditStore(db);
      return Array.from({ length: store.entryCount() }, (_, i) => store.entryAt(i)!.entry.toString('hex'));
    } finally {
      db.close();
    }
  }
  const reader = await openPostgresAuditReader({ connectionString: system.postgres });
  try {
    const queries = new PostgresAuditQueries(reader.client);
    const out: string[] = [];
    for (let i = 0; i < (await queries.entryCount()); i++) out.push((await queries.entryAt(i))!.entry.toString('hex'));
    return out;
  } finally {
    await reader.close();
  }
}

async function events(system: System): Promise<AuditEvent[]> {
  return (await logEntries(system)).map((hex) => parseAuditEntry(Buffer.from(hex, 'hex')));
}

async function verifyAudit(system: System) {
  return system.postgres === undefined
    ? verifyLogFile(join(system.dataDir, 'audit.db'))
    : verifyPostgresTarget({ connectionString: system.postgres });
}

/**
 * The control plane's components under `kekFile`, as it opens them: the audit log, the CA (which
 * issues an SVID), every secret version (each read recorded in the log); the log signs a checkpoint
 * on close and the verifier accepts it.
 */
async function assertWorksUnder(system: System, kekFile: string): Promise<void> {
  const kek = loadFile(kekFile);
  try {
    const log = await openLog(system, kek);
    try {
      const ca = await openCa(system, kek);
      try {
        const svid = await ca.issue({ csr: (await makeCsr()).pem, serviceName: 'orders' });
        assert.equal(svid.spiffeId, `spiffe://${TRUST_DOMAIN}/svc/orders`);
      } finally {
        ca.close();
      }
      const service = await openSecretsService({
        store: await openStore(system),
        kek,
        audit: { append: async (event) => void (await log.append([event])) },
        acl: acl(),
      });
      try {
        for (const [name, values] of Object.entries(VALUES)) {
          for (let v = 1; v <= values.length; v++) {
            const secret = await service.reveal(SEEDER, name, { version: v });
            assert.equal(secret.value.toString(), values[v - 1], `${name} version ${v}`);
          }
        }
      } finally {
        await service.close();
      }
      await log.checkpoint();
    } finally {
      await log.close();
    }
  } finally {
    kek.destroy();
  }
  const report = await verifyAudit(system);
  assert.equal(report.ok, true, JSON.stringify(report.problems));
  assert.equal(report.unsignedEntries, 0);
}

/** None of the three opens under `kekFile`: each refusal with its store's sealed code. */
async function assertSealedUnder(system: System, kekFile: string): Promise<void> {
  const kek = loadFile(kekFile);
  try {
    await assert.rejects(openLog(system, kek), is(AUDIT_ERRORS.sealed));
    await assert.rejects(openCa(system, kek), is(CA_ERRORS.sealed));
    await assert.rejects(
      openSecretsService({ store: await openStore(system), kek, audit: { append: async () => {} }, acl: acl() }),
      is(SEC_ERRORS.sealed),
    );
  } finally {
    kek.destroy();
  }
}

async function kekCli(system: System, args: string[]) {
  const stdout = new Capture();
  const stderr = new Capture();
  const withStore = system.postgres === undefined ? [] : ['--postgres', system.postgres];
  const code = await runKek(args.length > 0 && args[0] === 'rotate' ? [...args, ...withStore] : args, {
    stdout,
    stderr,
    cwd: system.cwd,
    env: {},
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** The rotation as the operator runs it, from the project directory. */
const rotateArgs = (system: System) => ['rotate', '--new-key-file', system.newKeyFile];

async function assertRotated(system: System, before: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
  const after = await snapshot(system);
  assert.deepEqual(after.certificates, before.certificates, 'certificates untouched');
  assert.deepEqual(after.ciphertexts, before.ciphertexts, 'ciphertexts and nonces untouched');
  assert.deepEqual(after.entries.slice(0, before.entries.length), before.entries, 'earlier log entries untouched');
  for (let i = 0; i < before.wrapped.length; i++) assert.notEqual(after.wrapped[i], before.wrapped[i]);
  for (let i = 0; i < before.wrappedCa.length; i++) assert.notEqual(after.wrappedCa[i], before.wrappedCa[i]);
  await assertWorksUnder(system, system.newKeyFile);
  await assertSealedUnder(system, system.oldKeyFile);
}

/** Runs the rotation in a child process that kills itself (SIGKILL: no cleanup) after `store` committed. */
function rotateAndDie(system: System, store: string): void {
  const module = fileURLToPath(new URL('../../src/control/kek-rotation.ts', import.meta.url));
  const kek = fileURLToPath(new URL('../../src/core/kek.ts', import.meta.url));
  const script = `
    import { rotateControlPlaneKek } from ${JSON.stringify(module)};
    import { loadKek } from ${JSON.stringify(kek)};
    const [dataDir, oldFile, newFile, at, postgres] = process.argv.slice(1);
    await rotateControlPlaneKek({
      dataDir, origin: ${JSON.stringify(ORIGIN)}, actor: { subject: 'crash' },
      current: loadKek({ file: oldFile }), next: loadKek({ file: newFile }),
      ...(postgres ? { postgres } : {}),
      afterStore: (done) => { if (done === at) process.kill(process.pid, 'SIGKILL'); },
    });
    process.exit(3); // not reached: the rotation passed the store it should have died after
  `;
  const child = spawnSync(
    process.execPath,
    [
      '--conditions=rampart-source',
      '--input-type=module',
      '-e',
      script,
      system.dataDir,
      system.oldKeyFile,
      system.newKeyFile,
      store,
      system.postgres ?? '',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(child.signal, 'SIGKILL', `the child died after ${store}: ${child.stderr}`);
}

async function idOf(file: string): Promise<string> {
  const kek = loadFile(file);
  try {
    return kek.id;
  } finally {
    kek.destroy();
  }
}

/** Both keys, loaded for a look at the stores. */
async function states(system: System) {
  const current = loadFile(system.oldKeyFile);
  const next = loadFile(system.newKeyFile);
  try {
    return await inspectKekStores({
      dataDir: system.dataDir,
      ...(system.postgres === undefined ? {} : { postgres: system.postgres }),
      current,
      next,
    });
  } finally {
    current.destroy();
    next.destroy();
  }
}

/** The interrupted-rotation story: killed after `store`, then the same command run again. */
async function interruptedThenFinished(system: System, store: 'secrets' | 'ca' | 'audit'): Promise<void> {
  const before = await snapshot(system);
  rotateAndDie(system, store);
  const expected = {
    secrets: { secrets: 'next', ca: 'current', audit: 'current' },
    ca: { secrets: 'next', ca: 'next', audit: 'current' },
    audit: { secrets: 'next', ca: 'next', audit: 'next' },
  }[store];
  const { auditActive: _, ...found } = await states(system);
  assert.deepEqual(found, expected, 'each store wholly under one of the two keys');

  // Meanwhile a store under the other key does not open, and each refusal names the KEK that sealed it.
  const oldId = await idOf(system.oldKeyFile);
  const newId = await idOf(system.newKeyFile);
  if (store !== 'audit') {
    const kek = loadFile(system.newKeyFile);
    try {
      await assert.rejects(openLog(system, kek), (err) => {
        is(AUDIT_ERRORS.sealed)(err);
        assert.equal((err as { detail: Record<string, unknown> }).detail['sealedBy'], oldId);
        return true;
      });
    } finally {
      kek.destroy();
    }
  }
  const kek = loadFile(system.oldKeyFile);
  try {
    await assert.rejects(
      openSecretsService({ store: await openStore(system), kek, audit: { append: async () => {} }, acl: acl() }),
      (err) => {
        is(SEC_ERRORS.sealed)(err);
        assert.equal((err as { detail: Record<string, unknown> }).detail['storeKekId'], newId);
        return true;
      },
    );
  } finally {
    kek.destroy();
  }

  // The recovery rule: the same command again.
  const again = await kekCli(system, rotateArgs(system));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /secrets\s+already under the new key/);
  await assertRotated(system, before);
  const actions = (await events(system)).map((e) => e.action);
  assert.equal(actions.filter((a) => a === 'secret.rotate_kek').length, 1, 'the secrets were re-wrapped once');
  assert.ok(actions.includes('kek.rotated'));
}

function backends(): { name: string; setup: (t: import('node:test').TestContext) => Promise<System | null> }[] {
  return [
    { name: 'SQLite', setup: (t) => seed(t) },
    {
      name: 'PostgreSQL (secrets and audit log; the CA is always ca.db)',
      setup: async (t) => {
        const url = await postgresDatabase(t);
        return url === null ? null : seed(t, url);
      },
    },
  ];
}

for (const backend of backends()) {
  describe(`rampart kek rotate: ${backend.name}`, () => {
    test('every key re-wrapped: under the new key everything opens and works, under the old nothing does', async (t) => {
      const system = await backend.setup(t);
      if (system === null) return;
      const before = await snapshot(system);
      const r = await kekCli(system, rotateArgs(system));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /secrets\s+4 data keys re-wrapped/);
      assert.match(r.stdout, /CA\s+2 signing keys re-wrapped/);
      assert.match(r.stdout, /audit log\s+1 signing keys re-wrapped/);
      assert.match(r.stdout, new RegExp(`install the new key at ${system.oldKeyFile}`));
      await assertRotated(system, before);

      const recorded = (await events(system)).filter(
        (e) => e.action.startsWith('kek.') || e.action === 'secret.rotate_kek',
      );
      assert.deepEqual(
        recorded.map((e) => [e.action, e.decision]),
        [
          ['kek.rotate', 'allow'],
          ['secret.rotate_kek', 'allow'],
          ['kek.rotated', 'allow'],
        ],
      );
      const newId = await idOf(system.newKeyFile);
      assert.equal(recorded[0]!.resource, `kek:${newId}`);
      assert.equal(recorded[0]!.detail?.['previousKekId'], await idOf(system.oldKeyFile));
      assert.ok(recorded[0]!.actor?.subject, 'the operator is the actor');

      // Rotating again to the same key: refused, nothing changes.
      const same = await kekCli(system, [
        'rotate',
        '--new-key-file',
        system.newKeyFile,
        '--key-file',
        system.newKeyFile,
      ]);
      assert.equal(same.code, 1);
      assert.match(same.stderr, new RegExp(`\\[${KEK_ROTATION_ERRORS.sameKey}\\]`));
    });

    test('killed after the secrets store: the same command again finishes, nothing lost', async (t) => {
      const system = await backend.setup(t);
      if (system === null) return;
      await interruptedThenFinished(system, 'secrets');
    });
  });
}

describe('rampart kek rotate: interrupted at every point (SQLite)', () => {
  for (const store of ['ca', 'audit'] as const) {
    test(`killed after the ${store} store: the same command again finishes, nothing lost`, async (t) => {
      await interruptedThenFinished(await seed(t), store);
    });
  }

  test('a failure inside the run (not a kill) is recorded, and the rerun finishes', async (t) => {
    const system = await seed(t);
    const before = await snapshot(system);
    const current = loadFile(system.oldKeyFile);
    const next = loadFile(system.newKeyFile);
    try {
      await assert.rejects(
        rotateControlPlaneKek({
          dataDir: system.dataDir,
          origin: ORIGIN,
          current,
          next,
          actor: { subject: 'tester' },
          afterStore: (store) => {
            if (store === 'secrets') throw new RampartErrorLike('TEST_ERR_INTERRUPTED');
          },
        }),
        (err) => {
          is('TEST_ERR_INTERRUPTED')(err);
          assert.equal((err as { detail: Record<string, unknown> }).detail['rewrappedStores'], 'secrets');
          return true;
        },
      );
    } finally {
      current.destroy();
      next.destroy();
    }
    const recorded = (await events(system)).filter((e) => e.action === 'kek.rotate').map((e) => [e.decision, e.reason]);
    assert.deepEqual(recorded, [
      ['allow', undefined],
      ['error', 'TEST_ERR_INTERRUPTED'],
    ]);
    const again = await kekCli(system, rotateArgs(system));
    assert.equal(again.code, 0, again.stderr);
    await assertRotated(system, before);
  });
});

/** A RampartError with a code of the test's own (the hook's failure). */
class RampartErrorLike extends RampartError {
  constructor(code: string) {
    super(code, 'interrupted', { detail: {} });
  }
}

describe('rampart kek rotate: refusals (SQLite)', () => {
  test('bad inputs are refused with stable codes and exit codes, and change nothing', async (t) => {
    const system = await seed(t);
    const file = (name: string, content: string | Buffer, mode = 0o600) => {
      const path = join(system.cwd, name);
      writeFileSync(path, content, { mode });
      chmodSync(path, mode);
      return path;
    };
    const other = join(system.cwd, 'other.key');
    createDevKek(other).kek.destroy();
    const cases: [string, string[], number, RegExp][] = [
      [
        'the new key is the key in use',
        ['rotate', '--new-key-file', system.oldKeyFile],
        1,
        coded(KEK_ROTATION_ERRORS.sameKey),
      ],
      [
        'a missing new key file',
        ['rotate', '--new-key-file', join(system.cwd, 'nope.key')],
        1,
        coded(KEK_ERRORS.missing),
      ],
      [
        'a malformed new key',
        ['rotate', '--new-key-file', file('short.key', 'c2hvcnQ=\n')],
        1,
        coded(KEK_ERRORS.format),
      ],
      [
        'an all-zero new key',
        ['rotate', '--new-key-file', file('zero.key', Buffer.alloc(32))],
        1,
        coded(KEK_ERRORS.format),
      ],
      [
        'a new key others can read',
        ['rotate', '--new-key-file', file('open.key', randomBytes(32).toString('base64'), 0o644)],
        1,
        coded(KEK_ERRORS.fileMode),
      ],
      ['a directory as new key', ['rotate', '--new-key-file', system.cwd], 1, coded(KEK_ERRORS.fileMode)],
      [
        'a current key that is not the stores’',
        ['rotate', '--new-key-file', system.newKeyFile, '--key-file', other],
        1,
        coded(KEK_ROTATION_ERRORS.foreignKey),
      ],
      [
        'a missing current key',
        ['rotate', '--new-key-file', system.newKeyFile, '--key-file', join(system.cwd, 'gone.key')],
        1,
        coded(KEK_ERRORS.missing),
      ],
      ['no --new-key-file', ['rotate'], 2, /needs --new-key-file/],
      ['no command', [], 2, /a command is required/],
      ['an unknown command', ['spin'], 2, /unknown command "spin"/],
      ['an extra argument', ['rotate', 'now', '--new-key-file', system.newKeyFile], 2, /too many arguments/],
      ['an unknown option', ['rotate', '--new-key-file', system.newKeyFile, '--force'], 2, /--force/],
    ];
    const before = await snapshot(system);
    for (const [name, args, code, pattern] of cases) {
      const r = await kekCli(system, args);
      assert.equal(r.code, code, `${name}: ${r.stderr}`);
      assert.match(r.stderr, pattern, name);
      assert.equal(r.stdout, '', name);
    }
    assert.deepEqual(await snapshot(system), before, 'nothing changed');
    const { auditActive: _, ...found } = await states(system);
    assert.deepEqual(found, { secrets: 'current', ca: 'current', audit: 'current' });
    assert.ok(!(await events(system)).some((e) => e.action.startsWith('kek.')), 'no refused run reached the log');
  });

  test('refused while a control plane runs on the data directory; nothing changes', async (t) => {
    const system = await seed(t);
    writeControlEndpoint(system.dataDir, { pid: process.pid, port: 1, trustDomain: TRUST_DOMAIN });
    const before = await snapshot(system);
    const r = await kekCli(system, rotateArgs(system));
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`the control plane \\(pid ${process.pid}\\) holds the stores`));
    assert.deepEqual(await snapshot(system), before);
  });

  test('refused while another process writes the audit log (its writer lock); nothing changes', async (t) => {
    const system = await seed(t);
    const kek = loadFile(system.oldKeyFile);
    const holder = await openLog(system, kek);
    try {
      const before = await snapshot(system);
      const r = await kekCli(system, rotateArgs(system));
      assert.equal(r.code, 1);
      assert.match(r.stderr, coded(AUDIT_ERRORS.locked));
      assert.deepEqual(await snapshot(system), before);
      const { auditActive: _, ...found } = await states(system);
      assert.deepEqual(found, { secrets: 'current', ca: 'current', audit: 'current' });
    } finally {
      await holder.close();
      kek.destroy();
    }
  });

  test('rampart secrets rotate-kek is gone and says where the command went', async (t) => {
    const system = await seed(t);
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await runSecrets(['rotate-kek', '--data-dir', system.dataDir], {
      stdout,
      stderr,
      cwd: system.cwd,
      env: {},
    });
    assert.equal(code, 2);
    assert.match(stderr.text, /rampart kek rotate/);
  });
});
