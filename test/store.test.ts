import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BanBook, type LiveBan } from "../src/daemon/bans.ts";
import { Store, type StoredBan } from "../src/store/store.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "f2ts-store-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const ban = (ip: string, over: Partial<StoredBan> = {}): StoredBan => ({
  jail: "sshd",
  ip,
  time: 1000,
  bantime: 600,
  count: 0,
  failures: 3,
  matches: ["line 1", "line 2"],
  ...over,
});

describe("store", () => {
  test("bans, history counts, positions and cursors survive a reopen", () => {
    const path = join(tmp(), "sub", "f.db");
    const s = new Store(path);
    s.commit({
      bans: [ban("192.0.2.1"), ban("2001:db8::1", { jail: "web", bantime: -1 })],
      positions: [{ jail: "sshd", path: "/var/log/auth.log", pos: { inode: 42, offset: 1234, hash: "abc" } }],
      cursors: [{ jail: "journal", cursor: "s=1;i=2" }],
    });
    s.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(path, "..")).mode & 0o777).toBe(0o700);
    const t = new Store(path);
    const bans = t.bans().sort((a, b) => a.ip.localeCompare(b.ip));
    expect(bans).toEqual([ban("192.0.2.1"), ban("2001:db8::1", { jail: "web", bantime: -1 })]);
    expect(t.position("sshd", "/var/log/auth.log")).toEqual({ inode: 42, offset: 1234, hash: "abc" });
    expect(t.position("sshd", "/nope")).toBeNull();
    expect(t.cursor("journal")).toBe("s=1;i=2");
    expect(t.banCount("192.0.2.1", "sshd", false)).toBe(1);
    expect(t.banCount("192.0.2.1", "web", false)).toBe(0);
    expect(t.banCount("192.0.2.1", "web", true)).toBe(1);
    t.close();
  });

  test("a re-ban replaces the live row and adds to the history; unban keeps the history", () => {
    const s = new Store(":memory:");
    s.commit({ bans: [ban("192.0.2.1")] });
    s.commit({ bans: [ban("192.0.2.1", { time: 2000, count: 1, bantime: 1200 })] });
    expect(s.bans()).toHaveLength(1);
    expect(s.bans()[0]!.bantime).toBe(1200);
    expect(s.banCount("192.0.2.1", "sshd", false)).toBe(2);
    s.commit({ unbans: [{ jail: "sshd", ip: "192.0.2.1" }] });
    expect(s.bans()).toHaveLength(0);
    expect(s.banCount("192.0.2.1", "sshd", false)).toBe(2);
    expect(s.purge(5000, 3500)).toBe(1); // the ban at 1000 is older than 5000-3500
    expect(s.banCount("192.0.2.1", "sshd", false)).toBe(1);
    s.close();
  });

  test("a failed transaction writes nothing", () => {
    const s = new Store(":memory:");
    expect(() =>
      s.commit({
        bans: [ban("192.0.2.1")],
        positions: [
          {
            jail: "sshd",
            path: "/x",
            pos: { inode: 1, offset: Number.NaN, hash: null as unknown as string },
          },
        ],
      }),
    ).toThrow();
    expect(s.bans()).toHaveLength(0);
    s.close();
  });

  test("100k bans commit in one transaction quickly", () => {
    const s = new Store(join(tmp(), "big.db"));
    const list = Array.from({ length: 100_000 }, (_, i) =>
      ban(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`),
    );
    const t0 = performance.now();
    s.commit({ bans: list });
    const dt = performance.now() - t0;
    expect(s.bans()).toHaveLength(100_000);
    expect(dt).toBeLessThan(3000);
    s.close();
  });
});

describe("ban book", () => {
  const live = (ip: string, until: number, jail = "sshd"): LiveBan => ({
    jail,
    ip,
    time: 0,
    bantime: until,
    until,
    count: 0,
    failures: 1,
    matches: [],
  });

  test("expires in order, skips removed and replaced bans, ignores permanent ones", () => {
    let now = 0;
    const out: string[] = [];
    const book = new BanBook(
      (b) => out.push(...b.map((x) => x.ip)),
      () => now,
    );
    book.add(live("a", 30));
    book.add(live("b", 10));
    book.add(live("c", 20));
    book.add(live("p", Number.POSITIVE_INFINITY));
    book.add(live("d", 15));
    book.remove("sshd", "d");
    book.add(live("c", 50)); // re-ban with a later expiry: the old slot is stale
    now = 25;
    book.expire();
    expect(out).toEqual(["b"]);
    now = 100;
    book.expire();
    expect(out).toEqual(["b", "a", "c"]);
    expect(book.size).toBe(1);
    expect([...book.jail("sshd").keys()]).toEqual(["p"]);
    book.stop();
  });

  test("one timer fires for the earliest expiry", async () => {
    const out: string[] = [];
    const book = new BanBook((b) => out.push(...b.map((x) => x.ip)));
    const now = Date.now() / 1000;
    book.add(live("late", now + 3600));
    book.add(live("soon", now + 0.05));
    await Bun.sleep(150);
    expect(out).toEqual(["soon"]);
    expect(book.size).toBe(1);
    book.stop();
  });

  test("100k bans: add and expire stay fast", () => {
    let now = 0;
    let n = 0;
    const book = new BanBook(
      (b) => (n += b.length),
      () => now,
    );
    const t0 = performance.now();
    for (let i = 0; i < 100_000; i++) book.add(live(`10.0.${i >> 8}.${i & 255}`, 1 + ((i * 7919) % 1000)));
    for (let i = 0; i < 50_000; i++) book.remove("sshd", `10.0.${i >> 8}.${i & 255}`);
    now = 2000;
    book.expire();
    book.stop();
    expect(n).toBe(50_000);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});
