import { describe, expect, test } from "bun:test";
import { incrementedBantime, NO_INCREMENT } from "../src/jail/increment.ts";
import { JailCore } from "../src/jail/jail.ts";
import { formatDuration, parseDuration } from "../src/util/duration.ts";
import { cidrMatcher } from "../src/util/ip.ts";

describe("durations", () => {
  test("Fail2ban forms", () => {
    expect(parseDuration(600)).toBe(600);
    expect(parseDuration("600")).toBe(600);
    expect(parseDuration("90s")).toBe(90);
    expect(parseDuration("10m")).toBe(600);
    expect(parseDuration("1h30m")).toBe(5400);
    expect(parseDuration("1d")).toBe(86400);
    expect(parseDuration("2w")).toBe(1209600);
    expect(parseDuration("-1")).toBe(-1);
    expect(parseDuration(-1)).toBe(-1);
    expect(parseDuration("forever")).toBe(-1);
    for (const bad of ["", "10x", "m", "1h 2q", -5, "abc", null]) expect(parseDuration(bad)).toBeNull();
    expect(formatDuration(5400)).toBe("1h30m");
    expect(formatDuration(-1)).toBe("permanent");
  });
});

describe("jail decisions", () => {
  const mk = (over = {}) => new JailCore({ name: "sshd", maxretry: 3, findtime: 600, bantime: 600, ...over });

  test("bans on the maxretry-th failure within findtime", () => {
    const j = mk();
    expect(j.failure({ id: "192.0.2.1", time: 1000 }).kind).toBe("counted");
    expect(j.failure({ id: "192.0.2.1", time: 1100 }).kind).toBe("counted");
    const v = j.failure({ id: "192.0.2.1", time: 1200, matches: ["l3"] });
    expect(v.kind).toBe("ban");
    if (v.kind !== "ban") return;
    expect(v.ban).toMatchObject({
      id: "192.0.2.1",
      time: 1200,
      bantime: 600,
      failures: 3,
      firstFailure: 1000,
      count: 0,
    });
  });

  test("failures older than findtime fall out of the window", () => {
    const j = mk();
    j.failure({ id: "a", time: 0 });
    j.failure({ id: "a", time: 300 });
    expect(j.failure({ id: "a", time: 601 }).kind).toBe("counted"); // the one at 0 has left
    expect(j.failure({ id: "a", time: 700 }).kind).toBe("ban");
  });

  test("an exactly findtime-old failure no longer counts", () => {
    const j = mk({ maxretry: 2 });
    j.failure({ id: "a", time: 0 });
    expect(j.failure({ id: "a", time: 600 }).kind).toBe("counted");
  });

  test("a banned id is not counted until the ban ends, then starts afresh", () => {
    const j = mk({ maxretry: 1 });
    expect(j.failure({ id: "a", time: 0 }).kind).toBe("ban");
    expect(j.failure({ id: "a", time: 10 }).kind).toBe("banned-already");
    expect(j.failure({ id: "a", time: 600 }).kind).toBe("ban");
  });

  test("ignored ids are never counted", () => {
    const ign = cidrMatcher(["10.0.0.0/8"]);
    const j = mk({ maxretry: 1, ignore: (id: string) => ign.has(id) });
    expect(j.failure({ id: "10.1.2.3", time: 0 }).kind).toBe("ignored");
    expect(j.failuresTotal).toBe(0);
  });

  test("repeat offenders get longer bans with increment", () => {
    const inc = { ...NO_INCREMENT, enabled: true };
    const j = mk({ maxretry: 1, increment: inc });
    const bans: number[] = [];
    for (let t = 0; t < 5; t++) {
      const v = j.failure({ id: "a", time: t * 100000 });
      if (v.kind === "ban") bans.push(v.ban.bantime);
    }
    expect(bans).toEqual([600, 1200, 2400, 4800, 9600]);
  });

  test("increment: multipliers, maxtime, permanent stays permanent", () => {
    const p = { ...NO_INCREMENT, enabled: true, multipliers: [1, 5, 30], maxtime: 86400 };
    expect(incrementedBantime(600, 1, p)).toBe(3000);
    expect(incrementedBantime(600, 9, p)).toBe(18000);
    expect(incrementedBantime(3600, 9, p)).toBe(86400);
    expect(incrementedBantime(-1, 3, p)).toBe(-1);
    expect(incrementedBantime(600, 1, { ...NO_INCREMENT, enabled: true, rndtime: 100 }, () => 0.5)).toBe(
      1250,
    );
  });

  test("purge keeps memory flat", () => {
    const j = mk();
    for (let i = 0; i < 1000; i++) j.failure({ id: `10.0.${i >> 8}.${i & 255}`, time: i });
    expect(j.failuresNow).toBe(1000);
    j.purge(5000);
    expect(j.failuresNow).toBe(0);
  });
});
