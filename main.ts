#!/usr/bin/env bun
/** fail2ts entry point. */
// first: a scan child serves its tasks from there, without evaluating the CLI's modules
import "./src/scan/entry.ts";
import { runMain } from "./src/cli/main.ts";

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
});

runMain(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`fail2ts: ${e}\n`);
    process.exitCode = 1;
  },
);
