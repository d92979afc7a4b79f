/** The CLI: one program, one top-level catch, exit codes (0 ok, 1 runtime failure, 2 usage/config). */
import { Command, CommanderError } from "@commander-js/extra-typings";
import pkg from "../../package.json" with { type: "json" };
import { Fail2tsError } from "../util/errors.ts";
import { actionTestCommand } from "./action-test.ts";
import { checkCommand } from "./check.ts";
import {
  banCommand,
  pingCommand,
  reloadCommand,
  statusCommand,
  stopCommand,
  unbanCommand,
} from "./client.ts";
import { convertCommand } from "./convert.ts";
import { filtersCommand } from "./filters.ts";
import { flushCommand } from "./flush.ts";
import { regexTestCommand } from "./regex-test.ts";
import { runCommand } from "./run.ts";
import { scanCommand } from "./scan.ts";
import { err } from "./style.ts";
import { typesCommand } from "./types.ts";

export const VERSION: string = pkg.version;

export function buildProgram(): Command {
  const program = new Command()
    .name("fail2ts")
    .description("Fail2ban rebuilt as one compiled TypeScript executable: watch logs, ban attackers.")
    .version(`fail2ts ${VERSION}`, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ outputError: (str, write) => write(err.red(str)) })
    .exitOverride()
    .addHelpText(
      "after",
      `
Examples:
  fail2ts regex-test /var/log/auth.log sshd        test a filter on a log
  fail2ts regex-test /var/log/auth.log 'sshd[mode=aggressive]' --show-missed
  fail2ts filters                                  list the built-in filters

Environment:
  NO_COLOR=1         no colour
  FAIL2TS_DEBUG=1    show stack traces of errors`,
    );
  program.addCommand(regexTestCommand());
  program.addCommand(scanCommand());
  program.addCommand(filtersCommand());
  program.addCommand(runCommand());
  program.addCommand(checkCommand());
  program.addCommand(convertCommand());
  program.addCommand(statusCommand());
  program.addCommand(pingCommand());
  program.addCommand(banCommand());
  program.addCommand(unbanCommand());
  program.addCommand(flushCommand());
  program.addCommand(reloadCommand());
  program.addCommand(stopCommand());
  program.addCommand(actionTestCommand());
  program.addCommand(typesCommand());
  for (const c of program.commands) c.exitOverride().showHelpAfterError("(run with --help for usage)");
  return program;
}

/** Runs the CLI and returns the exit code. */
export async function runMain(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    return reportError(e);
  }
}

export function reportError(e: unknown): number {
  // A closed pipe (`fail2ts scan … | head`) is not an error.
  if ((e as NodeJS.ErrnoException | null)?.code === "EPIPE") return 0;
  if (e instanceof CommanderError) {
    if (
      e.code === "commander.helpDisplayed" ||
      e.code === "commander.version" ||
      e.code === "commander.help"
    ) {
      return 0;
    }
    return 2;
  }
  if (process.env.FAIL2TS_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  if (e instanceof Fail2tsError) {
    process.stderr.write(`${err.red("fail2ts:")} ${e.describe()}\n`);
    return e.exitCode;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`${err.red("fail2ts: internal error:")} ${msg}\n`);
  if (!process.env.FAIL2TS_DEBUG) process.stderr.write("(set FAIL2TS_DEBUG=1 for the stack trace)\n");
  return 1;
}
