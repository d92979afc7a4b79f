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
    const names = [...expanded.matchAll(/\(\?P<(\w+)>/g)].map((m) => m[1]!);
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
    };
  } catch (err) {
    if (err instanceof Fail2tsError) throw new Fail2tsError("config", err.message, e.where);
    throw err;
  }
}

export function compileFilter(spec: FilterSpec, opts: CompileOptions = {}): CompiledFilter {
  const multiline = spec.maxlines > 1;
  const tagOpts: TagOptions = opts.useDns ? { useDns: opts.useDns } : {};
  const pref = spec.prefregex ? compileEntry(spec.prefregex, multiline, tagOpts) : null;
  if (pref && !/\(\?<content>/.test(pref.re.source)) {
    throw new Fail2tsError("config", "prefregex: needs a <F-CONTENT>…</F-CONTENT> capture", pref.where);
  }
  const fail = spec.failregex.map((e) => compileEntry(e, multiline, tagOpts));
  const ignore = spec.ignoreregex.map((e) => compileEntry(e, multiline, tagOpts));
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
  };
}
