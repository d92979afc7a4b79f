/** The CLI: one program, one top-level catch, exit codes (0 ok, 1 runtime failure, 2 usage/config). */
import { Command, CommanderError, type CommandUnknownOpts } from "@commander-js/extra-typings";
import pkg from "../../package.json" with { type: "json" };
import { Fail2tsError } from "../util/errors.ts";
import { err } from "./style.ts";

/**
 * The commands, in help order, each loaded when used: a command's module (and what it imports:
 * the daemon, scan, the Fail2ban reader...) is only read by the process that runs it.
 */
const COMMANDS: Array<[string, () => Promise<CommandUnknownOpts>]> = [
  ["regex-test", async () => (await import("./regex-test.ts")).regexTestCommand()],
  ["scan", async () => (await import("./scan.ts")).scanCommand()],
  ["filters", async () => (await import("./filters.ts")).filtersCommand()],
  ["run", async () => (await import("./run.ts")).runCommand()],
  ["check", async () => (await import("./check.ts")).checkCommand()],
  ["convert", async () => (await import("./convert.ts")).convertCommand()],
  ["status", async () => (await import("./client.ts")).statusCommand()],
  ["ping", async () => (await import("./client.ts")).pingCommand()],
  ["ban", async () => (await import("./client.ts")).banCommand()],
  ["unban", async () => (await import("./client.ts")).unbanCommand()],
  ["flush", async () => (await import("./flush.ts")).flushCommand()],
  ["reload", async () => (await import("./client.ts")).reloadCommand()],
  ["stop", async () => (await import("./client.ts")).stopCommand()],
  ["action-test", async () => (await import("./action-test.ts")).actionTestCommand()],
  ["types", async () => (await import("./types.ts")).typesCommand()],
];

export const VERSION: string = pkg.version;

/**
 * The program. With `argv`, when its first argument names a command, only that command is
 * loaded (what it parses and prints is the same: a command's options and help are its own);
 * otherwise (help, version, an unknown command) all of them are.
 */
export async function buildProgram(argv?: string[]): Promise<Command> {
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
  const first = argv?.[2];
  const only = COMMANDS.find(([name]) => name === first);
  const loaded = await Promise.all((only ? [only] : COMMANDS).map(([, load]) => load()));
  for (const c of loaded) program.addCommand(c);
  for (const c of program.commands) c.exitOverride().showHelpAfterError("(run with --help for usage)");
  return program;
}

/** Runs the CLI and returns the exit code. */
export async function runMain(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(argv);
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
