import { createHmac, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { type Secret, service } from 'rampart/sdk';

/**
 * Payments: internal only (no gateway route). Records charges for orders. The card processor's API key
 * is a manifest secret (`payment-provider-key`), read with `svc.secrets.get` on every charge (the SDK
 * caches it for 30 s and picks up a rotation by itself) and never printed. Until someone sets it, a
 * charge answers 503 and the log says how to set it: the example ships no key, not even a fake one.
 */
const svc = service();
const PROVIDER_KEY = 'payment-provider-key';
let warnedUnset = false;

/** The processor key, or null (logged once, with the command that fixes it) when it was never set. */
async function providerKey(): Promise<Secret | null> {
  try {
    const key = await svc.secrets.get(PROVIDER_KEY);
    warnedUnset = false;
    return key;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'SEC_ERR_NOT_FOUND') throw err;
    if (!warnedUnset) {
      warnedUnset = true;
      const dataDir = join(svc.dataDir, '..', 'control');
      svc.logger.error(
        { secret: PROVIDER_KEY },
        `${PROVIDER_KEY} is not set, so charges answer 503. Set it with: rampart secrets set ${PROVIDER_KEY} --data-dir ${dataDir} (the value is read from stdin)`,
      );
    }
    return null;
  }
}
const db = svc.database();
db.exec(`CREATE TABLE IF NOT EXISTS charges (
  id TEXT PRIMARY KEY,
  order_id INTEGER NOT NULL UNIQUE,
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  currency TEXT NOT NULL,
  payer TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT`);
const insert = db.prepare('INSERT INTO charges (id, order_id, amount_cents, currency, payer) VALUES (?, ?, ?, ?, ?)');

svc.app.post<{ Body: { orderId: number; amountCents: number; currency: string } }>(
  '/charges',
  {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['orderId', 'amountCents', 'currency'],
        properties: {
          orderId: { type: 'integer', minimum: 1 },
          amountCents: { type: 'integer', minimum: 1, maximum: 100_000_000 },
          currency: { type: 'string', enum: ['EUR', 'USD'] },
        },
      },
    },
  },
  async (req, reply) => {
    // The end user's token travels with the call and is verified here again (defense in depth).
    const payer = svc.user(req).subject;
    const key = await providerKey();
    if (key === null) return reply.status(503).send({ error: 'payment_provider_not_configured' });
    const chargeId = `ch_${randomUUID()}`;
    // The card processor is simulated: a real one would receive this request signed with the key.
    try {
      createHmac('sha256', key.value).update(`${chargeId}:${req.body.amountCents}:${req.body.currency}`).digest();
    } finally {
      key.value.fill(0);
    }
    try {
      insert.run(chargeId, req.body.orderId, req.body.amountCents, req.body.currency, payer);
    } catch (err) {
      if ((err as { errcode?: number }).errcode === 2067) return reply.status(409).send({ error: 'already_charged' });
      throw err;
    }
    return reply.status(201).send({ chargeId });
  },
);

await svc.start();
