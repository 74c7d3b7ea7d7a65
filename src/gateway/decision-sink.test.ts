import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { parseAuditEntry } from '../core/audit-event.ts';
import { createBatchingDecisionSink, type DecisionEvent, decisionAuditInput } from './decision-sink.ts';

function event(i: number, extra: Partial<DecisionEvent> = {}): DecisionEvent {
  return {
    time: new Date(0).toISOString(),
    component: 'gateway',
    decision: 'deny',
    stage: 'route',
    reason: 'not_found',
    code: 'GW_ERR_NOT_FOUND',
    status: 404,
    requestId: `r${i}`,
    errorId: `e${i}`,
    method: 'GET',
    path: `/p/${i}`,
    route: null,
    clientIp: '127.0.0.1',
    subject: null,
    clientId: null,
    ...extra,
  };
}

describe('decision events as audit events', () => {
  test('a decision maps to one audit event: code as reason, path as resource, token parties as actor', () => {
    const input = decisionAuditInput(event(1, { subject: 'alice', clientId: 'shop-web', route: 'orders' }));
    assert.equal(input.action, 'http.request');
    assert.equal(input.reason, 'GW_ERR_NOT_FOUND');
    assert.equal(input.resource, '/p/1');
    assert.deepEqual(input.actor, { subject: 'alice', clientId: 'shop-web' });
    assert.deepEqual(input.detail, {
      stage: 'route',
      reason: 'not_found',
      status: 404,
      method: 'GET',
      route: 'orders',
      clientIp: '127.0.0.1',
      errorId: 'e1',
    });
  });

  test('workers batch canonical spool lines, each event with its own id, by count and by time', async () => {
    const batches: { lines: string; count: number }[] = [];
    const sink = createBatchingDecisionSink((lines, count) => batches.push({ lines, count }), {
      maxBatchEvents: 3,
      postIntervalMs: 20,
    });
    for (let i = 0; i < 4; i++) sink.emit(event(i));
    assert.equal(batches.length, 1, 'a full batch goes at once');
    assert.equal(batches[0]!.count, 3);
    await delay(60);
    assert.equal(batches.length, 2, 'the rest goes after the interval');
    const events = batches.flatMap((b) =>
      b.lines
        .split('\n')
        .filter(Boolean)
        .map((line) => parseAuditEntry(Buffer.from(line))),
    );
    assert.deepEqual(
      events.map((e) => e.requestId),
      ['r0', 'r1', 'r2', 'r3'],
    );
    assert.equal(new Set(events.map((e) => e.id)).size, 4);
    assert.ok(events.every((e) => e.component === 'gateway' && e.decision === 'deny'));
  });

  test('hostile request data does not lose the event: credentials redacted, bad fields dropped', () => {
    const batches: string[] = [];
    const sink = createBatchingDecisionSink((lines) => batches.push(lines), { maxBatchEvents: 1 });
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl';
    sink.emit(event(1, { path: `/search/${jwt}`, requestId: 'not a request id', subject: `Bearer ${jwt}` }));
    assert.equal(batches.length, 1);
    const stored = parseAuditEntry(Buffer.from(batches[0]!.trim()));
    assert.ok(!batches[0]!.includes(jwt));
    assert.equal(stored.requestId, undefined);
    assert.equal(stored.reason, 'GW_ERR_NOT_FOUND');
  });

  test('a decision that cannot become an audit event is reported, not posted, and the next one is', () => {
    const batches: string[] = [];
    let invalid = 0;
    const sink = createBatchingDecisionSink((lines) => batches.push(lines), {
      maxBatchEvents: 1,
      onInvalid: () => invalid++,
    });
    for (const time of ['yesterday', '', '2026-02-30T00:00:00.000Z']) sink.emit(event(1, { time }));
    assert.equal(invalid, 3);
    assert.equal(batches.length, 0);
    sink.emit(event(2));
    assert.equal(invalid, 3);
    assert.equal(parseAuditEntry(Buffer.from(batches[0]!.trim())).requestId, 'r2');
  });
});
