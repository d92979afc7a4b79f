/** Terminal output: colour only on a TTY and never with NO_COLOR. */
import pc from "picocolors";

function wantColor(stream: NodeJS.WriteStream): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  const force = process.env.FORCE_COLOR;
  if (force !== undefined && force !== "") return force !== "0" && force !== "false";
  return Boolean(stream.isTTY);
}

export const out = pc.createColors(wantColor(process.stdout));
export const err = pc.createColors(wantColor(process.stderr));

/** Writes to stdout; lines are joined with "\n" and one is appended. */
export function print(...lines: string[]): void {
  process.stdout.write(lines.join("\n") + "\n");
}

export function warn(msg: string): void {
  process.stderr.write(`${err.yellow("fail2ts: warning:")} ${msg}\n`);
}

/** Pads a table of cells into aligned columns. */
export function table(rows: string[][], sep = "  "): string[] {
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, visible(c));
    });
  }
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(widths[i]! - visible(c))))
      .join(sep)
      .trimEnd(),
  );
}
