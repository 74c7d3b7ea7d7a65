import type { AuthorityRow, AuthorityState, SlotName } from './database.ts';
import { CA_DEFAULTS } from './defaults.ts';

/**
 * `rampart ca status`: the slots, when the next rotation steps are due, and warnings. Root/anchor
 * expiry is the most common mesh-wide outage (istio#14516, linkerd2#4808), so the warnings say early
 * and plainly what is about to go wrong.
 */

/** Warning codes. */
export const CA_WARNINGS = {
  /** No active CA: nothing can be issued (tick not run yet, or the database is inconsistent). */
  noActive: 'CA_WARN_NO_ACTIVE_CA',
  /** The active CA has expired: no SVID can be issued until a tick activates a successor. */
  expired: 'CA_WARN_CA_EXPIRED',
  /** The active CA expires soon (within `anchorWarningMs`). */
  anchorExpiring: 'CA_WARN_ANCHOR_EXPIRING',
  /** Past the prepare point (½) and no successor is prepared. */
  noSuccessor: 'CA_WARN_NO_SUCCESSOR',
  /** Past the activation point (⅚) and the successor is not active yet. */
  rotationOverdue: 'CA_WARN_ROTATION_OVERDUE',
  /** Live SVID holders have not acknowledged the bundle that publishes the successor. */
  bundleNotDistributed: 'CA_WARN_BUNDLE_NOT_DISTRIBUTED',
} as const;

export interface CaWarning {
  code: (typeof CA_WARNINGS)[keyof typeof CA_WARNINGS];
  message: string;
  detail: Record<string, unknown>;
}

/** One CA in the status. */
export interface AuthorityStatus {
  generation: number;
  slot: SlotName;
  state: AuthorityState;
  notBefore: number;
  notAfter: number;
  sha256: string;
  /** Prepared: when it activates at the latest. */
  activateAt: number | null;
  activatedAt: number | null;
  forced: boolean;
  /** Latest expiry among the SVIDs it signed (a retiring CA leaves the bundle then). */
  lastSvidNotAfter: number | null;
  /** SVIDs it signed that are still valid. */
  liveSvids: number;
}

export interface CaStatus {
  trustDomain: string;
  now: number;
  bundleSequence: number;
  authorities: AuthorityStatus[];
  /** For the active CA: when a successor is prepared (½) and activated (⅚). */
  schedule: { prepareAt: number; activateAt: number } | null;
  warnings: CaWarning[];
}

/** SPIRE's rotation points of a CA: prepare at ½ of its lifetime, activate with ⅙ left. */
export function rotationPoints(ca: Pick<AuthorityRow, 'notBefore' | 'notAfter'>): {
  prepareAt: number;
  activateAt: number;
} {
  const lifetime = ca.notAfter - ca.notBefore;
  return {
    prepareAt: ca.notBefore + Math.floor(lifetime * CA_DEFAULTS.prepareAtFraction),
    activateAt: ca.notAfter - Math.floor(lifetime * CA_DEFAULTS.activateAtRemainingFraction),
  };
}

/** Builds the status from what the store reports. Pure: the tests drive it with any clock. */
export function computeStatus(input: {
  trustDomain: string;
  now: number;
  settings: { anchorWarningMs: number };
  bundleSequence: number;
  authorities: { row: AuthorityRow; sha256: string; lastLeafNotAfter: number | null; liveSvids: number }[];
  holdersBehind: (sequence: number, publishedAt: number) => number;
}): CaStatus {
  const { now } = input;
  const warnings: CaWarning[] = [];
  const warn = (code: CaWarning['code'], message: string, detail: Record<string, unknown>) =>
    warnings.push({ code, message, detail });
  const authorities = input.authorities.map(({ row, sha256, lastLeafNotAfter, liveSvids }) => ({
    generation: row.generation,
    slot: row.slot,
    state: row.state,
    notBefore: row.notBefore,
    notAfter: row.notAfter,
    sha256,
    activateAt: row.activateAt,
    activatedAt: row.activatedAt,
    forced: row.forced,
    lastSvidNotAfter: lastLeafNotAfter,
    liveSvids,
  }));
  const active = authorities.find((a) => a.state === 'active');
  const prepared = authorities.find((a) => a.state === 'prepared');
  const schedule = active ? rotationPoints(active) : null;

  if (!active) {
    warn(CA_WARNINGS.noActive, 'no active CA: no SVID can be issued', {});
  } else if (now >= active.notAfter) {
    warn(CA_WARNINGS.expired, 'the active CA has expired: no SVID can be issued', {
      generation: active.generation,
      notAfter: active.notAfter,
    });
  } else if (active.notAfter - now <= input.settings.anchorWarningMs) {
    warn(CA_WARNINGS.anchorExpiring, 'the active CA expires soon', {
      generation: active.generation,
      notAfter: active.notAfter,
      remainingMs: active.notAfter - now,
    });
  }
  if (active && schedule && now >= schedule.prepareAt && !prepared) {
    const blocking = authorities.find((a) => a.slot !== active.slot);
    warn(CA_WARNINGS.noSuccessor, 'no successor CA is prepared', {
      dueSince: schedule.prepareAt,
      blockedBy: blocking ? { generation: blocking.generation, until: blocking.lastSvidNotAfter } : null,
    });
  }
  if (active && schedule && now >= schedule.activateAt) {
    warn(CA_WARNINGS.rotationOverdue, 'the successor CA should be active by now', {
      dueSince: schedule.activateAt,
      prepared: prepared?.generation ?? null,
    });
  }
  if (prepared) {
    const row = input.authorities.find((a) => a.row.generation === prepared.generation)?.row;
    const sequence = row?.publishedSequence ?? input.bundleSequence;
    const behind = input.holdersBehind(sequence, row?.createdAt ?? now);
    if (behind > 0) {
      warn(CA_WARNINGS.bundleNotDistributed, 'SVID holders have not acknowledged the bundle with the successor CA', {
        sequence,
        holdersBehind: behind,
        activateAt: prepared.activateAt,
      });
    }
  }
  return {
    trustDomain: input.trustDomain,
    now,
    bundleSequence: input.bundleSequence,
    authorities,
    schedule,
    warnings,
  };
}
