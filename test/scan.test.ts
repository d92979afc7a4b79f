/**
 * `fail2ts scan` end to end: a log with a known attack schedule must give exactly the expected
 * bans; rotated sets, gzip, stdin, journal exports, bad input.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { autoSelect } from "../src/scan/autoselect.ts";
import { ROOT, runCli } from "./helpers/cli.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const tmp = temps.make("fail2ts-scan-");
const T0 = Date.UTC(2026, 4, 1, 12, 0, 0) / 1000; // 2026-05-01 12:00:00 UTC
const NOW = String(Date.UTC(2026, 5, 1) / 1000);

function syslog(t: number, msg: string, pid = 1000): string {
  const d = new Date(t * 1000);
  const mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
    d.getUTCMonth()
  ];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${mon} ${String(d.getUTCDate()).padStart(2, " ")} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} srv sshd[${pid}]: ${msg}`;
}

const fail = (t: number, ip: string, pid: number) =>
  syslog(t, `Failed password for root from ${ip} port 50000 ssh2`, pid);
const invalid = (t: number, ip: string, pid: number) =>
  syslog(t, `Invalid user admin from ${ip} port 50001`, pid);

/** The schedule: [time offset, address]; expected bans below (maxretry 5, findtime 600, bantime 600). */
function schedule(): string[] {
  const lines: Array<[number, string]> = [];
  let pid = 2000;
  const add = (dt: number, ip: string, kind: "f" | "i" = "f") =>
    lines.push([T0 + dt, (kind === "f" ? fail : invalid)(T0 + dt, ip, pid++)]);
  // A: 5 failures in 4 minutes → ban at +240.
  for (const dt of [0, 60, 120, 180, 240]) add(dt, "203.0.113.10");
  // B (IPv6): 4 failures only → no ban.
  for (const dt of [10, 20, 30, 40]) add(dt, "2001:db8::b", "i");
  // C: 4 failures, the 5th 601 s after the first → no ban; a 6th at +620 → 5 within 600 s → ban at +620.
  for (const dt of [0, 100, 200, 300, 601]) add(dt, "198.51.100.20");
  add(620, "198.51.100.20");
  // D: in the ignored network → never.
  for (let i = 0; i < 12; i++) add(i * 10, "10.9.8.7");
  // E (IPv6, written in long form): 10 failures in 100 s → ban at +50; failures while banned
  // do not count; after the ban (+650) five more → second ban at +1100.
  for (let i = 0; i <= 9; i++) add(10 + i * 10, "2001:0db8:0000:0000:0000:0000:0000:00e0", "i");
  for (const dt of [900, 950, 1000, 1050, 1100]) add(dt, "2001:db8::e0", "i");
  // Noise.
  for (let i = 0; i < 50; i++)
    lines.push([
      T0 + i * 23,
      syslog(T0 + i * 23, "Accepted publickey for deploy from 192.0.2.50 port 40000 ssh2", 9000 + i),
    ]);
  lines.sort((a, b) => a[0] - b[0]);
  return lines.map(([, l]) => l);
}

const expected = [
  { ip: "2001:db8::e0", time: T0 + 50, failures: 5, bantime: 600, count: 0, first_failure: T0 + 10 },
  { ip: "203.0.113.10", time: T0 + 240, failures: 5, bantime: 600, count: 0, first_failure: T0 },
  { ip: "198.51.100.20", time: T0 + 620, failures: 5, bantime: 600, count: 0, first_failure: T0 + 100 },
  { ip: "2001:db8::e0", time: T0 + 1100, failures: 5, bantime: 600, count: 1, first_failure: T0 + 900 },
];

describe("scan", () => {
  const log = join(tmp, "auth.log");
  writeFileSync(log, schedule().join("\n") + "\n");
  const args = ["-f", "sshd", "--ignoreip", "10.0.0.0/8", "--now", NOW, "-o", "json"];

  test("a known attack schedule gives exactly the expected bans", async () => {
    const r = await runCli(["scan", log, ...args], { env: { TZ: "UTC" } });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.bans.map((b: Record<string, unknown>) => ({ ...b, jail: undefined, unban: undefined }))).toEqual(
      expected.map((b) => ({ ...b, jail: undefined, unban: undefined })),
    );
    expect(
      j.bans.every(
        (b: { jail: string; unban: number; time: number }) => b.jail === "sshd" && b.unban === b.time + 600,
      ),
    ).toBe(true);
    expect(j.failures).toBe(5 + 4 + 6 + 12 + 15);
    expect(j.ignored).toBe(12);
    expect(j.lines).toBe(schedule().length);
    expect(j.first).toBe(T0);
  });

  test("--now takes a date as well as epoch seconds, in-process (-j 0) as in workers", async () => {
    for (const jobs of ["0", "2"]) {
      const r = await runCli(
        ["scan", log, ...args.slice(0, -4), "--now", "2026-06-01", "-j", jobs, "-o", "json"],
        {
          env: { TZ: "UTC" },
        },
      );
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).bans.map((b: { time: number }) => b.time)).toEqual(
        expected.map((b) => b.time),
      );
    }
    const bad = await runCli(["scan", log, "-f", "sshd", "--now", "next tuesday"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--now");
  });

  test("increment lengthens the repeat offender's second ban", async () => {
    const r = await runCli(["scan", log, ...args, "--increment"], { env: { TZ: "UTC" } });
    const j = JSON.parse(r.stdout);
    expect(j.bans.find((b: { count: number }) => b.count === 1).bantime).toBe(1200);
  });

  test("--maxretry/--findtime/--since, ndjson and csv", async () => {
    const r = await runCli(["scan", log, "-f", "sshd", "--maxretry", "10", "--now", NOW, "-o", "ndjson"], {
      env: { TZ: "UTC" },
    });
    const bans = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(bans.map((b) => b.ip)).toEqual(["10.9.8.7", "2001:db8::e0"]);
    const s = await runCli(["scan", log, ...args.slice(0, -2), "--since", String(T0 + 800), "-o", "csv"], {
      env: { TZ: "UTC" },
    });
    const rows = s.stdout.trim().split("\n");
    expect(rows[0]).toBe("ip,jail,time,first_failure,failures,bantime,unban,count");
    expect(rows.slice(1).map((x) => x.split(",")[0])).toEqual(["2001:db8::e0"]);
  });

  test("rotated sets are read oldest first, gzip and stdin work", async () => {
    const lines = schedule();
    const half = Math.floor(lines.length / 2);
    const dir = join(tmp, "rot");
    Bun.spawnSync(["mkdir", "-p", dir]);
    writeFileSync(join(dir, "auth.log.1.gz"), gzipSync(lines.slice(0, half).join("\n") + "\n"));
    writeFileSync(join(dir, "auth.log"), lines.slice(half).join("\n") + "\n");
    const r = await runCli(["scan", join(dir, "auth.log"), join(dir, "auth.log.1.gz"), ...args], {
      env: { TZ: "UTC" },
    });
    expect(JSON.parse(r.stdout).bans.map((b: { ip: string }) => b.ip)).toEqual(expected.map((b) => b.ip));
    const g = await runCli(["scan", `${dir}/auth.log*`, ...args], { env: { TZ: "UTC" } });
    expect(JSON.parse(g.stdout).bans).toHaveLength(4);
    const d = await runCli(["scan", dir, ...args], { env: { TZ: "UTC" } });
    expect(JSON.parse(d.stdout).bans).toHaveLength(4);
    const s = await runCli(["scan", "-", ...args], { env: { TZ: "UTC" }, stdin: lines.join("\n") + "\n" });
    expect(JSON.parse(s.stdout).bans).toHaveLength(4);
  });

  test("journalctl -o json exports", async () => {
    const recs = schedule().map((l) => {
      const m = /^(\w+ +\d+ [\d:]+) (\S+) sshd\[(\d+)\]: (.*)$/.exec(l)!;
      const t = Date.parse(`${m[1]} 2026 UTC`) * 1000;
      return JSON.stringify({
        __REALTIME_TIMESTAMP: String(t),
        _HOSTNAME: m[2],
        SYSLOG_IDENTIFIER: "sshd",
        _PID: m[3],
        MESSAGE: m[4],
      });
    });
    const r = await runCli(["scan", "-", ...args], { env: { TZ: "UTC" }, stdin: recs.join("\n") + "\n" });
    expect(JSON.parse(r.stdout).bans.map((b: { ip: string; time: number }) => [b.ip, b.time])).toEqual(
      expected.map((b) => [b.ip, b.time]),
    );
  });

  test("bad input: an unreadable file is named and the rest still scanned; binary lines skipped; truncated gzip", async () => {
    const bin = join(tmp, "binary.log");
    writeFileSync(bin, `${schedule().slice(0, 30).join("\n")}\n\0\0\x01garbage\xff\n`);
    const locked = join(tmp, "locked.log");
    writeFileSync(locked, "x\n");
    chmodSync(locked, 0);
    const gz = gzipSync(schedule().join("\n") + "\n");
    const trunc = join(tmp, "trunc.log.gz");
    writeFileSync(trunc, gz.subarray(0, Math.floor(gz.length / 2)));
    const r = await runCli(["scan", bin, join(tmp, "missing.log"), trunc, ...args], { env: { TZ: "UTC" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("missing.log: no such file");
    expect(r.stderr).toContain("trunc.log.gz: truncated gzip");
    const j = JSON.parse(r.stdout);
    expect(j.binary).toBe(1);
    expect(j.lines).toBeGreaterThan(30);
    if (process.getuid?.() !== 0) {
      const l = await runCli(["scan", locked, ...args]);
      expect(l.code).toBe(1);
    }
  });

  test("no filter and an unknown file: a clear usage error", async () => {
    const f = join(tmp, "unknown.txt");
    writeFileSync(f, "hello\n");
    const r = await runCli(["scan", f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("use --filter NAME");
  });

  const gen = join(ROOT, "../shared/bench/gen_auth_log.py");
  test.skipIf(!existsSync(gen))(
    "on the 1M-line benchmark log, failures equal the sshd failure lines",
    async () => {
      const big = join(tmp, "auth-1M.log");
      expect(Bun.spawnSync(["python3", gen, "1000000", big]).exitCode).toBe(0);
      const text = await Bun.file(big).text();
      let want = 0;
      for (const l of text.split("\n")) {
        if (
          l.includes(": Failed password for ") ||
          l.includes(": Invalid user ") ||
          l.includes("maximum authentication attempts exceeded")
        )
          want++;
      }
      const r = await runCli([
        "scan",
        big,
        "-f",
        "sshd",
        "-o",
        "json",
        "--now",
        String(Date.UTC(2026, 5, 1) / 1000),
      ]);
      const j = JSON.parse(r.stdout);
      expect(j.lines).toBe(1000000);
      expect(j.failures).toBe(want);
      expect(want).toBeGreaterThan(300000);
      // the same report, every ban included, when JavaScript alone matches (no PCRE2)
      const js = await runCli(
        ["scan", big, "-f", "sshd", "-o", "json", "--now", String(Date.UTC(2026, 5, 1) / 1000)],
        {
          env: { FAIL2TS_NO_PCRE: "1" },
        },
      );
      const strip = (o: Record<string, unknown>) => JSON.stringify({ ...o, seconds: 0 });
      expect(strip(JSON.parse(js.stdout))).toBe(strip(j));
      expect(j.bans.length).toBeGreaterThan(1000);
    },
    120000,
  );
});

describe("filters chosen from the files", () => {
  const dir = temps.make("fail2ts-auto-");
  const sshdLines = Array.from(
    { length: 20 },
    (_, i) =>
      `Jan  1 00:00:${String(i).padStart(2, "0")} h sshd[${100 + i}]: Invalid user u from 192.0.2.${i} port 22`,
  ).join("\n");

  test("by name, by content, in gzip too, and the choice is said", () => {
    const byName = join(dir, "auth.log.1");
    writeFileSync(byName, "nothing to see\n");
    const byContent = join(dir, "host-1.txt");
    writeFileSync(byContent, `${sshdLines}\n`);
    const gz = join(dir, "old.2.gz");
    writeFileSync(gz, gzipSync(`${sshdLines.replaceAll("sshd[", "postfix/smtpd[")}\n`));
    const other = join(dir, "other.txt");
    writeFileSync(other, "nothing here either\n");
    expect(autoSelect([byName])).toEqual([{ filter: "sshd", why: "file name auth.log" }]);
    expect(autoSelect([byContent])).toEqual([{ filter: "sshd", why: `content of ${byContent}` }]);
    expect(autoSelect([gz])).toEqual([{ filter: "postfix", why: `content of ${gz}` }]);
    expect(autoSelect([other, join(dir, "missing.log")])).toEqual([]);
  });

  test("the CLI says which it chose, and refuses to guess when nothing matches", async () => {
    const log = join(dir, "auth.log");
    writeFileSync(log, `${sshdLines}\n`);
    const r = await runCli(["scan", log, "-o", "json", "--now", "2026-06-01"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("using filter sshd (from the file name auth.log)");
    expect(JSON.parse(r.stdout).failures).toBe(20);
    const none = join(dir, "notes.txt");
    writeFileSync(none, "nothing\n");
    const bad = await runCli(["scan", none]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("no filter given and none recognised");
  });
});
