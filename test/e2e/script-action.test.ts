/**
 * Script actions end to end with the real binary: modules from a temp dir loaded by `fail2ts run`
 * (batches in, failures survived), broken modules as config errors, `fail2ts types`.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { binary, Env, failures, until } from "./daemon-helpers.ts";

const ROOT = join(import.meta.dir, "..", "..");
const envs: Env[] = [];
function env(): Env {
  const e = new Env();
  envs.push(e);
  return e;
}
afterEach(async () => {
  for (const e of envs.splice(0)) await e.cleanup();
});
beforeAll(() => {
  binary();
}, 120000);

/** A module appending one JSON line per call to options.out. */
const RECORDER = `
import { appendFileSync } from "node:fs";
import type { ActionContext, BanEvent } from "./fail2ts.d.ts";
type Ctx = ActionContext<{ out: string; greeting: string }>;
const rec = (ctx: Ctx, op: string, events?: readonly BanEvent[]) =>
  appendFileSync(ctx.options.out, JSON.stringify({ op, jail: ctx.jail.name, greeting: ctx.options.greeting,
    events: events?.map((e) => ({ ip: e.ip, failures: e.failures, bantime: e.bantime, matches: e.matches.length, restored: e.restored ?? false })) }) + "\\n");
export function start(ctx: Ctx) { rec(ctx, "start"); }
export async function ban(events: readonly BanEvent[], ctx: Ctx) { rec(ctx, "ban", events); }
export async function unban(events: readonly BanEvent[], ctx: Ctx) { rec(ctx, "unban", events); }
export function stop(ctx: Ctx) { rec(ctx, "stop"); }
`;

/** Throws on its first two bans (a stack two functions deep), then works. */
const THROWER = `
let n = 0;
function callApi(ip: string): never { throw new Error("API said 503 for " + ip); }
export async function ban(events: any[]) { if (++n <= 2) callApi(events[0].ip); }
export function unban() {}
`;

/** Never answers its first ban; notes the abort of ctx.signal in options.out. */
const HANGER = `
import { appendFileSync } from "node:fs";
let n = 0;
export function ban(events: any[], ctx: any) {
  if (++n > 1) return;
  return new Promise<void>(() => {
    ctx.signal.addEventListener("abort", () => appendFileSync(ctx.options.out, ctx.signal.reason.name + "\\n"));
  });
}
export function unban() {}
`;

/** Errors outside any call: a timer that throws, a promise nobody awaits. */
const STRAY = `
export function ban() {
  setTimeout(() => { throw new Error("stray timer boom"); }, 5);
  void Promise.reject(new Error("forgotten promise"));
}
export function unban() {}
`;

function server(): string {
  return `[server]
socket = "run/fail2ts.sock"
database = "fail2ts.db"
logtarget = "fail2ts.log"
loglevel = "info"
`;
}

function fileAction(e: Env): string {
  const argv = (what: string) =>
    JSON.stringify(["/bin/sh", "-c", `printf '${what} %s\\n' "$1" >> "$2"`, "sh", "<ip>", e.bans]);
  return `[actions.file]\ntype = "command"\nban = ${argv("ban")}\nunban = ${argv("unban")}\n`;
}

function writeModule(e: Env, name: string, code: string): string {
  const p = join(e.dir, name);
  writeFileSync(p, code, { mode: 0o644 });
  return p;
}

function jsonl(path: string): Array<Record<string, unknown>> {
  return existsSync(path)
    ? readFileSync(path, "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];
}

describe("script actions in the daemon (real binary)", () => {
  test("a module from a temp dir gets its bans and unbans in batches; failing ones are survived", async () => {
    const e = env();
    // the contract's types beside the modules, as an admin would put them
    writeFileSync(join(e.dir, "fail2ts.d.ts"), e.cli("types").out);
    const rec = writeModule(e, "rec.ts", RECORDER);
    const thrower = writeModule(e, "thrower.ts", THROWER);
    const hanger = writeModule(e, "hanger.ts", HANGER);
    const out = join(e.dir, "rec.jsonl");
    const aborts = join(e.dir, "aborts.txt");
    writeFileSync(
      e.conf,
      `[defaults]
maxretry = 2
findtime = "10m"
bantime = "3s"
ignoreip = ["127.0.0.1/8"]

[jails.sshd]
filter = "sshd"
logpath = ["auth.log"]
action = ["thrower", "hanger", "rec", "file"]

[actions.rec]
type = "script"
path = ${JSON.stringify(rec)}
options = { out = ${JSON.stringify(out)}, greeting = "hi" }

[actions.thrower]
type = "script"
path = ${JSON.stringify(thrower)}

[actions.hanger]
type = "script"
path = ${JSON.stringify(hanger)}
timeout = "1s"
options = { out = ${JSON.stringify(aborts)} }

${fileAction(e)}
${server()}`,
    );
    expect(e.cli("check", "-q", "-c", e.conf)).toMatchObject({ code: 0 });
    await e.start();
    // three attackers in one write: one tick, one batch
    e.append(failures("203.0.113.7", 2) + failures("198.51.100.9", 2) + failures("2001:db8::5", 2));
    await until(() => jsonl(out).some((c) => c.op === "ban"), 5000, "the module's ban");
    const calls = jsonl(out);
    expect(calls[0]).toEqual({ op: "start", jail: "sshd", greeting: "hi" });
    expect(calls[1]).toEqual({
      op: "ban",
      jail: "sshd",
      greeting: "hi",
      events: [
        { ip: "203.0.113.7", failures: 2, bantime: 3, matches: 2, restored: false },
        { ip: "198.51.100.9", failures: 2, bantime: 3, matches: 2, restored: false },
        { ip: "2001:db8::5", failures: 2, bantime: 3, matches: 2, restored: false },
      ],
    });
    // the throwing and the hanging (1 s timeout) module delay nobody else
    await until(() => e.banLines().length === 3, 800, "the command action's bans");
    expect(e.banLines().sort()).toEqual(["ban 198.51.100.9", "ban 2001:db8::5", "ban 203.0.113.7"]);
    // the unbans come as one batch too, after bantime
    await until(() => jsonl(out).some((c) => c.op === "unban"), 8000, "the module's unban");
    expect(jsonl(out)[2]).toMatchObject({ op: "unban" });
    expect((jsonl(out)[2]!.events as { ip: string }[]).map((x) => x.ip).sort()).toEqual([
      "198.51.100.9",
      "2001:db8::5",
      "203.0.113.7",
    ]);
    // the thrower: stack in the log, retried with backoff, recovered
    await until(() => /thrower: recovered/.test(e.logText()), 10000, "the thrower to recover");
    const log = e.logText();
    expect(log).toContain(`ERROR jail=sshd: thrower ban: ${thrower} threw: API said 503 for 203.0.113.7`);
    expect(log).toMatch(
      new RegExp(`ERROR jail=sshd:     at callApi \\(${thrower.replace(/[.]/g, "\\.")}:3:\\d+\\)`),
    );
    expect(log).toMatch(
      /ERROR jail=sshd: thrower: thrower ban: API said 503 for 203\.0\.113\.7 \(3 pending; retry in 1 s\)/,
    );
    // the hanger: abandoned after 1 s with its signal aborted, retried, recovered
    await until(() => /hanger: recovered/.test(e.logText()), 10000, "the hanger to recover");
    expect(e.logText()).toMatch(
      /ERROR jail=sshd: hanger: hanger ban: timed out after 1 s \(.*hanger\.ts; the call is abandoned and ctx\.signal aborted\) \(3 pending; retry in 1 s\)/,
    );
    expect(readFileSync(aborts, "utf8")).toBe("TimeoutError\n");
    expect((await e.status()).banned_now).toBe(0);
    expect(e.proc?.exitCode).toBeNull();
  }, 30000);

  test("errors outside a call (a module's timer, a forgotten promise) are logged, not fatal", async () => {
    const e = env();
    const stray = writeModule(e, "stray.ts", STRAY);
    writeFileSync(
      e.conf,
      `[defaults]
maxretry = 1
bantime = "10m"
ignoreip = ["127.0.0.1/8"]

[jails.sshd]
filter = "sshd"
logpath = ["auth.log"]
action = ["stray", "file"]

[actions.stray]
type = "script"
path = ${JSON.stringify(stray)}

${fileAction(e)}
${server()}`,
    );
    await e.start();
    e.append(failures("203.0.113.7", 1));
    await until(
      () => /stray timer boom/.test(e.logText()) && /forgotten promise/.test(e.logText()),
      5000,
      "the stray errors",
    );
    const log = e.logText();
    expect(log).toContain(
      `ERROR jail=sshd: stray: ${stray}: uncaught exception outside of a call: stray timer boom`,
    );
    expect(log).toContain(
      `ERROR jail=sshd: stray: ${stray}: unhandled rejection outside of a call: forgotten promise`,
    );
    // still serving and banning
    e.append(failures("198.51.100.9", 1));
    await until(() => e.banLines().length === 2, 5000, "the second ban");
    expect((await e.status()).banned_now).toBe(2);
    expect(e.proc?.exitCode).toBeNull();
  }, 20000);
});

describe("a broken module is a config error naming its path (check and run)", () => {
  const cases: [string, string, (p: string) => RegExp][] = [
    [
      "a syntax error",
      "export function ban(events: any[]) {\n  return events.map((e) => e.ip +);\n}\nexport function unban() {}\n",
      (p) =>
        new RegExp(`actions\\.bad\\.path: ${p.replace(/[.]/g, "\\.")}:2:\\d+: syntax error: Unexpected \\)`),
    ],
    [
      "a missing ban export",
      "export function bann() {}\nexport function unban() {}\n",
      (p) => new RegExp(`actions\\.bad\\.path: ${p.replace(/[.]/g, "\\.")} exports no ban\\(\\)`),
    ],
    [
      "a missing file",
      "",
      (p) => new RegExp(`actions\\.bad\\.path: ${p.replace(/[.]/g, "\\.")} does not exist`),
    ],
  ];
  for (const [what, code, want] of cases) {
    test(what, async () => {
      const e = env();
      const p = join(e.dir, "bad.ts");
      if (code) writeModule(e, "bad.ts", code);
      writeFileSync(
        e.conf,
        `[jails.sshd]\nfilter = "sshd"\nlogpath = ["auth.log"]\naction = ["bad"]\n\n[actions.bad]\ntype = "script"\npath = ${JSON.stringify(p)}\n\n${server()}`,
      );
      const check = e.cli("check", "-c", e.conf);
      expect(check.code).toBe(2);
      expect(check.err).toMatch(/fail2ts\.toml:\d+:\d+: /);
      expect(check.err).toMatch(want(p));
      const run = e.cli("run", "-c", e.conf);
      expect(run.code).toBe(2);
      expect(run.err).toMatch(want(p));
    });
  }

  // what only an import finds (top-level code, imports) needs the daemon's preload hook
  const hooked = readFileSync(join(ROOT, "src/cli/check.ts"), "utf8").includes("preloadScriptActions");
  test.skipIf(!hooked)("a module whose top-level code throws (check's preload hook)", () => {
    const e = env();
    const p = writeModule(
      e,
      "bad.ts",
      'throw new Error("token file missing");\nexport function ban() {}\nexport function unban() {}\n',
    );
    writeFileSync(
      e.conf,
      `[jails.sshd]\nfilter = "sshd"\nlogpath = ["auth.log"]\naction = ["bad"]\n\n[actions.bad]\ntype = "script"\npath = ${JSON.stringify(p)}\n\n${server()}`,
    );
    const check = e.cli("check", "-c", e.conf);
    expect(check.code).toBe(2);
    expect(check.err).toContain(`action bad: ${p}: cannot load: token file missing`);
    const run = e.cli("run", "-c", e.conf);
    expect(run.code).toBe(2);
    expect(run.err).toContain(`action bad: ${p}: cannot load: token file missing`);
  });
});

describe("fail2ts types", () => {
  test("prints types/fail2ts.d.ts, which the binary carries", () => {
    const e = env();
    const r = e.cli("types");
    expect(r.code).toBe(0);
    expect(r.out).toBe(readFileSync(join(ROOT, "types/fail2ts.d.ts"), "utf8"));
  });
});
