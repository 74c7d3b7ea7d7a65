/**
 * A small mTLS system for workload-identity tests: a test CA, the control plane's API in process (so a
 * test can stop and restart it on the same port), and two SDK services over mutual TLS — `payments`,
 * which accepts `orders` on `POST /charges`, and `orders`, which may call it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type ControlApi,
  createControlApi,
  createServerCertificate,
  requestJoinToken,
  type ServerCertificate,
} from '../../src/control/api/index.ts';
import { openTestCa, type TestCa } from '../../src/control/ca/testing.ts';
import type { AccessTokenVerifier } from '../../src/core/access-token.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { InboundPolicy } from '../../src/core/runtime.ts';
import { type RampartService, type ServiceOptions, service } from '../../src/sdk/index.ts';
import { freePort } from '../helpers/processes.ts';

const CREDENTIAL = 'd'.repeat(43);
const noTokens = (async () => {
  throw new Error('no user tokens');
}) as unknown as AccessTokenVerifier;

export interface OrdersPaymentsOptions {
  svidTtlMs: number;
  bundlePropagationMs: number;
  svidSchedule: NonNullable<ServiceOptions['svidSchedule']>;
}

export interface OrdersPayments {
  readonly t: TestCa;
  readonly orders: RampartService;
  readonly payments: RampartService;
  startControl(): Promise<void>;
  stopControl(): Promise<void>;
  close(): Promise<void>;
}

export async function startOrdersPayments(options: OrdersPaymentsOptions): Promise<OrdersPayments> {
  const t = await openTestCa({
    svidTtlMs: options.svidTtlMs,
    clockSkewMs: 500,
    caLifetimeMs: 3_600_000,
    bundlePropagationMs: options.bundlePropagationMs,
  });
  const realClock = setInterval(() => {
    t.clock.now = Date.now();
  }, 50);
  realClock.unref();
  const logger = createLogger({ name: 'control', level: 'silent' });
  let cert: ServerCertificate | null = null;
  let api: ControlApi | null = null;
  let controlPort = 0;
  const dirs: string[] = [];
  const services: RampartService[] = [];

  const startControl = async () => {
    const held = await createServerCertificate({ ca: t.ca, logger, onRenewed: () => api?.refreshTls() });
    cert = held;
    api = createControlApi({ ca: t.ca, launcherCredential: CREDENTIAL, credentials: () => held.current(), logger });
    controlPort = await api.listen(controlPort);
  };
  const stopControl = async () => {
    cert?.close();
    await api?.close();
    api?.server.closeAllConnections();
    api = null;
  };
  const startService = async (name: string, callers: InboundPolicy['callers'], peers: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), `rampart-mtls-${name}-`));
    dirs.push(dir);
    const port = await freePort();
    const control = { url: `https://127.0.0.1:${controlPort}`, bundle: t.ca.bundle().pem, trustDomain: 'shop.local' };
    const { token } = await requestJoinToken(control, CREDENTIAL, name);
    const svc = service({
      runtime: {
        kind: 'service',
        name,
        dataDir: dir,
        adminPort: await freePort(),
        manifestFile: join(dir, 'rampart.yaml'),
        port,
        identity: { issuer: 'https://issuer.invalid', audience: 'https://api.shop.local', jwksUri: null },
        peers,
        policy: { version: 1, callers },
        control,
        joinToken: token,
      },
      verifier: noTokens,
      logger: createLogger({ name, level: 'silent' }),
      svidSchedule: options.svidSchedule,
    });
    services.push(svc);
    return { svc, url: `https://127.0.0.1:${port}` };
  };

  await startControl();
  const p = await startService(
    'payments',
    { 'spiffe://shop.local/svc/orders': [{ methods: ['POST'], paths: ['/charges'] }] },
    {},
  );
  p.svc.app.post('/charges', async () => ({ ok: true }));
  await p.svc.start();
  const orders = (await startService('orders', {}, { payments: p.url })).svc;
  await orders.start();

  return {
    t,
    orders,
    payments: p.svc,
    startControl,
    stopControl,
    close: async () => {
      clearInterval(realClock);
      for (const svc of services.reverse()) await svc.close();
      await stopControl();
      t.cleanup();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `orders` calls `payments` every `pauseMs` until `stop()`; every non-200 or error is a failure. */
export function callLoop(orders: RampartService, pauseMs: number) {
  let calls = 0;
  let running = true;
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      try {
        const res = await orders.call('payments', '/charges', { json: {} });
        if (res.status !== 200) failures.push(`status ${res.status}`);
        await res.json();
      } catch (err) {
        failures.push((err as Error).message);
      }
      calls += 1;
      await delay(pauseMs);
    }
  })();
  return {
    failures,
    calls: () => calls,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
