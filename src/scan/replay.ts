/**
 * The parent's side of `scan`: every failure the children found, in log order, through the
 * jails (JailCore, the daemon's logic). This is the serial part of a scan, so it is kept cheap:
 * ids are numbers (IdTable) and the jails keep their per-id state in arrays (DenseIdMap), one
 * event object serves every failure, and verdicts are shared objects.
 */
import { DenseIdMap } from "../jail/idmap.ts";
import { type BanDecision, JailCore } from "../jail/jail.ts";
import { cidrMatcher } from "../util/ip.ts";
import { IdTable } from "./ids.ts";
import type { ScanChunk } from "./pool.ts";
import type { ScanBan, ScanOptions } from "./scan.ts";
import { dfgOnly } from "./tier.ts";

/** Jail state is purged (memory stays flat) every so many failures. */
const PURGE_EVERY = 100000;

export class Replay {
  readonly ids = new IdTable();
  /** Failures within --since/--until that reached the jails. */
  counted = 0;
  ignored = 0;
  banCount = 0;
  /** Bans per filter, in the order of opts.filters. */
  readonly bansPerJail: number[];
  /** The first opts.keepBans bans. */
  readonly bans: ScanBan[] = [];
  private readonly jails: JailCore<number>[];
  private readonly ev = { id: 0, time: 0 };
  private readonly since: number;
  private readonly until: number;
  private readonly keep: number;
  private sincePurge = 0;

  constructor(private readonly opts: ScanOptions) {
    const ignore = cidrMatcher(opts.ignoreip);
    // Without ignoreip no hook at all: JailCore skips the call.
    const hook = ignore.size > 0 ? { ignore: (x: number) => ignore.has(this.ids.name(x)) } : {};
    this.jails = opts.filters.map(
      (f) =>
        new JailCore<number>(
          {
            name: f.jail,
            maxretry: opts.maxretry,
            findtime: opts.findtime,
            bantime: opts.bantime,
            ...(opts.increment ? { increment: opts.increment } : {}),
            ...hook,
          },
          undefined,
          () => new DenseIdMap(),
        ),
    );
    this.bansPerJail = opts.filters.map(() => 0);
    this.since = opts.since ?? Number.NEGATIVE_INFINITY;
    this.until = opts.until ?? Number.POSITIVE_INFINITY;
    this.keep = opts.keepBans ?? Number.POSITIVE_INFINITY;
    dfgOnly(
      Replay.prototype.chunk,
      JailCore.prototype.failure,
      DenseIdMap.prototype.get,
      DenseIdMap.prototype.set,
      DenseIdMap.prototype.delete,
    );
  }

  /** Replays a chunk's failures (chunks in file order). */
  chunk(r: ScanChunk): void {
    const { times, idIndex, idMap, filters } = r;
    const jails = this.jails;
    const ev = this.ev;
    const since = this.since;
    const until = this.until;
    const failures = this.ids.failures;
    let counted = 0;
    let ignored = 0;
    for (let k = 0; k < times.length; k++) {
      const t = times[k]!;
      if (t < since || t > until) continue;
      const x = idMap[idIndex[k]!]!;
      counted++;
      failures[x]!++;
      ev.id = x;
      ev.time = t;
      const ji = filters[k]!;
      const v = jails[ji]!.failure(ev);
      if (v.kind === "ban") this.ban(v.ban, ji);
      else if (v.kind === "ignored") ignored++;
      if (++this.sincePurge >= PURGE_EVERY) {
        this.sincePurge = 0;
        for (const j of jails) j.purge(t);
      }
    }
    this.counted += counted;
    this.ignored += ignored;
  }

  private ban(b: BanDecision<number>, ji: number): void {
    this.ids.addBan(b.id);
    this.bansPerJail[ji]!++;
    this.banCount++;
    const ban: ScanBan = {
      ip: this.ids.name(b.id),
      jail: b.jail,
      first: b.firstFailure,
      time: b.time,
      failures: b.failures,
      bantime: b.bantime,
      unban: b.bantime < 0 ? null : b.time + b.bantime,
      count: b.count,
    };
    if (this.bans.length < this.keep) this.bans.push(ban);
    this.opts.onBan?.(ban);
  }
}
