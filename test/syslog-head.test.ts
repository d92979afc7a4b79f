/**
 * scan's engine reads the syslog prefix of the built-in filters (" host daemon[pid]: ") with
 * code of its own instead of PCRE2 (src/filter/syslog-head.ts, fast_head in engine.c). Where it
 * takes a line it must give PCRE2's match exactly: where the content starts and where the
 * prefix group ends. Held to PCRE2 on generated prefixes built from the parts of the regex and
 * their near misses, for every filter it applies to, with both builds of the engine.
 */
import { describe, expect, test } from "bun:test";
import { builtinFilterNames, compileFilter, loadFilter } from "../src/filter/index.ts";
import { pcreSource } from "../src/filter/native.ts";
import { daemonNames, syslogHead } from "../src/filter/syslog-head.ts";
import { headProbe } from "../src/scan/engine.ts";
import { engineKinds, restoreEngineAfterEach } from "./helpers/engines.ts";

restoreEngineAfterEach();

function headOf(name: string) {
  const filter = compileFilter(loadFilter(name));
  const pref = filter.pref;
  const flags = pref?.re.flags.replace("u", "") ?? "";
  const source = pref?.info.numbered ? pcreSource(pref.info.numbered, flags, pref.info) : null;
  return { filter, source, flags, head: syslogHead(source, flags) };
}

/** A small deterministic generator. */
function random(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s % n;
  };
}

/**
 * Prefixes as the regex's parts make them: each part as on the usual line (its first form, most
 * of the time), or another form, or a near miss; then now and then one character inserted or
 * removed anywhere.
 */
function prefixes(daemons: string[], count: number, seed: number): string[] {
  const r = random(seed);
  const pick = (xs: string[]) => (r(5) < 3 ? xs[0]! : xs[r(xs.length)]!);
  const d = () => daemons[r(daemons.length)]!;
  const parts: Array<() => string[]> = [
    () => ["", "[]", "[", " "],
    () => [" ", "  ", "\t", "\x0b", ""],
    () => ["", "<auth.info> ", "<a.b>", "<a>.b> ", "<a.b.c> "],
    () => ["db-2 ", "h ", "host\t", "", "h", "<h ", "[h] ", "@h "],
    () => ["", "kernel: [ 1.5] ", "kernel:[12.3]: ", "kernel: "],
    () => ["", "@vserver_x ", "@vserver_ "],
    () => [
      `${d()}[123]: `,
      `${d()}[1]:\t `,
      `${d()}: `,
      `[${d()}]: `,
      `(${d()}) `,
      `[1]: ${d()} `,
      `: ${d()}: `,
      `${d()}(pam)[1]: `,
      `${d()}[12]:`,
      `${d()}[]: `,
      `${d()}[1] `,
      `${d()}[1]:: `,
      `${d().slice(0, -1)}[1]: `,
      `${d()}x[1]: `,
      "CRON[7]: ",
      "systemd-logind[412]: ",
      "",
    ],
    () => ["", "[ID 12 auth.info] ", "[ID 1 x]", "[x] "],
    () => ["", "error: ", "fatal: ", "error: PAM: ", "PAM: ", "error:", "fatal: PAM:", "error: error: "],
    () => ["Failed password for root from 192.0.2.1", "x", "", " ", "\t", "[", "error: "],
  ];
  const noise = " \t[]():<>@.x1-\x0b";
  const out: string[] = [];
  while (out.length < count) {
    let s = parts.map((p) => pick(p())).join("");
    if (r(10) < 3 && s.length > 0) {
      const at = r(s.length);
      s = r(2) ? s.slice(0, at) + noise[r(noise.length)] + s.slice(at) : s.slice(0, at) + s.slice(at + 1);
    }
    if (s.length > 0) out.push(s);
  }
  return out;
}

describe("syslogHead", () => {
  test("recognises the built-in prefix and the daemon's names", () => {
    expect(headOf("sshd").head).toEqual({
      daemons: ["sshd-session", "sshd"],
      grouped: true,
      errorTail: true,
    });
    expect(headOf("uwimap-auth").head).toEqual({
      daemons: ["ipop3d", "imapd"],
      grouped: false,
      errorTail: false,
    });
  });

  test("refuses any other prefregex", () => {
    const { source, flags } = headOf("sshd");
    expect(source).not.toBeNull();
    expect(syslogHead(source, flags)).not.toBeNull();
    expect(syslogHead(source, `${flags}i`)).toBeNull();
    expect(syslogHead(source!.replace("(?:\\S+\\s+)?", "(?:\\S+\\s*)?"), flags)).toBeNull();
    expect(syslogHead(source!.replace("sshd(?:-session)?", "sshd\\w*"), flags)).toBeNull();
    // the daemon must be the same in both of its places
    expect(syslogHead(source!.replace("sshd(?:-session)?", "sshd"), flags)).toBeNull();
    expect(syslogHead(source!.replace("(?:PAM: )?", "(?:PAM: )"), flags)).toBeNull();
    expect(syslogHead(source!.replace(/\(\[\^\\n\\r\]\+\)\$$/, "(.+)$"), flags)).toBeNull();
    expect(syslogHead(null, flags)).toBeNull();
  });

  test("daemonNames lists names in the order PCRE2 tries them", () => {
    expect(daemonNames("sshd(?:-session)?")).toEqual(["sshd-session", "sshd"]);
    expect(daemonNames("danted?")).toEqual(["danted", "dante"]);
    expect(daemonNames("(?:ipop3d|imapd)")).toEqual(["ipop3d", "imapd"]);
    expect(daemonNames("(?:cyrus\\/)?(?:imap|pop3)[ds]?")).toEqual([
      "cyrus/imapd",
      "cyrus/imaps",
      "cyrus/imap",
      "cyrus/pop3d",
      "cyrus/pop3s",
      "cyrus/pop3",
      "imapd",
      "imaps",
      "imap",
      "pop3d",
      "pop3s",
      "pop3",
    ]);
    expect(daemonNames("wu-ftpd")).toEqual(["wu-ftpd"]);
    for (const other of [
      "\\w+",
      "stunnel\\d*",
      "pve\\w*",
      "[\\w.@\\/\\-]+",
      "a??",
      "a?+",
      "(?:x)?",
      "a|",
      "(?=a)b",
      "a{2}",
      ".x",
    ])
      expect(daemonNames(other)).toBeNull();
    // more names than the engine takes
    expect(daemonNames("(?:a|b)?(?:c|d)?(?:e|f)?(?:g|h)?(?:i|j)?")).toBeNull();
  });
});

describe.each(engineKinds())("the %s engine's fast_head", (kind) => {
  const names = builtinFilterNames().filter((n) => headOf(n).head !== null);

  test("applies to sshd and the other filters with a list of daemon names", () => {
    expect(names).toContain("sshd");
    expect(names.length).toBeGreaterThanOrEqual(5);
  });

  test.each(names)("%s: PCRE2's match on every prefix it takes", (name) => {
    process.env.FAIL2TS_ENGINE = kind;
    const { filter, head } = headOf(name);
    let took = 0;
    const wrong: string[] = [];
    for (const text of prefixes(head!.daemons, 20000, name.length * 7919)) {
      const b = Buffer.from(text, "latin1");
      const want = headProbe(filter, b, false)!;
      const got = headProbe(filter, b, true)!;
      if (got.took) took++;
      const same =
        want.rc < 0 ? got.rc < 0 : got.rc >= 0 && got.end === want.end && got.prefix === want.prefix;
      if (!same)
        wrong.push(`${JSON.stringify(text)}: PCRE2 ${JSON.stringify(want)}, engine ${JSON.stringify(got)}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(took).toBeGreaterThan(2000);
  });

  test("takes the usual lines, leaves the rare forms to PCRE2", () => {
    process.env.FAIL2TS_ENGINE = kind;
    const { filter } = headOf("sshd");
    const probe = (s: string) => headProbe(filter, Buffer.from(s, "latin1"), true)!;
    expect(probe(" db-2 sshd[20047]: Failed password for root from 192.0.2.1 port 22 ssh2")).toEqual({
      rc: 1,
      end: 19,
      prefix: 19,
      took: true,
    });
    expect(probe(" h sshd-session[7]: error: PAM: x")).toMatchObject({ end: 32, prefix: 20, took: true });
    expect(probe(" h CRON[7]: pam_unix(cron:session)")).toMatchObject({ end: 3, prefix: 3, took: true });
    for (const rare of [
      " h sshd[1]: [ID 1 auth.info] x",
      " <auth.info> h sshd[1]: x",
      " h sshd[1]: ",
      " h kernel: [1.0] x",
    ])
      expect(probe(rare).took).toBe(false);
  });
});
