/**
 * How actions run programs: always an argv, never a shell string (the command action's opt-in
 * `shell = true` builds its own `/bin/sh -c` argv with quoted values). Tests inject an Exec that
 * prefixes `ip netns exec NS` or records the argv.
 */
import { Fail2tsError } from "../util/errors.ts";

export interface ExecOptions {
  /** Written to the program's stdin, then closed. */
  stdin?: string | Uint8Array;
  /** Kill the program after this many ms (default 30 s). */
  timeoutMs?: number;
  /** Added to the inherited environment. */
  env?: Record<string, string>;
}

export interface ExecResult {
  /** Exit status; 127 when the program could not be started, 124 when it timed out. */
  code: number;
  stdout: string;
  stderr: string;
}

export type Exec = (argv: string[], opts?: ExecOptions) => Promise<ExecResult>;

const DEFAULT_TIMEOUT_MS = 30_000;

/** Runs argv with Bun.spawn: no shell, stdin piped when given, stdout/stderr captured. */
export const spawnExec: Exec = async (argv, opts = {}) => {
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(argv, {
      stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (err) {
    return { code: 127, stdout: "", stderr: `${argv[0]}: ${(err as Error).message}` };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout as ReadableStream).text(),
      new Response(proc.stderr as ReadableStream).text(),
      proc.exited,
    ]);
    if (timedOut) return { code: 124, stdout, stderr: `${stderr}(killed after ${opts.timeoutMs}ms)` };
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
};

/** One recorded call of a recording Exec. */
export interface ExecCall {
  argv: string[];
  stdin?: string;
}

/**
 * An Exec that runs nothing: records each argv (and stdin) and answers with `reply` (default:
 * success, empty output). Used by the pf tests and by `--dry-run`.
 */
export function recordingExec(
  reply: (argv: string[]) => Partial<ExecResult> = () => ({}),
): Exec & { calls: ExecCall[] } {
  const calls: ExecCall[] = [];
  const exec = async (argv: string[], opts: ExecOptions = {}) => {
    const call: ExecCall = { argv: [...argv] };
    if (opts.stdin !== undefined) {
      call.stdin = typeof opts.stdin === "string" ? opts.stdin : new TextDecoder().decode(opts.stdin);
    }
    calls.push(call);
    return { code: 0, stdout: "", stderr: "", ...reply(argv) };
  };
  return Object.assign(exec, { calls });
}

/** The first lines of stderr (or stdout), trimmed, for an error message. */
export function brief(text: string, max = 600): string {
  const t = text.trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** `<action> <op>: <argv0> exited N: <stderr>` */
export function execError(action: string, op: string, argv: string[], res: ExecResult): Fail2tsError {
  const out = brief(res.stderr) || brief(res.stdout);
  return new Fail2tsError("action", `${action} ${op}: ${argv[0]} exited ${res.code}${out ? `: ${out}` : ""}`);
}

/** Runs argv and throws the action error on a non-zero exit. */
export async function run(
  exec: Exec,
  action: string,
  op: string,
  argv: string[],
  opts?: ExecOptions,
): Promise<ExecResult> {
  const res = await exec(argv, opts);
  if (res.code !== 0) throw execError(action, op, argv, res);
  return res;
}
