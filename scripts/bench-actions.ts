/**
 * Action throughput, measured inside network namespaces this script creates and deletes (never
 * the host's firewall). Needs root, nft, ipset, iptables.
 *
 *   bun scripts/bench-actions.ts [--n 100000] [--runs 3]
 *
 * Each figure is the median of the runs, through the action library (TypeScript building the
 * script/restore file + the tool applying it), each run in a fresh namespace:
 *   start + ban N   start() then ban(N events) as one batch        (target ≤ 2 s for nft)
 *   restore N       restore(N events) into a freshly started table (target ≤ 1 s for nft)
 *   ban 1 into N    one more ban once N are present (the per-tick latency)
 *   unban N         unban(N events) as one batch
 */
import { createAction } from "../src/action/registry.ts";
import type { Action, BanEvent } from "../src/action/types.ts";
import { firewallSupport, Netns } from "../test/helpers/netns.ts";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const N = arg("n", 100_000);
const RUNS = arg("runs", 3);
const FAIL2BAN_BANS_PER_S = 82;

const quiet = { debug() {}, info() {}, warn() {}, error: (m: string) => console.error(m) };

function events(n: number, jail: string): BanEvent[] {
  const now = Math.floor(Date.now() / 1000);
  const out: BanEvent[] = [];
  for (let i = 1; i <= n; i++) {
    out.push({
      ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      jail,
      time: now,
      bantime: 3600,
      failures: 5,
      count: 0,
      matches: [],
    });
  }
  return out;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

interface Row {
  backend: string;
  op: string;
  n: number;
  ms: number[];
  target?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function bench(type: "nftables" | "ipset" | "iptables", n: number, rows: Row[]): Promise<void> {
  const backend =
    type === "ipset" ? "ipset+iptables" : type === "iptables" ? "iptables (rule/addr)" : "nftables";
  const jail = { name: "sshd", port: "ssh" };
  const evs = events(n, "sshd");
  const r: Record<string, number[]> = { startBan: [], restore: [], banOne: [], unban: [] };
  for (let run = 0; run < RUNS; run++) {
    const ns = await Netns.create();
    try {
      const make = (): Action =>
        createAction({ name: type, type, options: {} }, jail, { log: quiet, exec: ns.exec });
      const a = make();
      r.startBan!.push(
        await timed(async () => {
          await a.start();
          await a.ban(evs);
        }),
      );
      r.banOne!.push(await timed(() => a.ban(events(1, "sshd").map((e) => ({ ...e, ip: "192.0.2.1" })))));
      r.unban!.push(await timed(() => a.unban(evs)));
      await a.stop();
      const b = make();
      await b.start();
      r.restore!.push(await timed(() => b.restore!(evs)));
      await b.stop();
    } finally {
      await ns.delete();
      await Bun.sleep(1500); // the kernel frees a namespace's 100k elements asynchronously
    }
  }
  const nftTarget = type === "nftables";
  rows.push({
    backend,
    op: "start + ban N (one batch)",
    n,
    ms: r.startBan!,
    ...(nftTarget ? { target: 2000 } : {}),
  });
  rows.push({
    backend,
    op: "restore N (fresh table)",
    n,
    ms: r.restore!,
    ...(nftTarget ? { target: 1000 } : {}),
  });
  rows.push({ backend, op: "ban 1 with N present", n: 1, ms: r.banOne! });
  rows.push({ backend, op: "unban N (one batch)", n, ms: r.unban! });
}

async function main(): Promise<void> {
  const reason = firewallSupport(["nft", "ipset", "iptables", "ip6tables"]);
  if (reason) {
    console.error(`bench-actions: cannot run: ${reason}`);
    process.exit(2);
  }
  const nft = (await Bun.$`nft --version`.text()).trim();
  const ipset = (await Bun.$`ipset --version`.text()).trim().split("\n")[0];
  const ipt = (await Bun.$`iptables --version`.text()).trim();
  console.log(
    `fail2ts action benchmark — ${nft}; ${ipset}; ${ipt}; kernel ${(await Bun.$`uname -r`.text()).trim()}`,
  );
  const load = (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ");
  console.log(`median of ${RUNS} runs, each in a fresh network namespace; N = ${N}; load average ${load}\n`);

  const rows: Row[] = [];
  await bench("nftables", N, rows);
  await bench("ipset", N, rows);
  const plainN = Math.min(N, 10_000);
  await bench("iptables", plainN, rows);

  const head = ["backend", "operation", "n", "median", "min–max", "addresses/s", "target"];
  const table = rows.map((row) => {
    const m = median(row.ms);
    const rate = row.n > 1 ? Math.round((row.n / m) * 1000).toLocaleString("en-US") : "";
    const target = row.target ? `≤ ${row.target} ms ${m <= row.target ? "✓" : "✗"}` : "";
    const range = `${Math.round(Math.min(...row.ms))}–${Math.round(Math.max(...row.ms))} ms`;
    return [row.backend, row.op, row.n.toLocaleString("en-US"), `${m.toFixed(0)} ms`, range, rate, target];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of table) console.log(line(r));
  const f2b = N / FAIL2BAN_BANS_PER_S;
  console.log(
    `\nFail2ban at ${FAIL2BAN_BANS_PER_S} bans/s would take ${Math.round(f2b)} s for ${N.toLocaleString("en-US")} bans.`,
  );
}

await main();
