/**
 * Script actions in process: validation (static), preload (import), the contract as a module sees
 * it (batches, ctx, state, frozen data), and failure through the ActionRunner (throw, reject,
 * hang past the timeout: logged with the stack, retried, other actions unaffected).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAction, validateActionSpec } from "../src/action/registry.ts";
import { ActionRunner } from "../src/action/runner.ts";
import { loadScriptModule, preloadScriptActions, type ScriptAction } from "../src/action/script.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { ev, memoryLog } from "./helpers/netns.ts";

const dir = mkdtempSync(join(tmpdir(), "f2ts-script-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** Writes a module (a fresh file name each time: imports are cached per path and content). */
function mod(code: string, ext = ".ts"): string {
  const p = join(dir, `m${++n}${ext}`);
  writeFileSync(p, code);
  return p;
}

/** A module recording its calls in globalThis.__calls[key]. */
function recorder(key: string, extra = ""): string {
  return mod(`
const calls = ((globalThis as any).__calls ??= {})[${JSON.stringify(key)}] = [] as any[];
export function start(ctx: any) { calls.push({ op: "start", jail: ctx.jail.name, state: ctx.state.n ?? 0 }); ctx.state.n = (ctx.state.n ?? 0) + 1; }
export async function ban(events: any[], ctx: any) { calls.push({ op: "ban", ips: events.map((e: any) => e.ip), restored: events.some((e: any) => e.restored) }); }
export async function unban(events: any[], ctx: any) { calls.push({ op: "unban", ips: events.map((e: any) => e.ip) }); }
export function stop(ctx: any) { calls.push({ op: "stop" }); }
${extra}
`);
}

function calls(key: string): Array<Record<string, unknown>> {
  return (globalThis as unknown as { __calls: Record<string, Array<Record<string, unknown>>> }).__calls[key]!;
}

const v = (options: Record<string, unknown>) => validateActionSpec({ name: "x", type: "script", options });

function script(path: string, extra: Record<string, unknown> = {}, jail = "sshd") {
  const log = memoryLog();
  const action = createAction(
    { name: "mine", type: "script", options: { path, ...extra } },
    { name: jail },
    { log },
  );
  return { action: action as ScriptAction, log };
}

const until = async (fn: () => boolean, ms = 3000, what = "condition") => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
};

describe("validation (static, at check and start)", () => {
  test("a good module, named or default exports, .ts/.js/.mjs", () => {
    expect(v({ path: recorder("v1"), options: { a: 1, b: [1, 2], c: { d: "e" } }, timeout: "5s" })).toEqual(
      [],
    );
    expect(v({ path: mod("export default { ban() {}, unban() {} };") })).toEqual([]);
    expect(v({ path: mod("export function ban() {}\nexport function unban() {}\n", ".js") })).toEqual([]);
    expect(v({ path: mod("export const ban = () => {}, unban = () => {};", ".mjs") })).toEqual([]);
  });

  test("keys: path required, absolute, options a table, known keys only", () => {
    expect(v({})).toEqual(['path: required: the module file (path = "/etc/fail2ts/actions/x.ts")']);
    expect(v({ path: "actions/x.ts" })).toEqual(['path: "actions/x.ts": must be an absolute path']);
    expect(v({ path: recorder("v2"), options: "zone=x" })).toEqual([
      'options: must be a table (options = { key = "value" }), got "zone=x"',
    ]);
    expect(v({ path: recorder("v3"), zone: "example.com" })).toEqual([
      "zone: unknown option (known: options, path, timeout; module options go in options = { ... })",
    ]);
    expect(v({ path: recorder("v4"), timeout: "soon" })[0]).toMatch(/^timeout: must be a duration/);
    expect(v({ path: "/etc/fail2ts/actions/x.py" })).toEqual([
      "path: /etc/fail2ts/actions/x.py: a module is a .ts, .mts, .js, .mjs or .cjs file",
    ]);
  });

  test("the file: missing, a directory, writable by others", () => {
    expect(v({ path: join(dir, "nope.ts") })).toEqual([`path: ${join(dir, "nope.ts")} does not exist`]);
    const p = recorder("v5");
    chmodSync(p, 0o666);
    expect(v({ path: p })).toEqual([`path: ${p} is writable by every user (chmod o-w)`]);
    chmodSync(p, 0o644);
    expect(v({ path: p })).toEqual([]);
  });

  test("syntax errors name path:line:col; missing exports name what is missing", () => {
    const bad = mod("export function ban(events) {\n  return events +;\n}\nexport function unban() {}\n");
    expect(v({ path: bad })).toEqual([`path: ${bad}:2:18: syntax error: Unexpected ;`]);
    const noBan = mod("export function unban() {}\n");
    expect(v({ path: noBan })).toEqual([
      `path: ${noBan} exports no ban(): a script action exports ban(events, ctx) and unban(events, ctx)`,
    ]);
    const nothing = mod("const x = 1;\n");
    expect(v({ path: nothing })[0]).toContain("exports no ban() and no unban()");
  });

  test("createAction needs no import (the config loader builds instances synchronously)", () => {
    const { action } = script(recorder("v6"));
    expect(action.name).toBe("mine");
    expect(action.exports).toEqual([]);
  });
});

describe("preload (import, at check and start)", () => {
  test("good modules resolve; both config tables and ActionSpecs are accepted", async () => {
    await preloadScriptActions({
      a: { name: "a", type: "script", path: recorder("p1") },
      b: { type: "nftables" },
    });
    await preloadScriptActions([{ name: "a", type: "script", options: { path: recorder("p2") } }]);
  });

  test("a top-level throw, a missing import, a non-function export: config errors naming the path", async () => {
    const thrower = mod(
      'throw new TypeError("no token file");\nexport function ban() {}\nexport function unban() {}\n',
    );
    const missing = mod(
      'import x from "no-such-package-f2ts";\nexport function ban() { x; }\nexport function unban() {}\n',
    );
    const notFn = mod("export const ban = 1;\nexport function unban() {}\n");
    const err = await preloadScriptActions({
      t: { type: "script", path: thrower },
      m: { type: "script", path: missing },
      n: { type: "script", path: notFn },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(Fail2tsError);
    expect((err as Fail2tsError).code).toBe("config");
    const lines = (err as Error).message.split("\nfail2ts: ");
    expect(lines[0]).toBe(`action t: ${thrower}: cannot load: no token file`);
    expect(lines[1]).toStartWith(
      `action m: ${missing}: cannot load: Cannot find package 'no-such-package-f2ts'`,
    );
    expect(lines[1]).not.toContain("?v=");
    expect(lines[2]).toBe(`action n: ${notFn}: cannot load: its export ban is a number, not a function`);
  });

  test("a default export without ban is caught at import", async () => {
    const p = mod("export default { unban() {} };\n");
    expect(v({ path: p })).toEqual([]);
    await expect(loadScriptModule(p)).rejects.toThrow(`${p}: cannot load: it exports no ban()`);
  });

  test("top-level code that never finishes times out", async () => {
    const p = mod("await new Promise(() => {});\nexport function ban() {}\nexport function unban() {}\n");
    const t0 = performance.now();
    await expect(preloadScriptActions({ h: { type: "script", path: p, timeout: "200ms" } })).rejects.toThrow(
      `action h: ${p}: cannot load: its top-level code did not finish within 0.2 s`,
    );
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  test("a changed file is imported afresh; an unchanged one is the same module", async () => {
    const p = mod("export const v = 1; export function ban() {} export function unban() {}");
    const a = await loadScriptModule(p);
    expect(await loadScriptModule(p)).toBe(a);
    writeFileSync(p, "export const v = 2; export function ban() { return 2; } export function unban() {}");
    const b = await loadScriptModule(p);
    expect(b).not.toBe(a);
    expect(b.fns.ban!()).toBe(2);
  });
});

describe("the contract as a module sees it", () => {
  test("start, batches of ban/unban, stop; ctx has jail, options, state, log, signal", async () => {
    const p = mod(`
export const seen: any[] = [];
(globalThis as any).__seen = seen;
export function start(ctx: any) { seen.push(["start", ctx.action, ctx.jail.name, ctx.options, ctx.timeoutMs, ctx.signal.aborted]); ctx.state.k = "v"; ctx.log.info("hello"); }
export function ban(events: any[], ctx: any) {
  seen.push(["ban", events.map((e: any) => [e.ip, e.jail, e.failures, e.bantime, e.count, e.matches.length]), ctx.state.k]);
  try { events[0].ip = "x"; } catch { seen.push("events frozen"); }
  try { ctx.options.zone = "x"; } catch { seen.push("options frozen"); }
}
export function unban(events: any[]) { seen.push(["unban", events.map((e: any) => e.ip)]); }
export function stop(ctx: any) { seen.push(["stop", ctx.state.k]); }
`);
    const { action, log } = script(p, { options: { zone: "example.com", n: 2 }, timeout: "5s" });
    const runner = new ActionRunner(action, log);
    runner.ban(ev("192.0.2.1"));
    runner.ban(ev("192.0.2.2"));
    runner.ban(ev("2001:db8::1"));
    await runner.idle();
    runner.unban(ev("192.0.2.1"));
    runner.unban(ev("192.0.2.2"));
    await runner.idle();
    await runner.close({ stop: true });
    const seen = (globalThis as unknown as { __seen: unknown[] }).__seen;
    expect(seen).toEqual([
      ["start", "mine", "sshd", { zone: "example.com", n: 2 }, 5000, false],
      [
        "ban",
        [
          ["192.0.2.1", "sshd", 5, 600, 0, 1],
          ["192.0.2.2", "sshd", 5, 600, 0, 1],
          ["2001:db8::1", "sshd", 5, 600, 0, 1],
        ],
        "v",
      ],
      "events frozen",
      "options frozen",
      ["unban", ["192.0.2.1", "192.0.2.2"]],
      ["stop", "v"],
    ]);
    expect(log.lines).toContain("info: mine: hello");
  });

  test("a default export object works, with `this` bound to it", async () => {
    const p = mod(`
export default {
  n: 0,
  ban(events: any[]) { this.n += events.length; (globalThis as any).__def = this.n; },
  unban() {},
};`);
    const { action } = script(p);
    await action.start();
    await action.ban([ev("192.0.2.1"), ev("192.0.2.2")]);
    expect((globalThis as unknown as { __def: number }).__def).toBe(2);
  });

  test("flush: the module's, else unban() of everything this instance banned", async () => {
    const { action } = script(recorder("f1"));
    await action.start();
    await action.ban([ev("192.0.2.1"), ev("192.0.2.2")]);
    await action.unban([ev("192.0.2.1")]);
    await action.ban([ev("192.0.2.3")]);
    await action.flush();
    await action.flush();
    expect(calls("f1").map((c) => `${c.op}${c.ips ? ` ${(c.ips as string[]).join(",")}` : ""}`)).toEqual([
      "start",
      "ban 192.0.2.1,192.0.2.2",
      "unban 192.0.2.1",
      "ban 192.0.2.3",
      "unban 192.0.2.2,192.0.2.3",
    ]);
    const withFlush = recorder("f2", 'export function flush() { calls.push({ op: "flush" }); }');
    const b = script(withFlush).action;
    await b.start();
    await b.ban([ev("192.0.2.1")]);
    await b.flush();
    expect(calls("f2").map((c) => c.op)).toEqual(["start", "ban", "flush"]);
  });

  test("dry run: the module is loaded, its functions are not called", async () => {
    const log = memoryLog();
    const a = createAction(
      { name: "d", type: "script", options: { path: recorder("d1") } },
      { name: "sshd" },
      { log, dryRun: true },
    );
    await a.start();
    await a.ban([ev("192.0.2.1")]);
    expect(calls("d1")).toEqual([]);
    expect(log.lines).toContain("info: dry-run: d: would call ban() with 1 events: 192.0.2.1");
  });
});

describe("failures go through the runner like any action's", () => {
  const fast = { backoffMinMs: 20, backoffMaxMs: 50 };

  test("a throwing module: logged with its stack, retried, re-synced; other runners go on", async () => {
    const p = mod(`
let n = 0;
export const log: string[] = [];
(globalThis as any).__thrower = log;
function explode(): never { throw new RangeError("quota exceeded"); }
export async function ban(events: any[]) {
  log.push(\`ban \${events.map((e: any) => e.ip + (e.restored ? "(r)" : "")).join(",")}\`);
  if (++n <= 2) explode();
}
export function unban() {}
`);
    const { action, log } = script(p);
    const runner = new ActionRunner(action, log, fast);
    const other = recorder("o1");
    const o = script(other);
    const otherRunner = new ActionRunner(o.action, o.log);
    runner.ban(ev("192.0.2.1"));
    otherRunner.ban(ev("192.0.2.1"));
    await otherRunner.idle();
    expect(calls("o1").map((c) => c.op)).toEqual(["start", "ban"]);
    await runner.idle();
    expect((globalThis as unknown as { __thrower: string[] }).__thrower).toEqual([
      "ban 192.0.2.1",
      "ban 192.0.2.1",
      "ban 192.0.2.1",
    ]);
    const text = log.lines.join("\n");
    expect(text).toContain(`error: mine ban: ${p} threw: RangeError: quota exceeded`);
    expect(text).toMatch(new RegExp(`error:     at explode \\(${p.replace(/[.]/g, "\\.")}:\\d+:\\d+\\)`));
    expect(text).toContain(`error:     at ban (${p}:`);
    expect(text).toMatch(/error: mine: mine ban: RangeError: quota exceeded \(1 pending; retry in 0\.02 s\)/);
    expect(text).toContain("info: mine: recovered");
    // the next ban re-uses the started module
    runner.ban(ev("192.0.2.9"));
    await runner.idle();
    expect((globalThis as unknown as { __thrower: string[] }).__thrower.at(-1)).toBe("ban 192.0.2.9");
  });

  test("a rejected promise, a thrown string, a sync throw in start: all failures, all retried", async () => {
    const p = mod(`
let n = 0;
export function start() { if (++n === 1) throw "not ready"; }
export function ban() { return Promise.reject(new Error("api down")); }
export function unban() {}
`);
    const { action, log } = script(p);
    const runner = new ActionRunner(action, log, fast);
    runner.ban(ev("192.0.2.1"));
    await until(() => log.lines.filter((l) => l.includes("api down")).length >= 4, 3000, "retries");
    const text = log.lines.join("\n");
    expect(text).toContain(`error: mine start: ${p} threw: not ready`);
    expect(text).toContain("mine ban: api down (1 pending; retry in");
    expect(runner.status().failures).toBeGreaterThanOrEqual(2);
    await runner.close({ timeoutMs: 10 });
  });

  test("a hanging module: abandoned after the timeout, ctx.signal aborted, retried; others go on", async () => {
    const p = mod(`
let n = 0;
export const aborts: string[] = [];
(globalThis as any).__aborts = aborts;
export function ban(events: any[], ctx: any) {
  if (++n > 2) return;
  return new Promise<void>((resolve) => {
    ctx.signal.addEventListener("abort", () => aborts.push(ctx.signal.reason.name));
  });
}
export function unban() {}
`);
    const { action, log } = script(p, { timeout: "100ms" });
    const runner = new ActionRunner(action, log, fast);
    const o = script(recorder("o2"));
    const otherRunner = new ActionRunner(o.action, o.log);
    const t0 = performance.now();
    runner.ban(ev("192.0.2.1"));
    otherRunner.ban(ev("192.0.2.1"));
    await otherRunner.idle();
    expect(performance.now() - t0).toBeLessThan(80);
    await runner.idle();
    expect((globalThis as unknown as { __aborts: string[] }).__aborts).toEqual([
      "TimeoutError",
      "TimeoutError",
    ]);
    const text = log.lines.join("\n");
    expect(text).toContain(
      `mine ban: timed out after 0.1 s (${p}; the call is abandoned and ctx.signal aborted) (1 pending; retry in 0.02 s)`,
    );
    expect(text).toContain("info: mine: recovered");
  });

  test("a module that fails to load at start: an action error, retried (the file may get fixed)", async () => {
    const p = mod('throw new Error("half-written");\nexport function ban() {}\nexport function unban() {}\n');
    const { action, log } = script(p);
    const runner = new ActionRunner(action, log, fast);
    runner.ban(ev("192.0.2.1"));
    await until(() => log.lines.some((l) => l.includes("retry in")), 2000, "a retry");
    expect(log.lines.join("\n")).toContain(`mine start: ${p}: cannot load: half-written`);
    writeFileSync(
      p,
      "export function ban() { (globalThis as any).__fixed = true; }\nexport function unban() {}\n",
    );
    await runner.idle();
    expect((globalThis as unknown as { __fixed: boolean }).__fixed).toBe(true);
  });

  test("stop aborts a call in flight", async () => {
    const p = mod(`
export function ban(events: any[], ctx: any) {
  return new Promise<void>((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
}
export function unban() {}
`);
    const { action } = script(p, { timeout: "10s" });
    await action.start();
    const pending = action.ban([ev("192.0.2.1")]).catch((e: Error) => e.message);
    await action.stop();
    expect(await pending).toBe("mine ban: AbortError: the action is stopping");
  });
});
