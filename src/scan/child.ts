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
import { encodeIds, type NewIds } from "./ids.ts";
import { ChunkProcessor, type ChunkResult, type ScanFilterRef } from "./process.ts";
import { readRange } from "./ranges.ts";

export const CHILD_ENV = "FAIL2TS_SCAN_CHILD";

export type ChildRequest =
  | { type: "init"; refs: ScanFilterRef[]; now: number }
  | { type: "range"; seq: number; path: string; start: number; end: number; prime: number; journal: boolean }
  /** The payload is the lines, UTF-8, the first `primeBytes` of them only priming sessions. */
  | { type: "text"; seq: number; primeBytes: number; bytes: number; journal: boolean };

/** Task without its text (the payload), as sent. */
export type ChildTask =
  | Exclude<ChildRequest, { type: "init" | "text" }>
  | (Extract<ChildRequest, { type: "text" }> & { data: Buffer });

/**
 * Header of a result. The payload holds times, the new ids' IPv4 addresses (u32), the new other
 * ids encoded for the parent's IdTable (see encodeIds), the source's id numbers, filter indexes
 * (u8), and the new ids' kinds (u8: 0 IPv4, 1 other; see NewIds). Times are u32 when all are
 * whole seconds (syslog dates), else f64; id numbers u16 while the source has numbered fewer
 * than 65536 ids, else u32.
 * A child numbers each id once for the whole run (SourceIds), so an id crosses the pipe and is
 * looked up by the parent once per child, not once per chunk. In the unlikely case an id cannot
 * be encoded (a newline or a lone surrogate in an `<F-ID>` capture), the new other ids are in
 * the header instead.
 */
type ResultHeader = Omit<ChunkResult, "idIndex" | "times" | "filters" | "ids"> & {
  type: "result";
  failures: number;
  /** Bytes per time (4, 8) and per id number (2, 4). */
  timeBytes: 4 | 8;
  idBytes: 2 | 4;
  /** New ids: all, the IPv4 ones. */
  newCount: number;
  v4Count: number;
  ids?: string[];
};
type ErrorHeader = { type: "error"; seq: number; message: string };
export type ChildReply = ResultHeader | ErrorHeader;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * A frame. The header is padded with spaces to a multiple of 8 bytes so that the payload starts
 * 8-byte aligned in the frame: the receiver reads the f64 times in place, without a copy.
 */
export function frame(header: object, payload: Uint8Array[] = []): Uint8Array {
  const plen = payload.reduce((s, p) => s + p.length, 0);
  const { out, at: start } = frameOf(header, plen, null);
  let at = start;
  for (const p of payload) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A frame with its header written and room for `plen` payload bytes (from `at`, 8-byte
 * aligned), at the start of `space` when it is given and big enough, else new.
 */
function frameOf(header: object, plen: number, space: Uint8Array | null): { out: Uint8Array; at: number } {
  const h = encoder.encode(JSON.stringify(header));
  const hl = (h.length + 7) & ~7;
  const size = 8 + hl + plen;
  const out = space !== null && space.length >= size ? space.subarray(0, size) : new Uint8Array(size);
  const dv = new DataView(out.buffer, out.byteOffset);
  dv.setUint32(0, hl, true);
  out.set(h, 4);
  out.fill(0x20, 4 + h.length, 4 + hl);
  dv.setUint32(4 + hl, plen, true);
  return { out, at: 8 + hl };
}

/**
 * Splits frames off the front of a byte stream. Chunks are kept as they come and a frame is
 * copied out once, when it is complete (concatenating on every chunk is quadratic for the big
 * result frames); a frame that sits aligned inside one chunk is not copied at all.
 */
export class FrameReader {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;
  /** Length of the frame at the front, once its lengths have arrived (-1 before). */
  private need = -1;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The next whole frame, or null. */
  next(): { header: unknown; payload: Uint8Array } | null {
    if (this.need < 0) {
      if (this.size < 4) return null;
      const hl = this.u32(0);
      if (this.size < 8 + hl) return null;
      this.need = 8 + hl + this.u32(4 + hl);
    }
    const end = this.need;
    if (this.size < end) return null;
    this.need = -1;
    const f = this.take(end);
    const hl = new DataView(f.buffer, f.byteOffset, 4).getUint32(0, true);
    const header = JSON.parse(decoder.decode(f.subarray(4, 4 + hl)));
    return { header, payload: f.subarray(8 + hl, end) };
  }

  /** The little-endian u32 at byte `at` of the buffered stream. */
  private u32(at: number): number {
    let v = 0;
    for (let i = 0; i < 4; i++) v |= this.byte(at + i) << (8 * i);
    return v >>> 0;
  }

  private byte(at: number): number {
    for (const c of this.chunks) {
      if (at < c.length) return c[at]!;
      at -= c.length;
    }
    return 0;
  }

  /** Removes the first n bytes, as one 8-byte aligned array. */
  private take(n: number): Uint8Array {
    this.size -= n;
    const first = this.chunks[0]!;
    if (first.length >= n && first.byteOffset % 8 === 0) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      out.set(k === c.length ? c : c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/** The child's result frames are built here, one at a time (each is written out before the next). */
let resultSpace: Uint8Array | null = null;

/**
 * The frame of a result. `reuse`: in the buffer of the previous one (grown when needed), valid
 * until the next call: fresh frames were a few hundred page faults each.
 */
export function resultFrame(r: ChunkResult, reuse = false): Uint8Array {
  const { idIndex, times, filters, ids, ...rest } = r;
  const n = times.length;
  const kinds = new Uint8Array(ids.length);
  const v4: number[] = [];
  const others: string[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (typeof id === "number") v4.push(id);
    else {
      kinds[i] = 1;
      others.push(id);
    }
  }
  const encoded = encodeIds(others);
  // narrower arrays when they hold the values: half the bytes to pipe and for the parent to
  // hold (a 5 GB scan: its peak RSS is 10 MB lower)
  const timeBytes = wholeSeconds(times) ? 4 : 8;
  const idBytes = rest.idBase + ids.length <= 0x10000 ? 2 : 4;
  const header: ResultHeader = {
    type: "result",
    ...rest,
    failures: n,
    timeBytes,
    idBytes,
    newCount: ids.length,
    v4Count: v4.length,
    ...(encoded ? {} : { ids: others }),
  };
  const encodedBytes = encoded ? encoded.byteLength : 0;
  const plen = n * (timeBytes + idBytes + 1) + 4 * v4.length + encodedBytes + ids.length;
  if (reuse && (resultSpace === null || resultSpace.length < 4096 + plen))
    resultSpace = new Uint8Array(Math.max(4096 + plen, 2 * (resultSpace?.length ?? 0)));
  const { out, at: start } = frameOf(header, plen, reuse ? resultSpace : null);
  // widest first: every array stays aligned in the payload
  const buf = out.buffer;
  let at = out.byteOffset + start;
  (timeBytes === 4 ? new Uint32Array(buf, at, n) : new Float64Array(buf, at, n)).set(times);
  at += n * timeBytes;
  new Uint32Array(buf, at, v4.length).set(v4);
  at += 4 * v4.length;
  if (encoded) new Uint32Array(buf, at, encoded.length).set(encoded);
  at += encodedBytes;
  (idBytes === 2 ? new Uint16Array(buf, at, n) : new Uint32Array(buf, at, n)).set(idIndex);
  at += n * idBytes;
  const bytes = new Uint8Array(buf);
  bytes.set(filters, at);
  bytes.set(kinds, at + n);
  return out;
}

/** Whether every time is a whole number of seconds that a u32 holds. */
function wholeSeconds(times: Float64Array): boolean {
  for (let k = 0; k < times.length; k++) if (times[k] !== times[k]! >>> 0) return false;
  return true;
}

/** A result as a child sends it: `idIndex` holds the child's id numbers, the new ids come with it. */
export type ChildResult = Omit<ChunkResult, "ids" | "idBase" | "times" | "idIndex"> & {
  times: Float64Array | Uint32Array;
  idIndex: Uint32Array | Uint16Array;
  newIds: NewIds;
};

/** A result from its frame (null for an error frame, whose header says why). */
export function resultOf(header: ChildReply, payload: Uint8Array): ChildResult | null {
  if (header.type !== "result") return null;
  const {
    type: _t,
    failures: n,
    timeBytes,
    idBytes,
    newCount,
    v4Count,
    ids: listed,
    idBase,
    ...rest
  } = header;
  // Views on the frame (FrameReader's frames are 8-byte aligned), copies otherwise.
  const own = payload.byteOffset % 8 === 0 ? payload : payload.slice();
  const at = own.byteOffset;
  const encodedBytes = own.length - n * (timeBytes + idBytes + 1) - 4 * v4Count - newCount;
  const times = timeBytes === 4 ? new Uint32Array(own.buffer, at, n) : new Float64Array(own.buffer, at, n);
  const v4 = new Uint32Array(own.buffer, at + n * timeBytes, v4Count);
  const encoded = new Uint32Array(own.buffer, at + n * timeBytes + 4 * v4Count, encodedBytes / 4);
  const idAt = at + n * timeBytes + 4 * v4Count + encodedBytes;
  const idIndex = idBytes === 2 ? new Uint16Array(own.buffer, idAt, n) : new Uint32Array(own.buffer, idAt, n);
  const filters = own.subarray(own.length - newCount - n, own.length - newCount);
  const kinds = own.subarray(own.length - newCount);
  const newIds = { base: idBase, kinds, v4, others: listed ?? encoded };
  return { ...rest, times, idIndex, filters, newIds };
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
        proc = new ChunkProcessor(m.refs, m.now, true);
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
        const data = Buffer.from(f.payload.buffer, f.payload.byteOffset, f.payload.length);
        result = proc.processBytes(m.seq, data, m.primeBytes, m.journal);
        result.bytes = m.bytes;
      }
      writeAll(resultFrame(result, true));
    } catch (err) {
      writeAll(frame({ type: "error", seq: m.seq, message: (err as Error).message } satisfies ErrorHeader));
    }
  }
  process.exit(0);
}

if (import.meta.main) runChild();
