/** `fail2ts types`: print the script-action contract (a .d.ts) so an editor completes a module. */
import { Command } from "@commander-js/extra-typings";
// @ts-expect-error TS2846: not imported as types but as text (Bun's text loader embeds the file)
import contract from "../../types/fail2ts.d.ts" with { type: "text" };

/** types/fail2ts.d.ts, the file itself. */
export const SCRIPT_ACTION_TYPES: string = contract as unknown as string;

export function typesCommand() {
  return new Command("types")
    .description("print the TypeScript types of script actions (a .d.ts for your editor)")
    .addHelpText(
      "after",
      `
A script action module imports them with \`import type\` (erased at run time):

  fail2ts types > /etc/fail2ts/actions/fail2ts.d.ts

  // /etc/fail2ts/actions/notify.ts
  import type { ActionContext, BanEvent } from "./fail2ts.d.ts";
  export async function ban(events: readonly BanEvent[], ctx: ActionContext) { ... }
  export async function unban(events: readonly BanEvent[], ctx: ActionContext) { ... }`,
    )
    .action(() => {
      process.stdout.write(SCRIPT_ACTION_TYPES);
    });
}
