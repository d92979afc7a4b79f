/**
 * The one error type of fail2ts. Every failure a user can cause or meet carries a code;
 * `where` names the place (file:line:col) when there is one. The CLI's single catch in
 * main.ts prints `fail2ts: <where>: <message>` and exits with `exitCode`.
 */
export type ErrorCode =
  | "usage" // bad command line
  | "config" // bad configuration or filter file
  | "regex" // a regex that cannot be translated or compiled
  | "io" // a file or socket that cannot be used
  | "action" // an action that failed
  | "daemon" // the daemon is not reachable or answered with an error
  | "internal";

const EXIT: Record<ErrorCode, number> = {
  usage: 2,
  config: 2,
  regex: 2,
  io: 1,
  action: 1,
  daemon: 1,
  internal: 1,
};

export class Fail2tsError extends Error {
  readonly code: ErrorCode;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, where?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "Fail2tsError";
    this.code = code;
    this.where = where;
  }

  get exitCode(): number {
    return EXIT[this.code];
  }

  /** `where: message`, the form the CLI prints. */
  describe(): string {
    return this.where ? `${this.where}: ${this.message}` : this.message;
  }
}

/** A message for any thrown value, without a stack. */
export function errorMessage(err: unknown): string {
  if (err instanceof Fail2tsError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}
