/**
 * Script actions: the admin's own action as a TypeScript/JavaScript module, imported at run time
 * by the compiled binary (Bun's import() of an external .ts file works there).
 *
 *   [actions.cloudflare]
 *   type = "script"
 *   path = "/etc/fail2ts/actions/cloudflare.ts"
 *   timeout = "30s"
 *   options = { zone = "example.com", token_file = "/etc/fail2ts/cf.token" }
 *
 * The contract (types/fail2ts.d.ts, printed by `fail2ts types`): `ban(events, ctx)`,
 * `unban(events, ctx)`, optional `start/flush/stop(ctx)`.
 *
 * Three checks, from cheap to complete:
 * - validateScriptOptions (sync, from validateActionSpec, so at `check` and at start): the keys,
 *   the file (exists, not writable by others, owned by root or us), its syntax and its exports,
 *   read statically with Bun.Transpiler.
 * - preloadScriptActions (async, the daemon and `check` await it after loading the config): the
 *   real import, so a top-level throw or a missing dependency is a config error naming the path.
 * - ScriptAction.start: imports (cached) — a module that still fails is an action failure,
 *   retried with backoff by the runner like any other.
 *
 * Isolation: each call runs under a timeout (its ctx.signal aborts then) and any throw, rejection
 * or timeout becomes an action error (logged with the module's stack) for the runner to retry.
 * Stray errors from a module's own timers and callbacks are logged, not fatal (guardProcess).
 * A module is in-process: a synchronous endless loop cannot be interrupted.
 */
import { readFileSync, type Stats, statSync } from "node:fs";
import { dirname, extname, isAbsolute } from "node:path";
import type * as Api from "../../types/fail2ts.d.ts";
import { errorMessage, Fail2tsError } from "../util/errors.ts";
import { checkSchema, durationMs, type Options, type Schema } from "./options.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "./types.ts";

/** The keys of a script action besides the free-form `options` table. */
export const SCRIPT_SCHEMA: Schema = { path: "string", timeout: "duration" };

export const DEFAULT_SCRIPT_TIMEOUT_MS = 30_000;
const EXTENSIONS = new Set([".ts", ".mts", ".js", ".mjs", ".cjs"]);
const OPS = ["start", "ban", "unban", "flush", "stop"] as const;
type Op = (typeof OPS)[number];
type Fn = (...args: unknown[]) => unknown;

/** A module's functions, whichever form it exports them in. */
export interface LoadedModule {
  path: string;
  /** Content hash: the import is keyed by it, so a changed file is imported afresh. */
  version: string;
  fns: Partial<Record<Op, Fn>>;
}

// ---- static check (sync) ----------------------------------------------------------------------

const inspected = new Map<string, { key: string; problem: string | undefined }>();

/** "line:col" of a Bun BuildMessage/ResolveMessage, when it has one. */
function position(err: unknown): string {
  const p = (err as { position?: { line?: number; column?: number } } | null)?.position;
  return p && typeof p.line === "number"
    ? `:${p.line}${typeof p.column === "number" ? `:${p.column}` : ""}`
    : "";
}

/** Messages of Bun's loader name the file with our cache key (`x.ts?v=…`): drop the key. */
function clean(msg: string): string {
  return msg.replace(/\?v=[0-9a-z]+/g, "");
}

/**
 * What is wrong with a module file, statically (undefined: nothing found). Cached per path while
 * the file's mtime and size stay.
 */
export function inspectModuleFile(path: string): string | undefined {
  if (!isAbsolute(path)) return `${JSON.stringify(path)}: must be an absolute path`;
  if (!EXTENSIONS.has(extname(path))) return `${path}: a module is a .ts, .mts, .js, .mjs or .cjs file`;
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? `${path} does not exist` : `${path}: ${(err as Error).message}`;
  }
  if (!st.isFile()) return `${path} is not a file`;
  const key = `${st.mtimeMs}:${st.size}:${st.mode}:${st.uid}`;
  const hit = inspected.get(path);
  if (hit?.key === key) return hit.problem;
  const problem = inspectUncached(path, st);
  inspected.set(path, { key, problem });
  return problem;
}

function inspectUncached(path: string, st: Stats): string | undefined {
  // the daemon runs this code as root: whoever can write it owns the machine
  const uid = process.getuid?.() ?? 0;
  if (st.mode & 0o002) return `${path} is writable by every user (chmod o-w)`;
  if (st.uid !== 0 && st.uid !== uid)
    return `${path} belongs to uid ${st.uid}, who could then run code as uid ${uid} (chown it)`;
  try {
    const dir = statSync(dirname(path));
    if (dir.mode & 0o002 && !(dir.mode & 0o1000))
      return `${dirname(path)} is writable by every user: anyone could replace ${path}`;
  } catch {}
  let code: string;
  try {
    code = readFileSync(path, "utf8");
  } catch (err) {
    return `${path}: ${(err as Error).message}`;
  }
  const ext = extname(path);
  const loader = ext === ".ts" || ext === ".mts" ? "ts" : "js";
  let exports: string[];
  try {
    exports = new Bun.Transpiler({ loader }).scan(code).exports;
  } catch (err) {
    return `${path}${position(err)}: syntax error: ${errorMessage(err)}`;
  }
  // CommonJS, or `export * from`: only the import can tell
  if (ext === ".cjs" || /\bexport\s*\*/.test(code)) return undefined;
  if (exports.length === 0 && ext === ".js" && /\bmodule\.exports\b|\bexports\.\w/.test(code))
    return undefined;
  if (exports.includes("default") && !exports.includes("ban")) return undefined; // checked at import
  const missing = ["ban", "unban"].filter((n) => !exports.includes(n));
  if (missing.length > 0) {
    return `${path} exports no ${missing.map((n) => `${n}()`).join(" and no ")}: a script action exports ban(events, ctx) and unban(events, ctx)`;
  }
  return undefined;
}

/** Errors as "key: what is wrong" for a `type = "script"` table (validateActionSpec). */
export function validateScriptOptions(o: Record<string, unknown>): string[] {
  const { options, ...rest } = o;
  const errors = checkSchema(SCRIPT_SCHEMA, rest).map((e) =>
    e.replace(
      "(known: path, timeout)",
      "(known: options, path, timeout; module options go in options = { ... })",
    ),
  );
  if (options !== undefined && (typeof options !== "object" || options === null || Array.isArray(options)))
    errors.push(`options: must be a table (options = { key = "value" }), got ${JSON.stringify(options)}`);
  if (rest.path === undefined)
    errors.push('path: required: the module file (path = "/etc/fail2ts/actions/x.ts")');
  else if (typeof rest.path === "string") {
    const problem = inspectModuleFile(rest.path);
    if (problem) errors.push(`path: ${problem}`);
  }
  const t = durationMs(rest.timeout);
  if (t !== undefined && t <= 0) errors.push("timeout: must be more than 0");
  return errors;
}

// ---- import (async) -----------------------------------------------------------------------------

const modules = new Map<string, LoadedModule>();

/** The content hash a module would be imported under ("" when unreadable). */
export function scriptVersion(path: string): string {
  try {
    return Bun.hash(readFileSync(path)).toString(36);
  } catch {
    return "";
  }
}

function shape(path: string, version: string, ns: Record<string, unknown>): LoadedModule {
  let src: Record<string, unknown> = ns;
  const def = ns.default;
  if (typeof ns.ban !== "function" && def && typeof def === "object") src = def as Record<string, unknown>;
  const fns: Partial<Record<Op, Fn>> = {};
  for (const op of OPS) {
    const f = src[op];
    if (f === undefined) continue;
    if (typeof f !== "function") throw new Error(`its export ${op} is a ${typeof f}, not a function`);
    fns[op] = (f as Fn).bind(src);
  }
  const missing = ["ban", "unban"].filter((n) => !fns[n as Op]);
  if (missing.length > 0) {
    throw new Error(
      `it exports no ${missing.map((n) => `${n}()`).join(" and no ")}: a script action exports ban(events, ctx) and unban(events, ctx)`,
    );
  }
  return { path, version, fns };
}

/**
 * Imports a module (once per content: a changed file is a new import) within `timeoutMs`. Throws
 * an Error whose message starts with the path (and line:col for syntax errors).
 */
export async function loadScriptModule(
  path: string,
  timeoutMs = DEFAULT_SCRIPT_TIMEOUT_MS,
): Promise<LoadedModule> {
  const problem = inspectModuleFile(path);
  if (problem) throw new Error(problem);
  const version = scriptVersion(path);
  const hit = modules.get(path);
  if (hit?.version === version) return hit;
  guardProcess();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const ns = (await Promise.race([
      import(`${path}?v=${version}`),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`its top-level code did not finish within ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
      }),
    ])) as Record<string, unknown>;
    const loaded = shape(path, version, ns);
    modules.set(path, loaded);
    return loaded;
  } catch (err) {
    const e = new Error(`${path}${position(err)}: cannot load: ${clean(errorMessage(err))}`, { cause: err });
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** A config-ish table: `[actions.NAME]` as the loader keeps it, or an ActionSpec. */
type SpecLike = { type: string; name?: string; path?: unknown; timeout?: unknown; options?: unknown };

/**
 * Imports the module of every script action in `actions` (the config's `[actions.*]` tables, or
 * ActionSpecs) and throws one config Fail2tsError listing each that cannot be used, with its path.
 * Call it after loadConfig() at `check`, daemon start and reload: what validateActionSpec could
 * only read statically (top-level code, imports) is then a config error too.
 */
export async function preloadScriptActions(actions: Record<string, SpecLike> | SpecLike[]): Promise<void> {
  const list: [string, Record<string, unknown>][] = [];
  const entries = Array.isArray(actions)
    ? actions.map((s) => [s.name ?? "?", s] as const)
    : Object.entries(actions);
  for (const [name, a] of entries) {
    if (a.type !== "script") continue;
    // an ActionSpec keeps the table's keys under .options; the loader's table has them inline
    const table =
      "path" in a ? (a as Record<string, unknown>) : ((a.options ?? {}) as Record<string, unknown>);
    list.push([name, table]);
  }
  const errors = await Promise.all(
    list.map(async ([name, t]) => {
      if (typeof t.path !== "string") return `action ${name}: path: required`;
      try {
        await loadScriptModule(t.path, durationMs(t.timeout) ?? DEFAULT_SCRIPT_TIMEOUT_MS);
        return "";
      } catch (err) {
        return `action ${name}: ${errorMessage(err)}`;
      }
    }),
  );
  const bad = errors.filter(Boolean);
  if (bad.length > 0) throw new Fail2tsError("config", bad.join("\nfail2ts: "));
}

// ---- stray errors ---------------------------------------------------------------------------------

const liveActions = new Set<ScriptAction>();
let guarded = false;

/**
 * A module's own timer or event handler that throws, or a promise it forgets, must not end the
 * daemon: with script actions loaded, uncaught errors are logged (naming the module when its path
 * is in the stack) and the process goes on.
 */
function guardProcess(): void {
  if (guarded) return;
  guarded = true;
  const report = (what: string, err: unknown) => {
    const stack = err instanceof Error ? (err.stack ?? err.message) : String(err);
    const actions = [...liveActions];
    const owner = actions.find((a) => stack.includes(a.path));
    const log = owner?.log ?? actions[0]?.log;
    const who = owner ? `${owner.name}: ${owner.path}` : "(no script action named in the stack)";
    const lines = [`${who}: ${what} outside of a call: ${clean(errorMessage(err))}`, ...frames(err)];
    if (log) for (const l of lines) log.error(l);
    else process.stderr.write(`fail2ts: ${lines.join("\n")}\n`);
  };
  process.on("uncaughtException", (err) => report("uncaught exception", err));
  process.on("unhandledRejection", (err) => report("unhandled rejection", err));
}

/** The stack frames worth showing: the module's, not the binary's internals. */
function frames(err: unknown): string[] {
  const stack = err instanceof Error ? err.stack : undefined;
  if (!stack) return [];
  return stack
    .split("\n")
    .filter((l) => /^\s+at /.test(l) && !l.includes("/$bunfs/") && !l.includes("native"))
    .slice(0, 12)
    .map((l) => `    ${clean(l.trim())}`);
}

// ---- the action ---------------------------------------------------------------------------------

function deepFreeze<T>(v: T): T {
  if (v && typeof v === "object" && !(v instanceof Date)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

function copy(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copy);
  if (v instanceof Date) return new Date(v.getTime());
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copy(x)]));
  return v;
}

function eventCopy(ev: BanEvent): Api.BanEvent {
  const e: Api.BanEvent = {
    ip: ev.ip,
    jail: ev.jail,
    time: ev.time,
    bantime: ev.bantime,
    failures: ev.failures,
    count: ev.count,
    matches: Object.freeze([...ev.matches]),
    ...(ev.restored ? { restored: true } : {}),
  };
  return Object.freeze(e);
}

class CallTimeout extends Error {}

export class ScriptAction implements Action {
  readonly name: string;
  readonly path: string;
  readonly timeoutMs: number;
  /** The module pinned by the first start(): retries re-use it, a new instance re-reads the file. */
  private mod: LoadedModule | undefined;
  private readonly options: Readonly<Record<string, Api.OptionValue>>;
  private readonly state: Record<string, unknown> = {};
  private readonly jailInfo: Api.JailInfo;
  private readonly moduleLog: Api.Logger;
  /** What this instance banned and did not unban (flush without a module flush()). */
  private readonly active = new Map<string, BanEvent>();
  private readonly inflight = new Set<AbortController>();

  constructor(
    spec: { name: string; options: Record<string, unknown> },
    jail: JailInfo,
    opts: Options,
    readonly log: ActionLogger,
    private readonly dryRun = false,
  ) {
    this.name = spec.name;
    const path = opts.str("path");
    if (!path) opts.fail("path", "required");
    this.path = path;
    this.timeoutMs = opts.ms("timeout", DEFAULT_SCRIPT_TIMEOUT_MS);
    this.options = deepFreeze(copy(spec.options.options ?? {}) as Record<string, Api.OptionValue>);
    this.jailInfo = Object.freeze({ ...jail });
    const prefix = `${this.name}: `;
    this.moduleLog = Object.freeze({
      debug: (m: string) => log.debug(prefix + String(m)),
      info: (m: string) => log.info(prefix + String(m)),
      warn: (m: string) => log.warn(prefix + String(m)),
      error: (m: string) => log.error(prefix + String(m)),
    });
  }

  /** The functions the module exports (after start()). */
  get exports(): Op[] {
    return this.mod ? OPS.filter((op) => this.mod!.fns[op]) : [];
  }

  private context(signal: AbortSignal): Api.ActionContext {
    return Object.freeze({
      action: this.name,
      jail: this.jailInfo,
      options: this.options,
      log: this.moduleLog,
      signal,
      timeoutMs: this.timeoutMs,
      state: this.state,
    });
  }

  /** Runs one function of the module under the timeout; failures become action errors. */
  private async call(op: Op, events?: BanEvent[]): Promise<void> {
    if (!this.mod) {
      if (op === "stop" || op === "flush") return;
      throw new Fail2tsError("action", `${this.name} ${op}: the module is not loaded (start() first)`);
    }
    const fn = this.mod.fns[op];
    if (!fn) return;
    if (this.dryRun) {
      const what = events ? ` with ${events.length} events: ${events.map((e) => e.ip).join(" ")}` : "";
      this.log.info(`dry-run: ${this.name}: would call ${op}()${what}`);
      return;
    }
    const ac = new AbortController();
    this.inflight.add(ac);
    const ctx = this.context(ac.signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ac.abort(new DOMException(`${op}() ran longer than ${this.timeoutMs} ms`, "TimeoutError"));
        reject(new CallTimeout());
      }, this.timeoutMs);
    });
    try {
      const run = async () => (events ? fn(events.map(eventCopy), ctx) : fn(ctx));
      await Promise.race([run(), timeout]);
    } catch (err) {
      if (err instanceof CallTimeout) {
        const msg = `${this.name} ${op}: timed out after ${this.timeoutMs / 1000} s (${this.path}; the call is abandoned and ctx.signal aborted)`;
        throw new Fail2tsError("action", msg);
      }
      const lines = frames(err);
      this.log.error(`${this.name} ${op}: ${this.path} threw: ${clean(describe(err))}`);
      for (const l of lines) this.log.error(l);
      throw new Fail2tsError("action", `${this.name} ${op}: ${clean(describe(err))}`, undefined, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ac);
    }
  }

  async start(): Promise<void> {
    liveActions.add(this);
    if (!this.mod) {
      try {
        this.mod = await loadScriptModule(this.path, this.timeoutMs);
      } catch (err) {
        const lines = frames((err as Error).cause);
        for (const l of lines) this.log.error(l);
        throw new Fail2tsError("action", `${this.name} start: ${errorMessage(err)}`, undefined, {
          cause: err,
        });
      }
    }
    await this.call("start");
  }

  async ban(batch: BanEvent[]): Promise<void> {
    if (batch.length === 0) return;
    await this.call("ban", batch);
    for (const ev of batch) this.active.set(ev.ip, ev);
  }

  async unban(batch: BanEvent[]): Promise<void> {
    if (batch.length === 0) return;
    await this.call("unban", batch);
    for (const ev of batch) this.active.delete(ev.ip);
  }

  async flush(): Promise<void> {
    if (this.mod?.fns.flush) await this.call("flush");
    else if (this.active.size > 0) await this.call("unban", [...this.active.values()]);
    this.active.clear();
  }

  async stop(): Promise<void> {
    for (const ac of this.inflight) ac.abort(new DOMException("the action is stopping", "AbortError"));
    try {
      await this.call("stop");
    } finally {
      liveActions.delete(this);
    }
  }
}

/** `Error: message` for an Error (its name kept: TypeError, …), else the value as text. */
function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name && err.name !== "Error" ? `${err.name}: ` : ""}${err.message}`;
  if (typeof err === "string") return err;
  try {
    return `non-Error thrown: ${JSON.stringify(err)}`;
  } catch {
    return `non-Error thrown: ${String(err)}`;
  }
}
