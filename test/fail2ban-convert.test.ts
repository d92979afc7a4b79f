/**
 * `fail2ts convert`: a Fail2ban configuration → fail2ts TOML that validates and behaves the same.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../src/config/load.ts";
import { loadFail2banConfig } from "../src/fail2ban/config.ts";
import { convertFail2ban } from "../src/fail2ban/convert.ts";
import { compileFilter, FilterMatcher, loadFilter } from "../src/filter/index.ts";
import { runCli } from "./helpers/cli.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const FIX = join(import.meta.dir, "fixtures", "fail2ban", "basic");
const tmp = (p: string) => temps.make(p);

describe("the fixture converted", () => {
  const out = tmp("f2ts-conv-");
  const r = convertFail2ban(FIX, out);
  test("one jail table per enabled jail, filter files for filters fail2ts does not have", () => {
    expect(r.jails.map((j) => [j.name, j.filter, j.builtin])).toEqual([
      ["testd", "filters/testd.toml", false],
      ["web", "filters/webapp.toml", false],
      ["journald", "filters/testd-journald.toml", false],
    ]);
    expect(r.skipped).toEqual([
      `${FIX}/action.d/pyaction.py: a Python action cannot run in fail2ts; jail testd runs without it`,
    ]);
  });
  test("it validates, and reads back as the same jails", () => {
    const l = loadConfig(join(out, "fail2ts.toml"));
    const f = loadFail2banConfig(FIX);
    const strip = (j: (typeof l.config.jails)[number]) => {
      const { filter, ...rest } = j;
      void filter;
      return rest;
    };
    expect(l.config.jails.map(strip)).toEqual(f.config.jails.map(strip));
    expect(l.config.actions).toEqual(f.config.actions);
    expect(l.config.server).toEqual(f.config.server);
  });
  test("a converted filter has the same regexes, each with its origin in a comment", () => {
    const text = readFileSync(join(out, "filters", "testd.toml"), "utf8");
    expect(text).toContain(`'^LOCAL deny from <HOST>$', # ${FIX}/jail.local:8`);
    const conv = loadFilter(join(out, "filters", "testd.toml"));
    const orig = loadFail2banConfig(FIX).filters.get("testd")!.spec;
    expect(conv.failregex.map((x) => x.text)).toEqual(orig.failregex.map((x) => x.text));
    expect(conv.ignoreregex.map((x) => x.text)).toEqual(orig.ignoreregex.map((x) => x.text));
    expect(conv.prefregex?.text).toBe(orig.prefregex?.text);
    const j = loadFilter(join(out, "filters", "testd-journald.toml"));
    expect(j.options.logtype).toBe("journal");
  });
  test("the converted filter matches what the Fail2ban one matches", () => {
    const lines = [
      "Mar  1 10:00:00 host testd[1]: auth failure for bob from 192.0.2.1",
      "Mar  1 10:00:01 host testd[2]: LOCAL deny from 192.0.2.2",
      "Mar  1 10:00:02 host testd[3]: auth failure for x from 127.0.0.1",
      "Mar  1 10:00:03 host testd[4]: nothing",
    ];
    const run = (spec: ReturnType<typeof loadFilter>) => {
      const m = new FilterMatcher(compileFilter(spec, { now: () => 1.7e9 }), { now: () => 1.7e9 });
      return lines.map((l) => m.processLine(l).failure?.id ?? null);
    };
    const a = run(loadFilter(join(out, "filters", "testd.toml")));
    expect(a).toEqual(["192.0.2.1", "192.0.2.2", null, null]);
    expect(a).toEqual(run(loadFail2banConfig(FIX).filters.get("testd")!.spec));
  });
  test("OUTDIR/fail2ts.toml is not overwritten without --force", () => {
    expect(() => convertFail2ban(FIX, out)).toThrow(/already exists/);
    expect(convertFail2ban(FIX, out, { force: true }).jails).toHaveLength(3);
  });
});

test("fail2ts convert (CLI)", async () => {
  const out = tmp("f2ts-conv-cli-");
  const r = await runCli(["convert", FIX, out]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("Jails converted (3):");
  expect(r.stdout).toContain("Not converted (1):");
  expect(r.stdout).toContain("pyaction.py");
  expect(r.stdout).toContain("valid");
  const again = await runCli(["convert", FIX, out]);
  expect(again.code).toBe(2);
  expect(again.stderr).toContain("already exists");
});

const DEBIAN = "/etc/fail2ban";

describe.skipIf(!existsSync(join(DEBIAN, "jail.conf")))("Debian's /etc/fail2ban converted", () => {
  test("sshd uses fail2ts's built-in filter; the result validates", () => {
    const out = tmp("f2ts-conv-deb-");
    const r = convertFail2ban(DEBIAN, out);
    expect(r.jails.find((j) => j.name === "sshd")).toMatchObject({ filter: "sshd", builtin: true });
    const l = loadConfig(join(out, "fail2ts.toml"));
    expect(l.config.jails.find((j) => j.name === "sshd")?.action).toEqual(["sshd.iptables-multiport"]);
  });
  test("an edited filter is converted as it is, not replaced by the built-in", () => {
    const d = tmp("f2ts-conv-edit-");
    cpSync(DEBIAN, d, { recursive: true });
    const f = join(d, "filter.d", "sshd.conf");
    writeFileSync(
      f,
      readFileSync(f, "utf8").replace("cfooterre = ", "cfooterre = ^EDITED <HOST>$\n            "),
    );
    const r = convertFail2ban(d, tmp("f2ts-conv-edit-out-"));
    const sshd = r.jails.find((j) => j.name === "sshd")!;
    expect(sshd).toMatchObject({ filter: "filters/sshd.toml", builtin: false });
    expect(readFileSync(r.filterFiles[0]!, "utf8")).toContain("'^EDITED <HOST>$',");
  });
});
