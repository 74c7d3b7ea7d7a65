import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isRampartError } from '../../core/errors.ts';
import { openTestCa, type TestCa } from '../ca/testing.ts';
import { compileSecretsAcl } from '../secrets/acl.ts';
import { openSecretsService, type SecretsService } from '../secrets/service.ts';
import { openSqliteSecretsStore } from '../secrets/sqlite-store.ts';
import { CONTROL_API_ERRORS } from './errors.ts';
import {
  createOperatorAuthorization,
  OPERATOR_FILES,
  processAlive,
  readControlEndpoint,
  readOperatorCredential,
  removeOperatorFiles,
  writeControlEndpoint,
  writeOperatorCredential,
} from './operator-access.ts';
import { createOperatorRoutes } from './operator-routes.ts';
import { createOperatorSecretsRoutes, OPERATOR_SECRETS_ROUTES } from './operator-secrets-routes.ts';
import { TestAuditSink } from './secrets-testing.ts';
import { rawJsonRequest, startTestControlPlane, TEST_LAUNCHER_CREDENTIAL, type TestControlPlane } from './testing.ts';

function dataDir(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-operator-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('operator access files', () => {
  test('the credential is random, 256 bits, written 0600, and replaced at every start', (t) => {
    const dir = dataDir(t);
    const first = writeOperatorCredential(dir);
    const file = join(dir, OPERATOR_FILES.credential);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(first, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(readOperatorCredential(dir), first);
    const second = writeOperatorCredential(dir);
    assert.notEqual(second, first);
    assert.equal(readOperatorCredential(dir), second);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('the endpoint round-trips; both files are removed at shutdown', (t) => {
    const dir = dataDir(t);
    assert.equal(readControlEndpoint(dir), null);
    assert.equal(readOperatorCredential(dir), null);
    writeControlEndpoint(dir, { pid: 4242, port: 8443, trustDomain: 'shop.local' });
    writeOperatorCredential(dir);
    assert.deepEqual(readControlEndpoint(dir), { pid: 4242, port: 8443, trustDomain: 'shop.local' });
    removeOperatorFiles(dir);
    assert.ok(!existsSync(join(dir, OPERATOR_FILES.endpoint)));
    assert.ok(!existsSync(join(dir, OPERATOR_FILES.credential)));
    removeOperatorFiles(dir); // twice is fine
  });

  test('a planted temporary file or link is not written through', (t) => {
    const dir = dataDir(t);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep');
    symlinkSync(victim, join(dir, `${OPERATOR_FILES.credential}.${process.pid}.tmp`));
    writeOperatorCredential(dir);
    assert.equal(readFileSync(victim, 'utf8'), 'keep');
  });

  test('hostile endpoint files are refused, never read as "nothing runs"', (t) => {
    const rows: [string, string][] = [
      ['not json', '{pid: 1'],
      ['array', '[1, 2, 3]'],
      ['null', 'null'],
      ['no pid', '{"port":1,"trustDomain":"shop.local"}'],
      ['pid zero', '{"pid":0,"port":1,"trustDomain":"shop.local"}'],
      ['pid negative (a process group for kill)', '{"pid":-1,"port":1,"trustDomain":"shop.local"}'],
      ['pid string', '{"pid":"1","port":1,"trustDomain":"shop.local"}'],
      ['pid fraction', '{"pid":1.5,"port":1,"trustDomain":"shop.local"}'],
      ['port zero', '{"pid":1,"port":0,"trustDomain":"shop.local"}'],
      ['port too large', '{"pid":1,"port":65536,"trustDomain":"shop.local"}'],
      ['trust domain with a path', '{"pid":1,"port":1,"trustDomain":"shop.local/x"}'],
      ['trust domain upper case', '{"pid":1,"port":1,"trustDomain":"SHOP.local"}'],
      ['trust domain number', '{"pid":1,"port":1,"trustDomain":7}'],
      ['oversized', `{"pid":1,"port":1,"trustDomain":"shop.local","x":"${'a'.repeat(10_000)}"}`],
    ];
    for (const [name, content] of rows) {
      const dir = dataDir(t);
      writeFileSync(join(dir, OPERATOR_FILES.endpoint), content);
      assert.throws(() => readControlEndpoint(dir), RangeError, name);
    }
    const linked = dataDir(t);
    writeFileSync(join(linked, 'elsewhere.json'), '{"pid":1,"port":1,"trustDomain":"shop.local"}');
    symlinkSync(join(linked, 'elsewhere.json'), join(linked, OPERATOR_FILES.endpoint));
    assert.throws(() => readControlEndpoint(linked), { code: 'ELOOP' });
  });

  test('malformed credentials are refused', (t) => {
    for (const content of ['', 'short', `${'a'.repeat(42)}!`, 'a'.repeat(44), `${'a'.repeat(20)} ${'a'.repeat(22)}`]) {
      const dir = dataDir(t);
      writeFileSync(join(dir, OPERATOR_FILES.credential), content, { mode: 0o600 });
      assert.throws(() => readOperatorCredential(dir), RangeError, JSON.stringify(content));
    }
  });

  test('processAlive: this process is, an exited one is not', () => {
    assert.equal(processAlive(process.pid), true);
    const child = spawnSync(process.execPath, ['-e', '0']);
    assert.equal(child.status, 0);
    assert.equal(processAlive(child.pid!), false);
  });
});

/**
 * Every operator route, the CA's and the secrets', behind the one check (createOperatorAuthorization),
 * each with a body it would act on: a request the check let through would change something.
 */
const OPERATOR_ROUTES: ReadonlyArray<readonly [path: string, body: string]> = [
  ['/v1/ca/status', '{}'],
  ['/v1/ca/rotate', '{"immediate":true}'],
  ...Object.entries({
    set: { name: 'intruder', value: Buffer.from('x').toString('base64') },
    promote: { name: 'db-password' },
    rollback: { name: 'db-password' },
    reveal: { name: 'db-password' },
    history: { name: 'db-password' },
    list: {},
  } satisfies Record<keyof typeof OPERATOR_SECRETS_ROUTES, unknown>).map(
    ([route, body]) =>
      [
        OPERATOR_SECRETS_ROUTES[route as keyof typeof OPERATOR_SECRETS_ROUTES].slice('POST '.length),
        JSON.stringify(body),
      ] as const,
  ),
];

describe('the operator credential check, on every operator route (one table for both route sets)', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-operator-'));
    dirs.push(dir);
    return dir;
  };
  let testCa: TestCa;
  let plane: TestControlPlane;
  let secrets: SecretsService;
  let rotations = 0;
  let credential: string;
  let otherDataDir: string;
  const audit = new TestAuditSink();
  const ACTOR = { subject: 'alice' };

  before(async () => {
    // The credential as the control plane makes it, in its data directory; another control plane's too.
    credential = writeOperatorCredential(tempDir());
    otherDataDir = tempDir();
    writeOperatorCredential(otherDataDir);
    testCa = await openTestCa();
    secrets = await openSecretsService({
      store: openSqliteSecretsStore({ path: ':memory:' }),
      kek: testCa.kek,
      audit,
      acl: compileSecretsAcl({ trustDomain: 'shop.local', services: {}, secrets: {} }),
      auditTimeoutMs: 1_000,
    });
    await secrets.set(ACTOR, 'db-password', Buffer.from('first'));
    await secrets.set(ACTOR, 'db-password', Buffer.from('second'), { stage: true });
    plane = await startTestControlPlane({
      testCa,
      routes: () => [
        createOperatorRoutes({ ca: testCa.ca, credential, onRotated: () => rotations++ }),
        createOperatorSecretsRoutes({ secrets, credential, actor: ACTOR }),
      ],
    });
  });
  after(async () => {
    await plane.close();
    await secrets.close();
    testCa.cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  /** What any operator route could change or record (this function's own reads are audited, and left out). */
  let ownEvents = 0;
  const state = async () => {
    const events = audit.events.length - ownEvents;
    const history = await secrets.history(ACTOR, 'db-password');
    const names = (await secrets.list(ACTOR)).map((s) => s.name);
    ownEvents += 2;
    return {
      generations: testCa.ca
        .status()
        .authorities.map((a) => `${a.generation}:${a.state}`)
        .join(),
      bundle: testCa.ca.bundle().sequence,
      rotations,
      labels: history.secret.labels,
      names,
      events,
    };
  };

  test('a malformed credential is refused at start', () => {
    for (const bad of ['', 'short', 'o'.repeat(42), 'o'.repeat(44), `${'o'.repeat(42)}!`, `${'o'.repeat(42)}\n`]) {
      assert.throws(() => createOperatorAuthorization(bad), RangeError, JSON.stringify(bad));
    }
  });

  test('header values the HTTP parser would trim or refuse are refused by the check itself', () => {
    const authorize = createOperatorAuthorization(credential);
    const request = (authorization: unknown) => ({ headers: { authorization } }) as unknown as IncomingMessage;
    assert.doesNotThrow(() => authorize(request(`Bearer ${credential}`)));
    for (const value of [
      `Bearer ${credential} `,
      ` Bearer ${credential}`,
      `Bearer ${credential}\t`,
      `Bearer ${credential}\n`,
      `Bearer\t${credential}`,
      `Bearer ${credential}\u0000`,
      [`Bearer ${credential}`],
      undefined,
    ]) {
      assert.throws(
        () => authorize(request(value)),
        (err: unknown) => isRampartError(err, CONTROL_API_ERRORS.unauthorized) && err.status === 401,
        JSON.stringify(value),
      );
    }
  });

  test('the credential passes on every route (the table below can fail)', async () => {
    for (const [path, body] of OPERATOR_ROUTES.filter(([p]) => !p.endsWith('/rotate') && !p.endsWith('/set'))) {
      const res = await rawJsonRequest(plane.target, 'POST', path, body, { authorization: `Bearer ${credential}` });
      assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
    }
  });

  const rows: ReadonlyArray<readonly [label: string, authorization: () => string | null, body?: string]> = [
    ['no Authorization header', () => null],
    ['no credential, and a body that is not JSON (checked before the body)', () => null, '{"name":'],
    ['an empty header', () => ''],
    ['"Bearer " and nothing', () => 'Bearer '],
    ['a wrong credential of the same length', () => `Bearer ${'x'.repeat(43)}`],
    [
      'the credential with its last character changed',
      () => `Bearer ${credential.slice(0, -1)}${credential.endsWith('A') ? 'B' : 'A'}`,
    ],
    ['the credential one character short', () => `Bearer ${credential.slice(1)}`],
    ['the credential one character long', () => `Bearer ${credential}A`],
    ['the credential twice', () => `Bearer ${credential}${credential}`],
    ['an over-long credential', () => `Bearer ${'o'.repeat(600)}`],
    ['the scheme in lower case', () => `bearer ${credential}`],
    ['the Basic scheme', () => `Basic ${credential}`],
    [
      'the Basic scheme with user:credential',
      () => `Basic ${Buffer.from(`operator:${credential}`).toString('base64')}`,
    ],
    ['no scheme', () => credential],
    ['two spaces after the scheme', () => `Bearer  ${credential}`],
    ['a credential with a space inside', () => `Bearer ${credential.slice(0, 20)} ${credential.slice(20)}`],
    ['the launcher credential', () => `Bearer ${TEST_LAUNCHER_CREDENTIAL}`],
    ['the credential of another data directory', () => `Bearer ${readOperatorCredential(otherDataDir)}`],
  ];
  for (const [label, authorization, body] of rows) {
    test(`${label}: 401 CA_ERR_API_UNAUTHORIZED on every operator route, nothing changed or recorded`, async () => {
      const header = authorization();
      const before = await state();
      for (const [path, valid] of OPERATOR_ROUTES) {
        const res = await rawJsonRequest(
          plane.target,
          'POST',
          path,
          body ?? valid,
          header === null ? {} : { authorization: header },
        );
        assert.equal(res.status, 401, path);
        assert.equal(res.body['error'], CONTROL_API_ERRORS.unauthorized, path);
        assert.deepEqual(Object.keys(res.body).sort(), ['error', 'error_id'], path);
      }
      assert.deepEqual(await state(), before);
    });
  }
});
