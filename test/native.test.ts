/**
 * PCRE2 runs scan's regexes on bytes (src/filter/native.ts) only where it matches as the
 * JavaScript regexes do. These tests hold it to that: every regex of every built-in filter in
 * every mode against our test lines (the same match, the same captures), and whole chunks
 * scanned both ways (the same failures, times, counts), hostile lines included.
 */
import { ptr } from "bun:ffi";
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { builtinFilterNames, compileFilter, loadFilter } from "../src/filter/index.ts";
import { atomicHosts, nativeAvailable, nativeRegex, pcreSource, UNSET } from "../src/filter/native.ts";
import { regexInfo } from "../src/filter/rxinfo.ts";
import { expandTags } from "../src/filter/tags.ts";
import { compilePyRegex } from "../src/filter/translate.ts";
import { ChunkProcessor } from "../src/scan/process.ts";
import { authLog } from "./helpers/authlog.ts";
import { modesOf } from "./helpers/modes.ts";

const root = new URL("..", import.meta.url).pathname;
const NOW = Date.UTC(2026, 5, 1) / 1000;

/** Our own test lines of every filter, ASCII ones only (PCRE2 only ever sees ASCII). */
const LINES = readdirSync(`${root}test/filter-lines`)
  .filter((f) => f.endsWith(".log"))
  .flatMap((f) => readFileSync(`${root}test/filter-lines/${f}`, "latin1").split("\n"))
  .filter((l) => l !== "" && !l.startsWith("#") && /^[\x00-\x7f]*$/.test(l));

/** What a regex makes of `text`: null, or the match's offset and every group's text. */
function jsMatch(re: RegExp, text: string): Array<string | undefined> | null {
  re.lastIndex = 0;
  const m = re.exec(text);
  return m ? [String(m.index), ...m] : null;
}

test("libpcre2 is there (CI installs Debian, whose grep needs it): the native path is tested", () => {
  expect(nativeAvailable()).toBe(true);
});

describe("PCRE2 forms", () => {
  test("what cannot be made to match exactly is refused", () => {
    const src = (re: RegExp) => pcreSource(re.source, re.flags, regexInfo(re));
    expect(src(/^(?:(a)|b)+$/u)).toBeNull(); // capture in a repeated group
    expect(src(/^(a*)?x/u)).toBeNull(); // capture in an optional group that can match nothing
    expect(src(/(?<=(a))b/u)).toBeNull(); // capture in a lookbehind
    expect(src(/^(a)\1/u)).toBeNull(); // back reference
    expect(src(new RegExp("^[^]", "u"))).toBeNull();
    expect(src(/^\p{L}/u)).toBeNull();
    expect(src(/^x/mu)).toBeNull();
    expect(src(/^é/u)).toBeNull();
    // what is rewritten: "." has no CR in JavaScript, \v is one character
    expect(src(/^a.b\vc$/u)).toBe("^a[^\\n\\r]b\\x0bc$");
    expect(src(/^(?:x|y)+ (\d+) (?:port \d+)?$/u)).toBe("^(?:x|y)+ (\\d+) (?:port \\d+)?$");
  });

  test("<HOST> followed by a space that must be there is made atomic, and only then", () => {
    const pcre = (py: string) => {
      const r = compilePyRegex(expandTags(py));
      const info = regexInfo(r);
      return pcreSource(info.numbered!, r.flags.replace("u", ""), info)!;
    };
    const form = (py: string) => atomicHosts(pcre(py));
    expect(form("^from <HOST> port \\d+$")).toMatch(/^\^from \(\?>\(\?:.*\(\?= \)\) port \\d\+\$$/);
    expect(form("^from <ADDR> port$")).toContain("(?= )) port");
    // the space may be missing: not atomic
    for (const py of [
      "^from <HOST> ?port$",
      "^from <HOST> *port$",
      "^from <HOST>(?: port)?$",
      "^from <HOST>$",
    ])
      expect(form(py)).not.toContain("(?>");
    // what follows reads the host's groups: left as it is
    const plain = pcre("^from <HOST> port$");
    expect(atomicHosts(plain.replace(/\$$/, "\\2$"))).not.toContain("(?>");
  });
});

describe.skipIf(!nativeAvailable())("every built-in regex matches as in JavaScript", () => {
  const texts = [
    ...LINES,
    ...LINES.map((l) => l.slice(16)),
    "",
    " ",
    "a\rb",
    "x".repeat(3000),
    `Failed password for ${"a ".repeat(500)}from 192.0.2.1 port 22 ssh2`,
    // hosts only a shorter or another reading of <HOST> makes a match of (see atomicHosts)
    ...[
      "192.0.2.1x",
      "192.0.2.1.5",
      "192.0.2.256",
      "[192.0.2.1]",
      "::ffff:192.0.2.1",
      "2001:db8::1x",
      "a-b.example",
      "x_",
      "1.2.3.4]",
    ].flatMap((h) => [
      `Failed password for root from ${h} port 22 ssh2`,
      `Failed password for invalid user x from ${h} port 22 ssh2: RSA SHA256:x`,
      `Failed publickey for invalid user x from ${h} port 22 ssh2: ED25519 y`,
      `User root from ${h} not allowed because account is locked`,
      `User root from ${h} not allowed because none of user's groups are listed in AllowGroups`,
    ]),
  ];
  const bufs = texts.map((t) => Buffer.from(t, "latin1"));
  const ptrs = bufs.map((b) => (b.length > 0 ? ptr(b) : 0));
  test.each(builtinFilterNames())("%s", (name) => {
    let native = 0;
    for (const mode of modesOf(name)) {
      const f = compileFilter(loadFilter(name, mode ? { mode } : {}));
      for (const rx of [...(f.pref ? [f.pref] : []), ...f.fail, ...f.ignore]) {
        const info = rx.info;
        const js = rx.asciiFast;
        if (info.numbered === null || js === null) continue;
        const n = nativeRegex(info.numbered, rx.re.flags.replace("u", ""), info);
        if (n === null) continue;
        native++;
        for (let k = 0; k < texts.length; k++) {
          if (bufs[k]!.length === 0) continue; // no pointer to an empty buffer
          const want = jsMatch(js, texts[k]!);
          const rc = n.match(ptrs[k]!, 0, bufs[k]!.length);
          let got: Array<string | undefined> | null = null;
          if (rc >= 0) {
            got = [String(n.ov[0])];
            for (let g = 0; g < info.groups.length; g++) {
              const a = n.ov[4 * g]!;
              got.push(a === UNSET ? undefined : texts[k]!.slice(a, n.ov[4 * g + 2]!));
            }
          } else expect(rc).toBe(-1); // no PCRE2 error on these lines
          expect({ where: rx.where, text: texts[k], got }).toEqual({
            where: rx.where,
            text: texts[k],
            got: want,
          });
        }
      }
    }
    if (name === "sshd") expect(native).toBeGreaterThan(40);
  });
});

describe.skipIf(!nativeAvailable())("a chunk scanned from bytes as from text", () => {
  for (const ref of ["sshd", "sshd[mode=aggressive]", "sshd[publickey=any]"]) {
    test(ref, () => {
      const text = authLog(20000);
      // a processor each: the same ids, numbered alike
      const fromText = new ChunkProcessor([{ ref, jail: "j" }], NOW).start(false);
      fromText.feed(text, true, true);
      const fromBytes = new ChunkProcessor([{ ref, jail: "j" }], NOW).start(false);
      fromBytes.feed(Buffer.from(text, "latin1"), true, true);
      const a = fromText.finish(0, 0);
      const b = fromBytes.finish(0, 0);
      expect(a.times.length).toBeGreaterThan(1000);
      expect(a.noDate).toBeGreaterThan(0);
      expect(b).toEqual(a);
    });
  }
});

test("the ids a run keeps do not keep the blocks they were read from alive", () => {
  const { heapStats } = require("bun:jsc") as typeof import("bun:jsc");
  const live = () => {
    Bun.gc(true);
    const { heapSize, extraMemorySize } = heapStats();
    return heapSize + extraMemorySize;
  };
  const before = live();
  const proc = new ChunkProcessor([{ ref: "sshd", jail: "j" }], NOW);
  const kept: Array<number | string> = [];
  const filler = ` gw CRON[1]: ${"x".repeat(1000)}\n`.repeat(1000);
  for (let b = 0; b < 40; b++) {
    // a block of about 1 MB with one failure from an address of its own
    const block = `Mar  1 10:00:00 gw sshd[9]: Failed password for root from 198.${b + 100}.123.234 port 22 ssh2\n${filler.replaceAll(" gw", "Mar  1 10:00:00 gw")}`;
    const run = proc.start(false);
    run.feed(Buffer.from(block, "latin1"), true, true);
    run.feed(block, true, true);
    kept.push(...run.finish(b, 0).ids);
  }
  expect(kept.length).toBe(40);
  // 40 MB of text went through; what stays is the ids and the matchers, not the blocks (a
  // substring of more than a few characters shares its text in JavaScriptCore)
  expect(live() - before).toBeLessThan(10e6);
});

test("a chunk handed over as bytes (gzip, stdin) gives what its text gives, lead-in and all", () => {
  const log = authLog(3000);
  const lines = log.split("\n");
  const prime = `${lines.slice(0, 500).join("\n")}\n`;
  const body = `${lines.slice(500).join("\n")}`;
  for (const text of [
    prime + body,
    `${prime}Mar  1 10:00:00 gw sshd[1]: Failed password for jürgen from 192.0.2.7 port 1 ssh2\n${body}`,
  ]) {
    const data = Buffer.from(text, "utf8");
    // a processor each: the same ids, numbered alike
    const want = new ChunkProcessor([{ ref: "sshd", jail: "j" }], NOW).process(0, text, {
      primeChars: prime.length,
    });
    const got = new ChunkProcessor([{ ref: "sshd", jail: "j" }], NOW).processBytes(
      0,
      data,
      Buffer.byteLength(prime),
      false,
    );
    expect(got.times.length).toBeGreaterThan(100);
    expect(got).toEqual(want);
  }
});

test("a processor that reuses its failure arrays gives each run's failures as a fresh one does", () => {
  const lines = authLog(6000).split("\n");
  // chunks of different sizes: the arrays grow, then a smaller run writes over a bigger one's
  const chunks = [lines.slice(0, 3000), lines.slice(3000, 3100), lines.slice(3100)].map(
    (c) => `${c.join("\n")}\n`,
  );
  const fresh = new ChunkProcessor([{ ref: "sshd", jail: "j" }], NOW);
  const reusing = new ChunkProcessor([{ ref: "sshd", jail: "j" }], NOW, true);
  chunks.forEach((text, seq) => {
    const want = fresh.processBytes(seq, Buffer.from(text, "latin1"), 0, false);
    const got = reusing.processBytes(seq, Buffer.from(text, "latin1"), 0, false);
    expect(got.times.length).toBeGreaterThan(0);
    expect(got).toEqual(want);
  });
});
