/**
 * A whole Fail2ban configuration directory (/etc/fail2ban) as the daemon's LoadedConfig: the
 * enabled jails with their filters compiled and their actions checked, server settings from
 * fail2ban.conf. Every problem is collected and thrown at once (ConfigError), before anything runs.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createAction, validateActionSpec } from "../action/registry.ts";
import { ConfigError, type ConfigIssue } from "../config/load.ts";
import {
  type ActionConfig,
  type Config,
  DEFAULT_SERVER,
  type LoadedConfig,
  type LogLevel,
  type ServerConfig,
} from "../config/schema.ts";
import { actionSpec, jailInfo } from "../daemon/actions.ts";
import { type CompiledFilter, compileFilter } from "../filter/index.ts";
import { Fail2tsError } from "../util/errors.ts";
import { configFilesFor } from "./definit.ts";
import { IniCache, IniNoOption, IniNoSection, IniSet } from "./ini.ts";
import { type F2bJails, readFail2banJails } from "./jail.ts";
import { str2seconds } from "./seconds.ts";
import { flat } from "./text.ts";

/** Whether `path` is a Fail2ban configuration directory (jail.conf or jail.local, no fail2ts.toml). */
export function isFail2banDir(path: string): boolean {
  try {
    if (!statSync(path).isDirectory()) return false;
  } catch {
    return false;
  }
  if (existsSync(join(path, "fail2ts.toml"))) return false;
  return existsSync(join(path, "jail.conf")) || existsSync(join(path, "jail.local"));
}

const STOCK_SOCKETS = ["/var/run/fail2ban/fail2ban.sock", "/run/fail2ban/fail2ban.sock"];
const STOCK_PIDFILES = ["/var/run/fail2ban/fail2ban.pid", "/run/fail2ban/fail2ban.pid"];
const STOCK_DB = "/var/lib/fail2ban/fail2ban.sqlite3";

const LEVELS: Record<string, LogLevel> = {
  critical: "error",
  error: "error",
  warning: "warning",
  warn: "warning",
  notice: "info",
  info: "info",
  debug: "debug",
  heavydebug: "debug",
  traceddebug: "debug",
};

/**
 * fail2ban.conf (+ fail2ban.d/, fail2ban.local) [Definition] → fail2ts's [server]. Fail2ban's own
 * socket, pid file and database paths are not taken over (fail2ts's protocol and database differ):
 * the stock ones mean fail2ts's defaults, a changed database path means fail2ts.db beside it.
 */
export function readFail2banServer(
  dir: string,
  cache: IniCache = new IniCache(),
  issues: ConfigIssue[] = [],
): ServerConfig {
  const s: ServerConfig = { ...DEFAULT_SERVER };
  const files = configFilesFor(dir, "fail2ban");
  if (files.length === 0) return s;
  const cfg = new IniSet(cache);
  cfg.read(files);
  const get = (k: string): { v: string; where: string } | undefined => {
    try {
      const t = cfg.get("Definition", k);
      return { v: flat(t).trim(), where: t[0]?.w ?? files[0]! };
    } catch (e) {
      if (e instanceof IniNoOption || e instanceof IniNoSection) return undefined;
      throw e;
    }
  };
  const lvl = get("loglevel");
  if (lvl) {
    const n = Number(lvl.v);
    const l = Number.isFinite(n)
      ? n >= 40
        ? "error"
        : n >= 30
          ? "warning"
          : n >= 20
            ? "info"
            : "debug"
      : LEVELS[lvl.v.toLowerCase()];
    if (l) s.loglevel = l as LogLevel;
    else
      issues.push({
        where: lvl.where,
        key: "loglevel",
        message: `unknown log level ${JSON.stringify(lvl.v)}`,
      });
  }
  const lt = get("logtarget");
  if (lt) {
    const u = lt.v.toUpperCase();
    if (u === "STDOUT") s.logtarget = "stdout";
    else if (u === "STDERR") s.logtarget = "stderr";
    else if (u === "SYSLOG" || u === "SYSTEMD-JOURNAL") s.logtarget = "journal";
    else if (lt.v) s.logtarget = resolve(lt.v.split(/\s+/)[0]!);
  }
  const sock = get("socket");
  if (sock?.v && !STOCK_SOCKETS.includes(sock.v)) s.socket = resolve(sock.v);
  const pid = get("pidfile");
  if (pid?.v && !STOCK_PIDFILES.includes(pid.v)) s.pidfile = resolve(pid.v);
  const db = get("dbfile");
  if (db) {
    if (db.v === ":memory:" || db.v.toLowerCase() === "none" || db.v === "") s.database = ":memory:";
    else if (db.v !== STOCK_DB) s.database = join(dirname(resolve(db.v)), "fail2ts.db");
  }
  const age = get("dbpurgeage");
  if (age) {
    const t = str2seconds(age.v);
    if (t !== null && t >= 0) s.dbpurgeage = Math.round(t);
    else
      issues.push({
        where: age.where,
        key: "dbpurgeage",
        message: `expected a time, got ${JSON.stringify(age.v)}`,
      });
  }
  return s;
}

/** The fail2ts [actions.X] tables of the jails' actions. */
export function actionsOf(jails: F2bJails): Record<string, ActionConfig> {
  const out: Record<string, ActionConfig> = {};
  for (const j of jails.jails) {
    for (const a of j.actions) out[a.key] = { name: a.key, type: a.type, ...a.options };
  }
  return out;
}

const QUIET = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Loads a Fail2ban configuration directory as the daemon's configuration. Throws a ConfigError
 * listing every problem of the enabled jails.
 */
export function loadFail2banConfig(dir0: string): LoadedConfig {
  const dir = resolve(dir0);
  const cache = new IniCache();
  const issues: ConfigIssue[] = [];
  let jails: F2bJails;
  try {
    jails = readFail2banJails(dir, cache);
  } catch (e) {
    if (e instanceof Fail2tsError)
      throw new ConfigError([{ where: e.where ?? dir, key: "jail", message: e.message }]);
    throw e;
  }
  issues.push(...jails.issues);
  const server = readFail2banServer(dir, cache, issues);
  const actions = actionsOf(jails);
  const filters = new Map<string, CompiledFilter>();
  for (const j of jails.jails) {
    for (const a of j.actions) {
      const spec = actionSpec(a.key, actions);
      const errs = validateActionSpec(spec);
      if (errs.length) {
        issues.push({
          where: a.file,
          key: `jails.${j.name}.action`,
          message: `${a.actname}: ${errs.join("; ")}`,
        });
        continue;
      }
      try {
        createAction(spec, jailInfo(j.config), { log: QUIET });
      } catch (e) {
        issues.push({
          where: a.file,
          key: `jails.${j.name}.action`,
          message: e instanceof Error ? e.message : String(e),
        });
      }
    }
    try {
      filters.set(j.name, compileFilter(j.filter.spec, { useDns: j.config.usedns }));
    } catch (e) {
      if (!(e instanceof Fail2tsError)) throw e;
      issues.push({ where: e.where ?? j.filter.file, key: `jails.${j.name}.filter`, message: e.message });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const warnings = [...jails.warnings];
  if (jails.jails.length === 0) warnings.push(`${dir}: no enabled jail`);
  const config: Config = { files: jails.files, jails: jails.jails.map((j) => j.config), actions, server };
  return { config, filters, warnings };
}
