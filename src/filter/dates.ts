/**
 * The date detector: finds the timestamp in a log line and turns it into epoch seconds, with
 * Fail2ban 1.0.2's semantics (server/datedetector.py, datetemplate.py, strptime.py), so that
 * admins' `datepattern` values work unchanged.
 *
 * How it is built:
 * - Every template goes through the same steps as in Fail2ban: `%`-directives are expanded to
 *   Python regex text, word/line boundaries and group 1 are added like `DateTemplate.setRegex`,
 *   then the Python regex is translated to a JS one (named groups become numbered ones, `\w`,
 *   `\W`, `\b` follow Python's Unicode meaning).
 * - The template that wins is the one a fresh Fail2ban detector picks for the line: in template
 *   order, the first line-anchored template that matches, or the first unanchored one matching at
 *   position 0 or 1; failing that, the last template if it matches; failing that, the leftmost
 *   match (earliest template on ties). Instead of trying templates one by one, the templates are
 *   joined into ordered alternations (JS picks the leftmost position, then the first alternative),
 *   which gives the same answer in one or two regex runs per line; the alternations carry no
 *   groups, the winner's own regex then runs once where it matched. A template that won at the
 *   line start is tried first on the next line, after checking the few anchored ones before it.
 * - Pure ASCII lines (nearly all) use regexes without the "u" flag, which JS runs faster; other
 *   lines use the Unicode ones (Python's `\w` counts all letters and digits).
 * - The templates of a datepattern and their compiled regexes are made once per process and
 *   shared by every detector of that datepattern (most filters use the same few); the regexes
 *   that match lines are compiled at the first line of that kind (or by `prepare`).
 * - Local time is converted once per (year, month, day, hour) of wall time and cached, so is the
 *   day of a date; the result object is reused: no allocation per line besides the regex match.
 */
import { readlinkSync } from "node:fs";
import { Fail2tsError } from "../util/errors.ts";

export interface DateMatch {
  /** index in the line where the date text starts (Fail2ban's `m.start(1)`) */
  start: number;
  /** index just past the date text (Fail2ban's `m.end(1)`) */
  end: number;
  /**
   * epoch seconds. Epoch templates keep their fraction; `%f` is matched but dropped, as in
   * Fail2ban. NaN when the template matched but gave no usable time: an empty date (e.g. the
   * `^WARNING:()**` style of patterns) or an invalid one (Feb 30, hour 25, unknown zone name).
   */
  time: number;
  /** the name of the template that matched, e.g. "{^LN-BEG}MON Day 24hour:Minute:Second" */
  template: string;
}

export interface DateDetectorOptions {
  /** Fail2ban datepattern syntax; several patterns, one per line, are tried in order. */
  datepattern?: string;
  /** "UTC", "UTC+0200", "UTC-07:00", "+0200", "CET"...: zone of dates that carry none. */
  logtimezone?: string;
  /** epoch seconds used for year inference; default Date.now()/1000 */
  now?: () => number;
}

export interface DateDetector {
  /**
   * The date in `line`, or null. The returned object is reused by the next call of `match` on
   * the same detector: read its fields, do not keep it.
   */
  match(line: string): DateMatch | null;
  /**
   * The date of the ASCII line at bytes [s, e) of `buf` when it is the common syslog form at
   * the line start (what match() gives for the same text); undefined when only match() can tell.
   */
  matchBytes(buf: Uint8Array, s: number, e: number): DateMatch | undefined;
  /** datepattern was {NONE}: lines carry no date, match() always returns null. */
  readonly none: boolean;
  /** Compiles now what the first (ASCII) line would otherwise compile. */
  prepare(): void;
}

// ---------------------------------------------------------------------------------------------
// Template flags (datetemplate.py)

const LINE_BEGIN = 8;
const LINE_END = 4;
const WORD_BEGIN = 2;
const WORD_END = 1;

// Python's `\w` for str patterns is Unicode: letters, digits and "_".
const WC = "\\p{L}\\p{N}_";
const RX_WORD = `[${WC}]`;
const RX_NWORD = `[^${WC}]`;
const RX_B = `(?:(?<=[${WC}])(?![${WC}])|(?<![${WC}])(?=[${WC}]))`;
const RX_NB = `(?:(?<=[${WC}])(?=[${WC}])|(?<![${WC}])(?![${WC}]))`;
// Fail2ban's word boundaries "(?=^|\b|\W)" and "(?=\b|\W|$)" both reduce to: not between two
// word characters.
const RX_WBOUND = `(?:(?<![${WC}])|(?![${WC}]))`;
const PY_WBEG = "(?=^|\\b|\\W)";
const PY_WEND = "(?=\\b|\\W|$)";
const PY_LNBEG = "^(?:\\W{0,2})?";

// ---------------------------------------------------------------------------------------------
// %-directives (strptime.py timeRE on top of Python's _strptime.TimeRE, C locale)

const A_WEEKDAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const F_WEEKDAY = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const A_MONTH = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const F_MONTH = [
  "january",
  "february",
  "march",
  "april",
  "may",
  "june",
  "july",
  "august",
  "september",
  "october",
  "november",
  "december",
];

/** `(?P<k>longest|...|shortest)` as _strptime.__seqToRE builds it. */
function seqRE(k: string, names: string[]): string {
  const sorted = [...names].sort((a, b) => b.length - a.length);
  return `(?P<${k}>${sorted.join("|")})`;
}

const PY_D = "(?P<d>3[0-1]|[1-2]\\d|0[1-9]|[1-9]| [1-9])";
const PY_H = "(?P<H>2[0-3]|[0-1]\\d|\\d)";
const PY_M = "(?P<M>[0-5]\\d|\\d)";
const PY_S = "(?P<S>6[0-1]|[0-5]\\d|\\d)";
const PY_MO = "(?P<m>1[0-2]|0[1-9]|[1-9])";
const TZ_ABBR_RE = "[A-Z](?:[A-Z]{2,4})?";

function timeRE(exY: string): Record<string, string> {
  return {
    a: seqRE("a", A_WEEKDAY),
    A: seqRE("A", F_WEEKDAY),
    b: seqRE("b", A_MONTH),
    B: seqRE("B", F_MONTH),
    c: `${seqRE("a", A_WEEKDAY)}\\s+${seqRE("b", A_MONTH)}\\s+${PY_D}\\s+${PY_H}:${PY_M}:${PY_S}\\s+(?P<Y>\\d\\d\\d\\d)`,
    x: `${PY_MO}/${PY_D}/(?P<y>\\d\\d)`,
    X: `${PY_H}:${PY_M}:${PY_S}`,
    d: "(?P<d>[1-2]\\d|[0 ]?[1-9]|3[0-1])",
    f: "(?P<f>[0-9]{1,6})",
    G: "(?P<G>\\d\\d\\d\\d)",
    H: "(?P<H>[0-1]?\\d|2[0-3])",
    I: "(?P<I>1[0-2]|0[1-9]|[1-9])",
    j: "(?P<j>36[0-6]|3[0-5]\\d|[1-2]\\d\\d|0[1-9]\\d|00[1-9]|[1-9]\\d|0[1-9]|[1-9])",
    k: " ?(?P<H>[0-2]?\\d)",
    l: " ?(?P<I>1?\\d)",
    m: "(?P<m>0?[1-9]|1[0-2])",
    M: "(?P<M>[0-5]?\\d)",
    p: seqRE("p", ["am", "pm"]),
    S: "(?P<S>[0-5]?\\d|6[0-1])",
    s: "(?P<s>\\d{1,11})", // not in Fail2ban 1.0.2: epoch seconds, as in strftime
    u: "(?P<u>[1-7])",
    U: "(?P<U>5[0-3]|[0-4]\\d|\\d)",
    V: "(?P<V>5[0-3]|0[1-9]|[1-4]\\d|\\d)",
    w: "(?P<w>[0-6])",
    W: "(?P<W>5[0-3]|[0-4]\\d|\\d)",
    y: "(?P<y>\\d\\d)",
    Y: "(?P<Y>\\d{4})",
    z: "(?P<z>Z|UTC|GMT|[+-][01]\\d(?::?\\d{2})?)",
    Z: "(?P<Z>Z|[A-Z]{3,5})",
    "%": "%",
    ExZ: `(?P<Z>${TZ_ABBR_RE})`,
    Exz: `(?P<z>(?:${TZ_ABBR_RE})?[+-][01]\\d(?::?\\d{2})?|${TZ_ABBR_RE})`,
    Exd: "(?P<d>[1-2]\\d|0[1-9]|3[0-1])",
    Exm: "(?P<m>0[1-9]|1[0-2])",
    ExH: "(?P<H>[0-1]\\d|2[0-3])",
    Exk: " ?(?P<H>[0-1]?\\d|2[0-3])",
    Exl: " ?(?P<I>1[0-2]|\\d)",
    ExM: "(?P<M>[0-5]\\d)",
    ExS: "(?P<S>[0-5]\\d|6[0-1])",
    ExY: exY,
    Exy: "(?P<y>\\d{2})",
  };
}

const DIRECTIVE_NAMES: Record<string, string> = {
  a: "DAY",
  A: "DAYNAME",
  b: "MON",
  B: "MONTH",
  d: "Day",
  H: "24hour",
  I: "12hour",
  j: "Yearday",
  m: "Month",
  M: "Minute",
  p: "AMPM",
  S: "Second",
  U: "Yearweek",
  w: "Weekday",
  W: "Yearweek",
  y: "Year2",
  Y: "Year",
  "%": "%",
  z: "Zone offset",
  f: "Microseconds",
  Z: "Zone name",
  ExZ: "ExZone name",
  Exz: "ExZone offset",
  Exd: "ExDay",
  Exm: "ExMonth",
  ExH: "Ex24hour",
  ExM: "ExMinute",
  ExS: "ExSecond",
  ExY: "ExYear",
  Exy: "ExYear2",
};

const DIRECTIVE_RE = /%(%|ExZ|Exz|Exd|Exm|ExH|Exk|Exl|ExM|ExS|ExY|Exy|[dfHIGjmMSUwuVyYzAaBbpZ%WcxXkls])/y;

/**
 * %ExY: the years from 2000 to 3 years after now, by decade (strptime.py _getYearCentRE: Fail2ban
 * builds it from the current year and the year 2001).
 */
function exYearRE(year: number): string {
  const last = Math.max(year + 3, 2009);
  const cents: string[] = [];
  for (let c = 200; c <= Math.floor(last / 10); c++) cents.push(String(c));
  const allTwenty = cents.every((c) => c.startsWith("20"));
  const body = allTwenty
    ? cents.length === 1
      ? cents[0]!
      : `20[${cents.map((c) => c[2]).join("")}]`
    : `(?:${cents.join("|")})`;
  return `(?P<Y>${body}\\d)`;
}

// ---------------------------------------------------------------------------------------------
// Zones (strptime.py validateTimeZone / zone2offset / TZ_ABBR_OFFS)

const TZ_ABBR_OFFS = new Map<string, number>([["", 0]]);
for (const row of [
  "-12 Y",
  "-11 X NUT SST",
  "-10 W CKT HAST HST TAHT TKT",
  "-9 V AKST GAMT GIT HADT HNY",
  "-8 U AKDT CIST HAY HNP PST PT",
  "-7 T HAP HNR MST PDT",
  "-6 S CST EAST GALT HAR HNC MDT",
  "-5 R CDT COT EASST ECT EST ET HAC HNE PET",
  "-4 Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT",
  "-3 P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT",
  "-2 O BRST FNT PMDT UYST WGST",
  "-1 N AZOT CVT EGT",
  "0 Z EGST GMT UTC WET WT",
  "1 A CET DFT WAT WEDT WEST",
  "2 B CAT CEDT CEST EET SAST WAST",
  "3 C EAT EEDT EEST IDT MSK",
  "4 D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT",
  "5 E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT",
  "6 F ALMT BIOT BTT IOT KGT NOVT OMST YEKST",
  "7 G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB",
  "8 H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST",
  "9 I AWDT IRKST JST KST PWT TLT WDT WIT YAKT",
  "10 K AEST ChST PGT VLAT YAKST YAPT",
  "11 L AEDT LHDT MAGT NCT PONT SBT VLAST VUT",
  "12 M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT",
  "13 FJST NZDT",
  "11.5 NFT",
  "10.5 ACDT LHST",
  "9.5 ACST",
  "6.5 CCT MMT",
  "5.75 NPT",
  "5.5 SLT",
  "4.5 AFT IRDT",
  "3.5 IRST",
  "-2.5 HAT NDT",
  "-3.5 HNT NST NT",
  "-4.5 HLV VET",
  "-9.5 MART MIT",
]) {
  const [off, ...names] = row.split(" ");
  for (const n of names) TZ_ABBR_OFFS.set(n, Math.trunc(Number(off) * 60));
}

const FIXED_OFFSET_TZ_RE = /^([A-Z](?:[A-Z]{2,4})?)?([+-][01]\d(?::?\d{2})?)?$/;

/** Offset in minutes east of UTC of a Fail2ban zone text, or NaN if Fail2ban rejects it. */
function zoneOffset(tz: string): number {
  if (tz === "Z" || tz === "UTC" || tz === "GMT") return 0;
  const m = FIXED_OFFSET_TZ_RE.exec(tz);
  if (!m) return Number.NaN;
  const base = TZ_ABBR_OFFS.get(m[1] ?? "");
  if (base === undefined) return Number.NaN;
  const o = m[2];
  if (!o) return base;
  const sign = o[0] === "-" ? -1 : 1;
  if (o.length <= 3) return base + sign * Number(o.slice(1)) * 60;
  const mm = o[3] === ":" ? o.slice(4, 6) : o.slice(3, 5);
  return base + sign * (Number(o.slice(1, 3)) * 60 + Number(mm));
}

// ---------------------------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, no allocation)

function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** year*10000 + month*100 + day of a day number */
function civilFromDays(z: number): number {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return (yoe + era * 400 + (m <= 2 ? 1 : 0)) * 10000 + m * 100 + d;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

function validDate(y: number, m: number, d: number): boolean {
  return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 && d <= daysInMonth(y, m);
}

/** Zone names that are UTC (offset 0, no daylight saving) under any name ICU knows them by. */
const UTC_ZONES = new Set([
  "UTC",
  "Etc/UTC",
  "UCT",
  "Etc/UCT",
  "Universal",
  "Etc/Universal",
  "Zulu",
  "Etc/Zulu",
]);

/**
 * Whether the process's zone is UTC, told without the time-zone database: TZ names a UTC zone,
 * or TZ is unset and /etc/localtime links to one (ICU reads the zone the same way). Local time
 * is then UTC, and the first local-time call (about 3 ms: ICU loads its zone data) is saved in
 * every process that reads dates, scan's workers among them. Anything else is left to ICU.
 */
export function utcZone(): boolean {
  const tz = process.env.TZ;
  if (tz !== undefined) return UTC_ZONES.has(tz.replace(/^:/, ""));
  try {
    return UTC_ZONES.has(readlinkSync("/etc/localtime").replace(/^.*\/zoneinfo\//, ""));
  } catch {
    return false;
  }
}

/** Local-time conversions of the process zone (TZ), cached by hour. */
class LocalZone {
  /** The zone is UTC: local time is epoch time (see utcZone). */
  private readonly utc = utcZone();
  private lastHour = Number.NaN;
  private lastDelta = 0;
  private readonly hours = new Map<number, number>();
  private lastBucket = Number.NaN;
  private lastOffset = 0;

  /** Epoch seconds of a local wall time given as seconds since 1970-01-01 00:00 "wall". */
  toEpoch(wall: number): number {
    if (this.utc) return wall;
    const hour = Math.floor(wall / 3600);
    if (hour === this.lastHour) return wall + this.lastDelta;
    let delta = this.hours.get(hour);
    if (delta === undefined) {
      delta = this.hourDelta(hour);
      if (this.hours.size > 100_000) this.hours.clear();
      this.hours.set(hour, delta);
    }
    if (Number.isNaN(delta)) return this.slow(wall);
    this.lastHour = hour;
    this.lastDelta = delta;
    return wall + delta;
  }

  /** epoch - wall for a whole local hour, NaN if the offset changes inside it. */
  private hourDelta(hour: number): number {
    const start = this.slow(hour * 3600);
    const end = this.slow(hour * 3600 + 3599);
    if (end - start !== 3599) return Number.NaN;
    return start - hour * 3600;
  }

  private slow(wall: number): number {
    const days = Math.floor(wall / 86400);
    const ymd = civilFromDays(days);
    let s = wall - days * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const mi = Math.floor(s / 60);
    s -= mi * 60;
    const dt = new Date(2000, 0, 1, 0, 0, 0, 0);
    dt.setFullYear(Math.floor(ymd / 10000), (Math.floor(ymd / 100) % 100) - 1, ymd % 100);
    dt.setHours(h, mi, Math.floor(s), 0);
    return dt.getTime() / 1000 + (s - Math.floor(s));
  }

  /** Local wall seconds of an epoch (Fail2ban's naive `datetime.now()`). */
  toWall(epoch: number): number {
    if (this.utc) return epoch;
    const bucket = Math.floor(epoch / 900);
    if (bucket !== this.lastBucket) {
      this.lastBucket = bucket;
      this.lastOffset = -new Date(bucket * 900_000).getTimezoneOffset() * 60;
    }
    return epoch + this.lastOffset;
  }
}

// ---------------------------------------------------------------------------------------------
// Python regex → JS regex

type Part = string | number; // number: a back reference to that (template-local) group

interface Translated {
  parts: Part[];
  groups: number; // capture groups of the JS source
  lean: Part[]; // the same without captures (but those back references use), for unions
  leanGroups: number;
  date: number; // JS group of Fail2ban's group(1)
  pre: number; // JS group that holds the text before it (0: it starts at the match start)
  indices: boolean; // start of group(1) needs the "d" flag
  ci: boolean;
  caret: boolean; // starts with ^ and has no top-level alternation: sticky at 0 == search
  first: string | null; // class body of the characters a match can start with, if known
  named: [string, number][]; // Python group names → JS groups, in group order
}

type Tok =
  | { k: "txt"; s: string }
  | { k: "open"; s: string; cap: boolean; name?: string }
  | { k: "close" }
  | { k: "alt" }
  | { k: "ref"; g: number };

const SYNTAX = "^$\\.*+?()[]{}|/";

function pyEscape(py: string, i: number, inClass: boolean, toks: Tok[] | null): [string, number] {
  const c = py[i + 1];
  if (c === undefined) throw new Error("bad escape (end of pattern)");
  switch (c) {
    case "d":
    case "D":
    case "s":
    case "S":
    case "n":
    case "r":
    case "t":
    case "f":
    case "v":
      return [`\\${c}`, i + 2];
    case "a":
      return ["\\x07", i + 2];
    case "w":
      return [inClass ? WC : RX_WORD, i + 2];
    case "W":
      return [inClass ? "\\W" : RX_NWORD, i + 2];
    case "b":
      return [inClass ? "\\x08" : RX_B, i + 2];
    case "B":
      if (inClass) throw new Error("bad escape \\B");
      return [RX_NB, i + 2];
    case "A":
      if (inClass) throw new Error("bad escape \\A");
      return ["^", i + 2];
    case "Z":
      if (inClass) throw new Error("bad escape \\Z");
      return ["$", i + 2];
    case "x": {
      const h = /^[0-9a-fA-F]{2}/.exec(py.slice(i + 2));
      if (!h) throw new Error("bad escape \\x");
      return [`\\x${h[0]}`, i + 4];
    }
    case "u": {
      const h = /^[0-9a-fA-F]{4}/.exec(py.slice(i + 2));
      if (!h) throw new Error("bad escape \\u");
      return [`\\u${h[0]}`, i + 6];
    }
    case "U": {
      const h = /^[0-9a-fA-F]{8}/.exec(py.slice(i + 2));
      if (!h) throw new Error("bad escape \\U");
      return [`\\u{${h[0].replace(/^0+(?=.)/, "")}}`, i + 10];
    }
  }
  if (c >= "0" && c <= "9") {
    const oct = /^[0-7]{3}/.exec(py.slice(i + 1));
    if (c === "0" || oct) {
      const o = /^[0-7]{1,3}/.exec(py.slice(i + 1))![0];
      return [`\\u{${Number.parseInt(o, 8).toString(16)}}`, i + 1 + o.length];
    }
    if (inClass || !toks) throw new Error("bad escape (back reference in a class)");
    const g = /^\d{1,2}/.exec(py.slice(i + 1))![0];
    toks.push({ k: "ref", g: Number(g) });
    return ["", i + 1 + g.length];
  }
  if (/[A-Za-z0-9]/.test(c)) throw new Error(`bad escape \\${c}`);
  const cp = py.codePointAt(i + 1)!;
  const ch = String.fromCodePoint(cp);
  if (SYNTAX.includes(ch) || (inClass && ch === "-")) return [`\\${ch}`, i + 1 + ch.length];
  return [ch, i + 1 + ch.length];
}

function translate(src: string): Translated {
  let py = src;
  let ci = false;
  let dotall = false;
  for (let g = /^\(\?([aiLmsux]+)\)/.exec(py); g; g = /^\(\?([aiLmsux]+)\)/.exec(py)) {
    const f = g[1]!;
    if (f.includes("x")) throw new Error("verbose flag (?x) is not supported");
    if (f.includes("L")) throw new Error("locale flag (?L) is not supported");
    if (f.includes("i")) ci = true;
    if (f.includes("s")) dotall = true;
    py = py.slice(g[0].length);
  }
  const toks: Tok[] = [];
  const names = new Map<string, number>();
  const named: [string, number][] = [];
  let groups = 0;
  let depth = 0;
  let i = 0;
  const txt = (s: string) => toks.push({ k: "txt", s });
  while (i < py.length) {
    const c = py[i]!;
    if (c === "\\") {
      const [s, j] = pyEscape(py, i, false, toks);
      if (s) txt(s);
      i = j;
    } else if (c === "[") {
      let s = "[";
      let j = i + 1;
      if (py[j] === "^") {
        s += "^";
        j++;
      }
      if (py[j] === "]") {
        s += "\\]";
        j++;
      }
      for (;;) {
        const d = py[j];
        if (d === undefined) throw new Error("unterminated character set");
        if (d === "]") break;
        if (d === "\\") {
          const [e, k] = pyEscape(py, j, true, null);
          s += e;
          j = k;
        } else {
          s += d === "[" ? "\\[" : d;
          j++;
        }
      }
      txt(s + "]");
      i = j + 1;
    } else if (c === "(") {
      if (py.startsWith(PY_WBEG, i) || py.startsWith(PY_WEND, i)) {
        txt(RX_WBOUND);
        i += PY_WBEG.length;
        continue;
      }
      if (py[i + 1] !== "?") {
        groups++;
        toks.push({ k: "open", s: "(", cap: true });
        depth++;
        i++;
        continue;
      }
      const rest = py.slice(i + 2);
      let m: RegExpExecArray | null;
      if ((m = /^P<([A-Za-z_]\w*)>/.exec(rest))) {
        const name = m[1]!;
        if (names.has(name)) throw new Error(`redefinition of group name '${name}'`);
        groups++;
        names.set(name, groups);
        toks.push({ k: "open", s: "(", cap: true, name });
        depth++;
        i += 2 + m[0].length;
      } else if ((m = /^P=([A-Za-z_]\w*)\)/.exec(rest))) {
        const g = names.get(m[1]!);
        if (g === undefined) throw new Error(`unknown group name '${m[1]}'`);
        toks.push({ k: "ref", g });
        i += 2 + m[0].length;
      } else if ((m = /^(?::|=|!|<=|<!)/.exec(rest))) {
        toks.push({ k: "open", s: `(?${m[0]}`, cap: false });
        depth++;
        i += 2 + m[0].length;
      } else if (rest.startsWith("#")) {
        const end = py.indexOf(")", i);
        if (end < 0) throw new Error("missing ), unterminated comment");
        i = end + 1;
      } else if ((m = /^([aiLmsux]*)(?:-([imsx]*))?:/.exec(rest))) {
        const on = m[1]!;
        const off = m[2] ?? "";
        if (/[xL]/.test(on + off)) throw new Error("flags x and L are not supported");
        const jsOn = on.replace(/[au]/g, "");
        const flags = jsOn + (off ? `-${off}` : "");
        toks.push({ k: "open", s: flags && flags !== "-" ? `(?${flags}:` : "(?:", cap: false });
        depth++;
        i += 2 + m[0].length;
      } else if (/^[aiLmsux]+\)/.test(rest)) {
        throw new Error("global flags not at the start of the expression");
      } else if (rest.startsWith("(")) {
        throw new Error("conditional groups (?(...)...) are not supported");
      } else {
        throw new Error(`unknown extension ?${rest[0] ?? ""}`);
      }
    } else if (c === ")") {
      if (depth === 0) throw new Error("unbalanced parenthesis");
      depth--;
      toks.push({ k: "close" });
      i++;
    } else if (c === "|") {
      toks.push({ k: "alt" });
      i++;
    } else if (c === "{") {
      const m = /^\{(\d*)(?:(,)(\d*))?\}/.exec(py.slice(i));
      if (m && (m[1] || m[2])) {
        txt(m[2] ? `{${m[1] || "0"},${m[3]}}` : `{${m[1]}}`);
        i += m[0].length;
      } else {
        txt("\\{");
        i++;
      }
    } else if (c === "}" || c === "]") {
      txt(`\\${c}`);
      i++;
    } else if (c === ".") {
      txt(dotall ? "[^]" : "[^\\n]");
      i++;
    } else {
      const ch = String.fromCodePoint(py.codePointAt(i)!);
      txt(ch);
      i += ch.length;
    }
  }
  if (depth !== 0) throw new Error("missing ), unterminated subpattern");
  if (groups === 0) throw new Error("the pattern has no group for the date");

  // where is group 1, and can the text before it be captured as a whole?
  let g1 = -1;
  let g1depth = 0;
  let topAlt = false;
  let d = 0;
  for (let t = 0; t < toks.length; t++) {
    const tok = toks[t]!;
    if (tok.k === "open") {
      if (tok.cap && g1 < 0) {
        g1 = t;
        g1depth = d;
      }
      d++;
    } else if (tok.k === "close") d--;
    else if (tok.k === "alt" && d === 0) topAlt = true;
  }
  let repeated = false;
  {
    let e = g1 + 1;
    for (let dd = 1; dd > 0; e++) {
      const tok = toks[e]!;
      if (tok.k === "open") dd++;
      else if (tok.k === "close") dd--;
    }
    const next = toks[e];
    repeated = next?.k === "txt" && /^[*+?{]/.test(next.s);
  }
  const wrapPre = g1depth === 0 && !topAlt && !repeated;
  const pre = wrapPre && g1 > 0 ? 1 : 0;
  const parts: Part[] = [];
  if (pre) parts.push("(");
  for (let t = 0; t < toks.length; t++) {
    const tok = toks[t]!;
    if (pre && t === g1) parts.push(")");
    if (tok.k === "txt") parts.push(tok.s);
    else if (tok.k === "open") parts.push(tok.s);
    else if (tok.k === "close") parts.push(")");
    else if (tok.k === "alt") parts.push("|");
    else {
      if (tok.g > groups) throw new Error(`invalid group reference ${tok.g}`);
      parts.push(tok.g + pre);
    }
  }
  for (const [name, g] of names) named.push([name, g + pre]);
  named.sort((a, b) => a[1] - b[1]);
  // lean: only the groups that back references need stay capturing
  const refd = new Set<number>();
  for (const tok of toks) if (tok.k === "ref") refd.add(tok.g);
  const leanNum = new Map<number, number>();
  const lean: Part[] = [];
  let pyGroup = 0;
  for (const tok of toks) {
    if (tok.k === "open" && tok.cap) {
      pyGroup++;
      if (refd.has(pyGroup)) {
        leanNum.set(pyGroup, leanNum.size + 1);
        lean.push("(");
      } else lean.push("(?:");
    } else if (tok.k === "txt" || tok.k === "open") lean.push(tok.s);
    else if (tok.k === "close") lean.push(")");
    else if (tok.k === "alt") lean.push("|");
    else lean.push(leanNum.get(tok.g) ?? 0);
  }
  if (lean.includes(0)) throw new Error("back reference to a group that is not closed yet");
  const first = toks[0];
  return {
    parts,
    groups: groups + pre,
    lean,
    leanGroups: leanNum.size,
    date: 1 + pre,
    pre,
    indices: !wrapPre,
    ci,
    caret: !topAlt && first?.k === "txt" && first.s.startsWith("^"),
    first: firstChars(toks, 0, toks.length, ci),
    named,
  };
}

const ZERO_WIDTH = new Set(["^", "$", RX_WBOUND, RX_B, RX_NB]);

/**
 * The characters a match of toks[from, to) can start with, as a class body, or null if that is
 * not simple to tell (or the sequence can match the empty string).
 */
function firstChars(toks: Tok[], from: number, to: number, ci: boolean): string | null {
  const r = firstOf(toks, from, to, ci);
  return r && !r.nullable ? r.set : null;
}

function firstOf(
  toks: Tok[],
  from: number,
  to: number,
  ci: boolean,
): { set: string; nullable: boolean } | null {
  // alternatives at this level
  const alts: [number, number][] = [];
  let d = 0;
  let a = from;
  for (let i = from; i < to; i++) {
    const t = toks[i]!;
    if (t.k === "open") d++;
    else if (t.k === "close") d--;
    else if (t.k === "alt" && d === 0) {
      alts.push([a, i]);
      a = i + 1;
    }
  }
  alts.push([a, to]);
  let set = "";
  let nullable = false;
  for (const [s, e] of alts) {
    const r = firstOfSeq(toks, s, e, ci);
    if (!r) return null;
    set += r.set;
    nullable ||= r.nullable;
  }
  return { set, nullable };
}

/** A class body that can be put next to others: no "-" or "^" at its ends. */
function classPiece(body: string): string {
  if (body.startsWith("-") || body.startsWith("^")) body = `\\${body}`;
  if (body.endsWith("-") && !body.endsWith("\\-")) body = `${body.slice(0, -1)}\\-`;
  return body;
}

function firstOfSeq(
  toks: Tok[],
  from: number,
  to: number,
  ci: boolean,
): { set: string; nullable: boolean } | null {
  let set = "";
  let i = from;
  while (i < to) {
    const t = toks[i]!;
    let atom: { set: string; nullable: boolean } | null;
    let next = i + 1;
    if (t.k === "open") {
      let d = 1;
      while (d > 0) {
        const u = toks[next++]!;
        if (u.k === "open") d++;
        else if (u.k === "close") d--;
      }
      if (/^\(\?<?[=!]/.test(t.s)) atom = { set: "", nullable: true };
      else if (/^\(\?[a-z-]+:/.test(t.s)) return null;
      else atom = firstOf(toks, i + 1, next - 1, ci);
    } else if (t.k === "txt") {
      const x = t.s;
      if (ZERO_WIDTH.has(x)) atom = { set: "", nullable: true };
      else if (/^[*+?{]/.test(x)) return null;
      else if (x === RX_WORD) atom = { set: WC, nullable: false };
      else if (x === "\\d" || x === "\\s") atom = { set: x, nullable: false };
      else if (/^\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})$/.test(x)) atom = { set: x, nullable: false };
      else if (x.startsWith("[") && !x.startsWith("[^")) {
        const body = x.slice(1, -1);
        if (ci && body.includes("\\")) return null;
        atom = { set: ci ? body.toLowerCase() + body.toUpperCase() : body, nullable: false };
      } else if (x.length === 1 && /[A-Za-z0-9 _:,.@<>=#%&'"/;!~`]/.test(x)) {
        const e = "/".includes(x) ? `\\${x}` : x;
        atom = { set: ci ? e.toLowerCase() + e.toUpperCase() : e, nullable: false };
      } else if (/^\\[-+.*?()[\]{}|^$/]$/.test(x)) atom = { set: x, nullable: false };
      else return null;
    } else return null; // alternation inside a sequence cannot happen here, back references: unknown
    if (!atom) return null;
    // a quantifier that allows zero repetitions
    const q = toks[next];
    if (q?.k === "txt" && /^(?:[*?]|\{0[,}])/.test(q.s)) {
      atom = { set: atom.set, nullable: true };
      next++;
    } else if (q?.k === "txt" && /^(?:\+|\{[1-9])/.test(q.s)) next++;
    if (toks[next]?.k === "txt" && (toks[next] as { s: string }).s === "?") next++; // lazy
    set += classPiece(atom.set);
    if (!atom.nullable) return { set, nullable: false };
    i = next;
  }
  return { set, nullable: true };
}

/** JS source of a translated regex whose group k is group `base + k` of the whole regex. */
function emit(parts: Part[], base: number): string {
  let s = "";
  for (const p of parts) s += typeof p === "number" ? `(?:\\${p + base})` : p;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Templates (datetemplate.py)

const KIND_PATTERN = 0;
const KIND_EPOCH = 1;
const KIND_TAI64N = 2;

// field codes of named groups
const F_Y = 1;
const F_y = 2;
const F_m = 3;
const F_b = 4;
const F_B = 5;
const F_d = 6;
const F_H = 7;
const F_I = 8;
const F_M = 9;
const F_S = 10;
const F_z = 11;
const F_a = 12;
const F_A = 13;
const F_w = 14;
const F_j = 15;
const F_U = 16;
const F_W = 17;
const F_s = 18;
const FIELD_CODES: Record<string, number> = {
  Y: F_Y,
  y: F_y,
  m: F_m,
  b: F_b,
  B: F_B,
  d: F_d,
  H: F_H,
  I: F_I,
  M: F_M,
  S: F_S,
  z: F_z,
  Z: F_z,
  a: F_a,
  A: F_A,
  w: F_w,
  j: F_j,
  U: F_U,
  W: F_W,
  s: F_s,
};

/** A date template (Fail2ban's DatePatternRegex, DateEpoch or DateTai64n). */
class Tpl {
  name = "";
  /** the pattern it was built from (Fail2ban's `template.pattern`), or null for Epoch/TAI64N */
  pattern: string | null = null;
  kind = KIND_PATTERN;
  flags = 0;
  rx!: Translated;
  /** [field code, JS group] pairs in group order */
  fields: number[] = [];
  pGroup = 0; // JS group of %p, 0 if none
  epochGroup = 1;
  longFrm = false;

  get breaker(): boolean {
    return (this.flags & (LINE_BEGIN | LINE_END)) !== 0;
  }

  /**
   * DateTemplate.setRegex: boundaries, group 1, flags, then the translation to JS.
   * wordBegin: true (word boundary), "start" ({^LN-BEG}) or false.
   */
  setRegex(input: string, wordBegin: boolean | "start" = true, wordEnd = true): void {
    let regex = input.trim();
    const gf = /((?:^|(?!<\\))\(\?[a-z]+\))/.exec(regex);
    if (gf) regex = regex.replace(gf[1]!, "");
    const boundBegin = wordBegin !== false && !/^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)/.test(regex);
    const boundEnd = wordEnd && !/(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$/.test(regex);
    if (!/(?<!\(\?)(?<!\\)\((?!\?)/.test(regex)) {
      regex = regex.replace(/^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$/, "$1($2)$3");
    }
    this.flags = 0;
    if (boundBegin) {
      if (wordBegin !== "start") {
        this.flags |= WORD_BEGIN;
        regex = PY_WBEG + regex;
      } else {
        this.flags |= LINE_BEGIN;
        regex = PY_LNBEG + regex;
        if (!this.name.startsWith("{^LN-BEG}")) this.name = "{^LN-BEG}" + this.name;
      }
    }
    if (boundEnd) {
      this.flags |= WORD_END;
      regex += PY_WEND;
    }
    if (!(this.flags & LINE_BEGIN) && /^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))/.test(regex)) {
      this.flags |= LINE_BEGIN;
    }
    if (/(?<![\\|])(?:\$\)?)$/.test(regex)) this.flags |= LINE_END;
    regex = regex.replace(/^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$/g, (m) => m.replaceAll("**", ""));
    if (gf) regex = gf[1] + regex;
    this.compile(regex);
  }

  private compile(regex: string): void {
    const rx = translate(regex);
    this.rx = rx;
    // refuse now what would fail at match time (throws SyntaxError)
    void new RegExp(emit(rx.parts, 0), rx.ci ? "iu" : "u");
    this.fields = [];
    for (const [name, g] of rx.named) {
      const code = FIELD_CODES[name];
      if (code !== undefined) this.fields.push(code, g);
      if (name === "p") this.pGroup = g;
    }
  }
}

const RE_EPOCH_PATTERN = /(?<!\\)\{L?EPOCH\}/i;
const EPOCH_RE = "\\d{10,11}\\b(?:\\.\\d{3,6})?";
const LEPOCH_RE = "\\d{10,11}(?:\\d{3}(?:\\.\\d{1,6}|\\d{3})?)?";

/** DateEpoch */
function epochTemplate(lineBeginOnly: boolean, pattern: string | null, longFrm: boolean): Tpl {
  const t = new Tpl();
  t.kind = KIND_EPOCH;
  t.longFrm = longFrm;
  t.name = pattern ?? (longFrm ? "LongEpoch" : "Epoch");
  const epochRE = longFrm ? LEPOCH_RE : EPOCH_RE;
  if (pattern) {
    t.pattern = pattern;
    t.epochGroup = 2;
    t.setRegex(`(${pattern.replace(new RegExp(RE_EPOCH_PATTERN.source, "gi"), `(${epochRE})`)})`);
    if (t.rx.indices) throw new Error("the {EPOCH} pattern is too complex");
    t.epochGroup = 2 + t.rx.pre;
  } else {
    if (!lineBeginOnly) {
      // Fail2ban's "(?(selinux)...)|(?(square)...)" tail never fails, so it is left out.
      t.setRegex(`((?:^|(?<=^\\[)|(?<=\\baudit\\())${epochRE})`, false);
    } else {
      // here too the "(?(square)(?=\]))" check can always be skipped by backtracking
      t.setRegex(`(${epochRE})`, "start", true);
    }
    t.epochGroup = t.rx.date;
  }
  return t;
}

/** DateTai64n */
function tai64nTemplate(wordBegin: boolean | "start"): Tpl {
  const t = new Tpl();
  t.kind = KIND_TAI64N;
  t.name = "TAI64N";
  t.setRegex("@[0-9a-f]{24}", wordBegin);
  return t;
}

/** DatePatternRegex: expand %-directives, then setRegex. */
function patternTemplate(pattern: string, tre: Record<string, string>): Tpl {
  const t = new Tpl();
  t.pattern = pattern;
  let p = pattern;
  let wordBegin: boolean | "start" = true;
  let wordEnd = true;
  if (/^\{UNB\}/.test(p)) {
    p = p.replace(/^\{UNB\}/, "");
    wordBegin = wordEnd = false;
  }
  if (wordBegin && /^\{\^LN-BEG\}/.test(p)) {
    p = p.replace(/^\{\^LN-BEG\}/, "");
    wordBegin = "start";
  }
  let regex = "";
  let name = "";
  for (let i = 0; i < p.length; ) {
    const pc = p.indexOf("%", i);
    if (pc < 0) {
      regex += p.slice(i);
      name += p.slice(i);
      break;
    }
    regex += p.slice(i, pc);
    name += p.slice(i, pc);
    DIRECTIVE_RE.lastIndex = pc;
    const m = DIRECTIVE_RE.exec(p);
    if (!m) {
      throw new Error(`unknown directive or unescaped percent char at "${p.slice(pc, pc + 4)}"`);
    }
    const k = m[1]!;
    regex += tre[k];
    name += DIRECTIVE_NAMES[k] ?? `%${k}`;
    i = pc + m[0].length;
  }
  if (/(?<!%)%[aAbBpc]/.test(p)) regex = "(?iu)" + regex;
  t.name = name;
  t.setRegex(regex, wordBegin, wordEnd);
  return t;
}

const DEFAULT_PATTERNS = [
  "%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\\s*%z)?",
  "(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?",
  "(?:%a )?%b %d %ExY %k:%M:%S(?:\\.%f)?",
  "%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
  "%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\\.%f)?(?: %z)?",
  "%m/%d/%ExY:%H:%M:%S",
  "%m-%d-%ExY %k:%M:%S(?:\\.%f)?",
  "EPOCH",
  "{^LN-BEG}%H:%M:%S",
  "^<%m/%d/%Exy@%H:%M:%S>",
  "%Exy%Exm%Exd  ?%H:%M:%S",
  "%b %d, %ExY %I:%M:%S %p",
  "^%b-%d-%Exy %k:%M:%S",
  "%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\\s*%z)?",
  "(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?",
  "(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?",
  "TAI64N",
];

/** datedetector.py _getPatternTemplate */
function patternToTemplate(pattern: string, tre: Record<string, string>, key?: string): Tpl {
  if (key === undefined) key = pattern.includes("%") ? pattern : pattern.toUpperCase();
  if (key.includes("EPOCH")) {
    if (RE_EPOCH_PATTERN.test(pattern)) return epochTemplate(false, pattern, key.includes("LEPOCH"));
    if (key === "EPOCH" || key === "{^LN-BEG}EPOCH" || key === "^EPOCH") {
      return epochTemplate(key !== "EPOCH", null, false);
    }
    if (key === "LEPOCH" || key === "{^LN-BEG}LEPOCH" || key === "^LEPOCH") {
      return epochTemplate(key !== "LEPOCH", null, true);
    }
  }
  if (key === "TAI64N" || key === "{^LN-BEG}TAI64N" || key === "^TAI64N") {
    return tai64nTemplate(key !== "TAI64N" ? "start" : false);
  }
  return patternTemplate(pattern, tre);
}

/** DateTemplate.unboundPattern */
function unboundPattern(p: string): string {
  return p
    .replace(/^\{UNB\}/, "")
    .replace(/^\{\^LN-BEG\}/, "")
    .replace(/^\((?:\?:)?\^\|\\b\|\\W\)/, "")
    .replace(/\(\?=\\b\|\\W\|\$\)$/, "");
}

interface DefaultSet {
  base: Tpl[]; // DEFAULT_TEMPLATES
  all: Tpl[]; // the line-begin variants first, then the base list (DateDetectorCache)
}

const defaultSets = new Map<string, DefaultSet>();

function defaults(tre: Record<string, string>): DefaultSet {
  const exY = tre.ExY!;
  let set = defaultSets.get(exY);
  if (set) return set;
  const base = DEFAULT_PATTERNS.map((p) => patternToTemplate(p, tre));
  const anchored: Tpl[] = [];
  for (const t of base) {
    if (t.name.startsWith("{^LN-BEG}") || t.name.startsWith("^")) continue;
    const t2 =
      t.pattern !== null
        ? patternToTemplate("{^LN-BEG}" + t.pattern, tre)
        : patternToTemplate("{^LN-BEG}" + t.name, tre);
    if (t2.name !== t.name) anchored.push(t2);
  }
  set = { base, all: [...anchored, ...base] };
  defaultSets.set(exY, set);
  return set;
}

/** The template list of a datepattern, as DateDetector.appendTemplate builds it. */
function buildTemplates(datepattern: string | undefined, tre: Record<string, string>): Tpl[] {
  if (datepattern === undefined) return defaults(tre).all;
  const list: Tpl[] = [];
  const known = new Set<string>();
  const add = (t: Tpl, ignoreDup: boolean) => {
    if (known.has(t.name)) {
      if (ignoreDup) return;
      throw new Error(`there is already a template with name ${t.name}`);
    }
    known.add(t.name);
    list.push(t);
  };
  const lines = datepattern
    .split(/\n+/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (lines.length === 0) return defaults(tre).all;
  for (const pattern of lines) {
    const key = pattern.includes("%") ? pattern : pattern.toUpperCase();
    if (key === "{^LN-BEG}" || key === "{DEFAULT}") {
      const ignoreDup = list.length > 0;
      for (const t of defaults(tre).all) {
        if (key === "{^LN-BEG}" && !(t.flags & LINE_BEGIN)) continue;
        add(t, ignoreDup);
      }
    } else if (key.includes("{DATE}")) {
      const ignoreDup = list.length > 0;
      const wrap = (s: string) => pattern.replace(/(?<!\\)\{DATE\}/gi, () => unboundPattern(s));
      for (const t of defaults(tre).base) {
        const t2 =
          t.pattern !== null ? patternToTemplate(wrap(t.pattern), tre) : patternToTemplate(wrap(t.name), tre);
        add(t2, ignoreDup);
      }
    } else if (key === "{NONE}") {
      const t = patternTemplate("{UNB}^", tre);
      t.name = "{NONE}";
      add(t, false);
    } else {
      add(patternToTemplate(pattern, tre, key), false);
    }
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// Matching

/**
 * Ordered alternation of templates, without their groups (a result array with hundreds of
 * groups costs more than the match): it tells which template matches first and where; that
 * template's own regex then runs once at that place for the groups.
 */
interface Union {
  re: RegExp;
  markers: number[]; // group of the empty marker "()" in front of each alternative
  order: number[]; // index of each alternative in the detector's template list
}

function makeUnion(tpls: Tpl[], order: number[]): { source: string; markers: number[] } {
  // consecutive alternatives that start with the word boundary share it: one check per position
  let src = "";
  let g = 0;
  let inBound = false;
  const markers: number[] = [];
  for (const i of order) {
    const t = tpls[i]!;
    const bound = t.rx.lean[0] === RX_WBOUND;
    if (inBound && !bound) src += "))";
    if (src && !(inBound && bound)) src += "|";
    if (bound && !inBound) {
      // the characters any of the bounded group can start with: one cheap test per position
      let first = "";
      for (let k = order.indexOf(i); k < order.length; k++) {
        const rx = tpls[order[k]!]!.rx;
        if (rx.lean[0] !== RX_WBOUND) break;
        if (rx.first === null) {
          first = "";
          break;
        }
        first += rx.first;
      }
      src += `(?:${RX_WBOUND}${first ? `(?=[${first}])` : ""}(?:`;
    } else if (inBound && bound) src += "|";
    inBound = bound;
    g++;
    markers.push(g);
    src += `${t.rx.ci ? "(?i:" : "(?:"}()${emit(bound ? t.rx.lean.slice(1) : t.rx.lean, g)})`;
    g += t.rx.leanGroups;
  }
  if (inBound) src += "))";
  return { source: src, markers };
}

/** The template (index in the detector's list) of the alternative that matched, or -1. */
function alternative(u: Union, m: RegExpExecArray | null): number {
  if (!m) return -1;
  const { markers } = u;
  for (let a = 0; a < markers.length; a++) if (m[markers[a]!] !== undefined) return u.order[a]!;
  return -1;
}

interface Compiled {
  tpl: Tpl;
  re: RegExp; // search
  sticky: RegExp; // the same, anchored at lastIndex
}

/** A regex source for lines that are pure ASCII: no "u" flag, which JS runs faster. */
function asciiSource(src: string): string {
  return src.replaceAll(WC, "\\w").replace(/\\u\{([0-9a-f]+)\}/g, (_, h: string) => {
    const cp = Number.parseInt(h, 16);
    if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, "0")}`;
    const c = String.fromCodePoint(cp);
    return `\\u${c.charCodeAt(0).toString(16)}\\u${c.charCodeAt(1).toString(16)}`;
  });
}

/**
 * The compiled regexes of a template list, for lines with any characters (Unicode: Python's
 * `\w` takes in all letters and digits) or for pure ASCII lines. Shared by the detectors of a
 * datepattern: the regexes are only run after setting `lastIndex` (sticky ones) or are neither
 * sticky nor global, so no state of one detector's run is seen by another's.
 */
interface EngineRegexes {
  compiled: Compiled[];
  u0: Union | null; // all templates, sticky at 0
  u1: Union | null; // word-bounded templates, sticky at 1
  uAll: Union | null; // word-bounded templates but the last, search
  firstWord: number;
}

function engineRegexes(tpls: Tpl[], unicode: boolean): EngineRegexes {
  const u = unicode ? "u" : "";
  const src = (s: string) => (unicode ? s : asciiSource(s));
  const compiled = tpls.map((tpl) => {
    const flags = (tpl.rx.ci ? "i" : "") + u + (tpl.rx.indices ? "d" : "");
    const source = src(emit(tpl.rx.parts, 0));
    return { tpl, re: new RegExp(source, flags), sticky: new RegExp(source, `${flags}y`) };
  });
  const r: EngineRegexes = { compiled, u0: null, u1: null, uAll: null, firstWord: 0 };
  const unionable = tpls.length > 2 && tpls.every((t) => !t.rx.indices && (!t.breaker || t.rx.caret));
  if (unionable) {
    const union = (order: number[], flags: string) => {
      const un = makeUnion(tpls, order);
      return { re: new RegExp(src(un.source), flags + u), markers: un.markers, order };
    };
    const all = tpls.map((_, i) => i);
    const word = all.filter((i) => !tpls[i]!.breaker);
    r.u0 = union(all, "y");
    r.firstWord = word.length ? word[0]! : tpls.length;
    if (word.length) {
      r.u1 = union(word, "y");
      const last = tpls.length - 1;
      const rest = word.filter((i) => i !== last);
      if (rest.length) r.uAll = union(rest, "");
    }
  }
  return r;
}

/** One detector's use of the shared regexes of its template list (and what it remembers). */
class Engine {
  private readonly compiled: Compiled[];
  private readonly u0: Union | null;
  private readonly u1: Union | null;
  private readonly uAll: Union | null;
  private readonly firstWord: number;
  /** the template of the last match */
  hit: Tpl | null = null;
  /** the template that won at position 0 last time, if it comes before any word-bounded one */
  private lastEarly = -1;

  constructor(r: EngineRegexes) {
    this.compiled = r.compiled;
    this.u0 = r.u0;
    this.u1 = r.u1;
    this.uAll = r.uAll;
    this.firstWord = r.firstWord;
  }

  /** The match of the winning template (then in `hit`), or null. */
  find(line: string): RegExpExecArray | null {
    return this.u0 ? this.findUnion(line) : this.findLoop(line);
  }

  /** One regex per template, in order (few templates, or templates the unions cannot hold). */
  private findLoop(line: string): RegExpExecArray | null {
    const c = this.compiled;
    const lastI = c.length - 1;
    let best: RegExpExecArray | null = null;
    for (let i = 0; i <= lastI; i++) {
      const m = c[i]!.re.exec(line);
      if (!m) continue;
      if (i === lastI || c[i]!.tpl.breaker || m.index <= 1) {
        this.hit = c[i]!.tpl;
        return m;
      }
      if (!best || m.index < best.index) {
        best = m;
        this.hit = c[i]!.tpl;
      }
    }
    return best;
  }

  private findUnion(line: string): RegExpExecArray | null {
    // fast path: the template that won at the line start last time, if the few templates before
    // it (all line-anchored) do not match: then it is what the ordered search would pick too
    const w = this.lastEarly;
    if (w >= 0) {
      const c = this.compiled;
      let i = 0;
      for (; i < w; i++) {
        const s = c[i]!.sticky;
        s.lastIndex = 0;
        if (s.test(line)) break;
      }
      if (i === w) {
        const s = c[w]!.sticky;
        s.lastIndex = 0;
        const m = s.exec(line);
        if (m) {
          this.hit = c[w]!.tpl;
          return m;
        }
      }
    }
    const u0 = this.u0!;
    u0.re.lastIndex = 0;
    let a = alternative(u0, u0.re.exec(line));
    this.lastEarly = a >= 0 && a <= this.firstWord && a <= 6 ? a : -1;
    if (a < 0 || a > this.firstWord) {
      // a word-bounded template before it may match at position 1
      const u1 = this.u1;
      if (u1) {
        u1.re.lastIndex = 1;
        const a1 = alternative(u1, u1.re.exec(line));
        if (a1 >= 0 && (a < 0 || a1 < a)) return this.at(a1, line, 1);
      }
    }
    if (a >= 0) return this.at(a, line, 0);
    // none at the line start: the last template if it matches, else the leftmost match
    const last = this.compiled[this.compiled.length - 1]!;
    if (!last.tpl.breaker) {
      const m = last.re.exec(line);
      if (m) {
        this.hit = last.tpl;
        return m;
      }
    }
    const u = this.uAll;
    if (!u) return null;
    const m = u.re.exec(line);
    a = alternative(u, m);
    return a < 0 ? null : this.at(a, line, m!.index);
  }

  /** Template `i` at position `pos`, where a union saw it match. */
  private at(i: number, line: string, pos: number): RegExpExecArray | null {
    const c = this.compiled[i]!;
    c.sticky.lastIndex = pos;
    this.hit = c.tpl;
    return c.sticky.exec(line);
  }
}

const MONTH_KEYS = new Map<number, number>();
A_MONTH.forEach((mon, i) => {
  MONTH_KEYS.set((mon.charCodeAt(0) << 16) | (mon.charCodeAt(1) << 8) | mon.charCodeAt(2), i + 1);
});

function toInt(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c >= 0 && c <= 9) n = n * 10 + c;
    else if (c !== -16) return Number.NaN; // a leading space ("%d", "%k") is allowed
  }
  return n;
}

/** _strptime._calc_julian_from_U_or_W */
function julianFromWeek(year: number, week: number, weekday: number, mondayFirst: boolean): number {
  let first = (daysFromCivil(year, 1, 1) + 3) % 7; // Monday = 0
  if (first < 0) first += 7;
  let dow = weekday;
  if (!mondayFirst) {
    first = (first + 1) % 7;
    dow = (dow + 1) % 7;
  }
  const week0 = (7 - first) % 7;
  if (week === 0) return 1 + dow - first;
  return 1 + week0 + 7 * (week - 1) + dow;
}

/** Month (1-12) of "Jan".."Dec" by ((c0-65)*26 + (c1-97))*26 + (c2-97), 0 for anything else. */
const SYSLOG_MONTHS = new Uint8Array(26 * 26 * 26);
A_MONTH.forEach((mon, i) => {
  SYSLOG_MONTHS[((mon.charCodeAt(0) - 97) * 26 + (mon.charCodeAt(1) - 97)) * 26 + (mon.charCodeAt(2) - 97)] =
    i + 1;
});

/** Character code at `i` of a string or of ASCII bytes. */
function code(src: string | Uint8Array, i: number): number {
  return typeof src === "string" ? src.charCodeAt(i) : (src[i] ?? Number.NaN);
}

function twoDigits(src: string | Uint8Array, i: number): number {
  const a = code(src, i) - 48;
  const b = code(src, i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/**
 * The common syslog shape "Mmm dd hh:mm:ss" at the start of the line [s, s + len) of a string
 * or of ASCII bytes, read without a regex: month, day, hour, minute, second packed as
 * MMDDhhmmss, or -1. Only lines the `syslog` template provably matches this way come out (month
 * name as written by syslog, day " 1"-"31", two-digit fields, then the line end or a character
 * that is neither a word character nor "." (a fraction), and not " " + digit (a year)); the
 * templates before it cannot match a line starting with a letter (see syslogTemplate).
 */
function syslogFields(src: string | Uint8Array, s: number, len: number): number {
  if (len < 15) return -1;
  const c0 = code(src, s) - 65;
  const c1 = code(src, s + 1) - 97;
  const c2 = code(src, s + 2) - 97;
  if (c0 < 0 || c0 > 25 || c1 < 0 || c1 > 25 || c2 < 0 || c2 > 25 || code(src, s + 3) !== 32) return -1;
  const month = SYSLOG_MONTHS[(c0 * 26 + c1) * 26 + c2]!;
  if (month === 0) return -1;
  const d0 = code(src, s + 4);
  const d1 = code(src, s + 5) - 48;
  let day: number;
  if (d1 < 0 || d1 > 9) return -1;
  if (d0 === 49 || d0 === 50) day = (d0 - 48) * 10 + d1;
  else if ((d0 === 48 || d0 === 32) && d1 > 0) day = d1;
  else if (d0 === 51 && d1 <= 1) day = 30 + d1;
  else return -1;
  if (code(src, s + 6) !== 32 || code(src, s + 9) !== 58 || code(src, s + 12) !== 58) return -1;
  const hour = twoDigits(src, s + 7);
  const minute = twoDigits(src, s + 10);
  const second = twoDigits(src, s + 13);
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return -1;
  if (len > 15) {
    const n = code(src, s + 15);
    if (n >= 128 || n === 46 || n === 95 || (n >= 48 && n <= 57) || ((n | 32) >= 97 && (n | 32) <= 122))
      return -1;
    if (n === 32 && len > 16) {
      const y = code(src, s + 16);
      if (y >= 48 && y <= 57) return -1;
    }
  }
  return ((month * 100 + day) * 100 + hour) * 1e4 + minute * 100 + second;
}

const LN_BEG_ISO = `{^LN-BEG}${DEFAULT_PATTERNS[0]}`;
const LN_BEG_SYSLOG = `{^LN-BEG}${DEFAULT_PATTERNS[1]}`;

/**
 * The line-anchored syslog template "(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?" when it is the
 * first template that can match a line starting with a letter: the only template allowed before
 * it is the line-anchored ISO one, whose regex `^(?:\W{0,2})?(20..)` needs a digit there. That is
 * the list of the default templates and of datepattern {^LN-BEG} (sshd and most syslog filters).
 */
function syslogTemplate(tpls: Tpl[]): Tpl | null {
  for (const t of tpls) {
    if (t.pattern === LN_BEG_SYSLOG && t.kind === KIND_PATTERN && (t.flags & LINE_BEGIN) !== 0) return t;
    if (t.pattern !== LN_BEG_ISO || t.kind !== KIND_PATTERN || (t.flags & LINE_BEGIN) === 0) return null;
  }
  return null;
}

/**
 * The templates of a datepattern (for a year) and their regexes, compiled when first needed.
 * The list itself is built later too when building it now could not fail (see deferrable):
 * Fail2ban's default templates, which most datepatterns take in, are many.
 */
class TemplateSet {
  readonly none: boolean;
  private list: Tpl[] | null;
  private syslogTpl: Tpl | null | undefined;
  private asciiRx: EngineRegexes | null = null;
  private unicodeRx: EngineRegexes | null = null;

  constructor(
    private readonly build: () => Tpl[],
    deferred: boolean,
    /**
     * The syslog template alone, when the list is known to start with Fail2ban's line-anchored
     * templates (see syslogLed): the list need not be built for it.
     */
    private readonly syslogAlone: (() => Tpl) | null = null,
  ) {
    this.list = deferred ? null : build();
    // a deferred list starts with a pattern or a default template, never {NONE}
    this.none = this.list !== null && this.list[0]!.name === "{NONE}";
  }

  get tpls(): Tpl[] {
    if (this.list === null) this.list = this.build();
    return this.list;
  }

  /** The syslog template when syslogDate may answer for it (see syslogTemplate), else null. */
  get syslog(): Tpl | null {
    if (this.syslogTpl === undefined)
      this.syslogTpl =
        this.list === null && this.syslogAlone !== null ? this.syslogAlone() : syslogTemplate(this.tpls);
    return this.syslogTpl;
  }

  regexes(unicode: boolean): EngineRegexes {
    if (unicode) return (this.unicodeRx ??= engineRegexes(this.tpls, true));
    return (this.asciiRx ??= engineRegexes(this.tpls, false));
  }
}

/**
 * True when buildTemplates cannot fail for this datepattern but in what is checked here: every
 * line is {^LN-BEG} or {DEFAULT} (Fail2ban's templates, valid and of distinct names), or a pattern
 * (checked here, in order, as buildTemplates would) before any of those and named unlike the
 * others before it. Anything else ({DATE}, {NONE}, a pattern after the defaults, whose name may
 * clash with theirs) is built at once.
 */
function deferrable(datepattern: string | undefined, tre: Record<string, string>): boolean {
  if (datepattern === undefined) return true;
  const lines = datepattern
    .split(/\n+/)
    .map((s) => s.trim())
    .filter(Boolean);
  let defaults = false;
  const names = new Set<string>();
  for (const pattern of lines) {
    const key = pattern.includes("%") ? pattern : pattern.toUpperCase();
    if (key === "{^LN-BEG}" || key === "{DEFAULT}") {
      defaults = true;
      continue;
    }
    if (defaults || key.includes("{DATE}") || key === "{NONE}") return false;
    const t = patternToTemplate(pattern, tre, key);
    if (names.has(t.name)) return false;
    names.add(t.name);
  }
  return true;
}

/**
 * True when the template list of this datepattern starts with Fail2ban's line-anchored templates
 * (the defaults, or a first line {^LN-BEG} or {DEFAULT}): syslogTemplate then picks the
 * line-anchored syslog one, and a syslog date is read without the forty-odd others (a scan
 * worker's start: about 3 ms).
 */
function syslogLed(datepattern: string | undefined): boolean {
  if (datepattern === undefined) return true;
  const first = datepattern
    .split(/\n+/)
    .map((s) => s.trim())
    .find(Boolean);
  if (first === undefined) return true; // no lines: the defaults
  const key = first.includes("%") ? first : first.toUpperCase();
  return key === "{^LN-BEG}" || key === "{DEFAULT}";
}

/** Template sets by year and datepattern (a process sees few: the filters' datepatterns). */
const templateSets = new Map<string, TemplateSet>();

function templateSet(datepattern: string | undefined, year: number): TemplateSet {
  const key = `${year}\u0000${datepattern === undefined ? "\u0000" : datepattern}`;
  let set = templateSets.get(key);
  if (set) return set;
  const tre = timeRE(exYearRE(year));
  try {
    set = new TemplateSet(
      () => buildTemplates(datepattern, tre),
      deferrable(datepattern, tre),
      syslogLed(datepattern) ? () => patternToTemplate(LN_BEG_SYSLOG, tre) : null,
    );
  } catch (err) {
    if (err instanceof Fail2tsError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new Fail2tsError("config", `datepattern ${JSON.stringify(datepattern)}: ${msg}`, undefined, {
      cause: err,
    });
  }
  if (templateSets.size >= 256) templateSets.clear();
  templateSets.set(key, set);
  return set;
}

class Detector implements DateDetector {
  readonly none: boolean;
  private readonly result: DateMatch = { start: 0, end: 0, time: 0, template: "" };
  private readonly local = new LocalZone();
  private readonly zones = new Map<string, number>();
  private readonly defaultTz: number; // minutes, NaN = local time
  private readonly now: () => number;
  private readonly set: TemplateSet;
  private ascii: Engine | null = null;
  private unicode: Engine | null = null;
  /** The syslog template when syslogDate may answer for it (see syslogTemplate), else null. */
  private syslog: Tpl | null | undefined;
  // caches of strptime
  private nowBucket = Number.NaN;
  private nowOffset = 0;
  private nowYmd = 0;
  private lastYmd = -1;
  private lastDays = 0;
  // the last syslog date read (see syslogResult)
  private lastSyslog = -1;
  private lastSyslogNow = Number.NaN;
  private lastSyslogTime = 0;

  constructor(opts: DateDetectorOptions) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    const tz = opts.logtimezone?.trim();
    if (tz) {
      const off = zoneOffset(tz);
      if (Number.isNaN(off)) {
        throw new Fail2tsError(
          "config",
          `logtimezone: unknown or unsupported time zone: ${JSON.stringify(tz)}`,
        );
      }
      this.defaultTz = off;
    } else this.defaultTz = Number.NaN;
    const year = Math.max(new Date().getUTCFullYear(), new Date(this.now() * 1000).getUTCFullYear());
    this.set = templateSet(opts.datepattern, year);
    this.none = this.set.none;
  }

  prepare(): void {
    if (!this.none) this.ascii ??= new Engine(this.set.regexes(false));
  }

  match(line: string): DateMatch | null {
    if (this.none) return null;
    const syslog = this.syslog === undefined ? (this.syslog = this.set.syslog) : this.syslog;
    if (syslog !== null) {
      const r = this.syslogDate(line, syslog);
      if (r !== null) return r;
    }
    // Python's \w, \W, \b are Unicode-aware; on pure ASCII lines the faster non-"u" regexes agree
    const e =
      Buffer.byteLength(line) === line.length
        ? (this.ascii ??= new Engine(this.set.regexes(false)))
        : (this.unicode ??= new Engine(this.set.regexes(true)));
    const m = e.find(line);
    return m ? this.found(e.hit!, m) : null;
  }

  /** The syslog date at the line start read without a regex (see syslogFields); else null. */
  private syslogDate(line: string, t: Tpl): DateMatch | null {
    const f = syslogFields(line, 0, line.length);
    if (f < 0) return null;
    return this.syslogResult(f, t);
  }

  matchBytes(buf: Uint8Array, s: number, e: number): DateMatch | undefined {
    if (this.none) return undefined;
    const syslog = this.syslog === undefined ? (this.syslog = this.set.syslog) : this.syslog;
    if (syslog === null) return undefined;
    const f = syslogFields(buf, s, e - s);
    if (f < 0) return undefined;
    return this.syslogResult(f, syslog);
  }

  /** The match of syslog fields (see syslogFields); the time of the last fields is kept. */
  private syslogResult(f: number, t: Tpl): DateMatch {
    const r = this.result;
    r.start = 0;
    r.end = 15;
    r.template = t.name;
    const now = this.now();
    if (f !== this.lastSyslog || now !== this.lastSyslogNow) {
      const ymd = Math.floor(f / 1e6);
      const hms = f % 1e6;
      this.lastSyslogTime = this.compose(
        -1,
        Math.floor(ymd / 100),
        ymd % 100,
        Math.floor(hms / 1e4),
        Math.floor(hms / 100) % 100,
        hms % 100,
        Number.NaN,
        -1,
        -1,
        -1,
        false,
      );
      this.lastSyslog = f;
      this.lastSyslogNow = now;
    }
    r.time = this.lastSyslogTime;
    return r;
  }

  private found(t: Tpl, m: RegExpExecArray): DateMatch {
    const r = this.result;
    const text = m[t.rx.date];
    let start = m.index;
    if (t.rx.pre) start += m[t.rx.pre]!.length;
    else if (t.rx.indices) start = m.indices?.[t.rx.date]?.[0] ?? m.index;
    r.start = start;
    r.end = start + (text === undefined ? 0 : text.length);
    r.template = t.name;
    if (!text) r.time = Number.NaN;
    else if (t.kind === KIND_PATTERN) r.time = this.strptime(t, m);
    else if (t.kind === KIND_EPOCH) r.time = epochValue(m[t.epochGroup] ?? "", t.longFrm);
    else r.time = Number.parseInt(text.slice(2, 17), 16);
    return r;
  }

  /** strptime.py reGroupDictStrptime */
  private strptime(t: Tpl, m: RegExpExecArray): number {
    let year = -1;
    let month = -1;
    let day = -1;
    let hour = 0;
    let minute = 0;
    let second = 0;
    let tzoff = Number.NaN;
    let weekday = -1;
    let julian = -1;
    let week = -1;
    let mondayFirst = false;
    const f = t.fields;
    for (let k = 0; k < f.length; k += 2) {
      const v = m[f[k + 1]!];
      if (v === undefined) continue;
      switch (f[k]) {
        case F_y:
          year = toInt(v);
          if (year <= 2000) year += 2000;
          break;
        case F_Y:
          year = toInt(v);
          break;
        case F_m:
          month = toInt(v);
          break;
        case F_b:
          month = monthAbbr(v);
          break;
        case F_B:
          month = F_MONTH.indexOf(v.toLowerCase()) + 1;
          break;
        case F_d:
          day = toInt(v);
          break;
        case F_H:
          hour = toInt(v);
          break;
        case F_I: {
          hour = toInt(v);
          let ampm = "";
          if (t.pGroup) {
            const p = m[t.pGroup];
            if (p === undefined) return Number.NaN; // Fail2ban fails on None.lower()
            ampm = p.toLowerCase();
          }
          if (ampm === "" || ampm === "am") {
            if (hour === 12) hour = 0;
          } else if (ampm === "pm" && hour !== 12) hour += 12;
          break;
        }
        case F_M:
          minute = toInt(v);
          break;
        case F_S:
          second = toInt(v);
          break;
        case F_z:
          tzoff = this.zone(v);
          if (Number.isNaN(tzoff)) return Number.NaN;
          break;
        case F_a:
          weekday = A_WEEKDAY.indexOf(v.toLowerCase());
          break;
        case F_A:
          weekday = F_WEEKDAY.indexOf(v.toLowerCase());
          break;
        case F_w:
          weekday = toInt(v) - 1;
          if (weekday < 0) weekday = 6;
          break;
        case F_j:
          julian = toInt(v);
          break;
        case F_U:
        case F_W:
          week = toInt(v);
          mondayFirst = f[k] === F_W;
          break;
        case F_s:
          return toInt(v);
      }
    }
    return this.compose(year, month, day, hour, minute, second, tzoff, weekday, julian, week, mondayFirst);
  }

  /** The end of strptime: fields (-1 / NaN when absent) to epoch seconds, or NaN. */
  private compose(
    year: number,
    month: number,
    day: number,
    hour: number,
    minute: number,
    second: number,
    tzoff: number,
    weekday: number,
    julian: number,
    week: number,
    mondayFirst: boolean,
  ): number {
    let nowWall = Number.NaN;
    let assumeYear = false;
    if (year < 0) {
      nowWall = this.nowWall();
      year = Math.floor(this.nowYmd / 10000);
      assumeYear = true;
    }
    if (month < 0 || day < 0) {
      if (julian < 0 && week >= 0 && weekday >= 0) julian = julianFromWeek(year, week, weekday, mondayFirst);
      if (julian >= 0) {
        if (year < 1 || year > 9999) return Number.NaN;
        const ymd = civilFromDays(daysFromCivil(year, 1, 1) + julian - 1);
        year = Math.floor(ymd / 10000);
        month = Math.floor(ymd / 100) % 100;
        day = ymd % 100;
      }
    }
    let assumeToday = false;
    if (month < 0 && day < 0) {
      if (Number.isNaN(nowWall)) nowWall = this.nowWall();
      month = Math.floor(this.nowYmd / 100) % 100;
      day = this.nowYmd % 100;
      assumeToday = true;
    }
    if (hour > 23 || minute > 59 || second > 59) return Number.NaN;
    const ymd = year * 10000 + month * 100 + day;
    if (ymd !== this.lastYmd) {
      if (!validDate(year, month, day)) return Number.NaN;
      this.lastYmd = ymd;
      this.lastDays = daysFromCivil(year, month, day);
    }
    let wall = this.lastDays * 86400 + hour * 3600 + minute * 60 + second;
    if (Number.isNaN(tzoff)) tzoff = this.defaultTz;
    if (!Number.isNaN(tzoff)) wall -= tzoff * 60;
    if (assumeToday && wall > nowWall) wall -= 86400;
    if (assumeYear && wall > nowWall + 86400) {
      // the year before; Fail2ban resets month and day but keeps the (zone shifted) time of day
      if (!validDate(year - 1, month, day)) return Number.NaN;
      const tod = wall - Math.floor(wall / 86400) * 86400;
      wall = daysFromCivil(year - 1, month, day) * 86400 + tod;
    }
    return Number.isNaN(tzoff) ? this.local.toEpoch(wall) : wall;
  }

  /** Fail2ban's naive local `now` as wall seconds; sets nowYmd. */
  private nowWall(): number {
    const now = this.now();
    const bucket = Math.floor(now / 900); // zone offsets and midnights fall on quarter hours
    if (bucket !== this.nowBucket) {
      this.nowBucket = bucket;
      this.nowOffset = this.local.toWall(bucket * 900) - bucket * 900;
      this.nowYmd = civilFromDays(Math.floor((bucket * 900 + this.nowOffset) / 86400));
    }
    return now + this.nowOffset;
  }

  private zone(v: string): number {
    let off = this.zones.get(v);
    if (off === undefined) {
      off = zoneOffset(v);
      if (this.zones.size > 1000) this.zones.clear();
      this.zones.set(v, off);
    }
    return off;
  }
}

function monthAbbr(v: string): number {
  if (v.length !== 3) return A_MONTH.indexOf(v.toLowerCase()) + 1;
  const key = ((v.charCodeAt(0) | 32) << 16) | ((v.charCodeAt(1) | 32) << 8) | (v.charCodeAt(2) | 32);
  return MONTH_KEYS.get(key) ?? A_MONTH.indexOf(v.toLowerCase()) + 1;
}

/** DateEpoch.getDate */
function epochValue(v: string, longFrm: boolean): number {
  const n = Number(v);
  if (longFrm && v.length >= 13) return v.length >= 16 && !v.includes(".") ? n / 1_000_000 : n / 1000;
  return n;
}

/**
 * A date detector for one datepattern (or Fail2ban's default templates when there is none).
 * Throws Fail2tsError("config") for a datepattern or logtimezone that Fail2ban would refuse.
 */
export function createDateDetector(opts: DateDetectorOptions = {}): DateDetector {
  return new Detector(opts);
}
