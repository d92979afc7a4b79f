/**
 * Following one log file, the way `tail -F` should: inotify on the file and its directory (or
 * polling), rename-rotation (the old file is drained, and kept a while for late writes),
 * copytruncate, delete-and-recreate, a file that does not exist yet. Lines are handed over whole:
 * a partial last line waits for its newline. The position (inode, offset after the last complete
 * line, hash of the first line) lets a restart resume exactly where the last run stopped.
 */
import {
  closeSync,
  existsSync,
  type FSWatcher,
  fstatSync,
  openSync,
  readSync,
  statSync,
  watch,
} from "node:fs";
import { basename, dirname } from "node:path";
import type { FilePosition } from "../store/store.ts";
import { watchDir } from "./watch.ts";

export type { FilePosition } from "../store/store.ts";

export interface FollowerLog {
  info(msg: string): void;
  warn(msg: string): void;
  debug(msg: string): void;
}

export interface FollowerOptions {
  path: string;
  /** inotify (fs.watch, with a slow safety poll) or polling only. */
  mode: "inotify" | "polling";
  encoding?: string;
  /**
   * Where to start: a stored position (resumed when it is still the same file), or null for a
   * file never seen: read from its end if it exists now, from its start if it appears later.
   */
  position: FilePosition | null;
  /** The complete lines of one read, in order. */
  onLines: (lines: string[], follower: FileFollower) => void;
  log?: FollowerLog;
  /** Polling interval (ms) in polling mode; default 1000. */
  pollMs?: number;
  /** Safety poll (ms) in inotify mode; default 10000. */
  safetyMs?: number;
  /** How long a rotated-away file is still read for late writes (ms); default 30000. */
  drainMs?: number;
}

const CHUNK = 256 * 1024;
const MAX_LINE = 1024 * 1024;
const HASH_BYTES = 4096;
/** Bytes read in one go before yielding to the event loop (a backlog is read over several ticks). */
const READ_BUDGET = 4 * 1024 * 1024;

interface Handle {
  fd: number;
  ino: number;
  offset: number;
  hash: string;
  watcher: FSWatcher | null;
}

const NOLOG: FollowerLog = { info() {}, warn() {}, debug() {} };

/** sha1 of the first line (up to 4 KiB); "" while the file has no complete line. */
function firstLineHash(fd: number): string {
  const buf = Buffer.allocUnsafe(HASH_BYTES);
  const n = readSync(fd, buf, 0, HASH_BYTES, 0);
  const nl = buf.subarray(0, n).indexOf(10);
  if (nl < 0 && n < HASH_BYTES) return "";
  return new Bun.CryptoHasher("sha1").update(buf.subarray(0, nl < 0 ? n : nl)).digest("hex");
}

/** Offset just after the last newline at or before `size` (the start of a partial last line). */
function lastLineStart(fd: number, size: number): number {
  if (size === 0) return 0;
  const buf = Buffer.allocUnsafe(Math.min(size, 65536));
  const from = size - buf.length;
  const n = readSync(fd, buf, 0, buf.length, from);
  const nl = buf.subarray(0, n).lastIndexOf(10);
  return nl < 0 ? (from === 0 ? 0 : size) : from + nl + 1;
}

export class FileFollower {
  readonly path: string;
  private cur: Handle | null = null;
  /** Rotated-away files still read for late writes, with the time to let go. */
  private draining: Array<{ h: Handle; until: number }> = [];
  private buf: Buffer = Buffer.allocUnsafe(CHUNK);
  private readonly decoder: TextDecoder;
  private readonly utf8: boolean;
  private readonly log: FollowerLog;
  private stored: FilePosition | null;
  private firstOpen = true;
  private timer: ReturnType<typeof setInterval> | null = null;
  private unwatchDir: (() => void) | null = null;
  private reading = false;
  private again = false;
  private stopped = true;
  private missingWarned = false;
  private openWarned = false;
  private fallback = false;
  /** Set when a read stopped at its budget: the rest comes in the next tick. */
  private resume: ReturnType<typeof setImmediate> | null = null;
  /** Bytes read since start (stats). */
  bytesRead = 0;

  constructor(private readonly opts: FollowerOptions) {
    this.path = opts.path;
    this.decoder = new TextDecoder((opts.encoding ?? "utf-8") as "utf-8");
    this.utf8 = this.decoder.encoding === "utf-8";
    this.log = opts.log ?? NOLOG;
    this.stored = opts.position;
  }

  /** Opens the file (if it exists) at its start position and begins watching. */
  start(): void {
    this.stopped = false;
    this.openCurrent(true);
    if (this.opts.mode === "inotify") {
      this.watchDirectory();
      this.timer = setInterval(() => this.safety(), this.opts.safetyMs ?? 10000);
    } else {
      this.timer = setInterval(() => this.check(), this.opts.pollMs ?? 1000);
    }
    this.timer.unref?.();
    if (!this.cur) {
      this.log.warn(`${this.path}: does not exist (yet); waiting for it`);
      this.missingWarned = true;
    }
    this.check();
  }

  stop(): void {
    if (this.cur) this.stored = this.position();
    this.stopped = true;
    if (this.resume) clearImmediate(this.resume);
    this.resume = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unwatchDir?.();
    this.unwatchDir = null;
    for (const d of this.draining) this.close(d.h);
    this.draining = [];
    if (this.cur) this.close(this.cur);
    this.cur = null;
  }

  /** Where the next line starts, or null before the file was ever opened. */
  position(): FilePosition | null {
    if (this.cur) return { inode: this.cur.ino, offset: this.cur.offset, hash: this.cur.hash };
    return this.stored;
  }

  /** Whether `ino` is the file followed now or one being drained after a rotation. */
  knowsInode(ino: number): boolean {
    return this.cur?.ino === ino || this.draining.some((d) => d.h.ino === ino);
  }

  /** True while the file is open. */
  get open(): boolean {
    return this.cur !== null;
  }

  private watchDirectory(): void {
    if (this.unwatchDir) return;
    const name = basename(this.path);
    const dir = dirname(this.path);
    this.unwatchDir = watchDir(dir, (n) => {
      if (n === null) {
        // the directory watch broke (directory removed): watch again from the safety poll
        this.unwatchDir?.();
        this.unwatchDir = null;
        this.check();
      } else if (n === name || this.draining.length > 0) this.check();
    });
    if (!this.unwatchDir && existsSync(dir) && !this.fallback) {
      // out of inotify watches (fs.inotify.max_user_watches): poll this file every second
      this.fallback = true;
      this.log.warn(
        `${this.path}: cannot watch ${dir} (inotify watches exhausted?): polling it every second`,
      );
      if (this.timer) clearInterval(this.timer);
      this.timer = setInterval(() => this.safety(), this.opts.pollMs ?? 1000);
      this.timer.unref?.();
    }
  }

  private watchFile(h: Handle): void {
    if (this.opts.mode !== "inotify") return;
    try {
      h.watcher = watch(this.path, { persistent: true }, () => this.check());
      h.watcher.on("error", () => {
        try {
          h.watcher?.close();
        } catch {}
        h.watcher = null;
      });
    } catch {
      h.watcher = null;
    }
  }

  private safety(): void {
    if (!this.unwatchDir) this.watchDirectory();
    this.check();
  }

  private close(h: Handle): void {
    try {
      h.watcher?.close();
    } catch {}
    h.watcher = null;
    try {
      closeSync(h.fd);
    } catch {}
  }

  /** Opens the path when it exists; picks the start offset. */
  private openCurrent(atStart = false): boolean {
    let fd: number;
    try {
      fd = openSync(this.path, "r");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR" && !this.openWarned) {
        this.openWarned = true;
        this.log.warn(`${this.path}: cannot open: ${(e as Error).message}`);
      }
      return false;
    }
    this.openWarned = false;
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      return false;
    }
    const ino = Number(st.ino);
    let offset = 0;
    const hash = firstLineHash(fd);
    const s = this.stored;
    if (s && this.firstOpen) {
      if (s.hash !== "" && s.hash === hash && st.size >= s.offset) offset = s.offset;
      else if (s.hash === "" && s.inode === ino && st.size >= s.offset) offset = s.offset;
      else if (s.offset > 0)
        this.log.info(
          `${this.path}: not the file of the stored position (rotated or replaced): reading it from the start`,
        );
    } else if (!s && atStart) {
      offset = lastLineStart(fd, st.size);
    }
    this.firstOpen = false;
    this.stored = null;
    this.cur = { fd, ino, offset, hash, watcher: null };
    this.watchFile(this.cur);
    if (this.missingWarned) {
      this.log.info(`${this.path}: appeared; following it`);
      this.missingWarned = false;
    }
    return true;
  }

  /** Reads what is new, noticing rotation and truncation. Safe to call at any time. */
  check(): void {
    if (this.stopped) return;
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.again = false;
        this.step();
      } while (this.again && !this.stopped);
    } finally {
      this.reading = false;
    }
  }

  private step(): void {
    const now = Date.now();
    if (this.draining.length > 0) {
      for (const d of this.draining) if (!this.readAll(d.h)) this.later();
      this.draining = this.draining.filter((d) => {
        if (d.until > now) return true;
        this.close(d.h);
        return false;
      });
    }
    if (!this.cur) {
      if (!this.openCurrent()) return;
    }
    const h = this.cur!;
    if (!this.readAll(h)) {
      this.later();
      return;
    }
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(this.path);
    } catch {
      return; // gone (rotated away, deleted): keep the open file until something takes the path
    }
    if (Number(st.ino) !== h.ino) {
      // rename-rotation or delete-and-recreate: the old file is drained (and kept for late
      // writes a while), the new one is read from its start
      if (!this.readAll(h)) this.later();
      this.draining.push({ h, until: now + (this.opts.drainMs ?? 30000) });
      this.cur = null;
      this.log.info(`${this.path}: rotated; following the new file`);
      if (this.openCurrent() && !this.readAll(this.cur!)) this.later();
      return;
    }
    if (st.size < h.offset) {
      this.log.info(`${this.path}: truncated; reading it from the start`);
      h.offset = 0;
      h.hash = firstLineHash(h.fd);
      if (!this.readAll(h)) this.later();
    } else if (this.opts.mode === "polling" && h.hash !== "" && h.offset > 0 && st.size !== h.offset) {
      // copytruncate noticed late (the file grew past the old offset between two polls)
      const now1 = firstLineHash(h.fd);
      if (now1 !== "" && now1 !== h.hash) {
        this.log.info(`${this.path}: truncated and rewritten; reading it from the start`);
        h.offset = 0;
        h.hash = now1;
        if (!this.readAll(h)) this.later();
      }
    }
  }

  /** A long backlog: let the event loop breathe (control socket, other jails), go on next tick. */
  private later(): void {
    this.resume ??= setImmediate(() => {
      this.resume = null;
      this.check();
    });
  }

  /** Reads the complete lines after the handle's offset; false when it stopped at its budget. */
  private readAll(h: Handle): boolean {
    let budget = READ_BUDGET;
    for (;;) {
      let n: number;
      try {
        n = readSync(h.fd, this.buf, 0, this.buf.length, h.offset);
      } catch (e) {
        this.log.warn(`${this.path}: read failed: ${(e as Error).message}`);
        return true;
      }
      if (n === 0) return true;
      let end = this.buf.subarray(0, n).lastIndexOf(10);
      if (end < 0) {
        if (n < this.buf.length) return true; // a partial line: wait for its newline
        if (this.buf.length < MAX_LINE) {
          this.buf = Buffer.allocUnsafe(Math.min(this.buf.length * 2, MAX_LINE));
          continue;
        }
        end = n - 1; // a line longer than MAX_LINE: cut it
      }
      if (h.offset === 0 && h.hash === "") h.hash = firstLineHash(h.fd);
      h.offset += end + 1;
      this.bytesRead += end + 1;
      // One string per line, decoded on its own: a line kept by a filter or a failure window
      // must not keep the whole chunk alive (a substring shares its parent's storage).
      const lines: string[] = [];
      const b = this.buf;
      let pos = 0;
      while (pos <= end) {
        let nl = b.indexOf(10, pos);
        if (nl < 0 || nl > end) nl = end + 1; // the cut tail of an over-long line
        const stop = nl > pos && b[nl - 1] === 13 ? nl - 1 : nl;
        lines.push(this.utf8 ? b.toString("utf8", pos, stop) : this.decoder.decode(b.subarray(pos, stop)));
        pos = nl + 1;
      }
      if (lines.length > 0) this.opts.onLines(lines, this);
      if (this.stopped || n < this.buf.length) return true;
      budget -= end + 1;
      if (budget <= 0) return false;
    }
  }
}
