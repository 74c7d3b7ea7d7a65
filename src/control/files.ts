/**
 * File names in the control plane's data directory that other parts read or create: the launcher
 * (dev KEK, bundle), the CLI (`rampart ca|secrets|kek` offline) and the control plane itself. Here,
 * not in main.ts, because importing main.ts starts a control plane.
 */
export const CONTROL_FILES = {
  /** The development KEK `rampart start` creates. */
  kek: 'kek.key',
  /** The CA database. */
  ca: 'ca.db',
  /**
   * The current trust bundle (public CA certificates), rewritten when it changes: how the launcher
   * bootstraps trust in the API's server certificate before it mints join tokens.
   */
  bundle: 'bundle.pem',
  /**
   * Held (core/file-lock.ts) by the one process that may open the stores: the running control plane,
   * or an offline `rampart ca|secrets|kek` command while no control plane runs.
   */
  lock: 'control.lock',
} as const;
