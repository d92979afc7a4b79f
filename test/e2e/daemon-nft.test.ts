/**
 * The daemon with the real nftables action, inside a network namespace this test creates and
 * deletes (never the host's firewall): bans land in the jail's sets; after kill -9 and a flushed
 * ruleset (a reboot, as far as the firewall knows) the next start restores them in one go.
 * Runs only as root with `ip` and `nft` present.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { spawnSync } from "bun";
import { binary, Env, failures, until } from "./daemon-helpers.ts";

const NS = `f2ts-e2e-${process.pid}`;
const canRun =
  process.getuid?.() === 0 &&
  existsSync("/usr/sbin/nft") &&
  existsSync("/usr/sbin/ip") &&
  !process.env.FAIL2TS_NO_NETNS;

function inNs(...argv: string[]): { code: number; out: string } {
  const r = spawnSync(["ip", "netns", "exec", NS, ...argv], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

/** Addresses in the jail's sets, from `nft -j list table inet fail2ts`. */
function setElements(): string[] {
  const r = inNs("nft", "-j", "list", "table", "inet", "fail2ts");
  if (r.code !== 0) return [];
  const out: string[] = [];
  for (const item of JSON.parse(r.out).nftables ?? []) {
    for (const e of item.set?.elem ?? []) {
      const v = typeof e === "object" && e !== null && "elem" in e ? e.elem.val : e;
      out.push(typeof v === "object" && v !== null && "prefix" in v ? v.prefix.addr : String(v));
    }
  }
  return out.sort();
}

beforeAll(() => {
  if (!canRun) return;
  binary();
  spawnSync(["ip", "netns", "add", NS]);
}, 120000);
afterAll(() => {
  if (canRun) spawnSync(["ip", "netns", "delete", NS]);
});

test.skipIf(!canRun)(
  "nftables in a namespace: bans in the sets; kill -9 + flushed ruleset → restored at start",
  async () => {
    const e = new Env({ action: '["nftables"]', jail: 'port = "ssh"' });
    try {
      const start = async () => {
        e.proc = Bun.spawn(["ip", "netns", "exec", NS, binary(), "run", "-c", e.conf], {
          cwd: e.dir,
          stdin: "ignore",
          stdout: "pipe",
          stderr: "pipe",
        });
        const p = e.proc;
        await until(
          async () => {
            if (p.exitCode !== null)
              throw new Error(`daemon exited ${p.exitCode}: ${await new Response(p.stderr).text()}`);
            try {
              return ((await e.request({ cmd: "status" })) as { jails: unknown[] }).jails.length > 0;
            } catch {
              return false;
            }
          },
          10000,
          "start",
        );
      };
      await start();
      expect(setElements()).toEqual([]); // started on demand: nothing before the first ban
      e.append(failures("203.0.113.50", 3));
      await until(() => setElements().includes("203.0.113.50"), 5000, "the ban in the set");
      const r = e.cli("ban", "-c", e.conf, "sshd", "192.0.2.60", "2001:db8::60");
      expect(r.code).toBe(0);
      await until(() => setElements().length === 3, 5000, "3 elements");
      expect(setElements()).toEqual(["192.0.2.60", "2001:db8::60", "203.0.113.50"]);
      await e.kill9();
      inNs("nft", "flush", "ruleset");
      expect(setElements()).toEqual([]);
      await start();
      await until(() => setElements().length === 3, 5000, "restored");
      expect(setElements()).toEqual(["192.0.2.60", "2001:db8::60", "203.0.113.50"]);
      expect(e.logText()).toContain("jail=sshd: 3 bans restored");
      expect(e.cli("unban", "-c", e.conf, "192.0.2.60").code).toBe(0);
      await until(() => !setElements().includes("192.0.2.60"), 5000, "unban");
      expect(await e.stop()).toBe(0);
      expect(setElements()).toEqual(["2001:db8::60", "203.0.113.50"]); // stop keeps the bans
    } finally {
      await e.cleanup();
    }
  },
  40000,
);
