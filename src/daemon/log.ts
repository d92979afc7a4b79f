/**
 * The daemon's log: `2026-01-01 10:00:00.123 INFO Ban 203.0.113.7 jail=sshd failures=3 bantime=600s`
 * to a file, stderr, stdout or the journal (stderr with `<N>` priority prefixes, which journald
 * reads). Lines of one tick are written in one write(2); the file is reopened on reload (for
 * logrotate). Small on purpose: it is on the start-up path.
 */
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { LogLevel } from "../config/schema.ts";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40 };
const LABEL: Record<LogLevel, string> = { debug: "DEBUG", info: "INFO", warning: "WARNING", error: "ERROR" };
const PRIO: Record<LogLevel, number> = { debug: 7, info: 6, warning: 4, error: 3 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** Local time `YYYY-MM-DD HH:MM:SS.mmm`. */
export function stamp(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export class DaemonLog implements Logger {
  private fd = -1;
  private pending: string[] = [];
  private scheduled = false;
  private min: number;

  constructor(
    private target: string,
    level: LogLevel,
  ) {
    this.min = RANK[level];
    this.open();
  }

  private open(): void {
    if (this.target === "stderr" || this.target === "journal") this.fd = 2;
    else if (this.target === "stdout") this.fd = 1;
    else {
      try {
        mkdirSync(dirname(this.target), { recursive: true, mode: 0o750 });
      } catch {}
      this.fd = openSync(this.target, "a", 0o640);
    }
  }

  /** Reopens the target (a rotated log file) and applies a new level/target. */
  reopen(target: string, level: LogLevel): void {
    this.flush();
    if (this.fd > 2) {
      try {
        closeSync(this.fd);
      } catch {}
    }
    this.target = target;
    this.min = RANK[level];
    try {
      this.open();
    } catch (e) {
      this.target = "stderr";
      this.fd = 2;
      this.write("error", `cannot open the log ${target}: ${(e as Error).message}; logging to stderr`);
    }
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.min;
  }

  write(level: LogLevel, msg: string): void {
    if (RANK[level] < this.min) return;
    const text = msg.replace(/[\r\n]/g, (c) => (c === "\n" ? "\\n" : "\\r"));
    this.pending.push(
      this.target === "journal"
        ? `<${PRIO[level]}>${LABEL[level]} ${text}\n`
        : `${stamp(Date.now())} ${LABEL[level]} ${text}\n`,
    );
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const s = this.pending.length === 1 ? this.pending[0]! : this.pending.join("");
    this.pending = [];
    try {
      writeSync(this.fd, s);
    } catch {
      // a full disk must not stop the daemon
    }
  }

  debug(msg: string): void {
    this.write("debug", msg);
  }
  info(msg: string): void {
    this.write("info", msg);
  }
  warn(msg: string): void {
    this.write("warning", msg);
  }
  error(msg: string): void {
    this.write("error", msg);
  }

  close(): void {
    this.flush();
    if (this.fd > 2) {
      try {
        closeSync(this.fd);
      } catch {}
    }
    this.fd = 2;
  }
}
