/**
 * `fail2ts flush [JAIL]`: removes everything fail2ts created — the nftables table `inet fail2ts`
 * (or one jail's sets and chain), ipset sets and iptables chains, our hosts.deny lines, PF
 * anchors — by stopping each configured jail's actions, and clears the live bans in the database
 * (the history stays, for bantime increments). Through the daemon when it runs (its jails keep
 * running and start their actions again at the next ban), directly otherwise.
 */
import { Command, Option } from "@commander-js/extra-typings";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import type { FlushResult } from "../server/protocol.ts";
import { call, daemonRunning, direct, noDaemon, printPlan, reportFailures } from "./client.ts";
import type { ActionOutcome } from "./offline.ts";
import { DRY_RUN, QUIET } from "./options.ts";
import { err, print } from "./style.ts";

export function flushCommand() {
  return new Command("flush")
    .description(
      "remove everything fail2ts created (nft table, ipset sets, iptables chains, our hosts.deny lines, pf anchors) and lift every ban, in all jails or one",
    )
    .argument("[jail]", "only this jail (its sets, chains, lines; the table stays for the others)")
    .option(...DRY_RUN)
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["text", "json"] as const)
        .default("text" as const),
    )
    .option(...QUIET)
    .option(
      "-c, --config <path>",
      "configuration file (the socket; with no daemon running, the jails, actions and database)",
      DEFAULT_CONFIG_PATH,
    )
    .option("-s, --socket <path>", "control socket (default: [server] socket of the configuration)")
    .addHelpText(
      "after",
      `
The bans leave the database too (the ban history stays: repeat offenders still get longer bans).
A running daemon keeps following its logs; its actions set things up again at the next ban.

Examples:
  fail2ts flush                  everything, every jail
  fail2ts flush sshd             the sshd jail only
  fail2ts flush --dry-run        print the nft/iptables/ipset commands and file writes, change nothing`,
    )
    .action(async (jail, o) => {
      let r: FlushResult;
      let via: "daemon" | "direct" | "dry-run";
      let extra: Record<string, unknown> = {};
      let actions: ActionOutcome[] = [];
      if (o.dryRun) {
        const d = await direct().flush(o.config, jail, { dryRun: true });
        via = "dry-run";
        r = d;
        const daemonUp = await daemonRunning(o);
        extra = { database: d.database, plan: d.plan, daemon_running: daemonUp };
        if (o.output === "text" && !o.quiet) printPlan(d.plan, daemonUp);
      } else {
        try {
          r = (await call(o, jail ? { cmd: "flush", jail } : { cmd: "flush" }, 600_000)) as FlushResult;
          via = "daemon";
        } catch (e) {
          if (!noDaemon(e)) throw e;
          const d = await direct(e).flush(o.config, jail, {});
          via = "direct";
          r = d;
          actions = d.actions;
          extra = { database: d.database, actions: d.actions };
        }
      }
      if (o.output === "json") {
        print(JSON.stringify({ via, ...r, ...extra }));
      } else if (!o.quiet) {
        const would = via === "dry-run" ? "would flush" : "flushed";
        const what = r.jails.length > 0 ? r.jails.join(" ") : "no enabled jail";
        const tables = r.tables.length > 0 ? `; table ${r.tables.join(", ")} removed` : "";
        print(`${would} ${what}: ${r.unbanned} bans lifted${tables}`);
      }
      if (via === "direct") {
        reportFailures(actions, "some of what fail2ts created may remain: fix the cause and flush again");
        // a table that could not go (the actions' own failures are reported above)
        for (const e of r.errors.filter((x) => !x.startsWith("jail="))) {
          process.stderr.write(`${err.red("fail2ts:")} ${e}\n`);
          process.exitCode = 1;
        }
      } else if (r.errors.length > 0) {
        for (const e of r.errors) process.stderr.write(`${err.red("fail2ts:")} ${e}\n`);
        process.exitCode = 1;
      }
    });
}
