/**
 * Client subcommands of the running daemon: status, ping, ban, unban, reload, stop. `ban`,
 * `unban` (and `flush`, flush.ts) work without a daemon too: they apply the jails' actions
 * themselves and record the bans in the database (offline.ts).
 */
import { readFileSync } from "node:fs";
import { Command, Option } from "@commander-js/extra-typings";
import { readSocketPath } from "../config/load.ts";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { fleetLines } from "../fleet/status.ts";
import { DaemonUnreachable, request } from "../server/client.ts";
import type { BanResult, ReloadResult, Request, StatusResult, UnbanResult } from "../server/protocol.ts";
import { Fail2tsError } from "../util/errors.ts";
import {
  type ActionOutcome,
  type DirectBanResult,
  type DirectOptions,
  type DirectUnbanResult,
  type OfflineBans,
  offlineBans,
  parseAddresses,
  splitAddressList,
} from "./offline.ts";
import { DRY_RUN, QUIET } from "./options.ts";
import { err, out, print, table, warn } from "./style.ts";

export type { OfflineBans } from "./offline.ts";

/**
 * What `ban`/`unban`/`flush` do when no daemon answers (issue 7): apply the jail's actions
 * directly and record the bans in the database so that a later `run` knows them. `null` makes
 * them need a running daemon (tests swap implementations here).
 */
let offline: OfflineBans | null = offlineBans;

export function setOfflineBans(impl: OfflineBans | null): void {
  offline = impl;
}

/** The direct implementation; without one, the "start the daemon" error (`e`: why it is needed). */
export function direct(e?: DaemonUnreachable): OfflineBans {
  if (offline) return offline;
  if (e) throw new Fail2tsError("daemon", `${e.message}; start it with: fail2ts run`, e.where);
  throw new Fail2tsError("usage", "--dry-run is not available in this build");
}

export interface Where {
  config: string;
  socket?: string | undefined;
}

function socketOf(o: Where): string {
  return o.socket ?? readSocketPath(o.config);
}

const CONFIG = "-c, --config <path>";
const CONFIG_HELP = "configuration file (to find the socket)";
const SOCKET = "-s, --socket <path>";
const SOCKET_HELP = "control socket (default: [server] socket of the configuration)";

export async function call(o: Where, req: Request, timeoutMs?: number): Promise<unknown> {
  return request(socketOf(o), req, timeoutMs);
}

export function noDaemon(e: unknown): e is DaemonUnreachable {
  return e instanceof DaemonUnreachable && (e.reason === "missing" || e.reason === "refused");
}

function printStatus(r: StatusResult, showAll: boolean): void {
  if (r.jails.length === 0) {
    print("no active jails");
    return;
  }
  const rows = [["JAIL", "FAILED NOW", "FAILED TOTAL", "BANNED NOW", "BANNED TOTAL"].map((h) => out.bold(h))];
  for (const j of r.jails) {
    rows.push([
      j.name,
      String(j.failures_now),
      String(j.failures_total),
      String(j.banned_now),
      String(j.bans_total),
    ]);
  }
  print(...table(rows));
  for (const j of r.jails) {
    if (j.banned.length === 0) continue;
    const max = showAll ? j.banned.length : 20;
    const more = j.banned.length > max ? ` … and ${j.banned.length - max} more (--all)` : "";
    print("", `${out.bold(j.name)} banned: ${j.banned.slice(0, max).join(" ")}${more}`);
  }
}

export function statusCommand() {
  return new Command("status")
    .description("show the jails of the running daemon: failures and bans")
    .argument("[jail]", "only this jail")
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["text", "json"] as const)
        .default("text" as const),
    )
    .option("-a, --all", "list every banned address (text output)")
    .option(CONFIG, CONFIG_HELP, DEFAULT_CONFIG_PATH)
    .option(SOCKET, SOCKET_HELP)
    .action(async (jail, o) => {
      const r = (await call(o, jail ? { cmd: "status", jail } : { cmd: "status" })) as StatusResult;
      if (o.output === "json") print(JSON.stringify(r));
      else {
        printStatus(r, Boolean(o.all));
        if (r.fleet) print("", ...fleetLines(r.fleet, out.bold)); // fleet (issue 9)
      }
    });
}

export function pingCommand() {
  return new Command("ping")
    .description("check that the daemon answers")
    .option(CONFIG, CONFIG_HELP, DEFAULT_CONFIG_PATH)
    .option(SOCKET, SOCKET_HELP)
    .action(async (o) => {
      print(String(await call(o, { cmd: "ping" }, 5000)));
    });
}

const CONFIG_DIRECT_HELP =
  "configuration file (the socket; with no daemon running, the jails, actions and database)";
const OUTPUT = () =>
  new Option("-o, --output <format>", "output format")
    .choices(["text", "json"] as const)
    .default("text" as const);
/** Large requests (100 k addresses) take a while to apply: the daemon answers once they are queued. */
const LONG_MS = 600_000;

/** Whether a daemon answers on the socket (for the dry-run's note). */
export async function daemonRunning(o: Where): Promise<boolean> {
  try {
    await call(o, { cmd: "ping" }, 2000);
    return true;
  } catch {
    return false;
  }
}

/** Addresses from the arguments, `-` (stdin) and --from-file, validated and de-duplicated. */
export async function gatherAddresses(args: string[], fromFile: string | undefined): Promise<string[]> {
  const raw: string[] = [];
  let stdin: string | null = null;
  const readStdin = async () => {
    if (stdin === null) {
      stdin = await Bun.stdin.text();
      return stdin;
    }
    return ""; // read once
  };
  for (const a of args) {
    if (a === "-") raw.push(...splitAddressList(await readStdin()));
    else raw.push(a);
  }
  if (fromFile !== undefined) {
    let text: string;
    if (fromFile === "-") text = await readStdin();
    else {
      try {
        text = readFileSync(fromFile, "utf8");
      } catch (e) {
        throw new Fail2tsError("io", `cannot read: ${(e as Error).message}`, fromFile);
      }
    }
    raw.push(...splitAddressList(text));
  }
  return parseAddresses(raw);
}

/** "a b c", or "N addresses" past 20. */
function few(list: readonly string[]): string {
  return list.length <= 20 ? list.join(" ") : `${list.length} addresses`;
}

/** Warnings and errors of actions run directly, as they happen. */
const onMessage: DirectOptions["onMessage"] = (level, msg) => {
  if (level === "warn") warn(msg);
  else process.stderr.write(`${err.red("fail2ts: error:")} ${msg}\n`);
};

/** The dry-run plan, indented (multi-line entries — a script on stdin — indented further). */
export function printPlan(plan: readonly string[], daemonUp: boolean | undefined): void {
  print(out.bold("dry run: nothing is changed; this would run:"));
  for (const p of plan) {
    const [first, ...rest] = p.split("\n");
    print(`  ${first}`, ...rest.map((l) => `      ${l}`));
  }
  if (plan.length === 0) print("  (nothing)");
  if (daemonUp)
    print("(a daemon is running: without --dry-run this goes through it and its already started actions)");
}

/** Failed actions of a direct command: on stderr; sets exit code 1. */
export function reportFailures(actions: readonly ActionOutcome[], after: string): void {
  const failed = actions.filter((a) => !a.ok);
  for (const a of failed)
    process.stderr.write(`${err.red("fail2ts:")} jail=${a.jail} action ${a.action} failed: ${a.error}\n`);
  if (failed.length > 0) {
    process.stderr.write(`fail2ts: ${after}\n`);
    process.exitCode = 1;
  }
}

function names(actions: readonly ActionOutcome[]): string {
  return [...new Set(actions.filter((a) => a.ok).map((a) => a.action))].join(", ") || "no action";
}

type Via = "daemon" | "direct" | "dry-run";

interface Dispatched<R> {
  r: R;
  via: Via;
  /** What the direct path adds to `-o json` (database, actions, plan…). */
  extra: Record<string, unknown>;
  actions: ActionOutcome[];
}

/**
 * One path for ban and unban: `--dry-run` asks the direct implementation for its plan; otherwise
 * the running daemon does the work, and with no daemon the direct implementation does.
 * `details` picks the direct result's command-specific fields for `-o json`.
 */
async function dispatch<R, D extends R & { actions: ActionOutcome[]; database: string; plan: string[] }>(
  o: Where & { dryRun?: true | undefined; output: string; quiet?: true | undefined },
  req: Request,
  run: (impl: OfflineBans, dryRun: boolean) => Promise<D>,
  details: (d: D) => Record<string, unknown>,
): Promise<Dispatched<R>> {
  if (o.dryRun) {
    const d = await run(direct(), true);
    const daemonUp = await daemonRunning(o);
    if (o.output === "text" && !o.quiet) printPlan(d.plan, daemonUp);
    return {
      r: d,
      via: "dry-run",
      extra: { ...details(d), database: d.database, plan: d.plan, daemon_running: daemonUp },
      actions: [],
    };
  }
  try {
    return { r: (await call(o, req, LONG_MS)) as R, via: "daemon", extra: {}, actions: [] };
  } catch (e) {
    if (!noDaemon(e)) throw e;
    const d = await run(direct(e), false);
    return {
      r: d,
      via: "direct",
      extra: { ...details(d), database: d.database, actions: d.actions },
      actions: d.actions,
    };
  }
}

export function banCommand() {
  return new Command("ban")
    .description(
      "ban addresses in a jail by hand: through the running daemon, or, with none running, by applying the jail's actions directly and recording the bans for the next `fail2ts run`",
    )
    .argument("<jail>", "jail")
    .argument("[ips...]", "addresses (IPv4, IPv6); - reads them from stdin")
    .option(
      "-f, --from-file <path>",
      "read addresses from a file (- for stdin): one per line, or blanks/commas between; # comments",
    )
    .option("--force", "ban addresses in the jail's ignoreip too")
    .option(...DRY_RUN)
    .addOption(OUTPUT())
    .option(...QUIET)
    .option(CONFIG, CONFIG_DIRECT_HELP, DEFAULT_CONFIG_PATH)
    .option(SOCKET, SOCKET_HELP)
    .addHelpText(
      "after",
      `
With no daemon running, the jail's actions run here (one batch for all the addresses: one nft
transaction) and the bans go to the database with the jail's bantime: \`fail2ts run\` restores them,
or lifts those that expired meanwhile. Addresses in the jail's ignoreip are refused without --force.

Examples:
  fail2ts ban sshd 203.0.113.7 2001:db8::7
  fail2ts ban sshd - < addresses.txt                  100 000 addresses are one command
  fail2ts ban sshd --from-file blocklist.txt --dry-run
  fail2ts ban sshd 203.0.113.7 -o json`,
    )
    .action(async (jail, args, o) => {
      const ips = await gatherAddresses(args, o.fromFile);
      if (ips.length === 0)
        throw new Fail2tsError("usage", "give addresses to ban (arguments, - for stdin, or --from-file)");
      const force = Boolean(o.force);
      const req: Request = { cmd: "ban", jail, ips, ...(force ? { force } : {}) };
      const { r, via, extra, actions } = await dispatch<BanResult, DirectBanResult>(
        o,
        req,
        (impl, dryRun) => impl.ban(o.config, jail, ips, { force, dryRun, onMessage }),
        (d) => ({ bantime: d.bantime }),
      );
      const ignored = r.ignored ?? [];
      if (o.output === "json") {
        print(JSON.stringify({ via, jail, banned: r.banned, already: r.already, ignored, ...extra }));
      } else if (!o.quiet) {
        const would = via === "dry-run" ? "would ban" : "banned";
        if (r.banned.length > 0) print(`${would} in ${jail}: ${few(r.banned)}`);
        if (r.already.length > 0) print(`already banned: ${few(r.already)}`);
        if (via === "direct" && (r.banned.length > 0 || r.already.length > 0))
          print(`(no daemon running: applied with ${names(actions)}; recorded for the next \`fail2ts run\`)`);
      }
      if (ignored.length > 0) {
        process.stderr.write(
          `${err.red("fail2ts:")} not banned, in the ignoreip of jail ${jail}: ${few(ignored)} (--force bans them anyway)\n`,
        );
        process.exitCode = 1;
      }
      reportFailures(actions, "the bans are recorded: the next `fail2ts run` applies them");
    });
}

export function unbanCommand() {
  return new Command("unban")
    .description(
      "lift bans by hand (in every jail, or one with --jail): through the running daemon, or directly with none running",
    )
    .argument("[ips...]", "addresses; - reads them from stdin")
    .option("-f, --from-file <path>", "read addresses from a file (- for stdin)")
    .option("--all", "lift every ban")
    .option("-j, --jail <jail>", "only in this jail")
    .option(...DRY_RUN)
    .addOption(OUTPUT())
    .option(...QUIET)
    .option(CONFIG, CONFIG_DIRECT_HELP, DEFAULT_CONFIG_PATH)
    .option(SOCKET, SOCKET_HELP)
    .addHelpText(
      "after",
      `
Examples:
  fail2ts unban 203.0.113.7
  fail2ts unban --all --jail sshd
  fail2ts unban - < addresses.txt
  fail2ts unban --all --dry-run`,
    )
    .action(async (args, o) => {
      const ips = o.all ? [] : await gatherAddresses(args, o.fromFile);
      if (o.all && (args.length > 0 || o.fromFile !== undefined))
        throw new Fail2tsError("usage", "--all takes no addresses");
      if (!o.all && ips.length === 0)
        throw new Fail2tsError("usage", "give addresses to unban (arguments, - or --from-file), or --all");
      const req: Request = o.all ? { cmd: "unban", all: true } : { cmd: "unban", ips };
      if (o.jail) (req as { jail?: string }).jail = o.jail;
      const what = o.all ? ("all" as const) : ips;
      const { r, via, extra, actions } = await dispatch<UnbanResult, DirectUnbanResult>(
        o,
        req,
        (impl, dryRun) => impl.unban(o.config, what, o.jail, { dryRun, onMessage }),
        (d) => ({ jails: d.jails }),
      );
      if (o.output === "json") {
        print(JSON.stringify({ via, unbanned: r.unbanned, missing: r.missing, ...extra }));
      } else if (!o.quiet) {
        print(`${via === "dry-run" ? "would unban" : "unbanned"}: ${few(r.unbanned) || "(none)"}`);
        if (r.missing.length > 0) warn(`not banned: ${few(r.missing)}`);
      }
      reportFailures(
        actions,
        "the bans are removed from the database; lift them with `fail2ts flush` if needed",
      );
    });
}

export function reloadCommand() {
  return new Command("reload")
    .description(
      "re-read the configuration (all jails, or one); an invalid one is refused and the running one stays",
    )
    .argument("[jail]", "only this jail")
    .option(CONFIG, CONFIG_HELP, DEFAULT_CONFIG_PATH)
    .option(SOCKET, SOCKET_HELP)
    .action(async (jail, o) => {
      const r = (await call(o, jail ? { cmd: "reload", jail } : { cmd: "reload" }, 120000)) as ReloadResult;
      print(r.jails.length > 0 ? `reloaded: ${r.jails.join(" ")}` : "reloaded: no jail changed");
    });
}

export function stopCommand() {
  return new Command("stop")
    .description("stop the daemon (bans stay in the firewall and the database)")
    .option(CONFIG, CONFIG_HELP, DEFAULT_CONFIG_PATH)
    .option(SOCKET, SOCKET_HELP)
    .action(async (o) => {
      await call(o, { cmd: "stop" });
      print("stopping");
    });
}
