/**
 * `fail2ts action-test ACTION --ban IP`: runs one action by hand — start, ban, unban, stop — and
 * prints what happened with timings and the action's own log: the regex-test of actions. Works
 * for every kind; the firewall kinds really touch the firewall, so they want --yes (or --dry-run).
 */
import { existsSync } from "node:fs";
import { basename, extname, resolve } from "node:path";
import { Command, Option } from "@commander-js/extra-typings";
import { parseTarget, targetString } from "../action/addr.ts";
import { type ActionSpec, BUILTIN_ACTIONS, builtinSpec, createAction } from "../action/registry.ts";
import { loadScriptModule, ScriptAction } from "../action/script.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "../action/types.ts";
import { loadConfig } from "../config/load.ts";
import { type Config, DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { actionSpec, jailInfo } from "../daemon/actions.ts";
import { parseDuration } from "../util/duration.ts";
import { errorMessage, Fail2tsError } from "../util/errors.ts";
import { collectList } from "./options.ts";
import { out, print, warn } from "./style.ts";

/** Kinds that change the machine's packet filter (or hosts.deny): --yes or --dry-run. */
const SYSTEM_KINDS = new Set(["nftables", "iptables", "ipset", "pf", "hostsdeny"]);
const DEFAULT_JAIL = "action-test";

type Level = "debug" | "info" | "warn" | "error";

export interface StepReport {
  step: "load" | "start" | "ban" | "unban" | "stop";
  ok: boolean;
  ms: number;
  /** Addresses of the batch (ban, unban). */
  events?: string[];
  /** Functions the module exports (load). */
  exports?: string[];
  error?: string;
  log: { level: Level; message: string }[];
}

export interface ActionTestReport {
  action: string;
  type: string;
  path?: string;
  jail: string;
  dryRun: boolean;
  ok: boolean;
  ms: number;
  steps: StepReport[];
}

/** `key=value`: the value as JSON when it parses (numbers, booleans, arrays), else the text. */
function collectOpt(value: string, prev: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new Fail2tsError("usage", `--opt: expected KEY=VALUE, got ${JSON.stringify(value)}`);
  const raw = value.slice(eq + 1);
  let v: unknown = raw;
  try {
    v = JSON.parse(raw);
  } catch {}
  return { ...prev, [value.slice(0, eq).trim()]: v };
}

function looksLikePath(s: string): boolean {
  return s.includes("/") || [".ts", ".mts", ".js", ".mjs", ".cjs"].includes(extname(s));
}

function addresses(list: string[], what: string): string[] {
  const outList: string[] = [];
  for (const item of list
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter(Boolean)) {
    const t = parseTarget(item);
    if (!t) throw new Fail2tsError("usage", `${what}: ${JSON.stringify(item)} is not an IP address or CIDR`);
    outList.push(targetString(t));
  }
  return outList;
}

function sampleLines(ip: string, n: number, time: number): string[] {
  const d = new Date(time * 1000);
  const mon = "JanFebMarAprMayJunJulAugSepOctNovDec".slice(d.getMonth() * 3, d.getMonth() * 3 + 3);
  const p = (x: number) => String(x).padStart(2, "0");
  const stamp = `${mon} ${String(d.getDate()).padStart(2, " ")} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return Array.from(
    { length: Math.min(n, 3) },
    (_, i) => `${stamp} host sshd[${4000 + i}]: Failed password for root from ${ip} port ${50000 + i} ssh2`,
  );
}

interface Resolved {
  spec: ActionSpec;
  jail: JailInfo;
  /** A jail of the configuration (its firewall structures are the daemon's). */
  liveJail: boolean;
}

function resolveAction(
  name: string,
  configPath: string | undefined,
  jailName: string | undefined,
  opts: Record<string, unknown>,
): Resolved {
  let config: Config | undefined;
  const explicit = configPath !== undefined;
  const path = configPath ?? DEFAULT_CONFIG_PATH;
  const isPath = looksLikePath(name);
  if (explicit || (!isPath && existsSync(path))) config = loadConfig(path).config;
  let spec: ActionSpec;
  if (isPath) {
    const base =
      basename(name, extname(name))
        .replace(/[^\w.-]/g, "_")
        .slice(0, 64) || "script";
    spec = { name: base, type: "script", options: { path: resolve(name), options: opts } };
  } else if (config && Object.hasOwn(config.actions, name)) {
    spec = actionSpec(name, config.actions);
  } else {
    const b = builtinSpec(name);
    if (!b) {
      const where = config ? `no [actions.${name}] in ${config.files[0]}, ` : "";
      throw new Fail2tsError(
        "usage",
        `unknown action ${JSON.stringify(name)}: ${where}not a built-in (${BUILTIN_ACTIONS.join(", ")}) and not a module path (./x.ts)`,
      );
    }
    spec = b;
  }
  if (!isPath && Object.keys(opts).length > 0) {
    // module options for a script action, the action's own keys otherwise
    if (spec.type === "script") {
      const base = (spec.options.options ?? {}) as Record<string, unknown>;
      spec = { ...spec, options: { ...spec.options, options: { ...base, ...opts } } };
    } else spec = { ...spec, options: { ...spec.options, ...opts } };
  }
  const j = jailName !== undefined ? config?.jails.find((x) => x.name === jailName) : undefined;
  return { spec, jail: j ? jailInfo(j) : { name: jailName ?? DEFAULT_JAIL }, liveJail: j?.enabled === true };
}

export async function actionTest(
  name: string,
  o: {
    config?: string;
    jail?: string;
    ban: string[];
    unban?: string[] | boolean;
    bantime: string;
    failures: number;
    match: string[];
    opt: Record<string, unknown>;
    stop: boolean;
    dryRun?: boolean;
    yes?: boolean;
  },
  onLog: (level: Level, message: string) => void = () => {},
  onStep: (s: StepReport) => void = () => {},
): Promise<ActionTestReport> {
  const bans = addresses(o.ban, "--ban");
  const explicitUnbans = Array.isArray(o.unban) ? addresses(o.unban, "--unban") : [];
  const unbans = o.unban === true ? bans : explicitUnbans;
  if (bans.length === 0 && unbans.length === 0) {
    throw new Fail2tsError("usage", "give --ban IP (and --unban to lift it again), or --unban IP");
  }
  const bantime = parseDuration(o.bantime);
  if (bantime === null)
    throw new Fail2tsError("usage", `--bantime: ${JSON.stringify(o.bantime)} is not a duration`);
  const { spec, jail, liveJail } = resolveAction(name, o.config, o.jail, o.opt);
  const dryRun = o.dryRun === true;
  if (SYSTEM_KINDS.has(spec.type) && !dryRun) {
    const what = spec.type === "hostsdeny" ? "/etc/hosts.deny" : `the ${spec.type} firewall`;
    if (!o.yes) {
      throw new Fail2tsError(
        "usage",
        `action ${spec.name} (${spec.type}) changes ${what} for real: add --yes to go ahead, or --dry-run to see what it would run`,
      );
    }
    warn(
      `action ${spec.name} (${spec.type}) changes ${what} for real (jail ${jail.name}${o.stop ? "; stop tears down what start made" : ""})`,
    );
    if (liveJail && o.stop)
      warn(`jail ${jail.name} is a configured jail: stop removes its firewall bans while the daemon may run`);
  }

  let current: StepReport | undefined;
  const record = (level: Level) => (message: string) => {
    current?.log.push({ level, message });
    onLog(level, message);
  };
  const log: ActionLogger = {
    debug: record("debug"),
    info: record("info"),
    warn: record("warn"),
    error: record("error"),
  };
  const action: Action = createAction(spec, jail, { log, dryRun });
  const now = Math.floor(Date.now() / 1000);
  const failures = Math.max(1, o.failures);
  const event = (ip: string): BanEvent => ({
    ip,
    jail: jail.name,
    time: now,
    bantime,
    failures,
    count: 0,
    matches: o.match.length > 0 ? o.match : sampleLines(ip, failures, now),
  });

  const steps: StepReport[] = [];
  const t0 = performance.now();
  const step = async (
    s: StepReport["step"],
    fn: () => Promise<unknown>,
    events?: string[],
  ): Promise<boolean> => {
    const r: StepReport = { step: s, ok: true, ms: 0, log: [] };
    if (events) r.events = events;
    current = r;
    const t = performance.now();
    try {
      const exp = await fn();
      if (Array.isArray(exp)) r.exports = exp as string[];
    } catch (err) {
      r.ok = false;
      r.error = errorMessage(err);
    }
    r.ms = Math.round((performance.now() - t) * 10) / 10;
    current = undefined;
    steps.push(r);
    onStep(r);
    return r.ok;
  };

  let path: string | undefined;
  let ready = true;
  if (action instanceof ScriptAction) {
    path = action.path;
    ready = await step("load", async () =>
      Object.keys((await loadScriptModule(action.path, action.timeoutMs)).fns),
    );
  }
  if (ready) ready = await step("start", () => action.start());
  if (ready) {
    if (bans.length > 0) await step("ban", () => action.ban(bans.map(event)), bans);
    if (unbans.length > 0) await step("unban", () => action.unban(unbans.map(event)), unbans);
  }
  if (o.stop && steps.some((s) => s.step === "start")) await step("stop", () => action.stop());
  const report: ActionTestReport = {
    action: spec.name,
    type: spec.type,
    ...(path ? { path } : {}),
    jail: jail.name,
    dryRun,
    ok: steps.every((s) => s.ok),
    ms: Math.round((performance.now() - t0) * 10) / 10,
    steps,
  };
  return report;
}

const LEVEL_STYLE: Record<Level, (s: string) => string> = {
  debug: out.dim,
  info: out.cyan,
  warn: out.yellow,
  error: out.red,
};

function ms(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(n < 10 ? 1 : 0)} ms`;
}

export function actionTestCommand() {
  return new Command("action-test")
    .description("run one action by hand (start, ban, unban, stop) and show what it did, with timings")
    .argument(
      "<action>",
      "an [actions.NAME] of the config, a built-in (nftables, mail...), or a module path (./x.ts)",
    )
    .option("--ban <ip>", "ban this address (repeatable, or a,b,c): one batch", collectList)
    .option(
      "--unban [ip]",
      "then unban: the banned addresses, or this one (repeatable)",
      (v: string, prev: string[] | boolean | undefined) => [...(Array.isArray(prev) ? prev : []), v],
    )
    .option("-c, --config <path>", `configuration file (default ${DEFAULT_CONFIG_PATH} when it exists)`)
    .option(
      "--jail <name>",
      `jail of the events (its port/protocol when configured; default ${DEFAULT_JAIL})`,
    )
    .option(
      "--opt <key=value>",
      "set an option: a module option for a script action, else the action's own key (repeatable; JSON values)",
      collectOpt,
    )
    .option("--bantime <duration>", "bantime of the events", "10m")
    .option("--failures <n>", "failures of the events", (v) => Number.parseInt(v, 10), 3)
    .option(
      "--match <line>",
      "a matched log line of the events (repeatable; default: sample sshd lines)",
      collectList,
    )
    .option("--no-stop", "leave what start() made in place (no stop)")
    .option("--dry-run", "run nothing: log the commands, requests and calls instead")
    .option("--yes", "allow firewall kinds (nftables, iptables, ipset, pf, hostsdeny) to touch the system")
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["text", "json"] as const)
        .default("text" as const),
    )
    .addHelpText(
      "after",
      `
Exit status: 0 every step worked, 1 a step failed, 2 usage or configuration error.

Examples:
  fail2ts action-test notify --ban 203.0.113.7                 # [actions.notify] of the config
  fail2ts action-test notify --ban 203.0.113.7 --unban -o json
  fail2ts action-test ./chat.ts --ban 203.0.113.7 --opt url=http://127.0.0.1:8080/hook
  fail2ts action-test nftables --ban 203.0.113.7 --unban --yes  # really adds and removes it
  fail2ts action-test nftables --ban 203.0.113.7 --dry-run      # prints the nft script`,
    )
    .action(async (name, o) => {
      const json = o.output === "json";
      const unban = o.unban;
      const report = await actionTest(
        name,
        {
          ...o,
          ban: o.ban ?? [],
          match: o.match ?? [],
          opt: o.opt ?? {},
          unban,
          failures: Number.isFinite(o.failures) ? o.failures : 3,
          stop: o.stop !== false,
        },
        (level, message) => {
          if (!json) print(`  ${LEVEL_STYLE[level](level.toUpperCase().padEnd(5))} ${message}`);
        },
        (s) => {
          if (json) return;
          const status = s.ok ? out.green("ok    ") : out.red("FAILED");
          const extra =
            s.error ?? (s.exports ? `exports ${s.exports.join(", ")}` : (s.events?.join(" ") ?? ""));
          print(
            `${out.bold(s.step.padEnd(6))} ${status} ${ms(s.ms).padStart(9)}  ${s.ok ? extra : out.red(extra)}`,
          );
        },
      );
      if (json) print(JSON.stringify(report, null, 2));
      else {
        const what = `${report.action} (${report.type}${report.path ? ` ${report.path}` : ""}), jail ${report.jail}`;
        const failed = report.steps.filter((s) => !s.ok).map((s) => s.step);
        print(
          report.ok
            ? out.green(
                `OK: ${what}: ${report.steps.length} steps in ${ms(report.ms)}${report.dryRun ? " (dry run)" : ""}`,
              )
            : out.red(`FAILED: ${what}: ${failed.join(", ")} failed`),
        );
      }
      if (!report.ok) process.exitCode = 1;
      // a module may leave a socket or timer behind (an abandoned call): do not wait for it
      setTimeout(() => process.exit(), 1000).unref();
    });
}
