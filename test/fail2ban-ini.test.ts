/**
 * Fail2ban's configuration syntax as fail2ts reads it: Python configparser rules, includes,
 * interpolation, tag substitution, `name[key=value]` options, times.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { IniCache, IniSet, parseIni } from "../src/fail2ban/ini.ts";
import { str2seconds } from "../src/fail2ban/seconds.ts";
import { extractOptions, splitWithOptions, substituteRecursiveTags } from "../src/fail2ban/tags.ts";
import { flat, type Text, text } from "../src/fail2ban/text.ts";
import type { Fail2tsError } from "../src/util/errors.ts";
import { TempDirs } from "./helpers/tmp.ts";

const temps = new TempDirs();
afterAll(() => temps.removeAll());

function dir(files: Record<string, string>): string {
  const d = temps.make("f2ts-ini-");
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(d, name, ".."), { recursive: true });
    writeFileSync(join(d, name), body);
  }
  return d;
}

const v = (t: Text) => flat(t);

describe("parseIni: Python configparser as Fail2ban configures it", () => {
  const f = parseIni(
    [
      "# comment",
      "; comment too",
      "[DEFAULT]",
      "Base = /var",
      "",
      "[Sect]",
      "Key = value ; inline comment",
      "semi = a;b ; only ' ;' starts a comment",
      "hash = a # not a comment",
      "colon: 1",
      "multi = first",
      "    second",
      "    # a comment line inside the value is dropped",
      "",
      "    after a blank line",
      "  ",
      "empty =",
      "[Other]",
      "x = 1",
    ].join("\n"),
    "/f.conf",
  );
  test("keys are lower-cased, values stripped, inline ; comments cut", () => {
    const s = f.sections.get("Sect")!;
    expect(v(f.defaults.get("base")!)).toBe("/var");
    expect(v(s.get("key")!)).toBe("value");
    expect(v(s.get("semi")!)).toBe("a;b");
    expect(v(s.get("hash")!)).toBe("a # not a comment");
    expect(v(s.get("colon")!)).toBe("1");
    expect(v(s.get("empty")!)).toBe("");
  });
  test("a value goes on while lines are indented deeper; blank lines stay inside, trailing ones go", () => {
    expect(v(f.sections.get("Sect")!.get("multi")!)).toBe("first\nsecond\n\nafter a blank line");
  });
  test("each line remembers its file:line", () => {
    const m = f.sections.get("Sect")!.get("multi")!;
    expect(m.find((p) => p.s.includes("second"))!.w).toBe("/f.conf:12");
    expect(m.find((p) => p.s.includes("after"))!.w).toBe("/f.conf:15");
  });
  test("section names are case-sensitive", () => {
    expect([...f.sections.keys()]).toEqual(["Sect", "Other"]);
  });
  test("errors name the line", () => {
    const bad = (src: string) => {
      try {
        parseIni(src, "/b.conf");
      } catch (e) {
        return (e as Fail2tsError).describe();
      }
      return "no error";
    };
    expect(bad("x = 1\n")).toBe("/b.conf:1: no [section] header before this line");
    expect(bad("[a]\nx = 1\nX = 2\n")).toContain('/b.conf:3: option "x" appears twice');
    expect(bad("[a]\n[a]\n")).toContain("/b.conf:2: section [a] appears twice");
    expect(bad("[a]\njust words\n")).toContain("/b.conf:2");
  });
});

describe("IniSet: includes, .local overlays, KNOWN/, conditional sections", () => {
  const d = dir({
    "main.conf": "[INCLUDES]\nbefore = base.conf\nafter = late.conf\n[S]\nv = main\nw = %(v)s-w\n",
    "main.local": "[S]\nv = local\nk = %(known/v)s+local\n",
    "base.conf": "[DEFAULT]\nd = base\n[S]\nv = base\nonly = base\n",
    "base.local": "[S]\nonly = base-local\n",
    "late.conf": "[S]\nlate = yes\n[Init?family=inet6]\nx = 6\n[Init]\nx = 4\n",
  });
  const s = new IniSet(new IniCache());
  const read = s.read([join(d, "main.conf")]);
  test("files in Fail2ban's order: before, the file, after, then the file's .local", () => {
    expect(read.map((p) => p.slice(d.length + 1))).toEqual([
      "base.conf",
      "base.local",
      "main.conf",
      "late.conf",
      "main.local",
    ]);
  });
  test("later files win; the value they replaced is known/", () => {
    expect(v(s.get("S", "v"))).toBe("local");
    expect(v(s.get("S", "only"))).toBe("base-local");
    expect(v(s.get("S", "k"))).toBe("main+local");
    expect(v(s.get("S", "late"))).toBe("yes");
  });
  test("interpolation happens when read, in the reading section's context", () => {
    expect(v(s.get("S", "w"))).toBe("local-w");
    expect(v(s.get("S", "d"))).toBe("base");
  });
  test("[Init?family=inet6] becomes keys x?family=inet6 of [Init]", () => {
    const init = s.sections.get("Init")!;
    expect(v(init.get("x")!)).toBe("4");
    expect(v(init.get("x?family=inet6")!)).toBe("6");
  });
});

describe("%(name)s interpolation", () => {
  const d = dir({
    "a.conf": [
      "[DEFAULT]",
      "port = 22",
      "act = %(ban)s[port=%(port)s, name=%(__name__)s]",
      "pct = 100%%",
      "[lt_file]",
      "pat = {^LN-BEG}",
      "[lt_short]",
      "pat = %(lt_file/pat)s",
      "[lt_journal]",
      "pat = %(lt_short/pat)s",
      "[j1]",
      "ban = nft",
      "port = 2222",
      "[j2]",
      "ban = ipt",
      "dflt = %(default/port)s",
      "loop = %(loop2)s",
      "loop2 = %(loop)s",
      "missing = %(nothing)s",
      "badpct = 5%",
    ].join("\n"),
  });
  const s = new IniSet(new IniCache());
  s.read([join(d, "a.conf")]);
  test("a [DEFAULT] value resolves with the jail's own options", () => {
    expect(v(s.get("j1", "act"))).toBe("nft[port=2222, name=j1]");
    expect(v(s.get("j2", "act"))).toBe("ipt[port=22, name=j2]");
  });
  test("%% is a percent sign; %(section/name)s and %(default/name)s reach other sections", () => {
    expect(v(s.get("j1", "pct"))).toBe("100%");
    expect(v(s.get("lt_journal", "pat"))).toBe("{^LN-BEG}");
    expect(v(s.get("j2", "dflt"))).toBe("22");
  });
  test("vars (a jail's options) come first", () => {
    expect(v(s.get("j1", "act", { vars: new Map([["port", text("80", "x")]]) }))).toBe(
      "nft[port=80, name=j1]",
    );
  });
  test("errors: missing names, endless references, a lone %", () => {
    expect(() => s.get("j2", "missing")).toThrow(/%\(nothing\)s refers to an option that does not exist/);
    expect(() => s.get("j2", "loop")).toThrow(/nest deeper/);
    expect(() => s.get("j2", "badpct")).toThrow(/must be followed by/);
  });
  test("a one-line value takes the place of its reference; a multi-line one keeps its own", () => {
    const t = s.get("j1", "act");
    expect(new Set(t.map((p) => p.w))).toEqual(new Set([`${d}/a.conf:3`]));
  });
});

describe("<tag> substitution (substituteRecursiveTags)", () => {
  const m = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, x]) => [k, text(x, "")]));
  const out = (r: Map<string, Text>) => Object.fromEntries([...r].map(([k, x]) => [k, flat(x)]));
  test("nested tags resolve inside out: <mdre-<mode>>, <lt_<logtype>/x>", () => {
    const r = substituteRecursiveTags(
      m({
        mode: "aggressive",
        "mdre-aggressive": "A <more>",
        more: "B",
        failregex: "^x <mdre-<mode>> <HOST>",
      }),
    );
    expect(out(r).failregex).toBe("^x A B <HOST>");
    const sec = substituteRecursiveTags(m({ logtype: "journal", p: "<lt_<logtype>/pre>" }), {
      addrepl: (t) => (t === "lt_journal/pre" ? text("J", "") : null),
    });
    expect(out(sec).p).toBe("J");
  });
  test("unknown tags stay; ignored ones too; conditional values win", () => {
    const r = substituteRecursiveTags(m({ a: "<ip> <matches> <fam>", fam: "4", "fam?family=inet6": "6" }), {
      ignore: ["matches"],
      conditional: "family=inet6",
    });
    expect(out(r).a).toBe("<ip> <matches> 6");
  });
  test("a tag that refers to itself is an error", () => {
    expect(() => substituteRecursiveTags(m({ a: "<b>", b: "<a>" }))).toThrow(/refers to itself/);
  });
});

describe("name[key=value] options", () => {
  test("extractOptions", () => {
    expect(extractOptions("iptables[port=\"80,443\", protocol=tcp, name=web][x='a b']")).toEqual({
      name: "iptables",
      options: { port: "80,443", protocol: "tcp", name: "web", x: "a b" },
    });
    expect(extractOptions("sshd")).toEqual({ name: "sshd", options: {} });
    expect(() => extractOptions("x[a=1, b]")).toThrow();
  });
  test("splitWithOptions: one entry per action, options may span lines", () => {
    expect(splitWithOptions('a[p="1 2",\n q=3]\n  b\nc[x=y] d').map((s) => s.trim())).toEqual([
      'a[p="1 2",\n q=3]',
      "b",
      "c[x=y]",
      "d",
    ]);
  });
});

describe("str2seconds: Fail2ban's time values", () => {
  test.each([
    ["600", 600],
    ["10m", 600],
    ["1h 30m", 5400],
    ["1d12h", 129600],
    ["2 weeks", 1209600],
    ["1year-6mo", 15778800],
    ["3600*24", 86400],
    ["-1", -1],
    ["48h", 172800],
  ])("%s", (s, n) => {
    expect(str2seconds(s)).toBe(n);
  });
  test("not a time", () => {
    expect(str2seconds("soon")).toBeNull();
    expect(str2seconds("1; rm -rf /")).toBeNull();
    expect(str2seconds("")).toBeNull();
  });
});
