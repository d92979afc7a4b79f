/**
 * The per-chunk work of `scan`: lines → filters, failures out in a compact form. Runs in
 * worker processes (one chunk of a file at a time, see child.ts) or in-process for small
 * inputs. Uses the same FilterMatcher as regex-test and the daemon.
 */
import { ptr } from "bun:ffi";
import { isAscii } from "node:buffer";
import {
  type CompiledFilter,
  compileFilter,
  FilterMatcher,
  type FilterSpec,
  type LineResult,
  openFilter,
} from "../filter/index.ts";
import type { Identity } from "../filter/matcher.ts";
import { nativeAvailable } from "../filter/native.ts";
import { type Host, type HostKind, parseIPv4 } from "../util/ip.ts";
import { type EngineRun, nativeIds, startEngine } from "./engine.ts";
import { SourceIds } from "./ids.ts";

export interface ScanFilterRef {
  /** Filter reference: built-in name or path, with options (`sshd[mode=aggressive]`). */
  ref: string;
  /** The jail it feeds (its name in reports). */
  jail: string;
  /**
   * The filter as `loadFilter(ref)` gives it, when the caller has loaded it already: the
   * workers compile it without reading and resolving its files again (~2 ms each).
   */
  spec?: FilterSpec;
}

export interface ChunkResult {
  seq: number;
  lines: number;
  bytes: number;
  /** Lines in which no filter found a date (among lines that were not blank). */
  noDate: number;
  /** Lines skipped as binary (NUL bytes) or not text. */
  binary: number;
  /** Failures whose captured host was neither an address nor a DNS name. */
  invalid: number;
  /** Failures per filter. */
  perFilter: number[];
  /**
   * The ids the source (this processor: see SourceIds) numbered since its last result: number
   * `idBase + i` is `ids[i]`. An IPv4 address as its number (a u32: no text is made for the
   * common case), any other id as a string of its own (not a slice of the text). An id that is
   * canonical IPv4 text is always given as its number.
   */
  ids: ChunkId[];
  idBase: number;
  /** Failures in line order: the source's number of its id, time, filter index. */
  idIndex: Uint32Array;
  times: Float64Array;
  filters: Uint8Array;
  first: number | null;
  last: number | null;
}

/** A failure id in a ChunkResult: an IPv4 address's number, or the id's text. */
export type ChunkId = number | string;

export interface ChunkOptions {
  /** Characters at the start of `text` that only prime multi-line state (no failures taken). */
  primeChars?: number;
  /** Lines are `journalctl -o json` records. */
  journal?: boolean;
}

interface JournalLine {
  text: string;
  time: number;
}

/** A `journalctl -o json` record as "host ident[pid]: message" with its time; null if not one. */
export function journalRecord(line: string): JournalLine | null {
  if (line.charCodeAt(0) !== 123) return null;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line);
  } catch {
    return null;
  }
  let msg = o.MESSAGE;
  if (Array.isArray(msg)) msg = Buffer.from(msg as number[]).toString("utf8");
  if (typeof msg !== "string") return null;
  const us = Number(o.__REALTIME_TIMESTAMP ?? o._SOURCE_REALTIME_TIMESTAMP);
  const ident = (o.SYSLOG_IDENTIFIER ?? o._COMM ?? "") as string;
  const pid = (o._PID ?? o.SYSLOG_PID) as string | undefined;
  const host = (o._HOSTNAME ?? "") as string;
  const prefix = `${host ? `${host} ` : ""}${ident}${pid ? `[${pid}]` : ""}${ident ? ": " : ""}`;
  return { text: prefix + msg, time: Number.isFinite(us) ? us / 1e6 : Date.now() / 1000 };
}

const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/** A run's failures: id numbers, times, filter indexes (grown as needed, see ChunkRun.reserve). */
interface Records {
  idIndex: Uint32Array;
  times: Float64Array;
  filters: Uint8Array;
}

function newRecords(): Records {
  return { idIndex: new Uint32Array(1024), times: new Float64Array(1024), filters: new Uint8Array(1024) };
}

/**
 * The state of one chunk being scanned: one FilterMatcher per filter (the chunk's sessions) and
 * the counts and failures so far. Text comes in pieces of whole lines, in order.
 */
export class ChunkRun {
  private readonly matchers: FilterMatcher[];
  private readonly journal: boolean;
  private lines = 0;
  private noDate = 0;
  private binary = 0;
  private invalid = 0;
  private first: number | null = null;
  private last: number | null = null;
  private readonly perFilter: number[];
  private count = 0;

  /**
   * The native engine (engine.ts) when it can take these filters: it runs the ASCII lines and
   * keeps every session; the matchers then only match what it gives back, and hand their
   * dicts to it.
   */
  private readonly engine: EngineRun | null;

  constructor(
    filters: readonly CompiledFilter[],
    journal: boolean,
    now: number,
    /** The ids of this run's source, numbered for all its runs. */
    private readonly source: SourceIds = new SourceIds(),
    ip6Hosts: Map<string, Host | null> = new Map(),
    /** Where the failures go (the processor's own when it reuses them, see ChunkProcessor). */
    private readonly rec: Records = newRecords(),
  ) {
    this.journal = journal;
    source.begin();
    this.engine = journal ? null : startEngine(filters, now, this, source);
    const engine = this.engine;
    this.matchers = filters.map(
      (f, i) =>
        new FilterMatcher(f, {
          now: () => now,
          noDate: "last",
          lean: true,
          ip6Hosts,
          handoff: engine === null ? undefined : (fail, regex, time) => engine.handoff(i, fail, regex, time),
        }),
    );
    this.perFilter = new Array<number>(filters.length).fill(0);
  }

  /** Whether the native engine runs these lines. */
  get native(): boolean {
    return this.engine !== null;
  }

  /** A failure; `v4`: the id's IPv4 number, or -1 (see Failure.v4). */
  private push(id: string, time: number, filter: number, v4: number): void {
    this.append(this.source.number(id, v4 >= 0 ? v4 : parseIPv4(id)), time, filter);
  }

  /** EngineSink: the failure id of a host, as the filter's matcher makes it. */
  identify(
    filter: number,
    host: string,
    hint: HostKind | undefined,
    fid: string | undefined,
  ): Identity | null {
    return this.matchers[filter]!.identify(host, hint, fid);
  }

  /** EngineSink: failures in line order, their ids numbered by the engine. */
  records(ids: Uint32Array, times: Float64Array, filters: Uint8Array): void {
    const n = ids.length;
    this.reserve(this.count + n);
    const rec = this.rec;
    rec.idIndex.set(ids, this.count);
    rec.times.set(times, this.count);
    rec.filters.set(filters, this.count);
    this.count += n;
  }

  /** EngineSink: a line the engine gives back, for one filter; true when it had a date. */
  line(filter: number, text: string, owned: boolean): boolean {
    return this.jsLine(filter, text, undefined, true, owned);
  }

  /** One filter on one line in JavaScript, around the engine's sessions when there is one. */
  private jsLine(i: number, text: string, time: number | undefined, ascii: boolean, owned: boolean): boolean {
    const m = this.matchers[i]!;
    const engine = this.engine;
    if (engine === null) return this.record(m.processLine(text, time, ascii), i, owned);
    m.lastTime = engine.lastTime(i);
    const r = m.processLine(text, time, ascii);
    engine.setLastTime(i, m.lastTime);
    return this.record(r, i, owned);
  }

  /** Room for `n` failures in all. */
  private reserve(n: number): void {
    const rec = this.rec;
    if (n <= rec.times.length) return;
    let size = rec.times.length * 2;
    while (size < n) size *= 2;
    const count = this.count;
    const grow = <T extends Uint32Array | Float64Array | Uint8Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a.subarray(0, count));
      return b;
    };
    rec.idIndex = grow(rec.idIndex);
    rec.times = grow(rec.times);
    rec.filters = grow(rec.filters);
  }

  private append(k: number, time: number, filter: number): void {
    const n = this.count++;
    const rec = this.rec;
    if (n === rec.times.length) this.reserve(n + 1);
    rec.idIndex[n] = k;
    rec.times[n] = time;
    rec.filters[n] = filter;
  }

  /**
   * Lines of `text` (a string, or bytes: UTF-8, or pure ASCII when `ascii`); `owned`: they
   * belong to the chunk (else they only prime the sessions). ASCII bytes are matched where
   * they are (FilterMatcher.processBytes) unless the journal needs the text.
   */
  feed(text: string | Buffer, owned: boolean, ascii = false): void {
    if (typeof text !== "string") {
      if (ascii && this.engine !== null) {
        this.engine.feed(text, owned);
        return;
      }
      if (ascii && !this.journal && nativeAvailable()) {
        this.feedBytes(text, owned);
        return;
      }
      text = ascii ? text.toString("latin1") : decoder.decode(text);
    }
    const matchers = this.matchers;
    const nf = matchers.length;
    const journal = this.journal;
    const len = text.length;
    const nul = text.indexOf("\0") >= 0; // else no line needs the check
    if (this.engine !== null) this.engine.owned = owned;
    let pos = 0;
    while (pos < len) {
      let end = text.indexOf("\n", pos);
      if (end < 0) end = len;
      let stop = end;
      if (stop > pos && text.charCodeAt(stop - 1) === 13) stop--;
      const line = text.slice(pos, stop);
      pos = end + 1;
      if (owned) this.lines++;
      if (line.length === 0) continue;
      if (nul && line.indexOf("\0") >= 0) {
        if (owned) this.binary++;
        continue;
      }
      let lineText = line;
      let lineTime: number | undefined;
      let lineAscii = ascii;
      if (journal) {
        const rec = journalRecord(line);
        if (!rec) {
          if (owned) this.binary++;
          continue;
        }
        lineText = rec.text;
        lineTime = rec.time;
        lineAscii = false;
      }
      let dated = journal;
      for (let i = 0; i < nf; i++) if (this.jsLine(i, lineText, lineTime, lineAscii, owned)) dated = true;
      if (owned && !dated) this.noDate++;
    }
  }

  /** feed for pure ASCII bytes: the same lines, the same results, no text made. */
  private feedBytes(buf: Buffer, owned: boolean): void {
    const matchers = this.matchers;
    const nf = matchers.length;
    const len = buf.length;
    if (len === 0) return; // no pointer to nothing
    const base = ptr(buf);
    const nul = buf.indexOf(0) >= 0;
    let pos = 0;
    while (pos < len) {
      let end = buf.indexOf(10, pos);
      if (end < 0) end = len;
      let stop = end;
      if (stop > pos && buf[stop - 1] === 13) stop--;
      const start = pos;
      pos = end + 1;
      if (owned) this.lines++;
      if (stop === start) continue;
      if (nul) {
        const z = buf.indexOf(0, start);
        if (z >= 0 && z < stop) {
          if (owned) this.binary++;
          continue;
        }
      }
      let dated = false;
      for (let i = 0; i < nf; i++)
        if (this.record(matchers[i]!.processBytes(buf, base, start, stop), i, owned)) dated = true;
      if (owned && !dated) this.noDate++;
    }
  }

  /** Takes in one filter's result for a line; true when the filter found a date in it. */
  private record(r: LineResult, i: number, owned: boolean): boolean {
    if (!owned) return r.dateTemplate !== null;
    const t = r.time;
    if (t !== null) {
      if (this.first === null || t < this.first) this.first = t;
      if (this.last === null || t > this.last) this.last = t;
    }
    if (r.invalidHost !== null) this.invalid++;
    const f = r.failure;
    if (f && f.time !== null) {
      this.push(f.id, f.time, i, f.v4 ?? -1);
      this.perFilter[i]!++;
    }
    return r.dateTemplate !== null;
  }

  finish(seq: number, bytes: number): ChunkResult {
    if (this.engine !== null) {
      const e = this.engine.finish();
      this.lines += e.lines;
      this.binary += e.binary;
      this.noDate += e.noDate;
      this.invalid += e.invalid;
      for (let i = 0; i < e.perFilter.length; i++) this.perFilter[i]! += e.perFilter[i]!;
      if (e.first !== null && (this.first === null || e.first < this.first)) this.first = e.first;
      if (e.last !== null && (this.last === null || e.last > this.last)) this.last = e.last;
    }
    const n = this.count;
    const { idBase, ids } = this.source.take();
    // views: a run is over once finished, its arrays are the result's (until the processor's
    // next run, when it reuses them)
    const rec = this.rec;
    return {
      seq,
      lines: this.lines,
      bytes,
      noDate: this.noDate,
      binary: this.binary,
      invalid: this.invalid,
      perFilter: this.perFilter,
      ids,
      idBase,
      idIndex: rec.idIndex.subarray(0, n),
      times: rec.times.subarray(0, n),
      filters: rec.filters.subarray(0, n),
      first: this.first,
      last: this.last,
    };
  }
}

export class ChunkProcessor {
  private readonly filters: CompiledFilter[];
  /** The IPv6 hosts read so far, for every chunk (an address repeats across a log). */
  private readonly ip6Hosts = new Map<string, Host | null>();
  /** The filters for journal exports, compiled at the first journal chunk. */
  private journalFilters: CompiledFilter[] | null = null;
  /** The ids of all this processor's runs (see SourceIds). */
  private readonly ids: SourceIds;
  /** The failure arrays every run writes to, when they are reused. */
  private readonly records: Records | null;

  /**
   * `reuse`: every run writes its failures to the same arrays, so a result's arrays hold until
   * the next run starts (a scan child, which sends each result before the next: fresh arrays
   * per chunk were a few hundred page faults each).
   */
  constructor(
    private readonly refs: readonly ScanFilterRef[],
    private readonly now: number,
    reuse = false,
  ) {
    this.records = reuse ? newRecords() : null;
    this.filters = refs.map((r) =>
      r.spec ? compileFilter(r.spec, { now: () => now }) : openFilter(r.ref, {}, { now: () => now }),
    );
    this.ids = new SourceIds(nativeIds(this.filters));
  }

  /** A run over one chunk (fresh sessions). */
  start(journal: boolean): ChunkRun {
    if (journal && !this.journalFilters) {
      this.journalFilters = this.refs.map((r, i) => {
        const f = this.filters[i]!;
        return "logtype" in f.spec.declaredOptions
          ? openFilter(r.ref, { logtype: "journal" }, { now: () => this.now })
          : f;
      });
    }
    return new ChunkRun(
      journal ? this.journalFilters! : this.filters,
      journal,
      this.now,
      this.ids,
      this.ip6Hosts,
      this.records ?? newRecords(),
    );
  }

  /**
   * One chunk given as UTF-8 bytes (gzip and stdin, read by the parent), the first `primeBytes`
   * of which (whole lines) only prime the sessions. Pure ASCII goes the bytes' way (see feed).
   */
  processBytes(seq: number, bytes: Buffer, primeBytes: number, journal: boolean): ChunkResult {
    if (journal || !isAscii(bytes)) {
      const primeChars = primeBytes > 0 ? decoder.decode(bytes.subarray(0, primeBytes)).length : 0;
      return this.process(seq, decoder.decode(bytes), { primeChars, journal });
    }
    const run = this.start(false);
    if (primeBytes > 0) run.feed(bytes.subarray(0, primeBytes), false, true);
    run.feed(bytes.subarray(primeBytes), true, true);
    return run.finish(seq, 0);
  }

  /** One chunk given as text: the first `primeChars` characters only prime the sessions. */
  process(seq: number, text: string, opts: ChunkOptions = {}): ChunkResult {
    const run = this.start(opts.journal ?? false);
    const prime = opts.primeChars ?? 0;
    // lines that start before `prime` only prime the sessions
    let cut = 0;
    if (prime > 0) {
      cut = text.charCodeAt(prime - 1) === 10 ? prime : text.indexOf("\n", prime) + 1 || text.length;
      run.feed(text.slice(0, cut), false);
    }
    run.feed(cut > 0 ? text.slice(cut) : text, true);
    return run.finish(seq, 0);
  }
}
