/** Worker threads for scan: results come back as promises, consumed in submission order. */
import { ChunkProcessor, type ChunkResult, type ScanFilterRef } from "./process.ts";
import { readOwnedRange } from "./ranges.ts";
import type { WorkerReply, WorkerRequest } from "./worker.ts";

type Task = Exclude<WorkerRequest, { type: "init" }>;

/**
 * The worker's module. In the compiled executable it is an entry point of its own (see
 * scripts/build.ts), stored under the build root in Bun's embedded file system; the bundler
 * turns `import.meta.url` into the source path at build time, which does not exist there.
 */
const WORKER_URL = Bun.main.startsWith("/$bunfs/")
  ? "/$bunfs/root/src/scan/worker.js"
  : new URL("./worker.ts", import.meta.url).href;

interface Slot {
  worker: Worker;
  busy: number;
}

export class ScanPool {
  private readonly slots: Slot[] = [];
  private readonly waiting = new Map<
    number,
    { resolve: (r: ChunkResult) => void; reject: (e: Error) => void }
  >();
  private local: ChunkProcessor | null = null;
  private initError: Error | null = null;

  constructor(workers: number, refs: ScanFilterRef[], now: number) {
    for (let i = 0; i < workers; i++) {
      const worker = new Worker(WORKER_URL);
      worker.onmessage = (e: MessageEvent<WorkerReply>) => this.reply(slot, e.data);
      worker.onerror = (e) => this.fail(new Error(`scan worker failed: ${e.message}`));
      const slot: Slot = { worker, busy: 0 };
      this.slots.push(slot);
      worker.postMessage({ type: "init", refs, now } satisfies WorkerRequest);
    }
    if (workers === 0) this.local = new ChunkProcessor(refs, now);
  }

  private reply(slot: Slot, m: WorkerReply): void {
    if (m.type === "error" && m.seq < 0) {
      this.fail(new Error(m.message));
      return;
    }
    slot.busy--;
    const seq = m.type === "result" ? m.result.seq : m.seq;
    const w = this.waiting.get(seq);
    if (!w) return;
    this.waiting.delete(seq);
    if (m.type === "result") w.resolve(m.result);
    else w.reject(new Error(m.message));
  }

  private fail(e: Error): void {
    this.initError = e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  async submit(task: Task): Promise<ChunkResult> {
    if (this.initError) throw this.initError;
    if (this.local) {
      if (task.type === "range") {
        const r = await readOwnedRange(task.path, task.start, task.end, task.prime);
        const res = this.local.process(task.seq, r.text, { primeChars: r.primeChars, journal: task.journal });
        res.bytes = r.bytes;
        return res;
      }
      const res = this.local.process(task.seq, task.text, {
        primeChars: task.primeChars,
        journal: task.journal,
      });
      res.bytes = task.bytes;
      return res;
    }
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.busy < slot.busy) slot = s;
    slot.busy++;
    return new Promise<ChunkResult>((resolve, reject) => {
      this.waiting.set(task.seq, { resolve, reject });
      slot.worker.postMessage(task);
    });
  }

  close(): void {
    for (const s of this.slots) s.worker.terminate();
    this.slots.length = 0;
  }
}

export { ChunkProcessor };
