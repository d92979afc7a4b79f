/**
 * `scan`: replays historical logs through the filters and the jail logic on log time, and
 * reports the bans that would have happened. Files are read in parallel chunks by worker
 * processes; results are consumed in order, so memory stays flat whatever the input size.
 */
import { closeSync, createReadStream, openSync, readSync } from "node:fs";
import type { IncrementPolicy } from "../jail/increment.ts";
import type { InputFile, InputProblem } from "../source/inputs.ts";
import { bytesPerWorker, type ScanChunk, ScanPool } from "./pool.ts";
import type { ScanFilterRef } from "./process.ts";
import { guidedRanges, planRanges } from "./ranges.ts";
import { Replay } from "./replay.ts";

export interface ScanOptions {
  filters: ScanFilterRef[];
  maxretry: number;
  findtime: number;
  bantime: number;
  ignoreip: string[];
  increment?: IncrementPolicy;
  since?: number;
  until?: number;
  /** Epoch seconds "now", for dates without a year. */
  now: number;
  /** Worker processes (0: in-process). */
  workers: number;
  chunkBytes?: number;
  onProgress?: (done: number, total: number) => void;
  /** Called for each ban as it is decided (streamed output: memory stays flat). */
  onBan?: (ban: ScanBan) => void;
  /** How many bans to keep in the report (default: all). */
  keepBans?: number;
  /** How many top offenders to keep in the report (default: all). */
  keepOffenders?: number;
}

export interface ScanBan {
  ip: string;
  jail: string;
  /** First failure of the window that led to the ban. */
  first: number;
  /** Ban time (the failure that reached maxretry). */
  time: number;
  failures: number;
  /** Seconds; -1 permanent. */
  bantime: number;
  /** Unban time, null when permanent. */
  unban: number | null;
  /** Earlier bans of this address in this run. */
  count: number;
}

export interface ScanReport {
  files: Array<{ path: string; lines: number; bytes: number; error?: string }>;
  lines: number;
  bytes: number;
  failures: number;
  /** Failures within --since/--until that reached the jails. */
  counted: number;
  noDate: number;
  binary: number;
  invalid: number;
  ignored: number;
  perJail: Array<{ jail: string; filter: string; failures: number; bans: number }>;
  first: number | null;
  last: number | null;
  /** The bans (the first `keepBans` of them when that option is set). */
  bans: ScanBan[];
  banCount: number;
  /** Distinct banned addresses. */
  bannedAddresses: number;
  offenders: Array<{ ip: string; failures: number; bans: number }>;
  seconds: number;
}

const PRIME_BYTES = 256 * 1024;
/** Bytes of text per chunk for gzip and stdin. */
const MIN_CHUNK = 8 * 1024 * 1024;
/** The smallest and largest byte range of a file per chunk. */
const TAIL_CHUNK = 4 * 1024 * 1024;
const MAX_CHUNK = 16 * 1024 * 1024;
const GC_EVERY = 512 * 1024 * 1024;

function sniffJournal(path: string): boolean {
  if (path === "-") return false;
  try {
    const fd = openSync(path, "r");
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, 4096, 0);
    closeSync(fd);
    const first = buf.subarray(0, n).toString("utf8").trimStart();
    return first.startsWith("{") && /"(?:__REALTIME_TIMESTAMP|MESSAGE)"/.test(first.split("\n")[0] ?? "");
  } catch {
    return false;
  }
}

export async function runScan(
  inputs: InputFile[],
  opts: ScanOptions,
  problems: InputProblem[] = [],
): Promise<ScanReport> {
  const started = performance.now();
  const replay = new Replay(opts);
  const report: ScanReport = {
    files: [],
    lines: 0,
    bytes: 0,
    failures: 0,
    counted: 0,
    noDate: 0,
    binary: 0,
    invalid: 0,
    ignored: 0,
    perJail: opts.filters.map((f) => ({ jail: f.jail, filter: f.ref, failures: 0, bans: 0 })),
    first: null,
    last: null,
    bans: [],
    banCount: 0,
    bannedAddresses: 0,
    offenders: [],
    seconds: 0,
  };
  const total = inputs.reduce((s, f) => s + f.size, 0);
  let done = 0;
  const pool = new ScanPool(
    opts.workers,
    opts.filters,
    opts.now,
    replay.ids,
    bytesPerWorker(inputs, opts.workers),
  );
  const chunk = opts.chunkBytes ?? MIN_CHUNK;
  let seq = 0;

  const consume = (r: ScanChunk, file: { lines: number; bytes: number }) => {
    report.lines += r.lines;
    file.lines += r.lines;
    report.noDate += r.noDate;
    report.binary += r.binary;
    report.invalid += r.invalid;
    report.failures += r.times.length;
    if (r.first !== null && (report.first === null || r.first < report.first)) report.first = r.first;
    if (r.last !== null && (report.last === null || r.last > report.last)) report.last = r.last;
    for (let i = 0; i < r.perFilter.length; i++) report.perJail[i]!.failures += r.perFilter[i]!;
    replay.chunk(r);
  };

  const inflight: Array<{ p: Promise<ScanChunk>; file: { lines: number; bytes: number } }> = [];
  const maxInflight = Math.max(2, opts.workers * 2);
  const drainOne = async () => {
    const next = inflight.shift()!;
    const r = await next.p;
    consume(r, next.file);
    done += r.bytes;
    // A collection now and then: with the native engine the workers outpace the replay, and
    // JavaScriptCore lets the garbage of the chunks replayed pile up (5 GB: 102 MiB without).
    if (Math.floor(done / GC_EVERY) !== Math.floor((done - r.bytes) / GC_EVERY)) Bun.gc(true);
    next.file.bytes += r.bytes;
    report.bytes += r.bytes;
    opts.onProgress?.(Math.min(done, total), total);
  };

  try {
    for (const input of inputs) {
      const entry: { path: string; lines: number; bytes: number; error?: string } = {
        path: input.path,
        lines: 0,
        bytes: 0,
      };
      report.files.push(entry);
      const journal = sniffJournal(input.path);
      if (!input.gzip && input.path !== "-") {
        // A chunk costs a fresh start (sessions, id tables, re-read lead-in), and its ids and
        // sessions live until it ends: a child's heap grows with them (32 MB chunks: ~20 MB
        // more RSS). So 4-16 MB, the last ones smallest (see guidedRanges).
        const plan =
          opts.chunkBytes === undefined
            ? guidedRanges(input.size, TAIL_CHUNK, MAX_CHUNK, opts.workers, PRIME_BYTES)
            : planRanges(input.size, opts.chunkBytes, PRIME_BYTES);
        for (const r of plan) {
          inflight.push({
            p: pool.submit({
              type: "range",
              seq: seq++,
              path: input.path,
              start: r.start,
              end: r.end,
              prime: r.prime,
              journal,
            }),
            file: entry,
          });
          if (inflight.length >= maxInflight) await drainOne();
        }
        while (inflight.length) await drainOne();
        continue;
      }
      // gzip and stdin: decompress/read here, hand chunks of lines to the workers.
      const err = await streamLines(input, chunk, async (data, primeBytes, bytes, isJournal) => {
        inflight.push({
          p: pool.submit({
            type: "text",
            seq: seq++,
            data,
            primeBytes,
            bytes,
            journal: journal || isJournal,
          }),
          file: entry,
        });
        if (inflight.length >= maxInflight) await drainOne();
      });
      while (inflight.length) await drainOne();
      if (err) {
        entry.error = err;
        problems.push({ path: input.path, message: err });
      }
    }
  } finally {
    pool.close();
  }
  report.counted = replay.counted;
  report.ignored = replay.ignored;
  report.banCount = replay.banCount;
  report.bans = replay.bans;
  for (let i = 0; i < report.perJail.length; i++) report.perJail[i]!.bans = replay.bansPerJail[i]!;
  report.bannedAddresses = replay.ids.bannedCount();
  report.offenders = replay.ids.offenders(opts.keepOffenders ?? Number.POSITIVE_INFINITY);
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/**
 * Reads a gzip file or stdin in chunks of whole lines (bytes, as read: the workers decode what
 * is not ASCII), each led by up to PRIME_BYTES of the lines before it; returns an error text
 * or null.
 */
async function streamLines(
  input: InputFile,
  chunk: number,
  emit: (data: Buffer, primeBytes: number, bytes: number, journal: boolean) => Promise<void>,
): Promise<string | null> {
  // 1 MB pieces: Bun's streams cost per piece (16 KB pieces: 5x the time of the inflation)
  const source =
    input.path === "-" ? process.stdin : createReadStream(input.path, { highWaterMark: 1 << 20 });
  let parts: Buffer[] = [];
  let pending = 0;
  let prime: Buffer = Buffer.alloc(0);
  let firstBytes: Buffer | null = null;
  let journal: boolean | null = null;
  let bytes = 0;
  let error: string | null = null;
  let stream: NodeJS.ReadableStream = source;
  let gunzip = input.gzip;
  const flush = async (final: boolean) => {
    if (pending === 0) return;
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, pending);
    const cut = final ? data.length : data.lastIndexOf(10) + 1;
    if (cut <= 0 || (!final && cut < chunk / 2)) {
      parts = [data];
      return;
    }
    const body = data.subarray(0, cut);
    const rest = Buffer.from(data.subarray(cut)); // a copy: the chunk goes to a worker
    parts = rest.length > 0 ? [rest] : [];
    pending = rest.length;
    if (journal === null)
      journal = /^\s*\{.*"(?:__REALTIME_TIMESTAMP|MESSAGE)"/.test(body.subarray(0, 4096).toString("latin1"));
    await emit(Buffer.concat([prime, body]), prime.length, bytes, journal);
    bytes = 0;
    prime =
      body.length > PRIME_BYTES
        ? Buffer.from(body.subarray(body.indexOf(10, body.length - PRIME_BYTES) + 1))
        : Buffer.from(body);
  };
  try {
    if (input.path === "-") {
      // Sniff gzip on stdin from the first bytes.
      const it = (source as NodeJS.ReadableStream)[Symbol.asyncIterator]();
      const first = await it.next();
      if (!first.done) {
        firstBytes = Buffer.from(first.value as Buffer);
        gunzip = firstBytes[0] === 0x1f && firstBytes[1] === 0x8b;
      }
      const { Readable } = await import("node:stream");
      const rest = Readable.from(
        (async function* () {
          if (firstBytes) yield firstBytes;
          for (let n = await it.next(); !n.done; n = await it.next()) yield n.value as Buffer;
        })(),
      );
      stream = rest;
    }
    if (gunzip) {
      // loaded when a scan needs it: node:zlib costs every other start time
      const { createGunzip } = await import("node:zlib");
      const gz = createGunzip({ chunkSize: 1 << 20 });
      (stream as NodeJS.ReadableStream).pipe(gz);
      (stream as NodeJS.ReadableStream).on("error", (e) => gz.destroy(e as Error));
      stream = gz;
    }
    for await (const buf of stream as AsyncIterable<Buffer>) {
      bytes += buf.length;
      parts.push(buf);
      pending += buf.length;
      if (pending >= chunk) await flush(false);
    }
  } catch (e) {
    const msg = (e as Error).message;
    error = /unexpected end of file/i.test(msg)
      ? `truncated gzip: read ${bytes} bytes before the end of the data`
      : `read error: ${msg}`;
  }
  await flush(true);
  return error;
}
