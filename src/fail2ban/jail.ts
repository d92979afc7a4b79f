/**
 * Fail2ban's jails as Fail2ban reads them (JailsReader/JailReader): jail.conf, jail.d/*.conf,
 * jail.local, jail.d/*.local with their includes; per enabled jail, the filter read with the jail's
 * options (its combined options offered back to the jail as `known/...`), the jail's own options,
 * then its actions. The result is fail2ts's JailConfig plus the filter spec and actions behind it.
 */
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { JailConfig, UseDns } from "../config/schema.ts";
import type { FilterSpec } from "../filter/format.ts";
import { loadFilter } from "../filter/index.ts";
import { NO_INCREMENT } from "../jail/increment.ts";
import { Fail2tsError } from "../util/errors.ts";
import { isDnsName, parseCidr } from "../util/ip.ts";
import { type F2bAction, readFail2banAction } from "./action.ts";
import { configFilesFor, optionsAt } from "./definit.ts";
import {
  checkFailureIds,
  describeSpec,
  emptySpec,
  Fail2banFilterReader,
  FILTER_OPT_NAMES,
  fillSpec,
} from "./filter.ts";
import { asBool, IniCache, IniNoOption, IniSet, type Options } from "./ini.ts";
import { str2seconds } from "./seconds.ts";
import { isStockFilter } from "./stock.ts";
import { extractOptions, splitWithOptions } from "./tags.ts";
import { firstWhere, flat, type Text, text } from "./text.ts";

/** The Fail2ban version whose configuration semantics fail2ts follows (%(fail2ban_version)s). */
export const FAIL2BAN_VERSION = "1.0.2";

export interface F2bIssue {
  where: string;
  key: string;
  message: string;
}

export interface F2bFilter {
  /** filter.d/NAME.conf */
  file: string;
  name: string;
  /** Options given in the jail's `filter = name[...]`. */
  options: Record<string, string>;
  /** Every file read for it. */
  files: string[];
  /** The resolved filter, with the jail's own filter options applied. */
  spec: FilterSpec;
  /** The jail set failregex, ignoreregex, prefregex, datepattern or maxlines itself. */
  jailOverrides: string[];
}

export interface F2bJail {
  name: string;
  /** Where it was enabled. */
  where: string;
  config: JailConfig;
  filter: F2bFilter;
  /** Its actions, in order; config.action holds their names (`sshd.iptables-multiport`). */
  actions: Array<F2bAction & { key: string }>;
}

export interface F2bJails {
  dir: string;
  /** jail.* files read, in order. */
  files: string[];
  jails: F2bJail[];
  /** Jails not enabled. */
  disabled: string[];
  warnings: string[];
  /** Warnings about actions that cannot run (also in warnings). */
  skipped: string[];
  issues: F2bIssue[];
}

/** Fail2ban's splitwords: on commas, spaces and new lines. */
export function splitwords(s: string): string[] {
  return s
    .split(/[ ,\n]+/)
    .map((v) => v.trim())
    .filter(Boolean);
}

const BACKENDS: Record<string, JailConfig["backend"]> = {
  auto: "auto",
  pyinotify: "inotify",
  gamin: "auto",
  polling: "polling",
};

/** Reads every jail of a Fail2ban configuration directory. */
export function readFail2banJails(dir0: string, cache: IniCache = new IniCache()): F2bJails {
  const dir = resolve(dir0);
  const cfg = new IniSet(cache);
  const files = configFilesFor(dir, "jail");
  if (files.length === 0)
    throw new Fail2tsError("config", "no jail.conf or jail.local here (not a Fail2ban directory?)", dir);
  const read = cfg.read(files);
  const result: F2bJails = {
    dir,
    files: read,
    jails: [],
    disabled: [],
    warnings: [],
    skipped: [],
    issues: [],
  };
  cfg.mergeDefaults(
    new Map([
      ["fail2ban_version", text(FAIL2BAN_VERSION, "")],
      ["fail2ban_confpath", text(dir, "")],
    ]),
  );
  const seen = new Set<string>();
  for (const name of cfg.sectionNames()) {
    if (name === "INCLUDES" || seen.has(name)) continue;
    seen.add(name);
    const issues: F2bIssue[] = [];
    try {
      const j = readJail(cfg, dir, name, cache, result, issues);
      if (j === null) result.disabled.push(name);
      else if (issues.length === 0) result.jails.push(j);
    } catch (e) {
      if (!(e instanceof Fail2tsError)) throw e;
      issues.push({ where: e.where ?? dir, key: `jails.${name}`, message: e.message });
    }
    result.issues.push(...issues);
  }
  return result;
}

function readJail(
  cfg: IniSet,
  dir: string,
  name: string,
  cache: IniCache,
  result: Pick<F2bJails, "warnings" | "skipped">,
  issues: F2bIssue[],
): F2bJail | null {
  const warnings = result.warnings;
  const key = (k: string) => `jails.${name}.${k}`;
  const get = (opt: string, vars?: Options): Text | undefined => {
    try {
      return cfg.get(name, opt, { vars });
    } catch (e) {
      if (e instanceof IniNoOption) return undefined;
      throw e;
    }
  };
  const str = (opt: string) => {
    const v = get(opt);
    return v === undefined ? undefined : flat(v);
  };
  const enabledT = get("enabled");
  const enabled = enabledT !== undefined && asBool(flat(enabledT));
  if (!enabled) return null;
  const where = firstWhere(enabledT!) || `${dir}/jail.conf`;
  const issue = (k: string, message: string, w?: string) =>
    issues.push({ where: w ?? where, key: key(k), message });
  const backendRaw = (str("backend") ?? "auto").trim();
  const filterRef = (str("filter") ?? "").trim();
  const backend0 = backendRaw.startsWith("systemd") ? "journal" : "file";
  const firstOpts: Options = new Map([
    ["enabled", text("True", where)],
    ["backend", text(backendRaw, where)],
    ["filter", get("filter") ?? text("", where)],
  ]);

  // the filter, read with the jail's options; its options become the jail's known/...
  if (filterRef === "") throw new Fail2tsError("config", "no filter: a jail needs one", where);
  const ref = extractOptions(filterRef);
  const fname = ref.name.trim();
  const fwhere = get("filter") ? firstWhere(get("filter")!) : where;
  // filter.d/NAME, or an absolute path (NAME.conf, NAME.d/*.conf, NAME.local, NAME.d/*.local)
  const fbase = isAbsolute(fname) ? fname : join(dir, "filter.d", fname);
  const ffile = `${fbase}.conf`;
  const freader = new Fail2banFilterReader(ffile, optionsAt(ref.options, fwhere), cache);
  try {
    freader.files = freader.readStandard(dirname(fbase), basename(fbase));
    if (freader.files.length === 0) throw new Error("no file");
  } catch {
    throw new Fail2tsError(
      "config",
      `cannot read the filter ${JSON.stringify(fname)} (filter.d/${fname}.conf)`,
      fwhere,
    );
  }
  freader.applyAutoOptions(backendRaw);
  freader.getOptions(firstOpts, true);
  cfg.mergeSection(name, freader.getCombined(), "known/");

  // the jail's own options (known/... can be interpolated now)
  const opts: Options = new Map();
  for (const o of JAIL_OPTS) {
    const v = get(o);
    if (v !== undefined) opts.set(o, v);
  }
  freader.getOptions(opts);
  const spec = emptySpec(freader);
  fillSpec(spec, freader.getCombined());
  describeSpec(spec, freader);
  const jailFilterOpts: Options = new Map();
  for (const k of FILTER_OPT_NAMES) {
    const v = opts.get(k);
    if (v !== undefined) jailFilterOpts.set(k, v);
  }
  const extra: { usedns?: string } = {};
  fillSpec(spec, jailFilterOpts, extra);
  const lt = opts.get("logtimezone");
  if (lt && flat(lt).trim()) spec.logtimezone = flat(lt).trim();
  const overrides = [
    "failregex",
    "ignoreregex",
    "prefregex",
    "datepattern",
    "maxlines",
    "journalmatch",
  ].filter((k) => jailFilterOpts.has(k));
  if (fname === "recidive" && overrides.length === 0 && isStockFilter(freader.files)) {
    // Fail2ban's recidive filter reads Fail2ban's log; fail2ts's reads fail2ts's log (and Fail2ban's)
    const own = loadFilter("recidive", {
      jailname: ref.options._jailname ?? "recidive",
      ...(backend0 === "journal" ? { logtype: "journal" } : {}),
    });
    Object.assign(spec, { ...own, name: spec.name, file: spec.file });
    if (lt && flat(lt).trim()) spec.logtimezone = flat(lt).trim();
    warnings.push(
      `${fwhere}: jail ${name}: fail2ts's built-in recidive filter is used (it reads fail2ts's log and Fail2ban's)`,
    );
  }
  if (fname === "domino-smtp" && overrides.length === 0 && isStockFilter(freader.files)) {
    warnings.push(
      `${ffile}: jail ${name}: this Fail2ban 1.0.2 filter backtracks badly on hostile lines (GHSA-33wh-ccjc-p397); fail2ts's built-in domino-smtp does not (\`fail2ts convert\` uses it)`,
    );
  }
  if (spec.failregex.length === 0) issue("filter", `the filter ${fname} has no failregex`, fwhere);
  else {
    try {
      checkFailureIds(spec);
    } catch (e) {
      if (!(e instanceof Fail2tsError)) throw e;
      issue("filter", e.message, e.where);
    }
  }
  const filter: F2bFilter = {
    file: ffile,
    name: fname,
    options: ref.options,
    files: freader.files,
    spec,
    jailOverrides: overrides,
  };

  // backend and logs
  let backend: JailConfig["backend"];
  const bref = extractOptions(backendRaw);
  if (backendRaw.startsWith("systemd")) {
    backend = "journal";
    if (Object.keys(bref.options).length > 0) {
      warnings.push(
        `${where}: jail ${name}: backend options ${backendRaw.slice(bref.name.length)} are not used (fail2ts reads the system journal)`,
      );
    }
  } else if (Object.hasOwn(BACKENDS, bref.name.trim())) backend = BACKENDS[bref.name.trim()]!;
  else {
    issue("backend", `unknown backend ${JSON.stringify(backendRaw)} (auto, pyinotify, polling, systemd)`);
    backend = "auto";
  }
  const logpath: string[] = [];
  const lp = opts.get("logpath");
  if (backend !== "journal" && lp) {
    for (const line of flat(lp).split("\n")) {
      const p = line.trim().replace(/\s+(?:head|tail)$/i, "");
      if (p) logpath.push(isAbsolute(p) ? p : resolve("/", p));
    }
  }
  if (backend !== "journal" && logpath.length === 0)
    issue("logpath", "no logpath (and the backend is not systemd)", lp ? firstWhere(lp) : where);
  const journalmatch = backend === "journal" ? (spec.journalmatch ?? "").split(/\s+/).filter(Boolean) : [];
  if (backend === "journal" && journalmatch.length === 0) {
    issue("journalmatch", `backend systemd: the filter ${fname} has no journalmatch (set one in the jail)`);
  }

  // numbers, times, lists
  const intOpt = (k: string, dflt: number, min: number): number => {
    const v = opts.get(k);
    if (v === undefined) return dflt;
    const s = flat(v).trim();
    if (!/^[+-]?\d+$/.test(s) || Number(s) < min) {
      issue(k, `expected a whole number from ${min} up, got ${JSON.stringify(s)}`, firstWhere(v));
      return dflt;
    }
    return Number(s);
  };
  const timeOpt = (k: string, dflt: number, permanent: boolean): number => {
    const v = opts.get(k);
    if (v === undefined) return dflt;
    const s = flat(v).trim();
    const t = str2seconds(s);
    if (t === null || (t < 0 && !(permanent && t === -1)) || (permanent && t < 0 && t !== -1)) {
      issue(
        k,
        `expected a time (600, 10m, 1h30m, 1d${permanent ? ", -1" : ""}), got ${JSON.stringify(s)}`,
        firstWhere(v),
      );
      return dflt;
    }
    return permanent && t < 0 ? -1 : Math.round(t);
  };
  const maxretry = intOpt("maxretry", 3, 1);
  const findtime = timeOpt("findtime", 600, false);
  const bantime = timeOpt("bantime", 600, true);
  const ignoreip: string[] = [];
  const ii = opts.get("ignoreip");
  if (ii) {
    for (const e of splitwords(flat(ii))) {
      if (parseCidr(e)) ignoreip.push(e);
      else if (isDnsName(e)) ignoreip.push(e.toLowerCase());
      else issue("ignoreip", `${JSON.stringify(e)} is not an IP address, CIDR or DNS name`, firstWhere(ii));
    }
  }
  const boolOpt = (k: string, dflt: boolean) => {
    const v = opts.get(k);
    return v === undefined ? dflt : asBool(flat(v));
  };
  const ic = opts.get("ignorecommand");
  const icmd = ic ? flat(ic).trim() : "";
  const ignorecommand = icmd ? ["/bin/sh", "-c", icmd] : [];
  const otherTags = icmd.match(/<(?!ip>)[^ <>]+>/g);
  if (otherTags)
    issue(
      "ignorecommand",
      `fail2ts gives ignorecommand only <ip>, not ${otherTags.join(", ")}`,
      firstWhere(ic!),
    );
  const usedns = (extra.usedns ?? "warn").trim().toLowerCase();
  if (!["yes", "warn", "no", "raw"].includes(usedns))
    issue("usedns", `expected yes, warn, no or raw, got ${JSON.stringify(usedns)}`);
  const increment = { ...NO_INCREMENT, multipliers: [] as number[] };
  increment.enabled = boolOpt("bantime.increment", false);
  if (increment.enabled) {
    const f = str("bantime.factor");
    if (f !== undefined && f.trim() !== "") {
      const n = Number(f.trim());
      if (Number.isFinite(n) && n > 0) increment.factor = n;
      else issue("bantime.factor", `expected a number above 0, got ${JSON.stringify(f)}`);
    }
    const mult = str("bantime.multipliers");
    if (mult?.trim()) {
      const l = mult
        .trim()
        .split(/[\s,]+/)
        .map(Number);
      if (l.every((x) => Number.isFinite(x) && x > 0)) increment.multipliers = l;
      else issue("bantime.multipliers", `expected numbers above 0, got ${JSON.stringify(mult)}`);
    }
    if (str("bantime.formula")?.trim() && !mult?.trim()) {
      warnings.push(
        `${where}: jail ${name}: bantime.formula is not supported; bantime × factor × 2^n is used`,
      );
    }
    increment.maxtime = opts.has("bantime.maxtime") ? timeOpt("bantime.maxtime", 0, false) : 0;
    increment.rndtime = opts.has("bantime.rndtime") ? timeOpt("bantime.rndtime", 0, false) : 0;
    increment.overalljails = boolOpt("bantime.overalljails", false);
  }
  const cache_ = opts.get("ignorecache");
  if (cache_ && flat(cache_).trim())
    warnings.push(`${firstWhere(cache_)}: jail ${name}: ignorecache is not supported (ignored)`);
  const logenc = (str("logencoding") ?? "auto").trim();
  let logencoding = "utf-8";
  if (logenc.toLowerCase() !== "auto") {
    try {
      new TextDecoder(logenc as "utf-8");
      logencoding = logenc;
    } catch {
      issue("logencoding", `unknown encoding ${JSON.stringify(logenc)}`);
    }
  }

  // actions
  const actions: F2bJail["actions"] = [];
  const act = opts.get("action");
  const keys = new Set<string>();
  if (act) {
    const awhere = firstWhere(act);
    for (const entry of splitWithOptions(flat(act))) {
      const e = entry.trim();
      if (!e) continue;
      let aref: { name: string; options: Record<string, string> };
      try {
        aref = extractOptions(e);
      } catch (err) {
        issue("action", `${(err as Error).message} in ${JSON.stringify(e)}`, awhere);
        continue;
      }
      try {
        const a = readFail2banAction(
          aref.name.trim(),
          aref.options,
          { dir, jail: name, jailOpts: opts, cache, where: awhere, native: (a) => mergeNative(actions, a) },
          (w) => {
            warnings.push(w);
            result.skipped.push(w);
          },
        );
        if (!a) continue;
        let k = `${name}.${a.actname}`.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64);
        for (let i = 2; keys.has(k); i++)
          k = `${name}.${a.actname}-${i}`.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64);
        keys.add(k);
        actions.push({ ...a, key: k });
      } catch (err) {
        if (!(err instanceof Fail2tsError)) throw err;
        issue("action", err.message, err.where ?? awhere);
      }
    }
  }
  for (const a of actions) for (const note of a.notes) warnings.push(`${a.file}: jail ${name}: ${note}`);
  if (actions.length === 0) warnings.push(`${where}: jail ${name}: no action runs (bans are recorded only)`);

  const port = str("port")?.trim();
  const protocol = (str("protocol") ?? "tcp").trim() || "tcp";
  const config: JailConfig = {
    name,
    enabled: true,
    filter: filterRef.startsWith("/") ? filterRef : `${ffile}${filterRef.slice(ref.name.length)}`,
    logpath,
    logencoding,
    backend,
    journalmatch,
    ...(port ? { port } : {}),
    protocol,
    action: actions.map((a) => a.key),
    banaction: (str("banaction") ?? "").trim(),
    maxretry,
    findtime,
    bantime,
    ignoreip,
    ignoreself: boolOpt("ignoreself", true),
    ignorecommand,
    usedns: (["yes", "warn", "no", "raw"].includes(usedns) ? usedns : "warn") as UseDns,
    increment,
  };
  return { name, where, config, filter, actions };
}

/** The jail options Fail2ban reads (JailReader._configOpts plus the filter's). */
const JAIL_OPTS = [
  "enabled",
  "backend",
  "maxretry",
  "maxmatches",
  "findtime",
  "bantime",
  "bantime.increment",
  "bantime.factor",
  "bantime.formula",
  "bantime.multipliers",
  "bantime.maxtime",
  "bantime.rndtime",
  "bantime.overalljails",
  "ignorecommand",
  "ignoreself",
  "ignoreip",
  "ignorecache",
  "filter",
  "logtimezone",
  "logencoding",
  "logpath",
  "action",
  ...FILTER_OPT_NAMES,
];

const FIREWALLS = new Set(["iptables", "ipset", "nftables", "pf"]);

/**
 * One fail2ts firewall action per type and jail (its objects are named after the jail): a second
 * one that differs only in protocol joins the first (`nsd-tcp` + `nsd-udp` → protocol tcp,udp),
 * any other runs as Fail2ban's commands.
 */
function mergeNative(actions: F2bJail["actions"], a: F2bAction): "keep" | "merged" | "command" {
  if (!FIREWALLS.has(a.type)) return "keep";
  const prev = actions.find((p) => p.type === a.type);
  if (!prev) return "keep";
  const { protocol: p1, ...o1 } = prev.options;
  const { protocol: p2, ...o2 } = a.options;
  if (JSON.stringify(o1) !== JSON.stringify(o2)) return "command";
  const protos = new Set(
    [p1, p2]
      .flatMap((p) => (typeof p === "string" ? p.split(",") : ["tcp"]))
      .map((p) => p.trim())
      .filter(Boolean),
  );
  const before = typeof p1 === "string" ? p1 : "tcp";
  prev.options = { ...prev.options, protocol: [...protos].join(",") };
  prev.notes = [
    ...prev.notes,
    before === [...protos].join(",")
      ? `${a.actname} is listed twice: one ${a.type} action`
      : `${a.actname} joins ${prev.actname} as one ${a.type} action (protocol ${[...protos].join(",")})`,
  ];
  return "merged";
}
