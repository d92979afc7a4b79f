/**
 * Bantime increment for repeat offenders (Fail2ban's bantime.* options): the n-th ban of an
 * address lasts bantime × factor × 2^n (or × multipliers[n]), capped by maxtime, plus up to
 * rndtime seconds of jitter so that botnets cannot predict the unban.
 */
export interface IncrementPolicy {
  enabled: boolean;
  factor: number;
  /** Explicit multipliers by ban count ("1 2 4 8 16 32 64"); empty = 2^count formula. */
  multipliers: number[];
  /** Cap in seconds (0 = none). */
  maxtime: number;
  /** Random extra seconds (0 = none). */
  rndtime: number;
  /** Count earlier bans of the address in every jail, not just this one. */
  overalljails: boolean;
}

export const NO_INCREMENT: IncrementPolicy = {
  enabled: false,
  factor: 1,
  multipliers: [],
  maxtime: 0,
  rndtime: 0,
  overalljails: false,
};

/** The ban length for an address banned `count` times before. -1 stays permanent. */
export function incrementedBantime(
  bantime: number,
  count: number,
  p: IncrementPolicy,
  random: () => number = Math.random,
): number {
  if (bantime < 0 || !p.enabled || count <= 0) return bantime;
  let t: number;
  if (p.multipliers.length > 0) {
    const m = p.multipliers[Math.min(count, p.multipliers.length - 1)]!;
    t = bantime * m;
  } else {
    t = bantime * 2 ** Math.min(count, 20) * p.factor;
  }
  if (p.rndtime > 0) t += Math.floor(random() * p.rndtime);
  if (p.maxtime > 0 && t > p.maxtime) t = p.maxtime;
  return Math.round(t);
}
