/**
 * Fleet figures on loopback: a redis-server (random port, AOF on, temp dir) and three fail2ts
 * daemons (the built binary), each with its own config, database and a command action that
 * appends "<ip> $EPOCHREALTIME" to a file.
 *
 *   bun scripts/bench-fleet.ts [--n 300] [--gap 10] [--burst 20000] [--raw 100000]
 *
 *   propagation   `ban` on A's socket → the action on B and on C ran (p50/p99/max over n bans,
 *                 one every `gap` ms); A's own action for comparison. Goal: p99 ≤ 100 ms.
 *   burst         one `ban` of `burst` addresses on A (a jail without actions on B and C, so the
 *                 figure is the fleet, not 20 000 shell spawns) → applied on B and C: events/s
 *                 through one stream, end to end (sign, queue in A's DB, XADD, XREAD, verify,
 *                 commit to B's DB, ban book).
 *   raw           the same path without daemons (Fleet objects and fake jails in this process):
 *                 what one stream carries when nothing else costs.
 */
import { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Subprocess, spawn } from "bun";
import { Fleet } from "../src/fleet/fleet.ts";
import type { FleetJail } from "../src/fleet/types.ts";
import { request } from "../src/server/client.ts";
import { binary } from "../test/e2e/daemon-helpers.ts";
import { RedisServer, redisSupport, writeKey } from "../test/e2e/fleet-helpers.ts";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const N = arg("n", 300);
const GAP = arg("gap", 10);
const BURST = arg("burst", 20000);
const RAW = arg("raw", 100000);

const why = redisSupport();
if (why) {
  console.error(`bench-fleet: ${why}`);
  process.exit(1);
}

const pct = (a: number[], p: number) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;
const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

class Host {
  readonly dir = mkdtempSync(join(tmpdir(), "f2ts-bench-fleet-"));
  readonly sock = join(this.dir, "run", "fail2ts.sock");
  readonly stamps = join(this.dir, "stamps.txt");
  proc: Subprocess | null = null;

  constructor(
    readonly node: string,
    redisUrl: string,
    keyFile: string,
  ) {
    writeFileSync(join(this.dir, "auth.log"), "");
    const stamp = JSON.stringify([
      "/bin/bash",
      "-c",
      'printf "%s %s\\n" "$1" "$EPOCHREALTIME" >> "$2"',
      "bash",
      "<ip>",
      this.stamps,
    ]);
    writeFileSync(
      join(this.dir, "fail2ts.toml"),
      `[defaults]
maxretry = 3
findtime = "10m"
bantime = "1h"
ignoreip = ["127.0.0.1/8"]

[jails.sshd]
filter = "sshd"
logpath = ["auth.log"]
action = ["stamp"]

[jails.bulk]
filter = "sshd"
logpath = ["auth.log"]
action = []

[actions.stamp]
type = "command"
ban = ${stamp}
unban = ["/bin/true"]

[server]
socket = "run/fail2ts.sock"
database = "fail2ts.db"
logtarget = "fail2ts.log"
loglevel = "warning"

[fleet]
redis = "${redisUrl}"
key_file = "${keyFile}"
node = "${this.node}"
prefix = "bench"
maxlen = 200000
queue = 100000
`,
    );
  }

  async start(): Promise<void> {
    this.proc = spawn([binary(), "run", "-c", join(this.dir, "fail2ts.toml")], {
      cwd: this.dir,
      stdin: "ignore",
      stdout: "ignore",
      stderr: "inherit",
    });
    const end = Date.now() + 10000;
    for (;;) {
      try {
        const st = (await request(this.sock, { cmd: "status" }, 2000)) as { fleet?: { connected: boolean } };
        if (st.fleet?.connected) return;
      } catch {}
      if (Date.now() > end) throw new Error(`${this.node} did not start: ${this.logText()}`);
      await Bun.sleep(20);
    }
  }

  logText(): string {
    const p = join(this.dir, "fail2ts.log");
    return existsSync(p) ? readFileSync(p, "utf8") : "";
  }

  /** ip → epoch ms its action ran. */
  stampsByIp(): Map<string, number> {
    const m = new Map<string, number>();
    if (!existsSync(this.stamps)) return m;
    for (const l of readFileSync(this.stamps, "utf8").split("\n")) {
      const [a, t] = l.split(" ");
      if (a && t) m.set(a, Number(t) * 1000);
    }
    return m;
  }

  async fleet(): Promise<{ events_in: number; events_out: number; queued: number }> {
    return ((await request(this.sock, { cmd: "status" }, 5000)) as { fleet: never }).fleet;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    p.kill("SIGTERM");
    await Promise.race([p.exited, Bun.sleep(10000)]);
    if (p.exitCode === null) p.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const wall = () => performance.timeOrigin + performance.now();

binary();
const redis = await RedisServer.start();
const keyDir = mkdtempSync(join(tmpdir(), "f2ts-bench-key-"));
const keyFile = writeKey(keyDir);
const cleanup = async () => {
  await redis.cleanup();
  rmSync(keyDir, { recursive: true, force: true });
};
process.on("SIGINT", () => void cleanup().then(() => process.exit(130)));
const hosts = ["a", "b", "c"].map((n) => new Host(n, redis.url, keyFile));
const [a, b, c] = hosts as [Host, Host, Host];
try {
  await Promise.all(hosts.map((h) => h.start()));
  console.log(`redis-server ${redis.url} (AOF on), 3 daemons (${binary()})\n`);

  // ---------------------------------------------------------------- propagation latency
  const sent = new Map<string, number>();
  for (let i = 1; i <= N; i++) {
    const addr = ip(i);
    sent.set(addr, wall());
    await request(a.sock, { cmd: "ban", jail: "sshd", ips: [addr] }, 5000);
    await Bun.sleep(GAP);
  }
  const end = Date.now() + 15000;
  while (Date.now() < end && !hosts.every((h) => h.stampsByIp().size >= N)) await Bun.sleep(50);
  const lat = (h: Host) => {
    const s = h.stampsByIp();
    const out: number[] = [];
    for (const [addr, t0] of sent) {
      const t = s.get(addr);
      if (t !== undefined) out.push(t - t0);
    }
    return out;
  };
  console.log(`propagation: ${N} bans on A, one every ${GAP} ms (ban request → action ran)`);
  for (const [name, h] of [
    ["A (local)", a],
    ["B", b],
    ["C", c],
  ] as const) {
    const l = lat(h);
    console.log(
      `  ${name.padEnd(10)} ${String(l.length).padStart(4)}/${N}  p50 ${ms(pct(l, 50))}  p99 ${ms(pct(l, 99))}  max ${ms(Math.max(...l))}`,
    );
  }
  // the fleet's share: B's action time minus A's action time, per address
  const sa = a.stampsByIp();
  const sb = b.stampsByIp();
  const hop: number[] = [];
  for (const [addr, t] of sb) {
    const t0 = sa.get(addr);
    if (t0 !== undefined) hop.push(t - t0);
  }
  console.log(`  A's action → B's action: p50 ${ms(pct(hop, 50))}  p99 ${ms(pct(hop, 99))}\n`);

  // ---------------------------------------------------------------- burst through the daemons
  // the stream is ordered: when B's action runs for a marker banned after the burst, B has
  // applied the whole burst (no status polling, which would load the daemons)
  const ips: string[] = [];
  for (let i = 0; i < BURST; i++) ips.push(ip(1_000_000 + i));
  const marker = ip(2_000_000);
  const t0 = wall();
  // in requests of 4000: the control client does not finish partial writes of larger lines
  for (let i = 0; i < ips.length; i += 4000) {
    await request(a.sock, { cmd: "ban", jail: "bulk", ips: ips.slice(i, i + 4000) }, 120000);
  }
  await request(a.sock, { cmd: "ban", jail: "sshd", ips: [marker] }, 5000);
  const tBanned = wall() - t0;
  const endB = Date.now() + 120000;
  while (Date.now() < endB && !(b.stampsByIp().has(marker) && c.stampsByIp().has(marker)))
    await Bun.sleep(20);
  const tB = (b.stampsByIp().get(marker) ?? Number.NaN) - t0;
  const tC = (c.stampsByIp().get(marker) ?? Number.NaN) - t0;
  const [fb, fc] = await Promise.all([b.fleet(), c.fleet()]);
  const rate = (t: number) => `${Math.round((BURST + 1) / (t / 1000)).toLocaleString("en")}/s`;
  console.log(
    `burst: ${BURST} addresses banned on A in requests of 4000 (jail without actions), then a marker`,
  );
  console.log(`  A banned and queued them in ${ms(tBanned)}`);
  console.log(
    `  B had applied all by ${ms(tB)} (${rate(tB)}), C by ${ms(tC)} (${rate(tC)}); in: B ${fb.events_in}, C ${fc.events_in}\n`,
  );
} catch (e) {
  await Promise.all(hosts.map((h) => h.stop()));
  await cleanup();
  throw e;
} finally {
  await Promise.all(hosts.map((h) => h.stop()));
}

// ---------------------------------------------------------------- raw stream throughput
{
  const log = {
    debug() {},
    info() {},
    warn: (m: string) => console.error(m),
    error: (m: string) => console.error(m),
  };
  let applied = 0;
  const jail: FleetJail = {
    active: true,
    findtime: 600,
    ignores: () => false,
    banOf: () => undefined,
    applyBan: () => {
      applied++;
    },
    applyUnban: () => {},
    banNow: () => {},
  };
  const mk = (node: string) => {
    const f = new Fleet(
      {
        redis: redis.url,
        key_file: keyFile,
        node,
        share: null,
        accept: null,
        global_maxretry: {},
        prefix: "raw",
        maxlen: RAW * 2,
        queue: RAW * 2,
      },
      { db: new Database(":memory:"), log, host: { jail: () => jail } },
    );
    f.start();
    return f;
  };
  const pub = mk("p");
  const sub = mk("s");
  while (!pub.status().connected || !sub.status().connected) await Bun.sleep(5);
  const now = Date.now() / 1000;
  const t0 = performance.now();
  for (let i = 0; i < RAW; i += 1000) {
    const chunk = [];
    for (let k = i; k < Math.min(RAW, i + 1000); k++)
      chunk.push({ ip: ip(k), jail: "x", time: now, bantime: 3600, failures: 3 });
    pub.hook.banned(chunk);
  }
  const tq = performance.now() - t0;
  while (applied < RAW && performance.now() - t0 < 120000) await Bun.sleep(2);
  const t = performance.now() - t0;
  console.log(`raw: ${RAW} events, one publisher, one consumer, in-process (no daemons)`);
  console.log(
    `  signed and queued in ${ms(tq)}; applied ${applied} in ${ms(t)}: ${Math.round(applied / (t / 1000)).toLocaleString("en")} events/s`,
  );
  await pub.stop(0);
  await sub.stop(0);
}
await cleanup();
