/**
 * FilterSpec (strings) → CompiledFilter (RegExps, date detector). Done once per filter
 * instance; every error names the filter file and line of the regex at fault.
 */
import { Fail2tsError } from "../util/errors.ts";
import { createDateDetector, type DateDetector } from "./dates.ts";
import type { FilterSpec, RegexEntry } from "./format.ts";
import { expandTags, type TagOptions } from "./tags.ts";
import { compilePyRegex } from "./translate.ts";

export interface CompiledRegex {
  re: RegExp;
  /** The regex as written (after interpolation, before tag expansion). */
  text: string;
  where: string;
  /** Number of <SKIPLINES> tags. */
  skiplines: number;
  /** Groups `alt_X` / `alt_X_N` that fill X when X is empty. */
  alt: Array<[string, string]>;
  /** Its named groups (iterated instead of for-in over each match's groups). */
  names: string[];
}

export interface CompiledFilter {
  spec: FilterSpec;
  pref: CompiledRegex | null;
  fail: CompiledRegex[];
  ignore: CompiledRegex[];
  maxlines: number;
  dates: DateDetector;
  /** Lines come from the journal: the date is known, no date detection on the text. */
  journal: boolean;
  /**
   * All failregexes as one anchored alternation with an empty marker group before each:
   * one regex run tells whether any matches and which comes first (single-line filters whose
   * regexes all start with `^` and use no back-references). Null when that does not hold.
   */
  dispatch: { re: RegExp; markers: number[] } | null;
}

export interface CompileOptions extends TagOptions {
  /** Epoch seconds "now", for dates without a year. */
  now?: () => number;
}

const ALT = /^alt_(.*?)(?:_\d+)?$/;

function compileEntry(e: RegexEntry, multiline: boolean, tagOpts: TagOptions): CompiledRegex {
  try {
    const expanded = expandTags(e.text, tagOpts);
    const re = compilePyRegex(expanded, multiline ? "m" : "");
    const names = [...new Set([...expanded.matchAll(/\(\?P<(\w+)>/g)].map((m) => m[1]!))];
    const alt: Array<[string, string]> = [];
    for (const n of names) {
      const m = ALT.exec(n);
      if (m) alt.push([n, m[1] === "id" ? "fid" : m[1]!]);
    }
    alt.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    return {
      re,
      text: e.text,
      where: e.where,
      skiplines: (expanded.match(/\(\?P<skiplines\d+>/g) ?? []).length,
      alt,
      names,
    };
  } catch (err) {
    if (err instanceof Fail2tsError) throw new Fail2tsError("config", err.message, e.where);
    throw err;
  }
}

export function compileFilter(spec: FilterSpec, opts: CompileOptions = {}): CompiledFilter {
  const multiline = spec.maxlines > 1;
  const tagOpts: TagOptions = opts.useDns ? { useDns: opts.useDns } : {};
  // only failregex is multi-line in Fail2ban; prefregex and ignoreregex are not
  const pref = spec.prefregex ? compileEntry(spec.prefregex, false, tagOpts) : null;
  if (pref && !/\(\?<content>/.test(pref.re.source)) {
    throw new Fail2tsError("config", "prefregex: needs a <F-CONTENT>…</F-CONTENT> capture", pref.where);
  }
  const fail = spec.failregex.map((e) => compileEntry(e, multiline, tagOpts));
  const ignore = spec.ignoreregex.map((e) => compileEntry(e, false, tagOpts));
  let dates: DateDetector;
  try {
    dates = createDateDetector({
      ...(spec.datepattern !== undefined ? { datepattern: spec.datepattern } : {}),
      ...(spec.logtimezone !== undefined ? { logtimezone: spec.logtimezone } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
  } catch (err) {
    if (err instanceof Fail2tsError && !err.where)
      throw new Fail2tsError("config", `datepattern: ${err.message}`, spec.file);
    throw err;
  }
  return {
    spec,
    pref,
    fail,
    ignore,
    maxlines: spec.maxlines,
    dates,
    journal: spec.options.logtype === "journal",
    dispatch: multiline ? null : buildDispatch(fail),
  };
}

/** True when `^` anchors the whole source (no top-level `|`). */
function anchoredWhole(src: string): boolean {
  if (!src.startsWith("^")) return false;
  let depth = 0;
  let inClass = false;
  for (let i = 1; i < src.length; i++) {
    const c = src[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "|" && depth === 0) return false;
  }
  return true;
}

/** The source with every capturing group made non-capturing (no back-references in it). */
function stripCaptures(src: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === "\\") {
      out += c + (src[i + 1] ?? "");
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      out += c;
      continue;
    }
    if (c === "[") inClass = true;
    if (c === "(") {
      if (src[i + 1] !== "?") {
        out += "(?:";
        continue;
      }
      const named = /^\(\?<([A-Za-z_]\w*)>/.exec(src.slice(i));
      if (named) {
        out += "(?:";
        i += named[0].length - 1;
        continue;
      }
    }
    out += c;
  }
  return out;
}

function buildDispatch(fail: CompiledRegex[]): CompiledFilter["dispatch"] {
  if (fail.length < 2) return null;
  const flags = fail[0]!.re.flags.replace(/[is]/g, "");
  const parts: string[] = [];
  const markers: number[] = [];
  for (const r of fail) {
    const src = r.re.source;
    if (!anchoredWhole(src) || /\\(?:[1-9]|k<)/.test(src) || r.re.flags.replace(/[is]/g, "") !== flags)
      return null;
    const mods = (r.re.flags.includes("i") ? "i" : "") + (r.re.flags.includes("s") ? "s" : "");
    parts.push(`()${mods ? `(?${mods}:` : "(?:"}${stripCaptures(src.slice(1))})`);
    markers.push(markers.length + 1);
  }
  try {
    return { re: new RegExp(`^(?:${parts.join("|")})`, flags), markers };
  } catch {
    return null;
  }
}
