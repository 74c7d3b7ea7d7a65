import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509Module from '@peculiar/x509';

/**
 * @peculiar/x509, loaded, for every component (the CA, the SDK's certificate requests, tests). The
 * library registers its algorithm providers through tsyringe, which needs a Reflect metadata polyfill
 * loaded first (its README, "Reflect Polyfill Required"): that is the `reflect-metadata` import above.
 */
export const x509: typeof x509Module = x509Module;

/** The WebCrypto type @peculiar/x509 expects (the DOM `Crypto`, which Node's types do not name globally). */
export type X509Crypto = NonNullable<Parameters<(typeof x509Module)['X509CertificateGenerator']['create']>[1]>;

/**
 * The WebCrypto implementation every @peculiar/x509 call receives explicitly (the library would
 * otherwise consult its process-wide provider registry).
 */
export const crypto: X509Crypto = webcrypto as unknown as X509Crypto;
