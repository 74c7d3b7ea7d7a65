import { connect } from 'node:net';
import type { TestContext } from 'node:test';

export type ExternalService = 'postgres' | 'redis';

const DEFAULT_URLS: Record<ExternalService, string> = {
  postgres: 'postgres://postgres@127.0.0.1:5432/postgres',
  redis: 'redis://127.0.0.1:6379',
};
const ENV: Record<ExternalService, string> = {
  postgres: 'RAMPART_TEST_POSTGRES_URL',
  redis: 'RAMPART_TEST_REDIS_URL',
};

/**
 * Finds a real server a test needs (located by RAMPART_TEST_POSTGRES_URL / RAMPART_TEST_REDIS_URL,
 * defaulting to the standard local ports) and returns its URL. When it cannot be reached: under CI
 * (`CI=true`) the test fails, because a green run must mean the backend was tested; elsewhere the test is
 * skipped with the reason, and `null` is returned so the caller can return early.
 */
export async function requireService(
  t: TestContext,
  kind: ExternalService,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | null> {
  const url = env[ENV[kind]] || DEFAULT_URLS[kind];
  const { hostname, port } = new URL(url);
  const reachable = await canConnect(
    hostname.replace(/^\[|\]$/g, ''),
    Number(port || (kind === 'redis' ? 6379 : 5432)),
  );
  if (reachable) return url;
  const reason = `${kind} is not reachable at ${hostname}:${port} (set ${ENV[kind]})`;
  if (env['CI'] === 'true') throw new Error(`${reason}; under CI=true this is a failure, not a skip`);
  t.skip(reason);
  return null;
}

function canConnect(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
