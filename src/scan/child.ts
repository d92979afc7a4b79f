/**
 * Scan child processes: each reads the byte ranges of a file it is given (or gets text from the
 * parent for gzip/stdin) and runs the filters over it. Processes rather than worker threads:
 * two Bun worker threads that allocate as much as a scan does slow each other down (their heaps
 * and collectors share the process), while two processes each get a core.
 *
 * The child is the same program started again with FAIL2TS_SCAN_CHILD=1 (the compiled
 * executable has no other entry point; see pool.ts): it serves tasks from stdin until EOF.
 * Messages both ways are frames: u32 header length, JSON header, u32 payload length, payload.
 */
import { readSync, writeSync } from "node:fs";
import { ChunkProcessor, type ChunkResult, type ScanFilterRef } from "./process.ts";
import { readRange } from "./ranges.ts";

export const CHILD_ENV = "FAIL2TS_SCAN_CHILD";

export type ChildRequest =
  | { type: "init"; refs: ScanFilterRef[]; now: number }
  | { type: "range"; seq: number; path: string; start: number; end: number; prime: number; journal: boolean }
  /** The payload is the text, UTF-8. */
  | { type: "text"; seq: number; primeChars: number; bytes: number; journal: boolean };

/** Task without its text (the payload), as sent. */
export type ChildTask =
  | Exclude<ChildRequest, { type: "init" | "text" }>
  | (Extract<ChildRequest, { type: "text" }> & { text: string });

/** Header of a result; the payload holds times (f64), id indexes (u32), filter indexes (u8). */
type ResultHeader = Omit<ChunkResult, "idIndex" | "times" | "filters"> & { type: "result"; failures: number };
type ErrorHeader = { type: "error"; seq: number; message: string };
export type ChildReply = ResultHeader | ErrorHeader;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

export function frame(header: object, payload: Uint8Array[] = []): Uint8Array {
  const h = encoder.encode(JSON.stringify(header));
  const plen = payload.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(8 + h.length + plen);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, h.length, true);
  out.set(h, 4);
  dv.setUint32(4 + h.length, plen, true);
  let at = 8 + h.length;
  for (const p of payload) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Splits frames off the front of a byte stream. */
export class FrameReader {
  private buf: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): void {
    if (this.buf.length === 0) {
      this.buf = chunk;
      return;
    }
    const b = new Uint8Array(this.buf.length + chunk.length);
    b.set(this.buf);
    b.set(chunk, this.buf.length);
    this.buf = b;
  }

  /** The next whole frame, or null. */
  next(): { header: unknown; payload: Uint8Array } | null {
    const b = this.buf;
    if (b.length < 4) return null;
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    const hl = dv.getUint32(0, true);
    if (b.length < 8 + hl) return null;
    const pl = dv.getUint32(4 + hl, true);
    const end = 8 + hl + pl;
    if (b.length < end) return null;
    const header = JSON.parse(decoder.decode(b.subarray(4, 4 + hl)));
    const payload = b.slice(8 + hl, end);
    this.buf = b.subarray(end);
    return { header, payload };
  }
}

export function resultFrame(r: ChunkResult): Uint8Array {
  const { idIndex, times, filters, ...rest } = r;
  const header: ResultHeader = { type: "result", ...rest, failures: times.length };
  return frame(header, [
    new Uint8Array(times.buffer, times.byteOffset, times.byteLength),
    new Uint8Array(idIndex.buffer, idIndex.byteOffset, idIndex.byteLength),
    filters,
  ]);
}

/** A result from its frame (null for an error frame, whose header says why). */
export function resultOf(header: ChildReply, payload: Uint8Array): ChunkResult | null {
  if (header.type !== "result") return null;
  const { type: _t, failures: n, ...rest } = header;
  // copies: typed arrays need aligned offsets
  const times = new Float64Array(payload.slice(0, 8 * n).buffer);
  const idIndex = new Uint32Array(payload.slice(8 * n, 12 * n).buffer);
  const filters = payload.slice(12 * n, 13 * n);
  return { ...rest, times, idIndex, filters };
}

function readFully(buf: Uint8Array): boolean {
  let got = 0;
  while (got < buf.length) {
    let n: number;
    try {
      n = readSync(0, buf, got, buf.length - got, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        continue;
      }
      throw e;
    }
    if (n === 0) return false;
    got += n;
  }
  return true;
}

function readFrame(): { header: ChildRequest; payload: Uint8Array } | null {
  const len = new Uint8Array(4);
  if (!readFully(len)) return null;
  const hl = new DataView(len.buffer).getUint32(0, true);
  const h = new Uint8Array(hl);
  if (!readFully(h) || !readFully(len)) return null;
  const payload = new Uint8Array(new DataView(len.buffer).getUint32(0, true));
  if (!readFully(payload)) return null;
  return { header: JSON.parse(decoder.decode(h)), payload };
}

function writeAll(bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) {
    try {
      at += writeSync(1, bytes, at, bytes.length - at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

/** Serves tasks from stdin until it closes, then exits. */
export function runChild(): never {
  let proc: ChunkProcessor | null = null;
  for (let f = readFrame(); f !== null; f = readFrame()) {
    const m = f.header;
    if (m.type === "init") {
      try {
        proc = new ChunkProcessor(m.refs, m.now);
      } catch (err) {
        writeAll(frame({ type: "error", seq: -1, message: (err as Error).message } satisfies ErrorHeader));
      }
      continue;
    }
    try {
      if (!proc) throw new Error("scan child not initialised");
      let result: ChunkResult;
      if (m.type === "range") {
        const run = proc.start(m.journal);
        const bytes = readRange(m.path, m.start, m.end, m.prime, (text, owned, ascii) =>
          run.feed(text, owned, ascii),
        );
        result = run.finish(m.seq, bytes);
      } else {
        result = proc.process(m.seq, decoder.decode(f.payload), {
          primeChars: m.primeChars,
          journal: m.journal,
        });
        result.bytes = m.bytes;
      }
      writeAll(resultFrame(result));
    } catch (err) {
      writeAll(frame({ type: "error", seq: m.seq, message: (err as Error).message } satisfies ErrorHeader));
    }
  }
  process.exit(0);
}

if (import.meta.main) runChild();
