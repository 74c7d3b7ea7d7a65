/** @peculiar/x509 for the CA: the shared loader lives in src/core/x509.ts (the SDK needs it too). */
export { crypto, type X509Crypto, x509 } from '../../core/x509.ts';
