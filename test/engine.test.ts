/**
 * scan's native engine (src/scan/engine.c, built by the C compiler or by TinyCC) must give the
 * JavaScript path's chunk results exactly: counts, failures in order, ids, times. Every
 * built-in filter in every mode over our test lines, hostile and session-heavy generated logs
 * (eviction past 1000 sessions, expiry, long values, IPv6/DNS/invalid hosts, lines the engine
 * gives back to JavaScript mid-session), several filters at once, primed chunks, and the
 * executable end to end across a DST change and a year boundary.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { builtinFilterNames } from "../src/filter/index.ts";
import { engineOrigin } from "../src/scan/engine.ts";
import { IdTable, IdTranslation } from "../src/scan/ids.ts";
import { ChunkProcessor, type ChunkResult, type ScanFilterRef } from "../src/scan/process.ts";
import { authLog } from "./helpers/authlog.ts";
import { engineKinds, restoreEngineAfterEach } from "./helpers/engines.ts";
import { modesOf } from "./helpers/modes.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());
const dir = temps.make("f2t-engine-");

const root = new URL("..", import.meta.url).pathname;
const NOW = Date.UTC(2026, 5, 1) / 1000;
const BIN = process.env.FAIL2TS_BIN ?? join(root, "dist/fail2ts");

/** The engines to hold to JavaScript. */
const KINDS = engineKinds();
restoreEngineAfterEach();

interface Piece {
  data: string;
  /** Fed as ASCII bytes (the engine's way) rather than as text. */
  bytes: boolean;
  owned: boolean;
}

/** Lines in pieces as a reader hands them over: ASCII runs as bytes, the rest as text. */
function pieces(lines: string[], owned = true): Piece[] {
  const out: Piece[] = [];
  for (const l of lines) {
    const bytes = /^[\x00-\x7f]*$/.test(l);
    const last = out[out.length - 1];
    if (last && last.bytes === bytes && last.data.length < 50000) last.data += `${l}\n`;
    else out.push({ data: `${l}\n`, bytes, owned });
  }
  return out;
}

function chunk(
  kind: string,
  refs: ScanFilterRef[],
  input: Piece[],
  now = NOW,
): { r: ChunkResult; native: boolean } {
  process.env.FAIL2TS_ENGINE = kind;
  const run = new ChunkProcessor(refs, now).start(false);
  for (const p of input)
    if (p.bytes) run.feed(Buffer.from(p.data, "latin1"), p.owned, true);
    else run.feed(p.data, p.owned);
  const native = run.native;
  return { r: run.finish(0, 0), native };
}

/**
 * A chunk result with each failure's id by name: the engine numbers IPv4 ids as it meets them
 * and the others when JavaScript has named them, so the numbers may differ (nothing downstream
 * depends on them: ids are renumbered by name for the run).
 */
function canonical(r: ChunkResult) {
  const { ids, idIndex, idBase, ...rest } = r;
  return { ...rest, ids: [...ids].sort(), failures: [...idIndex].map((k) => ids[k - idBase]) };
}

/** The same chunk result from the JavaScript path and from every engine; true if one ran natively. */
function same(refs: ScanFilterRef[], input: Piece[], now = NOW): { js: ChunkResult; native: boolean } {
  const js = chunk("js", refs, input, now).r;
  let native = false;
  for (const kind of KINDS) {
    const e = chunk(kind, refs, input, now);
    expect(engineOrigin()).toBe(kind as "so" | "tcc");
    expect({ kind, ...canonical(e.r) }).toEqual({ kind, ...canonical(js) });
    native ||= e.native;
  }
  return { js, native };
}

const ALL_LINES = readdirSync(`${root}test/filter-lines`)
  .filter((f) => f.endsWith(".log"))
  .flatMap((f) => readFileSync(`${root}test/filter-lines/${f}`, "utf8").split("\n"))
  .filter((l) => l !== "" && !l.startsWith("#"));

/** A seeded generator of session-heavy sshd logs (see the describe below). */
function sessionLog(n: number, seed: number): string[] {
  let s = seed;
  const rnd = (k: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor((s / 2147483648) * k); // the high bits: an LCG's low bits cycle short
  };
  const hosts = [
    () => `203.0.113.${rnd(250) + 1}`,
    () => `2001:db8:${rnd(9)}::${(rnd(500) + 1).toString(16)}`,
    () => `bad${rnd(9)}.example.net`,
    () => `192.0.2.0${rnd(9)}`,
    () => `${"h".repeat(300)}.example`,
    () => `${"d".repeat(70)}.example`,
    () => ["0.0.0.0", "255.255.255.255", "0.0.0.1", "255.255.255.254"][rnd(4)]!, // the id table's edges
  ];
  const out: string[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += rnd(50) === 0 ? 400 : rnd(3); // now and then a gap past the sessions' 300 s
    const d = new Date(Date.UTC(2026, 2, 1) + t * 1000);
    const p2 = (v: number) => String(v).padStart(2, "0");
    const date = `Mar ${String(d.getUTCDate()).padStart(2, " ")} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
    const pid = i < n / 3 ? 10000 + (i % 1500) : 20000 + rnd(rnd(5) === 0 ? 2000 : 40); // > 1000 open sessions
    const ip = hosts[rnd(10) < 6 ? 0 : rnd(hosts.length)]!();
    const user = rnd(4) === 0 ? `u${"x".repeat(60)}${rnd(3)}` : ["root", "admin", "oracle"][rnd(3)]!;
    const host = rnd(8) === 0 ? `${"gw".repeat(30)}` : "gw";
    const msg = [
      `Failed password for ${user} from ${ip} port ${rnd(60000)} ssh2`,
      `Failed password for invalid user ${user} from ${ip} port ${rnd(60000)} ssh2`,
      `Invalid user ${user} from ${ip} port ${rnd(60000)}`,
      `Accepted password for ${user} from ${ip} port 22 ssh2`,
      `Connection closed by authenticating user ${user} ${ip} port 22 [preauth]`,
      `Disconnecting: Too many authentication failures [preauth]`,
      `Received disconnect from ${ip} port 22:11: Bye Bye [preauth]`,
      `pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=${ip}  user=${user}`,
      `Connection from ${ip} port ${rnd(60000)} on 10.0.0.1 port 22`,
      `Disconnected from invalid user ${user} ${ip} port 22 [preauth]`,
      `Unable to negotiate with ${ip} port 22: no matching key exchange method found.`,
      `error: PAM: Authentication failure for ${user} from ${ip}`,
    ][rnd(12)]!;
    const k = rnd(60);
    if (k === 0)
      out.push(`2026-03-01T10:00:${p2(t % 60)} ${host} sshd[${pid}]: ${msg}`); // back to JavaScript
    else if (k === 1) out.push(`Feb 30 10:00:00 ${host} sshd[${pid}]: ${msg}`);
    else if (k === 2) out.push(`${date} ${host} sshd[${pid}]: ${msg.replace("root", "r\u00f6ot")}`);
    else if (k === 3) out.push(`${date} ${host} sshd[${pid}]: \0${msg}`);
    else if (k === 4) out.push(`  ${msg} without a date`);
    else if (k === 5) out.push(`${date} ${host} sshd[${pid}]: ${msg}\r(a CR inside the line)`);
    else out.push(`${date} ${host} sshd[${pid}]: ${msg}${rnd(40) === 0 ? "\r" : ""}`);
  }
  return out;
}

describe("native engine = JavaScript path", () => {
  test("the engine runs here", () => {
    process.env.FAIL2TS_ENGINE = "tcc";
    expect(engineOrigin()).toBe("tcc");
    const { native } = chunk(
      "tcc",
      [{ ref: "sshd", jail: "sshd" }],
      pieces(["Jan  1 00:00:00 gw sshd[1]: x"]),
    );
    expect(native).toBe(true);
  });

  for (const name of builtinFilterNames())
    for (const mode of modesOf(name))
      test(`${name} ${mode ?? ""} over our test lines`, () => {
        const ref = mode ? `${name}[mode=${mode}]` : name;
        same([{ ref, jail: name }], pieces(ALL_LINES));
      });

  for (const mode of ["normal", "aggressive", "ddos", "extra"])
    test(`sshd sessions over a hostile generated auth.log, mode=${mode}`, () => {
      const { js, native } = same(
        [{ ref: `sshd[mode=${mode}]`, jail: "sshd" }],
        pieces(authLog(30000).split("\n")),
      );
      expect(native).toBe(true);
      expect(js.times.length).toBeGreaterThan(8192); // more than one batch of records
    });

  test("a log fed as text: every line matched in JavaScript, its sessions and records here", () => {
    const text = authLog(30000);
    const { js, native } = same(
      [{ ref: "sshd[mode=aggressive]", jail: "sshd" }],
      [{ data: text, bytes: false, owned: true }],
    );
    expect(native).toBe(true);
    expect(js.times.length).toBeGreaterThan(8192);
  });

  for (const seed of [1, 2, 3])
    test(`sessions: > 1000 open, expiry, long values, IPv6/DNS/bad hosts, lines given back (seed ${seed})`, () => {
      const lines = sessionLog(12000, seed);
      const { js, native } = same([{ ref: "sshd[mode=aggressive]", jail: "sshd" }], pieces(lines));
      expect(native).toBe(true);
      expect(js.invalid).toBeGreaterThan(0);
      expect(js.ids.some((id) => typeof id === "string" && id.includes(":"))).toBe(true);
      expect(js.binary).toBeGreaterThan(0);
    });

  // A session per connection (sshd[pid]): the "Connection from" line gives it its address, the
  // "Disconnecting" line is a failure only while the session remembers it. Fail2ban keeps 1000
  // sessions for 300 s: one more, and the oldest go; a gap of 300 s, and it is gone.
  for (const k of [999, 1000, 1001])
    for (const gap of [299, 300, 301])
      test(`session limits: ${k} open sessions, a gap of ${gap} s`, () => {
        const lines: string[] = [];
        const at = (s: number) =>
          `Mar  1 00:${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
        for (let p = 0; p < k; p++)
          lines.push(
            `${at(0)} gw sshd[${p}]: Connection from 203.0.113.${p % 200} port 1 on 10.0.0.1 port 22`,
          );
        for (let p = 0; p < k; p++)
          lines.push(`${at(0)} gw sshd[${p}]: Disconnecting: Too many authentication failures [preauth]`);
        lines.push(`${at(0)} gw sshd[5000]: Connection from 203.0.113.9 port 1 on 10.0.0.1 port 22`);
        lines.push(`${at(gap)} gw sshd[5000]: Disconnecting: Too many authentication failures [preauth]`);
        const { js, native } = same([{ ref: "sshd", jail: "sshd" }], pieces(lines));
        expect(native).toBe(true);
        expect(js.times.length).toBe((k > 1000 ? 0 : k) + (gap < 300 ? 1 : 0));
      });

  test("a filter of the user's own: alt_ groups against the prefregex's, <F-ID>, mlfgained", () => {
    const file = join(dir, "app.toml");
    writeFileSync(
      file,
      [
        'description = "test"',
        "prefregex = '^\\s*<F-MLFID>\\S+ app\\[\\d+\\]:</F-MLFID> (?:user=<F-USER>\\S+</F-USER> )?<F-CONTENT>.+</F-CONTENT>$'",
        "failregex = [",
        "  '^fail alt=<F-ALT_USER>\\S*</F-ALT_USER> from <HOST>$',",
        "  '^hello <F-NOFAIL>\\S+</F-NOFAIL> alt=<F-ALT_USER_2>\\S*</F-ALT_USER_2>$',",
        "  '^fail id=<F-ID>\\S+</F-ID>(?: from <HOST>)?$',",
        "  '^ok <F-MLFGAINED>\\S+</F-MLFGAINED>$',",
        "  '^bye<F-MLFFORGET></F-MLFFORGET>$',",
        "  '^late$',",
        "]",
      ].join("\n"),
    );
    let seed = 5;
    const rnd = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor((seed / 2147483648) * k);
    };
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const user = ["", "user=alice ", "user=bob "][rnd(3)];
      const alt = ["", "carol", "dave"][rnd(3)];
      const msg = [
        `fail alt=${alt} from 203.0.113.${rnd(9)}`,
        `hello x alt=${alt}`,
        `fail id=${["k1", "k2", "203.0.113.7", "2001:db8::1"][rnd(4)]}${rnd(2) ? " from 203.0.113.8" : ""}`,
        "ok y",
        "bye",
        "late",
      ][rnd(6)];
      lines.push(
        `Mar  1 00:${String(Math.floor(i / 600)).padStart(2, "0")}:00 h app[${rnd(20)}]: ${user}${msg}`,
      );
    }
    const { js, native } = same([{ ref: file, jail: "app" }], pieces(lines));
    expect(native).toBe(true);
    expect(js.ids).toContain("k1");
  });

  test("several filters at once, and a primed start", () => {
    const lines = sessionLog(6000, 9);
    const refs = [
      { ref: "sshd", jail: "a" },
      { ref: "sshd[mode=ddos]", jail: "b" },
      { ref: "pam-generic", jail: "c" },
    ];
    same(refs, [...pieces(lines.slice(0, 2000), false), ...pieces(lines.slice(2000))]);
  });

  test("a processor numbers each id once across its chunks, the engine as JavaScript", () => {
    const lines = sessionLog(9000, 4);
    const parts = [lines.slice(0, 3000), lines.slice(3000, 6000), lines.slice(0, 3000), lines.slice(6000)];
    const through = (kind: string) => {
      process.env.FAIL2TS_ENGINE = kind;
      const proc = new ChunkProcessor([{ ref: "sshd", jail: "j" }], NOW);
      const table = new IdTable();
      const tr = new IdTranslation(table);
      return parts.map((part) => {
        const run = proc.start(false);
        for (const p of pieces(part))
          if (p.bytes) run.feed(Buffer.from(p.data, "latin1"), p.owned, true);
          else run.feed(p.data, p.owned);
        const r = run.finish(0, 0);
        tr.extend(r.idBase, r.ids);
        return { fresh: r.ids.length, failures: [...r.idIndex].map((k) => table.name(tr.map[k]!)) };
      });
    };
    const js = through("js");
    expect(js[0]!.fresh).toBeGreaterThan(100);
    expect(js[2]!.fresh).toBe(0); // the first part again: nothing new
    expect(js[2]!.failures).toEqual(js[0]!.failures);
    for (const kind of KINDS) expect({ kind, r: through(kind) }).toEqual({ kind, r: js });
  });

  test("a host longer than the record buffer", () => {
    const big = `${"a".repeat(100000)}.example`;
    const lines = [
      `Mar  1 00:00:00 gw sshd[7]: Invalid user ${"u".repeat(70000)} from ${big} port 1`,
      `Mar  1 00:00:01 gw sshd[7]: Failed password for invalid user x from 203.0.113.5 port 1 ssh2`,
      `Mar  1 00:00:02 gw sshd[8]: Failed password for root from ${big} port 1 ssh2`,
    ];
    const { js } = same([{ ref: "sshd", jail: "sshd" }], pieces(lines));
    expect(js.invalid).toBeGreaterThan(0);
  });
});

describe("native engine in the executable", () => {
  /** scan -o json with each engine, `seconds` aside; they must be the same document. */
  function scanned(kind: string, file: string, env: Record<string, string>) {
    const r = Bun.spawnSync([BIN, "scan", "--filter", "sshd[mode=aggressive]", "-o", "json", file], {
      env: { ...process.env, ...env, FAIL2TS_ENGINE: kind },
    });
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout.toString());
    doc.seconds = 0;
    return doc;
  }

  test("across a DST change (Europe/Berlin) and a year boundary", () => {
    const lines: string[] = [];
    // 2025-03-30: Berlin's clocks go from 02:00 to 03:00; 2025-10-26: from 03:00 back to 02:00
    for (const day of ["Mar 30", "Oct 26", "Dec 31", "Jan  1", "Jan  2"])
      for (let h = 0; h < 5; h++)
        for (let m = 0; m < 60; m += 7)
          lines.push(
            `${day} ${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:0${m % 10} gw sshd[${h * 60 + m}]: Failed password for root from 203.0.113.${(h * 7 + m) % 50} port 22 ssh2`,
          );
    const file = join(dir, "days.log");
    writeFileSync(file, `${lines.join("\n")}\n`);
    // "now" is the real clock: Jan 2 is ahead of it unless today is Jan 1 or 2
    const env = { TZ: "Europe/Berlin" };
    const js = scanned("js", file, env);
    expect(js.failures).toBe(lines.length);
    for (const kind of KINDS) expect(scanned(kind, file, env)).toEqual(js);
  });
});
