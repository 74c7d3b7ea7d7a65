import { sqliteBackend } from './backends.ts';
import { storeSuite } from './store-suite.ts';

storeSuite('sqlite', sqliteBackend, 100);
