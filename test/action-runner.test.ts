/** ActionRunner: batching per tick, ordering, no overlap, lazy start, backoff, re-sync. */
import { describe, expect, test } from "bun:test";
import { ActionRunner } from "../src/action/runner.ts";
import type { Action, BanEvent } from "../src/action/types.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { ev, memoryLog } from "./helpers/netns.ts";

interface Call {
  op: string;
  ips: string[];
  at: number;
  restored?: boolean[];
}

class FakeAction implements Action {
  readonly name = "fake";
  calls: Call[] = [];
  /** Fail this many upcoming calls (of any kind but check). */
  failNext = 0;
  /** Fail every call whose op is in here. */
  failOps = new Set<string>();
  delayMs = 0;
  inFlight = 0;
  maxInFlight = 0;
  checkResult = true;
  gate: Promise<void> | undefined;

  protected async record(op: string, batch: BanEvent[] = []): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const call: Call = { op, ips: batch.map((e) => e.ip), at: performance.now() };
      if (batch.some((e) => e.restored)) call.restored = batch.map((e) => e.restored === true);
      this.calls.push(call);
      if (this.gate) await this.gate;
      if (this.delayMs) await Bun.sleep(this.delayMs);
      if (this.failOps.has(op) || this.failNext > 0) {
        if (this.failNext > 0) this.failNext--;
        throw new Fail2tsError(
          "action",
          `fake ${op}: nft exited 1: Error: Could not process rule: No such file`,
        );
      }
    } finally {
      this.inFlight--;
    }
  }
  start = () => this.record("start");
  ban = (b: BanEvent[]) => this.record("ban", b);
  unban = (b: BanEvent[]) => this.record("unban", b);
  flush = () => this.record("flush");
  stop = () => this.record("stop");
  check = async () => this.checkResult;
  ops(): string[] {
    return this.calls.map((c) => (c.ips.length ? `${c.op} ${c.ips.join(",")}` : c.op));
  }
}

class FakeWithRestore extends FakeAction {
  restore = (b: BanEvent[]) => this.record("restore", b) as Promise<void>;
  update = async (u: BanEvent[], b: BanEvent[]) => {
    await this.record("update", [...u.map((e) => ({ ...e, ip: `-${e.ip}` })), ...b]);
  };
}

const fast = { backoffMinMs: 20, backoffMaxMs: 50 };

describe("ActionRunner", () => {
  test("N events queued in one tick are one call; start is lazy and runs once", async () => {
    const a = new FakeAction();
    const r = new ActionRunner(a, memoryLog());
    await Bun.sleep(5);
    expect(a.calls).toEqual([]); // nothing before the first event
    for (let i = 0; i < 100; i++) r.ban(ev(`192.0.2.${i}`));
    expect(r.pending).toBe(100);
    await r.idle();
    expect(a.calls.map((c) => c.op)).toEqual(["start", "ban"]);
    expect(a.calls[1]!.ips.length).toBe(100);
    expect(r.pending).toBe(0);
    r.ban(ev("198.51.100.1"));
    await r.idle();
    expect(a.ops()).toEqual(["start", expect.stringMatching(/^ban /), "ban 198.51.100.1"]);
  });

  test("calls never overlap; events arriving during a call form the next batch", async () => {
    const a = new FakeAction();
    a.delayMs = 40;
    const r = new ActionRunner(a, memoryLog());
    r.ban(ev("192.0.2.1"));
    await Bun.sleep(60); // start (40 ms) done, the ban of .1 in flight
    r.ban(ev("192.0.2.2"));
    r.unban(ev("192.0.2.3"));
    r.ban(ev("192.0.2.4"));
    expect(r.pending).toBe(4);
    await r.idle();
    expect(a.maxInFlight).toBe(1);
    expect(a.ops()).toEqual(["start", "ban 192.0.2.1", "unban 192.0.2.3", "ban 192.0.2.2,192.0.2.4"]);
  });

  test("per address order: ban→unban is an unban; unban→ban keeps both in order; ban→ban keeps the later", async () => {
    const a = new FakeAction();
    const r = new ActionRunner(a, memoryLog());
    r.ban(ev("192.0.2.1"));
    r.unban(ev("192.0.2.1"));
    r.unban(ev("192.0.2.2"));
    r.ban(ev("192.0.2.2", { bantime: 1200 }));
    r.ban(ev("192.0.2.3", { bantime: 60 }));
    r.ban(ev("192.0.2.3", { bantime: 7200 }));
    let got: BanEvent[] = [];
    const ban = a.ban;
    a.ban = (b) => {
      got = b;
      return ban(b);
    };
    await r.idle();
    expect(a.ops()).toEqual(["start", "unban 192.0.2.1,192.0.2.2", "ban 192.0.2.2,192.0.2.3"]);
    expect(got.map((e) => e.bantime)).toEqual([1200, 7200]);
  });

  test("update() takes unbans and bans of one tick in one call when the action has it", async () => {
    const a = new FakeWithRestore();
    const r = new ActionRunner(a, memoryLog());
    r.unban(ev("192.0.2.1"));
    r.ban(ev("192.0.2.2"));
    await r.idle();
    expect(a.ops()).toEqual(["start", "update -192.0.2.1,192.0.2.2"]);
  });

  test("a failing action: logged with stderr, retried with doubling backoff up to the cap, events kept in order", async () => {
    const a = new FakeAction();
    a.failOps.add("ban");
    const log = memoryLog();
    const r = new ActionRunner(a, log, fast);
    r.ban(ev("192.0.2.1"));
    await Bun.sleep(5);
    expect(r.lastError).toBe("fake ban: nft exited 1: Error: Could not process rule: No such file");
    expect(r.pending).toBe(1);
    r.unban(ev("192.0.2.1")); // during backoff: merges with the pending ban → unban
    r.ban(ev("192.0.2.9"));
    await Bun.sleep(180); // attempts at ~0, 20, 60 (40), 110 (50, capped), 160 (50)
    a.failOps.clear();
    await r.idle();
    expect(r.lastError).toBeUndefined();
    expect(r.pending).toBe(0);
    const bans = a.calls.filter((c) => c.op === "ban");
    const gaps = bans.slice(1, 4).map((c, i) => c.at - bans[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(15);
    expect(gaps[1]).toBeGreaterThanOrEqual(35);
    expect(gaps[2]).toBeGreaterThanOrEqual(45);

    // the unban replaced the pending (never applied) ban of .1 and went out; .9 is retried alone
    const ops = a.ops();
    const unbanAt = ops.indexOf("unban 192.0.2.1");
    expect(unbanAt).toBeGreaterThan(0);
    expect(ops.slice(unbanAt + 1).filter((o) => o.includes("192.0.2.1,") || o.endsWith("192.0.2.1"))).toEqual(
      [],
    );
    expect(ops[ops.length - 1]).toBe("ban 192.0.2.9");
    const errors = log.lines.filter((l) => l.startsWith("error:"));
    expect(errors.length).toBeGreaterThanOrEqual(3);
    expect(errors[0]).toContain("Could not process rule");
    expect(errors[0]).toContain("retry in 0.02 s");
    expect(errors[1]).toContain("retry in 0.04 s");
    expect(errors[2]).toContain("retry in 0.05 s"); // capped: not 0.08
    expect(errors.some((l) => l.includes("retry in 0.08 s"))).toBe(false);
    expect(log.lines).toContain("info: fake: recovered");
  });

  test("after a failure the action is started again and re-synced with the active bans", async () => {
    const a = new FakeWithRestore();
    const r = new ActionRunner(a, memoryLog(), fast);
    r.ban(ev("192.0.2.1"));
    r.ban(ev("192.0.2.2"));
    await r.idle();
    a.failNext = 1;
    r.ban(ev("192.0.2.3"));
    await Bun.sleep(5);
    expect(r.lastError).toBeDefined();
    await r.idle();
    expect(a.ops()).toEqual([
      "start",
      "ban 192.0.2.1,192.0.2.2",
      "ban 192.0.2.3", // failed
      "start",
      "restore 192.0.2.1,192.0.2.2",
      "ban 192.0.2.3",
    ]);
    const restore = a.calls.find((c) => c.op === "restore")!;
    expect(restore.restored).toEqual([true, true]);
  });

  test("a failed unban then ban: only what did not apply is retried", async () => {
    const a = new FakeAction();
    const r = new ActionRunner(a, memoryLog(), fast);
    r.ban(ev("192.0.2.1"));
    await r.idle();
    a.failOps.add("ban");
    r.unban(ev("192.0.2.1"));
    r.ban(ev("192.0.2.5"));
    await Bun.sleep(5);
    a.failOps.clear();
    await r.idle();
    expect(a.ops()).toEqual([
      "start",
      "ban 192.0.2.1",
      "unban 192.0.2.1",
      "ban 192.0.2.5", // failed
      "start", // again after the failure; re-sync has nothing active (.1 was unbanned)
      "ban 192.0.2.5",
    ]);
  });

  test("restore() at start: one restore call; resolves when applied; falls back to ban()", async () => {
    const a = new FakeWithRestore();
    const r = new ActionRunner(a, memoryLog());
    const events = Array.from({ length: 1000 }, (_, i) =>
      ev(`10.0.${i >> 8}.${i & 255}`, { restored: true }),
    );
    await r.restore(events);
    expect(a.calls.map((c) => c.op)).toEqual(["start", "restore"]);
    expect(a.calls[1]!.ips.length).toBe(1000);
    expect(r.status().active).toBe(1000);

    const b = new FakeAction();
    const rb = new ActionRunner(b, memoryLog());
    await rb.restore(events.slice(0, 3));
    expect(b.ops()).toEqual(["start", "ban 10.0.0.0,10.0.0.1,10.0.0.2"]);
  });

  test("a slow action does not delay another runner", async () => {
    const slow = new FakeAction();
    let release!: () => void;
    slow.gate = new Promise((r) => {
      release = r;
    });
    const quick = new FakeAction();
    const rs = new ActionRunner(slow, memoryLog());
    const rq = new ActionRunner(quick, memoryLog());
    rs.ban(ev("192.0.2.1"));
    rq.ban(ev("192.0.2.1"));
    await rq.idle();
    expect(quick.ops()).toEqual(["start", "ban 192.0.2.1"]);
    expect(rs.pending).toBe(1);
    release();
    await rs.idle();
    expect(slow.ops()).toEqual(["start", "ban 192.0.2.1"]);
  });

  test("flushBans and close({stop}) run after what is queued", async () => {
    const a = new FakeAction();
    const r = new ActionRunner(a, memoryLog());
    r.ban(ev("192.0.2.1"));
    await r.flushBans();
    r.ban(ev("192.0.2.2"));
    await r.close({ stop: true });
    expect(a.ops()).toEqual(["start", "ban 192.0.2.1", "flush", "ban 192.0.2.2", "stop"]);
    r.ban(ev("192.0.2.3")); // closed: ignored
    await Bun.sleep(5);
    expect(a.calls.length).toBe(5);
  });

  test("close without stop leaves the firewall as it is", async () => {
    const a = new FakeAction();
    const r = new ActionRunner(a, memoryLog());
    r.ban(ev("192.0.2.1"));
    await r.close();
    expect(a.ops()).toEqual(["start", "ban 192.0.2.1"]);
  });

  test("a periodic check that fails re-starts and re-syncs", async () => {
    const a = new FakeWithRestore();
    const log = memoryLog();
    const r = new ActionRunner(a, log, { checkIntervalMs: 20 });
    r.ban(ev("192.0.2.1"));
    await r.idle();
    a.checkResult = false;
    await Bun.sleep(30);
    a.checkResult = true;
    await r.idle();
    await r.close();
    expect(a.ops().slice(0, 4)).toEqual(["start", "ban 192.0.2.1", "start", "restore 192.0.2.1"]);
    expect(log.lines.some((l) => l.includes("check failed"))).toBe(true);
  });

  test("status() for the daemon's status command", async () => {
    const a = new FakeAction();
    a.failOps.add("start");
    const r = new ActionRunner(a, memoryLog(), { backoffMinMs: 1000 });
    r.ban(ev("192.0.2.1"));
    await Bun.sleep(5);
    const s = r.status();
    expect(s).toMatchObject({ action: "fake", started: false, pending: 1, failures: 1 });
    expect(s.lastError).toContain("fake start");
    expect(s.retryAt).toBeGreaterThan(Date.now() + 900);
    const flushed = r.flushBans(); // cannot apply while the action fails...
    await r.close({ timeoutMs: 10 });
    await flushed; // ...but close() releases the waiter instead of leaving it hanging
  });
});
