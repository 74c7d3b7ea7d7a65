import assert from 'node:assert/strict';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseManifest } from '../../config/load.ts';
import type { Manifest } from '../../config/model.ts';
import type { TokenIdentity } from '../../core/access-token.ts';
import { createMetrics } from '../../core/metrics.ts';
import type { RequestContext } from '../context.ts';
import { createMemoryDecisionSink } from '../decision-sink.ts';
import { denialDetail } from '../deny.ts';
import { createGatewayMetrics } from '../metrics.ts';
import { type GcraDecision, type GcraPolicy, gcra } from '../rate-limit/gcra.ts';
import { SharedRateLimitTable } from '../rate-limit/shared-table.ts';
import type { RateLimitBackend } from '../rate-limit/store.ts';
import type { GatewayDeps, Stage } from '../stage.ts';
import { createRateLimit } from './rate-limit.ts';

const SELF = fileURLToPath(import.meta.url);
const NOW = 1_750_000_000_000;

function manifest(extraRoute = ''): Manifest {
  return parseManifest(
    `
trustDomain: test.local
gateway:
  listen: { host: 127.0.0.1, port: 18080 }
  tls: off
identity:
  external: { issuer: "https://issuer.test", jwksUri: "https://issuer.test/jwks" }
  audience: https://api.test
services:
  echo:
    run: ${SELF}
    routes:
      - { id: by-ip, path: /ip, methods: [GET], auth: none, rateLimit: 2/min per ip }
      - { id: by-header, path: /h, methods: [GET], auth: none, rateLimit: 2/min per header:X-Api-Key }
      - { id: by-subject, path: /s, methods: [GET], auth: { scopes: [a] }, rateLimit: 2/min per subject }
      - { id: free, path: /free, methods: [GET], auth: none }
${extraRoute}`,
    '/tmp/rate-limit-stage-test/rampart.yaml',
  );
}

function depsWith(rateLimit?: RateLimitBackend, m = manifest()): GatewayDeps {
  const registry = createMetrics('rate-limit-stage-test');
  return {
    manifest: m,
    upstreams: {},
    logger: pino({ level: 'silent' }),
    registry,
    metrics: createGatewayMetrics(registry),
    decisions: createMemoryDecisionSink(),
    now: () => NOW,
    ...(rateLimit ? { rateLimit } : {}),
  };
}

function ctxFor(
  deps: GatewayDeps,
  routeId: string,
  options: { ip?: string; headers?: Record<string, string>; subject?: string } = {},
) {
  const route = deps.manifest.routes.find((r) => r.id === routeId)!;
  return {
    req: { headers: options.headers ?? {} } as unknown as IncomingMessage,
    res: {} as ServerResponse,
    startedAt: 0,
    secure: false,
    peer: options.ip ?? '198.51.100.1',
    logger: deps.logger,
    requestId: 'r',
    traceparent: '',
    clientIp: options.ip ?? '198.51.100.1',
    path: route.path.source,
    query: '',
    route: { route, pattern: {} as never },
    identity: options.subject ? ({ subject: options.subject, clientId: null } as TokenIdentity) : null,
    entered: 0,
  } satisfies RequestContext as RequestContext;
}

/** A backend that records its calls and answers with `answer`. */
function recording(answer: (policy: GcraPolicy) => GcraDecision | Promise<GcraDecision>) {
  const calls: [string, string][] = [];
  const backend: RateLimitBackend = {
    take: (routeId, key, policy) => {
      calls.push([routeId, key]);
      return answer(policy);
    },
  };
  return { backend, calls };
}

async function outcome(stage: Stage, ctx: RequestContext) {
  try {
    await stage.request(ctx);
    const headers: OutgoingHttpHeaders = {};
    stage.respond?.(ctx, headers);
    return { status: 200, headers };
  } catch (err) {
    const e = err as { status: number; code: string };
    const detail = denialDetail(err as never);
    return { status: e.status, code: e.code, reason: detail.reason, headers: detail.headers ?? {} };
  }
}

describe('rate-limit stage', () => {
  test('with the memory table the request side stays synchronous (no promise per request)', () => {
    const deps = depsWith(SharedRateLimitTable.create({ capacity: 100 }));
    const stage = createRateLimit('pre-auth')(deps);
    assert.equal(stage.request(ctxFor(deps, 'by-ip')), undefined);
  });

  test('keys by route id and caller: ip and header before auth, subject after', async () => {
    const { backend, calls } = recording((p) => gcra(p, undefined, 0));
    const deps = depsWith(backend);
    const pre = createRateLimit('pre-auth')(deps);
    const post = createRateLimit('post-auth')(deps);
    for (const stage of [pre, post]) {
      await stage.request(ctxFor(deps, 'by-ip', { ip: '203.0.113.9' }));
      await stage.request(ctxFor(deps, 'by-header', { headers: { 'x-api-key': 'k'.repeat(1_000) } }));
      await stage.request(ctxFor(deps, 'by-header'));
      await stage.request(ctxFor(deps, 'by-subject', { subject: 'alice' }));
      await stage.request(ctxFor(deps, 'free'));
    }
    assert.deepEqual(calls, [
      ['by-ip', '203.0.113.9'],
      ['by-header', 'k'.repeat(256)],
      ['by-header', ''],
      ['by-subject', 'alice'],
    ]);
  });

  test('429 with Retry-After and RateLimit fields; the state lives in the backend, so a reload keeps it', async () => {
    const table = SharedRateLimitTable.create({ capacity: 100 });
    const deps = depsWith(table);
    const stage = createRateLimit('pre-auth')(deps);
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await outcome(stage, ctxFor(deps, 'by-ip')));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 429, 429],
    );
    assert.equal(answers[0]!.headers['ratelimit-policy'], '"by-ip";q=2;w=60');
    assert.equal(answers[0]!.headers.ratelimit, '"by-ip";r=1;t=30');
    assert.equal(answers[2]!.code, 'GW_ERR_RATE_LIMITED');
    assert.equal(answers[2]!.headers['retry-after'], '30');
    // The state is the backend's: a second stage (a reload) sees the spent quota.
    const reloaded = createRateLimit('pre-auth')(deps);
    assert.equal((await outcome(reloaded, ctxFor(deps, 'by-ip'))).status, 429);
    assert.equal(table.take('by-ip', '198.51.100.1', { limit: 2, periodMs: 60_000 }, NOW).allowed, false);
  });

  test('an async backend is awaited, and its decision applied the same way', async () => {
    const { backend } = recording(async (p) => gcra(p, undefined, 0));
    const deps = depsWith(backend);
    const stage = createRateLimit('pre-auth')(deps);
    const ctx = ctxFor(deps, 'by-ip');
    const pending = stage.request(ctx);
    assert.ok(pending instanceof Promise);
    await pending;
    const headers: OutgoingHttpHeaders = {};
    stage.respond?.(ctx, headers);
    assert.equal(headers.ratelimit, '"by-ip";r=1;t=30');
  });

  test('a backend that cannot decide fails closed: 503 ratelimit_store_down, sync or async', async () => {
    const down = () => {
      throw new Error('connection refused');
    };
    for (const backend of [
      { take: down },
      { take: async () => down() },
      recording(() => Promise.reject(new Error('timeout'))).backend,
    ] as RateLimitBackend[]) {
      const deps = depsWith(backend);
      const stage = createRateLimit('pre-auth')(deps);
      const answer = await outcome(stage, ctxFor(deps, 'by-ip'));
      assert.equal(answer.status, 503);
      assert.equal(answer.code, 'GW_ERR_RATE_LIMIT_STORE_DOWN');
      assert.equal(answer.reason, 'ratelimit_store_down');
      assert.equal(answer.headers['retry-after'], '1');
    }
  });

  test('without deps.rateLimit each stage uses a private table (in-process gateways in tests)', async () => {
    const deps = depsWith();
    const stage = createRateLimit('pre-auth')(deps);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await outcome(stage, ctxFor(deps, 'by-ip'))).status);
    assert.deepEqual(statuses, [200, 200, 429]);
  });

  test('a policy the stores cannot compute is refused when the stage is built', () => {
    // Config refuses such a rate (CFG_ERR_RATE); this is the stores' own guard behind it, so the policy is
    // forced past validation here.
    const valid = manifest('      - { id: absurd, path: /x, methods: [GET], auth: none, rateLimit: 1/s per ip }');
    const m = structuredClone(valid) as Manifest;
    const route = m.routes.find((r) => r.id === 'absurd')!;
    (route as { rateLimit: unknown }).rateLimit = { ...route.rateLimit!, limit: 999_999_999, periodMs: 1000 };
    assert.throws(() => createRateLimit('pre-auth')(depsWith(undefined, m)), { code: 'GW_ERR_RATE_LIMIT_INPUT' });
  });
});
