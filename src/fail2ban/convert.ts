/**
 * `fail2ts convert`: a Fail2ban configuration directory → fail2ts.toml (+ filters/*.toml). Every
 * enabled jail becomes a [jails.X] table; its filter is fail2ts's built-in of the same name when
 * the Fail2ban filter files are the stock ones, else a TOML filter written from the resolved
 * Fail2ban filter (each regex with the file:line it came from); its actions become [actions.X]
 * tables. What could not be converted is listed.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ServerConfig } from "../config/schema.ts";
import type { FilterSpec } from "../filter/format.ts";
import { builtinSource, loadFilter } from "../filter/index.ts";
import { formatDuration } from "../util/duration.ts";
import { Fail2tsError } from "../util/errors.ts";
import { readFail2banServer } from "./config.ts";
import { loadFail2banFilter } from "./filter.ts";
import { IniCache } from "./ini.ts";
import { type F2bJail, readFail2banJails } from "./jail.ts";
import { isStockFilter } from "./stock.ts";
import { type TomlValue, tomlKey, tomlString, tomlTable, tomlValue } from "./toml-out.ts";

export interface ConvertedJail {
  name: string;
  /** The filter reference written (`sshd[mode=aggressive]`, `filters/foo.toml`). */
  filter: string;
  builtin: boolean;
  actions: string[];
}

export interface ConvertReport {
  /** The fail2ts.toml written. */
  file: string;
  /** Filter files written. */
  filterFiles: string[];
  jails: ConvertedJail[];
  /** Jails that are not enabled (not converted). */
  disabled: string[];
  /** What could not be converted (jails with errors, actions that cannot run). */
  skipped: string[];
  /** Where fail2ts does not do exactly what Fail2ban did. */
  notes: string[];
}

export interface ConvertOptions {
  /** Overwrite an existing OUTDIR/fail2ts.toml. */
  force?: boolean;
}

function sameSpec(a: FilterSpec, b: FilterSpec): boolean {
  const key = (s: FilterSpec) =>
    JSON.stringify([
      s.prefregex?.text,
      s.failregex.map((r) => r.text),
      s.ignoreregex.map((r) => r.text),
      s.datepattern,
      s.maxlines,
      s.journalmatch,
    ]);
  return key(a) === key(b);
}

function refText(name: string, opts: Record<string, string>): string {
  const parts = Object.entries(opts).map(([k, v]) => `${k}=${/^[\w.:/-]*$/.test(v) ? v : JSON.stringify(v)}`);
  return parts.length ? `${name}[${parts.join(", ")}]` : name;
}

/** The built-in filter reference for a jail, or null when its Fail2ban filter must be converted. */
function builtinRef(j: F2bJail, cache: IniCache): string | null {
  if (!builtinSource(j.filter.name) || !isStockFilter(j.filter.files)) return null;
  if (j.filter.jailOverrides.length > 0) return null;
  const backend = j.config.backend === "journal" ? "systemd" : "auto";
  const opts = { ...j.filter.options };
  // options that change nothing (mode=normal on a filter with no modes) are left out
  const full = loadFail2banFilter(j.filter.file, opts, { backend, cache });
  for (const k of Object.keys(opts)) {
    const { [k]: _, ...rest } = opts;
    try {
      if (sameSpec(full, loadFail2banFilter(j.filter.file, rest, { backend, cache }))) delete opts[k];
    } catch {}
  }
  delete opts.logtype; // follows the backend in fail2ts too
  if (j.filter.name === "recidive" && opts._jailname !== undefined) {
    opts.jailname = opts._jailname;
    delete opts._jailname;
  }
  try {
    loadFilter(j.filter.name, opts);
  } catch {
    return null;
  }
  return refText(j.filter.name, opts);
}

const INTERPOLATION = /%\(([^()%]+)\)s/;

/** A fail2ts filter file holding a resolved Fail2ban filter; null when the format cannot hold it. */
function filterToml(j: F2bJail, ref: string): string | null {
  const s = j.filter.spec;
  const texts = [
    s.prefregex?.text ?? "",
    ...s.failregex.map((r) => r.text),
    ...s.ignoreregex.map((r) => r.text),
    s.datepattern ?? "",
  ];
  if (texts.some((t) => INTERPOLATION.test(t))) return null;
  const list = (entries: FilterSpec["failregex"]) =>
    entries.length === 0
      ? "[]"
      : `[\n${entries.map((r) => `  ${tomlString(r.text)}, # ${r.where}`).join("\n")}\n]`;
  const lines = [
    `# Converted by fail2ts from Fail2ban's ${j.filter.file} for jail ${j.name} (filter = ${ref}).`,
    `# Read: ${j.filter.files.join(", ")}`,
    "# Each regex is followed by the file:line it was written on.",
    `description = ${tomlString(`Fail2ban filter ${j.filter.name} (converted for jail ${j.name})`)}`,
  ];
  if (s.prefregex) lines.push(`prefregex = ${tomlString(s.prefregex.text)} # ${s.prefregex.where}`);
  lines.push(`failregex = ${list(s.failregex)}`, `ignoreregex = ${list(s.ignoreregex)}`);
  if (s.datepattern !== undefined) lines.push(`datepattern = ${tomlString(s.datepattern)}`);
  if (s.maxlines !== 1) lines.push(`maxlines = ${s.maxlines}`);
  if (s.journalmatch) lines.push(`journalmatch = ${tomlString(s.journalmatch)}`);
  if (s.logtimezone) lines.push(`logtimezone = ${tomlString(s.logtimezone)}`);
  lines.push("", "[options]", `logtype = ${tomlString(s.options.logtype ?? "file")}`);
  return `${lines.join("\n")}\n`;
}

function serverToml(s: ServerConfig): string {
  return tomlTable(
    ["server"],
    [
      ["socket", s.socket],
      ["database", s.database],
      ["logtarget", s.logtarget],
      ["loglevel", s.loglevel],
      ["dbpurgeage", formatDuration(s.dbpurgeage)],
      ["pidfile", s.pidfile],
    ],
  );
}

function jailToml(j: F2bJail, filter: string): string {
  const c = j.config;
  const entries: Array<[string, TomlValue | undefined]> = [
    ["enabled", true],
    ["filter", filter],
    ["logpath", c.backend === "journal" ? undefined : c.logpath],
    ["backend", c.backend],
    ["journalmatch", c.backend === "journal" ? c.journalmatch.join(" ") : undefined],
    ["port", c.port],
    ["protocol", c.protocol],
    ["action", c.action],
    ["maxretry", c.maxretry],
    ["findtime", formatDuration(c.findtime)],
    ["bantime", formatDuration(c.bantime)],
    ["ignoreip", c.ignoreip.length ? c.ignoreip : undefined],
    ["ignoreself", c.ignoreself],
    ["ignorecommand", c.ignorecommand.length ? c.ignorecommand : undefined],
    ["usedns", c.usedns],
    ["logencoding", c.logencoding !== "utf-8" ? c.logencoding : undefined],
  ];
  let out = `# from ${j.where}\n${tomlTable(["jails", j.name], entries)}`;
  if (c.increment.enabled) {
    const i = c.increment;
    out += `\n\n${tomlTable(
      ["jails", j.name, "increment"],
      [
        ["enabled", true],
        ["factor", i.factor],
        ["multipliers", i.multipliers.length ? i.multipliers : undefined],
        ["maxtime", i.maxtime ? formatDuration(i.maxtime) : undefined],
        ["rndtime", i.rndtime ? formatDuration(i.rndtime) : undefined],
        ["overalljails", i.overalljails],
      ],
    )}`;
  }
  return out;
}

function actionToml(key: string, a: F2bJail["actions"][number]): string {
  const lines = [
    `# from ${a.file} (${a.actname})`,
    `[actions.${tomlKey(key)}]`,
    `type = ${tomlString(a.type)}`,
  ];
  for (const [k, v] of Object.entries(a.options)) lines.push(`${tomlKey(k)} = ${tomlValue(v as TomlValue)}`);
  return lines.join("\n");
}

/** Converts `dir` (a Fail2ban configuration) into `outdir`. */
export function convertFail2ban(dir0: string, outdir0: string, o: ConvertOptions = {}): ConvertReport {
  const dir = resolve(dir0);
  const outdir = resolve(outdir0);
  const file = join(outdir, "fail2ts.toml");
  if (existsSync(file) && !o.force)
    throw new Fail2tsError("usage", "already exists (use --force to overwrite)", file);
  const cache = new IniCache();
  const jails = readFail2banJails(dir, cache);
  const serverIssues: Array<{ where: string; key: string; message: string }> = [];
  const server = readFail2banServer(dir, cache, serverIssues);
  const report: ConvertReport = {
    file,
    filterFiles: [],
    jails: [],
    disabled: jails.disabled,
    skipped: [],
    notes: [],
  };
  for (const i of [...jails.issues, ...serverIssues])
    report.skipped.push(`${i.where}: ${i.key}: ${i.message}`);
  const skippedJails = new Set(jails.issues.map((i) => i.key.split(".")[1]));
  report.skipped.push(...jails.skipped);
  report.notes.push(...jails.warnings.filter((w) => !jails.skipped.includes(w)));
  const parts: string[] = [
    `# fail2ts configuration converted from the Fail2ban configuration in ${dir}`,
    `# by \`fail2ts convert\`. Files read: ${jails.files.join(", ")}`,
    "",
    serverToml(server),
  ];
  const filterTexts = new Map<string, string>(); // file name → content
  for (const j of jails.jails) {
    if (skippedJails.has(j.name)) continue;
    let ref = builtinRef(j, cache);
    const builtin = ref !== null;
    if (ref === null) {
      const fref = `${j.filter.name}${
        Object.keys(j.filter.options).length
          ? `[${Object.entries(j.filter.options)
              .map(([k, v]) => `${k}=${v}`)
              .join(", ")}]`
          : ""
      }`;
      const text = filterToml(j, fref);
      if (text === null) {
        ref = j.config.filter;
        report.notes.push(
          `${j.filter.file}: jail ${j.name}: the filter is used from the Fail2ban file (it holds text fail2ts's filter format reads as %(…)s)`,
        );
      } else {
        let name = `${j.filter.name}.toml`;
        const body = (t: string) => t.split("\n").slice(1).join("\n");
        const same = [...filterTexts.entries()].find(([, t]) => body(t) === body(text));
        if (same) name = same[0];
        else {
          if (filterTexts.has(name)) name = `${j.filter.name}-${j.name}.toml`;
          filterTexts.set(name, text);
        }
        ref = `filters/${name}`;
      }
    }
    parts.push("", jailToml(j, ref));
    for (const a of j.actions) parts.push("", actionToml(a.key, a));
    report.jails.push({
      name: j.name,
      filter: ref,
      builtin,
      actions: j.actions.map((a) => `${a.key} (${a.type})`),
    });
  }
  mkdirSync(outdir, { recursive: true });
  if (filterTexts.size > 0) mkdirSync(join(outdir, "filters"), { recursive: true });
  for (const [name, text] of filterTexts) {
    const p = join(outdir, "filters", name);
    writeFileSync(p, text);
    report.filterFiles.push(p);
  }
  writeFileSync(file, `${parts.join("\n")}\n`);
  return report;
}
