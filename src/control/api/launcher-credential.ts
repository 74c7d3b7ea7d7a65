import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Checks an `Authorization` header against the launcher credential in constant time. Both sides are
 * hashed first so the comparison does not depend on (or leak) the presented value's length.
 */
export function createCredentialCheck(credential: string): (authorization: string | undefined) => boolean {
  if (credential.length < 32) throw new RangeError('launcher credential too short');
  const expected = createHash('sha256').update(credential).digest();
  return (authorization) => {
    if (typeof authorization !== 'string' || !/^Bearer [A-Za-z0-9_-]{1,512}$/.test(authorization)) return false;
    const presented = createHash('sha256').update(authorization.slice(7)).digest();
    return timingSafeEqual(presented, expected);
  };
}
