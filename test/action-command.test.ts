/**
 * command: hostile values must reach a real program as literal arguments — without a shell, and
 * with shell = true (each value single-quoted).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Exec } from "../src/action/exec.ts";
import { createAction, validateActionSpec } from "../src/action/registry.ts";
import type { Action } from "../src/action/types.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { ev, memoryLog } from "./helpers/netns.ts";

const dir = mkdtempSync(join(tmpdir(), "f2t-command-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A program that appends its argv (after the output path) as one JSON line. */
const ARGV_JS = join(dir, "argv.js");
writeFileSync(
  ARGV_JS,
  `require("node:fs").appendFileSync(process.argv[2], JSON.stringify(process.argv.slice(3)) + "\\n");\n`,
);
const BUN = process.execPath;

let n = 0;
function out(): string {
  return join(dir, `out-${n++}.jsonl`);
}
function lines(path: string): string[][] {
  return readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as string[]);
}

const HOSTILE = [
  "$(reboot)",
  "`reboot`",
  "; rm -rf / ;",
  "a'b\"c",
  "'",
  "line1\nline2",
  "-rf",
  "--help",
  "*",
  "~root",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell expansion is the point
  "\\n \\ $HOME ${PATH}",
  "<ip> <jail>",
  "&& touch /tmp/f2t-pwned ||",
  "| cat /etc/shadow",
  ">/tmp/f2t-pwned",
];

function make(options: Record<string, unknown>, exec?: Exec): Action {
  return createAction(
    { name: "cmd", type: "command", options },
    { name: "sshd" },
    exec ? { log: memoryLog(), exec } : { log: memoryLog() },
  );
}

describe("command action", () => {
  test("argv templates: each hostile value is one literal argument (no shell)", async () => {
    const o = out();
    const a = make({
      ban: [BUN, ARGV_JS, o, "<ip>", "--jail=<jail>", "<matches>", "<failures>", "<bantime>", "<count>"],
    });
    for (const h of HOSTILE) {
      await a.ban([ev(h, { matches: [h, h], failures: 3, bantime: -1, count: 1 })]);
    }
    const got = lines(o);
    expect(got.length).toBe(HOSTILE.length);
    HOSTILE.forEach((h, i) => {
      expect(got[i]).toEqual([h, "--jail=sshd", `${h}\n${h}`, "3", "-1", "1"]);
    });
  });

  test("shell = true: values arrive literally, unquoted, in double or in single quotes", async () => {
    const o = out();
    const a = make({
      shell: true,
      ban: `${BUN} ${ARGV_JS} ${o} <ip> --ip=<ip> <matches> "<jail>" "m=<matches>" 'x<ip>y' && echo ok >/dev/null`,
    });
    for (const h of HOSTILE) await a.ban([ev(h, { matches: [h] })]);
    const got = lines(o);
    expect(got.length).toBe(HOSTILE.length);
    HOSTILE.forEach((h, i) => {
      expect(got[i]).toEqual([h, `--ip=${h}`, h, "sshd", `m=${h}`, `x${h}y`]);
    });
  });

  test("shell = true: a value never runs, even in a here-document (where quoting would not help)", async () => {
    const o = out();
    const marker = join(dir, "pwned");
    const a = make({ shell: true, ban: `cat >> ${o}.txt <<EOF\n<matches>\nEOF` });
    await a.ban([
      ev("192.0.2.1", { matches: [`$(touch ${marker})`, `\`touch ${marker}\``, `'$(touch ${marker})'`] }),
    ]);
    expect(() => readFileSync(marker)).toThrow();
    expect(readFileSync(`${o}.txt`, "utf8")).toContain(`$(touch ${marker})`);
  });

  test("the values are in the environment too (F2T_IP, F2T_MATCHES, ...)", async () => {
    const o = out();
    const a = make({
      ban: [
        BUN,
        "-e",
        `require("node:fs").writeFileSync(${JSON.stringify(o)}, JSON.stringify([process.env.F2T_IP, process.env.F2T_JAIL, process.env.F2T_MATCHES]) + "\\n")`,
      ],
    });
    await a.ban([ev("$(reboot)", { matches: ["a\nb"] })]);
    expect(lines(o)).toEqual([["$(reboot)", "sshd", "a\nb"]]);
  });

  test("one process per event, bounded concurrency", async () => {
    let inFlight = 0;
    let peak = 0;
    const seen: string[] = [];
    const exec: Exec = async (argv) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      seen.push(argv[1]!);
      await Bun.sleep(20);
      inFlight--;
      return { code: 0, stdout: "", stderr: "" };
    };
    const a = make({ ban: ["/bin/true", "<ip>"], concurrency: 3 }, exec);
    await a.ban(Array.from({ length: 10 }, (_, i) => ev(`192.0.2.${i}`)));
    expect(seen.length).toBe(10);
    expect(peak).toBe(3);
  });

  test("start, stop, flush get <jail>; check is its exit status", async () => {
    const o = out();
    const a = make({
      ban: [BUN, ARGV_JS, o, "ban"],
      start: [BUN, ARGV_JS, o, "start", "<jail>"],
      stop: [BUN, ARGV_JS, o, "stop", "<jail>"],
      flush: [BUN, ARGV_JS, o, "flush", "<jail>"],
      check: ["/bin/sh", "-c", "exit 3"],
    });
    await a.start();
    await a.flush();
    await a.stop();
    expect(lines(o)).toEqual([
      ["start", "sshd"],
      ["flush", "sshd"],
      ["stop", "sshd"],
    ]);
    expect(await a.check!()).toBe(false);
    expect(await make({ ban: ["/bin/true"] }).check!()).toBe(true);
  });

  test("a failing command: action error with exit status and stderr; a missing binary too", async () => {
    const a = make({ ban: ["/bin/sh", "-c", "echo 'firewall says no' >&2; exit 4", "<ip>"] });
    const err = await a.ban([ev("192.0.2.1")]).catch((e) => e);
    expect(err).toBeInstanceOf(Fail2tsError);
    expect((err as Error).message).toBe("cmd ban: /bin/sh exited 4: firewall says no");
    const missing = await make({ unban: ["/nonexistent/x", "<ip>"] })
      .unban([ev("192.0.2.1")])
      .catch((e) => e);
    expect((missing as Error).message).toMatch(/^cmd unban: \/nonexistent\/x exited 127/);
  });

  test("unban without an unban template does nothing; restored bans run by default", async () => {
    const o = out();
    const a = make({ ban: [BUN, ARGV_JS, o, "<ip>"] });
    await a.unban([ev("192.0.2.1")]);
    await a.ban([ev("192.0.2.2", { restored: true })]);
    expect(lines(o)).toEqual([["192.0.2.2"]]);
  });

  test("validation: form per shell, known tags, ban or unban required", () => {
    const v = (options: Record<string, unknown>) =>
      validateActionSpec({ name: "c", type: "command", options });
    expect(v({ ban: ["/bin/x", "<ip>"] })).toEqual([]);
    expect(v({ ban: "/bin/x <ip>" })[0]).toMatch(/^ban: an argv array/);
    expect(v({ shell: true, ban: ["/bin/x"] })[0]).toMatch(/^ban: with shell = true/);
    expect(v({ ban: ["/bin/x", "<host>"] })).toEqual(["ban: unknown tag <host> here"]);
    expect(v({ start: ["/bin/x", "<ip>"], ban: ["/bin/x"] })).toEqual(["start: unknown tag <ip> here"]);
    expect(v({ start: ["/bin/x"] })[0]).toMatch(/needs ban and\/or unban/);
    expect(v({ ban: ["/bin/x"], bogus: 1 })[0]).toMatch(/^bogus: unknown option/);
    expect(v({ ban: ["/bin/x"], timeout: "soon" })[0]).toMatch(/^timeout: must be a duration/);
  });
});
