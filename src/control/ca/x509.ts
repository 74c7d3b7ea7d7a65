import { webcrypto } from 'node:crypto';

/**
 * @peculiar/x509, loaded. Import it from here, never directly.
 *
 * Why this module exists: @peculiar/x509 2.x registers its algorithm providers through tsyringe, whose
 * module refuses to load unless a Reflect metadata polyfill (`reflect-metadata`, `@abraham/reflection`,
 * core-js) is installed first (see the library's README, "Reflect Polyfill Required"). None is a
 * dependency of Rampart yet. tsyringe reads metadata only while its `@injectable()` decorators run,
 * i.e. while @peculiar/x509's module body evaluates, and x509's providers have no constructor
 * parameters, so "no metadata" is the correct answer. We therefore provide the two lookups for the
 * duration of the import only and remove them afterwards: no global is left changed.
 *
 * TODO(deps): add `reflect-metadata` to package.json and replace the shim with `import 'reflect-metadata'`
 * at the entry points; the module then only re-exports.
 */
type X509Module = typeof import('@peculiar/x509');

const reflect = Reflect as unknown as Record<string, unknown>;
const LOOKUPS = ['getMetadata', 'getOwnMetadata'] as const;
const missing = LOOKUPS.filter((name) => typeof reflect[name] !== 'function');
for (const name of missing) {
  Object.defineProperty(Reflect, name, { value: () => undefined, configurable: true, writable: true });
}
let loaded: X509Module;
try {
  loaded = (await import('@peculiar/x509')) as X509Module;
} finally {
  for (const name of missing) delete reflect[name];
}

/** The @peculiar/x509 module. */
export const x509: X509Module = loaded;

/** The WebCrypto type @peculiar/x509 expects (the DOM `Crypto`, which Node's types do not name globally). */
export type X509Crypto = NonNullable<Parameters<X509Module['X509CertificateGenerator']['create']>[1]>;

/**
 * The WebCrypto implementation every @peculiar/x509 call receives explicitly (the library would
 * otherwise consult its process-wide provider registry).
 */
export const crypto: X509Crypto = webcrypto as unknown as X509Crypto;
