import { randomUUID } from 'node:crypto';
import { service } from 'rampart/sdk';

/**
 * Payments: internal only (no gateway route). Records charges for orders. The card processor key is a
 * manifest secret (`payment-provider-key`); reading it arrives with the secrets module.
 */
const svc = service();
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
    const chargeId = `ch_${randomUUID()}`;
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
