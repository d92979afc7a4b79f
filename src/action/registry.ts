/**
 * The action kinds and how configuration makes instances.
 *
 *   [actions.notify]            → { name: "notify", type: "webhook", options: { url, ... } }
 *   type = "webhook"
 *   url = "https://..."
 *
 * A jail may also name a built-in (BUILTIN_ACTIONS) without any [actions.X] table.
 */
import { Fail2tsError } from "../util/errors.ts";
import { JAIL_NAME } from "./addr.ts";
import { COMMAND_SCHEMA, CommandAction, checkCommandOptions } from "./command.ts";
import { type Exec, recordingExec, spawnExec } from "./exec.ts";
import { HOSTSDENY_SCHEMA, HostsDenyAction } from "./hostsdeny.ts";
import { IPSET_SCHEMA, IPTABLES_SCHEMA, IptablesAction } from "./iptables.ts";
import { MAIL_SCHEMA, MailAction } from "./mail.ts";
import { NFTABLES_SCHEMA, NftablesAction } from "./nftables.ts";
import { checkSchema, Options, type Schema } from "./options.ts";
import { PF_SCHEMA, PfAction } from "./pf.ts";
import { parsePorts, parseProtocols } from "./ports.ts";
import { SCRIPT_SCHEMA, ScriptAction, validateScriptOptions } from "./script.ts";
import type { Action, ActionLogger, JailInfo } from "./types.ts";
import { WEBHOOK_SCHEMA, WebhookAction } from "./webhook.ts";

/** From `[actions.NAME]` with `type = "..."`; `options` is the rest of the table. */
export interface ActionSpec {
  name: string;
  type: string;
  options: Record<string, unknown>;
}

export interface ActionDeps {
  log: ActionLogger;
  /** How argv is run (default Bun.spawn); tests inject one that prefixes `ip netns exec NS`. */
  exec?: Exec;
  /** Wall clock in ms (default Date.now): kernel timeouts are the time left of each ban. */
  now?: () => number;
  /** Run nothing: programs' argv and stdin, files and requests are logged instead. */
  dryRun?: boolean;
}

interface Kind {
  schema: Schema;
  /** Checks beyond key types. */
  extra?: (options: Record<string, unknown>) => string[];
  /** Replaces the schema check (script: its `options` table is free-form). */
  validate?: (options: Record<string, unknown>) => string[];
  make: (
    spec: ActionSpec,
    jail: JailInfo,
    opts: Options,
    deps: Required<Omit<ActionDeps, "dryRun">>,
    dry: boolean,
  ) => Action;
}

function portChecks(o: Record<string, unknown>): string[] {
  const errors: string[] = [];
  try {
    if (typeof o.port === "string") parsePorts(o.port);
  } catch (err) {
    errors.push(`port: ${(err as Error).message}`);
  }
  try {
    if (typeof o.protocol === "string") parseProtocols(o.protocol);
  } catch (err) {
    errors.push(`protocol: ${(err as Error).message}`);
  }
  return errors;
}

const KINDS: Record<string, Kind> = {
  nftables: {
    schema: NFTABLES_SCHEMA,
    extra: portChecks,
    make: (s, j, o, d) => new NftablesAction(s.name, j, o, d.exec, d.log, d.now),
  },
  iptables: {
    schema: IPTABLES_SCHEMA,
    extra: portChecks,
    make: (s, j, o, d) => new IptablesAction(s.name, "plain", j, o, d.exec, d.log, d.now),
  },
  ipset: {
    schema: IPSET_SCHEMA,
    extra: portChecks,
    make: (s, j, o, d) => new IptablesAction(s.name, "ipset", j, o, d.exec, d.log, d.now),
  },
  pf: {
    schema: PF_SCHEMA,
    extra: portChecks,
    make: (s, j, o, d) => new PfAction(s.name, j, o, d.exec, d.log),
  },
  hostsdeny: {
    schema: HOSTSDENY_SCHEMA,
    make: (s, j, o, d, dry) => new HostsDenyAction(s.name, j, o, d.log, dry),
  },
  mail: { schema: MAIL_SCHEMA, make: (s, j, o, d, dry) => new MailAction(s.name, j, o, d.exec, d.log, dry) },
  webhook: {
    schema: WEBHOOK_SCHEMA,
    extra: (o) => (o.url === undefined ? ["url: required"] : []),
    make: (s, j, o, d, dry) => new WebhookAction(s.name, j, o, d.log, dry),
  },
  command: {
    schema: COMMAND_SCHEMA,
    extra: checkCommandOptions,
    make: (s, j, o, d) => new CommandAction(s.name, j, o, d.exec, d.log),
  },
  // the admin's own module (script.ts); preloadScriptActions() imports it ahead of time
  script: {
    schema: SCRIPT_SCHEMA,
    validate: validateScriptOptions,
    make: (s, j, o, d, dry) => new ScriptAction(s, j, o, d.log, dry),
  },
};

/** The action types a `[actions.X]` table can have. */
export const ACTION_TYPES: string[] = Object.keys(KINDS);

const BUILTINS: Record<string, { type: string; options: Record<string, unknown> }> = {
  nftables: { type: "nftables", options: {} },
  "nftables-allports": { type: "nftables", options: { allports: true } },
  iptables: { type: "iptables", options: {} },
  "iptables-allports": { type: "iptables", options: { allports: true } },
  ipset: { type: "ipset", options: {} },
  "ipset-allports": { type: "ipset", options: { allports: true } },
  pf: { type: "pf", options: {} },
  "pf-allports": { type: "pf", options: { allports: true } },
  hostsdeny: { type: "hostsdeny", options: {} },
  mail: { type: "mail", options: {} },
};

/** Names usable in a jail's `action` list with no [actions.X] table (default options). */
export const BUILTIN_ACTIONS: string[] = Object.keys(BUILTINS);

/** The spec of a built-in action, or undefined. */
export function builtinSpec(name: string): ActionSpec | undefined {
  const b = BUILTINS[name];
  return b ? { name, type: b.type, options: { ...b.options } } : undefined;
}

/** Errors as "key: what is wrong" (the config loader adds file:line). Empty when valid. */
export function validateActionSpec(spec: ActionSpec): string[] {
  const kind = KINDS[spec.type];
  if (!kind)
    return [`type: unknown action type ${JSON.stringify(spec.type)} (known: ${ACTION_TYPES.join(", ")})`];
  const errors = kind.validate ? kind.validate(spec.options) : checkSchema(kind.schema, spec.options);
  if (errors.length === 0 && kind.extra) errors.push(...kind.extra(spec.options));
  return errors;
}

/**
 * An action instance for one jail. Throws a config Fail2tsError for an invalid spec or a jail
 * name the backend cannot carry.
 */
export function createAction(spec: ActionSpec, jail: JailInfo, deps: ActionDeps): Action {
  const errors = validateActionSpec(spec);
  if (errors.length) throw new Fail2tsError("config", `action ${spec.name}: ${errors.join("; ")}`);
  if (!JAIL_NAME.test(jail.name)) {
    throw new Fail2tsError(
      "config",
      `jail name ${JSON.stringify(jail.name)}: use letters, digits, _ and - only`,
    );
  }
  if (
    jail.banprefix6 !== undefined &&
    !(Number.isInteger(jail.banprefix6) && jail.banprefix6 >= 8 && jail.banprefix6 <= 128)
  ) {
    throw new Fail2tsError("config", `jail ${jail.name}: banprefix6 must be an integer from 8 to 128`);
  }
  const dry = deps.dryRun === true;
  let exec = deps.exec ?? spawnExec;
  if (dry) {
    exec = recordingExec((argv) => {
      deps.log.info(`dry-run: ${argv.join(" ")}`);
      // `list` commands answer "nothing there" so the plans stay complete
      return {};
    });
    const inner = exec;
    exec = async (argv, opts) => {
      if (opts?.stdin !== undefined) {
        const text = typeof opts.stdin === "string" ? opts.stdin : new TextDecoder().decode(opts.stdin);
        deps.log.info(
          `dry-run stdin of ${argv[0]}:\n${text.length > 4000 ? `${text.slice(0, 4000)}…` : text}`,
        );
      }
      return inner(argv, opts);
    };
  }
  const opts = new Options(spec.name, spec.options);
  return KINDS[spec.type]!.make(spec, jail, opts, { log: deps.log, exec, now: deps.now ?? Date.now }, dry);
}
