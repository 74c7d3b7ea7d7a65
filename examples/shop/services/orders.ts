import { service } from 'rampart/sdk';

/**
 * Orders: a user sees and creates only their own orders. Object-level authorization is the service's
 * job (the gateway only knows the route): every query is scoped by the token's subject, and another
 * user's order answers 404, not 403, so its existence does not leak (OWASP API1:2023 BOLA).
 */
const svc = service();
const db = svc.database();
db.exec(`CREATE TABLE IF NOT EXISTS orders (
  id INTEGER PRIMARY KEY,
  owner TEXT NOT NULL,
  product_id INTEGER NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 100),
  amount_cents INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
  charge_id TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX IF NOT EXISTS orders_owner ON orders (owner, id)`);

const columns =
  'id, product_id AS productId, quantity, amount_cents AS amountCents, status, charge_id AS chargeId, created_at AS createdAt';
const mine = db.prepare(`SELECT ${columns} FROM orders WHERE owner = ? ORDER BY id DESC LIMIT 100`);
const oneOfMine = db.prepare(`SELECT ${columns} FROM orders WHERE id = ? AND owner = ?`);
const insert = db.prepare(
  "INSERT INTO orders (owner, product_id, quantity, amount_cents, status) VALUES (?, ?, ?, ?, 'pending') RETURNING id",
);
const settle = db.prepare('UPDATE orders SET status = ?, charge_id = ? WHERE id = ?');

svc.app.get('/orders', async (req) => ({ orders: mine.all(svc.user(req).subject) }));

svc.app.get<{ Params: { id: string } }>('/orders/:id', async (req, reply) => {
  const order = /^[0-9]{1,12}$/.test(req.params.id)
    ? oneOfMine.get(Number(req.params.id), svc.user(req).subject)
    : undefined;
  return order ? order : reply.status(404).send({ error: 'not_found' });
});

svc.app.post<{ Body: { productId: number; quantity: number } }>(
  '/orders',
  {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['productId', 'quantity'],
        properties: {
          productId: { type: 'integer', minimum: 1 },
          quantity: { type: 'integer', minimum: 1, maximum: 100 },
        },
      },
    },
  },
  async (req, reply) => {
    const user = svc.user(req);
    const product = await svc.call('catalog', `/catalog/products/${req.body.productId}`, { from: req });
    if (product.status === 404) return reply.status(422).send({ error: 'unknown_product' });
    if (product.status !== 200) throw new Error(`catalog answered ${product.status}`);
    const { priceCents } = await product.json<{ priceCents: number }>();
    const amount = priceCents * req.body.quantity;
    // The order is recorded before the charge, so a crash between the two leaves a visible pending order.
    const { id } = insert.get(user.subject, req.body.productId, req.body.quantity, amount) as { id: number };

    const charge = await svc.call('payments', '/charges', {
      from: req,
      json: { orderId: id, amountCents: amount, currency: 'EUR' },
    });
    const paid = charge.status === 201;
    const chargeId = paid ? (await charge.json<{ chargeId: string }>()).chargeId : null;
    settle.run(paid ? 'paid' : 'failed', chargeId, id);
    return reply.status(paid ? 201 : 402).send(oneOfMine.get(id, user.subject));
  },
);

await svc.start();
