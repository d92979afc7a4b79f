/**
 * `fail2ts ban` / `unban` / `flush` by hand, with and without a daemon, against real nftables and
 * a hosts.deny file — every firewall command runs inside a network namespace this test creates
 * and deletes (the binary itself runs as `ip netns exec NS fail2ts …`), never on the host's.
 * Runs only as root with `ip` and `nft` present.
 */
import { Database } from "bun:sqlite";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "bun";
import { deleteAllNetns, Netns, requireFirewall, v4s } from "../helpers/netns.ts";
import { binary, Env, type EnvOptions, until } from "./daemon-helpers.ts";

const canRun = requireFirewall("offline ban/unban/flush", ["nft"], { test }) && !process.env.FAIL2TS_NO_NETNS;

let ns: Netns;
const envs: Env[] = [];

beforeAll(async () => {
  if (!canRun) return;
  binary();
  ns = await Netns.create();
}, 120000);
afterEach(async () => {
  for (const e of envs.splice(0)) await e.cleanup();
  if (canRun) await ns.run(["nft", "flush", "ruleset"]);
});
afterAll(async () => {
  if (canRun) await deleteAllNetns();
});

const FOREIGN = "sshd: ALL EXCEPT 10.0.0.1\n# the admin's own line\nALL: 198.51.100.1\n";

/** A config with nftables and hosts.deny (in the temp dir, with lines that are not ours). */
function env(opts: EnvOptions = {}): Env & { deny: string } {
  const e = new Env({ action: '["nftables", "deny"]', jail: 'port = "ssh"', ...opts }) as Env & {
    deny: string;
  };
  e.deny = join(e.dir, "hosts.deny");
  writeFileSync(e.deny, FOREIGN);
  e.writeConfig({
    action: '["nftables", "deny"]',
    jail: 'port = "ssh"',
    ...opts,
    extra: `[actions.deny]\ntype = "hostsdeny"\npath = ${JSON.stringify(e.deny)}\n${opts.extra ?? ""}`,
  });
  envs.push(e);
  return e;
}

interface Out {
  code: number;
  out: string;
  err: string;
}

/** The CLI inside the namespace. */
function cli(e: Env, args: string[], stdin?: string): Out {
  const r = spawnSync(["ip", "netns", "exec", ns.name, binary(), ...args, "-c", e.conf], {
    cwd: e.dir,
    stdin: stdin !== undefined ? new Blob([stdin]) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1", FAIL2TS_DEBUG: "" },
  });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** The daemon inside the namespace, until its jails are active. */
async function start(e: Env): Promise<void> {
  e.proc = Bun.spawn(["ip", "netns", "exec", ns.name, binary(), "run", "-c", e.conf], {
    cwd: e.dir,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const p = e.proc;
  await until(
    async () => {
      if (p.exitCode !== null)
        throw new Error(`daemon exited ${p.exitCode}: ${await new Response(p.stderr).text()}${e.logText()}`);
      try {
        return ((await e.request({ cmd: "status" })) as { jails: unknown[] }).jails.length > 0;
      } catch {
        return false;
      }
    },
    10000,
    "the daemon to start",
  );
}

/** Elements of one set (`nft -j list set`), sorted; null when the set (or table) does not exist. */
async function setElems(set: string, table = "fail2ts"): Promise<string[] | null> {
  const r = await ns.run(["nft", "-j", "list", "set", "inet", table, set]);
  if (r.code !== 0) return null;
  const out: string[] = [];
  for (const item of JSON.parse(r.stdout).nftables ?? []) {
    for (const el of item.set?.elem ?? []) {
      const v = typeof el === "object" && el !== null && "elem" in el ? el.elem.val : el;
      out.push(
        typeof v === "object" && v !== null && "prefix" in v ? `${v.prefix.addr}/${v.prefix.len}` : String(v),
      );
    }
  }
  return out.sort();
}

async function elems(jail = "sshd"): Promise<string[]> {
  return [...((await setElems(`f2t-${jail}-v4`)) ?? []), ...((await setElems(`f2t-${jail}-v6`)) ?? [])];
}

/** The namespace's ruleset, without the ticking `expires` of set elements. */
async function ruleset(): Promise<string> {
  return (await ns.run(["nft", "list", "ruleset"])).stdout.replace(/ expires \S+/g, "");
}

interface Row {
  jail: string;
  ip: string;
  time: number;
  bantime: number;
  count: number;
}

function dbRows(e: Env, table: "bans" | "history" = "bans"): Row[] {
  const db = new Database(e.db, { readonly: true });
  try {
    return db.query(`SELECT * FROM ${table} ORDER BY jail, ip, time`).all() as Row[];
  } finally {
    db.close();
  }
}

/** Our lines in hosts.deny. */
function ourLines(e: Env & { deny: string }): string[] {
  return readFileSync(e.deny, "utf8")
    .split("\n")
    .filter((l) => l.includes("# fail2ts:"));
}

describe.skipIf(!canRun)("no daemon: applied directly, recorded for `run`", () => {
  test("ban v4 + v6 → nft sets and the DB; run restores them and lists them; unban removes", async () => {
    const e = env();
    const t0 = Date.now() / 1000;
    const b = cli(e, ["ban", "sshd", "192.0.2.7", "2001:DB8::7"]);
    expect(b.err).toBe("");
    expect(b.code).toBe(0);
    expect(b.out).toStartWith("banned in sshd: 192.0.2.7 2001:db8::7\n");
    expect(b.out).toContain("no daemon running: applied with nftables, deny");
    expect(await setElems("f2t-sshd-v4")).toEqual(["192.0.2.7"]);
    expect(await setElems("f2t-sshd-v6")).toEqual(["2001:db8::7"]);
    // kernel timeouts: the bans end even if no daemon ever runs
    const j = JSON.parse(
      (await ns.run(["nft", "-j", "list", "set", "inet", "fail2ts", "f2t-sshd-v4"])).stdout,
    );
    const el = j.nftables.find((x: { set?: unknown }) => x.set).set.elem[0].elem;
    expect(el.timeout).toBeGreaterThan(590);
    expect(el.timeout).toBeLessThanOrEqual(600);
    expect(ourLines(e)).toEqual(["ALL: 192.0.2.7 # fail2ts:sshd", "ALL: [2001:db8::7] # fail2ts:sshd"]);
    const rows = dbRows(e);
    expect(rows.map((r) => [r.jail, r.ip, r.bantime, r.count])).toEqual([
      ["sshd", "192.0.2.7", 600, 0],
      ["sshd", "2001:db8::7", 600, 0],
    ]);
    expect(rows[0]!.time).toBeGreaterThanOrEqual(t0 - 1);
    expect(dbRows(e, "history")).toHaveLength(2);
    expect(e.logText()).toMatch(/INFO Ban 192\.0\.2\.7 jail=sshd failures=0 bantime=600s$/m);

    // a reboot as far as the firewall knows; then the daemon starts and restores from the DB
    await ns.run(["nft", "flush", "ruleset"]);
    await start(e);
    await until(async () => (await elems()).length === 2, 5000, "restored");
    expect(await elems()).toEqual(["192.0.2.7", "2001:db8::7"]);
    expect((await e.status()).banned.sort()).toEqual(["192.0.2.7", "2001:db8::7"]);
    expect(e.logText()).toContain("jail=sshd: 2 bans restored");
    expect(await e.stop()).toBe(0);

    const u = cli(e, ["unban", "192.0.2.7"]);
    expect(u).toMatchObject({ code: 0, out: "unbanned: 192.0.2.7\n" });
    expect(await elems()).toEqual(["2001:db8::7"]);
    expect(ourLines(e)).toEqual(["ALL: [2001:db8::7] # fail2ts:sshd"]);
    expect(dbRows(e).map((r) => r.ip)).toEqual(["2001:db8::7"]);
    expect(e.logText()).toMatch(/INFO Unban 192\.0\.2\.7 jail=sshd \(manual\)$/m);
    // not banned: a warning, exit 0 (idempotent)
    const again = cli(e, ["unban", "192.0.2.7"]);
    expect(again.code).toBe(0);
    expect(again.err).toContain("not banned: 192.0.2.7");

    // the next run knows the unban: only the v6 ban comes back
    await ns.run(["nft", "flush", "ruleset"]);
    await start(e);
    await until(async () => (await elems()).length === 1, 5000, "restored");
    expect((await e.status()).banned).toEqual(["2001:db8::7"]);
  }, 40000);

  test("already banned, --all, -o json; increments count earlier bans", async () => {
    const e = env({ extra: "[jails.sshd.increment]\nenabled = true\n" });
    expect(cli(e, ["ban", "sshd", "192.0.2.1", "192.0.2.2"]).code).toBe(0);
    const j = JSON.parse(cli(e, ["ban", "sshd", "192.0.2.2", "192.0.2.3", "-o", "json"]).out);
    expect(j).toMatchObject({
      via: "direct",
      jail: "sshd",
      banned: ["192.0.2.3"],
      already: ["192.0.2.2"],
      ignored: [],
      bantime: 600,
      database: e.db,
    });
    expect(j.actions.map((a: { action: string; ok: boolean }) => [a.action, a.ok])).toEqual([
      ["nftables", true],
      ["deny", true],
    ]);
    expect(await elems()).toEqual(["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    const u = JSON.parse(cli(e, ["unban", "--all", "-o", "json"]).out);
    expect(u).toMatchObject({ via: "direct", missing: [], jails: ["sshd"] });
    expect(u.unbanned.sort()).toEqual(["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    expect(await elems()).toEqual([]);
    expect(ourLines(e)).toEqual([]);
    expect(dbRows(e)).toEqual([]);
    // banned once before: the second ban is twice as long, and counted
    expect(cli(e, ["ban", "sshd", "192.0.2.1"]).code).toBe(0);
    expect(dbRows(e).map((r) => [r.ip, r.bantime, r.count])).toEqual([["192.0.2.1", 1200, 1]]);
    expect(dbRows(e, "history").filter((r) => r.ip === "192.0.2.1")).toHaveLength(2);
  }, 30000);

  test("addresses are checked; ignoreip is refused unless --force; stdin and --from-file", async () => {
    const e = env();
    const bad = cli(e, ["ban", "sshd", "192.0.2.1", "1.2.3.999", "$(reboot)"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('not an IP address: "1.2.3.999", "$(reboot)"');
    expect(await ruleset()).toBe("");
    const nojail = cli(e, ["ban", "nojail", "192.0.2.1"]);
    expect(nojail.code).toBe(2);
    expect(nojail.err).toContain('no jail named "nojail"');

    const ign = cli(e, ["ban", "sshd", "127.0.0.5", "::1", "192.0.2.1"]);
    expect(ign.code).toBe(1);
    expect(ign.out).toStartWith("banned in sshd: 192.0.2.1\n");
    expect(ign.err).toContain(
      "not banned, in the ignoreip of jail sshd: 127.0.0.5 ::1 (--force bans them anyway)",
    );
    expect(await elems()).toEqual(["192.0.2.1"]);
    const forced = cli(e, ["ban", "sshd", "127.0.0.5", "--force"]);
    expect(forced.code).toBe(0);
    expect(await elems()).toEqual(["127.0.0.5", "192.0.2.1"]);

    const list = v4s(1000, 10);
    const s = cli(
      e,
      ["ban", "sshd", "-", "-q"],
      `# a list\n${list.slice(0, 500).join("\n")}\n${list.slice(500).join(", ")}\n`,
    );
    expect(s).toMatchObject({ code: 0, out: "", err: "" });
    expect(await setElems("f2t-sshd-v4")).toHaveLength(1002);
    writeFileSync(join(e.dir, "list.txt"), `${list.join("\n")}\n`);
    const f = cli(e, ["unban", "--from-file", "list.txt"]);
    expect(f.code).toBe(0);
    expect(f.out).toBe("unbanned: 1000 addresses\n");
    expect(await setElems("f2t-sshd-v4")).toEqual(["127.0.0.5", "192.0.2.1"]);
    expect(dbRows(e)).toHaveLength(2);
  }, 30000);

  test("--dry-run prints what would run and changes nothing", async () => {
    const e = env();
    expect(cli(e, ["ban", "sshd", "192.0.2.1"]).code).toBe(0);
    const before = {
      rules: await ruleset(),
      deny: readFileSync(e.deny, "utf8"),
      db: dbRows(e),
      log: e.logText(),
    };
    const check = async () => {
      expect(await ruleset()).toBe(before.rules);
      expect(readFileSync(e.deny, "utf8")).toBe(before.deny);
      expect(dbRows(e)).toEqual(before.db);
      expect(e.logText()).toBe(before.log);
    };
    const b = cli(e, ["ban", "sshd", "192.0.2.9", "2001:db8::9", "--dry-run"]);
    expect(b.code).toBe(0);
    expect(b.out).toStartWith("dry run: nothing is changed; this would run:\n");
    expect(b.out).toContain(`database ${e.db}: would record 2 bans (bantime 600s)`);
    expect(b.out).toContain("sshd/nftables: nft -f -\n      add table inet fail2ts\n");
    expect(b.out).toContain("add element inet fail2ts f2t-sshd-v6 { 2001:db8::9 timeout 600s }");
    expect(b.out).toContain("sshd/deny: deny ban: would write");
    expect(b.out).toContain("would ban in sshd: 192.0.2.9 2001:db8::9\n");
    await check();
    const u = cli(e, ["unban", "--all", "--dry-run"]);
    expect(u.code).toBe(0);
    expect(u.out).toContain("delete element inet fail2ts f2t-sshd-v4 { 192.0.2.1 }");
    expect(u.out).toContain("would unban: 192.0.2.1\n");
    await check();
    const f = JSON.parse(cli(e, ["flush", "--dry-run", "-o", "json"]).out);
    expect(f).toMatchObject({
      via: "dry-run",
      jails: ["sshd"],
      unbanned: 1,
      tables: ["inet fail2ts"],
      errors: [],
    });
    expect(f.daemon_running).toBe(false);
    expect(f.plan.join("\n")).toContain("delete table inet fail2ts");
    expect(f.plan.join("\n")).toContain("would write");
    await check();
  }, 30000);

  test("flush removes the table and our hosts.deny lines only; the history stays; twice is fine", async () => {
    const e = env();
    expect(cli(e, ["ban", "sshd", "192.0.2.1", "2001:db8::1"]).code).toBe(0);
    // a table that is not ours stays
    await ns.out([
      "nft",
      "add table inet other; add chain inet other c { type filter hook input priority 0; }",
    ]);
    const f = cli(e, ["flush"]);
    expect(f).toMatchObject({ code: 0, err: "" });
    expect(f.out).toBe("flushed sshd: 2 bans lifted; table inet fail2ts removed\n");
    expect((await ns.run(["nft", "list", "table", "inet", "fail2ts"])).code).not.toBe(0);
    expect(await ruleset()).toContain("table inet other");
    expect(readFileSync(e.deny, "utf8")).toBe(FOREIGN);
    expect(dbRows(e)).toEqual([]);
    expect(dbRows(e, "history")).toHaveLength(2);
    const again = cli(e, ["flush", "-o", "json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out)).toMatchObject({ via: "direct", jails: ["sshd"], unbanned: 0, errors: [] });
    await ns.run(["nft", "delete", "table", "inet", "other"]);
  }, 30000);

  test("flush JAIL: that jail's sets, chain and lines; the other jail's stay", async () => {
    const e = env({
      extra: `[jails.web]\nfilter = "sshd"\nlogpath = ["auth.log"]\naction = ["nftables", "deny"]\nport = "http,https"\n`,
    });
    expect(cli(e, ["ban", "sshd", "192.0.2.1"]).code).toBe(0);
    expect(cli(e, ["ban", "web", "192.0.2.2"]).code).toBe(0);
    const f = cli(e, ["flush", "sshd"]);
    expect(f).toMatchObject({ code: 0, out: "flushed sshd: 1 bans lifted\n" });
    expect(await setElems("f2t-sshd-v4")).toBeNull();
    expect(await ruleset()).not.toContain("chain f2t-sshd ");
    expect(await setElems("f2t-web-v4")).toEqual(["192.0.2.2"]);
    expect(ourLines(e)).toEqual(["ALL: 192.0.2.2 # fail2ts:web"]);
    expect(dbRows(e).map((r) => r.jail)).toEqual(["web"]);
    expect(cli(e, ["flush", "nojail"]).code).toBe(2);
  }, 30000);
});

const canIpset =
  canRun &&
  ["ipset", "iptables", "ip6tables"].every((t) =>
    Bun.which(t, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` }),
  );

describe.skipIf(!canIpset)("no daemon: ipset + iptables", () => {
  test("ban fills the sets; flush destroys the sets and the chains, and the jumps to them", async () => {
    const e = env({ action: '["ipset"]' });
    expect(cli(e, ["ban", "sshd", "192.0.2.1", "2001:db8::1"]).code).toBe(0);
    expect(await ns.out(["ipset", "list", "f2t-sshd-v4"])).toContain("192.0.2.1 timeout");
    expect(await ns.out(["ipset", "list", "f2t-sshd-v6"])).toContain("2001:db8::1 timeout");
    expect(await ns.out(["iptables", "-S", "INPUT"])).toContain("-j f2t-sshd");
    const f = cli(e, ["flush"]);
    expect(f).toMatchObject({ code: 0, out: "flushed sshd: 2 bans lifted\n", err: "" });
    expect((await ns.out(["ipset", "list", "-n"])).trim()).toBe("");
    for (const bin of ["iptables", "ip6tables"]) {
      const rules = await ns.out([bin, "-S"]);
      expect(rules).not.toContain("f2t-sshd");
    }
    expect(cli(e, ["flush"]).code).toBe(0); // nothing left: still fine
  }, 30000);
});

describe.skipIf(!canRun)("with a daemon: through it", () => {
  test("ban, ignoreip refusal, unban and flush go through the running daemon", async () => {
    const e = env();
    await start(e);
    const b = cli(e, ["ban", "sshd", "192.0.2.7", "2001:db8::7", "127.0.0.1", "-o", "json"]);
    expect(b.code).toBe(1);
    expect(JSON.parse(b.out)).toEqual({
      via: "daemon",
      jail: "sshd",
      banned: ["192.0.2.7", "2001:db8::7"],
      already: [],
      ignored: ["127.0.0.1"],
    });
    expect(b.err).toContain("in the ignoreip of jail sshd: 127.0.0.1");
    await until(async () => (await elems()).length === 2, 5000, "the daemon's ban");
    expect((await e.status()).banned.sort()).toEqual(["192.0.2.7", "2001:db8::7"]);
    const u = JSON.parse(cli(e, ["unban", "192.0.2.7", "-o", "json"]).out);
    expect(u).toEqual({ via: "daemon", unbanned: ["192.0.2.7"], missing: [] });
    await until(async () => (await elems()).length === 1, 5000, "the daemon's unban");
    await until(() => ourLines(e).length === 1, 5000, "hosts.deny");

    const f = cli(e, ["flush", "-o", "json"]);
    expect(f.code).toBe(0);
    expect(JSON.parse(f.out)).toEqual({
      via: "daemon",
      jails: ["sshd"],
      unbanned: 1,
      tables: ["inet fail2ts"],
      errors: [],
    });
    expect((await ns.run(["nft", "list", "table", "inet", "fail2ts"])).code).not.toBe(0);
    expect(readFileSync(e.deny, "utf8")).toBe(FOREIGN);
    expect(dbRows(e)).toEqual([]);
    expect((await e.status()).banned).toEqual([]);
    expect(e.logText()).toContain("Flushed 1 jails: 1 bans lifted");
    // the daemon goes on: the next ban sets the table up again
    expect(cli(e, ["ban", "sshd", "192.0.2.8"]).code).toBe(0);
    await until(async () => (await elems()).length === 1, 5000, "a ban after the flush");
    expect(await e.stop()).toBe(0);
    expect(dbRows(e).map((r) => r.ip)).toEqual(["192.0.2.8"]);
  }, 40000);

  test("a daemon killed -9 leaves its socket: refused → applied directly", async () => {
    const e = env();
    await start(e);
    await e.kill9();
    const b = JSON.parse(cli(e, ["ban", "sshd", "192.0.2.9", "-o", "json"]).out);
    expect(b).toMatchObject({ via: "direct", banned: ["192.0.2.9"] });
    expect(await elems()).toEqual(["192.0.2.9"]);
    const f = JSON.parse(cli(e, ["flush", "-o", "json"]).out);
    expect(f).toMatchObject({ via: "direct", unbanned: 1, tables: ["inet fail2ts"] });
  }, 30000);

  test("a large request (50 000 addresses from stdin) is read whole by the daemon", async () => {
    const e = env({ action: '["nftables"]' });
    await start(e);
    const list = v4s(50_000, 10);
    const r = cli(e, ["ban", "sshd", "-"], `${list.join("\n")}\n`);
    expect(r).toMatchObject({ code: 0, out: "banned in sshd: 50000 addresses\n", err: "" });
    await until(async () => ((await setElems("f2t-sshd-v4")) ?? []).length === 50_000, 10000, "50k in nft");
    expect((await e.status()).banned_now).toBe(50_000);
    const u = cli(e, ["unban", "-"], `${list.slice(0, 25_000).join(" ")}\n`);
    expect(u).toMatchObject({ code: 0, out: "unbanned: 25000 addresses\n" });
    await until(async () => ((await setElems("f2t-sshd-v4")) ?? []).length === 25_000, 10000, "25k left");
  }, 60000);
});
