/**
 * `fail2ts ban` / `unban` / `flush` and the restore at start, end to end with the real binary and
 * nftables, each run inside a network namespace this script creates and deletes (never the host's
 * firewall). Needs root, ip and nft.
 *
 *   bun scripts/bench-ban.ts [--n 100000] [--runs 3] [--bin PATH]
 *
 * PATH defaults to $FAIL2TS_BIN, else a fresh build in a temp dir. Per run, in a fresh namespace
 * and temp dir (config: one sshd jail, the nftables action, bantime 1 h, the database in the dir):
 *
 *   ban N, no daemon     `fail2ts ban sshd - < N addresses`: process start, config, validation,
 *                        database, one nft transaction; all N are in the set when it returns
 *   unban N, no daemon   the same list back out
 *   flush, no daemon     after banning N again: table removed, database cleared
 *   ban N, daemon        the same command with `fail2ts run` up: until the command returns, and
 *                        until the last address is in the set (the batch is one transaction)
 *   restore N at start   the daemon stopped, the ruleset flushed (a reboot), `fail2ts run` spawned
 *                        until the last address is in the set
 *
 * Set contents are counted with `nft -j list set` after each step (not in the timings).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "../src/server/client.ts";
import { firewallSupport, Netns } from "../test/helpers/netns.ts";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

const N = Number(arg("n", "100000"));
const RUNS = Number(arg("runs", "3"));
const ROOT = new URL("..", import.meta.url).pathname;

/** Fail2ban's figures (the issue): 82 bans/s; 10 k bans in 131 s; 10 k restored in 117 s. */
const F2B = { bansPerS: 82, restore10kS: 117 };

function binary(): string {
  const given = arg("bin", process.env.FAIL2TS_BIN ?? "");
  if (given) return given;
  const out = join(mkdtempSync(join(tmpdir(), "f2t-bench-bin-")), "fail2ts");
  const r = Bun.spawnSync([process.execPath, "scripts/build.ts", "--outfile", out], { cwd: ROOT });
  if (r.exitCode !== 0) throw new Error(`build failed: ${r.stderr.toString()}`);
  return out;
}

function addresses(n: number): string[] {
  const out: string[] = [];
  for (let i = 1; i <= n; i++) out.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ctx {
  ns: Netns;
  bin: string;
  dir: string;
  conf: string;
  sock: string;
  list: string;
  last: string;
}

function setup(ns: Netns, bin: string, ips: string[]): Ctx {
  const dir = mkdtempSync(join(tmpdir(), "f2t-bench-ban-"));
  mkdirSync(join(dir, "run"));
  writeFileSync(join(dir, "auth.log"), "");
  const conf = join(dir, "fail2ts.toml");
  writeFileSync(
    conf,
    `[defaults]
bantime = "1h"
ignoreip = ["127.0.0.1/8", "::1"]

[jails.sshd]
filter = "sshd"
logpath = ["auth.log"]
port = "ssh"
action = ["nftables"]

[server]
socket = "run/fail2ts.sock"
database = "fail2ts.db"
logtarget = "fail2ts.log"
`,
  );
  const list = join(dir, "list.txt");
  writeFileSync(list, `${ips.join("\n")}\n`);
  return { ns, bin, dir, conf, sock: join(dir, "run", "fail2ts.sock"), list, last: ips[ips.length - 1]! };
}

/** Runs the CLI in the namespace with `stdin` from a file; returns wall ms. */
async function cli(c: Ctx, args: string[], stdinFile?: string): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(["ip", "netns", "exec", c.ns.name, c.bin, ...args, "-c", c.conf], {
    cwd: c.dir,
    stdin: stdinFile ? Bun.file(stdinFile) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`fail2ts ${args.join(" ")} exited ${code}: ${err}${out}`);
  return ms;
}

/** Elements in the jail's v4 set (0 when it does not exist). */
async function count(c: Ctx): Promise<number> {
  const r = await c.ns.run(["nft", "-j", "list", "set", "inet", "fail2ts", "f2t-sshd-v4"]);
  if (r.code !== 0) return 0;
  const doc = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
  return doc.nftables.reduce((n, o) => n + (o.set?.elem?.length ?? 0), 0);
}

/** Waits until `ip` is in the set (cheap: `nft get element`); ms since `t0`. */
async function untilPresent(c: Ctx, ip: string, t0: number, timeoutMs = 60_000): Promise<number> {
  for (;;) {
    const r = await c.ns.run(["nft", "get", "element", "inet", "fail2ts", "f2t-sshd-v4", `{ ${ip} }`]);
    if (r.code === 0) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`${ip} not in the set after ${timeoutMs} ms`);
    await sleep(25); // polling harder would take CPU from what is measured (2-CPU machines)
  }
}

async function startDaemon(c: Ctx): Promise<{ proc: ReturnType<typeof Bun.spawn>; t0: number }> {
  const t0 = performance.now();
  const proc = Bun.spawn(["ip", "netns", "exec", c.ns.name, c.bin, "run", "-c", c.conf], {
    cwd: c.dir,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "inherit",
  });
  return { proc, t0 };
}

async function untilUp(c: Ctx): Promise<void> {
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      await request(c.sock, { cmd: "ping" }, 1000);
      return;
    } catch {}
    if (Date.now() > end) throw new Error("the daemon did not start");
    await sleep(10);
  }
}

async function stopDaemon(proc: ReturnType<typeof Bun.spawn>): Promise<void> {
  proc.kill("SIGTERM");
  await proc.exited;
}

function check(what: string, got: number, want: number): void {
  if (got !== want) throw new Error(`${what}: ${got} elements in the set, expected ${want}`);
}

type Key = "direct" | "unban" | "flush" | "daemonCmd" | "daemonNft" | "restore";

async function oneRun(bin: string, ips: string[], r: Record<Key, number[]>): Promise<void> {
  const ns = await Netns.create();
  const c = setup(ns, bin, ips);
  try {
    // no daemon: ban, unban, ban again, flush
    r.direct.push(await cli(c, ["ban", "sshd", "-", "-q"], c.list));
    check("ban, no daemon", await count(c), N);
    r.unban.push(await cli(c, ["unban", "-", "-q"], c.list));
    check("unban, no daemon", await count(c), 0);
    await cli(c, ["ban", "sshd", "-", "-q"], c.list);
    r.flush.push(await cli(c, ["flush", "-q"]));
    check("flush", await count(c), 0);

    // through the daemon (empty database: the flush cleared it)
    let d = await startDaemon(c);
    await untilUp(c);
    const t0 = performance.now();
    r.daemonCmd.push(await cli(c, ["ban", "sshd", "-", "-q"], c.list));
    r.daemonNft.push(await untilPresent(c, c.last, t0));
    await sleep(200);
    check("ban through the daemon", await count(c), N);
    await stopDaemon(d.proc);

    // a reboot as far as the firewall knows, then the restore at start
    await ns.out(["nft", "flush", "ruleset"]);
    d = await startDaemon(c);
    r.restore.push(await untilPresent(c, c.last, d.t0));
    await untilUp(c);
    check("restore", await count(c), N);
    await stopDaemon(d.proc);
  } finally {
    await ns.delete();
    rmSync(c.dir, { recursive: true, force: true });
    await sleep(1500); // the kernel frees a namespace's elements asynchronously
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const reason = firewallSupport(["nft"]);
  if (reason) {
    console.error(`bench-ban: cannot run: ${reason}`);
    process.exit(2);
  }
  const bin = binary();
  const version = (await Bun.$`${bin} --version`.text()).trim();
  const nft = (await Bun.$`nft --version`.text()).trim();
  const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
  console.log(
    `${version}; ${nft}; kernel ${(await Bun.$`uname -r`.text()).trim()}; ${navigator.hardwareConcurrency} CPUs`,
  );
  console.log(
    `median of ${RUNS} runs, each in a fresh network namespace; N = ${N.toLocaleString("en-US")}; load average ${load}\n`,
  );
  const ips = addresses(N);
  const r: Record<Key, number[]> = {
    direct: [],
    unban: [],
    flush: [],
    daemonCmd: [],
    daemonNft: [],
    restore: [],
  };
  for (let i = 0; i < RUNS; i++) await oneRun(bin, ips, r);

  const f2bBan = N / F2B.bansPerS;
  const f2bRestore = (N / 10_000) * F2B.restore10kS;
  const rows: Array<[string, number[], number | null, string]> = [
    [
      "fail2ts ban N, no daemon (all in nft at return)",
      r.direct,
      2000,
      `${Math.round(f2bBan)} s (82 bans/s)`,
    ],
    ["fail2ts ban N, daemon running: command returns", r.daemonCmd, null, ""],
    ["fail2ts ban N, daemon running: all in nft", r.daemonNft, 2000, `${Math.round(f2bBan)} s (82 bans/s)`],
    [
      "restore N at start (spawn → all in nft)",
      r.restore,
      1000,
      `~${Math.round(f2bRestore)} s (10 k in 117 s)`,
    ],
    ["fail2ts unban N, no daemon", r.unban, null, ""],
    ["fail2ts flush (N bans), no daemon", r.flush, null, ""],
  ];
  const head = ["operation", "median", "min–max", "addresses/s", "target", "Fail2ban"];
  const table = rows.map(([op, ms, target, f2b]) => {
    const m = median(ms);
    const rate = op.includes("flush") ? "" : Math.round((N / m) * 1000).toLocaleString("en-US");
    const t = target === null ? "" : `≤ ${target} ms ${m <= target ? "✓" : "✗"}`;
    return [
      op,
      `${m.toFixed(0)} ms`,
      `${Math.round(Math.min(...ms))}–${Math.round(Math.max(...ms))} ms`,
      rate,
      t,
      f2b,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((x, i) => x.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of table) console.log(line(row));
}

await main();
