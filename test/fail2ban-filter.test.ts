/**
 * Fail2ban filter files (.conf) → FilterSpec, run by the engine unchanged: includes, .local and
 * NAME.d/ overlays, [Init] options and `name[key=value]`, logtype, conditional groups, file:line of
 * every regex. With Debian's fail2ban installed, every filter it ships is resolved exactly as
 * Fail2ban resolves it (Fail2ban's own Python reader is the oracle).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hasConditional, rewriteConditionals } from "../src/fail2ban/cond.ts";
import { optionsAt } from "../src/fail2ban/definit.ts";
import { Fail2banFilterReader, loadFail2banFilter } from "../src/fail2ban/filter.ts";
import { flat } from "../src/fail2ban/text.ts";
import { compileFilter, FilterMatcher, loadFilter } from "../src/filter/index.ts";
import { expandTags } from "../src/filter/tags.ts";
import { compilePyRegex } from "../src/filter/translate.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { runCli } from "./helpers/cli.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const FIX = join(import.meta.dir, "fixtures", "fail2ban", "basic");
const TESTD = join(FIX, "filter.d", "testd.conf");
const NOW = 1_700_000_000;

function match(spec: ReturnType<typeof loadFail2banFilter>, lines: string[]) {
  const m = new FilterMatcher(compileFilter(spec, { now: () => NOW }), { now: () => NOW });
  return lines.map((l) => m.processLine(l).failure);
}

describe("a filter in filter.d: .conf, NAME.d/*.conf, .local, includes", () => {
  const spec = loadFail2banFilter(TESTD);
  test("regexes, each with the file:line it was written on", () => {
    expect(spec.failregex.map((r) => [r.text, r.where.slice(FIX.length + 1)])).toEqual([
      ["^auth failure for <F-USER>\\S+</F-USER> from <HOST>$", "filter.d/testd.conf:12"],
      ["^bad key from <HOST>$", "filter.d/testd.conf:16"],
    ]);
    expect(spec.ignoreregex.map((r) => r.where.slice(FIX.length + 1))).toEqual([
      "filter.d/testd.local:3",
      "filter.d/testd.local:4",
    ]);
    expect(spec.prefregex?.where.slice(FIX.length + 1)).toBe("filter.d/testd.conf:9");
  });
  test("%(__prefix_line)s and <lt_<logtype>/…> from the included common.conf; a NAME.d/ drop-in", () => {
    expect(spec.prefregex?.text).toContain("testd(?:\\(\\S+\\))?");
    expect(spec.datepattern).toBe("{^LN-BEG}");
    expect(spec.maxlines).toBe(1);
    expect(spec.journalmatch).toBe("_SYSTEMD_UNIT=testd.service + _COMM=testd");
    expect(spec.options).toMatchObject({ mode: "normal", logtype: "file" });
  });
  test("options: name[mode=aggressive] switches <mdre-<mode>>; logtype=journal changes the prefix", () => {
    const agg = loadFail2banFilter(TESTD, { mode: "aggressive" });
    expect(agg.failregex.map((r) => r.text)).toContain("^scan from <HOST> port \\d+$");
    expect(agg.failregex.find((r) => r.text.startsWith("^probe"))?.where).toEndWith("filter.d/testd.conf:19");
    const j = loadFail2banFilter(TESTD, { logtype: "journal" });
    expect(j.prefregex?.text).not.toContain("[\\[\\(]?");
    expect(j.options.logtype).toBe("journal");
  });
  test("the engine runs it: prefix, users, ignoreregex, multi-line ids", () => {
    const got = match(spec, [
      "Mar  1 10:00:00 host testd[12]: auth failure for bob from 192.0.2.1",
      "Mar  1 10:00:01 host testd[12]: auth failure for healthcheck from 192.0.2.2",
      "Mar  1 10:00:02 host testd[13]: bad key from 2001:db8::7",
      "Mar  1 10:00:03 host other[1]: bad key from 192.0.2.3",
      "Mar  1 10:00:04 host testd[14]: probe from 192.0.2.4",
    ]);
    expect(got.map((f) => f?.id ?? null)).toEqual(["192.0.2.1", null, "2001:db8::7", null, null]);
    expect(got[0]?.fields.user).toBe("bob");
  });
  test("an option from name[key=value] fills a <tag> of [Init] (webapp[level=warn])", () => {
    const w = loadFail2banFilter(join(FIX, "filter.d", "webapp.conf"), { level: "warn", tag: "app, v2" });
    expect(w.failregex[0]!.text).toBe(
      "^ \\[warn\\] app, v2: login failed user=<F-USER>\\S+</F-USER> ip=<HOST>$",
    );
    expect(w.datepattern).toBe("^%Y-%m-%d %H:%M:%S");
    const d = loadFail2banFilter(join(FIX, "filter.d", "webapp.conf"));
    expect(d.failregex[0]!.text).toStartWith("^ \\[error\\] app:");
  });
  test("through loadFilter (the path every command uses)", () => {
    expect(loadFilter(`${TESTD}[mode=aggressive]`).failregex).toHaveLength(4);
  });
});

describe("a filter file outside filter.d: the file, its includes and its .local only", () => {
  test("read explicitly", () => {
    const d = temps.make("f2ts-flt-");
    for (const f of ["testd.conf", "testd.local", "common.conf"])
      copyFileSync(join(FIX, "filter.d", f), join(d, f));
    mkdirSync(join(d, "testd.d"));
    writeFileSync(join(d, "testd.d", "x.conf"), "[Definition]\nmaxlines = 9\n");
    const spec = loadFail2banFilter(join(d, "testd.conf"));
    expect(spec.maxlines).toBe(1); // NAME.d/ belongs to the standard (filter.d) reading only
    expect(spec.journalmatch).toBe("_SYSTEMD_UNIT=testd.service");
    expect(spec.ignoreregex).toHaveLength(2); // the .local is read
  });
});

describe("errors name the file and line", () => {
  const d = temps.make("f2ts-flt-");
  mkdirSync(join(d, "filter.d"));
  const write = (name: string, body: string) => {
    writeFileSync(join(d, "filter.d", name), body);
    return join(d, "filter.d", name);
  };
  const describeErr = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      if (e instanceof Fail2tsError) return e.describe();
      throw e;
    }
    return "no error";
  };
  test("a regex JavaScript cannot compile", () => {
    const f = write("bad.conf", "[Definition]\nfailregex = ^ok <HOST>$\n            ^(unclosed <HOST>\n");
    expect(describeErr(() => compileFilter(loadFail2banFilter(f)))).toStartWith(`${f}:3: `);
  });
  test("a missing %(name)s", () => {
    const f = write("miss.conf", "[Definition]\nfailregex = ^%(nope)s <HOST>$\n");
    expect(describeErr(() => loadFail2banFilter(f))).toStartWith(`${f}:2: failregex: %(nope)s refers to`);
  });
  test("a failregex that cannot name an address (Fail2ban refuses it too)", () => {
    const f = write(
      "noid.conf",
      "[Definition]\nfailregex = ^ok <HOST>$\n            <mdre-<mode>>\n[Init]\nmode = x\n",
    );
    expect(describeErr(() => loadFail2banFilter(f))).toBe(
      `${f}:3: failregex "<mdre-x>" has no <HOST>, <ADDR>, <IP4>, <IP6>, <DNS> or <F-ID>: it can never name an address (nothing defines <mdre-x>)`,
    );
    const ok = write(
      "mlfid.conf",
      "[Definition]\nprefregex = ^<F-MLFID>\\S+</F-MLFID> <F-CONTENT>.+</F-CONTENT>$\nfailregex = ^no host here$\n",
    );
    expect(loadFail2banFilter(ok).failregex).toHaveLength(1);
  });
  test("no failregex", () => {
    const f = write("none.conf", "[Definition]\nfailregex =\n");
    expect(describeErr(() => loadFail2banFilter(f))).toContain("no failregex");
  });
  test("no such file", () => {
    expect(describeErr(() => loadFail2banFilter(join(d, "filter.d", "absent.conf")))).toContain(
      "cannot read",
    );
  });
});

test("multi-line filters: prefregex and ignoreregex are not multi-line (as in Fail2ban)", () => {
  const d = temps.make("f2ts-ml-");
  const f = join(d, "ml.conf");
  writeFileSync(
    f,
    "[Definition]\nprefregex = ^\\s*\\S+ (?:app\\[\\d+\\]: )?<F-CONTENT>.+</F-CONTENT>$\nfailregex = ^bad from <HOST>$\nmaxlines = 2\n",
  );
  // Fail2ban: the buffered line is not searched again by the prefregex
  expect(
    match(loadFail2banFilter(f), [
      "Mar  1 10:00:00 h other[1]: bad from 192.0.2.3",
      "Mar  1 10:00:01 h app[2]: hello",
    ]),
  ).toEqual([null, null]);
});

describe("conditional groups (?(name)yes|no), rewritten for JavaScript", () => {
  const re = (py: string) => compilePyRegex(expandTags(rewriteConditionals(py, "test")));
  test("an optional group", () => {
    const r = re("^a(?P<x>b)?(?(x)c|d)$");
    expect(["abc", "ad"].map((s) => r.test(s))).toEqual([true, true]);
    expect(["abd", "ac", "a"].map((s) => r.test(s))).toEqual([false, false, false]);
  });
  test("a group in one alternative, a condition without `no`", () => {
    const r = re("^(?:(?P<x>a)|b)(?(x)1)$");
    expect(["a1", "b"].map((s) => r.test(s))).toEqual([true, true]);
    expect(["a", "b1"].map((s) => r.test(s))).toEqual([false, false]);
  });
  test("two conditions and <F-USER> groups, as Debian's sshd.conf has them", () => {
    const py =
      "^Failed \\S+ for (?P<cond_inv>invalid user )?<F-USER>(?P<cond_user>\\S+)|(?(cond_inv)(?:(?! from ).)*?|[^:]+)</F-USER> from <HOST>(?: port \\d+)?(?: ssh\\d*)?(?(cond_user): |(?:(?:(?! from ).)*)$)";
    expect(hasConditional(py)).toBe(true);
    const r = re(py);
    const user = (s: string) => r.exec(s)?.groups?.user ?? null;
    expect(user("Failed password for root from 192.0.2.1 port 22 ssh2")).toBe("root");
    expect(user("Failed password for invalid user a b from 192.0.2.1 port 22 ssh2")).toBe("a b");
    expect(user("Failed publickey for git from 192.0.2.1 port 22 ssh2: RSA SHA256:x")).toBe("git");
  });
  test("what cannot be rewritten is an error with the place", () => {
    expect(() => rewriteConditionals("(?(nogroup)a|b)", "f.conf:3")).toThrow(/no group named nogroup/);
  });
});

test("regex-test runs a Fail2ban filter file", async () => {
  const d = temps.make("f2ts-rt-");
  const log = join(d, "t.log");
  writeFileSync(
    log,
    "Mar  1 10:00:00 host testd[1]: auth failure for bob from 192.0.2.1\nMar  1 10:00:01 host testd[2]: hello\n",
  );
  const r = await runCli(["regex-test", log, `${TESTD}[mode=aggressive]`, "--json", "--now", String(NOW)]);
  expect(r.code).toBe(0);
  const lines = r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  expect(lines[0]).toMatchObject({ line: 1, match: true, host: "192.0.2.1", user: "bob" });
  expect(lines[1]).toMatchObject({ line: 2, match: false });
});

const DEBIAN = "/etc/fail2ban/filter.d";
const ORACLE = "/usr/lib/python3/dist-packages/fail2ban/client/filterreader.py";

describe.skipIf(!existsSync(join(DEBIAN, "sshd.conf")))("Debian's filters", () => {
  test("sshd.conf: conditional groups and modes work in the engine", () => {
    const spec = loadFail2banFilter(join(DEBIAN, "sshd.conf"), { mode: "aggressive" });
    const got = match(spec, [
      "Mar  1 10:00:00 h sshd[1]: Failed password for invalid user a b from 192.0.2.1 port 22 ssh2",
      "Mar  1 10:00:00 h sshd[2]: Failed password for root from 192.0.2.2 port 22 ssh2",
      "Mar  1 10:00:00 h sshd[3]: Did not receive identification string from 192.0.2.3",
      "Mar  1 10:00:00 h sshd[4]: Accepted password for root from 192.0.2.4 port 22 ssh2",
    ]);
    expect(got.map((f) => [f?.id ?? null, f?.fields.user ?? null])).toEqual([
      ["192.0.2.1", "a b"],
      ["192.0.2.2", "root"],
      ["192.0.2.3", null],
      [null, null],
    ]);
  });

  test("exim.conf[mode=more]: a mode Debian's file does not have is an error, as in Fail2ban", () => {
    expect(() => loadFail2banFilter(join(DEBIAN, "exim.conf"), { mode: "more" })).toThrow(
      /nothing defines <mdre-more>/,
    );
  });

  test.skipIf(!existsSync(ORACLE) || !Bun.which("python3"))(
    "every filter and option set resolves exactly as Fail2ban resolves it",
    () => {
      const combos: Array<Record<string, string>> = [
        {},
        { logtype: "journal" },
        { mode: "aggressive" },
        { mode: "ddos" },
        { logtype: "short" },
      ];
      const files = readdirSync(DEBIAN).filter((f) => f.endsWith(".conf"));
      // Fail2ban's own reader, in one python process
      const py = `
import sys, json, logging
sys.path.insert(0, '/usr/lib/python3/dist-packages')
logging.disable(logging.CRITICAL)
from fail2ban.client.filterreader import FilterReader
out = {}
for f in json.loads(sys.argv[1]):
  for i, o in enumerate(json.loads(sys.argv[2])):
    try:
      r = FilterReader(f[:-5], 'j', dict(o), share_config={}, basedir='/etc/fail2ban')
      r.read(); r.applyAutoOptions('auto'); r.getOptions(None)
      c = r.getCombined()
      out[f + str(i)] = {k: str(c[k]) for k in ('prefregex','failregex','ignoreregex','datepattern','maxlines','journalmatch') if c.get(k) is not None}
    except Exception as e:
      out[f + str(i)] = {'error': str(e)}
print(json.dumps(out))`;
      const p = Bun.spawnSync(["python3", "-c", py, JSON.stringify(files), JSON.stringify(combos)]);
      const want = JSON.parse(p.stdout.toString()) as Record<string, Record<string, string>>;
      let compared = 0;
      for (const f of files) {
        combos.forEach((o, i) => {
          const w = want[f + i]!;
          if (w.error) return;
          const r = new Fail2banFilterReader(join(DEBIAN, f), optionsAt(o, "test"));
          r.read();
          r.applyAutoOptions("auto");
          r.getOptions();
          const c = r.getCombined();
          const got: Record<string, string> = {};
          for (const k of Object.keys(w)) got[k] = flat(c.get(k) ?? []);
          expect({ filter: f, options: o, ...got }).toEqual({ filter: f, options: o, ...w });
          compared++;
        });
      }
      expect(compared).toBeGreaterThan(400);
    },
    60_000,
  );
});
