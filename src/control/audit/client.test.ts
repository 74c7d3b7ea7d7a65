import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { RampartError } from '../../core/errors.ts';
import {
  type AuditClient,
  type AuditClientOptions,
  type AuditTransport,
  auditEventLine,
  buildAuditEvent,
  createAuditClient,
  createEventIdSource,
} from './client.ts';

const silent = pino({ level: 'silent' });

function scratch(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-audit-client-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const FAST = { commitIntervalMs: 5, retryInitialMs: 5, retryMaxMs: 20, closeDeliveryMs: 500 };

/** A control plane stand-in: dedupes by id like the log, can be down, can lose answers. */
function fakeControl() {
  const received: { id: string; n: number }[] = [];
  const ids = new Set<string>();
  const state = { down: false, loseNextAnswers: 0, refuse: null as ((e: { n: number }) => boolean) | null, calls: 0 };
  const transport: AuditTransport = async (events) => {
    state.calls++;
    if (state.down) throw new RampartError('CA_ERR_API_UNAVAILABLE', 'down', { status: 503 });
    const batch = events as { id: string; detail: { n: number } }[];
    if (state.refuse && batch.some((e) => state.refuse!(e.detail))) {
      throw new RampartError('CA_ERR_API_BAD_REQUEST', 'bad', { status: 400 });
    }
    let duplicates = 0;
    for (const e of batch) {
      if (ids.has(e.id)) duplicates++;
      else {
        ids.add(e.id);
        received.push({ id: e.id, n: e.detail.n });
      }
    }
    if (state.loseNextAnswers > 0) {
      state.loseNextAnswers--;
      throw new RampartError('CA_ERR_API_UNAVAILABLE', 'timeout', { status: 503 });
    }
    return { acknowledged: batch.length, duplicates };
  };
  return { received, state, transport };
}

async function client(
  dir: string,
  transport: AuditTransport,
  extra: Partial<AuditClientOptions> = {},
): Promise<{ client: AuditClient; registry: Registry }> {
  const registry = new Registry();
  const c = await createAuditClient({
    dir,
    target: () => null,
    logger: silent,
    registry,
    transport,
    limits: { ...FAST, ...extra.limits },
    ...extra,
  });
  return { client: c, registry };
}

const emitN = (c: AuditClient, from: number, to: number) => {
  const ids: string[] = [];
  for (let n = from; n < to; n++) {
    const id = c.emit({ component: 'gateway', action: 'http.request', decision: 'deny', detail: { n } });
    assert.ok(id);
    ids.push(id);
  }
  return ids;
};

const metric = async (registry: Registry, name: string) =>
  (await registry.getSingleMetric(name)!.get()).values.reduce((sum, v) => sum + v.value, 0);

describe('audit client', () => {
  test('emit returns at once with the event id; events arrive in order, exactly once', async (t) => {
    const control = fakeControl();
    const { client: c, registry } = await client(scratch(t), control.transport);
    const ids = emitN(c, 0, 250);
    assert.ok(await c.settled(5_000));
    assert.deepEqual(
      control.received.map((e) => e.id),
      ids,
    );
    assert.equal(await metric(registry, 'rampart_audit_client_delivered_total'), 250);
    assert.equal(await metric(registry, 'rampart_audit_client_spooled_total'), 250);
    assert.equal(await metric(registry, 'rampart_audit_client_spool_events'), 0);
    await c.close();
  });

  test('control plane down: events spool (0600 files), are counted as depth, and arrive in order when it returns', async (t) => {
    const dir = scratch(t);
    const control = fakeControl();
    control.state.down = true;
    const { client: c, registry } = await client(dir, control.transport);
    const ids = emitN(c, 0, 100);
    await c.flush();
    await delay(60);
    assert.equal(control.received.length, 0);
    assert.equal(c.stats().depth, 100);
    assert.ok((await metric(registry, 'rampart_audit_client_delivery_failures_total')) >= 1);
    for (const name of readdirSync(dir)) {
      if (name.endsWith('.spool')) assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600);
    }
    control.state.down = false;
    assert.ok(await c.settled(5_000));
    assert.deepEqual(
      control.received.map((e) => e.id),
      ids,
    );
    await c.close();
  });

  test('a lost acknowledgement: the batch is sent again and the server sees no duplicate', async (t) => {
    const control = fakeControl();
    control.state.loseNextAnswers = 2;
    const { client: c } = await client(scratch(t), control.transport);
    const ids = emitN(c, 0, 40);
    assert.ok(await c.settled(5_000));
    assert.deepEqual(
      control.received.map((e) => e.id),
      ids,
    );
    assert.ok(c.stats().duplicates >= 1, 'the resent batch was acknowledged as duplicates');
    assert.equal(c.stats().delivered, 40, 'each event is counted once, when its batch is acknowledged');
    await c.close();
  });

  test('restart: what was spooled and not acknowledged is replayed, in order, before new events', async (t) => {
    const dir = scratch(t);
    const control = fakeControl();
    control.state.down = true;
    const first = await client(dir, control.transport, { limits: { closeDeliveryMs: 0 } });
    const before = emitN(first.client, 0, 30);
    await first.client.close();
    assert.equal(control.received.length, 0);

    control.state.down = false;
    const second = await client(dir, control.transport);
    assert.equal(second.client.stats().depth, 30, 'the spool was counted at open');
    const after = emitN(second.client, 30, 40);
    assert.ok(await second.client.settled(5_000));
    assert.deepEqual(
      control.received.map((e) => e.id),
      [...before, ...after],
    );
    await second.client.close();

    // A third start has nothing to send again.
    const third = await client(dir, control.transport);
    assert.equal(third.client.stats().depth, 0);
    await third.client.close();
    assert.equal(control.received.length, 40);
  });

  test('a cursor that lags behind (crash before it was replaced) only causes deduplicated resends', async (t) => {
    const dir = scratch(t);
    const control = fakeControl();
    const first = await client(dir, control.transport);
    emitN(first.client, 0, 20);
    assert.ok(await first.client.settled(5_000));
    await first.client.close();
    writeFileSync(join(dir, 'cursor'), JSON.stringify({ segment: 1, offset: 0 }));
    const second = await client(dir, control.transport);
    assert.ok(await second.client.settled(5_000));
    await second.client.close();
    assert.equal(control.received.length, 20, 'no event twice at the server');
  });

  test('a torn last line (crash mid-write) is cut off at open; the complete lines before it are delivered', async (t) => {
    const dir = scratch(t);
    const control = fakeControl();
    control.state.down = true;
    const first = await client(dir, control.transport, { limits: { closeDeliveryMs: 0 } });
    const ids = emitN(first.client, 0, 5);
    await first.client.close();
    const segment = readdirSync(dir)
      .filter((n) => n.endsWith('.spool'))
      .sort()
      .at(-1)!;
    const whole = readFileSync(join(dir, segment), 'utf8');
    assert.equal(whole.split('\n').filter(Boolean).length, 5);
    appendFileSync(join(dir, segment), '{"action":"http.req');
    control.state.down = false;
    const second = await client(dir, control.transport);
    assert.ok(await second.client.settled(5_000));
    await second.client.close();
    assert.deepEqual(
      control.received.map((e) => e.id),
      ids,
    );
    assert.equal(second.client.stats().rejected, 0);
  });

  test('bounded spool: past maxSpoolBytes events are dropped and counted; emit still returns at once', async (t) => {
    const control = fakeControl();
    control.state.down = true;
    const line = auditEventLine(
      buildAuditEvent({ component: 'gateway', action: 'http.request', decision: 'deny', detail: { n: 0 } })!,
    );
    const { client: c, registry } = await client(scratch(t), control.transport, {
      limits: { maxSpoolBytes: line.length * 10 + 5, closeDeliveryMs: 0 },
    });
    const results: (string | null)[] = [];
    for (let n = 0; n < 15; n++) {
      results.push(c.emit({ component: 'gateway', action: 'http.request', decision: 'deny', detail: { n } }));
    }
    assert.equal(results.filter((r) => r !== null).length, 10);
    assert.equal(await metric(registry, 'rampart_audit_client_dropped_total'), 5);
    assert.equal(c.stats().dropped, 5);
    await c.close();
  });

  test('events the disk refused until close are counted as dropped, not lost silently', async (t) => {
    const control = fakeControl();
    control.state.down = true;
    const { client: c, registry } = await client(scratch(t), control.transport, {
      limits: { commitIntervalMs: 60_000, closeDeliveryMs: 0 },
    });
    const probe = await open(join(scratch(t), 'probe'), 'w');
    const handles = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    t.mock.method(handles, 'write', async () => {
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    });
    for (let n = 0; n < 3; n++) {
      assert.notEqual(c.emit({ component: 'gateway', action: 'http.request', decision: 'deny', detail: { n } }), null);
    }
    await c.flush();
    assert.equal(c.stats().spooled, 0, 'queued but never written is not spooled');
    assert.equal(await metric(registry, 'rampart_audit_client_spooled_total'), 0);
    await c.close();
    assert.equal(c.stats().dropped, 3);
    assert.equal(await metric(registry, 'rampart_audit_client_dropped_total'), 3);
  });

  test('an event the control plane refuses for good is isolated and skipped; the others arrive in order', async (t) => {
    const control = fakeControl();
    control.state.refuse = (d) => d.n === 7;
    const { client: c } = await client(scratch(t), control.transport);
    const ids = emitN(c, 0, 20);
    assert.ok(await c.settled(5_000));
    assert.deepEqual(
      control.received.map((e) => e.id),
      ids.filter((_, i) => i !== 7),
    );
    assert.equal(c.stats().rejected, 1);
    await c.close();
  });

  test('segments rotate and delivered ones are deleted', async (t) => {
    const dir = scratch(t);
    const control = fakeControl();
    const { client: c } = await client(dir, control.transport, { limits: { segmentBytes: 2_000 } });
    emitN(c, 0, 200);
    assert.ok(await c.settled(5_000));
    emitN(c, 200, 210);
    assert.ok(await c.settled(5_000));
    await c.close();
    assert.equal(control.received.length, 210);
    const segments = readdirSync(dir).filter((n) => n.endsWith('.spool'));
    assert.ok(segments.length <= 2, `segments left: ${segments.join(' ')}`);
  });

  test('emit never throws: an invalid optional field is dropped, an invalid event is counted', async (t) => {
    const control = fakeControl();
    const { client: c } = await client(scratch(t), control.transport);
    const kept = c.emit({
      component: 'orders',
      action: 'http.request',
      decision: 'deny',
      requestId: 'has spaces and /slashes',
      resource: '/orders/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig',
      detail: { n: 1, token: 'x' },
    });
    assert.ok(kept);
    assert.equal(c.emit({ component: 'Not A Component', action: 'x', decision: 'deny' }), null);
    assert.equal(c.emit(null as never), null);
    assert.ok(await c.settled(5_000));
    await c.close();
    assert.equal(control.received.length, 1);
    assert.equal(c.stats().dropped, 2);
  });
});

test('buildAuditEvent redacts credentials copied from a request and keeps the event', () => {
  const event = buildAuditEvent({
    component: 'gateway',
    action: 'http.request',
    decision: 'deny',
    resource: '/x/Bearer abc.def',
    requestId: 'bad id',
  });
  assert.ok(event);
  assert.equal(event.requestId, undefined);
  assert.ok(!event.resource?.includes('abc.def'));
});

test('pooled event ids are UUIDv7 with the time first, and never repeat across pool refills', () => {
  const next = createEventIdSource();
  const now = Date.UTC(2026, 11, 6);
  const ids = Array.from({ length: 1_000 }, () => next(now));
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids) {
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16), now);
  }
});
