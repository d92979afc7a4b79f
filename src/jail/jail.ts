/**
 * A jail's decision logic, pure: failures in, ban decisions out, time passed in. The daemon
 * feeds it wall time, `scan` feeds it log time: one implementation for both. Ids are the
 * failure ids (addresses, `<F-ID>` captures); scan, which replays hundreds of thousands of
 * failures, numbers them first (K = number: no string hashing per failure).
 */
import type { IdMap } from "./idmap.ts";
import { type IncrementPolicy, incrementedBantime, NO_INCREMENT } from "./increment.ts";

export interface JailPolicy<K = string> {
  name: string;
  maxretry: number;
  /** Seconds. */
  findtime: number;
  /** Seconds; -1 = permanent. */
  bantime: number;
  increment?: IncrementPolicy;
  /** True for ids that must never be banned (ignoreip, ignoreself, ignorecommand). */
  ignore?: (id: K) => boolean;
}

export interface FailureEvent<K = string> {
  id: K;
  /** Epoch seconds. */
  time: number;
  /** Lines of this failure (a multi-line failure carries several). */
  matches?: readonly string[];
  /** How many attempts this failure stands for (a merged multi-line failure may hold several). */
  attempts?: number;
}

export interface BanDecision<K = string> {
  jail: string;
  id: K;
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

/** What became of a failure. Every kind but "ban" is a shared, frozen object: read it, do not keep it. */
export type Verdict<K = string> =
  | { readonly kind: "ignored" }
  | { readonly kind: "banned-already"; readonly until: number }
  | { readonly kind: "counted"; readonly failures: number }
  | { readonly kind: "ban"; readonly ban: BanDecision<K> };

/** Earlier bans of an id (from the store or, in scan, from this run). */
export type BanHistory<K = string> = (id: K, jail: string, overall: boolean) => number;

type BannedAlready = Extract<Verdict, { kind: "banned-already" }>;

const MAX_MATCHES = 20;

// Verdicts other than a ban carry nothing that changes per failure: shared, frozen objects, no
// allocation per failure (scan replays hundreds of thousands).
const IGNORED: Verdict<never> = Object.freeze({ kind: "ignored" });
const COUNTED: Verdict<never>[] = Array.from({ length: 64 }, (_, n) =>
  Object.freeze({ kind: "counted", failures: n }),
);
function counted(n: number): Verdict<never> {
  return n < COUNTED.length ? COUNTED[n]! : Object.freeze({ kind: "counted", failures: n });
}

/** The verdict for the failures of an id banned until then, made once per ban. */
function bannedUntil(until: number): BannedAlready {
  return Object.freeze({ kind: "banned-already", until });
}

/** Drops the first n items of a small array in place (no splice, no length store: both leave JIT code). */
function dropFront(a: number[], n: number): void {
  const len = a.length;
  for (let i = n; i < len; i++) a[i - n] = a[i]!;
  for (let i = 0; i < n; i++) a.pop();
}

export class JailCore<K = string> {
  /** The findtime window of an id: its failure times, oldest first. */
  private readonly windows: IdMap<K, number[]>;
  /** The lines of the failures in a window (the last MAX_MATCHES), when failures carry them. */
  private readonly matches: IdMap<K, string[]>;
  /** Banned ids → the verdict of their failures, which holds the end of the ban (Infinity: permanent). */
  private readonly banned: IdMap<K, BannedAlready>;
  private readonly ownHistory: IdMap<K, number>;
  private readonly increment: IncrementPolicy;
  failuresTotal = 0;
  bansTotal = 0;

  /** `newMap` makes the per-id storage (see IdMap): Maps unless the ids are numbers. */
  constructor(
    readonly policy: JailPolicy<K>,
    private readonly history?: BanHistory<K>,
    newMap: <V>() => IdMap<K, V> = () => new Map(),
  ) {
    this.increment = policy.increment ?? NO_INCREMENT;
    this.windows = newMap();
    this.matches = newMap();
    this.banned = newMap();
    this.ownHistory = newMap();
  }

  get name(): string {
    return this.policy.name;
  }

  /** Failures currently in their window (Fail2ban's "currently failed"). */
  get failuresNow(): number {
    return this.windows.size;
  }

  failure(ev: FailureEvent<K>): Verdict<K> {
    const p = this.policy;
    const id = ev.id;
    if (p.ignore?.(id)) return IGNORED;
    const time = ev.time;
    const b = this.banned.get(id);
    if (b !== undefined) {
      if (b.until > time) return b;
      this.banned.delete(id);
    }
    this.failuresTotal++;
    let times = this.windows.get(id);
    if (times === undefined) {
      times = [];
      this.windows.set(id, times);
    }
    const n = Math.max(1, ev.attempts ?? 1);
    for (let i = 0; i < n; i++) times.push(time);
    if (ev.matches) {
      let m = this.matches.get(id);
      if (m === undefined) this.matches.set(id, (m = []));
      for (const line of ev.matches) m.push(line);
      if (m.length > MAX_MATCHES) m.splice(0, m.length - MAX_MATCHES);
    }
    // Sliding window: only failures within findtime of this one count.
    const from = time - p.findtime;
    let drop = 0;
    while (drop < times.length && times[drop]! <= from) drop++;
    if (drop > 0) dropFront(times, drop);
    if (times.length > p.maxretry) dropFront(times, times.length - p.maxretry);
    if (times.length < p.maxretry) return counted(times.length);

    const matches = this.matches.get(id) ?? [];
    this.forget(id);
    const count = this.history
      ? this.history(id, p.name, this.increment.overalljails)
      : (this.ownHistory.get(id) ?? 0);
    this.ownHistory.set(id, (this.ownHistory.get(id) ?? 0) + 1);
    const bantime = incrementedBantime(p.bantime, count, this.increment);
    this.banned.set(id, bannedUntil(bantime < 0 ? Number.POSITIVE_INFINITY : time + bantime));
    this.bansTotal++;
    return {
      kind: "ban",
      ban: {
        jail: p.name,
        id,
        time,
        bantime,
        count,
        failures: times.length,
        firstFailure: times[0]!,
        matches,
      },
    };
  }

  /** Marks an id banned (restored bans, manual bans) so its failures are not recounted. */
  markBanned(id: K, until: number): void {
    this.banned.set(id, bannedUntil(until < 0 ? Number.POSITIVE_INFINITY : until));
    this.forget(id);
  }

  /** Forgets a ban (unban), and the failures of the id. */
  unban(id: K): void {
    this.banned.delete(id);
    this.forget(id);
  }

  /** Forgets the failures of an id (its window). */
  private forget(id: K): void {
    this.windows.delete(id);
    this.matches.delete(id);
  }

  isBanned(id: K, now: number): boolean {
    const b = this.banned.get(id);
    return b !== undefined && b.until > now;
  }

  /** Drops windows whose last failure is older than findtime and expired bans: memory stays flat. */
  purge(now: number): void {
    const from = now - this.policy.findtime;
    this.windows.forEach((times, id) => {
      if (times[times.length - 1]! <= from) this.forget(id);
    });
    this.banned.forEach((b, id) => {
      if (b.until <= now) this.banned.delete(id);
    });
  }

  /** Forgets everything (e.g. a reload that changed the filter). */
  reset(): void {
    this.windows.clear();
    this.matches.clear();
    this.banned.clear();
  }
}
