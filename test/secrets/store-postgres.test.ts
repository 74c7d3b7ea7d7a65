import { postgresBackend } from './backends.ts';
import { storeSuite } from './store-suite.ts';

// The same suite as SQLite's, against the machine's PostgreSQL (a unique schema per test, dropped after).
storeSuite('postgres', postgresBackend, 30);
