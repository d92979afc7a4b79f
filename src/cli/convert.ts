/** `fail2ts convert DIR OUTDIR`: a Fail2ban configuration → fail2ts TOML, and what did not convert. */
import { Command } from "@commander-js/extra-typings";
import { ConfigError, loadConfig, missingLogs } from "../config/load.ts";
import { convertFail2ban } from "../fail2ban/convert.ts";
import { out, print, warn } from "./style.ts";

export function convertCommand() {
  return new Command("convert")
    .description("convert a Fail2ban configuration (e.g. /etc/fail2ban) into fail2ts TOML")
    .argument("<fail2ban-dir>", "the Fail2ban configuration directory")
    .argument("<outdir>", "where to write fail2ts.toml (and filters/*.toml)")
    .option("--force", "overwrite an existing OUTDIR/fail2ts.toml")
    .addHelpText(
      "after",
      `
Only enabled jails are converted. A jail's filter is fail2ts's built-in of the same name when the
Fail2ban filter files are the stock ones; otherwise the Fail2ban filter, resolved for that jail,
is written to OUTDIR/filters/NAME.toml. The result is validated as \`fail2ts check\` would.

Exit status: 0 converted and valid (what was left out is listed), 1 the result does not validate,
2 bad arguments or an unreadable Fail2ban configuration.

Examples:
  fail2ts convert /etc/fail2ban /etc/fail2ts
  fail2ts convert /etc/fail2ban ./converted --force && fail2ts check -c ./converted/fail2ts.toml`,
    )
    .action((dir, outdir, o) => {
      const r = convertFail2ban(dir, outdir, { force: o.force === true });
      const h = out.bold;
      print(
        `${h("Wrote:")} ${r.file}${r.filterFiles.length ? ` and ${r.filterFiles.length} filter files in ${outdir}/filters` : ""}`,
      );
      print("", h(`Jails converted (${r.jails.length}):`));
      for (const j of r.jails) {
        print(
          `  ${out.cyan(j.name)}  filter ${j.filter}${j.builtin ? " (built-in)" : ""}; actions: ${j.actions.join(", ") || "none"}`,
        );
      }
      if (r.disabled.length) print(out.dim(`  (${r.disabled.length} jails not enabled, not converted)`));
      if (r.skipped.length) {
        print("", h(`Not converted (${r.skipped.length}):`));
        for (const s of r.skipped) print(`  ${out.yellow(s)}`);
      }
      if (r.notes.length) {
        print("", h(`Differences from Fail2ban (${r.notes.length}):`));
        for (const n of r.notes) print(`  ${n}`);
      }
      try {
        const loaded = loadConfig(r.file);
        for (const w of [...loaded.warnings, ...missingLogs(loaded.config)]) warn(w);
        print("", out.green(`${r.file}: valid (fail2ts check -c ${r.file})`));
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        print("", out.red(`${r.file}: the conversion does not validate:`));
        for (const i of e.issues) print(`  ${i.where}: ${i.key}: ${i.message}`);
        process.exitCode = 1;
        return;
      }
    });
}
