/**
 * ipset + iptables/ip6tables and plain iptables against the real tools inside a network namespace
 * created for this file (never the host's firewall).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ExecOptions } from "../src/action/exec.ts";
import { createAction } from "../src/action/registry.ts";
import type { Action, JailInfo } from "../src/action/types.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { ev, listenTcp, memoryLog, Netns, probeTcp, requireFirewall, v4s } from "./helpers/netns.ts";

const run = requireFirewall("iptables/ipset action tests", ["iptables", "ip6tables", "ipset"], { test });

describe.skipIf(!run)("iptables and ipset actions in a network namespace", () => {
  let ns: Netns;
  const log = memoryLog();
  const calls: string[][] = [];

  beforeAll(async () => {
    ns = await Netns.create();
  });
  afterAll(async () => {
    await ns?.delete();
  });

  function make(
    type: "ipset" | "iptables",
    jail: Partial<JailInfo> = {},
    options: Record<string, unknown> = {},
  ): Action {
    const exec = (argv: string[], opts?: ExecOptions) => {
      calls.push(argv);
      return ns.exec(argv, opts);
    };
    return createAction({ name: type, type, options }, { name: "sshd", port: "ssh", ...jail }, { log, exec });
  }

  /** `ipset save NAME` → address → timeout (0 = permanent). */
  async function members(set: string): Promise<Map<string, number>> {
    const out = await ns.out(["ipset", "save", set]);
    const m = new Map<string, number>();
    for (const line of out.split("\n")) {
      const r = /^add \S+ (\S+)(?: timeout (\d+))?/.exec(line);
      if (r) m.set(r[1]!, Number(r[2] ?? 0));
    }
    return m;
  }

  /** Sources of the rules of our plain chain, in order. */
  async function sources(bin: "iptables" | "ip6tables", chain = "f2t-sshd"): Promise<string[]> {
    const out = await ns.out([bin, "-w", "-S", chain]);
    return [...out.matchAll(/ -s (\S+) /g)].map((m) => m[1]!);
  }

  describe("ipset mode", () => {
    test("start: hash:net sets with timeouts, chains, jumps for the jail's ports", async () => {
      const a = make("ipset");
      await a.start();
      await a.start(); // idempotent
      const hdr = await ns.out(["ipset", "list", "-t", "f2t-sshd-v4"]);
      expect(hdr).toContain("Type: hash:net");
      expect(hdr).toContain("family inet ");
      expect(hdr).toContain("timeout 0");
      expect(await ns.out(["ipset", "list", "-t", "f2t-sshd-v6"])).toContain("family inet6");
      const input = await ns.out(["iptables", "-w", "-S", "INPUT"]);
      expect(input.match(/-j f2t-sshd/g)?.length).toBe(1);
      expect(input).toContain("-A INPUT -p tcp -m multiport --dports 22 -j f2t-sshd");
      expect(await ns.out(["ip6tables", "-w", "-S", "f2t-sshd"])).toContain(
        "-A f2t-sshd -m set --match-set f2t-sshd-v6 src -j REJECT --reject-with icmp6-port-unreachable",
      );
      expect(await a.check!()).toBe(true);
    });

    test("ban 3 v4 + 2 v6 in one ipset restore, with timeouts; permanent is 0", async () => {
      const a = make("ipset");
      const before = calls.length;
      await a.ban([
        ev("192.0.2.1"),
        ev("192.0.2.2", { bantime: -1 }),
        ev("198.51.100.7"),
        ev("2001:db8::1"),
        ev("2001:db8::beef"),
      ]);
      expect(calls.length - before).toBe(1);
      expect(calls[calls.length - 1]).toEqual(["ipset", "restore", "-exist"]);
      const v4 = await members("f2t-sshd-v4");
      expect([...v4.keys()].sort()).toEqual(["192.0.2.1", "192.0.2.2", "198.51.100.7"]);
      expect(v4.get("192.0.2.1")).toBeGreaterThan(590);
      expect(v4.get("192.0.2.2")).toBe(0);
      expect([...(await members("f2t-sshd-v6")).keys()].sort()).toEqual(["2001:db8::1", "2001:db8::beef"]);
    });

    test("idempotent; re-ban updates the timeout; unban of absent is fine", async () => {
      const a = make("ipset");
      await a.ban([ev("192.0.2.1", { bantime: 5000 })]);
      expect((await members("f2t-sshd-v4")).get("192.0.2.1")).toBeGreaterThan(4990);
      await a.unban([ev("203.0.113.1"), ev("2001:db8::99")]);
      await a.unban([ev("192.0.2.1"), ev("2001:db8::1")]);
      await a.unban([ev("192.0.2.1")]);
      expect((await members("f2t-sshd-v4")).has("192.0.2.1")).toBe(false);
      expect([...(await members("f2t-sshd-v6")).keys()]).toEqual(["2001:db8::beef"]);
    });

    test("bans longer than ipset's maximum timeout are permanent in the set", async () => {
      const a = make("ipset");
      await a.ban([ev("192.0.2.9", { bantime: 90 * 86400 })]);
      expect((await members("f2t-sshd-v4")).get("192.0.2.9")).toBe(0);
    });

    test("banprefix6 = 64 stores the /64", async () => {
      const a = make("ipset", { banprefix6: 64 });
      await a.ban([ev("2001:db8:5:6:7:8:9:a")]);
      expect((await members("f2t-sshd-v6")).has("2001:db8:5:6::/64")).toBe(true);
      await a.unban([ev("2001:db8:5:6::1")]);
      expect((await members("f2t-sshd-v6")).has("2001:db8:5:6::/64")).toBe(false);
    });

    test("restore 10 000 by swapping a filled set in (one ipset restore)", async () => {
      const a = make("ipset");
      await a.ban([ev("203.0.113.50")]);
      const ips = v4s(10_000);
      const before = calls.length;
      await a.restore!(ips.map((ip) => ev(ip)));
      expect(calls.length - before).toBe(1);
      const m = await members("f2t-sshd-v4");
      expect(m.size).toBe(10_000);
      expect(m.has("203.0.113.50")).toBe(false);
      expect((await ns.out(["ipset", "list", "-n"])).split("\n")).not.toContain("f2t-sshd-t4");
      expect(await a.check!()).toBe(true);
    });

    test("flush empties both sets", async () => {
      const a = make("ipset");
      await a.flush();
      expect((await members("f2t-sshd-v4")).size).toBe(0);
      expect((await members("f2t-sshd-v6")).size).toBe(0);
    });

    test("packets: banned source rejected on the jail's port", async () => {
      const listener = listenTcp(ns, 2223);
      try {
        await listener.ready;
        const a = make("ipset", { name: "pkt", port: "2223" });
        await a.start();
        await a.ban([ev("127.0.0.2", { jail: "pkt" })]);
        expect(await probeTcp(ns, "127.0.0.1", 2223, "127.0.0.2")).toBe("refused");
        expect(await probeTcp(ns, "127.0.0.1", 2223, "127.0.0.3")).toBe("open");
        await a.stop();
        expect(await probeTcp(ns, "127.0.0.1", 2223, "127.0.0.2")).toBe("open");
      } finally {
        listener.stop();
      }
    });

    test("a changed port spec replaces the old jump on start", async () => {
      await make("ipset", { port: "2200" }).start();
      const input = await ns.out(["iptables", "-w", "-S", "INPUT"]);
      expect(input).toContain("--dports 2200 -j f2t-sshd");
      expect(input).not.toContain("--dports 22 -j f2t-sshd");
    });

    test("stop removes jumps, chains and sets; twice is fine", async () => {
      const a = make("ipset", { port: "2200" });
      await a.stop();
      await a.stop();
      expect(await ns.out(["iptables", "-w", "-S", "INPUT"])).not.toContain("f2t-sshd");
      expect(await ns.out(["ip6tables", "-w", "-S", "INPUT"])).not.toContain("f2t-sshd");
      expect((await ns.out(["ipset", "list", "-n"])).trim()).toBe("");
      expect(await a.check!()).toBe(false);
    });
  });

  describe("plain iptables mode", () => {
    test("start creates per-family chains ending in RETURN and the jumps", async () => {
      const a = make("iptables");
      await a.start();
      await a.start();
      expect(await ns.out(["iptables", "-w", "-S", "f2t-sshd"])).toContain("-A f2t-sshd -j RETURN");
      expect(await ns.out(["ip6tables", "-w", "-S", "f2t-sshd"])).toContain("-A f2t-sshd -j RETURN");
      expect((await ns.out(["ip6tables", "-w", "-S", "INPUT"])).match(/-j f2t-sshd/g)?.length).toBe(1);
    });

    test("a rule per address, v4 and v6, no duplicates; unban removes only those", async () => {
      const a = make("iptables");
      await a.ban([
        ev("192.0.2.1"),
        ev("192.0.2.2"),
        ev("198.51.100.7"),
        ev("2001:db8::1"),
        ev("2001:db8::beef"),
      ]);
      await a.ban([ev("192.0.2.1")]);
      expect((await sources("iptables")).sort()).toEqual(["192.0.2.1/32", "192.0.2.2/32", "198.51.100.7/32"]);
      expect((await sources("ip6tables")).sort()).toEqual(["2001:db8::1/128", "2001:db8::beef/128"]);
      await a.unban([ev("192.0.2.2"), ev("203.0.113.9"), ev("2001:db8::1")]);
      expect((await sources("iptables")).sort()).toEqual(["192.0.2.1/32", "198.51.100.7/32"]);
      expect(await sources("ip6tables")).toEqual(["2001:db8::beef/128"]);
      const rules = await ns.out(["iptables", "-w", "-S", "f2t-sshd"]);
      expect(rules).toContain("-A f2t-sshd -s 192.0.2.1/32 -j REJECT --reject-with icmp-port-unreachable");
      expect(rules.trim().endsWith("-A f2t-sshd -j RETURN")).toBe(true);
    });

    test("batches are one iptables-restore per family", async () => {
      const a = make("iptables");
      const before = calls.length;
      await a.ban(v4s(200, 11).map((ip) => ev(ip)));
      const used = calls.slice(before).map((c) => c[0]);
      expect(used.filter((b) => b === "iptables-restore").length).toBe(1);
      expect((await sources("iptables")).length).toBe(202);
    });

    test("a big unban batch rewrites the chain (no quadratic -D), keeping the rest", async () => {
      const a = make("iptables");
      const ips = v4s(2000, 12);
      await a.ban(ips.map((ip) => ev(ip)));
      const before = (await sources("iptables")).length;
      const t0 = performance.now();
      await a.unban(ips.slice(0, 1500).map((ip) => ev(ip)));
      expect(performance.now() - t0).toBeLessThan(2000);
      const left = await sources("iptables");
      expect(left.length).toBe(before - 1500);
      expect(left).toContain(`${ips[1999]}/32`);
      expect(left).not.toContain(`${ips[0]}/32`);
      expect(
        (await ns.out(["iptables", "-w", "-S", "f2t-sshd"])).trim().endsWith("-A f2t-sshd -j RETURN"),
      ).toBe(true);
    });

    test("restore rewrites the chain atomically with exactly the batch", async () => {
      const a = make("iptables", { banprefix6: 64 });
      await a.restore!([ev("192.0.2.77"), ev("2001:db8:9:9::1")]);
      expect(await sources("iptables")).toEqual(["192.0.2.77/32"]);
      expect(await sources("ip6tables")).toEqual(["2001:db8:9:9::/64"]);
    });

    test("flush leaves only RETURN; stop removes everything", async () => {
      const a = make("iptables");
      await a.flush();
      expect(await sources("iptables")).toEqual([]);
      expect(await ns.out(["iptables", "-w", "-S", "f2t-sshd"])).toContain("-j RETURN");
      await a.stop();
      await a.stop();
      expect((await ns.run(["iptables", "-w", "-S", "f2t-sshd"])).code).not.toBe(0);
      expect(await ns.out(["iptables", "-w", "-S", "INPUT"])).not.toContain("f2t-sshd");
    });

    test("packets: a plain rule rejects the banned source only", async () => {
      const listener = listenTcp(ns, 2224);
      try {
        await listener.ready;
        const a = make("iptables", { name: "pkt2", port: "2224" });
        await a.start();
        await a.ban([ev("127.0.0.2", { jail: "pkt2" })]);
        expect(await probeTcp(ns, "127.0.0.1", 2224, "127.0.0.2")).toBe("refused");
        expect(await probeTcp(ns, "127.0.0.1", 2224, "127.0.0.3")).toBe("open");
        await a.unban([ev("127.0.0.2", { jail: "pkt2" })]);
        expect(await probeTcp(ns, "127.0.0.1", 2224, "127.0.0.2")).toBe("open");
        await a.stop();
      } finally {
        listener.stop();
      }
    });

    test("ban on a removed chain fails with the tool's error", async () => {
      const a = make("iptables");
      const err = await a.ban([ev("192.0.2.5")]).catch((e) => e);
      expect(err).toBeInstanceOf(Fail2tsError);
      expect((err as Error).message).toContain("iptables ban: chain f2t-sshd is missing");
    });
  });

  test("jail names too long for ipset/iptables are refused at creation", () => {
    expect(() => make("ipset", { name: "a-very-long-jail-name-indeed-x" })).toThrow(/needs 1-24/);
  });
});
