/**
 * A jail's decision logic, pure: failures in, ban decisions out, time passed in. The daemon
 * feeds it wall time, `scan` feeds it log time: one implementation for both.
 */
import { type IncrementPolicy, incrementedBantime, NO_INCREMENT } from "./increment.ts";

export interface JailPolicy {
  name: string;
  maxretry: number;
  /** Seconds. */
  findtime: number;
  /** Seconds; -1 = permanent. */
  bantime: number;
  increment?: IncrementPolicy;
  /** True for ids that must never be banned (ignoreip, ignoreself, ignorecommand). */
  ignore?: (id: string) => boolean;
}

export interface FailureEvent {
  id: string;
  /** Epoch seconds. */
  time: number;
  /** Lines of this failure (a multi-line failure carries several). */
  matches?: readonly string[];
  /** How many attempts this failure stands for (a merged multi-line failure may hold several). */
  attempts?: number;
}

export interface BanDecision {
  jail: string;
  id: string;
  /** When the ban starts (the time of the failure that reached maxretry). */
  time: number;
  /** Seconds; -1 permanent. */
  bantime: number;
  /** Earlier bans of this id (0 for a first ban). */
  count: number;
  /** Failures counted in the window. */
  failures: number;
  /** When the first failure of the window happened. */
  firstFailure: number;
  matches: string[];
}

export type Verdict =
  | { kind: "ignored" }
  | { kind: "banned-already"; until: number }
  | { kind: "counted"; failures: number }
  | { kind: "ban"; ban: BanDecision };

/** Earlier bans of an id (from the store or, in scan, from this run). */
export type BanHistory = (id: string, jail: string, overall: boolean) => number;

interface Window {
  times: number[];
  matches: string[];
}

const MAX_MATCHES = 20;

export class JailCore {
  private readonly windows = new Map<string, Window>();
  private readonly banned = new Map<string, number>(); // id → until (Infinity = permanent)
  private readonly ownHistory = new Map<string, number>();
  private readonly increment: IncrementPolicy;
  failuresTotal = 0;
  bansTotal = 0;

  constructor(
    readonly policy: JailPolicy,
    private readonly history?: BanHistory,
  ) {
    this.increment = policy.increment ?? NO_INCREMENT;
  }

  get name(): string {
    return this.policy.name;
  }

  /** Failures currently in their window (Fail2ban's "currently failed"). */
  get failuresNow(): number {
    return this.windows.size;
  }

  failure(ev: FailureEvent): Verdict {
    const p = this.policy;
    if (p.ignore?.(ev.id)) return { kind: "ignored" };
    const until = this.banned.get(ev.id);
    if (until !== undefined) {
      if (until > ev.time) return { kind: "banned-already", until };
      this.banned.delete(ev.id);
    }
    this.failuresTotal++;
    let w = this.windows.get(ev.id);
    if (!w) {
      w = { times: [], matches: [] };
      this.windows.set(ev.id, w);
    }
    const n = Math.max(1, ev.attempts ?? 1);
    for (let i = 0; i < n; i++) w.times.push(ev.time);
    if (ev.matches) {
      for (const m of ev.matches) w.matches.push(m);
      if (w.matches.length > MAX_MATCHES) w.matches.splice(0, w.matches.length - MAX_MATCHES);
    }
    // Sliding window: only failures within findtime of this one count.
    const from = ev.time - p.findtime;
    let drop = 0;
    while (drop < w.times.length && w.times[drop]! <= from) drop++;
    if (drop > 0) w.times.splice(0, drop);
    if (w.times.length > p.maxretry) w.times.splice(0, w.times.length - p.maxretry);
    if (w.times.length < p.maxretry) return { kind: "counted", failures: w.times.length };

    this.windows.delete(ev.id);
    const count = this.history
      ? this.history(ev.id, p.name, this.increment.overalljails)
      : (this.ownHistory.get(ev.id) ?? 0);
    this.ownHistory.set(ev.id, (this.ownHistory.get(ev.id) ?? 0) + 1);
    const bantime = incrementedBantime(p.bantime, count, this.increment);
    this.banned.set(ev.id, bantime < 0 ? Number.POSITIVE_INFINITY : ev.time + bantime);
    this.bansTotal++;
    return {
      kind: "ban",
      ban: {
        jail: p.name,
        id: ev.id,
        time: ev.time,
        bantime,
        count,
        failures: w.times.length,
        firstFailure: w.times[0]!,
        matches: w.matches,
      },
    };
  }

  /** Marks an id banned (restored bans, manual bans) so its failures are not recounted. */
  markBanned(id: string, until: number): void {
    this.banned.set(id, until < 0 ? Number.POSITIVE_INFINITY : until);
    this.windows.delete(id);
  }

  /** Forgets a ban (unban), and the failures of the id. */
  unban(id: string): void {
    this.banned.delete(id);
    this.windows.delete(id);
  }

  isBanned(id: string, now: number): boolean {
    const u = this.banned.get(id);
    return u !== undefined && u > now;
  }

  /** Drops windows whose last failure is older than findtime and expired bans: memory stays flat. */
  purge(now: number): void {
    const from = now - this.policy.findtime;
    for (const [id, w] of this.windows) if (w.times[w.times.length - 1]! <= from) this.windows.delete(id);
    for (const [id, until] of this.banned) if (until <= now) this.banned.delete(id);
  }

  /** Forgets everything (e.g. a reload that changed the filter). */
  reset(): void {
    this.windows.clear();
    this.banned.clear();
  }
}
