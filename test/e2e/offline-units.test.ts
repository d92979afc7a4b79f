/**
 * The pieces of `ban`/`unban`/`flush` by hand that need no firewall: address lists, the control
 * protocol's flush and force, the store's clearBans and read-only mode, and the direct path's
 * dry run against a config whose actions only write files (no root needed).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { offlineBans, parseAddresses, splitAddressList } from "../../src/cli/offline.ts";
import { parseRequest } from "../../src/server/protocol.ts";
import { Store } from "../../src/store/store.ts";

describe("address lists", () => {
  test("split on blanks, newlines and commas; # comments", () => {
    expect(splitAddressList("# list\n192.0.2.1 192.0.2.2,192.0.2.3\n\n  2001:db8::1 # me\r\n")).toEqual([
      "192.0.2.1",
      "192.0.2.2",
      "192.0.2.3",
      "2001:db8::1",
    ]);
  });
  test("normalised and de-duplicated; bad ones named", () => {
    expect(parseAddresses(["2001:DB8:0::1", "::ffff:192.0.2.1", "192.0.2.1", " "])).toEqual([
      "2001:db8::1",
      "192.0.2.1",
    ]);
    expect(() => parseAddresses(["192.0.2.1", "300.1.1.1", "$(reboot)", "a", "b", "c", "d"])).toThrow(
      'not an IP address: "300.1.1.1", "$(reboot)", "a", "b", "c" and 1 more',
    );
  });
});

describe("protocol", () => {
  test("flush with and without a jail; ban with force", () => {
    expect(parseRequest('{"cmd":"flush"}')).toEqual({ cmd: "flush" });
    expect(parseRequest('{"cmd":"flush","jail":"sshd"}')).toEqual({ cmd: "flush", jail: "sshd" });
    expect(() => parseRequest('{"cmd":"flush","jail":3}')).toThrow("jail: expected a string");
    expect(parseRequest('{"cmd":"ban","jail":"sshd","ips":["192.0.2.1"],"force":true}')).toEqual({
      cmd: "ban",
      jail: "sshd",
      ips: ["192.0.2.1"],
      force: true,
    });
    expect(parseRequest('{"cmd":"ban","jail":"sshd","ips":[],"force":"yes"}')).toEqual({
      cmd: "ban",
      jail: "sshd",
      ips: [],
    });
  });
});

describe("store", () => {
  test("clearBans keeps the history; read-only opens write nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "f2t-offline-"));
    try {
      const path = join(dir, "db.sqlite");
      const s = new Store(path);
      const ban = (jail: string, ip: string) => ({
        jail,
        ip,
        time: 1000,
        bantime: 600,
        count: 0,
        failures: 0,
        matches: [],
      });
      s.commit({ bans: [ban("a", "192.0.2.1"), ban("b", "192.0.2.2"), ban("b", "192.0.2.3")] });
      expect(s.clearBans(["b"])).toBe(2);
      expect(s.bans().map((b) => b.ip)).toEqual(["192.0.2.1"]);
      expect(s.banCount("192.0.2.2", "b", false)).toBe(1);
      s.close();
      const ro = new Store(path, { readonly: true });
      expect(ro.bans()).toHaveLength(1);
      expect(() => ro.commit({ bans: [ban("a", "192.0.2.9")] })).toThrow();
      ro.close();
      expect(() => new Store(join(dir, "none.sqlite"), { readonly: true })).toThrow();
      expect(existsSync(join(dir, "none.sqlite"))).toBe(false);
      const w = new Store(path);
      expect(w.clearBans()).toBe(1);
      w.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("direct path without a firewall (hosts.deny and a command action)", () => {
  function setup() {
    const dir = mkdtempSync(join(tmpdir(), "f2t-offline-"));
    const deny = join(dir, "hosts.deny");
    const out = join(dir, "calls.txt");
    writeFileSync(deny, "ALL: 198.51.100.1\n");
    writeFileSync(join(dir, "auth.log"), "");
    const conf = join(dir, "fail2ts.toml");
    const cmd = (w: string) =>
      JSON.stringify(["/bin/sh", "-c", `printf '${w} %s\\n' "$1" >> "$2"`, "sh", "<ip>", out]);
    writeFileSync(
      conf,
      `[defaults]\nbantime = "10m"\nignoreip = ["127.0.0.1/8", "192.0.2.200"]\nignoreself = false\n\n[jails.sshd]\nfilter = "sshd"\nlogpath = ["auth.log"]\naction = ["deny", "log"]\n\n[actions.deny]\ntype = "hostsdeny"\npath = ${JSON.stringify(deny)}\n\n[actions.log]\ntype = "command"\nban = ${cmd("ban")}\nunban = ${cmd("unban")}\n\n[server]\nsocket = "run/s.sock"\ndatabase = "f.db"\nlogtarget = "f.log"\n`,
    );
    return { dir, deny, out, conf, db: join(dir, "f.db") };
  }

  test("ban, dry run, unban, flush", async () => {
    const t = setup();
    try {
      const dry = await offlineBans.ban(t.conf, "sshd", ["192.0.2.1"], { dryRun: true });
      expect(dry.banned).toEqual(["192.0.2.1"]);
      expect(dry.plan.join("\n")).toContain("sshd/deny: deny ban: would write");
      expect(existsSync(t.db)).toBe(false);
      expect(existsSync(t.out)).toBe(false);
      expect(readFileSync(t.deny, "utf8")).toBe("ALL: 198.51.100.1\n");

      const r = await offlineBans.ban(t.conf, "sshd", ["192.0.2.1", "192.0.2.200"], {});
      expect(r).toMatchObject({ banned: ["192.0.2.1"], already: [], ignored: ["192.0.2.200"], bantime: 600 });
      expect(r.actions.every((a) => a.ok)).toBe(true);
      expect(readFileSync(t.out, "utf8")).toBe("ban 192.0.2.1\n");
      expect(readFileSync(t.deny, "utf8")).toBe("ALL: 198.51.100.1\nALL: 192.0.2.1 # fail2ts:sshd\n");
      // again: already banned, applied again as restored (the firewall may have lost it: a reboot);
      // a command action re-applies restored bans by default (restored = true), a mail would not
      const again = await offlineBans.ban(t.conf, "sshd", ["192.0.2.1"], {});
      expect(again).toMatchObject({ banned: [], already: ["192.0.2.1"] });
      expect(readFileSync(t.out, "utf8")).toBe("ban 192.0.2.1\nban 192.0.2.1\n");
      expect(readFileSync(join(t.dir, "f.log"), "utf8")).toMatch(
        /INFO Ban 192\.0\.2\.1 jail=sshd failures=0 bantime=600s\n$/,
      );

      const u = await offlineBans.unban(t.conf, ["192.0.2.1", "192.0.2.5"], undefined, {});
      expect(u).toMatchObject({ unbanned: ["192.0.2.1"], missing: ["192.0.2.5"], jails: ["sshd"] });
      expect(readFileSync(t.out, "utf8")).toBe("ban 192.0.2.1\nban 192.0.2.1\nunban 192.0.2.1\n");
      expect(readFileSync(t.deny, "utf8")).toBe("ALL: 198.51.100.1\n");

      await offlineBans.ban(t.conf, "sshd", ["192.0.2.2"], {});
      const f = await offlineBans.flush(t.conf, undefined, {});
      expect(f).toMatchObject({ jails: ["sshd"], unbanned: 1, tables: [], errors: [] });
      expect(readFileSync(t.deny, "utf8")).toBe("ALL: 198.51.100.1\n");
      const s = new Store(t.db, { readonly: true });
      expect(s.bans()).toEqual([]);
      expect(s.banCount("192.0.2.2", "sshd", false)).toBe(1);
      s.close();
      await expect(offlineBans.ban(t.conf, "nojail", ["192.0.2.1"])).rejects.toThrow(
        'no jail named "nojail"',
      );
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });

  test("unban and flush with no database create none", async () => {
    const t = setup();
    try {
      expect((await offlineBans.unban(t.conf, "all", undefined, {})).unbanned).toEqual([]);
      expect((await offlineBans.flush(t.conf, "sshd", {})).unbanned).toBe(0);
      expect(existsSync(t.db)).toBe(false);
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });
});
