/**
 * Runs a compiled filter over a stream of lines: date detection, prefregex, failregex,
 * ignoreregex, multi-line buffers and Fail2ban's multi-line failure ids (<F-MLFID>,
 * <F-NOFAIL>, <F-MLFFORGET>, <F-MLFGAINED>). Pure: no I/O, no timers; time comes in.
 * One FilterMatcher per log stream (its state is that stream's sessions).
 */
import { type HostKind, isLooseIPv4, normalizeHost, normalizeIP } from "../util/ip.ts";
import type { CompiledFilter, CompiledRegex } from "./compile.ts";

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
  /** Skip what only reports need (captured fields): for scan's hot loop. */
  lean?: boolean;
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

export class FilterMatcher {
  private buffer: Tuple[] = [];
  private readonly mlfid = new Map<string, { expires: number; fail: Fail }>();
  private lastTime: number | null = null;
  private readonly now: () => number;
  private readonly noDate: "none" | "last" | "now";
  private readonly multiline: boolean;
  private readonly lean: boolean;

  constructor(
    readonly filter: CompiledFilter,
    opts: MatcherOptions = {},
  ) {
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.noDate = opts.noDate ?? "none";
    this.multiline = filter.maxlines > 1;
    this.lean = opts.lean ?? false;
  }

  /** Processes one line. `time` is given by sources that know it (the journal). */
  processLine(line: string, time?: number): LineResult {
    const f = this.filter;
    let text = line;
    let t: number | null = null;
    let template: string | null = null;
    if (time !== undefined || f.journal) {
      t = time ?? this.now();
    } else {
      const m = f.dates.none ? null : f.dates.match(line);
      if (m && !Number.isNaN(m.time)) {
        text = m.start === 0 ? line.slice(m.end) : line.slice(0, m.start) + line.slice(m.end);
        t = m.time;
        template = m.template;
        this.lastTime = t;
      } else {
        // No date, or a template that matched without a usable one: Fail2ban's rules. The
        // line is matched whole; its time is the last date seen when that is recent.
        const now = this.now();
        const recent = this.lastTime !== null && this.lastTime > now - 60;
        if (m && m.start === m.end) t = recent ? this.lastTime : now; // date optional here
        else if (f.dates.none) t = now;
        else if (this.noDate === "last") t = this.lastTime;
        else if (recent) t = this.lastTime;
        else if (this.noDate === "now") t = now;
      }
    }
    return this.find({ text, line }, t, template);
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
    return { time, dateTemplate: template, failure, regex, ignored, invalidHost };
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
    let from = 0;
    if (f.dispatch && buf !== null) {
      const d = f.dispatch.re.exec(buf);
      if (!d) return this.result(time, template, -1, null, false, null);
      const mk = f.dispatch.markers;
      while (from < mk.length - 1 && d[mk[from]!] === undefined) from++;
    }
    for (let i = from; i < fails.length; i++) {
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
      return this.conclude(fail, i, matchedText, time, template, rx.names);
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
    names: readonly string[],
  ): LineResult {
    let fail = groups;
    const mlfid = fail.mlfid as string | undefined;
    if (mlfid !== undefined && mlfid !== null) {
      fail = this.merge(mlfid, fail, matchedText, time, names);
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
    let id: string;
    let kind: IdKind;
    const fields: Record<string, string | string[]> = {};
    if (hint) {
      const h = normalizeHost(host, hint);
      if (!h) {
        // "192.0.2.09": not an address (leading zeros read as octal by some tools), but the
        // id of a failure all the same; it is counted and never handed to a firewall.
        if (hint === "ip4" && isLooseIPv4(host)) {
          id = host;
          kind = "raw";
        } else return this.result(time, template, i, null, false, host);
      } else if (truthy(fid) && fid !== host) {
        id = fid!;
        kind = "raw";
        fields.ip = h.value;
      } else {
        id = h.value;
        kind = h.kind;
      }
    } else {
      // A raw failure id (<F-ID>): an address when it is one, else kept as text.
      const ip = normalizeIP(host);
      id = ip ?? host;
      kind = ip === null ? "raw" : ip.includes(":") ? "ip6" : "ip4";
      if (/[\0-\x1f\x7f]/.test(id) || id.length > 256)
        return this.result(time, template, i, null, false, host);
    }
    if (!this.lean)
      for (const k in fail) {
        const v = fail[k];
        if (v === undefined || v === null || INTERNAL.has(k) || k.startsWith("skiplines")) continue;
        if (Array.isArray(v)) fields[k] = v.slice();
        else if (typeof v === "string") fields[k] = v;
        else if (typeof v === "number") fields[k] = String(v);
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
      for (const [k, v] of this.mlfid) {
        this.mlfid.delete(k);
        if (v.expires > now && this.mlfid.size < MLFID_MAX) break;
      }
    }
    this.mlfid.set(id, { expires: now + MLFID_TTL, fail });
  }

  /** Fail2ban's multi-line failure merge (mlfid sessions), with the same flags. */
  private merge(
    mlfid: string,
    fail: Fail,
    matched: string[],
    time: number | null,
    names: readonly string[],
  ): Fail {
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
      // prefregex's groups, and the nofail that a gained login set above.
      const preNames = this.filter.pref?.names ?? [];
      for (const list of [names, preNames, NOFAIL]) {
        for (const k of list) {
          const v = fail[k];
          if (v !== undefined && v !== null) cached[k] = v;
        }
      }
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
