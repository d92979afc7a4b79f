/**
 * nftables action against the real nft inside a network namespace created for this file.
 * Never outside it: every command goes through ns.exec (`ip netns exec NS ...`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ExecOptions } from "../src/action/exec.ts";
import { removeNftTable } from "../src/action/nftables.ts";
import { createAction } from "../src/action/registry.ts";
import { ActionRunner } from "../src/action/runner.ts";
import type { Action, JailInfo } from "../src/action/types.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { ev, listenTcp, memoryLog, Netns, probeTcp, requireFirewall, v4s } from "./helpers/netns.ts";

interface Elem {
  val: string;
  timeout?: number;
}

async function elements(ns: Netns, set: string, table = "fail2ts"): Promise<Elem[]> {
  const doc = JSON.parse(await ns.out(["nft", "-j", "list", "set", "inet", table, set])) as {
    nftables: { set?: { elem?: unknown[] } }[];
  };
  const out: Elem[] = [];
  for (const o of doc.nftables) {
    for (const raw of o.set?.elem ?? []) {
      let val: unknown = raw;
      let timeout: number | undefined;
      if (raw && typeof raw === "object" && "elem" in raw) {
        const e = (raw as { elem: { val: unknown; timeout?: number } }).elem;
        val = e.val;
        timeout = e.timeout;
      }
      if (val && typeof val === "object" && "prefix" in val) {
        const p = (val as { prefix: { addr: string; len: number } }).prefix;
        val = `${p.addr}/${p.len}`;
      }
      out.push(timeout === undefined ? { val: String(val) } : { val: String(val), timeout });
    }
  }
  return out.sort((a, b) => (a.val < b.val ? -1 : 1));
}

const vals = (els: Elem[]) => els.map((e) => e.val);

const run = requireFirewall("nftables action tests", ["nft"], { test });

describe.skipIf(!run)("nftables action in a network namespace", () => {
  let ns: Netns;
  const log = memoryLog();
  /** Every nft -f - script the actions ran, in order. */
  const scripts: string[] = [];

  beforeAll(async () => {
    ns = await Netns.create();
  });
  afterAll(async () => {
    await ns?.delete();
  });

  function make(jail: Partial<JailInfo> = {}, options: Record<string, unknown> = {}): Action {
    const exec = (argv: string[], opts?: ExecOptions) => {
      if (argv.includes("-f") && typeof opts?.stdin === "string") scripts.push(opts.stdin);
      return ns.exec(argv, opts);
    };
    return createAction(
      { name: "nftables", type: "nftables", options },
      { name: "sshd", port: "ssh", ...jail },
      { log, exec },
    );
  }

  test("start creates table, four sets and the input chain for the jail's ports", async () => {
    const a = make();
    await a.start();
    const text = await ns.out(["nft", "list", "table", "inet", "fail2ts"]);
    for (const s of ["f2t-sshd-v4", "f2t-sshd-v6", "f2t-sshd-v4net", "f2t-sshd-v6net"])
      expect(text).toContain(`set ${s} {`);
    const chain = await ns.out(["nft", "list", "chain", "inet", "fail2ts", "f2t-sshd"]);
    expect(chain).toContain("type filter hook input priority filter - 1; policy accept;");
    expect(chain).toContain("tcp dport 22 ip saddr @f2t-sshd-v4 counter packets 0 bytes 0 reject");
    expect(chain).toContain("tcp dport 22 ip6 saddr @f2t-sshd-v6");
    expect(await a.check!()).toBe(true);
    // start again: idempotent, and the chain is replaced, not doubled
    await a.start();
    const again = await ns.out(["nft", "list", "chain", "inet", "fail2ts", "f2t-sshd"]);
    expect(again.match(/reject/g)?.length).toBe(4);
  });

  test("3 v4 + 2 v6 in one batch are one transaction; read back with nft -j", async () => {
    const a = make();
    await a.start();
    const before = scripts.length;
    await a.ban([
      ev("192.0.2.1"),
      ev("192.0.2.2"),
      ev("198.51.100.7"),
      ev("2001:db8::1"),
      ev("2001:db8::beef"),
    ]);
    expect(scripts.length - before).toBe(1);
    expect(vals(await elements(ns, "f2t-sshd-v4"))).toEqual(["192.0.2.1", "192.0.2.2", "198.51.100.7"]);
    expect(vals(await elements(ns, "f2t-sshd-v6"))).toEqual(["2001:db8::1", "2001:db8::beef"]);
  });

  test("finite bans carry a kernel timeout, permanent ones none", async () => {
    const a = make();
    await a.ban([ev("192.0.2.10", { bantime: 3600 }), ev("192.0.2.11", { bantime: -1 })]);
    const els = await elements(ns, "f2t-sshd-v4");
    const t10 = els.find((e) => e.val === "192.0.2.10");
    const t11 = els.find((e) => e.val === "192.0.2.11");
    expect(t10?.timeout).toBeGreaterThanOrEqual(3598);
    expect(t10?.timeout).toBeLessThanOrEqual(3600);
    expect(t11).toEqual({ val: "192.0.2.11" });
  });

  test("the timeout is the time left of the ban, not the full bantime", async () => {
    const a = make();
    const now = Math.floor(Date.now() / 1000);
    await a.ban([ev("192.0.2.12", { time: now - 500, bantime: 600 })]);
    const t = (await elements(ns, "f2t-sshd-v4")).find((e) => e.val === "192.0.2.12");
    expect(t?.timeout).toBeGreaterThanOrEqual(98);
    expect(t?.timeout).toBeLessThanOrEqual(100);
    // a ban already over is not added at all
    await a.ban([ev("192.0.2.13", { time: now - 700, bantime: 600 })]);
    expect(vals(await elements(ns, "f2t-sshd-v4"))).not.toContain("192.0.2.13");
  });

  test("idempotent: ban twice, unban absent; a re-ban refreshes the timeout", async () => {
    const a = make();
    await a.ban([ev("192.0.2.20", { bantime: 100 })]);
    await a.ban([ev("192.0.2.20", { bantime: 5000 })]);
    const els = (await elements(ns, "f2t-sshd-v4")).filter((e) => e.val === "192.0.2.20");
    expect(els.length).toBe(1);
    expect(els[0]!.timeout).toBeGreaterThan(4990);
    await a.unban([ev("203.0.113.99"), ev("2001:db8::dead")]); // never banned
    await a.unban([ev("192.0.2.20")]);
    await a.unban([ev("192.0.2.20")]);
    expect(vals(await elements(ns, "f2t-sshd-v4"))).not.toContain("192.0.2.20");
  });

  test("unban removes exactly the given addresses", async () => {
    const a = make();
    await a.unban([ev("192.0.2.1"), ev("2001:db8::1")]);
    const v4 = vals(await elements(ns, "f2t-sshd-v4"));
    expect(v4).not.toContain("192.0.2.1");
    expect(v4).toContain("192.0.2.2");
    expect(vals(await elements(ns, "f2t-sshd-v6"))).toEqual(["2001:db8::beef"]);
  });

  test("update: unbans and bans of one tick are one transaction", async () => {
    const a = make();
    const before = scripts.length;
    await a.update!([ev("192.0.2.2")], [ev("192.0.2.30"), ev("192.0.2.2", { bantime: 60 })]);
    expect(scripts.length - before).toBe(1);
    const els = await elements(ns, "f2t-sshd-v4");
    expect(vals(els)).toContain("192.0.2.30");
    // unban then ban of the same address: present, with the new timeout
    expect(els.find((e) => e.val === "192.0.2.2")?.timeout).toBeLessThanOrEqual(60);
  });

  test("invalid addresses never reach nft (logged and skipped)", async () => {
    const a = make();
    await a.ban([
      ev("192.0.2.40"),
      ev("1.2.3.4 } ; flush ruleset ; add element inet fail2ts f2t-sshd-v4 { 9.9.9.9"),
    ]);
    expect(vals(await elements(ns, "f2t-sshd-v4"))).toContain("192.0.2.40");
    expect(log.lines.some((l) => l.startsWith("error:") && l.includes("invalid address"))).toBe(true);
    expect(await a.check!()).toBe(true);
  });

  test("networks go to the interval sets; overlaps do not fail the transaction", async () => {
    const a = make();
    await a.ban([ev("10.0.0.0/8"), ev("2001:db8:aaaa::/48")]);
    await a.ban([ev("10.1.0.0/16"), ev("192.0.2.41")]); // inside 10/8: already covered
    expect(vals(await elements(ns, "f2t-sshd-v4net"))).toEqual(["10.0.0.0/8"]);
    expect(vals(await elements(ns, "f2t-sshd-v6net"))).toEqual(["2001:db8:aaaa::/48"]);
    expect(vals(await elements(ns, "f2t-sshd-v4"))).toContain("192.0.2.41");
    await a.unban([ev("10.0.0.0/8"), ev("10.0.0.0/8"), ev("172.16.0.0/12")]);
    expect(await elements(ns, "f2t-sshd-v4net")).toEqual([]);
  });

  test("flush empties the jail's sets and keeps the structure", async () => {
    const a = make();
    await a.flush();
    for (const s of ["f2t-sshd-v4", "f2t-sshd-v6", "f2t-sshd-v4net", "f2t-sshd-v6net"]) {
      expect(await elements(ns, s)).toEqual([]);
    }
    expect(await a.check!()).toBe(true);
  });

  test("restore: 10 000 bans in one transaction replace what was there", async () => {
    const a = make();
    await a.ban([ev("203.0.113.50")]); // stale: not in the restored set
    const ips = v4s(10_000);
    const before = scripts.length;
    const t0 = performance.now();
    await a.restore!(ips.map((ip) => ev(ip, { restored: true })));
    const ms = performance.now() - t0;
    expect(scripts.length - before).toBe(1);
    const got = vals(await elements(ns, "f2t-sshd-v4"));
    expect(got.length).toBe(10_000);
    expect(got).not.toContain("203.0.113.50");
    expect(new Set(got)).toEqual(new Set(ips));
    expect(ms).toBeLessThan(2000);
  });

  test("allports: the chain matches every port", async () => {
    const a = createAction(
      { name: "nftables-allports", type: "nftables", options: { allports: true } },
      { name: "web", port: "80,443" },
      { log, exec: ns.exec },
    );
    await a.start();
    const chain = await ns.out(["nft", "list", "chain", "inet", "fail2ts", "f2t-web"]);
    expect(chain).toContain("meta l4proto tcp ip saddr @f2t-web-v4");
    expect(chain).not.toContain("dport");
    await a.stop();
  });

  test("port lists, ranges and several protocols", async () => {
    const a = createAction(
      { name: "nftables", type: "nftables", options: { blocktype: "drop" } },
      { name: "mix", port: "http,443,1000:2000", protocol: "tcp,udp" },
      { log, exec: ns.exec },
    );
    await a.start();
    const chain = await ns.out(["nft", "list", "chain", "inet", "fail2ts", "f2t-mix"]);
    expect(chain).toContain(
      "meta l4proto { tcp, udp } th dport { 80, 443, 1000-2000 } ip saddr @f2t-mix-v4 counter",
    );
    expect(chain).toContain("drop");
    await a.stop();
  });

  test("banprefix6 = 64 bans the /64 (masked lookup)", async () => {
    const a = createAction(
      { name: "nftables", type: "nftables", options: {} },
      { name: "p64", port: "22", banprefix6: 64 },
      { log, exec: ns.exec },
    );
    await a.start();
    await a.ban([
      ev("2001:db8:1:2:aaaa:bbbb:cccc:dddd", { jail: "p64" }),
      ev("2001:db8:1:2::5", { jail: "p64" }),
    ]);
    expect(vals(await elements(ns, "f2t-p64-v6"))).toEqual(["2001:db8:1:2::"]);
    const chain = await ns.out(["nft", "list", "chain", "inet", "fail2ts", "f2t-p64"]);
    expect(chain).toContain("ip6 saddr & ffff:ffff:ffff:ffff:: == @f2t-p64-v6");
    await a.unban([ev("2001:db8:1:2::77", { jail: "p64" })]); // any address of the /64 unbans it
    expect(await elements(ns, "f2t-p64-v6")).toEqual([]);
    await a.stop();
  });

  test("kernel timeouts expire bans without the daemon", async () => {
    const a = make();
    await a.ban([ev("192.0.2.60", { bantime: 1 })]);
    expect(vals(await elements(ns, "f2t-sshd-v4"))).toContain("192.0.2.60");
    await Bun.sleep(2200);
    expect(vals(await elements(ns, "f2t-sshd-v4"))).not.toContain("192.0.2.60");
  });

  test("packets: a banned source is rejected on the jail's port, others pass (v4 and a v6 /64)", async () => {
    await ns.out(["ip", "addr", "add", "fd00:1::2/128", "dev", "lo"]);
    await ns.out(["ip", "addr", "add", "fd00:2::2/128", "dev", "lo"]);
    const listener = listenTcp(ns, 2222);
    try {
      await listener.ready;
      const a = createAction(
        { name: "nftables", type: "nftables", options: {} },
        { name: "pkt", port: "2222", banprefix6: 64 },
        { log, exec: ns.exec },
      );
      await a.start();
      expect(await probeTcp(ns, "127.0.0.1", 2222, "127.0.0.2")).toBe("open");
      await a.ban([ev("127.0.0.2", { jail: "pkt" }), ev("fd00:1::99", { jail: "pkt" })]);
      expect(await probeTcp(ns, "127.0.0.1", 2222, "127.0.0.2")).toBe("refused");
      expect(await probeTcp(ns, "127.0.0.1", 2222, "127.0.0.3")).toBe("open");
      expect(await probeTcp(ns, "fd00:2::2", 2222, "fd00:1::2")).toBe("refused"); // same /64 as fd00:1::99
      expect(await probeTcp(ns, "fd00:1::2", 2222, "fd00:2::2")).toBe("open");
      await a.unban([ev("127.0.0.2", { jail: "pkt" })]);
      expect(await probeTcp(ns, "127.0.0.1", 2222, "127.0.0.2")).toBe("open");
      await a.stop();
    } finally {
      listener.stop();
    }
  });

  test("check() notices a flushed ruleset; a failing nft names its stderr", async () => {
    const a = make();
    await ns.out(["nft", "flush", "ruleset"]);
    expect(await a.check!()).toBe(false);
    const err = await a.ban([ev("192.0.2.70")]).catch((e) => e);
    expect(err).toBeInstanceOf(Fail2tsError);
    expect((err as Fail2tsError).code).toBe("action");
    expect((err as Error).message).toMatch(/^nftables ban: nft exited 1: .*No such file or directory/s);
    await a.start();
    expect(await a.check!()).toBe(true);
  });

  test("a missing binary is an action error with exit 127", async () => {
    const a = createAction(
      { name: "nftables", type: "nftables", options: { nft: "/nonexistent/nft" } },
      { name: "sshd" },
      { log, exec: ns.exec },
    );
    const err = await a.start().catch((e) => e);
    expect(err).toBeInstanceOf(Fail2tsError);
    expect((err as Error).message).toMatch(/^nftables start: \/nonexistent\/nft exited \d+/);
  });

  test("runner: 1 000 bans of one tick are one transaction; a flushed ruleset heals with a re-sync", async () => {
    const a = make({ name: "run" });
    const runner = new ActionRunner(a, log, { backoffMinMs: 20, backoffMaxMs: 100 });
    try {
      const ips = v4s(1000, 172);
      const before = scripts.length;
      for (const ip of ips) runner.ban(ev(ip, { jail: "run" }));
      await runner.idle();
      expect(scripts.length - before).toBe(2); // start + one ban transaction
      expect((await elements(ns, "f2t-run-v4")).length).toBe(1000);
      // someone flushes the ruleset: the next ban fails, the runner starts again and re-applies
      await ns.out(["nft", "flush", "ruleset"]);
      const errors = log.lines.length;
      runner.ban(ev("192.0.2.200", { jail: "run" }));
      await runner.idle();
      const failed = log.lines.slice(errors).filter((l) => l.startsWith("error:"));
      expect(failed[0]).toMatch(/nftables ban: nft exited 1: .*No such file or directory/s);
      expect(runner.lastError).toBeUndefined();
      const back = vals(await elements(ns, "f2t-run-v4"));
      expect(back.length).toBe(1001);
      expect(back).toContain("192.0.2.200");
    } finally {
      await runner.close({ stop: true });
    }
    expect(await ns.out(["nft", "list", "tables"])).not.toContain("fail2ts");
  });

  test("stop removes the jail's objects, and the table when it was the last jail", async () => {
    const a = make();
    const b = createAction(
      { name: "nftables", type: "nftables", options: {} },
      { name: "other" },
      { log, exec: ns.exec },
    );
    await a.start();
    await b.start();
    await a.stop();
    const left = await ns.out(["nft", "list", "table", "inet", "fail2ts"]);
    expect(left).not.toContain("f2t-sshd");
    expect(left).toContain("f2t-other");
    await a.stop(); // idempotent
    await b.stop();
    const tables = await ns.out(["nft", "list", "tables"]);
    expect(tables).not.toContain("fail2ts");
  });

  test("removeNftTable drops every jail's objects at once, idempotently", async () => {
    await make().start();
    await createAction(
      { name: "nftables", type: "nftables", options: {} },
      { name: "web" },
      { log, exec: ns.exec },
    ).start();
    await removeNftTable(ns.exec);
    await removeNftTable(ns.exec);
    expect(await ns.out(["nft", "list", "tables"])).not.toContain("fail2ts");
  });
});
