/**
 * Byte ranges of a log file for parallel scanning. A chunk owns the lines that START inside
 * [start, end); the bytes from `prime` to `start` are read as well so that multi-line
 * sessions that began just before the chunk are known (their lines give no failures here).
 */
const EXTRA = 1 << 20;
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

export interface OwnedRange {
  text: string;
  primeChars: number;
  /** Bytes owned (for progress and totals). */
  bytes: number;
}

/** First line start at or after `pos` within data (data begins at file offset `base`). */
function lineStartAtOrAfter(data: Uint8Array, base: number, pos: number): number {
  if (pos <= 0) return 0;
  const i = data.indexOf(10, Math.max(0, pos - 1 - base));
  return i < 0 ? -1 : base + i + 1;
}

export async function readOwnedRange(
  path: string,
  start: number,
  end: number,
  prime: number,
): Promise<OwnedRange> {
  const file = Bun.file(path);
  const size = file.size;
  let data = await file.slice(prime, Math.min(size, end + EXTRA)).bytes();
  // Extend until the last owned line is complete.
  while (prime + data.length < size) {
    const tail = data.indexOf(10, Math.max(0, end - 1 - prime));
    if (tail >= 0) break;
    const more = await file
      .slice(prime + data.length, Math.min(size, prime + data.length + EXTRA * 4))
      .bytes();
    const joined = new Uint8Array(data.length + more.length);
    joined.set(data);
    joined.set(more, data.length);
    data = joined;
  }
  const ownStart = start === 0 ? 0 : lineStartAtOrAfter(data, prime, start);
  if (ownStart < 0 || ownStart >= end) return { text: "", primeChars: 0, bytes: 0 };
  let ownEnd = end >= size ? size : lineStartAtOrAfter(data, prime, end);
  if (ownEnd < 0) ownEnd = prime + data.length;
  const primeStart = prime === 0 ? 0 : lineStartAtOrAfter(data, prime, prime);
  const primeText =
    primeStart >= 0 && primeStart < ownStart
      ? decoder.decode(data.subarray(primeStart - prime, ownStart - prime))
      : "";
  const owned = decoder.decode(data.subarray(ownStart - prime, ownEnd - prime));
  return { text: primeText + owned, primeChars: primeText.length, bytes: ownEnd - ownStart };
}

export interface RangePlan {
  start: number;
  end: number;
  prime: number;
}

/** Splits a file of `size` bytes into ranges of about `chunk` bytes with `primeBytes` lead-in. */
export function planRanges(size: number, chunk: number, primeBytes: number): RangePlan[] {
  const out: RangePlan[] = [];
  const lead = Math.max(1, primeBytes); // the byte before `start` must be read to know if a line starts there
  for (let s = 0; s < size; s += chunk)
    out.push({ start: s, end: Math.min(size, s + chunk), prime: Math.max(0, s - lead) });
  return out;
}
