/**
 * Following the systemd journal through `journalctl -f -o json`, with the cursor of the last
 * entry kept so that a restart resumes after it (`--after-cursor`). Entries become lines in the
 * form Fail2ban's filters expect, "host ident[pid]: message", with the journal's own time.
 */
import type { Subprocess } from "bun";
import type { FollowerLog } from "./file.ts";

export interface JournalLine {
  text: string;
  /** Epoch seconds (the entry's __REALTIME_TIMESTAMP). */
  time: number;
}

export interface JournalOptions {
  /** journalctl match arguments: `_SYSTEMD_UNIT=ssh.service`, `+`, `_COMM=sshd`... */
  matches: string[];
  /** Resume after this cursor; null: start at the end of the journal. */
  cursor: string | null;
  onLines: (lines: JournalLine[], follower: JournalFollower) => void;
  log?: FollowerLog;
  /** The journalctl program (default: `journalctl` on PATH). */
  journalctl?: string;
}

interface Entry {
  MESSAGE?: string | number[] | null;
  _HOSTNAME?: string;
  SYSLOG_IDENTIFIER?: string;
  _COMM?: string;
  _PID?: string;
  SYSLOG_PID?: string;
  __REALTIME_TIMESTAMP?: string;
  __CURSOR?: string;
}

const NOLOG: FollowerLog = { info() {}, warn() {}, debug() {} };

/** "host ident[pid]: message" of a journal entry (Fail2ban's format for journal lines). */
export function journalText(e: Entry): string {
  let msg = e.MESSAGE;
  if (Array.isArray(msg)) msg = new TextDecoder().decode(new Uint8Array(msg));
  const ident = e.SYSLOG_IDENTIFIER ?? e._COMM ?? "";
  const pid = e.SYSLOG_PID ?? e._PID;
  const tag = ident ? (pid ? `${ident}[${pid}]` : ident) : "";
  return `${e._HOSTNAME ?? "localhost"} ${tag}: ${String(msg ?? "").replace(/\n+$/, "")}`;
}

export class JournalFollower {
  private proc: Subprocess<"ignore", "pipe", "pipe"> | null = null;
  private lastCursor: string | null;
  private stopped = true;
  private backoff = 1000;
  private restartTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly log: FollowerLog;
  /** Entries read since start. */
  entries = 0;

  constructor(private readonly opts: JournalOptions) {
    this.lastCursor = opts.cursor;
    this.log = opts.log ?? NOLOG;
  }

  /** The cursor of the last entry handed over. */
  cursor(): string | null {
    return this.lastCursor;
  }

  start(): void {
    this.stopped = false;
    this.spawn();
  }

  stop(): void {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const p = this.proc;
    this.proc = null;
    if (p && p.exitCode === null) p.kill("SIGTERM");
  }

  private spawn(): void {
    const argv = [this.opts.journalctl ?? "journalctl", "-f", "-o", "json", "--no-pager", "-q"];
    if (this.lastCursor) argv.push(`--after-cursor=${this.lastCursor}`);
    else argv.push("-n", "0");
    argv.push(...this.opts.matches);
    let p: Subprocess<"ignore", "pipe", "pipe">;
    try {
      p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    } catch (e) {
      this.log.warn(`journal: cannot run ${argv[0]}: ${(e as Error).message}`);
      this.scheduleRestart();
      return;
    }
    this.proc = p;
    const started = Date.now();
    void this.pump(p).finally(async () => {
      const err = (await new Response(p.stderr).text().catch(() => "")).trim();
      await p.exited;
      if (this.stopped || this.proc !== p) return;
      this.proc = null;
      this.log.warn(
        `journal: journalctl exited (${p.exitCode})${err ? `: ${err.split("\n")[0]}` : ""}; restarting`,
      );
      if (Date.now() - started > 60000) this.backoff = 1000;
      this.scheduleRestart();
    });
  }

  private scheduleRestart(): void {
    if (this.stopped) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.stopped) this.spawn();
    }, this.backoff);
    this.backoff = Math.min(this.backoff * 2, 30000);
  }

  private async pump(p: Subprocess<"ignore", "pipe", "pipe">): Promise<void> {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of p.stdout) {
      if (this.stopped) return;
      rest += decoder.decode(chunk, { stream: true });
      const end = rest.lastIndexOf("\n");
      if (end < 0) continue;
      const block = rest.slice(0, end);
      rest = rest.slice(end + 1);
      const out: JournalLine[] = [];
      let cursor: string | null = null;
      for (const raw of block.split("\n")) {
        if (raw === "") continue;
        let e: Entry;
        try {
          e = JSON.parse(raw) as Entry;
        } catch {
          this.log.warn("journal: an entry that is not JSON; skipped");
          continue;
        }
        if (e.__CURSOR) cursor = e.__CURSOR;
        const us = Number(e.__REALTIME_TIMESTAMP);
        out.push({
          text: journalText(e),
          time: Number.isFinite(us) && us > 0 ? us / 1e6 : Date.now() / 1000,
        });
      }
      this.entries += out.length;
      if (cursor) this.lastCursor = cursor;
      if (out.length > 0) this.opts.onLines(out, this);
    }
  }
}
