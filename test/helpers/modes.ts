import { loadFilter } from "../../src/filter/index.ts";

/** The modes a built-in filter declares (its `mode_*` definitions), or [null] when it has none. */
export function modesOf(name: string): Array<string | null> {
  const spec = loadFilter(name);
  const modes = spec.definitions.map((d) => /^mode_(.+)$/.exec(d)?.[1]).filter((m): m is string => !!m);
  return "mode" in spec.declaredOptions && modes.length > 0 ? modes : [null];
}
