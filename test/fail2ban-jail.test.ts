/**
 * Fail2ban jails and actions as fail2ts reads them: jail.conf → jail.d/*.conf → jail.local →
 * jail.d/*.local, known/ values, filter options, actions mapped to fail2ts's own or run as shell
 * commands with every ban value quoted. With Debian's fail2ban installed, `fail2ban-client -d`
 * (which only prints the configuration) is the oracle.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createAction } from "../src/action/registry.ts";
import { ConfigError, loadConfig } from "../src/config/load.ts";
import { isFail2banDir, loadFail2banConfig } from "../src/fail2ban/config.ts";
import { readFail2banJails } from "../src/fail2ban/jail.ts";
import { protectTags, shellContexts } from "../src/fail2ban/shell.ts";
import { runCli } from "./helpers/cli.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const FIX = join(import.meta.dir, "fixtures", "fail2ban", "basic");
const QUIET = { debug() {}, info() {}, warn() {}, error() {} };

function copyFixture(extra: Record<string, string> = {}): string {
  const d = temps.make("f2ts-jail-");
  cpSync(FIX, d, { recursive: true });
  for (const [f, body] of Object.entries(extra)) writeFileSync(join(d, f), body);
  return d;
}

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.where}: ${i.key}: ${i.message}`);
    throw e;
  }
  return [];
}

describe("jails of the fixture", () => {
  const r = readFail2banJails(FIX);
  const jail = (n: string) => r.jails.find((j) => j.name === n)!;
  test("enabled jails, in the order Fail2ban reads them; where each was enabled", () => {
    expect(r.issues).toEqual([]);
    expect(r.jails.map((j) => j.name)).toEqual(["testd", "web", "journald"]);
    expect(jail("testd").where).toBe(`${FIX}/jail.d/10-testd.conf:2`);
    expect(r.files.map((f) => f.slice(FIX.length + 1))).toEqual([
      "paths.conf",
      "paths-overrides.local",
      "jail.conf",
      "jail.d/10-testd.conf",
      "jail.local",
      "jail.d/20-web.local",
    ]);
  });
  test("values: includes, known/, DEFAULT, times", () => {
    const c = jail("testd").config;
    expect(c.logpath).toEqual(["/var/log/testd/current.log", "/var/log/testd/extra.log"]);
    expect([c.maxretry, c.findtime, c.bantime]).toEqual([3, 3600, 5400]);
    expect(c.ignoreip).toEqual(["127.0.0.1/8", "::1", "192.0.2.0/24"]);
    expect([c.port, c.protocol, c.backend, c.usedns]).toEqual(["2222", "tcp", "auto", "warn"]);
    const w = jail("web").config;
    expect(w.logpath).toEqual(["/var/log/webapp/*.log", "/var/log/webapp.log"]);
    expect(w.bantime).toBe(-1);
    expect(w.maxretry).toBe(2);
  });
  test("the filter: the jail's failregex = %(known/failregex)s + its own; filter options", () => {
    const f = jail("testd").filter;
    expect(f.spec.failregex.map((x) => x.text)).toEqual([
      "^auth failure for <F-USER>\\S+</F-USER> from <HOST>$",
      "^bad key from <HOST>$",
      "^LOCAL deny from <HOST>$",
    ]);
    expect(f.spec.failregex[2]!.where).toBe(`${FIX}/jail.local:8`);
    expect(f.jailOverrides).toEqual(["failregex"]);
    expect(jail("web").filter.spec.failregex[0]!.text).toStartWith("^ \\[warn\\] app, v2: ");
    expect(jail("web").filter.options).toEqual({ level: "warn", tag: "app, v2" });
  });
  test("backend = systemd: the journal, the filter's journalmatch, logtype=journal", () => {
    const j = jail("journald");
    expect(j.config.backend).toBe("journal");
    expect(j.config.journalmatch).toEqual(["_SYSTEMD_UNIT=testd.service", "+", "_COMM=testd"]);
    expect(j.filter.spec.options.logtype).toBe("journal");
    expect(j.config.logpath).toEqual([]);
  });
  test("actions: nftables and hostsdeny become fail2ts's own, the others shell commands", () => {
    expect(jail("testd").actions.map((a) => [a.key, a.type, a.options.port])).toEqual([
      ["testd.nftables", "nftables", "2222"],
      ["testd.notify", "command", undefined],
    ]);
    expect(jail("web").actions.map((a) => [a.key, a.type])).toEqual([
      ["web.hostsdeny", "hostsdeny"],
      ["web.notify", "command"],
    ]);
    expect(jail("web").actions[0]!.options).toEqual({ daemons: "sshd, httpd" });
  });
  test("a Python action is a warning naming the file; the jail runs without it", () => {
    expect(r.skipped).toEqual([
      `${FIX}/action.d/pyaction.py: a Python action cannot run in fail2ts; jail testd runs without it`,
    ]);
  });
});

describe("loadFail2banConfig: the daemon's LoadedConfig", () => {
  const l = loadFail2banConfig(FIX);
  test("jails, compiled filters, actions, server", () => {
    expect(l.config.jails.map((j) => j.name)).toEqual(["testd", "web", "journald"]);
    expect([...l.filters.keys()]).toEqual(["testd", "web", "journald"]);
    expect(Object.keys(l.config.actions)).toContain("testd.notify");
    // fail2ban.conf + fail2ban.local; Fail2ban's own socket and database are not taken over
    expect(l.config.server).toMatchObject({
      loglevel: "info",
      logtarget: "/var/log/fail2ban.log",
      dbpurgeage: 172800,
      socket: "/run/fail2ts/fail2ts.sock",
      database: "/var/lib/fail2ts/fail2ts.db",
    });
    expect(l.warnings.some((w) => w.includes("pyaction.py"))).toBe(true);
  });
  test("loadConfig(dir) reads a Fail2ban directory the same way", () => {
    expect(isFail2banDir(FIX)).toBe(true);
    expect(loadConfig(FIX).config.jails.map((j) => j.name)).toEqual(["testd", "web", "journald"]);
  });
  test("changed socket and database paths are used (the database as fail2ts.db beside it)", () => {
    const d = copyFixture({
      "fail2ban.local": "[Definition]\nsocket = /tmp/x/f.sock\ndbfile = /tmp/x/f2b.sqlite3\n",
    });
    expect(loadFail2banConfig(d).config.server).toMatchObject({
      socket: "/tmp/x/f.sock",
      database: "/tmp/x/fail2ts.db",
    });
  });
});

describe("errors: every problem, each at its file:line", () => {
  test("a missing filter, a bad number, a missing action, a bad time", () => {
    const d = copyFixture({
      "jail.local": [
        "[testd]",
        "filter = nosuch",
        "[web]",
        "maxretry = many",
        "findtime = soon",
        "[journald]",
        "enabled = true",
        "action = nosuchaction",
      ].join("\n"),
    });
    const issues = issuesOf(() => loadFail2banConfig(d)).map((i) => i.replace(d, "DIR"));
    expect(issues).toEqual([
      'DIR/jail.local:2: jails.testd: cannot read the filter "nosuch" (filter.d/nosuch.conf)',
      'DIR/jail.local:4: jails.web.maxretry: expected a whole number from 1 up, got "many"',
      'DIR/jail.local:5: jails.web.findtime: expected a time (600, 10m, 1h30m, 1d), got "soon"',
      "DIR/jail.local:8: jails.journald.action: no action file action.d/nosuchaction.conf",
    ]);
  });
  test("an unreadable directory", () => {
    expect(issuesOf(() => loadFail2banConfig("/nonexistent"))[0]).toContain("not a Fail2ban directory");
  });
});

describe("shell actions: values quoted wherever they land", () => {
  test("shellContexts", () => {
    const s = `a 'b' "c $(d) 'e'" <<EOF\nf\nEOF\ng`;
    const ctx = shellContexts(s);
    const at = (ch: string) => ctx[s.indexOf(ch)];
    expect([at("a"), at("b"), at("c"), at("d"), at("e"), at("f"), at("g")]).toEqual([
      "N",
      "S",
      "D",
      "N",
      "D",
      "H",
      "N",
    ]);
  });
  test("protectTags", () => {
    const vals = new Set(["ip", "matches"]);
    expect(protectTags(`echo <ip> '<ip>' "<ip>" <other>`, vals)).toBe(
      `echo "\${F2T_IP}" ''"\${F2T_IP}"'' "\${F2T_IP}" <''other>`,
    );
    expect(protectTags(`echo "$(echo '<ip>')" \`echo <ip>\``, vals)).toBe(
      `echo "$(echo ''"\${F2T_IP}"'')" \`echo "\${F2T_IP}"\``,
    );
    expect(protectTags(`cat <<EOF\n<matches> <x>\nEOF`, vals)).toBe(
      `cat <<EOF\n\${F2T_MATCHES} <$(:)x>\nEOF`,
    );
    expect(protectTags(`cat <<'EOF'\n<ip>\nEOF`, vals)).toBeNull();
  });
  test("the fixture's notify action runs through sh -c: hostile matches stay text", async () => {
    const d = copyFixture();
    const out = join(d, "notify.txt");
    writeFileSync(join(d, "action.d", "notify-common.local"), `[Init]\nout = ${out}\n`);
    const a = readFail2banJails(d).jails[0]!.actions.find((x) => x.actname === "notify")!;
    const act = createAction(
      { name: a.key, type: a.type, options: a.options },
      { name: "testd" },
      { log: QUIET },
    );
    const pwned = join(d, "pwned");
    const hostile = `x'"$(touch ${pwned})\`touch ${pwned}\`;\n<ip> EOF`;
    const ev = { jail: "testd", time: 1_700_000_000, bantime: 600, failures: 3, count: 0 };
    await act.start();
    await act.ban([{ ...ev, ip: "192.0.2.1", matches: [hostile, "two"] }]);
    await act.ban([{ ...ev, ip: "2001:db8::1", failures: 4, matches: ["m6"] }]);
    await act.unban([{ ...ev, ip: "192.0.2.1", matches: [] }]);
    expect(readFileSync(out, "utf8")).toBe(
      [
        "start testd",
        "testd 192.0.2.1|3 in testd|192.0.2.1",
        `m=${hostile}`,
        "two",
        "heredoc 192.0.2.1 v4 <fail2ban>",
        "testd 2001:db8::1|4 in testd|2001:db8::1",
        "m=m6",
        "heredoc 2001:db8::1 v6 <fail2ban>",
        "unban 192.0.2.1",
        "",
      ].join("\n"),
    );
    expect(existsSync(pwned)).toBe(false);
  });
});

test("fail2ts check --fail2ban DIR", async () => {
  const r = await runCli(["check", "--fail2ban", FIX, "-o", "json"]);
  expect(r.code).toBe(0);
  const eff = JSON.parse(r.stdout);
  expect(Object.keys(eff.jails)).toEqual(["testd", "web", "journald"]);
  expect(eff.actions["testd.nftables"]).toEqual({ type: "nftables", port: "2222", protocol: "tcp" });
  const bad = await runCli(["check", "--fail2ban", copyFixture({ "jail.local": "[web]\nmaxretry = x\n" })]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("jail.local:2: jails.web.maxretry");
});

const DEBIAN = "/etc/fail2ban";

describe.skipIf(!existsSync(join(DEBIAN, "jail.conf")))("Debian's /etc/fail2ban", () => {
  test("the default configuration (sshd enabled) loads", () => {
    const l = loadFail2banConfig(DEBIAN);
    const sshd = l.config.jails.find((j) => j.name === "sshd");
    expect(sshd).toBeDefined();
    expect(sshd!.maxretry).toBe(5);
    expect(sshd!.action.map((a) => l.config.actions[a]?.type)).toEqual(["iptables"]);
    expect(l.filters.get("sshd")!.fail.length).toBeGreaterThan(15);
  });

  test.skipIf(!Bun.which("fail2ban-client"))(
    "every jail enabled: filters and numbers as `fail2ban-client -d` prints them",
    () => {
      const d = temps.make("f2ts-deb-");
      cpSync(DEBIAN, d, { recursive: true });
      writeFileSync(join(d, "jail.local"), "[DEFAULT]\nenabled = true\n");
      const p = Bun.spawnSync(["fail2ban-client", "-c", d, "-d"], { stdout: "pipe", stderr: "pipe" });
      const py = `import ast,sys,json\nprint(json.dumps([ast.literal_eval(l) for l in sys.stdin if l.startswith('[')]))`;
      const stream = JSON.parse(
        Bun.spawnSync(["python3", "-c", py], { stdin: p.stdout, stdout: "pipe" }).stdout.toString(),
      ) as unknown[][];
      const want = new Map<string, { fail: string[]; ignore: string[]; other: Record<string, unknown> }>();
      const of = (j: string) => {
        let w = want.get(j);
        if (!w) want.set(j, (w = { fail: [], ignore: [], other: {} }));
        return w;
      };
      for (const c of stream) {
        const [op, jail, key] = c as [string, string, string];
        if (op === "multi-set" && key === "addfailregex") of(jail).fail.push(...(c[3] as string[]));
        else if (op === "set" && key === "addfailregex") of(jail).fail.push(c[3] as string);
        else if (op === "multi-set" && key === "addignoreregex") of(jail).ignore.push(...(c[3] as string[]));
        else if (op === "set" && key === "addignoreregex") of(jail).ignore.push(c[3] as string);
        else if (op === "set" && ["maxretry", "maxlines", "datepattern", "prefregex"].includes(key))
          of(jail).other[key] = c[3];
      }
      const l = readFail2banJails(d);
      expect(l.jails.length).toBe(want.size);
      for (const j of l.jails) {
        // fail2ts's own recidive filter replaces Fail2ban's (it reads fail2ts's log)
        if (j.name === "recidive") continue;
        const w = want.get(j.name)!;
        const s = j.filter.spec;
        const unrewritten = (t: string) => !t.startsWith("(?:");
        expect({ jail: j.name, fail: s.failregex.map((x) => x.text).filter(unrewritten) }).toEqual({
          jail: j.name,
          fail: w.fail.filter((t) => !/\(\?\(\w+\)/.test(t)),
        });
        expect(s.ignoreregex.map((x) => x.text)).toEqual(w.ignore);
        expect(j.config.maxretry).toBe(w.other.maxretry as number);
        if (w.other.datepattern !== undefined) expect(s.datepattern).toBe(w.other.datepattern as string);
        if (w.other.prefregex !== undefined) expect(s.prefregex?.text).toBe(w.other.prefregex as string);
      }
    },
    60_000,
  );
});
