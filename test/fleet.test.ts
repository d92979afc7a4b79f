/**
 * src/fleet on its own: event signing, [fleet] validation, the persisted queue, and Fleet
 * instances with fake jails against a real redis-server (publish, apply, replay, forgery,
 * ignore, accept/share, outage and catch-up, global_maxretry).
 */

import { Database } from "bun:sqlite";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { checkFleet, type FleetConfig } from "../src/fleet/config.ts";
import { compareIds, entriesOf } from "../src/fleet/consumer.ts";
import {
  checkFailureMember,
  decodeEvent,
  encodeEvent,
  type FleetEvent,
  failureMember,
} from "../src/fleet/event.ts";
import { Fleet, streamKey } from "../src/fleet/fleet.ts";
import { FleetState } from "../src/fleet/state.ts";
import type { FleetJail } from "../src/fleet/types.ts";
import { RedisServer, requireRedis, selfSigned, writeKey } from "./e2e/fleet-helpers.ts";

const KEY = Buffer.from("0123456789abcdef0123456789abcdef");
const STREAM = "fail2ts:events";
const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "f2ts-fleet-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function ev(over: Partial<FleetEvent> = {}): FleetEvent {
  const now = Date.now() / 1000;
  return {
    type: "ban",
    ip: "203.0.113.7",
    jail: "sshd",
    time: now,
    bantime: 600,
    expiry: now + 600,
    node: "web-01",
    failures: 3,
    ts: Date.now(),
    ...over,
  };
}

describe("events", () => {
  test("encode → decode round trip; fields readable in the stream", () => {
    const e = ev({ time: 1700000000.5, expiry: 1700000600.5, ts: 1700000000123 });
    const f = encodeEvent(e, STREAM, KEY);
    expect(f.slice(0, 20)).toEqual([
      "v",
      "1",
      "type",
      "ban",
      "ip",
      "203.0.113.7",
      "jail",
      "sshd",
      "time",
      "1700000000.5",
      "bantime",
      "600",
      "expiry",
      "1700000600.5",
      "node",
      "web-01",
      "failures",
      "3",
      "ts",
      "1700000000123",
    ]);
    expect(f[20]).toBe("sig");
    expect(decodeEvent(f, STREAM, KEY)).toEqual({ ok: true, event: e });
    // a RESP3 map works the same
    const m: Record<string, string> = {};
    for (let i = 0; i < f.length; i += 2) m[f[i]!] = f[i + 1]!;
    expect(decodeEvent(m, STREAM, KEY)).toEqual({ ok: true, event: e });
  });

  test("any changed field, another key, another stream, no signature: rejected", () => {
    const f = encodeEvent(ev(), STREAM, KEY);
    for (let i = 1; i < 20; i += 2) {
      const g = [...f];
      g[i] = g[i] === "1" ? "2" : `${g[i]}0`;
      const r = decodeEvent(g, STREAM, KEY);
      expect(r.ok).toBe(false);
    }
    const ip = [...f];
    ip[5] = "198.51.100.1";
    expect(decodeEvent(ip, STREAM, KEY)).toEqual({ ok: false, reason: "bad signature" });
    expect(decodeEvent(f, STREAM, Buffer.from("another key of sixteen+ bytes"))).toEqual({
      ok: false,
      reason: "bad signature",
    });
    expect(decodeEvent(f, "other:events", KEY)).toEqual({ ok: false, reason: "bad signature" });
    expect(decodeEvent(f.slice(0, 20), STREAM, KEY)).toEqual({ ok: false, reason: "unsigned" });
    const junk = [...f];
    junk[21] = "!!!";
    expect(decodeEvent(junk, STREAM, KEY).ok).toBe(false);
    expect(decodeEvent(["a"], STREAM, KEY).ok).toBe(false);
    expect(decodeEvent(null as never, STREAM, KEY).ok).toBe(false);
  });

  test("signed but invalid values are rejected too", () => {
    expect(decodeEvent(encodeEvent(ev({ ip: "1.2.3.999" }), STREAM, KEY), STREAM, KEY)).toEqual({
      ok: false,
      reason: "bad ip",
    });
    expect(decodeEvent(encodeEvent(ev({ jail: "a b" }), STREAM, KEY), STREAM, KEY)).toEqual({
      ok: false,
      reason: "bad jail",
    });
    expect(decodeEvent(encodeEvent(ev({ node: "a\nb" }), STREAM, KEY), STREAM, KEY)).toEqual({
      ok: false,
      reason: "bad node",
    });
    expect(decodeEvent(encodeEvent(ev({ expiry: 5 }), STREAM, KEY), STREAM, KEY)).toEqual({
      ok: false,
      reason: "bad expiry",
    });
    const perm = ev({ bantime: -1, expiry: -1 });
    expect(decodeEvent(encodeEvent(perm, STREAM, KEY), STREAM, KEY).ok).toBe(true);
    const v6 = ev({ ip: "2001:db8::1" });
    expect(decodeEvent(encodeEvent(v6, STREAM, KEY), STREAM, KEY)).toEqual({ ok: true, event: v6 });
  });

  test("failure-window members carry a MAC bound to jail and address", () => {
    const m = failureMember(KEY, "sshd", "192.0.2.1", "web-01", 1700000000000, 7);
    expect(checkFailureMember(KEY, "sshd", "192.0.2.1", m)).toBe("web-01");
    expect(checkFailureMember(KEY, "sshd", "192.0.2.2", m)).toBeNull();
    expect(checkFailureMember(KEY, "postfix", "192.0.2.1", m)).toBeNull();
    expect(checkFailureMember(Buffer.from("x".repeat(32)), "sshd", "192.0.2.1", m)).toBeNull();
    expect(checkFailureMember(KEY, "sshd", "192.0.2.1", "evil|1|1|AAAAAAAAAAAAAAAAAAAAAA")).toBeNull();
  });

  test("stream ids compare numerically; XREAD replies in both shapes", () => {
    expect(compareIds("10-0", "9-5")).toBeGreaterThan(0);
    expect(compareIds("10-2", "10-10")).toBeLessThan(0);
    expect(compareIds("0", "1-0")).toBeLessThan(0);
    const entries = [["1-0", ["a", "b"]]];
    expect(entriesOf({ s: entries }, "s")).toEqual(entries as never);
    expect(entriesOf([["s", entries]], "s")).toEqual(entries as never);
    expect(entriesOf(null, "s")).toEqual([]);
  });
});

describe("[fleet] config", () => {
  const jails = new Map([
    ["sshd", { enabled: true }],
    ["postfix", { enabled: true }],
  ]);
  function check(t: Record<string, unknown>, base = tmp()) {
    const issues: string[] = [];
    const warnings: string[] = [];
    const c = checkFleet(
      t,
      base,
      jails,
      (k, m) => issues.push(`fleet.${k.join(".")}: ${m}`),
      (k, m) => warnings.push(`fleet.${k.join(".")}: ${m}`),
    );
    return { c, issues, warnings };
  }

  test("defaults; paths relative to the config", () => {
    const d = tmp();
    writeKey(d);
    const { c, issues } = check({ redis: "redis://10.0.0.5:6379/0", key_file: "fleet.key" }, d);
    expect(issues).toEqual([]);
    expect(c).toEqual({
      redis: "redis://10.0.0.5:6379/0",
      key_file: join(d, "fleet.key"),
      node: hostname().split(".")[0]!,
      share: null,
      accept: null,
      global_maxretry: {},
      prefix: "fail2ts",
      maxlen: 100000,
      queue: 10000,
    } satisfies FleetConfig);
  });

  test("no key, a world-readable key, a short key: refused", () => {
    const d = tmp();
    expect(check({ redis: "redis://h" }, d).issues[0]).toMatch(/^fleet\.key_file: needs the shared key file/);
    const k = writeKey(d);
    chmodSync(k, 0o644);
    expect(check({ redis: "redis://h", key_file: k }, d).issues[0]).toMatch(
      /other users can read it \(mode 644\): chmod 600/,
    );
    chmodSync(k, 0o602);
    expect(check({ redis: "redis://h", key_file: k }, d).issues[0]).toMatch(/other users can write it/);
    chmodSync(k, 0o640);
    expect(check({ redis: "redis://h", key_file: k }, d).issues).toEqual([]);
    writeFileSync(k, "short\n");
    expect(check({ redis: "redis://h", key_file: k }, d).issues[0]).toMatch(
      /the key is 5 bytes, at least 16/,
    );
    expect(check({ redis: "redis://h", key_file: join(d, "nope") }, d).issues[0]).toMatch(
      /cannot read: ENOENT/,
    );
  });

  test("URLs, passwords, names, lists, global_maxretry", () => {
    const d = tmp();
    const key = writeKey(d);
    const ok = (t: Record<string, unknown>) => check({ key_file: key, ...t }, d);
    expect(ok({ redis: "http://h" }).issues[0]).toMatch(/redis:\/\/ or rediss:\/\//);
    expect(ok({ redis: "not a url" }).issues[0]).toMatch(/not a URL/);
    expect(ok({ redis: "redis://h/x" }).issues[0]).toMatch(/database number/);
    expect(ok({ redis: "rediss://u:p@h:6380/1" }).issues).toEqual([]);
    const pw = join(d, "pw");
    writeFileSync(pw, "secret\n", { mode: 0o600 });
    expect(ok({ redis: "redis://:p@h", password_file: pw }).issues[0]).toMatch(/already has a password/);
    expect(ok({ redis: "redis://h", password_file: pw }).c?.password_file).toBe(pw);
    chmodSync(pw, 0o644);
    expect(ok({ redis: "redis://h", password_file: pw }).issues[0]).toMatch(
      /password_file.*other users can read/,
    );
    expect(ok({ redis: "redis://h", node: "web 01" }).issues[0]).toMatch(/^fleet\.node: /);
    expect(ok({ redis: "redis://h", colour: 1 }).issues[0]).toMatch(/^fleet\.colour: unknown key/);
    const lists = ok({
      redis: "redis://h",
      share: ["sshd"],
      accept: ["sshd", "nginx"],
      global_maxretry: { sshd: 10 },
    });
    expect(lists.issues).toEqual([]);
    expect(lists.warnings).toEqual(['fleet.accept: no jail named "nginx" here']);
    expect(lists.c?.global_maxretry).toEqual({ sshd: 10 });
    expect(ok({ redis: "redis://h", global_maxretry: { nginx: 3 } }).issues[0]).toMatch(
      /global_maxretry\.nginx: no jail/,
    );
    expect(ok({ redis: "redis://h", global_maxretry: { sshd: 0 } }).issues[0]).toMatch(
      /global_maxretry\.sshd: expected a whole number/,
    );
    expect(ok({ redis: "redis://h", queue: 1 }).issues[0]).toMatch(/^fleet\.queue/);
  });
});

describe("outgoing queue", () => {
  test("bounded (oldest dropped), clock strictly increasing, kept across restarts", () => {
    const path = join(tmp(), "q.db");
    let db = new Database(path);
    let s = new FleetState(db, 10);
    const stamps: number[] = [];
    const rec = (ts: number, fields: string[]) => {
      stamps.push(ts);
      return fields;
    };
    expect(s.enqueue(8, 5000, (ts, i) => rec(ts, ["n", String(i)]))).toBe(0);
    expect(s.enqueue(7, 4000, (ts, i) => rec(ts, ["n", String(8 + i)]))).toBe(5); // clock stepped back
    expect(stamps).toEqual(Array.from({ length: 15 }, (_, i) => 5000 + i));
    expect(s.queued).toBe(10);
    expect(s.peek(3).map((q) => q.fields[1])).toEqual(["5", "6", "7"]);
    const head = s.peek(4);
    s.ack(head[3]!.seq, 4);
    s.saveRead("17-3", new Map([["b", 99]]));
    db.close();
    db = new Database(path);
    s = new FleetState(db, 10);
    expect(s.queued).toBe(6);
    expect(s.peek(1)[0]!.fields[1]).toBe("9");
    expect(s.lastId()).toBe("17-3");
    expect(s.originTs("b")).toBe(99);
    s.enqueue(1, 0, (ts) => rec(ts, []));
    expect(stamps.at(-1)).toBe(5015);
    db.close();
  });
});

// ---------------------------------------------------------------------------- with Redis

interface Ban {
  ip: string;
  time: number;
  bantime: number;
  failures: number;
  origin: string;
}

class FakeJail implements FleetJail {
  active = true;
  findtime = 600;
  readonly bans = new Map<string, Ban>();
  readonly ignored = new Set<string>();
  readonly events: string[] = [];
  constructor(
    readonly name: string,
    private readonly node: () => FakeNode,
  ) {}
  ignores(ip: string) {
    return this.ignored.has(ip);
  }
  banOf(ip: string) {
    return this.bans.get(ip);
  }
  applyBan(b: { ip: string; time: number; bantime: number; failures: number }, origin: string) {
    this.bans.set(b.ip, { ...b, origin });
    this.events.push(`ban ${b.ip} from ${origin}`);
  }
  applyUnban(ip: string, origin: string) {
    this.bans.delete(ip);
    this.events.push(`unban ${ip} from ${origin}`);
  }
  banNow(ip: string, failures: number) {
    this.localBan(ip, failures);
  }
  /** A ban decided here (as the daemon's jail does): recorded, then told to the fleet. */
  localBan(ip: string, failures = 3, bantime = 600) {
    const b = { ip, time: Date.now() / 1000, bantime, failures, origin: "local" };
    this.bans.set(ip, b);
    this.events.push(`local ${ip}`);
    this.node().fleet.hook.banned([{ ...b, jail: this.name }]);
  }
  localUnban(ip: string) {
    this.bans.delete(ip);
    this.node().fleet.hook.unbanned(this.name, [{ ip }]);
  }
}

class FakeNode {
  readonly jails = new Map<string, FakeJail>();
  readonly logs: string[] = [];
  fleet!: Fleet;
  constructor(
    readonly name: string,
    readonly db: Database,
  ) {
    for (const j of ["sshd", "postfix"]) this.jails.set(j, new FakeJail(j, () => this));
  }
  jail(n: string) {
    return this.jails.get(n)!;
  }
  log = {
    debug: (m: string) => this.logs.push(`DEBUG ${m}`),
    info: (m: string) => this.logs.push(`INFO ${m}`),
    warn: (m: string) => this.logs.push(`WARN ${m}`),
    error: (m: string) => this.logs.push(`ERROR ${m}`),
  };
  logged(re: RegExp): string[] {
    return this.logs.filter((l) => re.test(l));
  }
}

if (requireRedis("fleet with redis", { test })) {
  describe("fleet with redis", () => {
    let redis: RedisServer;
    let keyFile: string;
    let prefixN = 0;
    let prefix = "";
    const nodes: FakeNode[] = [];

    beforeAll(async () => {
      redis = await RedisServer.start();
      keyFile = writeKey(tmp());
    });
    afterAll(async () => {
      await redis?.cleanup();
    });
    afterEach(async () => {
      for (const n of nodes.splice(0)) await n.fleet.stop(200);
      prefix = "";
    });

    function node(name: string, over: Partial<FleetConfig> = {}, db = new Database(":memory:")): FakeNode {
      if (!prefix) prefix = `t${++prefixN}`;
      const n = new FakeNode(name, db);
      n.fleet = new Fleet(
        {
          redis: redis.url,
          key_file: keyFile,
          node: name,
          share: null,
          accept: null,
          global_maxretry: {},
          prefix,
          maxlen: 10000,
          queue: 1000,
          ...over,
        },
        {
          db,
          log: n.log,
          host: { jail: (j) => n.jails.get(j) },
          blockMs: 1000,
          backoffMinMs: 50,
          backoffMaxMs: 200,
          commandTimeoutMs: 500,
        },
      );
      n.fleet.start();
      nodes.push(n);
      return n;
    }

    async function until<T>(fn: () => T, ms = 3000, what = "condition"): Promise<T> {
      const end = Date.now() + ms;
      for (;;) {
        const v = fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await Bun.sleep(5);
      }
    }
    const connected = (...ns: FakeNode[]) =>
      until(() => ns.every((n) => n.fleet.status().connected), 3000, "connected");

    test("a ban on A is applied on B and C, not again on A; unban follows", async () => {
      const a = node("a");
      const b = node("b");
      const c = node("c");
      await connected(a, b, c);
      a.jail("sshd").localBan("203.0.113.7", 5);
      await until(
        () => b.jail("sshd").banOf("203.0.113.7") && c.jail("sshd").banOf("203.0.113.7"),
        3000,
        "B and C",
      );
      const got = b.jail("sshd").banOf("203.0.113.7")!;
      expect(got.origin).toBe("a");
      expect(got.failures).toBe(5);
      expect(got.bantime).toBe(600);
      expect(Math.abs(got.time - a.jail("sshd").banOf("203.0.113.7")!.time)).toBeLessThan(0.002);
      a.jail("sshd").localUnban("203.0.113.7");
      await until(
        () => !b.jail("sshd").banOf("203.0.113.7") && !c.jail("sshd").banOf("203.0.113.7"),
        3000,
        "unban",
      );
      expect(b.jail("sshd").events).toEqual(["ban 203.0.113.7 from a", "unban 203.0.113.7 from a"]);
      expect(a.jail("sshd").events).toEqual(["local 203.0.113.7"]);
      const sa = a.fleet.status();
      expect(sa).toMatchObject({
        node: "a",
        connected: true,
        events_out: 2,
        events_in: 0,
        rejected: 0,
        queued: 0,
      });
      await until(() => a.fleet.status().last_event_id !== null, 2000, "A reads its own events too");
      const sb = b.fleet.status();
      expect(sb).toMatchObject({
        node: "b",
        connected: true,
        events_out: 0,
        events_in: 2,
        rejected: 0,
        skipped: 0,
      });
      expect(sb.last_event_id).toMatch(/^\d+-\d+$/);
      expect(sb.lag_ms).toBeGreaterThanOrEqual(0);
      expect(sb.lag_ms!).toBeLessThan(1000);
      // the stream holds plain fields
      const xr = (await redis.cmd("XRANGE", streamKey(prefix), "-", "+")) as Array<[string, string[]]>;
      expect(xr.length).toBe(2);
      expect(xr[0]![1].slice(0, 6)).toEqual(["v", "1", "type", "ban", "ip", "203.0.113.7"]);
    });

    test("forged, unsigned and replayed events are dropped and counted; expired bans skipped", async () => {
      const a = node("a");
      const b = node("b");
      await connected(a, b);
      const s = streamKey(prefix);
      const forgedKey = Buffer.from("not the fleet key, but long enough");
      await redis.cmd(
        "XADD",
        s,
        "*",
        ...encodeEvent(ev({ ip: "198.51.100.66", node: "evil" }), s, forgedKey),
      );
      await redis.cmd("XADD", s, "*", "v", "1", "type", "ban", "ip", "198.51.100.67", "jail", "sshd");
      await redis.cmd("XADD", s, "*", "garbage", "x");
      const old = Date.now() / 1000 - 700;
      await redis.cmd(
        "XADD",
        s,
        "*",
        ...encodeEvent(
          ev({ ip: "198.51.100.68", node: "z", time: old, expiry: old + 600, ts: Date.now() }),
          s,
          KEY,
        ),
      );
      await until(
        () => b.fleet.status().rejected === 3 && b.fleet.status().skipped === 1,
        3000,
        "3 rejected, 1 expired",
      );
      expect(b.jail("sshd").bans.size).toBe(0);
      expect(
        b.logged(/WARN fleet: rejected stream entry \S+: bad signature \(a host with another key_file/)
          .length,
      ).toBe(1);
      // a replay of a valid ban after an unban does not ban again
      a.jail("sshd").localBan("192.0.2.9");
      await until(() => b.jail("sshd").banOf("192.0.2.9"), 3000, "ban");
      const xr = (await redis.cmd("XRANGE", s, "-", "+")) as Array<[string, string[]]>;
      const banFields = xr.at(-1)![1];
      a.jail("sshd").localUnban("192.0.2.9");
      await until(() => !b.jail("sshd").banOf("192.0.2.9"), 3000, "unban");
      await redis.cmd("XADD", s, "*", ...banFields);
      await until(() => b.fleet.status().skipped === 2, 3000, "replay skipped");
      expect(b.jail("sshd").banOf("192.0.2.9")).toBeUndefined();
      // an old unban replayed does not lift a newer ban
      const unbanFields = ((await redis.cmd("XRANGE", s, "-", "+")) as Array<[string, string[]]>).find(
        (x) => x[1][3] === "unban",
      )![1];
      await Bun.sleep(5);
      a.jail("sshd").localBan("192.0.2.9");
      await until(() => b.jail("sshd").banOf("192.0.2.9"), 3000, "second ban");
      await redis.cmd("XADD", s, "*", ...unbanFields);
      await until(() => b.fleet.status().skipped === 3, 3000, "old unban skipped");
      expect(b.jail("sshd").banOf("192.0.2.9")).toBeDefined();
    });

    test("an address ignored on B is not banned there; accept and share lists", async () => {
      const a = node("a", { share: ["sshd"] });
      const b = node("b", { accept: ["sshd"] });
      const c = node("c");
      await connected(a, b, c);
      b.jail("sshd").ignored.add("192.0.2.50");
      a.jail("sshd").localBan("192.0.2.50");
      await until(() => c.jail("sshd").banOf("192.0.2.50"), 3000, "C");
      await until(() => b.fleet.status().ignored === 1, 3000, "ignored on B");
      expect(b.jail("sshd").banOf("192.0.2.50")).toBeUndefined();
      expect(b.logged(/INFO fleet: not banning 192\.0\.2\.50 jail=sshd from a: ignored here/).length).toBe(1);
      a.jail("postfix").localBan("192.0.2.51"); // not shared by A
      c.jail("postfix").localBan("192.0.2.52"); // shared by C, not accepted by B
      await until(() => a.jail("postfix").banOf("192.0.2.52"), 3000, "A gets C's postfix ban");
      await until(() => b.fleet.status().skipped >= 1, 3000, "B skips it");
      expect(b.jail("postfix").bans.size).toBe(0);
      expect(c.jail("postfix").banOf("192.0.2.51")).toBeUndefined();
      expect(a.fleet.status().events_out).toBe(1);
    });

    test("B stopped while A bans: B restarted catches up from its last id, nothing applied twice", async () => {
      const a = node("a");
      const bdb = new Database(join(tmp(), "b.db"));
      let b = node("b", {}, bdb);
      await connected(a, b);
      a.jail("sshd").localBan("192.0.2.1");
      await until(() => b.jail("sshd").banOf("192.0.2.1"), 3000, "first ban");
      await b.fleet.stop(200);
      nodes.splice(nodes.indexOf(b), 1);
      for (let i = 2; i <= 4; i++) a.jail("sshd").localBan(`192.0.2.${i}`);
      a.jail("sshd").localUnban("192.0.2.1");
      await until(() => a.fleet.status().events_out === 5, 3000, "A published");
      b = node("b", {}, bdb);
      await until(() => b.jail("sshd").bans.size === 3, 3000, "caught up");
      expect(b.jail("sshd").events).toEqual([
        "ban 192.0.2.2 from a",
        "ban 192.0.2.3 from a",
        "ban 192.0.2.4 from a",
      ]);
      expect(b.fleet.status().events_in).toBe(3); // the unban found no ban here (this FakeJail is new)
    });

    test("Redis down: bans queue in the DB, logged once; Redis back: published, nothing lost", async () => {
      const a = node("a");
      const b = node("b");
      await connected(a, b);
      a.jail("sshd").localBan("192.0.2.100");
      await until(() => b.jail("sshd").banOf("192.0.2.100"), 3000, "before");
      await redis.stop();
      await until(() => !a.fleet.status().connected && !b.fleet.status().connected, 3000, "down");
      for (let i = 101; i <= 120; i++) a.jail("sshd").localBan(`192.0.2.${i}`);
      expect(a.fleet.status().queued).toBe(20);
      await Bun.sleep(600); // several reconnect attempts
      await redis.restart();
      await until(() => b.jail("sshd").bans.size === 21, 5000, "all 21 on B");
      expect(a.fleet.status()).toMatchObject({ connected: true, queued: 0, events_out: 21 });
      for (const n of [a, b]) {
        expect(
          n.logged(
            /WARN fleet: lost redis:\/\/127\.0\.0\.1:\d+: .*bans stay local and outgoing events are queued/,
          ).length,
        ).toBe(1);
        expect(n.logged(/INFO fleet: connected to redis:\/\/\S+ again \(down for /).length).toBe(1);
        expect(n.logged(/WARN/).length).toBe(1);
      }
      expect(a.logged(/DEBUG fleet: .* attempt \d+/).length).toBeGreaterThan(0);
      // the AOF kept the stream across the restart, even a kill -9 (what Redis acknowledged was written)
      expect(Number(await redis.cmd("XLEN", streamKey(prefix)))).toBe(21);
      a.jail("sshd").localBan("192.0.2.121");
      await until(() => b.jail("sshd").banOf("192.0.2.121"), 3000, "one more");
      await redis.stop(true);
      await redis.restart();
      expect(Number(await redis.cmd("XLEN", streamKey(prefix)))).toBe(22);
      const late = node("late");
      await until(() => late.jail("sshd").bans.size === 22, 5000, "a new host reads all 22");
    }, 20000);

    test("Redis stops answering (SIGSTOP): link down after the deadline, back after SIGCONT", async () => {
      const a = node("a");
      const b = node("b");
      await connected(a, b);
      redis.pause();
      try {
        a.jail("sshd").localBan("192.0.2.200");
        await until(() => !a.fleet.status().connected, 3000, "A sees the link down");
        expect(a.fleet.status().queued).toBe(1);
      } finally {
        redis.resume();
      }
      await until(() => b.jail("sshd").banOf("192.0.2.200"), 5000, "delivered after SIGCONT");
      expect(a.logged(/WARN fleet: lost .*no reply within 500 ms/).length).toBe(1);
    }, 15000);

    test("queue bound: the oldest are dropped while Redis is down, warned once", async () => {
      const a = node("a", { queue: 10 });
      await connected(a);
      await redis.stop();
      await until(() => !a.fleet.status().connected, 3000, "down");
      for (let i = 1; i <= 25; i++) a.jail("sshd").localBan(`198.51.100.${i}`);
      expect(a.fleet.status()).toMatchObject({ queued: 10, dropped: 15 });
      expect(a.logged(/WARN fleet: the outgoing queue is full \(10 events\)/).length).toBe(1);
      await redis.restart();
      const b = node("b");
      await until(() => b.jail("sshd").bans.size === 10, 5000, "the 10 newest");
      expect(b.jail("sshd").banOf("198.51.100.25")).toBeDefined();
      expect(b.jail("sshd").banOf("198.51.100.15")).toBeUndefined();
    }, 20000);

    test("global_maxretry: failures on three hosts add up; the ban goes everywhere", async () => {
      const cfg = { global_maxretry: { sshd: 7 } };
      const a = node("a", cfg);
      const b = node("b", cfg);
      const c = node("c", cfg);
      await connected(a, b, c);
      const ip = "203.0.113.99";
      const t = Date.now() / 1000;
      for (const n of [a, b, c]) {
        n.fleet.hook.failure("sshd", ip, t);
        n.fleet.hook.failure("sshd", ip, t);
        n.fleet.hook.failure("postfix", ip, t); // no global_maxretry for postfix
      }
      await Bun.sleep(100);
      expect([a, b, c].some((n) => n.jail("sshd").banOf(ip))).toBe(false);
      b.fleet.hook.failure("sshd", ip, t); // the 7th
      await until(() => [a, b, c].every((n) => n.jail("sshd").banOf(ip)), 3000, "banned everywhere");
      const deciders = [a, b, c].filter((n) => n.fleet.status().global_bans > 0);
      expect(deciders.length).toBeGreaterThanOrEqual(1);
      expect(
        deciders[0]!.logged(
          /INFO fleet: 203\.0\.113\.99 jail=sshd: \d failures on 3 hosts within 10m reached global_maxretry = 7/,
        ).length,
      ).toBe(1);
      // forged members do not count
      const k = `${prefix}:fail:sshd:198.51.100.200`;
      for (let i = 0; i < 20; i++)
        await redis.cmd("ZADD", k, String(Date.now()), `evil|${i}|${i}|AAAAAAAAAAAAAAAAAAAAAA`);
      a.fleet.hook.failure("sshd", "198.51.100.200", Date.now() / 1000);
      await Bun.sleep(200);
      expect(a.jail("sshd").banOf("198.51.100.200")).toBeUndefined();
    });

    test("a host down for longer than the stream keeps is told it may have missed events", async () => {
      const a = node("a", { maxlen: 100 });
      const bdb = new Database(join(tmp(), "b.db"));
      let b = node("b", { maxlen: 100 }, bdb);
      await connected(a, b);
      a.jail("sshd").localBan("10.0.0.1");
      await until(() => b.jail("sshd").banOf("10.0.0.1"), 3000, "first");
      await b.fleet.stop(200);
      nodes.splice(nodes.indexOf(b), 1);
      for (let i = 2; i <= 400; i++) a.jail("sshd").localBan(`10.0.${i >> 8}.${i & 255}`);
      await until(() => a.fleet.status().events_out === 400, 3000, "published");
      expect(Number(await redis.cmd("XLEN", streamKey(prefix)))).toBeLessThan(300);
      b = node("b", { maxlen: 100 }, bdb);
      await until(() => b.jail("sshd").banOf("10.0.1.144"), 3000, "the last one");
      expect(b.logged(/WARN fleet: the stream \S+ was trimmed past this host's position/).length).toBe(1);
      expect(b.jail("sshd").bans.size).toBeLessThan(300);
    });

    test("a stream reset (Redis lost its data) is read from the start", async () => {
      const a = node("a");
      const b = node("b");
      await connected(a, b);
      a.jail("sshd").localBan("192.0.2.77");
      await until(() => b.jail("sshd").banOf("192.0.2.77"), 3000, "ban");
      await redis.cmd("DEL", streamKey(prefix));
      await redis.cmd(
        "XADD",
        streamKey(prefix),
        "1-1",
        ...encodeEvent(ev({ ip: "192.0.2.78", node: "z" }), streamKey(prefix), KEY),
      );
      // B notices on its next reconnect
      await redis.cmd("CLIENT", "KILL", "TYPE", "normal");
      await until(() => b.jail("sshd").banOf("192.0.2.78"), 5000, "read from the start");
      expect(b.logged(/WARN fleet: the stream \S+ ends at 1-1, before this host's position/).length).toBe(1);
    });

    test("Redis answering errors (the stream key is a string): said once, retried, recovers", async () => {
      node("x"); // sets the prefix
      await redis.cmd("SET", streamKey(prefix), "not a stream");
      await nodes.pop()!.fleet.stop(0);
      const a = node("a");
      const b = node("b");
      await connected(a, b);
      a.jail("sshd").localBan("192.0.2.44");
      await Bun.sleep(2500);
      expect(a.fleet.status().queued).toBe(1);
      expect(a.logged(/ERROR fleet: cannot publish to \S+: WRONGTYPE/).length).toBe(1);
      expect(b.logged(/ERROR fleet: reading \S+: WRONGTYPE.* \(retrying\)/).length).toBe(1);
      await redis.cmd("DEL", streamKey(prefix));
      await until(() => b.jail("sshd").banOf("192.0.2.44"), 8000, "delivered once the key is a stream");
    }, 15000);

    test("a missing or world-readable key stops the fleet from starting", () => {
      const d = tmp();
      const k = writeKey(d);
      chmodSync(k, 0o644);
      const mk = (key_file: string) =>
        new Fleet(
          {
            redis: redis.url,
            key_file,
            node: "x",
            share: null,
            accept: null,
            global_maxretry: {},
            prefix: "x",
            maxlen: 1000,
            queue: 10,
          },
          {
            db: new Database(":memory:"),
            log: new FakeNode("x", new Database(":memory:")).log,
            host: { jail: () => undefined },
          },
        );
      expect(() => mk(k)).toThrow(/other users can read it/);
      expect(() => mk(join(d, "none"))).toThrow(/cannot read: ENOENT/);
    });
  });
}

if (requireRedis("fleet over TLS", { test })) {
  describe("fleet over TLS with a password", () => {
    test("rediss:// with ca_file and password_file connects and carries events; a wrong password is reported", async () => {
      const d = tmp();
      const tls = selfSigned(d);
      if (!tls) {
        console.warn("skipping TLS: no openssl");
        return;
      }
      const redis = await RedisServer.start({ tls, password: "s3cret pass/word" });
      const nodes: Fleet[] = [];
      try {
        const key_file = writeKey(d);
        const pw = join(d, "redis.pw");
        writeFileSync(pw, "s3cret pass/word\n", { mode: 0o600 });
        const bad = join(d, "bad.pw");
        writeFileSync(bad, "nope\n", { mode: 0o600 });
        const url = `rediss://127.0.0.1:${redis.port}`;
        const mk = (name: string, password_file: string, jail: FleetJail | undefined) => {
          const n = new FakeNode(name, new Database(":memory:"));
          const f = new Fleet(
            {
              redis: url,
              password_file,
              key_file,
              ca_file: tls.ca,
              node: name,
              share: null,
              accept: null,
              global_maxretry: {},
              prefix: "tls",
              maxlen: 1000,
              queue: 100,
            },
            { db: n.db, log: n.log, host: { jail: () => jail }, backoffMinMs: 50, commandTimeoutMs: 1000 },
          );
          f.start();
          nodes.push(f);
          return { n, f };
        };
        let got = "";
        const sink: FleetJail = {
          active: true,
          findtime: 600,
          ignores: () => false,
          banOf: () => undefined,
          applyBan: (b, origin) => {
            got = `${b.ip} from ${origin}`;
          },
          applyUnban: () => {},
          banNow: () => {},
        };
        const a = mk("a", pw, undefined);
        mk("b", pw, sink);
        const wrong = mk("w", bad, undefined);
        const end = Date.now() + 5000;
        while (!a.f.status().connected && Date.now() < end) await Bun.sleep(10);
        expect(a.f.status().connected).toBe(true);
        expect(a.f.status().redis).toBe(url);
        const now = Date.now() / 1000;
        a.f.hook.banned([{ ip: "192.0.2.33", jail: "sshd", time: now, bantime: 60, failures: 1 }]);
        while (!got && Date.now() < end) await Bun.sleep(10);
        expect(got).toBe("192.0.2.33 from a");
        expect(wrong.f.status().connected).toBe(false);
        expect(wrong.n.logged(/WARN fleet: cannot reach rediss:\/\/127\.0\.0\.1:\d+: /).length).toBe(1);
      } finally {
        for (const f of nodes) await f.stop(0);
        await redis.cleanup();
      }
    });
  });
}
