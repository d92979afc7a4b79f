/**
 * FilterSpec (strings) → CompiledFilter (RegExps, date detector). Done once per filter
 * instance; every error names the filter file and line of the regex at fault.
 */
import { Fail2tsError } from "../util/errors.ts";
import { createDateDetector, type DateDetector } from "./dates.ts";
import type { FilterSpec, RegexEntry } from "./format.ts";
import { type RegexInfo, regexInfo } from "./rxinfo.ts";
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
  /** Capture groups, first characters and literal prefixes (see rxinfo.ts). */
  info: RegexInfo;
  /** The same regex with plain numbered groups (no `groups` object per match); null if none. */
  fast: RegExp | null;
  /**
   * `fast` without the "u" flag, for pure ASCII text, where it matches exactly as the "u" one
   * does (see asciiEquivalent); null when that is not certain.
   */
  asciiFast: RegExp | null;
  /**
   * `asciiFast` without its leading `^`, sticky: runs at an offset of the whole line (no slice);
   * null when unsafe (see RegexInfo.stickySource). Not made with "u": a sticky "u" regex runs
   * about twice as slow in JavaScriptCore as a slice and a plain run.
   */
  asciiSticky: RegExp | null;
}

/**
 * True when a regex compiled with "u" matches any pure ASCII text exactly as the same source
 * without "u": the source is ASCII and uses none of what "u" changes the meaning of (\u{...},
 * \p{...}, surrogate pairs; \u and \x escapes of non-ASCII characters, which case folding
 * under "iu" can pair with ASCII letters: ſ with s, K with k). What else "u" changes (what "."
 * and negated classes do with surrogates, code point case folding) only concerns non-ASCII text.
 */
function asciiEquivalent(source: string): boolean {
  if (/[^\x00-\x7f]/.test(source)) return false;
  return !/\\(?:[upP]|x[89a-fA-F])/.test(source);
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

/**
 * A compiled regex. What only the matcher's fast path needs (the regex analysis, the numbered
 * and ASCII forms) is worked out on first use: loading a configuration (the daemon's start,
 * `check`) compiles every regex but needs none of it.
 */
class Entry implements CompiledRegex {
  private analysis: RegexInfo | null = null;
  private fastRe: RegExp | null | undefined;
  private ascii: { asciiFast: RegExp | null; asciiSticky: RegExp | null } | null = null;

  constructor(
    readonly re: RegExp,
    readonly text: string,
    readonly where: string,
    readonly skiplines: number,
    readonly alt: Array<[string, string]>,
    readonly names: string[],
  ) {}

  get info(): RegexInfo {
    if (this.analysis === null) this.analysis = regexInfo(this.re);
    return this.analysis;
  }

  get fast(): RegExp | null {
    if (this.fastRe === undefined) {
      const n = this.info.numbered;
      this.fastRe = n === null ? null : new RegExp(n, this.re.flags);
    }
    return this.fastRe;
  }

  get asciiFast(): RegExp | null {
    if (this.ascii === null) this.ascii = asciiForms(this.info, this.re.flags);
    return this.ascii.asciiFast;
  }

  get asciiSticky(): RegExp | null {
    if (this.ascii === null) this.ascii = asciiForms(this.info, this.re.flags);
    return this.ascii.asciiSticky;
  }
}

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
    return new Entry(re, e.text, e.where, (expanded.match(/\(\?P<skiplines\d+>/g) ?? []).length, alt, names);
  } catch (err) {
    if (err instanceof Fail2tsError) throw new Fail2tsError("config", err.message, e.where);
    throw err;
  }
}

function asciiForms(
  info: RegexInfo,
  flags: string,
): { asciiFast: RegExp | null; asciiSticky: RegExp | null } {
  if (info.numbered === null || !asciiEquivalent(info.numbered))
    return { asciiFast: null, asciiSticky: null };
  const f = flags.replace("u", "");
  return {
    asciiFast: new RegExp(info.numbered, f),
    asciiSticky: info.stickySource === null ? null : new RegExp(info.stickySource, `${f}y`),
  };
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
  };
}
