/**
 * Runs a compiled filter over a stream of lines: date detection, prefregex, failregex,
 * ignoreregex, multi-line buffers and Fail2ban's multi-line failure ids (<F-MLFID>,
 * <F-NOFAIL>, <F-MLFFORGET>, <F-MLFGAINED>). Pure: no I/O, no timers; time comes in.
 * One FilterMatcher per log stream (its state is that stream's sessions).
 */
import { type Host, type HostKind, isLooseIPv4, normalizeHost, normalizeIP, parseIPv4 } from "../util/ip.ts";
import type { CompiledFilter, CompiledRegex } from "./compile.ts";
import { type NativeRegex, NO_MATCH, nativeRegex, UNSET } from "./native.ts";

export type IdKind = HostKind | "raw";

export interface Failure {
  /** Normalised address or DNS name (lower case), or a raw failure id. */
  id: string;
  kind: IdKind;
  /** Epoch seconds of the line, or null when it had none. */
  time: number | null;
  /** Index of the failregex that matched. */
  regex: number;
  /** Captured fields: user, users, and any <F-NAME> capture. */
  fields: Record<string, string | string[]>;
  /** The log lines of this failure (for actions and `attempts`). */
  matches: string[];
  /** Lean results: the id as a number when it is an IPv4 address as written, else -1. */
  v4?: number;
}

export interface LineResult {
  time: number | null;
  dateTemplate: string | null;
  failure: Failure | null;
  /** Index of the failregex that matched, even when it gave no failure (helper/nofail). */
  regex: number;
  /** An ignoreregex matched. */
  ignored: boolean;
  /** A captured host that is neither an address nor a DNS name (hostile or broken line). */
  invalidHost: string | null;
}

export interface MatcherOptions {
  /** Epoch seconds now (for lines without a date when fallback is "now"). */
  now?: () => number;
  /** What a line without a date gets: null (report as is), the last date seen, or now. */
  noDate?: "none" | "last" | "now";
  /**
   * Skip what only reports need (captured fields, the matched lines): for scan's hot loop. The
   * LineResult and its Failure are then reused by the next call: read them, do not keep them.
   */
  lean?: boolean;
  /**
   * Lean matchers only: where a matched failregex's dict goes instead of this matcher's own
   * session logic (scan's native engine keeps the sessions, see src/scan/engine.ts). The line's
   * result then carries no failure.
   */
  handoff?: Handoff;
  /**
   * Where IPv6 hosts are kept once read (normalizeHost, a pure function of the text): several
   * matchers may share one (scan's chunk runs, each with matchers of its own). Default: the
   * matcher's own.
   */
  ip6Hosts?: Map<string, Host | null>;
}

/** A failregex's dict (its groups and the prefregex's, as the lean builders make it). */
export type Handoff = (fail: Readonly<Record<string, unknown>>, regex: number, time: number | null) => void;

/** The failure id of a host (see FilterMatcher.identify); one object, reused. */
export interface Identity {
  id: string;
  kind: IdKind;
  /** The id as a number when it is an IPv4 address as written, else -1. */
  v4: number;
  /** The host's address when the id is a distinct <F-ID>. */
  ip: string | null;
}

interface Tuple {
  /** The line with its date cut out: what the regexes see. */
  text: string;
  /** The line as read. */
  line: string;
}

type Fail = Record<string, unknown>;

/** Group names that steer the engine and are not reported as fields. */
const INTERNAL = new Set([
  "content",
  "mlfid",
  "nofail",
  "mlfforget",
  "mlfgained",
  "mlfpending",
  "matches",
  "nofail-matches",
]);

const NOFAIL = ["nofail"] as const;

/** Keys the session logic reads or sets besides the regexes' own (see Generated.leanBuild). */
const SESSION_KEYS = ["user", "users", "ip4", "ip6", "dns", "fid"];

/** The keys of a lean dict that the session logic and conclude read (see engine.ts). */
export const LEAN_KEYS = [
  "mlfid",
  "nofail",
  "mlfforget",
  "mlfgained",
  "mlfpending",
  "user",
  "ip4",
  "ip6",
  "dns",
  "fid",
];

const MLFID_MAX = 1000;
const MLFID_TTL = 300;

const EMPTY: LineResult = Object.freeze({
  time: null,
  dateTemplate: null,
  failure: null,
  regex: -1,
  ignored: false,
  invalidHost: null,
}) as LineResult;

function tupleText(t: Tuple): string {
  return t.text;
}

function lineOf(t: Tuple): string {
  return t.line;
}

function truthy(v: unknown): boolean {
  return v !== undefined && v !== null && v !== "" && v !== 0 && v !== false;
}

interface MatchInfo {
  matched: Tuple[];
  unmatched: Tuple[];
}

/** A failregex match (plain numbered groups) and the prefregex's → the dict `find` builds. */
type Builder = (m: RegExpExecArray, pm: RegExpExecArray | null) => Fail;

const NO_LINES: string[] = [];

/** normalizeHost's answer for a valid IPv4 text, one object reused. */
const IP4_HOST: Host = { kind: "ip4", value: "" };
function ip4Host(text: string): Host {
  IP4_HOST.value = text;
  return IP4_HOST;
}

/** `m[a] ?? m[b] ...`: the value of a name that several groups carry (only one can take part). */
function groupValue(arr: string, idx: readonly number[]): string {
  let s = `${arr}[${idx[idx.length - 1]}]`;
  for (let k = idx.length - 2; k >= 0; k--)
    s = `(${arr}[${idx[k]}] !== undefined ? ${arr}[${idx[k]}] : ${s})`;
  return s;
}

export function namedGroups(rx: CompiledRegex): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const g = rx.info.groups;
  for (let i = 1; i < g.length; i++) {
    const n = g[i];
    if (!n) continue;
    const l = out.get(n);
    if (l) l.push(i);
    else out.set(n, [i]);
  }
  return out;
}

/** Python's dict.update of a session with a match's non-None values (see merge). */
type Updater = (cached: Fail, fail: Fail) => void;

/** Code generated once per compiled filter (see generate). */
interface Generated {
  /** Dict builders per failregex, null when one has no numbered form (no fast path). */
  build: Builder[] | null;
  /**
   * The same for lean matchers: every dict of the filter has one shape (all the keys any
   * regex, the prefregex or the session logic sets, in one order, undefined until set), so
   * the session code reads them through one shape instead of one per failregex. Lean
   * matchers report no fields, and nothing else tells an undefined key from a missing one.
   */
  leanBuild: Builder[] | null;
  /** Session updates per failregex. */
  update: Updater[];
}

const generatedFor = new WeakMap<CompiledFilter, Generated>();

const DICT_PROTO: object = Object.freeze(Object.create(null));

/**
 * Whether the filter's dicts can be built by generated code (generate's `build`, not null): its
 * regexes have a numbered form (`fast`, which is then compiled only where it runs).
 */
function buildable(filter: CompiledFilter): boolean {
  const numbered = (r: CompiledRegex) => r.info.numbered !== null;
  return (filter.pref === null || numbered(filter.pref)) && filter.fail.every(numbered);
}

/**
 * The dicts and session updates of a filter's failregexes, as code: the same statements as the
 * generic path (a `groups` object, the alt_ fill-ins, the prefregex's groups; merge's updates
 * from the regex's names, the prefregex's names and nofail), spelled out with group numbers and
 * constant keys. The dicts' prototype is empty and has none itself, so reads and `in` see
 * their own keys only, as with a `groups` object.
 */
function generate(filter: CompiledFilter): Generated {
  const known = generatedFor.get(filter);
  if (known) return known;
  const q = (s: string) => JSON.stringify(s);
  const pref = filter.pref;
  const fn = (args: string, body: string, ctor?: unknown) =>
    new Function("truthy", "Dict", `"use strict"; return function (${args}) {\n${body}\n};`)(truthy, ctor);
  const update = filter.fail.map((rx) => {
    let body = "let v;\n";
    for (const list of [rx.names, pref?.names ?? [], NOFAIL])
      for (const k of list)
        body += `v = fail[${q(k)}]; if (v !== undefined && v !== null) cached[${q(k)}] = v;\n`;
    return fn("cached, fail", body) as Updater;
  });
  let build: Builder[] | null = null;
  let leanBuild: Builder[] | null = null;
  if (buildable(filter)) {
    const body = (rx: CompiledRegex, lean: boolean) => {
      const own = namedGroups(rx);
      let b = "const o = new Dict(m);\n";
      if (lean) for (const [k, idx] of own) b += `o[${q(k)}] = ${groupValue("m", idx)};\n`;
      // alt_ fill-ins; a target that is not a group of the regex is added only when filled
      const flag = new Map<string, string>();
      for (const [, t] of rx.alt)
        if (!own.has(t) && !flag.has(t)) {
          flag.set(t, `added${flag.size}`);
          b += `let added${flag.size - 1} = false;\n`;
        }
      for (const [k, t] of rx.alt) {
        const set = flag.has(t) ? `{ o[${q(t)}] = v; ${flag.get(t)} = true; }` : `o[${q(t)}] = v;`;
        b += `{ const v = o[${q(k)}]; if (truthy(v) && !truthy(o[${q(t)}])) ${set} }\n`;
      }
      if (pref) {
        const pg = namedGroups(pref);
        for (const k of pref.names) {
          if (own.has(k)) continue;
          const idx = pg.get(k);
          const v = k === "content" || !idx ? "undefined" : groupValue("pm", idx);
          b += flag.has(k) ? `if (!${flag.get(k)}) o[${q(k)}] = ${v};\n` : `o[${q(k)}] = ${v};\n`;
        }
      }
      return `${b}return o;`;
    };
    // The regex's groups, set by a constructor (one object shape per regex; a constructor
    // sets the prototype for free, an object literal with __proto__ does not).
    const ctor = (rx: CompiledRegex) => {
      const b = [...namedGroups(rx)].map(([k, idx]) => `this[${q(k)}] = ${groupValue("m", idx)};`);
      const D = new Function("m", `"use strict";\n${b.join("\n")}`);
      D.prototype = DICT_PROTO;
      return D;
    };
    build = filter.fail.map((rx) => fn("m, pm", body(rx, false), ctor(rx)) as Builder);
    const keys = new Set<string>([...INTERNAL, ...SESSION_KEYS, ...(pref?.names ?? [])]);
    for (const rx of filter.fail) {
      for (const k of rx.names) keys.add(k);
      for (const [, t] of rx.alt) keys.add(t);
    }
    const Shape = new Function([...keys].map((k) => `this[${q(k)}] = undefined;`).join("\n"));
    Shape.prototype = DICT_PROTO;
    leanBuild = filter.fail.map((rx) => fn("m, pm", body(rx, true), Shape) as Builder);
  }
  const g: Generated = { build, leanBuild, update };
  generatedFor.set(filter, g);
  return g;
}

/** Index lists of the failregexes that can match a text starting with each ASCII character. */
export function candidateTable(fails: readonly CompiledRegex[]): Int32Array[] {
  const table: Int32Array[] = [];
  for (let c = 0; c < 128; c++) {
    const list: number[] = [];
    for (let i = 0; i < fails.length; i++) {
      const first = fails[i]!.info.first;
      if (first === null || first[c] === 1) list.push(i);
    }
    table.push(Int32Array.from(list));
  }
  return table;
}

/** A regex run by PCRE2 on bytes (see native.ts), and what the matcher reads of its matches. */
export interface NativeEntry {
  rx: NativeRegex;
  /** Groups the dict builders read (the named ones), by number. */
  named: Int32Array;
  /**
   * The match array the builders are given, filled anew by each match (the builders copy what
   * they read into the dict at once): one array per regex, not one per line.
   */
  groups: RegExpExecArray;
  /** RegexInfo.lits as bytes: one of them starts every match; null: no constraint. */
  lits: Uint8Array[] | null;
  /** The named groups' offsets of a match, kept (see keep): start, end per group. */
  kept: Uint32Array;
}

/** The filter's regexes in PCRE2 form: all of them, or the filter does not run natively. */
export interface NativeForm {
  pref: NativeEntry | null;
  fail: NativeEntry[];
}

/** `skip`: names the builders never read (the prefregex's content). */
function nativeEntry(rx: CompiledRegex, skip = ""): NativeEntry | null {
  const info = rx.info;
  if (info.numbered === null) return null;
  const n = nativeRegex(info.numbered, rx.re.flags.replace("u", ""), info);
  if (n === null) return null;
  const named: number[] = [];
  for (const [name, idx] of namedGroups(rx)) if (name !== skip) named.push(...idx);
  return {
    rx: n,
    named: Int32Array.from(named),
    kept: new Uint32Array(2 * named.length),
    groups: new Array<string | undefined>(info.groups.length).fill(undefined) as unknown as RegExpExecArray,
    lits: info.lits === null ? null : info.lits.map((l) => Buffer.from(l, "latin1")),
  };
}

/** The native form of a single-line filter on the fast path, or null (see processBytes). */
export function nativeForm(filter: CompiledFilter): NativeForm | null {
  if (filter.maxlines > 1 || !buildable(filter)) return null;
  if (filter.journal || filter.dates.none) return null;
  const pref = filter.pref ? nativeEntry(filter.pref, "content") : null;
  if (filter.pref && pref === null) return null;
  const fail: NativeEntry[] = [];
  for (const rx of filter.fail) {
    const e = nativeEntry(rx);
    if (e === null) return null;
    fail.push(e);
  }
  return { pref, fail };
}

/** Whether bytes [at, end) start with `lit`. */
function startsWithBytes(buf: Uint8Array, at: number, end: number, lit: Uint8Array): boolean {
  if (end - at < lit.length) return false;
  for (let k = 0; k < lit.length; k++) if (buf[at + k] !== lit[k]) return false;
  return true;
}

/** Bytes [a, b) of an ASCII buffer as a string of its own. */
function latin1(buf: Buffer, a: number, b: number): string {
  return (buf as Buffer & { latin1Slice(a: number, b: number): string }).latin1Slice(a, b);
}

/**
 * Keeps the named groups' offsets of the last match, to make their strings later (the
 * prefregex's, only when a failregex matches too: most lines need none of them).
 */
function keep(e: NativeEntry): void {
  const ov = e.rx.ov;
  const named = e.named;
  const kept = e.kept;
  for (let k = 0; k < named.length; k++) {
    const g = named[k]!;
    kept[2 * k] = ov[4 * g]!;
    kept[2 * k + 1] = ov[4 * g + 2]!;
  }
}

/** groupTexts from the offsets kept by keep. */
function keptTexts(buf: Buffer, at: number, e: NativeEntry): RegExpExecArray {
  const m = e.groups as unknown as Array<string | undefined>;
  const named = e.named;
  const kept = e.kept;
  for (let k = 0; k < named.length; k++) {
    const a = kept[2 * k]!;
    m[named[k]!] = a === UNSET ? undefined : latin1(buf, at + a, at + kept[2 * k + 1]!);
  }
  return e.groups;
}

/** The match array the dict builders read: the named groups' texts, by number. */
function groupTexts(buf: Buffer, at: number, e: NativeEntry): RegExpExecArray {
  const m = e.groups as unknown as Array<string | undefined>;
  const ov = e.rx.ov;
  const named = e.named;
  for (let k = 0; k < named.length; k++) {
    const g = named[k]!;
    const a = ov[4 * g]!;
    m[g] = a === UNSET ? undefined : latin1(buf, at + a, at + ov[4 * g + 2]!);
  }
  return e.groups;
}

interface Session {
  key: string;
  expires: number;
  fail: Fail;
  prev: Session | null;
  next: Session | null;
}

/**
 * The mlfid sessions: a Map for lookups and the Map's own (insertion) order as a linked list,
 * so the oldest entry is found without iterating the Map (whose iteration walks over the slots
 * of deleted keys: quadratic for a FIFO that deletes at the front).
 */
class SessionCache {
  private readonly map = new Map<string, Session>();
  private first: Session | null = null;
  private last: Session | null = null;

  get size(): number {
    return this.map.size;
  }

  get(key: string): Session | undefined {
    return this.map.get(key);
  }

  /** Like Map.set: a new key goes last, an existing one keeps its place. */
  set(key: string, expires: number, fail: Fail): void {
    const e = this.map.get(key);
    if (e) {
      e.expires = expires;
      e.fail = fail;
      return;
    }
    const n: Session = { key, expires, fail, prev: this.last, next: null };
    if (this.last) this.last.next = n;
    else this.first = n;
    this.last = n;
    this.map.set(key, n);
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.map.delete(key);
    if (e.prev) e.prev.next = e.next;
    else this.first = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.last = e.prev;
    e.prev = e.next = null;
  }

  /** The entry that Map iteration would give first. */
  oldest(): Session | undefined {
    return this.first ?? undefined;
  }
}

export class FilterMatcher {
  private buffer: Tuple[] = [];
  private readonly mlfid = new SessionCache();
  private readonly ip6: Map<string, Host | null>;
  /** The time of the last date seen (lines without one may take it). */
  lastTime: number | null = null;
  private readonly now: () => number;
  private readonly noDate: "none" | "last" | "now";
  private readonly multiline: boolean;
  private readonly lean: boolean;
  /**
   * Single-line filters whose regexes all have numbered forms take the fast path: prefregex
   * sticky at the date's end on ASCII lines (no slice), failregexes picked by first character
   * and literal prefix, and their dicts built by generated code (see generate).
   */
  private readonly fast: boolean;
  /**
   * The generated code (see generate), made at the first line this matcher runs: with scan's
   * native engine a worker may run none (it costs ~3 ms per worker to make).
   */
  private generated: Generated | null = null;
  private builds: Builder[] = [];
  private readonly cands: Int32Array[] = [];
  private readonly every: Int32Array = new Int32Array(0);
  private readonly content: number[] = [];
  private nativeRx: NativeForm | null | undefined;
  private readonly leanFailure: Failure = {
    id: "",
    kind: "raw",
    time: null,
    regex: -1,
    fields: {},
    matches: NO_LINES,
  };
  private readonly leanResult: LineResult = { ...EMPTY };
  private readonly handoff: Handoff | null;
  private readonly identity: Identity = { id: "", kind: "raw", v4: -1, ip: null };

  constructor(
    readonly filter: CompiledFilter,
    opts: MatcherOptions = {},
  ) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.ip6 = opts.ip6Hosts ?? new Map();
    this.noDate = opts.noDate ?? "none";
    this.multiline = filter.maxlines > 1;
    this.lean = opts.lean ?? false;
    this.handoff = this.lean ? (opts.handoff ?? null) : null;
    const pref = filter.pref;
    this.fast = !this.multiline && buildable(filter);
    if (this.fast) {
      this.cands = candidateTable(filter.fail);
      this.every = Int32Array.from(filter.fail.keys());
      if (pref) this.content = namedGroups(pref).get("content") ?? [];
    }
  }

  /** The filter's generated code, made the first time it is needed. */
  private code(): Generated {
    if (this.generated === null) {
      const g = generate(this.filter);
      this.generated = g;
      if (this.fast) this.builds = (this.lean ? g.leanBuild : g.build)!;
    }
    return this.generated;
  }

  /** The dict builder of failregex i (fast path). */
  private builder(i: number): Builder {
    if (this.generated === null) this.code();
    return this.builds[i]!;
  }

  /**
   * Processes one line. `time` is given by sources that know it (the journal). `ascii`: the
   * caller knows the line is pure ASCII (scan checks whole blocks), so regexes without the "u"
   * flag may run (same results, faster).
   */
  processLine(line: string, time?: number, ascii = false): LineResult {
    const f = this.filter;
    let text = line;
    let off = 0; // the regexes' text is line.slice(off) (not made when the fast path needs no copy)
    let t: number | null = null;
    let template: string | null = null;
    if (time !== undefined || f.journal) {
      t = time ?? this.now();
    } else {
      const m = f.dates.none ? null : f.dates.match(line);
      if (m && !Number.isNaN(m.time)) {
        if (m.start === 0) off = m.end;
        else text = line.slice(0, m.start) + line.slice(m.end);
        t = m.time;
        template = m.template;
        this.lastTime = t;
      } else {
        // No date, or a template that matched without a usable one: Fail2ban's rules. The
        // line is matched whole; its time is the last date seen when that is recent.
        const now = this.now();
        const recent = this.lastTime !== null && this.lastTime > now - 60;
        if (m && m.start === m.end)
          t = recent ? this.lastTime : now; // date optional here
        else if (f.dates.none) t = now;
        else if (this.noDate === "last") t = this.lastTime;
        else if (recent) t = this.lastTime;
        else if (this.noDate === "now") t = now;
      }
    }
    if (this.fast) return this.findSingle(text, off, line, t, template, ascii);
    return this.find({ text: off > 0 ? line.slice(off) : text, line }, t, template);
  }

  /**
   * processLine for the pure ASCII line at [s, e) of `buf` (`base`: its pointer; `text`: the
   * same as a Latin-1 string), in lean mode: a filter whose regexes all have exact PCRE2 forms
   * runs them on the bytes (see native.ts), with the same results; anything else goes through
   * processLine.
   */
  processBytes(buf: Buffer, base: number, s: number, e: number): LineResult {
    if (this.nativeRx === undefined) this.nativeRx = this.lean ? nativeForm(this.filter) : null;
    const nat = this.nativeRx;
    const dm = nat === null ? undefined : this.filter.dates.matchBytes(buf, s, e);
    if (nat === null || dm === undefined || Number.isNaN(dm.time))
      return this.processLine(latin1(buf, s, e), undefined, true);
    const time = dm.time;
    const template = dm.template;
    this.lastTime = time;
    const off = s + dm.end;
    // as findSingle, with offsets into the bytes
    let cs = off;
    let ce = e;
    const pref = nat.pref;
    if (pref !== null) {
      const rc = pref.rx.match(base, off, e - off);
      if (rc < 0) {
        if (rc === NO_MATCH) return this.result(time, template, -1, null, false, null);
        return this.processLine(latin1(buf, s, e), undefined, true); // PCRE2 gave up: JavaScript decides
      }
      const ov = pref.rx.ov;
      const ci = this.content;
      for (let k = 0; k < ci.length; k++) {
        const a = ov[4 * ci[k]!]!;
        if (a === UNSET) continue;
        const b = ov[4 * ci[k]! + 2]!;
        if (b > a) {
          cs = off + a;
          ce = off + b;
        }
        break;
      }
      keep(pref);
    }
    const c0 = cs < ce ? buf[cs]! : 128;
    const list = c0 < 128 ? this.cands[c0]! : this.every;
    for (let j = 0; j < list.length; j++) {
      const i = list[j]!;
      const rx = nat.fail[i]!;
      const lits = rx.lits;
      if (lits !== null) {
        let k = 0;
        while (k < lits.length && !startsWithBytes(buf, cs, ce, lits[k]!)) k++;
        if (k === lits.length) continue;
      }
      const rc = rx.rx.match(base, cs, ce - cs);
      if (rc === NO_MATCH) continue;
      if (rc < 0) return this.processLine(latin1(buf, s, e), undefined, true);
      const m = groupTexts(buf, cs, rx);
      if (this.filter.ignore.length > 0 && this.ignored(latin1(buf, cs, ce), { matched: [], unmatched: [] }))
        return this.result(time, template, i, null, true, null);
      const pm = pref === null ? null : keptTexts(buf, off, pref);
      return this.conclude(this.builder(i)(m, pm), i, NO_LINES, time, template);
    }
    return this.result(time, template, -1, null, false, null);
  }

  private result(
    time: number | null,
    template: string | null,
    regex: number,
    failure: Failure | null,
    ignored: boolean,
    invalidHost: string | null,
  ): LineResult {
    if (regex < 0 && time === null && template === null) return EMPTY;
    if (this.lean) {
      const r = this.leanResult;
      r.time = time;
      r.dateTemplate = template;
      r.failure = failure;
      r.regex = regex;
      r.ignored = ignored;
      r.invalidHost = invalidHost;
      return r;
    }
    return { time, dateTemplate: template, failure, regex, ignored, invalidHost };
  }

  /**
   * `find` for single-line filters with numbered regexes: the same steps and the same dicts.
   * The regexes' text is str.slice(off).
   */
  private findSingle(
    str: string,
    off: number,
    line: string,
    time: number | null,
    template: string | null,
    ascii: boolean,
  ): LineResult {
    const f = this.filter;
    let pm: RegExpExecArray | null = null;
    let buf: string;
    const pref = f.pref;
    if (pref) {
      const sticky = ascii ? pref.asciiSticky : null; // a sticky "u" regex is slower than a slice
      if (sticky) {
        sticky.lastIndex = off;
        pm = sticky.exec(str);
      } else {
        if (off > 0) {
          str = str.slice(off);
          off = 0;
        }
        const re = (ascii ? pref.asciiFast : null) ?? pref.fast!;
        re.lastIndex = 0;
        pm = re.exec(str);
      }
      if (!pm) return this.result(time, template, -1, null, false, null);
      const ci = this.content;
      let content: string | undefined;
      for (let k = 0; k < ci.length && content === undefined; k++) content = pm[ci[k]!];
      buf = content ? content : off > 0 ? str.slice(off) : str;
    } else buf = off > 0 ? str.slice(off) : str;

    const fails = f.fail;
    const c0 = buf.charCodeAt(0);
    const list = c0 < 128 ? this.cands[c0]! : this.every;
    for (let j = 0; j < list.length; j++) {
      const i = list[j]!;
      const rx = fails[i]!;
      const lits = rx.info.lits;
      if (lits !== null) {
        let k = 0;
        while (k < lits.length && !buf.startsWith(lits[k]!)) k++;
        if (k === lits.length) continue;
      }
      const re = (ascii ? rx.asciiFast : null) ?? rx.fast!;
      re.lastIndex = 0;
      const m = re.exec(buf);
      if (!m) continue;
      if (f.ignore.length > 0 && this.ignored(buf, { matched: [], unmatched: [] })) {
        return this.result(time, template, i, null, true, null);
      }
      const matchedText = this.lean ? NO_LINES : [line];
      return this.conclude(this.builder(i)(m, pm), i, matchedText, time, template);
    }
    return this.result(time, template, -1, null, false, null);
  }

  private find(tuple: Tuple, time: number | null, template: string | null): LineResult {
    const f = this.filter;
    let org: Tuple[];
    let buf: string | null;
    if (this.multiline) {
      this.buffer.push(tuple);
      if (this.buffer.length > f.maxlines) this.buffer.splice(0, this.buffer.length - f.maxlines);
      org = this.buffer;
      buf = joinTexts(org);
    } else {
      org = [tuple];
      this.buffer = org;
      buf = tuple.text;
    }

    let pre: Fail | null = null;
    if (f.pref) {
      // Fail2ban compiles prefregex without MULTILINE: `^` is the buffer's start, `$` its end
      const pm = f.pref.re.exec(this.multiline ? buf.slice(0, -1) : buf);
      if (!pm) return this.result(time, template, -1, null, false, null);
      pre = pm.groups as Fail;
      const content = pre.content as string | undefined;
      pre.content = undefined;
      if (content) {
        this.buffer = [{ text: content, line: tuple.line }];
        buf = this.multiline ? content + "\n" : content;
      }
    }

    const fails = f.fail;
    for (let i = 0; i < fails.length; i++) {
      const rx = fails[i]!;
      if (buf === null) buf = this.multiline ? joinTexts(this.buffer) : this.buffer[0]!.text;
      rx.re.lastIndex = 0;
      const m = rx.re.exec(buf);
      if (!m) continue;
      const info = this.multiline ? matchedLines(m, rx, org) : { matched: org, unmatched: [] };
      if (f.ignore.length > 0 && this.ignored(buf, info)) {
        if (this.multiline) this.buffer = info.unmatched;
        return this.result(time, template, i, null, true, null);
      }
      if (this.multiline) {
        this.buffer = info.unmatched;
        buf = null;
      }
      // Python's dict update: the failregex's groups (even unmatched ones) win over prefregex's.
      const fail = (m.groups ?? {}) as Fail;
      for (const [k, target] of rx.alt) {
        const v = fail[k];
        if (truthy(v) && !truthy(fail[target])) fail[target] = v;
      }
      if (pre) for (const k of f.pref!.names) if (!(k in fail)) fail[k] = pre[k];
      const matchedText = this.multiline ? info.matched.map(lineOf) : [tuple.line];
      return this.conclude(fail, i, matchedText, time, template);
    }
    return this.result(time, template, -1, null, false, null);
  }

  /** From a matched failregex's groups to a failure (or a helper/pending/invalid result). */
  private conclude(
    groups: Fail,
    i: number,
    matchedText: string[],
    time: number | null,
    template: string | null,
  ): LineResult {
    let fail = groups;
    if (this.handoff !== null) {
      this.handoff(fail, i, time);
      return this.result(time, template, i, null, false, null);
    }
    const mlfid = fail.mlfid as string | undefined;
    if (mlfid !== undefined && mlfid !== null) {
      fail = this.merge(mlfid, fail, matchedText, time, this.code().update[i]!);
      if (truthy(fail.nofail)) return this.result(time, template, i, null, false, null);
    } else {
      fail.matches = matchedText;
    }
    const fid = fail.fid as string | undefined;
    let host: string | undefined;
    let hint: HostKind | undefined;
    if (truthy(fail.ip4)) {
      host = fail.ip4 as string;
      hint = "ip4";
    } else if (truthy(fail.ip6)) {
      host = fail.ip6 as string;
      hint = "ip6";
    } else if (truthy(fail.dns)) {
      host = fail.dns as string;
      hint = "dns";
    } else if (truthy(fid)) {
      host = fid;
    }
    if (host === undefined) {
      fail.mlfpending = 1;
      return this.result(time, template, i, null, false, null);
    }
    const who = this.identify(host, hint, truthy(fid) ? fid : undefined);
    if (who === null) return this.result(time, template, i, null, false, host);
    const { id, kind, v4 } = who;
    const fields: Record<string, string | string[]> = this.lean ? this.leanFailure.fields : {};
    if (who.ip !== null) fields.ip = who.ip;
    if (!this.lean)
      for (const k in fail) {
        const v = fail[k];
        if (v === undefined || v === null || INTERNAL.has(k) || k.startsWith("skiplines")) continue;
        if (Array.isArray(v)) fields[k] = v.slice();
        else if (typeof v === "string") fields[k] = v;
        else if (typeof v === "number") fields[k] = String(v);
      }
    if (this.lean) {
      const lf = this.leanFailure;
      lf.id = id;
      lf.kind = kind;
      lf.time = time;
      lf.regex = i;
      lf.v4 = kind === "ip4" ? v4 : -1;
      return this.result(time, template, i, lf, false, null);
    }
    const failure: Failure = {
      id,
      kind,
      time,
      regex: i,
      fields,
      matches: (fail.matches as string[] | undefined) ?? matchedText,
    };
    return this.result(time, template, i, failure, false, null);
  }

  /**
   * conclude's last step: the failure id of the host found (`hint`: the group it came from,
   * none for <F-ID>; `fid`: a truthy <F-ID> beside it), or null when the host is not valid.
   */
  identify(host: string, hint: HostKind | undefined, fid: string | undefined): Identity | null {
    const out = this.identity;
    out.ip = null;
    out.v4 = -1;
    if (hint) {
      // normalizeHost, without its object for the common case (a valid IPv4 capture)
      if (hint === "ip4" && host.length <= 253) out.v4 = parseIPv4(host);
      const h = out.v4 >= 0 ? ip4Host(host) : hint === "ip6" ? this.ip6Host(host) : normalizeHost(host, hint);
      if (!h) {
        // "192.0.2.09": not an address (leading zeros read as octal by some tools), but the
        // id of a failure all the same; it is counted and never handed to a firewall.
        if (hint !== "ip4" || !isLooseIPv4(host)) return null;
        out.id = host;
        out.kind = "raw";
      } else if (fid !== undefined && fid !== host) {
        out.id = fid;
        out.kind = "raw";
        out.v4 = -1;
        out.ip = h.value;
      } else {
        out.id = h.value;
        out.kind = h.kind;
      }
    } else {
      // A raw failure id (<F-ID>): an address when it is one, else kept as text.
      const ip = normalizeIP(host);
      out.id = ip ?? host;
      out.kind = ip === null ? "raw" : ip.includes(":") ? "ip6" : "ip4";
      if (/[\0-\x1f\x7f]/.test(out.id) || out.id.length > 256) return null;
    }
    return out;
  }

  /** normalizeHost(text, "ip6"), remembered: attackers come back, IPv6 parsing is slow. */
  private ip6Host(text: string): Host | null {
    let h = this.ip6.get(text);
    if (h === undefined) {
      h = normalizeHost(text, "ip6");
      if (this.ip6.size >= 4096) this.ip6.clear();
      this.ip6.set(text, h);
    }
    return h;
  }

  private ignored(buf: string, info: MatchInfo): boolean {
    // without MULTILINE, as Fail2ban compiles ignoreregex (the trailing newline only matters to `$`)
    const text = this.multiline ? info.matched.map(tupleText).join("\n") : buf;
    for (const rx of this.filter.ignore) {
      rx.re.lastIndex = 0;
      if (rx.re.test(text)) return true;
    }
    return false;
  }

  private cacheGet(id: string, now: number): Fail | undefined {
    const e = this.mlfid.get(id);
    if (!e) return undefined;
    if (e.expires > now) return e.fail;
    this.mlfid.delete(id);
    return undefined;
  }

  private cacheSet(id: string, fail: Fail, now: number): void {
    if (this.mlfid.size >= MLFID_MAX) {
      // Fail2ban's Cache.set: drop from the oldest until one still valid went and there is room
      for (let e = this.mlfid.oldest(); e !== undefined; e = this.mlfid.oldest()) {
        this.mlfid.delete(e.key);
        if (e.expires > now && this.mlfid.size < MLFID_MAX) break;
      }
    }
    this.mlfid.set(id, now + MLFID_TTL, fail);
  }

  /** Fail2ban's multi-line failure merge (mlfid sessions), with the same flags. */
  private merge(mlfid: string, fail: Fail, matched: string[], time: number | null, update: Updater): Fail {
    const now = time ?? this.now();
    const cached = this.cacheGet(mlfid, now);
    let users: string[] | undefined;
    let flags = 0;
    if (truthy(fail.mlfgained)) {
      flags |= 8 | 1;
      if (!truthy(fail.nofail)) fail.nofail = fail.mlfgained;
    } else if (truthy(fail.nofail)) flags |= 1;
    if (truthy(fail.mlfforget)) flags |= 2;
    fail.mlfforget = undefined;
    if (cached) {
      users = updateUsers(cached, fail.user);
      if (truthy(cached.nofail)) flags |= 4;
      cached.nofail = undefined;
      if (truthy(cached.mlfgained)) flags |= 4;
      cached.mlfgained = undefined;
      if (flags & 8) cached.mlfpending = undefined;
      if ((flags & 4) === 0 && !truthy(cached.mlfpending)) cached.matches = undefined;
      // Python's dict.update with the non-None values of this match: its groups, the
      // prefregex's groups, and the nofail that a gained login set above (see generate).
      update(cached, fail);
      fail = cached;
      if (flags & 2) this.mlfid.delete(mlfid);
    } else if (!(flags & 2)) {
      users = updateUsers(fail, fail.user);
      this.cacheSet(mlfid, fail, now);
    }
    const pending = truthy(fail.mlfpending);
    fail.mlfpending = undefined;
    if (pending || (users && users.length > 1)) {
      fail.nofail = undefined;
      fail.mlfgained = undefined;
      flags &= ~(8 | 1);
    }
    if (this.lean) return fail; // the rest only keeps the session's lines
    if ((flags & 1) === 0) {
      const m = ((fail["nofail-matches"] as string[] | undefined) ?? []).concat(
        (fail.matches as string[] | undefined) ?? [],
      );
      fail["nofail-matches"] = undefined;
      fail.matches = (flags & 8) === 0 ? m.concat(matched) : m;
    } else if ((flags & 3) === 1) {
      fail["nofail-matches"] = ((fail["nofail-matches"] as string[] | undefined) ?? []).concat(matched);
    }
    return fail;
  }
}

function joinTexts(lines: Tuple[]): string {
  let s = "";
  for (const t of lines) s += t.text + "\n";
  return s;
}

/** The distinct users of a session, in order of appearance. */
function updateUsers(fail: Fail, user: unknown): string[] | undefined {
  let users = fail.users as string[] | undefined;
  if (typeof user === "string" && user !== "") {
    if (!users) fail.users = users = [user];
    else if (!users.includes(user)) users.push(user);
  }
  return users;
}

/** Which buffered lines a multi-line match covers (Fail2ban's matched/unmatched tuple lines). */
function matchedLines(m: RegExpExecArray, rx: CompiledRegex, org: Tuple[]): MatchInfo {
  if (org.length <= 1) return { matched: org, unmatched: [] };
  const s = m.input;
  const start = m.index;
  const end = start + m[0].length;
  const lineStart = s.lastIndexOf("\n", start) + 1;
  let lineEnd = s.indexOf("\n", Math.max(end - 1, 0));
  lineEnd = lineEnd < 0 ? s.length : lineEnd + 1;
  const count = (a: number, b: number) => {
    let c = 0;
    for (let i = a; i < b; i++) if (s.charCodeAt(i) === 10) c++;
    return c;
  };
  const c1 = count(0, lineStart);
  const c2 = count(0, lineEnd);
  const matched = org.slice(c1, c2);
  const unmatched = org.slice(0, c1);
  if (rx.skiplines > 0 && m.groups) {
    let skipped = "";
    for (let k = 0; k < rx.skiplines; k++) skipped += m.groups[`skiplines${k}`] ?? "";
    let n = 0;
    for (const sl of skipped.split("\n").filter((x, i, a) => i < a.length - 1 || x !== "")) {
      for (let j = n; j < matched.length; j++) {
        if (tupleText(matched[j]!) === sl) {
          unmatched.push(matched.splice(j, 1)[0]!);
          n = j;
          break;
        }
      }
    }
  }
  unmatched.push(...org.slice(c2));
  return { matched, unmatched };
}
