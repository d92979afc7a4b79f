/**
 * Checks the date detector against Fail2ban's annotated sample logs (not part of the test suite).
 *
 * For every line annotated with a "time" (local time in Europe/Zurich, "now" = 1124013600), runs
 * the default detector and, where Debian's Fail2ban filter file NAME.conf has a `datepattern`,
 * that pattern too (read from the filter file at run time, with its includes, %(...)s and <...>
 * substitutions and the sample file's filterOptions). A line whose date text is empty or missing
 * gets the time of the last dated line, as Fail2ban's filter does.
 *
 * Fail2ban's own samples test (and ../shared/conformance) checks "time" only on lines that must
 * match; the few wrong "time" annotations on `"match": false` lines are reported separately.
 *
 * Usage: bun scripts/check-dates-corpus.ts [--logs DIR] [--filter-dir DIR] [-v]
 */
process.env.TZ = "Europe/Zurich";

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createDateDetector, type DateDetector } from "../src/filter/dates.ts";

const NOW = 1124013600;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}
const logsDir = arg("--logs", join(import.meta.dir, "../../shared/corpus/fail2ban/logs"));
const filterDir = arg("--filter-dir", "/etc/fail2ban/filter.d");
const verbose = process.argv.includes("-v");

if (new Date(2005, 6, 1).getTimezoneOffset() !== -120) {
  console.error("check-dates-corpus: run with TZ=Europe/Zurich (e.g. TZ=Europe/Zurich bun scripts/...)");
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// A small reader of Fail2ban filter files, enough to resolve `datepattern`.

type Sections = Map<string, Map<string, string>>;

function parseIni(text: string, into: Sections): void {
  let section: Map<string, string> | null = null;
  let last: string | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (/^\s*[#;]/.test(line) || line.trim() === "") {
      if (line.trim() === "") last = null;
      continue;
    }
    const sec = /^\[([^\]]+)\]\s*$/.exec(line);
    if (sec) {
      const name = sec[1]!;
      if (!into.has(name)) into.set(name, new Map());
      section = into.get(name)!;
      last = null;
      continue;
    }
    if (/^\s/.test(line) && last && section) {
      section.set(last, `${section.get(last)}\n${line.trim()}`);
      continue;
    }
    const kv = /^([^=:]+?)\s*[=:]\s?(.*)$/.exec(line);
    if (kv && section) {
      last = kv[1]!.trim();
      section.set(last, kv[2]!.trim());
    }
  }
}

function loadFilter(name: string): Sections | null {
  const sections: Sections = new Map();
  const load = (file: string, seen: Set<string>) => {
    const path = join(filterDir, file);
    if (seen.has(path) || !existsSync(path)) return;
    seen.add(path);
    const own: Sections = new Map();
    parseIni(readFileSync(path, "utf8"), own);
    const inc = own.get("INCLUDES");
    const list = (k: string) => (inc?.get(k) ?? "").split(/\s+/).filter(Boolean);
    for (const f of list("before")) load(f, seen);
    for (const [s, opts] of own) {
      if (s === "INCLUDES") continue;
      if (!sections.has(s)) sections.set(s, new Map());
      for (const [k, v] of opts) sections.get(s)!.set(k, v);
    }
    for (const f of list("after")) load(f, seen);
  };
  if (!existsSync(join(filterDir, `${name}.conf`))) return null;
  const seen = new Set<string>();
  load(`${name}.conf`, seen);
  load(`${name}.local`, seen);
  return sections;
}

/** ConfigParser-style value with %(name)s and %(section/name)s interpolation. */
function getOpt(sections: Sections, section: string, opt: string, depth = 0): string | undefined {
  const raw = sections.get(section)?.get(opt) ?? sections.get("DEFAULT")?.get(opt);
  if (raw === undefined || depth > 20) return raw;
  return raw.replace(/%\((\w[\w/.-]*)\)s|%%/g, (m, ref: string | undefined) => {
    if (m === "%%") return "%";
    const [s, o] = ref!.includes("/") ? ref!.split("/", 2) : [section, ref!];
    return getOpt(sections, s!, o!, depth + 1) ?? m;
  });
}

/** The datepattern of a filter under some filter options, or undefined if it has none. */
function datepattern(sections: Sections, opts: Record<string, string>): string | undefined {
  if (getOpt(sections, "Definition", "datepattern") === undefined) return undefined;
  const lookup = (tag: string): string | undefined => {
    if (tag in opts) return opts[tag];
    if (tag.includes("/")) {
      const [s, o] = tag.split("/", 2);
      return getOpt(sections, s!, o!);
    }
    return getOpt(sections, "Init", tag) ?? getOpt(sections, "Definition", tag);
  };
  let v = getOpt(sections, "Definition", "datepattern")!;
  for (let i = 0; i < 20; i++) {
    const next = v.replace(/<([^<>\s]+)>/g, (m, tag: string) => lookup(tag) ?? m);
    if (next === v) break;
    v = next;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------

function localEpoch(text: string): number {
  const m = /^(\d{4})-(\d{1,2})-(\d{1,2})T(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?$/.exec(text);
  if (!m) throw new Error(`bad time ${text}`);
  const d = new Date(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  return d.getTime() / 1000 + (m[7] ? Number(`0.${m[7]}`) : 0);
}

interface Case {
  file: string;
  lineNo: number;
  line: string;
  match: boolean; // Fail2ban's tests check the time of matching lines only
  want: number;
  wantText: string;
  optSets: Record<string, string>[];
}

/** Runs the lines of one sample file, in order, through a detector; returns mismatches. */
function run(dd: DateDetector, lines: { line: string; c: Case | null }[]): [Case, number][] {
  const bad: [Case, number][] = [];
  let last = Number.NaN;
  for (const { line, c } of lines) {
    const m = dd.none ? null : dd.match(line);
    let t = m ? m.time : Number.NaN;
    if (Number.isNaN(t))
      t = last; // Fail2ban: no (usable) date → the last known one
    else last = t;
    if (c && !(Math.abs(t - c.want) <= 0.001)) bad.push([c, t]);
  }
  return bad;
}

const files = readdirSync(logsDir)
  .filter((f) => statSync(join(logsDir, f)).isFile())
  .sort();
const count = { total: 0, matching: 0 };
const ok = { def: 0, defMatching: 0, filter: 0, filterTotal: 0, eff: 0, effMatching: 0 };
const notes: string[] = [];
for (const file of files) {
  const text = readFileSync(join(logsDir, file), "utf8");
  let optSets: Record<string, string>[] = [{}];
  let pending: { time?: string; match?: boolean } | null = null;
  const lines: { line: string; c: Case | null; optSets: Record<string, string>[] }[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    const ann = /^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$/.exec(line);
    if (ann) {
      const v = JSON.parse(ann[2]!);
      if (ann[1] === "failJSON") pending = v;
      else if (ann[1] === "filterOptions") optSets = Array.isArray(v) ? v : [v];
      return;
    }
    if (line.startsWith("#") || line === "") return;
    const p = pending as { time?: string; match?: boolean } | null;
    const c: Case | null = p?.time
      ? { file, lineNo: i + 1, line, match: !!p.match, want: localEpoch(p.time), wantText: p.time, optSets }
      : null;
    pending = null;
    lines.push({ line, c, optSets });
  });
  const cases = lines.filter((l) => l.c).length;
  const matching = lines.filter((l) => l.c?.match).length;
  if (cases === 0) continue;
  count.total += cases;
  count.matching += matching;

  const def = run(createDateDetector({ now: () => NOW }), lines);
  ok.def += cases - def.length;
  ok.defMatching += matching - def.filter(([c]) => c.match).length;

  // the filter's own datepattern, per set of filter options (lines are fed once per set)
  const sections = loadFilter(file);
  const patterns = new Map<string, Record<string, string>[]>();
  if (sections) {
    const all = new Set<string>();
    for (const l of lines) for (const o of l.optSets) all.add(JSON.stringify(o));
    for (const o of all) {
      const dp = datepattern(sections, JSON.parse(o));
      if (dp !== undefined) patterns.set(dp, [...(patterns.get(dp) ?? []), JSON.parse(o)]);
    }
  }
  let fileBad: [Case, number][] = [];
  for (const [dp, sets] of patterns) {
    const keys = new Set(sets.map((s) => JSON.stringify(s)));
    // only the lines checked under these option sets
    const sub = lines.map((l) => ({
      line: l.line,
      c: l.c && l.optSets.some((o) => keys.has(JSON.stringify(o))) ? l.c : null,
    }));
    const bad = run(createDateDetector({ datepattern: dp, now: () => NOW }), sub);
    fileBad = fileBad.concat(bad);
    if (verbose) console.log(`  ${file}: datepattern ${JSON.stringify(dp)}: ${bad.length} wrong`);
  }
  const wrongCases = new Set(fileBad.map(([c]) => c));
  const eff = patterns.size ? [...wrongCases] : def.map(([c]) => c);
  if (patterns.size) {
    ok.filterTotal += cases;
    ok.filter += cases - wrongCases.size;
  }
  ok.eff += cases - eff.length;
  ok.effMatching += matching - eff.filter((c) => c.match).length;

  const show = (label: string, bad: [Case, number][]) => {
    for (const [c, got] of bad) {
      const gotText = Number.isNaN(got) ? "no date" : new Date(got * 1000).toString();
      const why = !c.match
        ? " [match:false line: its time is not checked by Fail2ban]"
        : label === "default" && patterns.size && !wrongCases.has(c)
          ? " [needs the filter's datepattern, which gets it right]"
          : "";
      notes.push(
        `${label} ${c.file}:${c.lineNo}: want ${c.wantText}, got ${gotText}${why}\n    ${c.line.slice(0, 110)}`,
      );
    }
  };
  show("default", def);
  show("filter ", fileBad);
}

for (const n of notes) console.log(n);
const pct = (a: number, b: number) => `${a}/${b}`;
console.log(
  `as Fail2ban detects (the filter's datepattern, else the defaults): ${pct(ok.effMatching, count.matching)} matching lines right, ${pct(ok.eff, count.total)} of all lines with a time`,
);
console.log(
  `filter datepatterns only (${ok.filterTotal} lines of files whose Debian filter has one): ${pct(ok.filter, ok.filterTotal)}`,
);
console.log(
  `default templates only: ${pct(ok.defMatching, count.matching)} matching lines right, ${pct(ok.def, count.total)} of all lines with a time`,
);
process.exit(ok.effMatching === count.matching ? 0 : 1);
