import { isReservedEnvName } from '../launcher/child-env.ts';
import { COMPONENTS } from '../launcher/plan.ts';

/**
 * Names a service cannot have: the components the launcher runs beside the services (their data
 * directories, runtimes and SPIFFE ids would clash), and `rampart` itself. The launcher refuses them
 * at start (launcher/plan.ts); the manifest check says so first, with the file and line.
 */
export const RESERVED_SERVICE_NAMES: readonly string[] = Object.freeze([...COMPONENTS, 'rampart']);

/**
 * Service `env` names the launcher refuses (launcher/child-env.ts `isReservedEnvName`, the rule that
 * decides): `RAMPART_*` (the launcher's own contract), `NODE_*` except `NODE_ENV` and
 * `NODE_EXTRA_CA_CERTS` (NODE_OPTIONS can grant permissions), `LD_*` and `DYLD_*` (they load native
 * code). The same rule as one regular expression for the published schema; a test holds the two together.
 */
export const RESERVED_ENV_REGEX_SOURCE = '^(RAMPART_|LD_|DYLD_|NODE_(?!(ENV|EXTRA_CA_CERTS)$))';

export { isReservedEnvName };
