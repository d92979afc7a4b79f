/**
 * Runs the fail2ts CLI as a real process: the built binary when FAIL2TS_BIN is set (npm test
 * sets it to dist/fail2ts), else `bun main.ts` from the source tree.
 */
const root = new URL("../..", import.meta.url).pathname;

export function cliArgv(): string[] {
  const bin = process.env.FAIL2TS_BIN;
  return bin ? [bin] : [process.execPath, `${root}main.ts`];
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(
  args: string[],
  opts: { stdin?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<CliResult> {
  const proc = Bun.spawn([...cliArgv(), ...args], {
    cwd: opts.cwd ?? root,
    env: { ...process.env, NO_COLOR: "1", FAIL2TS_DEBUG: "", ...opts.env },
    stdin: opts.stdin !== undefined ? new Blob([opts.stdin]) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

export const ROOT = root;
