/**
 * Scan worker thread: reads its byte range of a file itself (or gets text from the main
 * thread for gzip/stdin) and runs the filters over it.
 */
import { ChunkProcessor, type ChunkResult, type ScanFilterRef } from "./process.ts";
import { readOwnedRange } from "./ranges.ts";

declare const self: Worker;

export type WorkerRequest =
  | { type: "init"; refs: ScanFilterRef[]; now: number }
  | { type: "range"; seq: number; path: string; start: number; end: number; prime: number; journal: boolean }
  | { type: "text"; seq: number; text: string; primeChars: number; bytes: number; journal: boolean };

export type WorkerReply =
  | { type: "result"; result: ChunkResult }
  | { type: "error"; seq: number; message: string };

let proc: ChunkProcessor | null = null;

self.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const m = e.data;
  if (m.type === "init") {
    try {
      proc = new ChunkProcessor(m.refs, m.now);
    } catch (err) {
      self.postMessage({ type: "error", seq: -1, message: (err as Error).message } satisfies WorkerReply);
    }
    return;
  }
  try {
    if (!proc) throw new Error("worker not initialised");
    let result: ChunkResult;
    if (m.type === "range") {
      const r = await readOwnedRange(m.path, m.start, m.end, m.prime);
      result = proc.process(m.seq, r.text, { primeChars: r.primeChars, journal: m.journal });
      result.bytes = r.bytes;
    } else {
      result = proc.process(m.seq, m.text, { primeChars: m.primeChars, journal: m.journal });
      result.bytes = m.bytes;
    }
    self.postMessage({ type: "result", result } satisfies WorkerReply, {
      transfer: [result.times.buffer, result.filters.buffer] as ArrayBuffer[],
    });
  } catch (err) {
    self.postMessage({ type: "error", seq: m.seq, message: (err as Error).message } satisfies WorkerReply);
  }
};
