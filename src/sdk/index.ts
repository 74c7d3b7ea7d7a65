/**
 * `rampart/sdk`: what a service imports. `service()` gives a service its runtime: an HTTP app (fastify)
 * bound to loopback, its own SQLite database, a logger, metrics, token verification of the end user,
 * a client for the peers the manifest lets it call, and `secrets.get(name)` for the secrets it is granted.
 */

export type { TokenIdentity } from '../core/access-token.ts';
export { RampartError } from '../core/errors.ts';
export {
  SDK_SECRETS_ERRORS,
  type Secret,
  type ServiceSecrets,
  type ServiceSecretsOptions,
} from './secrets.ts';
export { type CallInit, type CallResponse, type RampartService, type ServiceOptions, service } from './service.ts';
