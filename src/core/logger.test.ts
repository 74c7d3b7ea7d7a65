import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from './logger.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, destination: destination as unknown as NodeJS.WritableStream & { write(s: string): boolean } };
}

test('credentials are redacted wherever components put them', () => {
  const { lines, destination } = capture();
  const logger = createLogger({ name: 't', destination: destination as never });
  const secrets = [
    'Bearer eyJ.secret.sig',
    'session=abc123',
    'hunter2',
    'tok-123',
    'rt-456',
    'cs-789',
    'the-value',
    'postgres://u:db-pw-1@h/d',
  ];
  logger.info(
    {
      req: { headers: { authorization: secrets[0], cookie: secrets[1], accept: 'application/json' } },
      res: { headers: { 'set-cookie': secrets[1] } },
      password: secrets[2],
      token: secrets[3],
      refresh_token: secrets[4],
      client_secret: secrets[5],
      secret: secrets[6],
      nested: { token: secrets[3], password: secrets[2] },
      connectionString: secrets[7],
      postgres: { connectionString: secrets[7] },
    },
    'request',
  );
  const text = lines.join('');
  for (const value of secrets) assert.ok(!text.includes(value), `${value} leaked`);
  const record = JSON.parse(lines[0]!) as { req: { headers: Record<string, string> }; level: string; name: string };
  assert.equal(record.req.headers['authorization'], '[redacted]');
  assert.equal(record.req.headers['accept'], 'application/json', 'ordinary fields stay');
  assert.equal(record.level, 'info');
  assert.equal(record.name, 't');
});

test('redaction can be turned off only explicitly (for fixed-field loggers like the access log)', () => {
  const { lines, destination } = capture();
  createLogger({ name: 't', destination: destination as never, redact: false }).info({ token: 'visible' }, 'x');
  createLogger({ name: 't', destination: destination as never }).info({ token: 'hidden' }, 'x');
  assert.ok(lines[0]!.includes('visible'));
  assert.ok(!lines[1]!.includes('hidden'));
});
