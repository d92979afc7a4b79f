/**
 * The fleet end to end: a real redis-server (random port, AOF on) and three real fail2ts daemons
 * (the built binary), each with its own config, database and a command action writing a file.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeEvent } from "../../src/fleet/event.ts";
import { binary, Env, type EnvOptions, failures, until } from "./daemon-helpers.ts";
import { RedisServer, requireRedis, writeKey } from "./fleet-helpers.ts";

interface FleetStatusJson {
  node: string;
  connected: boolean;
  last_event_id: string | null;
  lag_ms: number | null;
  events_in: number;
  events_out: number;
  rejected: number;
  skipped: number;
  ignored: number;
  queued: number;
  global_bans: number;
}

if (requireRedis("fleet end to end", { test })) {
  describe("fleet end to end", () => {
    let redis: RedisServer;
    let keyDir: string;
    let keyFile: string;
    let prefixN = 0;
    const envs: Env[] = [];

    beforeAll(async () => {
      binary();
      redis = await RedisServer.start();
      keyDir = mkdtempSync(join(tmpdir(), "f2ts-fleet-key-"));
      keyFile = writeKey(keyDir);
    }, 120000);
    afterAll(async () => {
      await redis?.cleanup();
      rmSync(keyDir, { recursive: true, force: true });
    });
    afterEach(async () => {
      await Promise.all(envs.splice(0).map((e) => e.cleanup()));
    });

    /** A daemon in the fleet `prefix`: node name, extra [fleet] lines, other Env options. */
    function host(node: string, prefix: string, fleet = "", opts: EnvOptions = {}): Env {
      const e = new Env({
        ...opts,
        extra: `[fleet]
redis = "${redis.url}"
key_file = "${keyFile}"
node = "${node}"
prefix = "${prefix}"
${fleet}
`,
      });
      envs.push(e);
      return e;
    }

    function fleet(prefix = `e2e${++prefixN}`) {
      return prefix;
    }

    async function fleetStatus(e: Env): Promise<FleetStatusJson> {
      return ((await e.request({ cmd: "status" })) as { fleet: FleetStatusJson }).fleet;
    }
    const connected = (...es: Env[]) =>
      until(
        async () => (await Promise.all(es.map(fleetStatus))).every((s) => s.connected),
        5000,
        "fleet connected",
      );

    test("a ban on A appears on B and C through their actions; unban on A lifts it everywhere", async () => {
      const p = fleet();
      const [a, b, c] = [host("a", p), host("b", p), host("c", p)];
      await Promise.all([a.start(), b.start(), c.start()]);
      await connected(a, b, c);
      a.append(failures("203.0.113.7", 3));
      await until(() => a.banLines().includes("ban 203.0.113.7 sshd"), 5000, "the ban on A");
      await until(
        () => b.banLines().includes("ban 203.0.113.7 sshd") && c.banLines().includes("ban 203.0.113.7 sshd"),
        5000,
        "the ban on B and C",
      );
      expect(b.logText()).toMatch(
        /INFO Ban 203\.0\.113\.7 jail=sshd failures=3 bantime=600s \(fleet: from a\)$/m,
      );
      expect((await b.status()).banned).toEqual(["203.0.113.7"]);
      const sb = await fleetStatus(b);
      expect(sb).toMatchObject({ node: "b", connected: true, events_in: 1, events_out: 0, rejected: 0 });
      expect(sb.last_event_id).toMatch(/^\d+-\d+$/);
      expect((await fleetStatus(a)).events_out).toBe(1);
      // A does not apply its own event; B and C do not publish what they applied
      await Bun.sleep(200);
      expect(a.banLines()).toEqual(["ban 203.0.113.7 sshd"]);
      expect((await fleetStatus(b)).events_out).toBe(0);
      // the text status shows the link
      const st = b.cli("status", "-c", b.conf);
      expect(st.code).toBe(0);
      expect(st.out).toMatch(/^fleet node b, redis:\/\/127\.0\.0\.1:\d+: connected since /m);
      expect(st.out).toMatch(/^ {2}last event {3}\d+-\d+, lag \d+ ms$/m);
      expect(st.out).toMatch(/^ {2}events {7}in 1, out 0, rejected 0, skipped 0, ignored here 0$/m);
      // manual unban on A: published, lifted on B and C
      expect(a.cli("unban", "-c", a.conf, "203.0.113.7").code).toBe(0);
      await until(
        () =>
          b.banLines().includes("unban 203.0.113.7 sshd") && c.banLines().includes("unban 203.0.113.7 sshd"),
        5000,
        "the unban on B and C",
      );
      expect(b.logText()).toMatch(/INFO Unban 203\.0\.113\.7 jail=sshd \(fleet: unbanned on a\)$/m);
    }, 60000);

    test("B stopped while A bans; B restarted catches up (and does not re-apply what it had)", async () => {
      const p = fleet();
      const [a, b] = [host("a", p), host("b", p)];
      await Promise.all([a.start(), b.start()]);
      await connected(a, b);
      expect(a.cli("ban", "-c", a.conf, "sshd", "203.0.113.11").code).toBe(0);
      await until(() => b.banLines().includes("ban 203.0.113.11 sshd"), 5000, "first ban on B");
      await b.stop();
      expect(a.cli("ban", "-c", a.conf, "sshd", "203.0.113.12", "203.0.113.13").code).toBe(0);
      a.append(failures("203.0.113.14", 3));
      await until(async () => (await fleetStatus(a)).events_out === 4, 5000, "A published 4");
      await b.start();
      await until(
        () =>
          ["203.0.113.12", "203.0.113.13", "203.0.113.14"].every((ip) =>
            b.banLines().includes(`ban ${ip} sshd`),
          ),
        5000,
        "B caught up",
      );
      expect((await b.status()).banned.sort()).toEqual([
        "203.0.113.11",
        "203.0.113.12",
        "203.0.113.13",
        "203.0.113.14",
      ]);
      // 203.0.113.11 came back from B's own database (restored), not from the stream a second time
      expect((await fleetStatus(b)).events_in).toBe(3);
      expect(b.banLines().filter((l) => l === "ban 203.0.113.11 sshd").length).toBe(2); // first ban, then restore at start
    }, 60000);

    test("Redis restarted: A keeps banning locally and queues; nothing is lost; the outage is logged once", async () => {
      const p = fleet();
      const [a, b] = [host("a", p), host("b", p)];
      await Promise.all([a.start(), b.start()]);
      await connected(a, b);
      a.append(failures("198.51.100.1", 3));
      await until(() => b.banLines().includes("ban 198.51.100.1 sshd"), 5000, "before the restart");
      await redis.stop();
      await until(async () => !(await fleetStatus(a)).connected, 5000, "A sees Redis down");
      for (let i = 2; i <= 6; i++) a.append(failures(`198.51.100.${i}`, 3));
      await until(() => a.banLines().length === 6, 5000, "A bans locally meanwhile");
      expect((await fleetStatus(a)).queued).toBe(5);
      const down = a.cli("status", "-c", a.conf).out;
      expect(down).toMatch(
        /^fleet node a, redis:\/\/\S+: NOT CONNECTED since .*\n.*\n.*\n {2}outgoing {5}5 queued, 0 dropped$/m,
      );
      await Bun.sleep(1500);
      await redis.restart();
      await until(
        () => [2, 3, 4, 5, 6].every((i) => b.banLines().includes(`ban 198.51.100.${i} sshd`)),
        15000,
        "B gets them",
      );
      expect((await fleetStatus(a)).queued).toBe(0);
      for (const e of [a, b]) {
        const log = e.logText();
        expect(log.match(/WARNING fleet: lost redis:\/\/127\.0\.0\.1:\d+: /g)?.length).toBe(1);
        expect(log.match(/INFO fleet: connected to redis:\/\/\S+ again/g)?.length).toBe(1);
      }
      // and the stream survived the restart (AOF)
      expect(Number(await redis.cmd("XLEN", `${p}:events`))).toBe(6);
    }, 60000);

    test("a forged event is rejected and counted; an address B (ignoreip) or C (ignorecommand) ignores is not banned there", async () => {
      const p = fleet();
      const a = host("a", p);
      const b = host("b", p, "", { jail: 'ignoreip = ["127.0.0.1/8", "198.51.100.0/24"]' });
      // C asks a program, which says "ignore" for 203.0.113.200 only
      const c = host("c", p, "", {
        jail: 'ignorecommand = ["/bin/sh", "-c", "[ \\"$1\\" = 203.0.113.200 ]", "sh", "<ip>"]',
      });
      await Promise.all([a.start(), b.start(), c.start()]);
      await connected(a, b, c);
      const now = Date.now() / 1000;
      const forged = encodeEvent(
        {
          type: "ban",
          ip: "192.0.2.66",
          jail: "sshd",
          time: now,
          bantime: 600,
          expiry: now + 600,
          node: "a",
          failures: 9,
          ts: Date.now(),
        },
        `${p}:events`,
        Buffer.from("a guessed key that is long enough"),
      );
      await redis.cmd("XADD", `${p}:events`, "*", ...forged);
      await until(
        async () => (await fleetStatus(b)).rejected === 1 && (await fleetStatus(c)).rejected === 1,
        5000,
        "rejected",
      );
      expect(b.banLines()).toEqual([]);
      expect(b.logText()).toMatch(/WARNING fleet: rejected stream entry \d+-\d+: bad signature/);
      a.append(failures("198.51.100.7", 3));
      await until(() => c.banLines().includes("ban 198.51.100.7 sshd"), 5000, "C bans");
      await until(async () => (await fleetStatus(b)).ignored === 1, 5000, "B ignores");
      expect(b.banLines()).toEqual([]);
      expect(b.logText()).toMatch(/INFO fleet: not banning 198\.51\.100\.7 jail=sshd from a: ignored here/);
      expect(a.cli("ban", "-c", a.conf, "sshd", "203.0.113.200").code).toBe(0);
      await until(() => b.banLines().includes("ban 203.0.113.200 sshd"), 5000, "B bans");
      await until(async () => (await fleetStatus(c)).ignored === 1, 5000, "C's ignorecommand says no");
      expect(c.banLines()).toEqual(["ban 198.51.100.7 sshd"]);
    }, 60000);

    test("global_maxretry: 2 failures on each of three hosts ban everywhere (local maxretry 5)", async () => {
      const p = fleet();
      const cfg = "global_maxretry = { sshd = 6 }";
      const [a, b, c] = [
        host("a", p, cfg, { maxretry: 5 }),
        host("b", p, cfg, { maxretry: 5 }),
        host("c", p, cfg, { maxretry: 5 }),
      ];
      await Promise.all([a.start(), b.start(), c.start()]);
      await connected(a, b, c);
      for (const e of [a, b]) e.append(failures("203.0.113.50", 2));
      await until(
        async () => (await a.status()).failures_total === 2 && (await b.status()).failures_total === 2,
        5000,
        "4 failures",
      );
      await Bun.sleep(200);
      expect([a, b, c].some((e) => e.banLines().length > 0)).toBe(false);
      c.append(failures("203.0.113.50", 2));
      await until(
        () => [a, b, c].every((e) => e.banLines().includes("ban 203.0.113.50 sshd")),
        5000,
        "banned everywhere",
      );
      expect(c.logText()).toMatch(
        /INFO fleet: 203\.0\.113\.50 jail=sshd: 6 failures on 3 hosts within 10m reached global_maxretry = 6/,
      );
      expect(c.logText()).toMatch(/INFO Ban 203\.0\.113\.50 jail=sshd failures=6 bantime=600s$/m);
      expect((await fleetStatus(c)).global_bans).toBe(1);
    }, 60000);

    test("no key, or a key others can read: the daemon refuses to start", async () => {
      const p = fleet();
      const e = host("a", p);
      chmodSync(keyFile, 0o644);
      try {
        const r = e.cli("run", "-c", e.conf);
        expect(r.code).toBe(2);
        expect(r.err).toMatch(/fleet\.key_file: .*other users can read it \(mode 644\): chmod 600/);
        expect(e.cli("check", "-c", e.conf).code).toBe(2);
      } finally {
        chmodSync(keyFile, 0o600);
      }
      const none = new Env({ extra: `[fleet]\nredis = "${redis.url}"\n` });
      envs.push(none);
      const r = none.cli("run", "-c", none.conf);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/fleet\.key_file: needs the shared key file/);
    }, 30000);
  });
}
