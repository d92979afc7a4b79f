/**
 * Byte ranges of a log file for parallel scanning. A chunk owns the lines that START inside
 * [start, end); the bytes from `prime` to `start` are read as well so that multi-line
 * sessions that began just before the chunk are known (their lines give no failures here).
 *
 * A chunk is read in blocks cut at line ends, into one buffer reused for the whole process:
 * memory stays flat whatever the chunk size.
 */

import { isAscii } from "node:buffer";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** Bytes per read; a longer line makes the buffer grow to hold it. */
const BLOCK = 1 << 20;
/** Bytes read at a time when looking for a line start. */
const PROBE = 64 << 10;

let shared: Buffer = Buffer.allocUnsafe(BLOCK);

/**
 * Receives the bytes of a block, UTF-8 (whole lines; the last block of a file may end without a
 * newline), valid until the next block. `owned`: its lines belong to the chunk; `ascii`: the
 * block is pure ASCII.
 */
export type BlockSink = (bytes: Buffer, owned: boolean, ascii: boolean) => void;

/** Bytes [from, to) of the file as text, whole lines per block, in order. */
function readLines(fd: number, from: number, to: number, owned: boolean, sink: BlockSink): void {
  let pos = from;
  while (pos < to) {
    const want = Math.min(shared.length, to - pos);
    const n = readSync(fd, shared, 0, want, pos);
    if (n <= 0) return; // the file shrank
    let cut = n;
    if (pos + n < to) {
      cut = shared.lastIndexOf(10, n - 1) + 1;
      if (cut === 0) {
        // a line longer than the buffer: read it whole
        const bigger = Buffer.allocUnsafe(shared.length * 2);
        shared = bigger;
        continue;
      }
    }
    const bytes = shared.subarray(0, cut);
    sink(bytes, owned, isAscii(bytes));
    pos += cut;
  }
}

/** The first line start at or after `pos` (0 at 0), or `size` when there is none. */
function lineStartAtOrAfter(fd: number, pos: number, size: number): number {
  if (pos <= 0) return 0;
  const probe = Buffer.allocUnsafe(PROBE);
  for (let at = pos - 1; at < size; at += PROBE) {
    const n = readSync(fd, probe, 0, Math.min(PROBE, size - at), at);
    if (n <= 0) break;
    const i = probe.subarray(0, n).indexOf(10);
    if (i >= 0) return at + i + 1;
  }
  return size;
}

/**
 * Reads the lines of a chunk: first the priming lines (from the first line start at or after
 * `prime` up to the chunk's first line), then the owned ones (lines starting in [start, end)).
 * Returns the bytes owned.
 */
export function readRange(path: string, start: number, end: number, prime: number, sink: BlockSink): number {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const ownStart = start === 0 ? 0 : lineStartAtOrAfter(fd, start, size);
    if (ownStart >= end || ownStart >= size) return 0;
    const ownEnd = end >= size ? size : lineStartAtOrAfter(fd, end, size);
    const primeStart = prime === 0 ? 0 : lineStartAtOrAfter(fd, prime, size);
    if (primeStart < ownStart) readLines(fd, primeStart, ownStart, false, sink);
    readLines(fd, ownStart, ownEnd, true, sink);
    return ownEnd - ownStart;
  } finally {
    closeSync(fd);
  }
}

export interface RangePlan {
  start: number;
  end: number;
  prime: number;
}

/**
 * Splits a file of `size` bytes into ranges for `workers` workers, with `primeBytes` lead-in:
 * each range a share of what is left (1 / (workers + 1)) within [min, max] bytes, so that the
 * first ones are big (a range costs a fresh start) and the last ones small: the workers finish
 * close together, and what the replay does after the last one is little. (1M-line auth.log, 2
 * workers: 16 MB ranges left one worker alone on the last for up to 20 ms.)
 */
export function guidedRanges(
  size: number,
  min: number,
  max: number,
  workers: number,
  primeBytes: number,
): RangePlan[] {
  const out: RangePlan[] = [];
  const lead = Math.max(1, primeBytes);
  for (let s = 0; s < size; ) {
    const rest = size - s;
    let n = Math.min(max, Math.max(min, Math.ceil(rest / (Math.max(1, workers) + 1))));
    if (rest - n < min / 2) n = rest; // no sliver at the end
    out.push({ start: s, end: s + n, prime: Math.max(0, s - lead) });
    s += n;
  }
  return out;
}

/** Splits a file of `size` bytes into ranges of about `chunk` bytes with `primeBytes` lead-in. */
export function planRanges(size: number, chunk: number, primeBytes: number): RangePlan[] {
  const out: RangePlan[] = [];
  const lead = Math.max(1, primeBytes); // the byte before `start` must be read to know if a line starts there
  for (let s = 0; s < size; s += chunk)
    out.push({ start: s, end: Math.min(size, s + chunk), prime: Math.max(0, s - lead) });
  return out;
}
