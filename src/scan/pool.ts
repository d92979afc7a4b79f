/**
 * The scan's worker processes (see child.ts): results come back as promises, consumed in
 * submission order. A task goes to the first child that is free (one task per child at a
 * time), so a slow one does not hold up queued work. With no workers, tasks run in-process.
 */
import { fileURLToPath } from "node:url";
import type { InputFile } from "../source/inputs.ts";
import { CHILD_ENV, type ChildReply, type ChildTask, FrameReader, frame, resultOf } from "./child.ts";
import { type IdTable, IdTranslation } from "./ids.ts";
import { ChunkProcessor, type ChunkResult, type ScanFilterRef } from "./process.ts";
import { readRange } from "./ranges.ts";

/**
 * Inside the compiled executable, whose only entry point is the CLI: a child is the executable
 * started again with CHILD_ENV set (see entry.ts).
 */
const COMPILED = Bun.main.startsWith("/$bunfs/");

/**
 * A chunk's result for the replay: `idIndex` holds its source's id numbers, `idMap` turns them
 * into the run's (IdTable). Arrays are narrower when they can be (see child.ts).
 */
export type ScanChunk = Omit<ChunkResult, "ids" | "idBase" | "times" | "idIndex"> & {
  times: Float64Array | Uint32Array;
  idIndex: Uint32Array | Uint16Array;
  idMap: Int32Array;
};

interface Pending {
  task: ChildTask;
  resolve: (r: ScanChunk) => void;
  reject: (e: Error) => void;
}

interface Slot {
  proc: Proc;
  current: Pending | null;
  /** The child's id numbers → the run's. */
  ids: IdTranslation;
}

/**
 * JavaScriptCore options for a worker: no optimizing tiers (DFG, FTL), and what is compiled is
 * compiled on the worker's own thread. With the native engine (engine.ts) running the lines, a
 * worker's JavaScript is a few milliseconds per chunk: compiling it at the optimizing tiers cost
 * more than it saved (measured on the 1M-line auth.log: 8% less wall time and CPU with two
 * workers; on 1 GB, 2-4% less), and a compiler thread of its own competes with the other
 * processes for the cores (4% less wall time on the 1M-line auth.log without it).
 */
const QUICK_START = { BUN_JSC_useDFGJIT: "0", BUN_JSC_useConcurrentJIT: "0" };

/** What a worker is to read, as its heap options see it (see heapOptions). */
type Share = "small" | "medium" | "large";

function shareOf(perWorker: number): Share {
  if (perWorker <= 0) return "medium"; // not known ahead
  return perWorker < 64 * 1024 * 1024 ? "small" : perWorker < 256 * 1024 * 1024 ? "medium" : "large";
}

/**
 * JavaScriptCore's heap options for a worker that reads `bytes`.
 * - Gigabytes: told any RAM size (even more than the machine has), JavaScriptCore keeps a
 *   child's heap ~12 MB smaller for ~8% more CPU (measured on 1 GB: children 100 → 89 MiB peak
 *   RSS). Paid where memory is the risk.
 * - Under 64 MB: no collection before 32 MB are allocated, which a worker with so little to
 *   read does not reach: it reads its share without one (1M-line auth.log: 3 collections and
 *   ~6 ms of CPU less, 2-3 MB more RSS per worker).
 */
function heapOptions(bytes: number): Record<string, string> {
  const share = shareOf(bytes);
  if (share === "large") return { BUN_JSC_forceRAMSize: String(8 * 1024 ** 3) };
  if (share === "small") return { BUN_JSC_largeHeapSize: String(32 * 1024 * 1024) };
  return {};
}

/** Bytes each of `workers` workers will read of these inputs, about (0: not known ahead). */
export function bytesPerWorker(inputs: readonly InputFile[], workers: number): number {
  if (inputs.some((f) => f.gzip || f.path === "-")) return 0;
  return inputs.reduce((s, f) => s + f.size, 0) / Math.max(1, workers);
}

type Proc = Bun.Subprocess<"pipe", "pipe", "inherit">;

/** A worker process, started; null when processes cannot be started here. */
function spawnWorker(perWorker: number): Proc | null {
  const cmd = COMPILED
    ? [process.execPath]
    : [process.execPath, fileURLToPath(new URL("./child.ts", import.meta.url))];
  try {
    return Bun.spawn({
      cmd,
      // A scan retains a sliding window of sessions, a pattern JavaScriptCore's generational
      // collector handles badly (frequent full collections on top of the eden ones): about
      // 15% less CPU without it, and a smaller heap.
      env: {
        ...process.env,
        [CHILD_ENV]: "1",
        BUN_JSC_useGenerationalGC: "0",
        ...QUICK_START,
        ...heapOptions(perWorker),
      },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
  } catch {
    return null;
  }
}

/** Workers started ahead of their pool (see startWorkers), with the bytes they were started for. */
const early: Array<{ proc: Proc; perWorker: number }> = [];

/**
 * Starts the workers of a scan about to begin, so that they boot (~7 ms each) while this
 * process still prepares it (the filters are compiled and checked meanwhile): the next pool
 * takes them. Should the scan not happen (a usage error), stopEarlyWorkers stops them; they do
 * not keep this process alive, and exit with it anyway (their stdin closes). Returns their pids.
 */
export function startWorkers(workers: number, perWorker: number): number[] {
  const pids: number[] = [];
  for (let i = 0; i < workers; i++) {
    const proc = spawnWorker(perWorker);
    if (proc === null) break;
    proc.unref();
    early.push({ proc, perWorker });
    pids.push(proc.pid);
  }
  return pids;
}

/** Stops the workers started ahead that no pool took. */
export function stopEarlyWorkers(): void {
  for (const e of early.splice(0)) {
    e.proc.stdin.end();
    e.proc.kill();
  }
}

/** A worker started ahead for this many bytes, if there is one. */
function earlyWorker(perWorker: number): Proc | null {
  const e = early.shift();
  if (e === undefined) return null;
  if (shareOf(e.perWorker) !== shareOf(perWorker)) {
    e.proc.kill(); // started with other options
    return earlyWorker(perWorker);
  }
  e.proc.ref();
  return e.proc;
}

export class ScanPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private local: ChunkProcessor | null = null;
  /** The in-process processor's id numbers → the run's. */
  private localIds: IdTranslation | null = null;
  private failed: Error | null = null;
  private closing = false;

  constructor(
    workers: number,
    refs: ScanFilterRef[],
    now: number,
    private readonly ids: IdTable,
    /** Bytes each worker will read, about (unknown: 0). */
    perWorker = 0,
  ) {
    for (let i = 0; i < workers; i++) {
      const proc = earlyWorker(perWorker) ?? spawnWorker(perWorker);
      if (proc === null) break; // cannot start processes here: the ones started (or this process) do the work
      const slot: Slot = { proc, current: null, ids: new IdTranslation(ids) };
      this.slots.push(slot);
      proc.stdin.write(frame({ type: "init", refs, now }));
      proc.stdin.flush();
      void this.read(slot);
    }
    if (this.slots.length === 0) {
      this.local = new ChunkProcessor(refs, now);
      this.localIds = new IdTranslation(ids);
    }
  }

  private async read(slot: Slot): Promise<void> {
    const frames = new FrameReader();
    try {
      for await (const chunk of slot.proc.stdout) {
        frames.push(chunk);
        for (let f = frames.next(); f !== null; f = frames.next())
          this.reply(slot, f.header as ChildReply, f.payload);
      }
    } catch (e) {
      this.fail(new Error(`scan worker failed: ${(e as Error).message}`));
      return;
    }
    if (!this.closing) this.fail(new Error(`scan worker exited (status ${await slot.proc.exited})`));
  }

  private reply(slot: Slot, header: ChildReply, payload: Uint8Array): void {
    if (header.type === "error" && header.seq < 0) {
      this.fail(new Error(header.message));
      return;
    }
    const p = slot.current;
    slot.current = null;
    this.dispatch(); // keep the child busy before anything else
    if (!p) return;
    const r = resultOf(header, payload);
    if (!r) {
      p.reject(new Error((header as { message: string }).message));
      return;
    }
    const { newIds, ...result } = r;
    slot.ids.extendFrame(newIds);
    p.resolve({ ...result, idMap: slot.ids.map });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.current) continue;
      const p = this.queue.shift()!;
      slot.current = p;
      const t = p.task;
      if (t.type === "text") {
        const { data, ...header } = t;
        slot.proc.stdin.write(frame(header, [data]));
      } else slot.proc.stdin.write(frame(t));
      slot.proc.stdin.flush();
    }
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    for (const s of this.slots) {
      s.current?.reject(e);
      s.current = null;
    }
    for (const p of this.queue) p.reject(e);
    this.queue.length = 0;
  }

  async submit(task: ChildTask): Promise<ScanChunk> {
    if (this.failed) throw this.failed;
    if (this.local) {
      let res: ChunkResult;
      if (task.type === "range") {
        const run = this.local.start(task.journal);
        const bytes = readRange(task.path, task.start, task.end, task.prime, (text, owned, ascii) =>
          run.feed(text, owned, ascii),
        );
        res = run.finish(task.seq, bytes);
      } else {
        res = this.local.processBytes(task.seq, task.data, task.primeBytes, task.journal);
        res.bytes = task.bytes;
      }
      const { ids, idBase, ...rest } = res;
      const numbers = this.localIds!;
      numbers.extend(idBase, ids);
      return { ...rest, idMap: numbers.map };
    }
    return new Promise<ScanChunk>((resolve, reject) => {
      this.queue.push({ task, resolve, reject });
      this.dispatch();
    });
  }

  close(): void {
    this.closing = true;
    for (const s of this.slots) {
      s.proc.stdin.end();
      s.proc.kill();
    }
    this.slots.length = 0;
  }
}

export { ChunkProcessor };
