/**
 * TCP wrappers: one line per ban in hosts.deny, marked as ours:
 *
 *   ALL: 203.0.113.7 # fail2ts:sshd
 *   ALL: [2001:db8::1] # fail2ts:sshd
 *   ALL: 198.51.100.0/255.255.255.0 # fail2ts:sshd
 *
 * Every change: take the lock file (`<path>.fail2ts.lock`, O_EXCL, stale locks of dead processes
 * broken), read the file as bytes, drop/add only our lines, write a temporary file in the same
 * directory with the original mode and owner, fsync, rename over. Other lines stay byte for byte
 * (the file is handled as latin1 so no byte is re-encoded).
 */
import {
  closeSync,
  fchownSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { Fail2tsError } from "../util/errors.ts";
import { JAIL_NAME, parseTarget, type Target, withPrefix6 } from "./addr.ts";
import type { Options, Schema } from "./options.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "./types.ts";

export const HOSTSDENY_SCHEMA: Schema = {
  path: "string",
  daemons: "string",
  lock_timeout: "duration",
};

const OURS = /^(.+): (\S+) # fail2ts:([A-Za-z0-9_-]+)$/;

function v4mask(prefix: number): string {
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join(".");
}

/** How tcpd writes a host pattern for a target. */
export function hostPattern(t: Target): string {
  if (t.family === 4) return t.prefix === 32 ? t.addr : `${t.addr}/${v4mask(t.prefix)}`;
  return t.prefix === 128 ? `[${t.addr}]` : `[${t.addr}]/${t.prefix}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class HostsDenyAction implements Action {
  readonly name: string;
  private readonly path: string;
  private readonly daemons: string;
  private readonly jail: string;
  private readonly lockTimeoutMs: number;
  private readonly prefix6: number | undefined;

  constructor(
    name: string,
    jail: JailInfo,
    opts: Options,
    private readonly log: ActionLogger,
    private readonly dryRun = false,
  ) {
    this.name = name;
    if (!JAIL_NAME.test(jail.name)) {
      throw new Fail2tsError(
        "config",
        `jail name ${JSON.stringify(jail.name)}: use letters, digits, _ and -`,
      );
    }
    this.jail = jail.name;
    this.path = opts.str("path", "/etc/hosts.deny");
    this.daemons = opts.str("daemons", "ALL");
    if (!/^[A-Za-z0-9_.@-]+(?:\s*,\s*[A-Za-z0-9_.@-]+)*$/.test(this.daemons)) {
      opts.fail("daemons", 'a daemon list such as "ALL" or "sshd, vsftpd"');
    }
    this.lockTimeoutMs = opts.ms("lock_timeout", 10_000);
    const p6 = jail.banprefix6;
    this.prefix6 = p6 !== undefined && p6 < 128 ? p6 : undefined;
  }

  private line(host: string): string {
    return `${this.daemons}: ${host} # fail2ts:${this.jail}`;
  }

  private hosts(batch: BanEvent[]): string[] {
    const out: string[] = [];
    for (const ev of batch) {
      const t = parseTarget(ev.ip);
      if (!t) {
        this.log.error(`${this.name}: ignoring invalid address ${JSON.stringify(ev.ip)}`);
        continue;
      }
      out.push(hostPattern(withPrefix6(t, this.prefix6)));
    }
    return out;
  }

  private async lock(): Promise<() => void> {
    const lockPath = `${this.path}.fail2ts.lock`;
    const deadline = Date.now() + this.lockTimeoutMs;
    for (;;) {
      try {
        const fd = openSync(lockPath, "wx", 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return () => {
          try {
            unlinkSync(lockPath);
          } catch {}
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new Fail2tsError(
            "action",
            `${this.name}: cannot lock ${lockPath}: ${(err as Error).message}`,
          );
        }
      }
      if (this.staleLock(lockPath)) {
        try {
          unlinkSync(lockPath);
        } catch {}
        continue;
      }
      if (Date.now() > deadline) {
        throw new Fail2tsError("action", `${this.name}: ${lockPath} is held by another process`);
      }
      await sleep(25 + Math.random() * 50);
    }
  }

  private staleLock(lockPath: string): boolean {
    try {
      const pid = Number(readFileSync(lockPath, "utf8").trim());
      if (!Number.isInteger(pid) || pid <= 0) return Date.now() - statSync(lockPath).mtimeMs > 60_000;
      try {
        process.kill(pid, 0);
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === "ESRCH";
      }
    } catch {
      return false; // vanished meanwhile: retry
    }
  }

  /** Rewrites the file under the lock: `edit` gets our lines' hosts for this jail, returns the new list. */
  private async change(op: string, edit: (ours: string[]) => string[]): Promise<void> {
    const unlock = await this.lock();
    try {
      let raw = "";
      let mode = 0o644;
      let owner: { uid: number; gid: number } | undefined;
      try {
        raw = readFileSync(this.path, "latin1");
        const st = statSync(this.path);
        mode = st.mode & 0o7777;
        owner = { uid: st.uid, gid: st.gid };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
          throw new Fail2tsError("action", `${this.name} ${op}: ${this.path}: ${(err as Error).message}`);
        }
      }
      const lines = raw.split("\n");
      const trailing = lines[lines.length - 1] === "";
      if (trailing) lines.pop();
      const others: string[] = [];
      const ours: string[] = [];
      for (const l of lines) {
        const m = OURS.exec(l);
        if (m && m[3] === this.jail) ours.push(m[2]!);
        else others.push(l);
      }
      const next = [...new Set(edit(ours))];
      if (next.length === ours.length && next.every((h, i) => h === ours[i])) return;
      const out = [...others, ...next.map((h) => this.line(h))];
      const text = out.length ? `${out.join("\n")}${trailing || next.length || !raw ? "\n" : ""}` : "";
      if (this.dryRun) {
        this.log.info(
          `${this.name} ${op}: would write ${this.path} with our lines: ${next.join(" ") || "(none)"}`,
        );
        return;
      }
      this.writeAtomic(text, mode, owner);
    } finally {
      unlock();
    }
  }

  private writeAtomic(text: string, mode: number, owner?: { uid: number; gid: number }): void {
    const tmp = join(dirname(this.path), `.${basename(this.path)}.fail2ts.${process.pid}.tmp`);
    try {
      writeFileSync(tmp, text, { encoding: "latin1", mode });
      const fd = openSync(tmp, "r+");
      try {
        if (owner) fchownSync(fd, owner.uid, owner.gid);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {}
      throw new Fail2tsError("action", `${this.name}: cannot write ${this.path}: ${(err as Error).message}`);
    }
  }

  async start(): Promise<void> {}

  async check(): Promise<boolean> {
    return true;
  }

  async update(unbanBatch: BanEvent[], banBatch: BanEvent[]): Promise<void> {
    const drop = new Set(this.hosts(unbanBatch));
    const add = this.hosts(banBatch);
    if (drop.size + add.length === 0) return;
    const op = add.length && drop.size ? "update" : add.length ? "ban" : "unban";
    await this.change(op, (ours) => [...ours.filter((h) => !drop.has(h)), ...add]);
  }

  ban(batch: BanEvent[]): Promise<void> {
    return this.update([], batch);
  }

  unban(batch: BanEvent[]): Promise<void> {
    return this.update(batch, []);
  }

  async restore(batch: BanEvent[]): Promise<void> {
    const add = this.hosts(batch);
    await this.change("restore", () => add);
  }

  async flush(): Promise<void> {
    await this.change("flush", () => []);
  }

  async stop(): Promise<void> {
    await this.flush();
  }
}
