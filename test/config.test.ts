import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, effectiveConfig, loadConfig, missingLogs, readSocketPath } from "../src/config/load.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "f2ts-conf-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Writes fail2ts.toml (and fail2ts.d/ files) into a temp dir; returns the main path. */
function conf(main: string, extra: Record<string, string> = {}): string {
  const d = tmp();
  writeFileSync(join(d, "auth.log"), "");
  const p = join(d, "fail2ts.toml");
  writeFileSync(p, main);
  if (Object.keys(extra).length > 0) {
    mkdirSync(join(d, "fail2ts.d"));
    for (const [n, t] of Object.entries(extra)) writeFileSync(join(d, "fail2ts.d", n), t);
  }
  return p;
}

function issues(path: string): string[] {
  try {
    loadConfig(path);
  } catch (e) {
    if (e instanceof ConfigError)
      return e.issues.map((i) => `${i.where.slice(i.where.lastIndexOf("/") + 1)}: ${i.key}: ${i.message}`);
    if (e instanceof Error) return [`(${e.constructor.name}) ${e.message}`];
  }
  return [];
}

const OK = `
[defaults]
bantime = "10m"
findtime = "10m"
maxretry = 5
ignoreip = ["127.0.0.1/8", "::1"]

[jails.sshd]
filter = "sshd[mode=aggressive]"
logpath = ["auth.log"]
port = "ssh"
action = ["notify"]

[actions.notify]
type = "command"
ban = ["/usr/local/bin/notify-ban", "<ip>", "<jail>"]
unban = ["/usr/local/bin/notify-unban", "<ip>"]

[server]
socket = "run/f.sock"
database = "run/f.db"
logtarget = "stderr"
loglevel = "info"
`;

describe("config: valid", () => {
  test("the issue's example loads; defaults fold into jails; relative paths are made absolute", () => {
    const p = conf(OK);
    const { config, filters, warnings } = loadConfig(p);
    expect(warnings).toEqual([]);
    const j = config.jails[0]!;
    expect(j).toMatchObject({
      name: "sshd",
      enabled: true,
      filter: "sshd[mode=aggressive]",
      backend: "auto",
      bantime: 600,
      findtime: 600,
      maxretry: 5,
      ignoreip: ["127.0.0.1/8", "::1"],
      ignoreself: true,
      action: ["notify"],
      port: "ssh",
    });
    expect(j.logpath).toEqual([join(p, "..", "auth.log")]);
    expect(config.server.socket).toBe(join(p, "..", "run/f.sock"));
    expect(filters.get("sshd")!.spec.options.mode).toBe("aggressive");
    expect(readSocketPath(p)).toBe(join(p, "..", "run/f.sock"));
    const eff = effectiveConfig(config) as { jails: Record<string, unknown> };
    expect(Object.keys(eff.jails)).toEqual(["sshd"]);
  });

  test("fail2ts.d/*.toml merge in name order over the main file", () => {
    const p = conf(OK, {
      "20-late.toml": "[jails.sshd]\nmaxretry = 7\n",
      "10-early.toml":
        '[jails.sshd]\nmaxretry = 2\nbantime = "1h"\n[jails.web]\nfilter = "sshd"\nlogpath = "auth.log"\naction = ["notify"]\n',
    });
    const { config } = loadConfig(p);
    const sshd = config.jails.find((j) => j.name === "sshd")!;
    expect(sshd.maxretry).toBe(7);
    expect(sshd.bantime).toBe(3600);
    expect(config.jails.map((j) => j.name)).toEqual(["sshd", "web"]);
    expect(config.files.map((f) => f.slice(f.lastIndexOf("/") + 1))).toEqual([
      "fail2ts.toml",
      "10-early.toml",
      "20-late.toml",
    ]);
  });

  test("increment table, permanent bantime, journal backend takes the filter's journalmatch", () => {
    const p = conf(`
[defaults.increment]
enabled = true
factor = 2
maxtime = "1w"
[jails.sshd]
bantime = -1
backend = "journal"
action = ["nftables"]
[jails.sshd.increment]
multipliers = "1 2 4 8"
overalljails = true
`);
    const { config, filters } = loadConfig(p);
    const j = config.jails[0]!;
    expect(j.bantime).toBe(-1);
    expect(j.increment).toMatchObject({
      enabled: true,
      factor: 2,
      maxtime: 604800,
      multipliers: [1, 2, 4, 8],
      overalljails: true,
    });
    expect(j.journalmatch).toEqual(["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]);
    expect(filters.get("sshd")!.journal).toBe(true);
  });

  test("a missing log file is a warning, not an error; a disabled jail is not checked for logs", () => {
    const p = conf(
      '[jails.sshd]\nlogpath = ["/nonexistent/auth.log"]\naction = ["nftables"]\n[jails.off]\nenabled = false\n',
    );
    const { config } = loadConfig(p);
    expect(missingLogs(config).join("\n")).toContain("/nonexistent/auth.log does not exist (yet)");
    expect(config.jails.find((j) => j.name === "off")!.enabled).toBe(false);
  });
});

// Each bad config: its text, then the one message expected (file:line:col: key: what is wrong).
const BAD: Array<[string, string, string | RegExp]> = [
  [
    "unknown top-level table",
    "[jail.sshd]\nenabled = true\n",
    'fail2ts.toml:1:1: jail: unknown key (did you mean "jails"?)',
  ],
  [
    "unknown jail key, with a suggestion",
    '[jails.sshd]\nlogpath = ["auth.log"]\nmaxretyr = 3\n',
    'fail2ts.toml:3:1: jails.sshd.maxretyr: unknown key (did you mean "maxretry"?)',
  ],
  [
    "unknown defaults key",
    "[defaults]\nbanntime = 5\n",
    'fail2ts.toml:2:1: defaults.banntime: unknown key (did you mean "bantime"?)',
  ],
  [
    "wrong type",
    '[jails.sshd]\nlogpath = ["auth.log"]\nmaxretry = "five"\n',
    'fail2ts.toml:3:1: jails.sshd.maxretry: expected a whole number from 1 up, got the string "five"',
  ],
  [
    "zero maxretry",
    '[jails.sshd]\nlogpath = ["auth.log"]\nmaxretry = 0\n',
    "fail2ts.toml:3:1: jails.sshd.maxretry: expected a whole number from 1 up, got number 0",
  ],
  [
    "bad duration",
    '[jails.sshd]\nlogpath = ["auth.log"]\nbantime = "10x"\n',
    /^fail2ts.toml:3:1: jails.sshd.bantime: expected a duration .*got the string "10x"$/,
  ],
  [
    "bad duration in defaults",
    '[defaults]\nfindtime = "soon"\n[jails.sshd]\nlogpath = ["auth.log"]\n',
    /^fail2ts.toml:2:1: defaults.findtime: expected a duration/,
  ],
  [
    "negative findtime",
    '[jails.sshd]\nlogpath = ["auth.log"]\nfindtime = -1\n',
    /^fail2ts.toml:3:1: jails.sshd.findtime: expected a duration/,
  ],
  [
    "bad backend",
    '[jails.sshd]\nlogpath = ["auth.log"]\nbackend = "gamin"\n',
    /^fail2ts.toml:3:1: jails.sshd.backend: expected one of auto, inotify, pyinotify, polling, journal, systemd, got the string "gamin"$/,
  ],
  [
    "unknown built-in filter",
    '[jails.sshd]\nlogpath = ["auth.log"]\nfilter = "nosuch"\n',
    'fail2ts.toml:3:11: jails.sshd.filter: no built-in filter named "nosuch" (see: fail2ts filters)',
  ],
  [
    "jail name that is no filter",
    '[jails.myapp]\nlogpath = ["auth.log"]\n',
    'fail2ts.toml:1:1: jails.myapp.filter: no built-in filter named "myapp" (see: fail2ts filters)',
  ],
  [
    "unknown filter option value",
    '[jails.sshd]\nlogpath = ["auth.log"]\nfilter = "sshd[mode=nosuch]"\n',
    /^fail2ts.toml:3:11: jails.sshd.filter: filter sshd has no mode "nosuch"/,
  ],
  [
    "bad regex in a filter file",
    '[jails.sshd]\nlogpath = ["auth.log"]\nfilter = "bad.toml"\n',
    /^fail2ts.toml:3:11: jails.sshd.filter: \/.*\/bad.toml:2:15: invalid regex "\^\(\?P<x>a": missing \)$/,
  ],
  [
    "unknown action",
    '[jails.sshd]\nlogpath = ["auth.log"]\naction = ["nosuch"]\n',
    /^fail2ts.toml:3:12: jails.sshd.action: unknown action "nosuch" \(built-in: .*nftables.*; or define \[actions.nosuch\]\)$/,
  ],
  [
    "unknown banaction",
    '[defaults]\nbanaction = "pfff"\n[jails.sshd]\nlogpath = ["auth.log"]\n',
    /^fail2ts.toml:\d+:\d+: .*unknown action "pfff"/,
  ],
  ["action without type", '[actions.x]\nban = ["/bin/true"]\n', /^fail2ts.toml:1:1: actions.x: needs a type/],
  [
    "bad ignoreip",
    '[jails.sshd]\nlogpath = ["auth.log"]\nignoreip = ["10.0.0.0/33"]\n',
    'fail2ts.toml:3:14: jails.sshd.ignoreip: "10.0.0.0/33" is not an IP address, CIDR, DNS name or file:PATH',
  ],
  [
    "ignorecommand as a shell string",
    '[jails.sshd]\nlogpath = ["auth.log"]\nignorecommand = "/bin/check <ip>"\n',
    'fail2ts.toml:3:1: jails.sshd.ignorecommand: expected an argv array (["/usr/local/bin/is-friend", "<ip>"]): no shell is used',
  ],
  [
    "increment formula",
    '[jails.sshd]\nlogpath = ["auth.log"]\n[jails.sshd.increment]\nformula = "ban.Time * 2"\n',
    "fail2ts.toml:4:1: jails.sshd.increment.formula: a formula is not supported: use factor (bantime × factor × 2^n) or multipliers",
  ],
  [
    "no logpath",
    "[jails.sshd]\nport = 22\n",
    'fail2ts.toml:1:1: jails.sshd: no logpath: give the log files to follow, or backend = "journal"',
  ],
  [
    "unknown server key",
    '[server]\nsockett = "/x"\n',
    'fail2ts.toml:2:1: server.sockett: unknown key (did you mean "socket"?)',
  ],
  [
    "bad loglevel",
    '[server]\nloglevel = "loud"\n',
    /^fail2ts.toml:2:1: server.loglevel: expected one of debug, info, notice, warning, warn, error, critical/,
  ],
  [
    "bad encoding",
    '[jails.sshd]\nlogpath = ["auth.log"]\nlogencoding = "klingon"\n',
    'fail2ts.toml:3:1: jails.sshd.logencoding: unknown encoding "klingon" (utf-8, latin1, ...)',
  ],
  ["TOML syntax error", "[jails.sshd\nlogpath = 1\n", /^fail2ts.toml:1:\d+: /],
  ["jail that is not a table", "jails = 3\n", "fail2ts.toml:1:1: jails: expected tables [jails.NAME]"],
];

describe("config: each bad config gives file:line:col: key: message", () => {
  for (const [name, text, want] of BAD) {
    test(name, () => {
      const p = conf(text);
      writeFileSync(join(p, "..", "bad.toml"), "description = \"bad\"\nfailregex = ['^(?P<x>a']\n");
      let got: string;
      try {
        loadConfig(p);
        got = "(no error)";
      } catch (e) {
        got =
          e instanceof ConfigError
            ? e.describe().split("\nfail2ts: ")[0]!
            : ((e as { describe?: () => string }).describe?.() ?? String(e));
        got = got.slice(got.lastIndexOf("/", got.indexOf(".toml")) + 1);
      }
      if (typeof want === "string") expect(got).toBe(want);
      else expect(got).toMatch(want);
    });
  }

  test("an error in fail2ts.d points into that file", () => {
    const p = conf(OK, { "50-x.toml": "# local\n[jails.sshd]\nbantime = []\n" });
    expect(issues(p)).toEqual([
      expect.stringMatching(/^50-x.toml:3:1: jails.sshd.bantime: expected a duration/),
    ]);
  });

  test("every problem is reported, not just the first", () => {
    const p = conf('[jails.sshd]\nlogpath = ["auth.log"]\nmaxretry = 0\nfindtime = "x"\nbogus = 1\n');
    expect(issues(p)).toHaveLength(3);
  });
});
