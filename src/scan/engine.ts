/**
 * scan's native engine: engine.c runs the per-line loop of ChunkRun.feedBytes for the filters it can take (single-line, lean, every
 * regex in PCRE2 form, syslog dates, no ignoreregex) and keeps their sessions. It calls
 * PCRE2 directly, so a line costs no JavaScript at all unless it needs JavaScript: a date in
 * another shape, a PCRE2 error, a day not yet in the date table, a failure whose id is not a
 * plain IPv4 address. Those steps run the same JavaScript as before (FilterMatcher with a
 * handoff, FilterMatcher.identify), so there is one definition of each rule; the engine only
 * repeats, in C, what those functions do for the common case, and test/engine.test.ts holds
 * the two paths to the same results. The engine is the one scripts/build.ts compiled with the
 * system's C compiler (embedded in the executable), else compiled here by TinyCC; no PCRE2,
 * or FAIL2TS_ENGINE=js: the JavaScript path does everything.
 */
import { cc, dlopen, FFIType, type Pointer, ptr } from "bun:ffi";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CompiledFilter } from "../filter/index.ts";
import type { Identity } from "../filter/matcher.ts";
import { candidateTable, LEAN_KEYS, type NativeEntry, namedGroups, nativeForm } from "../filter/matcher.ts";
import { jitMatchAddress, nativeHead, pcreSource } from "../filter/native.ts";
import { syslogHead } from "../filter/syslog-head.ts";
import { Fail2tsError } from "../util/errors.ts";
import { type HostKind, parseIPv4 } from "../util/ip.ts";
import source from "./engine.c" with { type: "text" };
import type { NativeIds, SourceIds } from "./ids.ts";

const P = FFIType.ptr;
const I = FFIType.i32;
const D = FFIType.f64;
const V = FFIType.void;

const SYMBOLS = {
  spec_new: { args: [P, I, I], returns: P },
  spec_pref: { args: [P, P, P, P, P, I], returns: V },
  spec_head: { args: [P, P, P, P], returns: V },
  spec_fast: { args: [P, P, I, I], returns: V },
  head_probe: { args: [P, P, I, I, P], returns: I },
  spec_fail: { args: [P, I, P, P, P, P, I, P, I], returns: V },
  spec_cands: { args: [P, P, P, I], returns: V },
  spec_hour: { args: [P, I, I, I, D, I], returns: V },
  ids_new: { args: [], returns: P },
  ids_free: { args: [P], returns: V },
  ids_count: { args: [P], returns: FFIType.u32 },
  ids_next: { args: [P], returns: FFIType.u32 },
  ids_v4: { args: [P, I], returns: FFIType.u32 },
  run_new: { args: [P, I, D, P, P, P, P, P, P, P, P, P, I, P, I], returns: P },
  run_id4: { args: [P, I], returns: FFIType.u32 },
  run_count: { args: [P, I], returns: D },
  run_nnew: { args: [P], returns: I },
  run_text: { args: [P, P, I], returns: V },
  run_drained: { args: [P], returns: V },
  run_learn: { args: [P, I, I], returns: V },
  run_free: { args: [P], returns: V },
  run_last_time: { args: [P, I], returns: D },
  run_set_last_time: { args: [P, I, D], returns: V },
  run_stage2: { args: [P, I, I, D, I, P, P], returns: V },
  run_feed: { args: [P, P, I, I, I, I, I, I, I], returns: I },
  engine_need: { args: [I], returns: I },
} as const;

type Lib = ReturnType<typeof cc<typeof SYMBOLS>>["symbols"];

type Origin = "so" | "tcc";

const loaded = new Map<Origin, Lib | null>();
const originOf = new WeakMap<Lib, Origin>();

/** Where the engine scan uses comes from: "so" (built by the C compiler), "tcc", or "none". */
export function engineOrigin(): Origin | "none" {
  const L = engine();
  return L === null ? "none" : originOf.get(L)!;
}

/**
 * engine.so as built by scripts/build.ts: embedded in the executable, or in dist/ beside the
 * source tree when it is newer than engine.c (runs from source, tests).
 */
function builtEngine(): string | null {
  if ((Bun.embeddedFiles as Array<Blob & { name?: string }>).some((f) => f.name === "engine.so"))
    return "/$bunfs/root/engine.so";
  const so = join(import.meta.dir, "..", "..", "dist", "engine.so");
  try {
    if (statSync(so).mtimeMs >= statSync(join(import.meta.dir, "engine.c")).mtimeMs) return so;
  } catch {
    // not built, or no source tree
  }
  return null;
}

/**
 * The engine, or null. FAIL2TS_ENGINE: "js" (none: the JavaScript path), "tcc" (TinyCC's),
 * else the built one, else TinyCC's. No PCRE2: none.
 */
function engine(): Lib | null {
  const want = process.env.FAIL2TS_ENGINE ?? "";
  if (want === "js" || jitMatchAddress() === null) return null;
  return (want === "tcc" ? null : load("so")) ?? load("tcc");
}

function load(kind: Origin): Lib | null {
  const known = loaded.get(kind);
  if (known !== undefined) return known;
  let L: Lib | null = null;
  const built = kind === "so" ? builtEngine() : null;
  // dlopen and TinyCC read files: ours, in a directory of our own (mode 0700), gone once loaded
  let dir: string | null = null;
  if (kind === "tcc" || built !== null)
    try {
      dir = mkdtempSync(join(process.env.TMPDIR || "/tmp", "fail2ts-engine-"));
      if (built !== null) {
        const file = join(dir, "engine.so");
        writeFileSync(file, readFileSync(built), { mode: 0o600 });
        L = dlopen(file, SYMBOLS).symbols as unknown as Lib;
      } else {
        const file = join(dir, "engine.c");
        writeFileSync(file, source, { mode: 0o600 });
        L = cc({ source: file, symbols: SYMBOLS }).symbols;
      }
      originOf.set(L, kind);
    } catch {
      L = null; // the JavaScript path does the same work
    } finally {
      if (dir !== null) rmSync(dir, { recursive: true, force: true });
    }
  loaded.set(kind, L);
  return L;
}

/** info[] slots written by run_feed (engine.c) */
const I_POS = 0;
const I_FI = 1;
const I_START = 2;
const I_STOP = 3;
const I_MONTH = 4;
const I_DAY = 5;
const I_NREC = 6;
const I_TLEN = 7;
const I_NEED = 8;
const I_LINES = 9;
const I_BINARY = 10;
const I_NODATE = 11;
const I_FIRST = 12;
const I_LAST = 13;
const I_DATED = 14;
const I_OVERFLOW = 15;
const I_NTEXT = 16;
const I_NNEW = 17;
const I_INVALID = 18;
const INFO_SIZE = 20;

const ST_DONE = 0;
const ST_DAY = 1;
const ST_FLUSH = 3;

/** run_feed's flags: the block holds NUL bytes, CR bytes (engine.c: B_NUL, B_CR) */
const B_NUL = 1;
const B_CR = 2;

const HINTS: Array<HostKind | undefined> = [undefined, "ip4", "ip6", "dns"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MAXK = 24;
const CAP = 8192;

/** What the engine knows of one compiled filter. */
interface Spec {
  handle: Pointer;
  filter: CompiledFilter;
  /** The dict keys it tracks, in its order: LEAN_KEYS, then alt_ keys and targets. */
  keys: string[];
  /** Regexes (kept alive: the engine uses their code and match data). */
  form: object;
}

/** Specs per engine (a spec lives in its engine's memory) and compiled filter. */
const specs = new WeakMap<Lib, WeakMap<CompiledFilter, Spec | null>>();

/** Where dates are read as syslog's "Mmm dd hh:mm:ss" at the start of the line. */
function syslogDated(filter: CompiledFilter): boolean {
  const line = Buffer.from("Jan  1 00:00:00 x", "latin1");
  return filter.dates.matchBytes(line, 0, line.length) !== undefined;
}

function specFor(filter: CompiledFilter, L: Lib): Spec | null {
  let mine = specs.get(L);
  if (mine === undefined) specs.set(L, (mine = new WeakMap()));
  const known = mine.get(filter);
  if (known !== undefined) return known;
  const spec = makeSpec(filter, L);
  mine.set(filter, spec);
  return spec;
}

/**
 * A failregex's program (read by build() and stage2() in engine.c): [offset of the update
 * list], own keys [n, (key, ngroups, groups...)...], alt fill-ins [n, (source, target)...],
 * prefregex keys (none of them the regex's own) [n, (key, alt-filled target, ngroups, groups...)...],
 * update list [n, keys...]. Keys the engine does not track are left out: nothing it does
 * reads them.
 */
function program(filter: CompiledFilter, i: number, keyOf: Map<string, number>): Int32Array {
  const rx = filter.fail[i]!;
  const own = namedGroups(rx);
  const out: number[] = [0];
  const mine = [...own].filter(([k]) => keyOf.has(k));
  out.push(mine.length);
  for (const [k, idx] of mine) out.push(keyOf.get(k)!, idx.length, ...idx);
  out.push(rx.alt.length);
  for (const [k, t] of rx.alt) out.push(keyOf.get(k)!, keyOf.get(t)!);
  const pref = filter.pref;
  const pg = pref ? namedGroups(pref) : new Map<string, number[]>();
  const pk = (pref?.names ?? []).filter((k) => !own.has(k) && keyOf.has(k));
  out.push(pk.length);
  for (const k of pk) {
    const idx = k === "content" ? [] : (pg.get(k) ?? []);
    const flagged = rx.alt.some(([, t]) => t === k) ? 1 : 0;
    out.push(keyOf.get(k)!, flagged, idx.length, ...idx);
  }
  out[0] = out.length;
  const upd = [...new Set([...rx.names, ...(pref?.names ?? []), "nofail"])].filter((k) => keyOf.has(k));
  out.push(upd.length, ...upd.map((k) => keyOf.get(k)!));
  return Int32Array.from(out);
}

/** A regex's literal prefixes: [n, (len, bytes)...] (none: no constraint). */
function litBlob(lits: readonly string[] | null): Buffer {
  if (lits === null) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeInt32LE(lits.length);
  parts.push(head);
  for (const l of lits) {
    const b = Buffer.from(l, "latin1");
    const n = Buffer.alloc(4);
    n.writeInt32LE(b.length);
    parts.push(n, b);
  }
  return Buffer.concat(parts);
}

function makeSpec(filter: CompiledFilter, L: Lib): Spec | null {
  if (filter.ignore.length > 0 || !syslogDated(filter)) return null;
  const form = nativeForm(filter);
  if (form === null) return null;
  const keys = [...LEAN_KEYS];
  for (const rx of filter.fail)
    for (const [k, t] of rx.alt) for (const n of [k, t]) if (!keys.includes(n)) keys.push(n);
  const names = [...(filter.pref?.names ?? []), ...filter.fail.flatMap((r) => r.names)];
  if (keys.length > MAXK || names.includes("users")) return null;
  const keyOf = new Map(keys.map((k, i) => [k, i]));
  const handle = L.spec_new(jitMatchAddress(), keys.length, filter.fail.length) as Pointer | null;
  if (handle === null) return null;
  if (form.pref !== null) {
    const content = Int32Array.from(namedGroups(filter.pref!).get("content") ?? [0]);
    const r = form.pref.rx;
    L.spec_pref(handle, r.code, r.md, r.ovp, ptr(content), content.length);
    const pref = filter.pref!;
    const flags = pref.re.flags.replace("u", "");
    const numbered = pref.info.numbered;
    const head =
      content.length === 1 && numbered !== null ? nativeHead(numbered, flags, pref.info, content[0]!) : null;
    if (head !== null) {
      L.spec_head(handle, head.code, head.md, head.ovp);
      const fast = syslogHead(pcreSource(numbered!, flags, pref.info), flags);
      if (fast !== null) {
        const names = litBlob(fast.daemons); // copied by spec_fast
        L.spec_fast(handle, ptr(names), fast.grouped ? 1 : 0, fast.errorTail ? 1 : 0);
      }
    }
  }
  form.fail.forEach((e: NativeEntry, i) => {
    const prog = program(filter, i, keyOf);
    const lits = litBlob(filter.fail[i]!.info.lits);
    const r = e.rx;
    L.spec_fail(
      handle,
      i,
      r.code,
      r.md,
      r.ovp,
      ptr(prog),
      prog.length,
      lits.length ? ptr(lits) : null,
      lits.length,
    );
  });
  const table = candidateTable(filter.fail);
  table.push(Int32Array.from(filter.fail.keys()));
  const start = new Int32Array(130);
  const list: number[] = [];
  table.forEach((l, c) => {
    start[c] = list.length;
    list.push(...l);
  });
  start[129] = list.length;
  const flat = Int32Array.from(list.length ? list : [0]);
  L.spec_cands(handle, ptr(start), ptr(flat), flat.length);
  return { handle, filter, keys, form };
}

/**
 * For tests: the head of the prefregex (see spec_head) on `text` (ASCII, no CR), as PCRE2 reads
 * it, or as fast_head does when `fast` and it takes the text (`took`); null when the engine
 * has no head for this filter. `end`: where the content starts; `prefix`: where group 1 ends.
 */
export function headProbe(
  filter: CompiledFilter,
  text: Buffer,
  fast: boolean,
): { rc: number; end: number; prefix: number; took: boolean } | null {
  const L = engine();
  const spec = L === null ? null : specFor(filter, L);
  if (L === null || spec === null) return null;
  const out = new Float64Array(4);
  if (L.head_probe(spec.handle, ptr(text), text.length, fast ? 1 : 0, ptr(out)) === -100) return null;
  return { rc: out[0]!, end: out[1]!, prefix: out[2]!, took: out[3] === 1 };
}

/** The date table's hours of one day: base times where the hour is plain (3600 s of wall time). */
function fillDay(L: Lib, spec: Spec, month: number, day: number): void {
  const dates = spec.filter.dates;
  const at = (h: number, m: number, s: number) => {
    const p2 = (n: number) => String(n).padStart(2, "0");
    const b = Buffer.from(
      `${MONTHS[month - 1]} ${String(day).padStart(2, " ")} ${p2(h)}:${p2(m)}:${p2(s)} x`,
    );
    return dates.matchBytes(b, 0, b.length)?.time ?? Number.NaN;
  };
  for (let h = 0; h < 24; h++) {
    const t0 = at(h, 0, 0);
    const t1 = at(h, 59, 59);
    const plain = Number.isFinite(t0) && t1 - t0 === 3599;
    L.spec_hour(spec.handle, month, day, h, plain ? t0 : 0, plain ? 1 : 2);
  }
}

/** Where the engine's results go (ChunkRun). */
export interface EngineSink {
  /** The failure id of a host, as the filter's matcher makes it (FilterMatcher.identify). */
  identify(
    filter: number,
    host: string,
    hint: HostKind | undefined,
    fid: string | undefined,
  ): Identity | null;
  /** Failures in line order: their ids' numbers (see EngineRun.ids), times, filters. */
  records(ids: Uint32Array, times: Float64Array, filters: Uint8Array): void;
  /** JavaScript takes one line for one filter (a Latin-1 string); true when it found a date. */
  line(filter: number, text: string, owned: boolean): boolean;
}

/** What a run adds up to (see EngineRun.finish). */
export interface EngineTotals {
  lines: number;
  binary: number;
  noDate: number;
  invalid: number;
  first: number | null;
  last: number | null;
  perFilter: number[];
}

/** The engine and its specs for these filters, or null when one cannot run there. */
function enginesFor(filters: readonly CompiledFilter[]): { L: Lib; list: Spec[] } | null {
  const L = engine();
  if (L === null || filters.length === 0 || filters.length > 255) return null;
  const list: Spec[] = [];
  for (const f of filters) {
    const s = specFor(f, L);
    if (s === null) return null;
    list.push(s);
  }
  return { L, list };
}

/** The engine and handle of a SourceIds' native table. */
const handles = new WeakMap<NativeIds, { L: Lib; handle: Pointer }>();
const freeIds = new FinalizationRegistry<{ L: Lib; handle: Pointer }>(({ L, handle }) => L.ids_free(handle));

/**
 * The engine's id table for a source whose chunks of these filters it runs (numbers for
 * SourceIds), or null when it cannot run them: their ids are then numbered in JavaScript.
 */
export function nativeIds(filters: readonly CompiledFilter[]): NativeIds | null {
  const e = enginesFor(filters);
  if (e === null) return null;
  const { L } = e;
  const handle = nonNull(L.ids_new() as Pointer | null);
  // `| 0`: bun:ffi reads a number held as a double (2³¹ and up) wrongly; engine.c takes the bits
  const ids: NativeIds = {
    v4: (address) => L.ids_v4(handle, address | 0),
    next: () => L.ids_next(handle),
    count: () => L.ids_count(handle),
  };
  handles.set(ids, { L, handle });
  freeIds.register(ids, { L, handle });
  return ids;
}

/**
 * Engines for these filters (one chunk run: fresh sessions), or null when one cannot run there.
 * Ids are numbered in `ids`, which must have the engine's table (nativeIds) to take them.
 */
export function startEngine(
  filters: readonly CompiledFilter[],
  now: number,
  sink: EngineSink,
  ids: SourceIds,
): EngineRun | null {
  const e = enginesFor(filters);
  const table = ids.native && handles.get(ids.native);
  // the table must be this engine's (FAIL2TS_ENGINE may have chosen another since)
  if (e === null || !table || table.L !== e.L) return null;
  return new EngineRun(e.L, e.list, now, sink, ids, table.handle);
}

const utf8 = new TextDecoder();

function nonNull(p: Pointer | bigint | null): Pointer {
  if (p === null) throw new Error("engine: out of memory");
  return p as Pointer;
}

export class EngineRun {
  private readonly handle: Pointer;
  // The engine keeps pointers to these: arrays on ArrayBuffers of their own, which never move.
  private readonly info = new Float64Array(new ArrayBuffer(8 * INFO_SIZE));
  private readonly rtime = new Float64Array(new ArrayBuffer(8 * CAP));
  private readonly rid = new Uint32Array(new ArrayBuffer(4 * CAP));
  private readonly rfilter = new Uint8Array(new ArrayBuffer(CAP));
  private readonly rtext = new Int32Array(new ArrayBuffer(4 * CAP));
  private readonly tpos = new Int32Array(new ArrayBuffer(4 * CAP));
  private readonly nv4 = new Uint32Array(new ArrayBuffer(8 * CAP));
  private readonly nvidx = new Uint32Array(new ArrayBuffer(8 * CAP));
  private text = Buffer.from(new ArrayBuffer(1 << 16));
  private readonly lens = new Int32Array(new ArrayBuffer(4 * MAXK));
  private scratch = Buffer.alloc(4096);
  /** Whether the lines being fed belong to the chunk (see feed; the handoff reads it). */
  owned = false;
  private closed = false;
  private invalid = 0;
  private readonly textCounts: number[];

  constructor(
    private readonly L: Lib,
    private readonly specs: Spec[],
    now: number,
    private readonly sink: EngineSink,
    /** The source's ids: the engine numbers them in its table (`table`). */
    private readonly source: SourceIds,
    table: Pointer,
  ) {
    this.textCounts = specs.map(() => 0);
    const specHandles = BigUint64Array.from(specs.map((s) => BigInt(s.handle)));
    this.handle = nonNull(
      L.run_new(
        ptr(specHandles),
        specs.length,
        now,
        table,
        ptr(this.info),
        ptr(this.rtime),
        ptr(this.rid),
        ptr(this.rfilter),
        ptr(this.rtext),
        ptr(this.tpos),
        ptr(this.nv4),
        ptr(this.nvidx),
        CAP,
        ptr(this.text),
        this.text.length,
      ),
    );
  }
  /**
   * The lines of `buf` (pure ASCII, whole lines); `owned`: they belong to the chunk (else they
   * only prime the sessions).
   */
  feed(buf: Buffer, owned: boolean): void {
    const len = buf.length;
    if (len === 0) return;
    const L = this.L;
    const info = this.info;
    const base = ptr(buf);
    const flags = (buf.indexOf(0) >= 0 ? B_NUL : 0) | (buf.indexOf(13) >= 0 ? B_CR : 0);
    this.owned = owned;
    let pos = 0;
    let fi = 0;
    let dated = 0;
    let resume = 0;
    for (;;) {
      const st = L.run_feed(this.handle, base, len, pos, fi, owned ? 1 : 0, flags, dated, resume);
      resume = 1;
      if (st === ST_DONE) return;
      // `| 0`: bun:ffi reads an integer argument from a number held as a double wrongly
      pos = info[I_POS]! | 0;
      fi = info[I_FI]! | 0;
      dated = info[I_DATED]! | 0;
      if (st === ST_FLUSH) this.makeRoom(info[I_NEED]!);
      else if (st === ST_DAY) fillDay(L, this.specs[fi]!, info[I_MONTH]! | 0, info[I_DAY]! | 0);
      else {
        // ST_LINE: JavaScript takes this line for this filter; the next filter goes on here
        const s = info[I_START]! | 0;
        const e = info[I_STOP]! | 0;
        const text = (buf as Buffer & { latin1Slice(a: number, b: number): string }).latin1Slice(s, e);
        if (this.sink.line(fi, text, owned)) dated = 1;
        fi++;
      }
    }
  }

  /** The matcher's lastTime around a line given to JavaScript. */
  lastTime(fi: number): number | null {
    const t = this.L.run_last_time(this.handle, fi);
    return Number.isNaN(t) ? null : t;
  }

  setLastTime(fi: number, t: number | null): void {
    this.L.run_set_last_time(this.handle, fi, t ?? Number.NaN);
  }

  /** A dict matched by JavaScript (FilterMatcher's handoff): sessions and failure here. */
  handoff(fi: number, fail: Readonly<Record<string, unknown>>, regex: number, time: number | null): void {
    const keys = this.specs[fi]!.keys;
    const lens = this.lens;
    let at = 0;
    for (let k = 0; k < keys.length; k++) {
      const v = fail[keys[k]!];
      if (v === undefined || v === null) {
        lens[k] = -1;
        continue;
      }
      const s = typeof v === "string" ? v : String(v);
      if (this.scratch.length - at < 3 * s.length) {
        const bigger = Buffer.alloc(Math.max(2 * this.scratch.length, at + 3 * s.length));
        this.scratch.copy(bigger, 0, 0, at);
        this.scratch = bigger;
      }
      lens[k] = this.scratch.write(s, at, "utf8");
      at += lens[k]!;
    }
    this.makeRoom(this.L.engine_need(at), true);
    this.L.run_stage2(
      this.handle,
      fi,
      regex,
      time ?? Number.NaN,
      this.owned ? 1 : 0,
      ptr(lens),
      ptr(this.scratch),
    );
  }

  /** Drains the records when a record of `need` bytes might not fit (always with `check` off). */
  private makeRoom(need: number, check = false): void {
    const info = this.info;
    if (check && info[I_NREC]! < CAP && info[I_TLEN]! + need <= this.text.length) return;
    this.drain();
    if (need > this.text.length) {
      this.text = Buffer.from(new ArrayBuffer(Math.max(need, 2 * this.text.length)));
      this.L.run_text(this.handle, ptr(this.text), this.text.length);
    }
  }

  /**
   * Hands the records so far to the sink, in line order: the text ones identified here (or
   * dropped: not a valid host, or no time), the new IPv4 ids named.
   */
  private drain(): void {
    const info = this.info;
    if (info[I_OVERFLOW] !== 0) throw new Fail2tsError("internal", "scan engine: a record found no room");
    let n = info[I_NREC]!;
    const nt = info[I_NTEXT]!;
    const L = this.L;
    let drop = false;
    for (let j = 0; j < nt; j++) {
      const k = this.tpos[j]!;
      const at = this.rtext[k]!;
      const text = this.text;
      const hl = text.readInt32LE(at + 1);
      const fl = text.readInt32LE(at + 5);
      const host = utf8.decode(text.subarray(at + 9, at + 9 + hl));
      const fid = fl < 0 ? undefined : utf8.decode(text.subarray(at + 9 + hl, at + 9 + hl + fl));
      const f = this.rfilter[k]!;
      const who = this.sink.identify(f, host, HINTS[text[at]!], fid);
      if (who === null) {
        this.invalid++;
        L.run_learn(this.handle, k, -1); // the engine knows this host from now on
      }
      if (who === null || Number.isNaN(this.rtime[k]!)) {
        this.rtext[k] = -2;
        drop = true;
        continue;
      }
      const id = this.number(who);
      L.run_learn(this.handle, k, id);
      this.textCounts[f]!++;
      this.rid[k] = id;
    }
    const nn = L.run_nnew(this.handle);
    for (let j = 0; j < nn; j++) this.source.place(this.nvidx[j]!, this.nv4[j]!);
    if (drop) {
      let w = 0;
      for (let k = 0; k < n; k++) {
        if (this.rtext[k] === -2) continue;
        this.rid[w] = this.rid[k]!;
        this.rtime[w] = this.rtime[k]!;
        this.rfilter[w++] = this.rfilter[k]!;
      }
      n = w;
    }
    if (n > 0)
      this.sink.records(this.rid.subarray(0, n), this.rtime.subarray(0, n), this.rfilter.subarray(0, n));
    info[I_NREC] = 0;
    info[I_TLEN] = 0;
    info[I_NTEXT] = 0;
    info[I_NNEW] = 0;
    L.run_drained(this.handle);
  }

  /** The number of an identified id. */
  private number(who: Identity): number {
    // as ChunkRun.push: an id that is IPv4 text is known by its number, whatever its kind
    const num = who.kind === "ip4" && who.v4 >= 0 ? who.v4 : parseIPv4(who.id);
    // `| 0`: bun:ffi reads a number held as a double (2³¹ and up) wrongly; engine.c takes the bits
    if (num >= 0) return this.L.run_id4(this.handle, num | 0);
    return this.source.numberOther(who.id);
  }

  /** The last records, the totals, and the engine's memory back; the run is over. */
  finish(): EngineTotals {
    this.drain();
    const info = this.info;
    const out: EngineTotals = {
      lines: info[I_LINES]!,
      binary: info[I_BINARY]!,
      noDate: info[I_NODATE]!,
      invalid: this.invalid + info[I_INVALID]!,
      first: Number.isNaN(info[I_FIRST]!) ? null : info[I_FIRST]!,
      last: Number.isNaN(info[I_LAST]!) ? null : info[I_LAST]!,
      perFilter: this.textCounts.map((n, i) => n + this.L.run_count(this.handle, i)),
    };
    if (!this.closed) this.L.run_free(this.handle);
    this.closed = true;
    return out;
  }
}
