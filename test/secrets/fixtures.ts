import { randomBytes } from 'node:crypto';
import type { Service } from '../../src/config/model.ts';
import { compileSecretsAcl, type SecretsAcl } from '../../src/control/secrets/acl.ts';
import type { AuditSink, SecretsActor, SecretsAuditEvent } from '../../src/control/secrets/audit.ts';
import {
  openSecretsService,
  type SecretsService,
  type SecretsServiceOptions,
} from '../../src/control/secrets/service.ts';
import type { SecretsStore } from '../../src/control/secrets/store.ts';
import { type Kek, loadKek } from '../../src/core/kek.ts';

/** A fresh random KEK, loaded as the environment would give it. */
export function testKek(): Kek {
  return loadKek({ env: 'K', environment: { K: randomBytes(32).toString('base64') } });
}

export const OPERATOR: SecretsActor = { subject: 'alice' };
export const PAYMENTS = 'spiffe://shop.local/svc/payments';
export const ORDERS = 'spiffe://shop.local/svc/orders';
export const CATALOG = 'spiffe://shop.local/svc/catalog';

const service = (name: string, secrets: string[]): Service => ({
  name,
  run: `/x/${name}.ts`,
  routes: [],
  calls: [],
  secrets,
  env: {},
});

/** payments reads payment-provider-key and db-password; orders reads db-password; catalog reads nothing. */
export function testAcl(): SecretsAcl {
  const names = ['payment-provider-key', 'db-password', 'api-token'];
  return compileSecretsAcl({
    trustDomain: 'shop.local',
    secrets: Object.fromEntries(names.map((name) => [name, { name, description: '' }])),
    services: {
      payments: service('payments', ['payment-provider-key', 'db-password']),
      orders: service('orders', ['db-password']),
      catalog: service('catalog', []),
    },
  });
}

/** An audit sink that records events and can be told to fail, hang, or wait at a barrier. */
export class RecordingSink implements AuditSink {
  events: SecretsAuditEvent[] = [];
  mode: 'ok' | 'reject' | 'throw' | 'hang' = 'ok';
  /** Called before each append is decided (a test can block here). */
  before: ((event: SecretsAuditEvent) => Promise<void>) | null = null;

  append(event: SecretsAuditEvent): Promise<void> {
    if (this.mode === 'throw') throw new Error('audit sink bug');
    return (async () => {
      if (this.before) await this.before(event);
      if (this.mode === 'reject') throw new Error('audit log unreachable');
      if (this.mode === 'hang') return new Promise<void>(() => {});
      this.events.push(structuredClone(event));
    })();
  }

  actions(): string[] {
    return this.events.map((e) => `${e.action}:${e.decision}:${e.reason}`);
  }
}

/** Opens a service over `store` with test defaults (short audit timeout). */
export function openTestService(
  store: SecretsStore,
  options: Partial<Omit<SecretsServiceOptions, 'store'>> & { kek: SecretsServiceOptions['kek'] },
): Promise<SecretsService> {
  return openSecretsService({
    store,
    audit: options.audit ?? new RecordingSink(),
    acl: options.acl ?? testAcl(),
    auditTimeoutMs: 500,
    ...options,
  });
}

/** Every encoding a value could leak in: raw, hex, base64, base64url, and UTF-16LE (a JS string in a heap dump). */
export function leakForms(plaintext: Buffer): Buffer[] {
  return [
    plaintext,
    Buffer.from(plaintext.toString('hex')),
    Buffer.from(plaintext.toString('hex').toUpperCase()),
    Buffer.from(plaintext.toString('base64')),
    Buffer.from(plaintext.toString('base64url')),
    Buffer.from(plaintext.toString('latin1'), 'utf16le'),
  ];
}
