/** Client subcommands of the running daemon: status, ping, ban, unban, reload, stop. */
import { Command, Option } from "@commander-js/extra-typings";
import { readSocketPath } from "../config/load.ts";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { fleetLines } from "../fleet/status.ts";
import { DaemonUnreachable, request } from "../server/client.ts";
import type { BanResult, ReloadResult, Request, StatusResult, UnbanResult } from "../server/protocol.ts";
import { Fail2tsError } from "../util/errors.ts";
import { out, print, table, warn } from "./style.ts";

/**
 * Banning and unbanning without a daemon (issue 7): apply the jail's actions directly and record
 * the bans in the database so that a later `run` knows them. Registered by whoever implements it
 * (`setOfflineBans`); until then `ban`/`unban` need a running daemon.
 */
export interface OfflineBans {
  ban(configPath: string, jail: string, ips: string[]): Promise<BanResult>;
  unban(configPath: string, ips: string[] | "all", jail?: string): Promise<UnbanResult>;
}

let offline: OfflineBans | null = null;

export function setOfflineBans(impl: OfflineBans | null): void {
  offline = impl;
}

interface Where {
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

async function call(o: Where, req: Request, timeoutMs?: number): Promise<unknown> {
  return request(socketOf(o), req, timeoutMs);
}

function noDaemon(e: unknown): boolean {
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

export function banCommand() {
  return new Command("ban")
    .description("ban addresses in a jail by hand (through the running daemon)")
    .argument("<jail>", "jail")
    .argument("<ips...>", "addresses")
    .option("-q, --quiet", "print nothing")
    .option(CONFIG, CONFIG_HELP, DEFAULT_CONFIG_PATH)
    .option(SOCKET, SOCKET_HELP)
    .action(async (jail, ips, o) => {
      let r: BanResult;
      try {
        r = (await call(o, { cmd: "ban", jail, ips }, 120000)) as BanResult;
      } catch (e) {
        if (!noDaemon(e)) throw e;
        if (!offline)
          throw new Fail2tsError(
            "daemon",
            `${(e as Error).message}; start it with: fail2ts run`,
            (e as DaemonUnreachable).where,
          );
        r = await offline.ban(o.config, jail, ips);
      }
      if (o.quiet) return;
      if (r.banned.length > 0)
        print(
          `banned in ${jail}: ${r.banned.length <= 20 ? r.banned.join(" ") : `${r.banned.length} addresses`}`,
        );
      if (r.already.length > 0)
        print(
          `already banned: ${r.already.length <= 20 ? r.already.join(" ") : `${r.already.length} addresses`}`,
        );
    });
}

export function unbanCommand() {
  return new Command("unban")
    .description("lift bans by hand (in every jail, or one with --jail)")
    .argument("[ips...]", "addresses")
    .option("--all", "lift every ban")
    .option("-j, --jail <jail>", "only in this jail")
    .option("-q, --quiet", "print nothing")
    .option(CONFIG, CONFIG_HELP, DEFAULT_CONFIG_PATH)
    .option(SOCKET, SOCKET_HELP)
    .action(async (ips, o) => {
      if (!o.all && ips.length === 0) throw new Fail2tsError("usage", "give addresses to unban, or --all");
      if (o.all && ips.length > 0) throw new Fail2tsError("usage", "--all takes no addresses");
      const req: Request = o.all ? { cmd: "unban", all: true } : { cmd: "unban", ips };
      if (o.jail) (req as { jail?: string }).jail = o.jail;
      let r: UnbanResult;
      try {
        r = (await call(o, req, 120000)) as UnbanResult;
      } catch (e) {
        if (!noDaemon(e)) throw e;
        if (!offline)
          throw new Fail2tsError(
            "daemon",
            `${(e as Error).message}; start it with: fail2ts run`,
            (e as DaemonUnreachable).where,
          );
        r = await offline.unban(o.config, o.all ? "all" : ips, o.jail);
      }
      if (o.quiet) return;
      print(
        `unbanned: ${r.unbanned.length <= 20 ? r.unbanned.join(" ") || "(none)" : `${r.unbanned.length} addresses`}`,
      );
      if (r.missing.length > 0) warn(`not banned: ${r.missing.join(" ")}`);
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
