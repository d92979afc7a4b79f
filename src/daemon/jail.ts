/**
 * One running jail: its sources (file followers or the journal), one FilterMatcher per source,
 * the pure JailCore on (clamped) log time, and the road from a ban decision to the actions:
 * commit to the store first, then the ban book (unban schedule), the log line, the action queue.
 */
import type * as Dns from "node:dns/promises";
import { statSync } from "node:fs";
import { basename, dirname } from "node:path";
import { Glob } from "bun";
import type { BanEvent } from "../action/types.ts";
import type { JailConfig } from "../config/schema.ts";
import { type CompiledFilter, type Failure, FilterMatcher } from "../filter/index.ts";
import type { FleetHook } from "../fleet/types.ts";
import { incrementedBantime } from "../jail/increment.ts";
import { type BanDecision, JailCore } from "../jail/jail.ts";
import { FileFollower } from "../source/file.ts";
import { JournalFollower, type JournalLine } from "../source/journal.ts";
import { watchDir } from "../source/watch.ts";
import type { FilePosition, Store, StoredBan } from "../store/store.ts";
import { formatDuration } from "../util/duration.ts";
import { errorMessage } from "../util/errors.ts";
import { normalizeIP } from "../util/ip.ts";
import type { JailActions } from "./actions.ts";
import type { BanBook, LiveBan } from "./bans.ts";
import type { IgnoreRules } from "./ignore.ts";
import type { DaemonLog } from "./log.ts";

/** What a jail needs from the daemon around it. */
export interface JailHost {
  log: DaemonLog;
  store: Store;
  book: BanBook;
  /** Epoch seconds. */
  now(): number;
  journalctl?: string;
  /** Polling interval for backend = polling (ms). */
  pollMs?: number;
  /** fleet (issue 9): told of local bans and of counted failures (global_maxretry). */
  fleet?: FleetHook;
}

interface FileSource {
  kind: "file";
  path: string;
  follower: FileFollower;
  /** Made at the first lines (see matcherOf). */
  matcher: FilterMatcher | null;
  saved: FilePosition | null;
}

interface JournalSource {
  kind: "journal";
  follower: JournalFollower;
  matcher: FilterMatcher | null;
  saved: string | null;
}

type Source = FileSource | JournalSource;

/** Lines dated further than this from now are counted as now (wrong zone, clock skew). */
const SKEW_S = 60;
const SKEW_WARN_EVERY_S = 600;
const DNS_CACHE_S = 300;

/** "600s", "permanent". */
export function bantimeText(s: number): string {
  return s < 0 ? "permanent" : `${Math.round(s)}s`;
}

export function banEvent(b: LiveBan | StoredBan): BanEvent {
  return {
    ip: b.ip,
    jail: b.jail,
    time: b.time,
    bantime: b.bantime,
    failures: b.failures,
    count: b.count,
    matches: b.matches,
  };
}

export function liveBan(b: StoredBan): LiveBan {
  return { ...b, until: b.bantime < 0 ? Number.POSITIVE_INFINITY : b.time + b.bantime };
}

export class JailRuntime {
  readonly name: string;
  readonly core: JailCore;
  private sources: Source[] = [];
  private globUnwatch: Array<() => void> = [];
  private pendingDns = new Map<string, { until: number; ips: string[] }>();
  private skewCount = 0;
  private skewWarned = 0;
  bansTotal = 0;
  failuresBase = 0;
  active = false;

  constructor(
    readonly config: JailConfig,
    readonly filter: CompiledFilter,
    public ignore: IgnoreRules,
    readonly actions: JailActions,
    private readonly host: JailHost,
  ) {
    this.name = config.name;
    const inc = config.increment;
    this.core = new JailCore(
      {
        name: config.name,
        maxretry: config.maxretry,
        findtime: config.findtime,
        bantime: config.bantime,
        increment: inc,
        ignore: (id) => this.ignore.has(id),
      },
      (id, jail, overall) => host.store.banCount(id, jail, overall),
    );
  }

  /** Failures found and not ignored, banned addresses' included (Fail2ban's "Total failed"). */
  private failuresFound = 0;

  get failuresTotal(): number {
    return this.failuresBase + this.failuresFound;
  }

  /** Starts following the jail's logs (or the journal). */
  start(): void {
    const c = this.config;
    if (c.backend === "journal") {
      this.startJournal();
    } else {
      for (const p of c.logpath) {
        if (/[*?[]/.test(p)) this.startGlob(p);
        else this.addFile(p);
      }
    }
    this.active = true;
  }

  /** Stops the sources and saves where they are. */
  stop(): void {
    this.active = false;
    for (const u of this.globUnwatch) u();
    this.globUnwatch = [];
    for (const s of this.sources) s.follower.stop();
    this.savePositions();
    this.sources = [];
  }

  /**
   * A source's matcher, made when its first lines come (or by prepare): building one (the
   * regex analysis and generated code of its fast path) is work a start need not wait for.
   */
  private matcherOf(src: Source): FilterMatcher {
    if (src.matcher === null)
      src.matcher = new FilterMatcher(this.filter, { noDate: "now", now: () => this.host.now() });
    return src.matcher;
  }

  /** Builds what the first lines would (matchers, date detection): the daemon calls it once started. */
  prepare(): void {
    if (!this.active) return;
    for (const s of this.sources) this.matcherOf(s);
    this.filter.dates.prepare?.();
  }

  private addFile(path: string, fromStart = false): void {
    if (this.sources.some((s) => s.kind === "file" && s.path === path)) return;
    const stored = this.host.store.position(this.name, path);
    const src: FileSource = {
      kind: "file",
      path,
      matcher: null,
      saved: stored,
      follower: null as unknown as FileFollower,
    };
    const mode = this.config.backend === "polling" ? "polling" : "inotify";
    src.follower = new FileFollower({
      path,
      mode,
      encoding: this.config.logencoding,
      // a file that appears while we run is new: read it all
      position: stored ?? (fromStart ? { inode: -1, offset: 0, hash: "" } : null),
      onLines: (lines) => this.feedFile(src, lines),
      log: this.host.log,
      ...(this.host.pollMs !== undefined ? { pollMs: this.host.pollMs } : {}),
    });
    this.sources.push(src);
    src.follower.start();
  }

  private startGlob(pattern: string): void {
    const dir = dirname(pattern);
    for (const p of [...new Glob(pattern).scanSync({ absolute: true, onlyFiles: true })].sort())
      this.addFile(p);
    if (/[*?[]/.test(dir)) return; // globs in directories are expanded at start and reload only
    const g = new Glob(basename(pattern));
    const u = watchDir(dir, (name) => {
      if (name === null || !g.match(name)) return;
      const path = `${dir}/${name}`;
      if (this.sources.some((s) => s.kind === "file" && s.path === path)) return;
      let ino: number;
      try {
        ino = Number(statSync(path).ino);
      } catch {
        return;
      }
      // a file renamed by a rotation into a name the glob matches is not new
      if (this.sources.some((s) => s.kind === "file" && s.follower.knowsInode(ino))) return;
      this.host.log.info(`jail=${this.name}: new log file ${path}`);
      this.addFile(path, true);
    });
    if (u) this.globUnwatch.push(u);
  }

  private startJournal(): void {
    const src: JournalSource = {
      kind: "journal",
      matcher: null,
      saved: this.host.store.cursor(this.name),
      follower: null as unknown as JournalFollower,
    };
    src.follower = new JournalFollower({
      matches: this.config.journalmatch,
      cursor: src.saved,
      onLines: (lines) => this.feedJournal(src, lines),
      log: this.host.log,
      ...(this.host.journalctl ? { journalctl: this.host.journalctl } : {}),
    });
    this.sources.push(src);
    src.follower.start();
  }

  private feedFile(src: FileSource, lines: string[]): void {
    const m = this.matcherOf(src);
    const bans: BanDecision[] = [];
    const now = this.host.now();
    try {
      for (let i = 0; i < lines.length; i++) {
        const f = m.processLine(lines[i]!).failure;
        if (f) this.failure(f, now, bans);
      }
    } catch (e) {
      this.host.log.error(`jail=${this.name}: ${src.path}: ${errorMessage(e)}`);
    }
    this.commit(bans, src);
  }

  private feedJournal(src: JournalSource, lines: JournalLine[]): void {
    const m = this.matcherOf(src);
    const bans: BanDecision[] = [];
    const now = this.host.now();
    try {
      for (const l of lines) {
        const f = m.processLine(l.text, l.time).failure;
        if (f) this.failure(f, now, bans);
      }
    } catch (e) {
      this.host.log.error(`jail=${this.name}: journal: ${errorMessage(e)}`);
    }
    this.commit(bans, src);
  }

  /** One failure from the filter: clamp its time, count it, collect a ban. */
  private failure(f: Failure, now: number, bans: BanDecision[]): void {
    let t = f.time ?? now;
    if (t > now + SKEW_S || t < now - SKEW_S) {
      this.skewCount++;
      if (now - this.skewWarned > SKEW_WARN_EVERY_S) {
        this.host.log.warn(
          `jail=${this.name}: a line is dated ${formatDuration(Math.abs(t - now))} ${t > now ? "in the future" : "in the past"} (wrong time zone or a clock off?): counted as now (${this.skewCount} such lines so far)`,
        );
        this.skewWarned = now;
      }
      t = now;
    }
    if (f.kind === "dns") {
      this.dnsFailure(f, t);
      return;
    }
    this.host.log.info(`Found ${f.id} jail=${this.name}`);
    const v = this.core.failure({ id: f.id, time: t, matches: f.matches });
    if (v.kind === "ban") bans.push(v.ban);
    if (v.kind === "counted") this.host.fleet?.failure(this.name, f.id, t); // fleet (issue 9)
    if (v.kind !== "ignored") this.failuresFound++;
  }

  /** usedns: a failure by host name counts for each of the name's addresses. */
  private dnsFailure(f: Failure, t: number): void {
    const mode = this.config.usedns;
    if (mode === "raw" || mode === "no") {
      this.host.log.info(`Found ${f.id} jail=${this.name} (a name, not an address: counted, never banned)`);
      if (this.core.failure({ id: f.id, time: t, matches: f.matches }).kind !== "ignored")
        this.failuresFound++;
      return;
    }
    const now = this.host.now();
    const cached = this.pendingDns.get(f.id);
    const go = (ips: string[]) => {
      if (!this.active) return;
      const bans: BanDecision[] = [];
      for (const ip of ips) {
        this.host.log.info(`Found ${ip} jail=${this.name} (${f.id})`);
        const v = this.core.failure({ id: ip, time: t, matches: f.matches });
        if (v.kind === "ban") bans.push(v.ban);
        if (v.kind !== "ignored") this.failuresFound++;
      }
      this.commit(bans, null);
    };
    if (cached && cached.until > now) {
      go(cached.ips);
      return;
    }
    (require("node:dns/promises") as typeof Dns).lookup(f.id, { all: true }).then(
      (r) => {
        const ips = [...new Set(r.map((a) => a.address))];
        if (this.pendingDns.size > 10000) this.pendingDns.clear();
        this.pendingDns.set(f.id, { until: now + DNS_CACHE_S, ips });
        if (mode === "warn")
          this.host.log.warn(`jail=${this.name}: ${f.id} resolved to ${ips.join(", ")} (usedns = warn)`);
        go(ips);
      },
      (e: Error) => this.host.log.warn(`jail=${this.name}: cannot resolve ${f.id}: ${e.message}`),
    );
  }

  /**
   * Commits the bans of one chunk (and the source's position after it) in one transaction,
   * then schedules, logs and hands them to the actions. ignorecommand is asked first.
   */
  private commit(decisions: BanDecision[], src: Source | null): void {
    if (decisions.length === 0) return;
    if (this.ignore.hasCommand) {
      void this.commitAfterCommand(decisions);
      return;
    }
    this.commitNow(decisions, src);
  }

  private async commitAfterCommand(decisions: BanDecision[]): Promise<void> {
    const keep: BanDecision[] = [];
    await Promise.all(
      decisions.map(async (d) => {
        if (await this.ignore.commandSays(d.id)) {
          this.core.unban(d.id);
          this.host.log.info(`Ignore ${d.id} jail=${this.name} by ignorecommand`);
        } else keep.push(d);
      }),
    );
    if (this.active) this.commitNow(keep, null);
  }

  private commitNow(decisions: BanDecision[], src: Source | null): void {
    const now = this.host.now();
    const stored: StoredBan[] = [];
    for (const d of decisions) {
      if (!isAddress(d.id)) {
        this.host.log.warn(
          `jail=${this.name}: ${d.id} reached maxretry but is not an IP address: not banned`,
        );
        continue;
      }
      stored.push({
        jail: this.name,
        ip: d.id,
        time: now,
        bantime: d.bantime,
        count: d.count,
        failures: d.failures,
        matches: d.matches.slice(-20),
      });
    }
    this.store(stored, src);
  }

  /** The common end of automatic, manual and fleet bans (`origin`: the node a fleet ban came from). */
  private store(stored: StoredBan[], src: Source | null, origin?: string): void {
    if (stored.length === 0) return;
    const positions = src?.kind === "file" ? this.positionOf(src) : undefined;
    const cursors = src?.kind === "journal" ? this.cursorOf(src) : undefined;
    try {
      this.host.store.commit({
        bans: stored,
        ...(positions ? { positions } : {}),
        ...(cursors ? { cursors } : {}),
      });
    } catch (e) {
      // a broken database must not let attackers in: ban anyway, say it is not persisted
      this.host.log.error(
        `jail=${this.name}: cannot record ${stored.length} bans in the database (${errorMessage(e)}); banning anyway, not persisted`,
      );
    }
    const events: BanEvent[] = [];
    for (const b of stored) {
      const live = liveBan(b);
      this.host.book.add(live);
      this.core.markBanned(b.ip, b.bantime < 0 ? -1 : live.until);
      this.bansTotal++;
      this.host.log.info(
        `Ban ${b.ip} jail=${this.name} failures=${b.failures} bantime=${bantimeText(b.bantime)}${origin ? ` (fleet: from ${origin})` : ""}`,
      );
      events.push(banEvent(b));
    }
    this.actions.ban(events);
    if (origin === undefined) this.host.fleet?.banned(stored); // fleet (issue 9): publish local bans
  }

  /** fleet (issue 9): a ban another node published, down the same road as a local one (not republished). */
  fleetBan(b: StoredBan, origin: string): void {
    this.store([b], null, origin);
  }

  private positionOf(src: FileSource): Array<{ jail: string; path: string; pos: FilePosition }> | undefined {
    const pos = src.follower.position();
    if (!pos || pos.inode < 0) return undefined;
    if (
      src.saved &&
      src.saved.offset === pos.offset &&
      src.saved.inode === pos.inode &&
      src.saved.hash === pos.hash
    ) {
      return undefined;
    }
    src.saved = pos;
    return [{ jail: this.name, path: src.path, pos }];
  }

  private cursorOf(src: JournalSource): Array<{ jail: string; cursor: string }> | undefined {
    const c = src.follower.cursor();
    if (!c || c === src.saved) return undefined;
    src.saved = c;
    return [{ jail: this.name, cursor: c }];
  }

  /** Saves changed positions and cursors (the daemon calls it every second and at stop). */
  savePositions(): void {
    const positions: Array<{ jail: string; path: string; pos: FilePosition }> = [];
    const cursors: Array<{ jail: string; cursor: string }> = [];
    for (const s of this.sources) {
      if (s.kind === "file") positions.push(...(this.positionOf(s) ?? []));
      else cursors.push(...(this.cursorOf(s) ?? []));
    }
    if (positions.length > 0 || cursors.length > 0) this.host.store.commit({ positions, cursors });
  }

  /**
   * `fail2ts ban JAIL IP...`: bans now, whatever the failures. Returns the addresses banned.
   * `failures`: what the ban records (the fleet's global_maxretry passes its count).
   */
  manualBan(ips: string[], failures = 0): { banned: string[]; already: string[] } {
    const now = this.host.now();
    const banned: StoredBan[] = [];
    const already: string[] = [];
    const inc = this.config.increment;
    for (const ip of new Set(ips)) {
      if (this.host.book.get(this.name, ip)) {
        already.push(ip);
        continue;
      }
      const count = inc.enabled ? this.host.store.banCount(ip, this.name, inc.overalljails) : 0;
      banned.push({
        jail: this.name,
        ip,
        time: now,
        bantime: incrementedBantime(this.config.bantime, count, inc),
        count,
        failures,
        matches: [],
      });
    }
    this.store(banned, null);
    return { banned: banned.map((b) => b.ip), already };
  }

  /** Unbans addresses of this jail (manual unban, expiry, reload); `stored` says whether the DB still has them. */
  unban(bans: LiveBan[], why: string, stored = true): void {
    if (bans.length === 0) return;
    if (stored) {
      try {
        this.host.store.commit({ unbans: bans.map((b) => ({ jail: b.jail, ip: b.ip })) });
      } catch (e) {
        this.host.log.error(
          `jail=${this.name}: cannot remove ${bans.length} bans from the database: ${errorMessage(e)}`,
        );
      }
    }
    for (const b of bans) {
      this.core.unban(b.ip);
      this.host.log.info(`Unban ${b.ip} jail=${this.name}${why ? ` (${why})` : ""}`);
    }
    this.actions.unban(bans.map(banEvent));
  }

  /** Status for the control socket. */
  status(): {
    name: string;
    failures_total: number;
    failures_now: number;
    bans_total: number;
    banned_now: number;
    banned: string[];
  } {
    const banned = [...this.host.book.jail(this.name).keys()];
    return {
      name: this.name,
      failures_total: this.failuresTotal,
      failures_now: this.core.failuresNow,
      bans_total: this.bansTotal,
      banned_now: banned.length,
      banned,
    };
  }

  /** Drops old failure windows (memory stays flat). */
  purge(): void {
    this.core.purge(this.host.now());
  }
}

function isAddress(id: string): boolean {
  return normalizeIP(id) === id;
}
