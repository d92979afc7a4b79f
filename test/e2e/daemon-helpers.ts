/**
 * End-to-end helpers: the real binary (built once into a temp dir, or $FAIL2TS_BIN), run as a
 * process in a temp dir with a command action that appends to a file. No firewall is touched.
 */

import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Subprocess, spawn, spawnSync } from "bun";

const ROOT = join(import.meta.dir, "..", "..");
const BUN = process.execPath;
const BIN_DIR = join(tmpdir(), "fail2ts-e2e-bin");

function newestSource(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestSource(p));
    else if (/\.(ts|toml|json)$/.test(e.name)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

/** The fail2ts binary under test: $FAIL2TS_BIN, or a fresh build of this tree. */
export function binary(): string {
  if (process.env.FAIL2TS_BIN) return process.env.FAIL2TS_BIN;
  const out = join(BIN_DIR, "fail2ts");
  const src = Math.max(
    newestSource(join(ROOT, "src")),
    newestSource(join(ROOT, "filters")),
    statSync(join(ROOT, "main.ts")).mtimeMs,
  );
  if (existsSync(out) && statSync(out).mtimeMs > src) return out;
  mkdirSync(BIN_DIR, { recursive: true });
  const tmpOut = `${out}.${process.pid}`;
  const r = spawnSync([BUN, "scripts/build.ts", "--outfile", tmpOut], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`build failed: ${r.stderr.toString()}${r.stdout.toString()}`);
  spawnSync(["mv", "-f", tmpOut, out]);
  return out;
}

export async function until<T>(fn: () => T | Promise<T>, ms = 5000, what = "condition"): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** "Nov 25 07:18:31" for now (syslog date). */
export function syslogDate(t = Date.now()): string {
  const d = new Date(t);
  const mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
    d.getMonth()
  ];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${mon} ${String(d.getDate()).padStart(2, " ")} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

let pid = 1000;
/** sshd failure lines for an address. */
export function failures(ip: string, n = 1): string {
  let s = "";
  for (let i = 0; i < n; i++) {
    pid++;
    s += `${syslogDate()} host sshd[${pid}]: Failed password for root from ${ip} port ${40000 + (pid % 20000)} ssh2\n`;
  }
  return s;
}

export interface EnvOptions {
  /** Extra lines for the [jails.sshd] table. */
  jail?: string;
  /** Extra lines for [server]. */
  server?: string;
  /** Extra TOML appended at the end. */
  extra?: string;
  maxretry?: number;
  bantime?: string | number;
  /** The jail's action list (TOML), default ["file"]. */
  action?: string;
}

/**
 * A command action's argv (TOML/JSON) that appends "<what> <ip> <jail>" to the file `bans`: what
 * the tests read to see the daemon ban and unban.
 */
export function fileAction(what: string, bans: string): string {
  return JSON.stringify([
    "/bin/sh",
    "-c",
    `printf '${what} %s %s\\n' "$1" "$2" >> "$3"`,
    "sh",
    "<ip>",
    "<jail>",
    bans,
  ]);
}

/** A temp dir with a config, a log, a ban file written by the command action, and the daemon. */
export class Env {
  readonly dir: string;
  readonly conf: string;
  readonly log: string;
  readonly sock: string;
  readonly db: string;
  readonly bans: string;
  readonly daemonLog: string;
  proc: Subprocess<"ignore", "pipe", "pipe"> | null = null;
  stderr = "";

  constructor(opts: EnvOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "f2ts-e2e-"));
    this.conf = join(this.dir, "fail2ts.toml");
    this.log = join(this.dir, "auth.log");
    this.sock = join(this.dir, "run", "fail2ts.sock");
    this.db = join(this.dir, "fail2ts.db");
    this.bans = join(this.dir, "bans.txt");
    this.daemonLog = join(this.dir, "fail2ts.log");
    writeFileSync(this.log, "");
    this.writeConfig(opts);
  }

  writeConfig(opts: EnvOptions = {}): void {
    const act = (what: string) => fileAction(what, this.bans);
    writeFileSync(
      this.conf,
      `[defaults]
maxretry = ${opts.maxretry ?? 3}
findtime = "10m"
bantime = ${JSON.stringify(opts.bantime ?? "10m")}
ignoreip = ["127.0.0.1/8", "::1"]

[jails.sshd]
filter = "sshd"
logpath = ["auth.log"]
action = ${opts.action ?? '["file"]'}
${opts.jail ?? ""}

[actions.file]
type = "command"
ban = ${act("ban")}
unban = ${act("unban")}

[server]
socket = "run/fail2ts.sock"
database = "fail2ts.db"
logtarget = "fail2ts.log"
loglevel = "info"
${opts.server ?? ""}
${opts.extra ?? ""}
`,
    );
  }

  append(text: string, file = this.log): void {
    writeFileSync(file, text, { flag: "a" });
  }

  /** Lines of the ban file: "ban IP JAIL" / "unban IP JAIL". */
  banLines(): string[] {
    return existsSync(this.bans) ? readFileSync(this.bans, "utf8").trim().split("\n").filter(Boolean) : [];
  }

  logText(): string {
    return existsSync(this.daemonLog) ? readFileSync(this.daemonLog, "utf8") : "";
  }

  /** Starts the daemon and waits until its jails are active. */
  async start(args: string[] = []): Promise<void> {
    this.proc = spawn([binary(), "run", "-c", this.conf, ...args], {
      cwd: this.dir,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...this.env },
    });
    const p = this.proc;
    void new Response(p.stderr).text().then((t) => {
      this.stderr += t;
    });
    await until(
      async () => {
        if (p.exitCode !== null)
          throw new Error(`daemon exited ${p.exitCode}: ${this.stderr}${this.logText()}`);
        try {
          const st = (await this.request({ cmd: "status" })) as { jails: unknown[] };
          return st.jails.length > 0;
        } catch {
          return false;
        }
      },
      10000,
      "the daemon to start",
    );
  }

  env: Record<string, string> = {};

  /** One request on the control socket. */
  async request(req: object): Promise<unknown> {
    const { request } = await import("../../src/server/client.ts");
    return request(this.sock, req as never, 5000);
  }

  async status(jail = "sshd"): Promise<{
    failures_total: number;
    failures_now: number;
    bans_total: number;
    banned_now: number;
    banned: string[];
  }> {
    const r = (await this.request({ cmd: "status", jail })) as { jails: Array<never> };
    return r.jails[0]!;
  }

  /** Runs a CLI subcommand; returns exit code, stdout, stderr. */
  cli(...args: string[]): { code: number; out: string; err: string } {
    const r = spawnSync([binary(), ...args], {
      cwd: this.dir,
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
  }

  async stop(): Promise<number | null> {
    const p = this.proc;
    if (!p) return null;
    if (p.exitCode === null) p.kill("SIGTERM");
    const code = await Promise.race([p.exited, Bun.sleep(15000).then(() => null)]);
    if (code === null) p.kill("SIGKILL");
    this.proc = null;
    return code;
  }

  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    p.kill("SIGKILL");
    await p.exited;
    this.proc = null;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
