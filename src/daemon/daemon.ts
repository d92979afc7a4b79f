/**
 * `fail2ts run`: the daemon. Jails (sources → filter → JailCore), the ban book (unban timer),
 * the store, the actions, and the control socket, with reload (SIGHUP, `reload`) and stop.
 *
 * Start order: log, store, socket (ping answers from here on), jails — each restores its live
 * bans in one batch per action, then follows its logs and is listed by `status` (active).
 */
import { spawnExec } from "../action/exec.ts";
import { removeNftTable } from "../action/nftables.ts";
import { preloadScriptActions, scriptVersion } from "../action/script.ts";
import { loadConfig } from "../config/load.ts";
import type { ActionConfig, JailConfig, LoadedConfig } from "../config/schema.ts";
import type { CompiledFilter } from "../filter/index.ts";
import { fleetHost } from "../fleet/daemon.ts";
import { Fleet } from "../fleet/fleet.ts";
import type {
  BanResult,
  ControlHandler,
  FlushResult,
  ReloadResult,
  StatusResult,
  UnbanResult,
} from "../server/protocol.ts";
import { ControlServer } from "../server/server.ts";
import { Store } from "../store/store.ts";
import { errorMessage, Fail2tsError } from "../util/errors.ts";
import { normalizeIP } from "../util/ip.ts";
import { withTimeout } from "../util/timeout.ts";
import { createJailActions, type JailActions, nftTablesOf, tearDownJail } from "./actions.ts";
import { BanBook, type LiveBan } from "./bans.ts";
import { IgnoreRules } from "./ignore.ts";
import { banEvent, JailRuntime, liveBan } from "./jail.ts";
import { DaemonLog } from "./log.ts";

export interface DaemonOptions {
  /** The config file the daemon reloads from (undefined: the default path). */
  configPath?: string;
  /** journalctl program (tests use a fake one). */
  journalctl?: string;
  /** Polling interval for backend = polling, ms. */
  pollMs?: number;
  /** Epoch seconds (tests). */
  now?: () => number;
}

const SAVE_EVERY_MS = 1000;
/** Old failure windows and ban history go this often (memory stays flat under attack). */
const PURGE_EVERY_MS = 60 * 1000;
const STOP_DRAIN_MS = 15000;
/** The jails' first-line work is done this long after the start (see prepareJails). */
const PREPARE_AFTER_MS = 100;

/** The part of a jail's config its actions depend on: unchanged → the actions are kept on reload. */
function actionKey(j: JailConfig, actions: Record<string, ActionConfig>): string {
  return JSON.stringify([
    j.action,
    // a script action's module is part of it: an edited module is loaded again on reload
    j.action.map((a) => {
      const c = actions[a];
      return c?.type === "script" ? { ...c, v: scriptVersion(String(c.path)) } : (c ?? null);
    }),
    j.port,
    j.protocol,
    j.banprefix6,
  ]);
}

function jailKey(j: JailConfig, f: CompiledFilter): string {
  return JSON.stringify([j, f.spec]);
}

export class Daemon implements ControlHandler {
  readonly log: DaemonLog;
  readonly store: Store;
  readonly book: BanBook;
  /** fleet (issue 9): bans shared through Redis, when [fleet] is configured. */
  fleet: Fleet | null = null;
  private readonly jails = new Map<string, JailRuntime>();
  private readonly keys = new Map<string, { jail: string; actions: string }>();
  private server: ControlServer | null = null;
  private timers: Array<ReturnType<typeof setInterval>> = [];
  private stopping: Promise<void> | null = null;
  private startedLine: ReturnType<typeof setImmediate> | null = null;
  private startedText = "";
  private resolveDone!: () => void;
  private reloading: Promise<unknown> = Promise.resolve();
  /** Resolves once the daemon has stopped. */
  readonly done: Promise<void>;
  readonly now: () => number;

  private constructor(
    private loaded: LoadedConfig,
    private readonly opts: DaemonOptions,
  ) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    const s = loaded.config.server;
    this.log = new DaemonLog(s.logtarget, s.loglevel);
    this.store = new Store(s.database);
    this.book = new BanBook((bans) => this.expired(bans), this.now);
    this.done = new Promise((r) => {
      this.resolveDone = r;
    });
  }

  /** Starts a daemon on a loaded (validated) configuration. */
  static async start(loaded: LoadedConfig, opts: DaemonOptions = {}): Promise<Daemon> {
    const t0 = performance.now();
    const d = new Daemon(loaded, opts);
    try {
      for (const w of loaded.warnings) d.log.warn(w);
      // fleet (issue 9): reads its key now (a missing or unsafe one stops the start); connects after the jails
      const fc = loaded.config.fleet;
      if (fc)
        d.fleet = new Fleet(fc, {
          db: d.store.db,
          log: d.log,
          now: d.now,
          host: fleetHost((n) => d.jails.get(n), d.book),
        });
      d.server = await ControlServer.listen(loaded.config.server.socket, d, (m) => d.log.error(m));
      const stored = d.store.bans();
      const enabled = loaded.config.jails.filter((j) => j.enabled);
      const runtimes = await Promise.all(
        enabled.map((j) => d.createJail(j, loaded.filters.get(j.name)!, null)),
      );
      const now = d.now();
      for (const rt of runtimes) {
        d.jails.set(rt.name, rt);
        d.restore(
          rt,
          stored.filter((b) => b.jail === rt.name),
          now,
        );
        rt.start();
      }
      d.fleet?.start(); // fleet (issue 9)
      const orphans = stored.filter((b) => !d.jails.has(b.jail));
      if (orphans.length > 0) {
        const names = [...new Set(orphans.map((b) => b.jail))].join(", ");
        d.log.warn(
          `${orphans.length} stored bans of jails that are not enabled (${names}) were not restored`,
        );
      }
      d.timers.push(setInterval(() => d.savePositions(), SAVE_EVERY_MS));
      d.timers.push(setInterval(() => d.purge(), PURGE_EVERY_MS));
      // Logged at the next turn of the event loop, not within the start: the first local time
      // stamp of the process costs a few ms (the time zone is loaded), which start() need not
      // wait for. stop() writes it first if it has not been yet.
      d.startedText = `Started: ${d.jails.size} jails (${[...d.jails.keys()].join(", ")}), ${d.book.size} bans restored, in ${Math.round(performance.now() - t0)} ms (${Math.round(performance.now())} ms after exec)`;
      d.startedLine = setImmediate(() => d.logStarted());
      d.timers.push(setTimeout(() => d.prepareJails([...d.jails.values()]), PREPARE_AFTER_MS));
      return d;
    } catch (e) {
      d.server?.close();
      await d.fleet?.stop(0); // fleet (issue 9)
      d.store.close();
      d.log.close();
      throw e;
    }
  }

  private async createJail(
    j: JailConfig,
    filter: CompiledFilter,
    actions: JailActions | null,
  ): Promise<JailRuntime> {
    const ignore = await IgnoreRules.build(j, this.log);
    const acts = actions ?? createJailActions(j, this.loaded.config.actions, this.log);
    const rt = new JailRuntime(j, filter, ignore, acts, {
      log: this.log,
      store: this.store,
      book: this.book,
      now: this.now,
      ...(this.fleet ? { fleet: this.fleet.hook } : {}), // fleet (issue 9)
      ...(this.opts.journalctl ? { journalctl: this.opts.journalctl } : {}),
      ...(this.opts.pollMs !== undefined ? { pollMs: this.opts.pollMs } : {}),
    });
    this.keys.set(j.name, { jail: jailKey(j, filter), actions: actionKey(j, this.loaded.config.actions) });
    return rt;
  }

  /** Puts a jail's stored bans back: live ones in one batch per action, expired ones unbanned. */
  private restore(rt: JailRuntime, stored: ReturnType<Store["bans"]>, now: number, toActions = true): void {
    const live: LiveBan[] = [];
    const expired: LiveBan[] = [];
    for (const b of stored) {
      const l = liveBan(b);
      if (l.until <= now) expired.push(l);
      else live.push(l);
    }
    for (const l of live) {
      this.book.add(l);
      rt.core.markBanned(l.ip, l.bantime < 0 ? -1 : l.until);
    }
    if (toActions && live.length > 0) {
      rt.actions.restore(live.map((b) => ({ ...banEvent(b), restored: true })));
      this.log.info(`jail=${rt.name}: ${live.length} bans restored`);
    }
    if (expired.length > 0) rt.unban(expired, "expired while stopped");
  }

  /**
   * What the jails' first lines would build (matchers, date regexes), one jail per turn of the
   * event loop so that requests are not held up: until then a jail builds it at its first lines.
   */
  private prepareJails(list: JailRuntime[]): void {
    const rt = list.shift();
    if (!rt || this.stopping) return;
    try {
      rt.prepare();
    } catch (e) {
      this.log.error(`jail=${rt.name}: ${errorMessage(e)}`);
    }
    if (list.length > 0) setImmediate(() => this.prepareJails(list));
  }

  private logStarted(): void {
    this.startedLine = null;
    this.log.info(this.startedText);
  }

  private expired(bans: LiveBan[]): void {
    const by = new Map<string, LiveBan[]>();
    for (const b of bans) {
      const l = by.get(b.jail);
      if (l) l.push(b);
      else by.set(b.jail, [b]);
    }
    for (const [jail, list] of by) {
      const rt = this.jails.get(jail);
      if (rt) rt.unban(list, "");
      else this.store.commit({ unbans: list });
    }
  }

  private savePositions(): void {
    for (const rt of this.jails.values()) {
      try {
        rt.savePositions();
      } catch (e) {
        this.log.error(`jail=${rt.name}: cannot save positions: ${(e as Error).message}`);
      }
    }
  }

  private purge(): void {
    for (const rt of this.jails.values()) rt.purge();
    try {
      const n = this.store.purge(this.now(), this.loaded.config.server.dbpurgeage);
      if (n > 0) this.log.debug(`purged ${n} old ban history entries`);
    } catch (e) {
      this.log.error(`cannot purge the database: ${(e as Error).message}`);
    }
  }

  // ------------------------------------------------------------------ control

  status(jail?: string): StatusResult {
    if (jail !== undefined) {
      const rt = this.jails.get(jail);
      if (!rt || !rt.active) throw new Fail2tsError("usage", `no jail named ${JSON.stringify(jail)}`);
      return { jails: [rt.status()] };
    }
    return {
      jails: [...this.jails.values()].filter((r) => r.active).map((r) => r.status()),
      ...(this.fleet ? { fleet: this.fleet.status() } : {}), // fleet (issue 9)
    };
  }

  /** Manual ban; addresses in the jail's ignoreip are refused (listed as `ignored`) unless `force`. */
  ban(jail: string, ips: string[], force = false): BanResult {
    const rt = this.jails.get(jail);
    if (!rt || !rt.active) throw new Fail2tsError("usage", `no jail named ${JSON.stringify(jail)}`);
    const list = normalizeAll(ips);
    const ignored = force ? [] : list.filter((ip) => rt.ignore.has(ip));
    if (ignored.length === 0) return rt.manualBan(list);
    const skip = new Set(ignored);
    return { ...rt.manualBan(list.filter((ip) => !skip.has(ip))), ignored };
  }

  unban(ips: string[] | "all", jail?: string): UnbanResult {
    let targets = [...this.jails.values()];
    if (jail !== undefined) {
      const rt = this.jails.get(jail);
      if (!rt) throw new Fail2tsError("usage", `no jail named ${JSON.stringify(jail)}`);
      targets = [rt];
    }
    const list = ips === "all" ? null : normalizeAll(ips);
    const unbanned = new Set<string>();
    for (const rt of targets) {
      const bans: LiveBan[] = [];
      if (list === null) bans.push(...this.book.removeJail(rt.name));
      else {
        for (const ip of list) {
          const b = this.book.remove(rt.name, ip);
          if (b) bans.push(b);
        }
      }
      rt.unban(bans, "manual");
      this.fleet?.hook.unbanned(rt.name, bans); // fleet (issue 9): a manual unban is lifted fleet-wide
      for (const b of bans) unbanned.add(b.ip);
    }
    return { unbanned: [...unbanned], missing: list ? list.filter((ip) => !unbanned.has(ip)) : [] };
  }

  /** Re-reads the configuration; with `jail`, applies only that jail's changes. */
  reload(jail?: string): Promise<ReloadResult> {
    const p = this.reloading.then(() => this.doReload(jail));
    this.reloading = p.catch(() => {});
    return p;
  }

  private async doReload(only?: string): Promise<ReloadResult> {
    if (this.stopping) throw new Fail2tsError("daemon", "stopping");
    let next: LoadedConfig;
    try {
      next = loadConfig(this.opts.configPath);
      await preloadScriptActions(next.config.actions);
    } catch (e) {
      const msg = e instanceof Fail2tsError ? e.describe() : (e as Error).message;
      this.log.error(
        `reload failed, the running configuration stays: ${msg.replaceAll("\nfail2ts: ", "; ")}`,
      );
      throw e;
    }
    const prev = this.loaded;
    const s = next.config.server;
    if (only === undefined) {
      if (s.socket !== prev.config.server.socket || s.database !== prev.config.server.database) {
        this.log.warn("reload: a new socket or database path takes effect at the next start");
      }
      if (JSON.stringify(next.config.fleet ?? null) !== JSON.stringify(this.fleet?.config ?? null)) {
        this.log.warn("reload: [fleet] changes take effect at the next start"); // fleet (issue 9)
      }
      this.log.reopen(s.logtarget, s.loglevel);
      for (const w of next.warnings) this.log.warn(w);
    }
    const wanted = new Map(next.config.jails.filter((j) => j.enabled).map((j) => [j.name, j]));
    if (only !== undefined && !wanted.has(only) && !this.jails.has(only)) {
      throw new Fail2tsError("usage", `no jail named ${JSON.stringify(only)}`);
    }
    const names = only !== undefined ? [only] : [...new Set([...this.jails.keys(), ...wanted.keys()])];
    // the new config is the one jails are built from; for a single-jail reload, the others keep theirs
    this.loaded =
      only === undefined ? next : { ...prev, config: { ...prev.config, actions: next.config.actions } };
    const stored = this.store.bans();
    const now = this.now();
    const touched: string[] = [];
    for (const name of names) {
      const old = this.jails.get(name);
      const cfg = wanted.get(name);
      if (old && !cfg) {
        old.stop();
        const bans = this.book.removeJail(name);
        old.unban(bans, "jail removed");
        await drained(old.actions.close(true), STOP_DRAIN_MS).catch((e: Error) =>
          this.log.error(`jail=${name}: actions did not stop cleanly: ${e.message}`),
        );
        this.jails.delete(name);
        this.keys.delete(name);
        this.log.info(`jail=${name}: stopped (removed from the configuration)`);
        touched.push(name);
        continue;
      }
      if (!cfg) continue;
      const filter = next.filters.get(name)!;
      const key = this.keys.get(name);
      if (old && key && key.jail === jailKey(cfg, filter)) {
        old.ignore = await IgnoreRules.build(cfg, this.log);
        continue;
      }
      const keepActions =
        old && key && key.actions === actionKey(cfg, next.config.actions) ? old.actions : null;
      if (old) {
        old.stop();
        // other actions (or other ports, names...): the old ones are torn down, the new ones restored
        if (!keepActions) await drained(old.actions.close(true), STOP_DRAIN_MS).catch(() => {});
      }
      const rt = await this.createJail(cfg, filter, keepActions);
      if (old) {
        rt.failuresBase = old.failuresTotal;
        rt.bansTotal = old.bansTotal;
        for (const b of this.book.removeJail(name)) {
          if (!stored.some((x) => x.jail === name && x.ip === b.ip)) stored.push({ ...b });
        }
      }
      this.jails.set(name, rt);
      this.restore(
        rt,
        stored.filter((b) => b.jail === name),
        now,
        keepActions === null,
      );
      rt.start();
      this.log.info(`jail=${name}: ${old ? "reloaded" : "started"}`);
      touched.push(name);
    }
    this.log.info(`Reloaded${only !== undefined ? ` jail ${only}` : ""}: ${touched.length} jails changed`);
    return { jails: touched };
  }

  /**
   * `fail2ts flush [JAIL]`: lifts every ban of the jail (all jails), tears down what its actions
   * created and clears its live bans in the store (the history stays, for increments). Without a
   * jail, the nftables tables of the configuration go whole and every stored ban goes (jails no
   * longer configured included). The jails keep running; their actions start again at the next
   * ban. Local only: nothing is published to the fleet.
   */
  flush(jail?: string): Promise<FlushResult> {
    const p = this.reloading.then(() => this.doFlush(jail));
    this.reloading = p.catch(() => {});
    return p;
  }

  private async doFlush(only?: string): Promise<FlushResult> {
    if (this.stopping) throw new Fail2tsError("daemon", "stopping");
    const cfg = this.loaded.config;
    const idle = only !== undefined && !this.jails.has(only) ? cfg.jails.find((j) => j.name === only) : null;
    if (only !== undefined && !this.jails.has(only) && !idle)
      throw new Fail2tsError("usage", `no jail named ${JSON.stringify(only)}`);
    const names = only !== undefined ? [only] : [...this.jails.keys()];
    const errors: string[] = [];
    let unbanned = 0;
    const old: JailRuntime[] = [];
    for (const name of names) {
      const rt = this.jails.get(name);
      if (!rt) continue;
      rt.stop();
      unbanned += this.book.removeJail(name).length;
      errors.push(
        ...(await drained(rt.actions.teardown(), STOP_DRAIN_MS).catch((e: Error) => [
          `jail=${name}: ${e.message}`,
        ])),
      );
      old.push(rt);
    }
    if (idle) {
      // a configured jail this daemon does not run: fresh instances tear down what an earlier run left
      for (const r of await tearDownJail(idle, cfg.actions, () => ({ log: this.log }))) {
        if (r.error) errors.push(`jail=${idle.name}: ${r.action}: ${r.error}`);
      }
    }
    const tables: string[] = [];
    if (only === undefined) {
      for (const t of nftTablesOf(cfg.jails, cfg.actions)) {
        try {
          await removeNftTable(spawnExec, t);
          tables.push(`inet ${t.table}`);
        } catch (e) {
          errors.push(`nftables: table inet ${t.table}: ${errorMessage(e)}`);
        }
      }
    }
    try {
      const n = this.store.clearBans(only !== undefined ? [only] : undefined);
      unbanned = Math.max(unbanned, n);
    } catch (e) {
      errors.push(`database: ${errorMessage(e)}`);
    }
    for (const rt of old) {
      const next = await this.createJail(rt.config, rt.filter, null);
      next.failuresBase = rt.failuresTotal;
      next.bansTotal = rt.bansTotal;
      this.jails.set(rt.name, next);
      next.start();
    }
    for (const e of errors) this.log.error(`flush: ${e}`);
    this.log.info(
      `Flushed ${only !== undefined ? `jail=${only}` : `${names.length} jails`}: ${unbanned} bans lifted, what the actions created removed${tables.length ? ` (${tables.join(", ")})` : ""}`,
    );
    return { jails: only !== undefined ? [only] : names, unbanned, tables, errors };
  }

  /** Stops (idempotent): sources, positions saved, action queues drained; bans stay unless unban_on_stop. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.startedLine) {
      clearImmediate(this.startedLine);
      this.logStarted();
    }
    this.log.info("Stopping");
    await this.reloading; // a reload in progress finishes first (its waits are bounded)
    this.server?.close();
    this.server = null;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.book.stop();
    const unban = this.loaded.config.server.unban_on_stop;
    for (const rt of this.jails.values()) {
      try {
        rt.stop();
      } catch (e) {
        this.log.error(`jail=${rt.name}: ${(e as Error).message}`);
      }
    }
    await this.fleet?.stop(); // fleet (issue 9): publishes what it can (2 s at most); the rest stays queued
    await Promise.all(
      [...this.jails.values()].map(async (rt) => {
        try {
          // unban_on_stop: every live ban leaves the firewall (one batch), the store keeps it
          if (unban) rt.actions.unban([...this.book.jail(rt.name).values()].map(banEvent));
          await drained(rt.actions.close(unban), STOP_DRAIN_MS);
        } catch (e) {
          this.log.error(`jail=${rt.name}: actions did not stop cleanly: ${(e as Error).message}`);
        }
      }),
    );
    this.store.close();
    this.log.info(`Stopped${unban ? " (bans removed from the firewall, kept in the database)" : ""}`);
    this.log.close();
    this.resolveDone();
  }
}

function normalizeAll(ips: string[]): string[] {
  const out = new Set<string>();
  const bad: string[] = [];
  for (const ip of ips) {
    const n = normalizeIP(ip.trim());
    if (n) out.add(n);
    else bad.push(ip);
  }
  if (bad.length > 0) {
    throw new Fail2tsError(
      "usage",
      `not an IP address: ${bad
        .slice(0, 5)
        .map((x) => JSON.stringify(x).slice(0, 60))
        .join(", ")}`,
    );
  }
  return [...out];
}

function drained<T>(p: Promise<T>, ms: number): Promise<T> {
  return withTimeout(p, ms, () => new Error(`timed out after ${ms / 1000}s`));
}
