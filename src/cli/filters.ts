/** `fail2ts filters` and `fail2ts filters show NAME`: the built-in filters. */
import { Command, Option } from "@commander-js/extra-typings";
import { builtinFilterNames, builtinSource, loadFilter } from "../filter/index.ts";
import { Fail2tsError } from "../util/errors.ts";
import { out, print, table } from "./style.ts";

const outputOption = () =>
  new Option("-o, --output <format>", "output format")
    .choices(["text", "json"] as const)
    .default("text" as const);

export function filtersCommand() {
  const cmd = new Command("filters")
    .description("list the built-in filters")
    .addOption(outputOption())
    .addHelpText(
      "after",
      `
Examples:
  fail2ts filters
  fail2ts filters -o json
  fail2ts filters show sshd`,
    )
    .action((o) => {
      const rows = builtinFilterNames().map((name) => {
        const spec = loadFilter(name);
        return { name, description: spec.description, options: spec.declaredOptions };
      });
      if (o.output === "json") {
        print(JSON.stringify(rows, null, 2));
        return;
      }
      print(...table(rows.map((r) => [out.bold(r.name), r.description])));
    });
  cmd.addCommand(
    new Command("show")
      .description("print one built-in filter: its options, modes and file")
      .argument("<name>", "filter name")
      .addOption(outputOption())
      .action((name, o) => {
        const src = builtinSource(name);
        if (!src || name.startsWith("_"))
          throw new Fail2tsError("usage", `no built-in filter named ${JSON.stringify(name)}`);
        const spec = loadFilter(name);
        const modes = spec.definitions
          .map((d) => /^mode_(.+)$/.exec(d)?.[1])
          .filter((m): m is string => m !== undefined);
        if (o.output === "json") {
          print(
            JSON.stringify(
              {
                name,
                description: spec.description,
                options: spec.declaredOptions,
                modes,
                file: src.file,
                source: src.text,
              },
              null,
              2,
            ),
          );
          return;
        }
        print(
          `${out.bold(name)}: ${spec.description}`,
          `options: ${
            Object.entries(spec.declaredOptions)
              .map(([k, v]) => `${k}=${v}`)
              .join(", ") || "(none)"
          }`,
          ...(modes.length ? [`modes:   ${modes.join(", ")}`] : []),
          `file:    ${src.file}`,
          "",
          src.text.trimEnd(),
        );
      }),
  );
  return cmd;
}
