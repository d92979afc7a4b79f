/**
 * The per-chunk work of `scan`: lines → filters, failures out in a compact form. Runs in
 * worker threads (one chunk of a file each) or in-process for small inputs. Uses the same
 * FilterMatcher as regex-test and the daemon.
 */
import { type CompiledFilter, FilterMatcher, openFilter } from "../filter/index.ts";

export interface ScanFilterRef {
  /** Filter reference: built-in name or path, with options (`sshd[mode=aggressive]`). */
  ref: string;
  /** The jail it feeds (its name in reports). */
  jail: string;
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
  /** Failures in line order: id, time, filter index. */
  ids: string[];
  times: Float64Array;
  filters: Uint8Array;
  first: number | null;
  last: number | null;
}

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

export class ChunkProcessor {
  private readonly filters: CompiledFilter[];
  private readonly journalFilters: CompiledFilter[];

  constructor(
    refs: readonly ScanFilterRef[],
    private readonly now: number,
  ) {
    const opts = { now: () => now };
    this.filters = refs.map((r) => openFilter(r.ref, {}, opts));
    this.journalFilters = refs.map((r, i) => {
      const f = this.filters[i]!;
      return "logtype" in f.spec.declaredOptions ? openFilter(r.ref, { logtype: "journal" }, opts) : f;
    });
  }

  process(seq: number, text: string, opts: ChunkOptions = {}): ChunkResult {
    const journal = opts.journal ?? false;
    const matchers = (journal ? this.journalFilters : this.filters).map(
      (f) => new FilterMatcher(f, { now: () => this.now, noDate: "last", lean: true }),
    );
    const nf = matchers.length;
    const ids: string[] = [];
    const times: number[] = [];
    const fidx: number[] = [];
    const perFilter = new Array<number>(nf).fill(0);
    let lines = 0;
    let noDate = 0;
    let binary = 0;
    let invalid = 0;
    let first: number | null = null;
    let last: number | null = null;
    const prime = opts.primeChars ?? 0;
    const len = text.length;
    let pos = 0;
    while (pos < len) {
      let end = text.indexOf("\n", pos);
      if (end < 0) end = len;
      const owned = pos >= prime;
      let stop = end;
      if (stop > pos && text.charCodeAt(stop - 1) === 13) stop--;
      const line = text.slice(pos, stop);
      pos = end + 1;
      if (owned) lines++;
      if (line.length === 0) continue;
      if (line.indexOf("\0") >= 0) {
        if (owned) binary++;
        continue;
      }
      let lineText = line;
      let lineTime: number | undefined;
      if (journal) {
        const rec = journalRecord(line);
        if (!rec) {
          if (owned) binary++;
          continue;
        }
        lineText = rec.text;
        lineTime = rec.time;
      }
      let dated = journal;
      for (let i = 0; i < nf; i++) {
        const r = matchers[i]!.processLine(lineText, lineTime);
        if (r.dateTemplate !== null) dated = true;
        if (!owned) continue;
        if (r.time !== null) {
          if (first === null || r.time < first) first = r.time;
          if (last === null || r.time > last) last = r.time;
        }
        if (r.invalidHost !== null) invalid++;
        const f = r.failure;
        if (f && f.time !== null) {
          ids.push(f.id);
          times.push(f.time);
          fidx.push(i);
          perFilter[i]!++;
        }
      }
      if (owned && !dated) noDate++;
    }
    return {
      seq,
      lines,
      bytes: 0,
      noDate,
      binary,
      invalid,
      perFilter,
      ids,
      times: Float64Array.from(times),
      filters: Uint8Array.from(fidx),
      first,
      last,
    };
  }
}
