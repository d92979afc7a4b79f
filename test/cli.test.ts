import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const tmp = temps.make("fail2ts-cli-");

describe("the CLI", () => {
  test("--version and --help", async () => {
    const v = await runCli(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^fail2ts \d+\.\d+\.\d+/);
    const h = await runCli(["--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("regex-test");
    expect(h.stdout).toContain("scan");
    expect(h.stdout).toContain("Examples:");
  });

  test("every subcommand has --help with examples", async () => {
    for (const cmd of [["regex-test"], ["scan"], ["filters"]]) {
      const r = await runCli([...cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Examples:");
    }
  });

  test("unknown command or option: one-line message, usage hint, exit 2", async () => {
    const c = await runCli(["frobnicate"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("unknown command");
    const o = await runCli(["scan", "--frob", "x"]);
    expect(o.code).toBe(2);
    expect(o.stderr).toContain("unknown option");
    expect(o.stderr).toContain("--help");
  });

  test("user errors have no stack trace unless FAIL2TS_DEBUG=1", async () => {
    const r = await runCli(["regex-test", "x", "no-such-filter"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('fail2ts: no built-in filter named "no-such-filter" (see: fail2ts filters)\n');
    const d = await runCli(["regex-test", "x", "no-such-filter"], { env: { FAIL2TS_DEBUG: "1" } });
    expect(d.stderr).toContain("at ");
  });

  test("no colour on a pipe", async () => {
    const r = await runCli(
      ["regex-test", "Jan  1 00:00:01 h sshd[1]: Invalid user x from 192.0.2.1", "sshd"],
      {
        env: { NO_COLOR: "" },
      },
    );
    expect(r.stdout).not.toContain("\x1b[");
  });

  test("a bad filter file names file:line and exits 2", async () => {
    const f = join(tmp, "bad.toml");
    writeFileSync(f, "description = \"bad\"\nfailregex = [\n  '^ok <HOST>$',\n  '^broken (<HOST>$',\n]\n");
    const r = await runCli(["regex-test", "x", f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^fail2ts: ${f}:4:\\d+: invalid regex`));
    const g = join(tmp, "syntax.toml");
    writeFileSync(g, 'description = "bad"\nfailregex = [\n');
    const s = await runCli(["regex-test", "x", g]);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(new RegExp(`^fail2ts: ${g}:\\d+:\\d+: `));
    const u = join(tmp, "unknown.toml");
    writeFileSync(u, 'description = "bad"\nfailregex = ["^x <HOST>$"]\nfailregexx = []\n');
    const k = await runCli(["regex-test", "x", u]);
    expect(k.stderr).toBe(`fail2ts: ${u}:3:1: failregexx: unknown key in a filter file\n`);
    const a = join(tmp, "atomic.toml");
    writeFileSync(a, "description = \"bad\"\nfailregex = ['^(?>x) <HOST>$']\n");
    const at = await runCli(["regex-test", "x", a]);
    expect(at.code).toBe(2);
    expect(at.stderr).toContain(`${a}:2:`);
    expect(at.stderr).toContain("atomic group");
  });

  test("filter options: unknown option and unknown mode are clear errors", async () => {
    const r = await runCli(["regex-test", "x", "sshd", "--opt", "modus=aggressive"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('filter sshd has no option "modus" (options: mode,');
    const m = await runCli(["regex-test", "x", "sshd[mode=agressive]"]);
    expect(m.code).toBe(2);
    expect(m.stderr).toBe(
      'fail2ts: filter sshd has no mode "agressive" (modes: normal, ddos, extra, aggressive)\n',
    );
  });
});

describe("regex-test", () => {
  const log = join(tmp, "auth.log");
  writeFileSync(
    log,
    [
      "Mar  3 10:00:01 web1 sshd[100]: Failed password for root from 203.0.113.7 port 40000 ssh2",
      "Mar  3 10:00:02 web1 sshd[101]: Accepted publickey for deploy from 192.0.2.10 port 40001 ssh2: ED25519 SHA256:x",
      "Mar  3 10:00:03 web1 sshd[102]: Invalid user oracle from 2001:DB8::0:1 port 40002",
      "Mar  3 10:00:04 web1 CRON[103]: pam_unix(cron:session): session opened for user root",
      "Mar  3 10:00:05 web1 sshd[104]: Invalid user x from 999.1.1.1 port 40002",
      "",
    ].join("\n"),
  );

  test("--json: one object per line, the conformance contract", async () => {
    const r = await runCli(["regex-test", log, "sshd", "--json", "--now", "1772500000"], {
      env: { TZ: "UTC" },
    });
    expect(r.code).toBe(0);
    const rows = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows.map((x) => x.line)).toEqual([1, 2, 3, 4, 5]);
    expect(rows.map((x) => x.match)).toEqual([true, false, true, false, false]);
    expect(rows[0]).toMatchObject({
      host: "203.0.113.7",
      user: "root",
      time: Date.UTC(2026, 2, 3, 10, 0, 1) / 1000,
    });
    expect(rows[2]).toMatchObject({ host: "2001:db8::1", user: "oracle" });
  });

  test("for people: counts, regex hits, matches", async () => {
    const r = await runCli(["regex-test", log, "sshd", "--show-missed"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("5 read, 2 matched");
    expect(r.stdout).toContain("Failregex hits:");
    expect(r.stdout).toContain("203.0.113.7");
    expect(r.stdout).toContain("Missed lines:");
    expect(r.stdout).toContain("with an invalid host (skipped)");
  });

  test("a single line and a regex given on the command line", async () => {
    const r = await runCli([
      "regex-test",
      "Mar  3 10:00:01 h app: login failed for bob from 198.51.100.4",
      "login failed for \\S+ from <HOST>$",
      "--json",
    ]);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ match: true, host: "198.51.100.4" });
  });

  test("stdin", async () => {
    const r = await runCli(["regex-test", "-", "sshd", "--json"], {
      stdin: "Mar  3 10:00:01 h sshd[1]: Invalid user a from 192.0.2.9\n",
    });
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ match: true, host: "192.0.2.9" });
  });

  test("filters lists and shows the built-in filters", async () => {
    const l = await runCli(["filters", "-o", "json"]);
    const list = JSON.parse(l.stdout);
    expect(list.find((f: { name: string }) => f.name === "sshd")?.description).toContain("OpenSSH");
    const s = await runCli(["filters", "show", "sshd"]);
    expect(s.stdout).toContain("modes:   normal, ddos, extra, aggressive");
  });
});
