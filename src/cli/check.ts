/** `fail2ts check`: validate the configuration and print the effective one. */

import { Command, Option } from "@commander-js/extra-typings";
import { stringify } from "smol-toml";
import { preloadScriptActions } from "../action/script.ts";
import { effectiveConfig, loadConfig, missingLogs } from "../config/load.ts";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { loadFail2banConfig } from "../fail2ban/config.ts";
import { formatDuration } from "../util/duration.ts";
import { out, print, warn } from "./style.ts";

const DURATIONS = new Set(["findtime", "bantime", "maxtime", "rndtime", "dbpurgeage"]);

/** Durations back to text ("10m", "permanent") for the TOML view. */
function humanize(v: unknown, key = ""): unknown {
  if (DURATIONS.has(key) && typeof v === "number") return formatDuration(v);
  if (Array.isArray(v)) return v.map((x) => humanize(x));
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, humanize(x, k)]));
  }
  return v;
}

export function checkCommand() {
  return new Command("check")
    .description("validate the configuration (nothing is touched) and print the effective config")
    .option(
      "-c, --config <path>",
      "configuration file (fail2ts.d/ beside it is read too)",
      DEFAULT_CONFIG_PATH,
    )
    .addOption(
      new Option("-o, --output <format>", "output format")
        .choices(["toml", "json"] as const)
        .default("toml" as const),
    )
    .option(
      "--fail2ban <dir>",
      "check an existing Fail2ban configuration (e.g. /etc/fail2ban) as fail2ts reads it",
    )
    .option("-q, --quiet", "print nothing when the configuration is valid")
    .addHelpText(
      "after",
      `
Exit status: 0 valid, 2 invalid (every problem is printed as file:line:col: key: what is wrong).

Examples:
  fail2ts check
  fail2ts check -c ./fail2ts.toml -o json | jq '.jails.sshd'`,
    )
    .action(async (o) => {
      const { config, warnings } = o.fail2ban ? loadFail2banConfig(o.fail2ban) : loadConfig(o.config);
      await preloadScriptActions(config.actions);
      for (const w of [...warnings, ...missingLogs(config)]) warn(w);
      if (o.quiet) return;
      const eff = effectiveConfig(config);
      if (o.output === "json") {
        print(JSON.stringify({ files: config.files, ...eff }, null, 2));
        return;
      }
      const enabled = config.jails.filter((j) => j.enabled).length;
      print(
        out.dim(
          `# fail2ts: configuration OK: ${enabled} jails enabled, ${Object.keys(config.actions).length} actions defined`,
        ),
        out.dim(`# read: ${config.files.join(", ")}`),
        "",
        stringify(humanize(eff) as Record<string, unknown>).trimEnd(),
      );
    });
}
