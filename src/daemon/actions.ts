/**
 * A jail's actions as the daemon drives them: one ActionRunner per action (queue, batching per
 * tick, retry with backoff), behind one small interface.
 */
import { type ActionSpec, builtinSpec, createAction } from "../action/registry.ts";
import { ActionRunner } from "../action/runner.ts";
import type { ActionLogger, BanEvent, JailInfo } from "../action/types.ts";
import type { ActionConfig, JailConfig } from "../config/schema.ts";
import { Fail2tsError } from "../util/errors.ts";

export interface JailActions {
  /** Queues bans (never waits for the actions). */
  ban(events: BanEvent[]): void;
  /** Queues unbans. */
  unban(events: BanEvent[]): void;
  /** Makes each action's bans exactly these (daemon start, one batch per action). */
  restore(events: BanEvent[]): void;
  /**
   * Drains the queues (bounded wait) and lets go. With `unbanAll`, every ban of the jail is
   * removed and what the actions created is torn down.
   */
  close(unbanAll: boolean): Promise<void>;
}

/** The spec of an action name: [actions.NAME], else a built-in. */
export function actionSpec(name: string, actions: Record<string, ActionConfig>): ActionSpec {
  const a = actions[name];
  if (a) {
    const { name: n, type, ...options } = a;
    return { name: n, type, options };
  }
  const b = builtinSpec(name);
  if (!b) throw new Fail2tsError("config", `unknown action ${JSON.stringify(name)}`);
  return b;
}

export function jailInfo(j: JailConfig): JailInfo {
  return {
    name: j.name,
    ...(j.port !== undefined ? { port: j.port } : {}),
    protocol: j.protocol,
    ...(j.banprefix6 !== undefined ? { banprefix6: j.banprefix6 } : {}),
  };
}

function prefixed(log: ActionLogger, jail: string): ActionLogger {
  return {
    debug: (m) => log.debug(`jail=${jail}: ${m}`),
    info: (m) => log.info(`jail=${jail}: ${m}`),
    warn: (m) => log.warn(`jail=${jail}: ${m}`),
    error: (m) => log.error(`jail=${jail}: ${m}`),
  };
}

/** Builds the runners of a jail's actions (nothing runs until the first event). */
export function createJailActions(
  j: JailConfig,
  actions: Record<string, ActionConfig>,
  log: ActionLogger,
): JailActions {
  const alog = prefixed(log, j.name);
  const info = jailInfo(j);
  const runners = j.action.map(
    (n) => new ActionRunner(createAction(actionSpec(n, actions), info, { log: alog }), alog),
  );
  return {
    ban(events) {
      for (const r of runners) for (const e of events) r.ban(e);
    },
    unban(events) {
      for (const r of runners) for (const e of events) r.unban(e);
    },
    restore(events) {
      for (const r of runners) void r.restore(events);
    },
    async close(unbanAll) {
      await Promise.all(
        runners.map(async (r) => {
          if (unbanAll) await r.flushBans();
          await r.close({ stop: unbanAll, timeoutMs: 10000 });
        }),
      );
    },
  };
}
