/**
 * fail2ts script actions — the contract between fail2ts and an action module.
 *
 * An action module is a TypeScript or JavaScript file that fail2ts imports at run time:
 *
 *   [actions.chat]
 *   type = "script"
 *   path = "/etc/fail2ts/actions/chat.ts"
 *   timeout = "30s"                        # per call (default 30 s); ctx.signal is aborted then
 *   options = { url = "https://chat.example/hooks/abc" }
 *
 * Put these types beside the module (`fail2ts types > /etc/fail2ts/actions/fail2ts.d.ts`) and
 * import them with `import type` (erased at run time, so nothing is needed there):
 *
 *   import type { ActionContext, BanEvent } from "./fail2ts.d.ts";
 *
 *   export async function ban(events: readonly BanEvent[], ctx: ActionContext): Promise<void> {
 *     for (const ev of events) ctx.log.info(`banned ${ev.ip} in ${ev.jail}`);
 *   }
 *   export async function unban(events: readonly BanEvent[], ctx: ActionContext): Promise<void> {}
 *
 * Rules of the road:
 * - Export `ban` and `unban` (named exports, or one default export object with the methods);
 *   `start`, `flush` and `stop` are optional. Any method may be async.
 * - Throwing (or rejecting) means "failed": fail2ts logs the error with its stack and retries the
 *   whole batch with backoff (1 s doubling to 60 s), then re-applies the active bans with
 *   `restored: true`. So make ban and unban idempotent, and skip `restored` events if you only
 *   notify.
 * - A call that takes longer than `timeout` is abandoned: ctx.signal is aborted, the call counts as
 *   failed. Pass ctx.signal to fetch() and friends so the work really stops.
 * - One module file is loaded once and shared: every jail that uses the action gets its own
 *   instance (its own start/stop, ctx.jail, ctx.state) but module-level variables are common.
 * - The module runs inside the daemon (as root, usually). It can import node:* and bun modules,
 *   files beside it, and packages from a node_modules directory beside it — not fail2ts's own.
 */

/** One ban or unban. Events come in batches: one call per tick, not per address. */
export interface BanEvent {
  /** Normalised address (IPv4 dotted quad, IPv6 compressed lower case) or a CIDR (`2001:db8::/64`). */
  readonly ip: string;
  /** The jail that banned it. */
  readonly jail: string;
  /** When the ban started, epoch seconds. */
  readonly time: number;
  /** Ban length in seconds; -1 is permanent. */
  readonly bantime: number;
  /** Failures that led to the ban. */
  readonly failures: number;
  /** How many times this address was banned before (bantime increment), 0 for the first. */
  readonly count: number;
  /**
   * The log lines that matched, as read from the log: untrusted text (an attacker chose part of
   * it). Escape it for wherever it goes (HTML, Markdown, mail headers, a shell: never).
   */
  readonly matches: readonly string[];
  /**
   * True when the ban is re-applied rather than new: after a daemon restart, or after a failed call
   * of this action (fail2ts re-sends every active ban). Notifiers usually skip these.
   */
  readonly restored?: boolean;
}

/** The jail an action instance serves. */
export interface JailInfo {
  readonly name: string;
  /** Port spec as in Fail2ban: "ssh", "22", "80,443", "1000:2000"; undefined = all ports. */
  readonly port?: string;
  /** "tcp" (default), "udp", "all"... */
  readonly protocol?: string;
  /** IPv6 prefix length banned instead of /128 (e.g. 64), when set. */
  readonly banprefix6?: number;
}

/** Writes to the daemon's log (one line per message), prefixed with the jail and action. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** What a TOML `options` table can hold. */
export type OptionValue = string | number | boolean | Date | OptionValue[] | { [key: string]: OptionValue };

/** The second argument of every call. */
export interface ActionContext<
  Options extends object = Record<string, OptionValue>,
  State extends object = Record<string, unknown>,
> {
  /** The action's name: NAME of `[actions.NAME]`. */
  readonly action: string;
  /** The jail this instance serves. */
  readonly jail: JailInfo;
  /** The `options` table of `[actions.NAME]`, as written (a frozen copy). */
  readonly options: Readonly<Options>;
  /** The daemon's log. */
  readonly log: Logger;
  /**
   * Aborted when this call has run longer than the action's `timeout` (its reason is a
   * TimeoutError) or when the action is stopped. A fresh signal for each call.
   */
  readonly signal: AbortSignal;
  /** The action's `timeout` in milliseconds (default 30 000). */
  readonly timeoutMs: number;
  /**
   * Private to this instance (one jail × one action) and kept from start() to stop() and across
   * retries: the place for a connection, a cache, "already reported" marks.
   */
  readonly state: State;
}

/** A call's result: nothing, synchronously or not. */
export type Result = void | Promise<void>;

/**
 * The exports of an action module. Use it to check a default export:
 *
 *   export default { ban(events, ctx) {...}, unban(events, ctx) {...} } satisfies ActionModule<MyOptions>;
 */
export interface ActionModule<
  Options extends object = Record<string, OptionValue>,
  State extends object = Record<string, unknown>,
> {
  /**
   * Prepare (open a connection, create a list, check credentials). Called before the first batch,
   * and again after a failed call (then the active bans are re-sent with `restored: true`).
   */
  start?(ctx: ActionContext<Options, State>): Result;
  /** Apply these bans. Idempotent: the same address may come again. */
  ban(events: readonly BanEvent[], ctx: ActionContext<Options, State>): Result;
  /** Lift these bans. Idempotent: an address that is not banned is not an error. */
  unban(events: readonly BanEvent[], ctx: ActionContext<Options, State>): Result;
  /**
   * Lift every ban of this jail at once; called before stop() when the bans go for good. Without
   * it, fail2ts calls unban() with every address this instance banned.
   */
  flush?(ctx: ActionContext<Options, State>): Result;
  /**
   * Tear down what start() made. Called when the bans are removed for good: the daemon stops with
   * `unban_on_stop = true`, or a reload removes the jail. Not on a plain stop or restart: the bans
   * stay in place then and are re-sent (restored) at the next start.
   */
  stop?(ctx: ActionContext<Options, State>): Result;
}
