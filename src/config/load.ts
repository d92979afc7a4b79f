/**
 * Loading the daemon's configuration: `fail2ts.toml` plus `fail2ts.d/*.toml` (name order), merged
 * key by key, then validated as a whole before anything is touched. Every problem is reported as
 * `file:line:col: key: what is wrong`; relative paths are relative to the main file's directory.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { JAIL_NAME } from "../action/addr.ts";
import { BUILTIN_ACTIONS, createAction, validateActionSpec } from "../action/registry.ts";
import { actionSpec, jailInfo } from "../daemon/actions.ts";
import { isFail2banDir, loadFail2banConfig, readFail2banServer } from "../fail2ban/config.ts";
import {
  type CompiledFilter,
  compileFilter,
  isFilterPath,
  loadFilter,
  parseFilterRef,
} from "../filter/index.ts";
import { checkFleet, effectiveFleet } from "../fleet/config.ts";
import { type IncrementPolicy, NO_INCREMENT } from "../jail/increment.ts";
import { parseDuration } from "../util/duration.ts";
import { Fail2tsError } from "../util/errors.ts";
import { isDnsName, parseCidr } from "../util/ip.ts";
import {
  type ActionConfig,
  type Backend,
  type Config,
  DEFAULT_CONFIG_PATH,
  DEFAULT_SERVER,
  type JailConfig,
  type LoadedConfig,
  type LogLevel,
  type ServerConfig,
  type UseDns,
} from "./schema.ts";
import { parseToml, type TomlTable, whereOf } from "./toml.ts";

/** One problem found in the configuration. */
export interface ConfigIssue {
  where: string;
  key: string;
  message: string;
}

/** All the problems of a configuration; prints one `file:line:col: key: message` line each. */
export class ConfigError extends Fail2tsError {
  constructor(readonly issues: ConfigIssue[]) {
    const first = issues[0]!;
    super("config", `${first.key}: ${first.message}`, first.where);
    this.name = "ConfigError";
  }

  override describe(): string {
    return this.issues.map((i) => `${i.where}: ${i.key}: ${i.message}`).join("\nfail2ts: ");
  }
}

interface SourceFile {
  file: string;
  text: string;
}

/** Merged TOML with, for each key path, the file that set it last. */
interface Merged {
  table: TomlTable;
  sources: SourceFile[];
  origin: Map<string, number>;
}

const SEP = "\u0000";

function isTable(v: unknown): v is TomlTable {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function mergeInto(
  dst: TomlTable,
  src: TomlTable,
  path: string[],
  origin: Map<string, number>,
  idx: number,
): void {
  for (const [k, v] of Object.entries(src)) {
    const p = [...path, k];
    origin.set(p.join(SEP), idx);
    if (isTable(v) && isTable(dst[k])) mergeInto(dst[k] as TomlTable, v, p, origin, idx);
    else if (isTable(v)) {
      const t: TomlTable = {};
      dst[k] = t;
      mergeInto(t, v, p, origin, idx);
    } else dst[k] = v;
  }
}

/** The files of a configuration: the main file, then `<name>.d/*.toml` beside it in name order. */
export function configFiles(path: string): string[] {
  let main = resolve(path);
  if (existsSync(main) && statSync(main).isDirectory()) main = join(main, "fail2ts.toml");
  if (!existsSync(main)) throw new Fail2tsError("config", "no such configuration file", main);
  const dropDir = join(dirname(main), `${basename(main).replace(/\.toml$/, "")}.d`);
  const extra =
    existsSync(dropDir) && statSync(dropDir).isDirectory()
      ? readdirSync(dropDir)
          .filter((n) => n.endsWith(".toml") && !n.startsWith("."))
          .sort()
          .map((n) => join(dropDir, n))
      : [];
  return [main, ...extra];
}

function readMerged(files: string[]): Merged {
  const merged: Merged = { table: {}, sources: [], origin: new Map() };
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new Fail2tsError("config", `cannot read: ${(e as Error).message}`, file);
    }
    const t = parseToml(text, file);
    merged.sources.push({ file, text });
    mergeInto(merged.table, t, [], merged.origin, merged.sources.length - 1);
  }
  return merged;
}

/** Reads only `[server].socket` (fast, no validation of the rest): what client commands need. */
export function readSocketPath(path?: string): string {
  if (path !== undefined && isFail2banDir(path)) return readFail2banServer(path).socket;
  const files = configFiles(path ?? DEFAULT_CONFIG_PATH);
  const m = readMerged(files);
  const server = m.table.server;
  const base = dirname(files[0]!);
  if (isTable(server) && typeof server.socket === "string" && server.socket !== "")
    return resolve(base, server.socket);
  return DEFAULT_SERVER.socket;
}

const JAIL_KEYS = new Set([
  "enabled",
  "filter",
  "logpath",
  "logencoding",
  "backend",
  "journalmatch",
  "port",
  "protocol",
  "banprefix6",
  "action",
  "banaction",
  "maxretry",
  "findtime",
  "bantime",
  "ignoreip",
  "ignoreself",
  "ignorecommand",
  "usedns",
  "increment",
]);
const INCREMENT_KEYS = new Set(["enabled", "factor", "multipliers", "maxtime", "rndtime", "overalljails"]);
const SERVER_KEYS = new Set([
  "socket",
  "database",
  "logtarget",
  "loglevel",
  "dbpurgeage",
  "unban_on_stop",
  "pidfile",
]);
const BACKENDS: Record<string, Backend> = {
  auto: "auto",
  inotify: "inotify",
  pyinotify: "inotify",
  polling: "polling",
  journal: "journal",
  systemd: "journal",
};
const LOGLEVELS: Record<string, LogLevel> = {
  debug: "debug",
  info: "info",
  notice: "info",
  warning: "warning",
  warn: "warning",
  error: "error",
  critical: "error",
};
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** Validation state: collects issues, locates keys in the file that set them. */
class Checker {
  readonly issues: ConfigIssue[] = [];
  readonly warnings: string[] = [];

  constructor(private readonly m: Merged) {}

  where(path: readonly string[], item?: string): string {
    for (let n = path.length; n > 0; n--) {
      const idx = this.m.origin.get(path.slice(0, n).join(SEP));
      if (idx !== undefined) {
        const s = this.m.sources[idx]!;
        return whereOf(s.text, s.file, path, item);
      }
    }
    return `${this.m.sources[0]!.file}:1:1`;
  }

  err(path: readonly string[], message: string, item?: string): void {
    this.issues.push({ where: this.where(path, item), key: path.join("."), message });
  }

  warn(path: readonly string[], message: string): void {
    this.warnings.push(`${this.where(path)}: ${path.join(".")}: ${message}`);
  }

  unknownKeys(table: TomlTable, path: string[], known: Set<string>, hint = ""): void {
    for (const k of Object.keys(table)) {
      if (!known.has(k)) {
        const near = closest(k, known);
        this.err([...path, k], `unknown key${near ? ` (did you mean ${JSON.stringify(near)}?)` : hint}`);
      }
    }
  }
}

function closest(k: string, known: Set<string>): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const c of known) {
    const d = editDistance(k.toLowerCase(), c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date";
  if (isTable(v)) return "a table";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

/** A jail option: the jail's own value, else [defaults]', with the path it came from. */
interface Opt {
  value: unknown;
  path: string[];
}

function strList(c: Checker, o: Opt, splitString: boolean): string[] | null {
  const v = o.value;
  if (typeof v === "string") return splitString ? v.split(/[\s,]+/).filter(Boolean) : [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  c.err(
    o.path,
    `expected ${splitString ? "an array of strings" : "a string or an array of strings"}, got ${typeName(v)}`,
  );
  return null;
}

function durationOf(c: Checker, o: Opt, allowPermanent: boolean): number | null {
  const d = parseDuration(o.value);
  if (d === null || (!allowPermanent && d < 0)) {
    c.err(
      o.path,
      `expected a duration (600, "90s", "10m", "1h30m", "1d"${allowPermanent ? ', -1 or "forever"' : ""}), got ${typeName(o.value)}`,
    );
    return null;
  }
  return d;
}

function boolOf(c: Checker, o: Opt): boolean | null {
  if (typeof o.value === "boolean") return o.value;
  c.err(o.path, `expected true or false, got ${typeName(o.value)}`);
  return null;
}

function intOf(c: Checker, o: Opt, min: number, max = Number.MAX_SAFE_INTEGER): number | null {
  const v = typeof o.value === "string" && /^\d+$/.test(o.value) ? Number(o.value) : o.value;
  if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
  c.err(
    o.path,
    `expected a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : " up"}, got ${typeName(o.value)}`,
  );
  return null;
}

function strOf(c: Checker, o: Opt): string | null {
  if (typeof o.value === "string") return o.value;
  c.err(o.path, `expected a string, got ${typeName(o.value)}`);
  return null;
}

function enumOf<T>(c: Checker, o: Opt, values: Record<string, T>): T | null {
  if (typeof o.value === "string" && Object.hasOwn(values, o.value.toLowerCase()))
    return values[o.value.toLowerCase()]!;
  c.err(o.path, `expected one of ${[...new Set(Object.keys(values))].join(", ")}, got ${typeName(o.value)}`);
  return null;
}

function checkIncrement(c: Checker, defaults: unknown, own: unknown, jailPath: string[]): IncrementPolicy {
  const p: IncrementPolicy = { ...NO_INCREMENT, multipliers: [] };
  const layers: Array<[unknown, string[]]> = [
    [defaults, ["defaults", "increment"]],
    [own, [...jailPath, "increment"]],
  ];
  for (const [t, path] of layers) {
    if (t === undefined) continue;
    if (!isTable(t)) {
      c.err(
        path,
        `expected a table ([${path.join(".")}] with enabled, factor, multipliers...), got ${typeName(t)}`,
      );
      continue;
    }
    for (const [k, v] of Object.entries(t)) {
      const o = { value: v, path: [...path, k] };
      if (k === "formula") {
        c.err(o.path, "a formula is not supported: use factor (bantime × factor × 2^n) or multipliers");
        continue;
      }
      if (!INCREMENT_KEYS.has(k)) {
        c.unknownKeys({ [k]: v }, path, INCREMENT_KEYS);
        continue;
      }
      if (k === "enabled" || k === "overalljails") {
        const b = boolOf(c, o);
        if (b !== null) p[k] = b;
      } else if (k === "factor") {
        if (typeof v === "number" && v > 0) p.factor = v;
        else c.err(o.path, `expected a number above 0, got ${typeName(v)}`);
      } else if (k === "multipliers") {
        const list =
          typeof v === "string"
            ? v
                .trim()
                .split(/[\s,]+/)
                .map(Number)
            : Array.isArray(v)
              ? v
              : null;
        if (
          list &&
          list.length > 0 &&
          list.every((x) => typeof x === "number" && Number.isFinite(x) && x > 0)
        ) {
          p.multipliers = list as number[];
        } else
          c.err(o.path, `expected a list of numbers above 0 ([1, 2, 4, 8] or "1 2 4 8"), got ${typeName(v)}`);
      } else if (k === "maxtime" || k === "rndtime") {
        const d = durationOf(c, o, false);
        if (d !== null) p[k] = d;
      }
    }
  }
  return p;
}

function absPath(base: string, p: string): string {
  return isAbsolute(p) ? p : resolve(base, p);
}

function checkIgnoreIp(c: Checker, o: Opt, base: string): string[] {
  const list = strList(c, o, true);
  if (!list) return [];
  const out: string[] = [];
  for (const e of list) {
    if (e.startsWith("file:")) {
      const p = absPath(base, e.slice(5));
      if (!existsSync(p)) c.warn(o.path, `${p} does not exist (yet): it is read when it appears`);
      out.push(`file:${p}`);
    } else if (parseCidr(e)) out.push(e);
    else if (isDnsName(e)) out.push(e.toLowerCase());
    else c.err(o.path, `${JSON.stringify(e)} is not an IP address, CIDR, DNS name or file:PATH`, e);
  }
  return out;
}

function checkJail(
  c: Checker,
  name: string,
  own: TomlTable,
  defaults: TomlTable,
  actions: Record<string, ActionConfig>,
  base: string,
  filters: Map<string, CompiledFilter>,
  cache: Map<string, CompiledFilter>,
): JailConfig | null {
  const jp = ["jails", name];
  if (!JAIL_NAME.test(name) || name.length > 32)
    c.err(jp, "a jail name is letters, digits, '_' and '-' (at most 32)");
  c.unknownKeys(own, jp, JAIL_KEYS);
  const opt = (k: string): Opt | undefined =>
    Object.hasOwn(own, k)
      ? { value: own[k], path: [...jp, k] }
      : Object.hasOwn(defaults, k)
        ? { value: defaults[k], path: ["defaults", k] }
        : undefined;
  const n0 = c.issues.length;
  const get = <T>(k: string, fn: (o: Opt) => T | null, dflt: T): T => {
    const o = opt(k);
    if (!o) return dflt;
    const v = fn(o);
    return v === null ? dflt : v;
  };
  const enabled = get("enabled", (o) => boolOf(c, o), true);
  let filter = get("filter", (o) => strOf(c, o), name);
  const backend = get("backend", (o) => enumOf(c, o, BACKENDS), "auto" as Backend);
  const logpath = get("logpath", (o) => strList(c, o, false), [] as string[])
    .flatMap((p) => p.split("\n"))
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => absPath(base, p));
  const logencoding = get(
    "logencoding",
    (o) => {
      const s = strOf(c, o);
      if (s === null) return null;
      const enc = s.toLowerCase() === "auto" ? "utf-8" : s;
      try {
        new TextDecoder(enc as "utf-8");
        return enc;
      } catch {
        c.err(o.path, `unknown encoding ${JSON.stringify(s)} (utf-8, latin1, ...)`);
        return null;
      }
    },
    "utf-8",
  );
  let journalmatch = get("journalmatch", (o) => strList(c, o, false), null as string[] | null);
  const port = get(
    "port",
    (o) => (typeof o.value === "number" ? String(o.value) : strOf(c, o)),
    undefined as string | undefined,
  );
  const protocol = get("protocol", (o) => strOf(c, o), "tcp");
  const banprefix6 = get("banprefix6", (o) => intOf(c, o, 8, 128), undefined as number | undefined);
  const banaction = get("banaction", (o) => strOf(c, o), "nftables");
  const action = get("action", (o) => strList(c, o, false), [banaction]);
  const maxretry = get("maxretry", (o) => intOf(c, o, 1), 5);
  const findtime = get("findtime", (o) => durationOf(c, o, false), 600);
  const bantime = get("bantime", (o) => durationOf(c, o, true), 600);
  const ignoreipOpt = opt("ignoreip");
  const ignoreip = ignoreipOpt ? checkIgnoreIp(c, ignoreipOpt, base) : [];
  const ignoreself = get("ignoreself", (o) => boolOf(c, o), true);
  const ignorecommand = get(
    "ignorecommand",
    (o) => {
      if (typeof o.value === "string") {
        c.err(o.path, 'expected an argv array (["/usr/local/bin/is-friend", "<ip>"]): no shell is used');
        return null;
      }
      const l = strList(c, o, false);
      if (l && l.length === 0) return l;
      if (l && !isAbsolute(l[0]!)) c.err(o.path, "the program must be an absolute path");
      return l;
    },
    [] as string[],
  );
  const usedns = get(
    "usedns",
    (o) => enumOf<UseDns>(c, o, { yes: "yes", warn: "warn", no: "no", raw: "raw" }),
    "warn",
  );
  const increment = checkIncrement(c, defaults.increment, own.increment, jp);

  for (const a of action) {
    const o = opt("action")!;
    if (!Object.hasOwn(actions, a) && !BUILTIN_ACTIONS.includes(a)) {
      c.err(
        o?.path ?? [...jp, "action"],
        `unknown action ${JSON.stringify(a)} (built-in: ${BUILTIN_ACTIONS.join(", ")}; or define [actions.${a}])`,
        a,
      );
    }
  }
  if (c.issues.length === n0) {
    // building the action instances checks what only they know (names, ports per backend)
    const j = mk();
    for (const a of action) {
      try {
        createAction(actionSpec(a, actions), jailInfo(j), {
          log: { debug() {}, info() {}, warn() {}, error() {} },
        });
      } catch (e) {
        c.err(opt("action")?.path ?? [...jp, "action"], e instanceof Fail2tsError ? e.message : String(e), a);
      }
    }
  }
  if (!enabled) return c.issues.length > n0 ? null : mk();
  if (backend !== "journal" && logpath.length === 0) {
    c.err(opt("logpath")?.path ?? jp, 'no logpath: give the log files to follow, or backend = "journal"');
  }

  // The filter: compiled now so that a bad regex fails the load, reused by the daemon.
  const fo = opt("filter") ?? { value: filter, path: [...jp, "filter"] };
  try {
    const ref = parseFilterRef(filter);
    if (isFilterPath(ref.name) && !isAbsolute(ref.name)) {
      filter = absPath(base, ref.name) + filter.slice(filter.indexOf(ref.name) + ref.name.length);
    }
    const key = `${filter}\u0000${backend}\u0000${usedns}`;
    let compiled = cache.get(key);
    if (!compiled) {
      let spec = loadFilter(filter);
      if (backend === "journal" && "logtype" in spec.declaredOptions)
        spec = loadFilter(filter, { logtype: "journal" });
      compiled = compileFilter(spec, { useDns: usedns });
      cache.set(key, compiled);
    }
    filters.set(name, compiled);
    if (backend === "journal" && journalmatch === null) {
      if (compiled.spec.journalmatch) journalmatch = [compiled.spec.journalmatch];
      else
        c.err(
          opt("journalmatch")?.path ?? jp,
          `backend = "journal" needs a journalmatch (the filter ${filter} has none)`,
        );
    }
  } catch (e) {
    const msg = e instanceof Fail2tsError ? e.describe() : (e as Error).message;
    c.err(fo.path, msg, typeof fo.value === "string" ? fo.value : undefined);
  }
  if (c.issues.length > n0) return null;
  return mk();

  function mk(): JailConfig {
    return {
      name,
      enabled,
      filter,
      logpath,
      logencoding,
      backend,
      journalmatch: (journalmatch ?? []).flatMap((m) => m.trim().split(/\s+/)).filter(Boolean),
      ...(port !== undefined ? { port } : {}),
      protocol,
      ...(banprefix6 !== undefined ? { banprefix6 } : {}),
      action,
      banaction,
      maxretry,
      findtime,
      bantime,
      ignoreip,
      ignoreself,
      ignorecommand,
      usedns,
      increment,
    };
  }
}

function checkServer(c: Checker, t: unknown, base: string): ServerConfig {
  const s: ServerConfig = { ...DEFAULT_SERVER };
  if (t === undefined) return s;
  if (!isTable(t)) {
    c.err(["server"], `expected a table, got ${typeName(t)}`);
    return s;
  }
  c.unknownKeys(t, ["server"], SERVER_KEYS);
  const o = (k: string): Opt => ({ value: t[k], path: ["server", k] });
  const path = (k: "socket" | "database" | "pidfile") => {
    if (t[k] === undefined) return;
    const v = strOf(c, o(k));
    if (v === "") c.err(["server", k], "must not be empty");
    else if (v !== null) s[k] = v === ":memory:" ? v : absPath(base, v);
  };
  path("socket");
  path("database");
  path("pidfile");
  if (t.logtarget !== undefined) {
    const v = strOf(c, o("logtarget"));
    if (v !== null) {
      const special = ["stderr", "stdout", "journal", "console", "syslog"];
      s.logtarget = special.includes(v.toLowerCase())
        ? v.toLowerCase() === "console"
          ? "stderr"
          : v.toLowerCase() === "syslog"
            ? "journal"
            : v.toLowerCase()
        : absPath(base, v);
    }
  }
  if (t.loglevel !== undefined) {
    const v = enumOf(c, o("loglevel"), LOGLEVELS);
    if (v !== null) s.loglevel = v;
  }
  if (t.dbpurgeage !== undefined) {
    const v = durationOf(c, o("dbpurgeage"), false);
    if (v !== null) s.dbpurgeage = v;
  }
  if (t.unban_on_stop !== undefined) {
    const v = boolOf(c, o("unban_on_stop"));
    if (v !== null) s.unban_on_stop = v;
  }
  return s;
}

function checkActions(c: Checker, t: unknown, base: string): Record<string, ActionConfig> {
  const out: Record<string, ActionConfig> = {};
  if (t === undefined) return out;
  if (!isTable(t)) {
    c.err(["actions"], `expected tables [actions.NAME], got ${typeName(t)}`);
    return out;
  }
  for (const [name, spec] of Object.entries(t)) {
    const p = ["actions", name];
    if (!isTable(spec)) {
      c.err(p, `expected a table [actions.${name}], got ${typeName(spec)}`);
      continue;
    }
    if (!NAME.test(name)) c.err(p, "an action name is letters, digits, '_', '-', '.' (at most 64)");
    if (typeof spec.type !== "string") {
      c.err(
        spec.type === undefined ? p : [...p, "type"],
        'needs a type (type = "command", "nftables", "webhook", ...)',
      );
      continue;
    }
    // A script action's path is relative to the config file, like every other path in it.
    const resolved =
      spec.type === "script" && typeof spec.path === "string" && !isAbsolute(spec.path)
        ? { ...spec, path: join(base, spec.path) }
        : spec;
    const a = { ...resolved, name } as ActionConfig;
    const { type, ...options } = resolved;
    for (const msg of validateActionSpec({ name, type: type as string, options })) {
      // Messages name their key first ("ban: ..."): point at that key when there is one.
      const m = /^([A-Za-z_][\w.-]*): (.*)$/s.exec(msg);
      if (m && Object.hasOwn(spec, m[1]!)) c.err([...p, m[1]!], m[2]!);
      else c.err(p, msg);
    }
    out[name] = a;
  }
  return out;
}

/**
 * Loads and validates the configuration at `path` (default /etc/fail2ts/fail2ts.toml). Throws a
 * ConfigError listing every problem; returns the effective config and the compiled filters.
 */
export function loadConfig(path?: string): LoadedConfig {
  // a Fail2ban configuration directory (/etc/fail2ban) is read as Fail2ban reads it
  if (path !== undefined && isFail2banDir(path)) return loadFail2banConfig(path);
  const files = configFiles(path ?? DEFAULT_CONFIG_PATH);
  const m = readMerged(files);
  const c = new Checker(m);
  const base = dirname(files[0]!);
  c.unknownKeys(m.table, [], new Set(["defaults", "jails", "actions", "server", "fleet"]));
  const defaults = isTable(m.table.defaults) ? m.table.defaults : {};
  if (m.table.defaults !== undefined && !isTable(m.table.defaults)) c.err(["defaults"], "expected a table");
  c.unknownKeys(defaults, ["defaults"], JAIL_KEYS);
  const server = checkServer(c, m.table.server, base);
  const actions = checkActions(c, m.table.actions, base);
  const jails: JailConfig[] = [];
  const filters = new Map<string, CompiledFilter>();
  const cache = new Map<string, CompiledFilter>();
  const jt = m.table.jails;
  if (jt !== undefined && !isTable(jt)) c.err(["jails"], "expected tables [jails.NAME]");
  else if (jt) {
    for (const [name, own] of Object.entries(jt)) {
      if (!isTable(own)) {
        c.err(["jails", name], `expected a table [jails.${name}], got ${typeName(own)}`);
        continue;
      }
      const j = checkJail(c, name, own, defaults, actions, base, filters, cache);
      if (j) jails.push(j);
    }
  }
  // fleet (issue 9): [fleet] is checked in src/fleet/config.ts
  const fleet = checkFleet(
    m.table.fleet,
    base,
    new Map(jails.map((j) => [j.name, j])),
    (k, msg, item) => c.err(["fleet", ...k], msg, item),
    (k, msg) => c.warn(["fleet", ...k], msg),
  );
  if (c.issues.length > 0) throw new ConfigError(c.issues);
  const config: Config = { files, jails, actions, server, ...(fleet ? { fleet } : {}) };
  if (!jails.some((j) => j.enabled)) c.warnings.push(`${files[0]}: no enabled jail`);
  return { config, filters, warnings: c.warnings };
}

/** Log files of enabled jails that do not exist (yet): worth a warning in `check`. */
export function missingLogs(config: Config): string[] {
  const out: string[] = [];
  for (const j of config.jails) {
    if (!j.enabled || j.backend === "journal") continue;
    for (const p of j.logpath) {
      if (!/[*?[]/.test(p) && !existsSync(p))
        out.push(`jails.${j.name}.logpath: ${p} does not exist (yet): the jail waits for it`);
    }
  }
  return out;
}

/** The effective configuration as a plain object (for `check`, `check -o json`). */
export function effectiveConfig(config: Config): Record<string, unknown> {
  const jails: Record<string, unknown> = {};
  for (const j of config.jails) {
    const { name, increment, ...rest } = j;
    const o: Record<string, unknown> = { ...rest };
    if (increment.enabled) o.increment = { ...increment };
    jails[name] = o;
  }
  const actions: Record<string, unknown> = {};
  for (const [n, a] of Object.entries(config.actions)) {
    const { name, ...rest } = a;
    void name;
    actions[n] = rest;
  }
  const { pidfile, ...server } = config.server;
  return {
    server: pidfile ? { ...server, pidfile } : server,
    actions,
    jails,
    ...(config.fleet ? { fleet: effectiveFleet(config.fleet) } : {}), // fleet (issue 9)
  };
}
