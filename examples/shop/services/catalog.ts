import { service } from 'rampart/sdk';

/** The catalog: anyone may list products; only admins with `catalog:write` may add one (enforced at the gateway). */
const svc = service();
const db = svc.database();
db.exec(`CREATE TABLE IF NOT EXISTS products (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  price_cents INTEGER NOT NULL CHECK (price_cents > 0),
  created_by TEXT NOT NULL
) STRICT`);
const seed = db.prepare('INSERT OR IGNORE INTO products (name, price_cents, created_by) VALUES (?, ?, ?)');
for (const [name, price] of [
  ['Rampart mug', 1200],
  ['Rampart hoodie', 4500],
  ['Sticker pack', 300],
] as const) {
  seed.run(name, price, 'seed');
}

const list = db.prepare('SELECT id, name, price_cents AS priceCents FROM products ORDER BY id');
const byId = db.prepare('SELECT id, name, price_cents AS priceCents FROM products WHERE id = ?');
const insert = db.prepare('INSERT INTO products (name, price_cents, created_by) VALUES (?, ?, ?) RETURNING id');

svc.app.get('/catalog/products', async () => ({ products: list.all() }));

svc.app.get<{ Params: { id: string } }>(
  '/catalog/products/:id',
  { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9]{1,12}$' } } } } },
  async (req, reply) => {
    const product = byId.get(Number(req.params.id));
    return product ? product : reply.status(404).send({ error: 'not_found' });
  },
);

svc.app.post<{ Body: { name: string; priceCents: number } }>(
  '/catalog/products',
  {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'priceCents'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 100 },
          priceCents: { type: 'integer', minimum: 1, maximum: 10_000_000 },
        },
      },
    },
  },
  async (req, reply) => {
    const user = svc.user(req);
    try {
      const row = insert.get(req.body.name, req.body.priceCents, user.subject) as { id: number };
      return reply.status(201).send({ id: row.id, name: req.body.name, priceCents: req.body.priceCents });
    } catch (err) {
      if ((err as { errcode?: number }).errcode === 2067) return reply.status(409).send({ error: 'exists' });
      throw err;
    }
  },
);

await svc.start();
