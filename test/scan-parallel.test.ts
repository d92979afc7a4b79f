/**
 * `scan` in pieces: a file cut into many chunks, scanned by child processes, gives the same
 * report as one in-process pass (lines, failures, bans, times), whatever the blocks, the
 * encodings (ASCII, UTF-8, CRLF) and the line lengths.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { runMain } from "../src/cli/main.ts";
import { loadFilter } from "../src/filter/index.ts";
import { startWorkers } from "../src/scan/pool.ts";
import { guidedRanges } from "../src/scan/ranges.ts";
import { runScan, type ScanOptions, type ScanReport } from "../src/scan/scan.ts";
import { expandInputs } from "../src/source/inputs.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const tmp = temps.make("fail2ts-scanpar-");
const NOW = Date.UTC(2026, 5, 1) / 1000;

function log(lines: number, seed: number, extra: (i: number) => string | null = () => null): string {
  let x = seed;
  const rnd = (n: number) => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
  const out: string[] = [];
  const mon = ["Jan", "Feb", "Mar"];
  for (let i = 0; i < lines; i++) {
    const t = i * 3;
    const d = 1 + Math.floor(t / 86400);
    const s = t % 86400;
    const p = (n: number) => String(n).padStart(2, "0");
    const date = `${mon[0]} ${String(d).padStart(2, " ")} ${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}`;
    const pid = 1000 + Math.floor(i / 3);
    const ip = rnd(4) === 0 ? `2001:db8::${rnd(40).toString(16)}` : `198.51.100.${rnd(60)}`;
    const e = extra(i);
    if (e !== null) {
      out.push(`${date} ${e}`);
      continue;
    }
    switch (rnd(6)) {
      case 0:
        out.push(`${date} srv sshd[${pid}]: Connection from ${ip} port 4${rnd(9999)} on 192.0.2.1 port 22`);
        break;
      case 1:
        out.push(`${date} srv sshd[${pid}]: Disconnecting: Too many authentication failures [preauth]`);
        break;
      case 2:
        out.push(`${date} srv sshd[${pid}]: Invalid user u${rnd(30)} from ${ip} port ${rnd(65535)}`);
        break;
      case 3:
        out.push(`${date} srv sshd[${pid}]: Failed password for root from ${ip} port ${rnd(65535)} ssh2`);
        break;
      case 4:
        out.push(`${date} srv sshd[${pid}]: Accepted publickey for deploy from ${ip} port 22 ssh2`);
        break;
      default:
        out.push(`${date} srv CRON[${pid}]: pam_unix(cron:session): session opened for user root`);
    }
  }
  return `${out.join("\n")}\n`;
}

const base: Omit<ScanOptions, "workers"> = {
  filters: [{ ref: "sshd", jail: "sshd" }],
  maxretry: 3,
  findtime: 600,
  bantime: 600,
  ignoreip: [],
  now: NOW,
};

function comparable(r: ScanReport) {
  const { seconds: _s, files, ...rest } = r;
  return { ...rest, files: files.map((f) => ({ ...f, path: "" })) };
}

async function scan(path: string, workers: number, chunkBytes: number) {
  return comparable(await runScan(expandInputs([path]).files, { ...base, workers, chunkBytes }));
}

describe("scan in pieces", () => {
  test("child processes and many chunks give the in-process report", async () => {
    const path = join(tmp, "auth.log");
    writeFileSync(path, log(40_000, 7));
    const one = await scan(path, 0, 64 << 20);
    expect(one.failures).toBeGreaterThan(10_000);
    expect(one.bans.length).toBeGreaterThan(10);
    // same chunks in-process and in children: the same report by construction
    const chunks = await scan(path, 0, 256 << 10);
    expect(await scan(path, 2, 256 << 10)).toEqual(chunks);
    // and with sessions shorter than the lead-in, chunking does not change anything
    expect(chunks).toEqual(one);
  }, 60_000);

  test("UTF-8, CRLF, NUL, long lines and a missing final newline across chunk ends", async () => {
    const path = join(tmp, "mixed.log");
    const long = "x".repeat(2_500_000); // longer than a read block
    const text = log(20_000, 11, (i) =>
      i % 997 === 0
        ? `srv sshd[${i}]: Invalid user \u00e9l\u00e8ve from 203.0.113.${i % 50} port 1`
        : i % 1409 === 0
          ? `srv sshd[${i}]: Failed password for root from 203.0.113.${i % 50} port 2 ssh2\r`
          : i === 5003
            ? `srv kernel: ${long}`
            : i % 7001 === 0
              ? "srv bin\u0000ary"
              : null,
    );
    writeFileSync(path, text.slice(0, -1));
    const one = await scan(path, 0, 64 << 20);
    expect(one.binary).toBeGreaterThan(0);
    const chunks = await scan(path, 0, 128 << 10);
    expect(await scan(path, 2, 128 << 10)).toEqual(chunks);
    expect(chunks.lines).toBe(one.lines);
    expect(chunks.failures).toBe(one.failures);
    expect(chunks.bans).toEqual(one.bans);
  }, 60_000);

  test("gzip text goes to the child processes in pieces too", async () => {
    const path = join(tmp, "auth.log.1.gz");
    writeFileSync(path, gzipSync(log(30_000, 3)));
    const one = await scan(path, 0, 64 << 20);
    expect(one.failures).toBeGreaterThan(5_000);
    const chunks = await scan(path, 0, 256 << 10);
    expect(await scan(path, 2, 256 << 10)).toEqual(chunks);
    expect(chunks.bans).toEqual(one.bans);
    expect(chunks.failures).toBe(one.failures);
  }, 60_000);
});

/** Whether process `pid` still runs (a zombie has exited). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function gone(pids: number[]): Promise<boolean> {
  for (let i = 0; i < 200 && pids.some(running); i++) await Bun.sleep(10);
  return !pids.some(running);
}

describe("workers started ahead of a scan", () => {
  test("the scan's pool takes them (and its report is the same)", async () => {
    const path = join(tmp, "ahead.log");
    writeFileSync(path, log(20_000, 11));
    const inProcess = await scan(path, 0, 256 << 10);
    const pids = startWorkers(2, 0);
    expect(pids.length).toBe(2);
    expect(pids.every(running)).toBe(true);
    expect(await scan(path, 2, 256 << 10)).toEqual(inProcess);
    // the pool closed them at its end; workers no pool took would still wait for tasks
    expect(await gone(pids)).toBe(true);
  }, 60_000);

  test("a scan that does not start (a usage error) stops them", async () => {
    const path = join(tmp, "ahead.log");
    const before = process.exitCode;
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((s: string) => lines.push(String(s)) > 0) as typeof process.stderr.write;
    let code: number;
    try {
      code = await runMain(["bun", "fail2ts", "scan", "-j", "2", "--filter", "no-such-filter", path]);
    } finally {
      process.stderr.write = write;
      process.exitCode = before;
    }
    expect(code).toBe(2);
    expect(lines.join("")).toContain("no-such-filter");
    const kids = readdirSync("/proc/self/task").flatMap((t) =>
      readFileSync(`/proc/self/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number),
    );
    expect(await gone(kids)).toBe(true);
  }, 60_000);
});

test("workers compile the filter the scan loaded: its file is not read again", async () => {
  const dir = temps.make("fail2ts-spec-");
  const file = join(dir, "mine.toml");
  writeFileSync(file, `failregex = ['^\\s*\\S+ sshd\\[\\d+\\]: Invalid user \\S+ from <HOST> port \\d+$']\n`);
  const path = join(dir, "auth.log");
  writeFileSync(path, log(20_000, 5));
  const spec = loadFilter(file);
  rmSync(file); // a worker that reads it again fails
  const opts = { ...base, filters: [{ ref: file, jail: "mine", spec }], chunkBytes: 256 << 10 };
  const files = expandInputs([path]).files;
  const report = await runScan(files, { ...opts, workers: 2 });
  expect(report.failures).toBeGreaterThan(2_000);
  expect(comparable(report)).toEqual(comparable(await runScan(files, { ...opts, workers: 0 })));
}, 60_000);

test("a file's ranges: all of it once, big first, small last, none a sliver", () => {
  const M = 1 << 20;
  for (const [size, workers] of [
    [106 * M, 2],
    [21 * M, 2],
    [8.4 * M, 2],
    [3 * M, 2],
    [1024 * M + 12345, 2],
    [106 * M, 1],
    [106 * M, 8],
  ] as const) {
    const plan = guidedRanges(size, 4 * M, 16 * M, workers, 256 << 10);
    expect(plan[0]!.start).toBe(0);
    expect(plan.at(-1)!.end).toBe(size);
    plan.forEach((r, i) => {
      if (i > 0) expect(r.start).toBe(plan[i - 1]!.end);
      expect(r.prime).toBe(Math.max(0, r.start - (256 << 10)));
      const n = r.end - r.start;
      expect(n).toBeLessThanOrEqual(16 * M);
      if (i < plan.length - 1) expect(n).toBeGreaterThanOrEqual(4 * M);
      else expect(n >= 2 * M || plan.length === 1).toBe(true);
      if (i > 0 && i < plan.length - 1) expect(n).toBeLessThanOrEqual(plan[i - 1]!.end - plan[i - 1]!.start);
    });
    // a worker each at least, when there is enough to share
    if (size >= 8 * M)
      expect(plan.length).toBeGreaterThanOrEqual(Math.min(workers, Math.floor(size / (4 * M))));
  }
});
