/**
 * Bad configurations through the real binary: `run` and `check` both print
 * `fail2ts: FILE:LINE:COL: KEY: what is wrong`, exit 2, and touch nothing (no socket, no
 * database, no action run).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "bun";
import { binary } from "./daemon-helpers.ts";

let dir: string;
beforeAll(() => {
  binary();
  dir = mkdtempSync(join(tmpdir(), "f2ts-e2e-conf-"));
}, 120000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HEAD = `[server]
socket = "run/s.sock"
database = "db/f.db"
logtarget = "f.log"

[actions.file]
type = "command"
ban = ["/bin/sh", "-c", "echo ban >> banned.txt"]

`;

// [name, jail/extra text appended after HEAD, expected message after "fail2ts: <dir>/fail2ts.toml:"]
const CASES: Array<[string, string, string]> = [
  [
    "unknown key",
    '[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\nbogus = 1\n',
    "13:1: jails.sshd.bogus: unknown key",
  ],
  [
    "typo'd key",
    '[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\nfindtim = "1m"\n',
    '13:1: jails.sshd.findtim: unknown key (did you mean "findtime"?)',
  ],
  [
    "wrong type",
    '[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\nenabled = "yes"\n',
    '13:1: jails.sshd.enabled: expected true or false, got the string "yes"',
  ],
  [
    "bad duration",
    '[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\nbantime = "1 fortnight"\n',
    '13:1: jails.sshd.bantime: expected a duration (600, "90s", "10m", "1h30m", "1d", -1 or "forever"), got the string "1 fortnight"',
  ],
  [
    "bad filter",
    '[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\nfilter = "sshd[mode=bogus]"\n',
    '13:11: jails.sshd.filter: filter sshd has no mode "bogus" (modes: normal, ddos, extra, aggressive)',
  ],
  [
    "unknown action",
    '[jails.sshd]\nlogpath = "a.log"\naction = ["file", "fw"]\n',
    /^12:20: jails.sshd.action: unknown action "fw" \(built-in: /,
  ],
  [
    "bad action option",
    '[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\n[actions.file2]\ntype = "command"\nban = "not argv"\n',
    '15:1: actions.file2.ban: an argv array such as ["/usr/local/bin/x", "<ip>"] (or set shell = true for a string)',
  ],
  [
    "bad ignoreip",
    '[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\nignoreip = ["1.2.3.4/40"]\n',
    '13:14: jails.sshd.ignoreip: "1.2.3.4/40" is not an IP address, CIDR, DNS name or file:PATH',
  ],
  ["TOML syntax", '[jails.sshd]\nlogpath = "a.log\n', /^11:\d+: /],
].map(([a, b, c]) => [a as string, b as string, c as string]) as never;

describe("bad configs through the binary", () => {
  for (const [name, text, want] of CASES as Array<[string, string, string | RegExp]>) {
    for (const cmd of ["run", "check"]) {
      test(`${cmd}: ${name}`, () => {
        const d = join(dir, `${cmd}-${name.replace(/\W+/g, "-")}`);
        mkdirSync(d, { recursive: true });
        const conf = join(d, "fail2ts.toml");
        writeFileSync(conf, HEAD + text);
        writeFileSync(join(d, "a.log"), "");
        const r = spawnSync([binary(), cmd, "-c", conf], {
          cwd: d,
          stdout: "pipe",
          stderr: "pipe",
          env: { ...process.env, NO_COLOR: "1" },
        });
        const err = r.stderr.toString();
        expect(r.exitCode).toBe(2);
        const first = err.split("\n")[0]!;
        expect(first.startsWith(`fail2ts: ${conf}:`)).toBe(true);
        const rest = first.slice(`fail2ts: ${conf}:`.length);
        if (typeof want === "string") expect(rest).toBe(want);
        else expect(rest).toMatch(want);
        expect(existsSync(join(d, "run"))).toBe(false);
        expect(existsSync(join(d, "db"))).toBe(false);
        expect(existsSync(join(d, "banned.txt"))).toBe(false);
        expect(r.stdout.toString()).toBe("");
      });
    }
  }

  test("every problem gets its own line", () => {
    const d = join(dir, "many");
    mkdirSync(d, { recursive: true });
    const conf = join(d, "fail2ts.toml");
    writeFileSync(
      conf,
      `${HEAD}[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\nmaxretry = -1\nfindtime = "x"\n`,
    );
    const r = spawnSync([binary(), "check", "-c", conf], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString().trim().split("\n")).toEqual([
      `fail2ts: ${conf}:13:1: jails.sshd.maxretry: expected a whole number from 1 up, got number -1`,
      `fail2ts: ${conf}:14:1: jails.sshd.findtime: expected a duration (600, "90s", "10m", "1h30m", "1d"), got the string "x"`,
    ]);
  });

  test("a missing config file", () => {
    const r = spawnSync([binary(), "run", "-c", join(dir, "nope.toml")], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toBe(`fail2ts: ${join(dir, "nope.toml")}: no such configuration file\n`);
  });

  test("check prints the effective config (TOML and JSON)", () => {
    const d = join(dir, "good");
    mkdirSync(d, { recursive: true });
    const conf = join(d, "fail2ts.toml");
    writeFileSync(
      conf,
      `${HEAD}[defaults]\nbantime = "1h"\n[jails.sshd]\nlogpath = "a.log"\naction = ["file"]\n`,
    );
    writeFileSync(join(d, "a.log"), "");
    const t = spawnSync([binary(), "check", "-c", conf], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, NO_COLOR: "1" },
    });
    expect(t.exitCode).toBe(0);
    expect(t.stdout.toString()).toContain('[jails.sshd]\nenabled = true\nfilter = "sshd"');
    expect(t.stdout.toString()).toContain('bantime = "1h"');
    const j = spawnSync([binary(), "check", "-c", conf, "-o", "json"], { stdout: "pipe", stderr: "pipe" });
    const eff = JSON.parse(j.stdout.toString());
    expect(eff.jails.sshd.bantime).toBe(3600);
    expect(eff.jails.sshd.logpath).toEqual([join(d, "a.log")]);
    expect(eff.server.socket).toBe(join(d, "run/s.sock"));
  });
});
