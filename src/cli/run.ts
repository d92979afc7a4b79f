/** `fail2ts run`: the daemon, in the foreground (systemd runs it as is; it never forks). */

import { unlinkSync, writeFileSync } from "node:fs";
import { Command } from "@commander-js/extra-typings";
import { preloadScriptActions } from "../action/script.ts";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { Daemon } from "../daemon/daemon.ts";
import { loadFail2banConfig } from "../fail2ban/config.ts";
import { errorMessage } from "../util/errors.ts";

export function runCommand() {
  return new Command("run")
    .description("run the daemon: follow the jails' logs, ban, serve the control socket")
    .option(
      "-c, --config <path>",
      "configuration file (fail2ts.d/ beside it is read too)",
      DEFAULT_CONFIG_PATH,
    )
    .option("--fail2ban <dir>", "run an existing Fail2ban configuration as it is (e.g. /etc/fail2ban)")
    .option("-f, --foreground", "stay in the foreground (always the case; accepted for Fail2ban habits)")
    .addHelpText(
      "after",
      `
Signals: SIGHUP reloads the configuration, SIGTERM/SIGINT stop (bans stay in the firewall and the
database, and are restored at the next start unless [server] unban_on_stop = true).

Examples:
  fail2ts run
  fail2ts run -c examples/demo/fail2ts.toml`,
    )
    .action(async (o) => {
      const path = o.fail2ban ?? o.config;
      const loaded = o.fail2ban ? loadFail2banConfig(o.fail2ban) : loadConfig(path);
      await preloadScriptActions(loaded.config.actions);
      const daemon = await Daemon.start(loaded, { configPath: path });
      // what start-up allocated (filter sources, TOML trees) is garbage now: give it back
      setTimeout(() => Bun.gc(true), 2000).unref();
      const pidfile = loaded.config.server.pidfile;
      if (pidfile) writeFileSync(pidfile, `${process.pid}\n`);
      const stop = () => void daemon.stop();
      process.on("SIGTERM", stop);
      process.on("SIGINT", stop);
      process.on("SIGHUP", () => {
        daemon.reload().catch((e) => daemon.log.error(`reload: ${errorMessage(e)}`));
      });
      await daemon.done;
      if (pidfile) {
        try {
          unlinkSync(pidfile);
        } catch {}
      }
      process.exit(0);
    });
}
