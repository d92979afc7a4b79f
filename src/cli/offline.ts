/**
 * `ban`, `unban` and `flush` with no daemon running (issue 7): the configuration is loaded, the
 * jail's actions are created through the registry and applied here — one batch per action for
 * every address of the command — and the database gets exactly what the daemon would have written
 * (same tables, the jail's bantime with the increment count), so that the next `fail2ts run`
 * restores the bans, or lifts those that expired meanwhile.
 *
 * The store is written before the actions run, as the daemon does: a failing action leaves the
 * ban recorded, and the next `run` applies it. `dryRun` writes nothing anywhere: the actions run
 * in their dry-run mode (programs' argv and stdin, files and requests are reported as the plan)
 * and the database is only read.
 */
import { existsSync } from "node:fs";
import { spawnExec } from "../action/exec.ts";
import { removeNftTable } from "../action/nftables.ts";
import { type ActionDeps, createAction } from "../action/registry.ts";
import { preloadScriptActions } from "../action/script.ts";
import type { Action, ActionLogger, BanEvent } from "../action/types.ts";
import { loadConfig } from "../config/load.ts";
import type { JailConfig, LoadedConfig } from "../config/schema.ts";
import { actionSpec, jailInfo, nftTablesOf, tearDownJail } from "../daemon/actions.ts";
import { IgnoreRules } from "../daemon/ignore.ts";
import { banEvent, bantimeText } from "../daemon/jail.ts";
import { DaemonLog } from "../daemon/log.ts";
import { incrementedBantime } from "../jail/increment.ts";
import type { BanResult, FlushResult, UnbanResult } from "../server/protocol.ts";
import { Store, type StoredBan } from "../store/store.ts";
import { errorMessage, Fail2tsError } from "../util/errors.ts";
import { normalizeIP } from "../util/ip.ts";

export interface DirectOptions {
  /** Ban addresses of the jail's ignoreip too. */
  force?: boolean;
  /** Change nothing: report what would run. */
  dryRun?: boolean;
  /** Warnings and errors of the actions as they happen (default: dropped; they are in the result). */
  onMessage?: (level: "warn" | "error", msg: string) => void;
}

/** One action's part in a command. */
export interface ActionOutcome {
  jail: string;
  action: string;
  ok: boolean;
  ms: number;
  error?: string;
}

interface Direct {
  /** The database written (or read, with dryRun). */
  database: string;
  actions: ActionOutcome[];
  /** dryRun: what would run, in order (`jail=sshd nftables: nft -f -`, the script…). */
  plan: string[];
}

export interface DirectBanResult extends BanResult, Direct {
  ignored: string[];
  /** Seconds of a first ban in the jail (-1 permanent); increments lengthen repeat offenders'. */
  bantime: number;
}

export interface DirectUnbanResult extends UnbanResult, Direct {
  /** Jails whose bans were lifted. */
  jails: string[];
}

export interface DirectFlushResult extends FlushResult, Direct {}

export interface OfflineBans {
  ban(configPath: string, jail: string, ips: string[], opts?: DirectOptions): Promise<DirectBanResult>;
  unban(
    configPath: string,
    ips: string[] | "all",
    jail?: string,
    opts?: DirectOptions,
  ): Promise<DirectUnbanResult>;
  flush(configPath: string, jail?: string, opts?: DirectOptions): Promise<DirectFlushResult>;
}

// ---------------------------------------------------------------------------------- addresses

/**
 * Normalised, de-duplicated addresses (order kept); a usage error naming the first bad ones.
 * IPv4-mapped IPv6 becomes IPv4, IPv6 is compressed lower case: what the daemon stores.
 */
export function parseAddresses(list: readonly string[]): string[] {
  const out = new Set<string>();
  const bad: string[] = [];
  for (const raw of list) {
    const s = raw.trim();
    if (s === "") continue;
    const n = normalizeIP(s);
    if (n) out.add(n);
    else bad.push(s);
  }
  if (bad.length > 0) {
    const shown = bad
      .slice(0, 5)
      .map((x) => JSON.stringify(x.length > 60 ? `${x.slice(0, 60)}…` : x))
      .join(", ");
    throw new Fail2tsError(
      "usage",
      `not an IP address: ${shown}${bad.length > 5 ? ` and ${bad.length - 5} more` : ""}`,
    );
  }
  return [...out];
}

/** Addresses in a text (stdin, --from-file): separated by blanks, newlines or commas; `#` comments. */
export function splitAddressList(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const hash = line.indexOf("#");
    const body = hash >= 0 ? line.slice(0, hash) : line;
    for (const w of body.split(/[\s,]+/)) if (w !== "") out.push(w);
  }
  return out;
}

// ---------------------------------------------------------------------------------- plumbing

/**
 * Collects what the actions say: the dry-run plan (their info lines: `sshd/nftables: nft -f -`
 * followed by the script it would get on stdin), warnings and errors.
 */
class CommandLog {
  readonly plan: string[] = [];
  constructor(
    private readonly dryRun: boolean,
    private readonly onMessage?: (level: "warn" | "error", msg: string) => void,
  ) {}

  for(jail: string, action: string): ActionLogger {
    const p = `${jail}/${action}: `;
    // the registry's dry-run exec reports a program's stdin, then its argv: put them in run order
    let stdin: string | null = null;
    return {
      debug: () => {},
      info: (m) => {
        if (!this.dryRun) return;
        if (m.startsWith("dry-run stdin of ")) {
          const nl = m.indexOf("\n");
          stdin = nl >= 0 ? m.slice(nl + 1).trimEnd() : "";
          return;
        }
        const text = m.startsWith("dry-run: ") ? m.slice(9) : m;
        this.plan.push(p + text + (stdin ? `\n${stdin}` : ""));
        stdin = null;
      },
      warn: (m) => this.onMessage?.("warn", p + m),
      error: (m) => this.onMessage?.("error", p + m),
    };
  }

  /** A plan line of our own (database writes, table removals). */
  note(line: string): void {
    if (this.dryRun) this.plan.push(line);
  }
}

async function load(configPath: string): Promise<LoadedConfig> {
  const loaded = loadConfig(configPath);
  await preloadScriptActions(loaded.config.actions);
  return loaded;
}

function jailOf(loaded: LoadedConfig, name: string): JailConfig {
  const j = loaded.config.jails.find((x) => x.name === name);
  if (!j) throw new Fail2tsError("usage", `no jail named ${JSON.stringify(name)}`, loaded.config.files[0]);
  return j;
}

/**
 * The store for this command. `ban` creates the database when there is none; `unban` and `flush`
 * only open an existing one (no database: nothing stored). With dryRun it is only read. Null when
 * there is nothing to read or write (`:memory:`, the daemon's own: a command cannot reach it).
 */
function openStore(path: string, opts: { dryRun: boolean; create: boolean }): Store | null {
  if (path === ":memory:") return null;
  if (!existsSync(path) && (opts.dryRun || !opts.create)) return null;
  if (!opts.dryRun) return new Store(path);
  try {
    return new Store(path, { readonly: true });
  } catch {
    return null;
  }
}

/**
 * Appends the command's lines to the daemon's log when it is a file (as the daemon would have
 * logged them: the recidive jail counts `Ban` lines). Nothing for stderr/stdout/journal targets.
 */
function daemonLog(loaded: LoadedConfig, lines: Array<["info" | "warn", string]>): void {
  const s = loaded.config.server;
  if (lines.length === 0 || ["stderr", "stdout", "journal"].includes(s.logtarget)) return;
  try {
    const log = new DaemonLog(s.logtarget, s.loglevel);
    for (const [level, msg] of lines) log[level](msg);
    log.close();
  } catch {
    // the log is a record, not a requirement: the command's own output says what was done
  }
}

/** Runs `fn` on a fresh instance of each of the jail's actions, in order; failures are collected. */
async function eachAction(
  j: JailConfig,
  loaded: LoadedConfig,
  log: CommandLog,
  dryRun: boolean,
  fn: (a: Action) => Promise<void>,
): Promise<ActionOutcome[]> {
  const out: ActionOutcome[] = [];
  for (const name of j.action) {
    const t0 = performance.now();
    const deps: ActionDeps = { log: log.for(j.name, name), dryRun };
    try {
      await fn(createAction(actionSpec(name, loaded.config.actions), jailInfo(j), deps));
      out.push({ jail: j.name, action: name, ok: true, ms: performance.now() - t0 });
    } catch (e) {
      out.push({ jail: j.name, action: name, ok: false, ms: performance.now() - t0, error: errorMessage(e) });
    }
  }
  return out;
}

function isLive(b: StoredBan, now: number): boolean {
  return b.bantime < 0 || b.time + b.bantime > now;
}

// ---------------------------------------------------------------------------------- commands

async function ban(
  configPath: string,
  jailName: string,
  ips: string[],
  opts: DirectOptions = {},
): Promise<DirectBanResult> {
  const dryRun = opts.dryRun === true;
  const loaded = await load(configPath);
  const j = jailOf(loaded, jailName);
  if (!j.enabled) {
    throw new Fail2tsError(
      "usage",
      `jail ${JSON.stringify(jailName)} is not enabled: \`fail2ts run\` would not restore a ban there (enable it first)`,
      loaded.config.files[0],
    );
  }
  const list = parseAddresses(ips);
  const log = new CommandLog(dryRun, opts.onMessage);
  let ignored: string[] = [];
  if (!opts.force) {
    const rules = await IgnoreRules.build(j, log.for(j.name, "ignoreip"));
    ignored = list.filter((ip) => rules.has(ip));
  }
  const skip = new Set(ignored);
  const database = loaded.config.server.database;
  const store = openStore(database, { dryRun, create: true });
  if (database === ":memory:")
    opts.onMessage?.(
      "warn",
      "[server] database is :memory:: the bans are not recorded, `fail2ts run` will not know them",
    );
  const now = Date.now() / 1000;
  const banned: StoredBan[] = [];
  const already: StoredBan[] = [];
  try {
    const live = new Map<string, StoredBan>();
    if (store) for (const b of store.bans()) if (b.jail === j.name && isLive(b, now)) live.set(b.ip, b);
    const inc = j.increment;
    for (const ip of list) {
      if (skip.has(ip)) continue;
      const was = live.get(ip);
      if (was) {
        already.push(was);
        continue;
      }
      const count = inc.enabled && store ? store.banCount(ip, j.name, inc.overalljails) : 0;
      banned.push({
        jail: j.name,
        ip,
        time: now,
        bantime: incrementedBantime(j.bantime, count, inc),
        count,
        failures: 0,
        matches: [],
      });
    }
    // recorded first (as the daemon does): a failing action leaves the ban for the next `run`
    if (!dryRun && banned.length > 0) store?.commit({ bans: banned });
  } finally {
    store?.close();
  }
  if (banned.length > 0)
    log.note(`database ${database}: would record ${banned.length} bans (bantime ${bantimeText(j.bantime)})`);
  // new bans, and the already recorded ones again (the firewall may have lost them: a reboot);
  // those are marked restored, so notifications (mail, webhook, command) do not repeat
  const events: BanEvent[] = [
    ...banned.map(banEvent),
    ...already.map((b) => ({ ...banEvent(b), restored: true })),
  ];
  const actions =
    events.length === 0
      ? []
      : await eachAction(j, loaded, log, dryRun, async (a) => {
          await a.start();
          await a.ban(events);
        });
  if (!dryRun) {
    daemonLog(
      loaded,
      banned.map((b) => ["info", `Ban ${b.ip} jail=${j.name} failures=0 bantime=${bantimeText(b.bantime)}`]),
    );
  }
  return {
    banned: banned.map((b) => b.ip),
    already: already.map((b) => b.ip),
    ignored,
    bantime: j.bantime,
    database,
    actions,
    plan: log.plan,
  };
}

async function unban(
  configPath: string,
  ips: string[] | "all",
  jailName?: string,
  opts: DirectOptions = {},
): Promise<DirectUnbanResult> {
  const dryRun = opts.dryRun === true;
  const loaded = await load(configPath);
  if (jailName !== undefined) jailOf(loaded, jailName);
  const list = ips === "all" ? null : parseAddresses(ips);
  const wanted = list ? new Set(list) : null;
  const log = new CommandLog(dryRun, opts.onMessage);
  const database = loaded.config.server.database;
  const store = openStore(database, { dryRun, create: false });
  // every stored ban counts, expired ones too: nobody lifted them while no daemon ran
  const byJail = new Map<string, StoredBan[]>();
  try {
    for (const b of store?.bans() ?? []) {
      if (jailName !== undefined && b.jail !== jailName) continue;
      if (wanted && !wanted.has(b.ip)) continue;
      const l = byJail.get(b.jail);
      if (l) l.push(b);
      else byJail.set(b.jail, [b]);
    }
    const rows = [...byJail.values()].flat();
    if (!dryRun && rows.length > 0) store?.commit({ unbans: rows.map((b) => ({ jail: b.jail, ip: b.ip })) });
    if (rows.length > 0) log.note(`database ${database}: would remove ${rows.length} bans`);
  } finally {
    store?.close();
  }
  const actions: ActionOutcome[] = [];
  const unbanned = new Set<string>();
  const logLines: Array<["info" | "warn", string]> = [];
  for (const [name, bans] of byJail) {
    for (const b of bans) {
      unbanned.add(b.ip);
      logLines.push(["info", `Unban ${b.ip} jail=${name} (manual)`]);
    }
    const j = loaded.config.jails.find((x) => x.name === name);
    if (!j) {
      // a jail gone from the configuration: its actions cannot be built; `run` would not restore it
      opts.onMessage?.(
        "warn",
        `jail ${name} is not in the configuration: ${bans.length} bans removed from the database only`,
      );
      continue;
    }
    const events = bans.map(banEvent);
    actions.push(
      ...(await eachAction(j, loaded, log, dryRun, async (a) => {
        await a.start();
        await a.unban(events);
      })),
    );
  }
  if (!dryRun) daemonLog(loaded, logLines);
  return {
    unbanned: [...unbanned],
    missing: list ? list.filter((ip) => !unbanned.has(ip)) : [],
    jails: [...byJail.keys()],
    database,
    actions,
    plan: log.plan,
  };
}

async function flush(
  configPath: string,
  jailName?: string,
  opts: DirectOptions = {},
): Promise<DirectFlushResult> {
  const dryRun = opts.dryRun === true;
  const loaded = await load(configPath);
  const cfg = loaded.config;
  const jails = jailName !== undefined ? [jailOf(loaded, jailName)] : cfg.jails.filter((j) => j.enabled);
  const log = new CommandLog(dryRun, opts.onMessage);
  const actions: ActionOutcome[] = [];
  const errors: string[] = [];
  for (const j of jails) {
    for (const r of await tearDownJail(j, cfg.actions, (a) => ({ log: log.for(j.name, a), dryRun }))) {
      actions.push({
        jail: j.name,
        action: r.action,
        ok: r.error === undefined,
        ms: r.ms,
        ...(r.error !== undefined ? { error: r.error } : {}),
      });
      if (r.error !== undefined) errors.push(`jail=${j.name}: ${r.action}: ${r.error}`);
    }
  }
  const tables: string[] = [];
  if (jailName === undefined) {
    for (const t of nftTablesOf(cfg.jails, cfg.actions)) {
      const exec = dryRun
        ? async (argv: string[], o?: { stdin?: string | Uint8Array }) => {
            const stdin = typeof o?.stdin === "string" ? `\n${o.stdin.trimEnd()}` : "";
            log.note(`table inet ${t.table}: ${argv.join(" ")}${stdin}`);
            return { code: 0, stdout: "", stderr: "" };
          }
        : spawnExec;
      try {
        await removeNftTable(exec, t);
        tables.push(`inet ${t.table}`);
      } catch (e) {
        errors.push(`nftables: table inet ${t.table}: ${errorMessage(e)}`);
      }
    }
  }
  const database = cfg.server.database;
  let unbanned = 0;
  const store = openStore(database, { dryRun, create: false });
  try {
    if (store) {
      const names = jailName !== undefined ? new Set([jailName]) : null;
      const rows = store.bans().filter((b) => names === null || names.has(b.jail));
      unbanned = rows.length;
      if (!dryRun) store.clearBans(jailName !== undefined ? [jailName] : undefined);
      if (rows.length > 0) log.note(`database ${database}: would remove ${rows.length} bans (history kept)`);
    }
  } catch (e) {
    errors.push(`database: ${errorMessage(e)}`);
  } finally {
    store?.close();
  }
  if (!dryRun) {
    daemonLog(loaded, [
      [
        "info",
        `Flushed ${jailName !== undefined ? `jail=${jailName}` : `${jails.length} jails`} (no daemon running): ${unbanned} bans lifted, what the actions created removed${tables.length ? ` (${tables.join(", ")})` : ""}`,
      ],
    ]);
  }
  return {
    jails: jails.map((j) => j.name),
    unbanned,
    tables,
    errors,
    database,
    actions,
    plan: log.plan,
  };
}

/** The implementation client.ts uses when no daemon answers (tests may swap it: setOfflineBans). */
export const offlineBans: OfflineBans = { ban, unban, flush };
