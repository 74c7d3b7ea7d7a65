import { join } from 'node:path';
import type { IdentityStoreConfig } from '../../config/model.ts';
import { openPostgresStore } from './postgres-store.ts';
import { openSqliteStore } from './sqlite-store.ts';
import type { IdentityStore } from './store.ts';

/**
 * Opens the store the manifest names (`identity.builtin.store`): a SQLite file in the provider's own data
 * directory, or a PostgreSQL database (several providers can then share accounts and grants).
 */
export async function openConfiguredStore(config: IdentityStoreConfig, dataDir: string): Promise<IdentityStore> {
  return config.kind === 'postgres'
    ? openPostgresStore({ connectionString: config.url })
    : openSqliteStore({ file: join(dataDir, 'identity.db') });
}
