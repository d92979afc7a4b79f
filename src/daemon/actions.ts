/**
 * A jail's actions as the daemon drives them: one ActionRunner per action (queue, batching per
 * tick, retry with backoff), behind one small interface.
 */
import { type ActionDeps, type ActionSpec, builtinSpec, createAction } from "../action/registry.ts";
import { ActionRunner } from "../action/runner.ts";
import { ScriptAction } from "../action/script.ts";
import type { Action, ActionLogger, BanEvent, JailInfo } from "../action/types.ts";
import type { ActionConfig, JailConfig } from "../config/schema.ts";
import { errorMessage, Fail2tsError } from "../util/errors.ts";

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
  /**
   * `fail2ts flush`: drains the queues, lets go, and tears down what every action created —
   * started in this process or not (a table left by an earlier run). Returns the failures.
   */
  teardown(): Promise<string[]>;
}

/**
 * Removes what an action created (its stop()). A script action's stop() needs its module, so one
 * that was never started is started first; every other kind's stop() works on its own.
 */
export async function tearDown(a: Action, started: boolean): Promise<void> {
  if (!started && a instanceof ScriptAction) await a.start();
  await a.stop();
}

/**
 * Tears down a jail's actions with fresh instances (no daemon, or a jail the daemon does not run),
 * one after the other in the jail's order. Returns one outcome per action.
 */
export async function tearDownJail(
  j: JailConfig,
  actions: Record<string, ActionConfig>,
  deps: (action: string) => ActionDeps,
): Promise<Array<{ action: string; ms: number; error?: string }>> {
  const out: Array<{ action: string; ms: number; error?: string }> = [];
  for (const n of j.action) {
    const t0 = performance.now();
    try {
      await tearDown(createAction(actionSpec(n, actions), jailInfo(j), deps(n)), false);
      out.push({ action: n, ms: performance.now() - t0 });
    } catch (e) {
      out.push({ action: n, ms: performance.now() - t0, error: errorMessage(e) });
    }
  }
  return out;
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
    async teardown() {
      const errors: string[] = [];
      await Promise.all(runners.map((r) => r.close({ timeoutMs: 10000 })));
      for (const r of runners) {
        try {
          await tearDown(r.action, r.status().started);
        } catch (e) {
          alog.error(`${r.action.name}: flush: ${errorMessage(e)}`);
          errors.push(`jail=${j.name}: ${r.action.name}: ${errorMessage(e)}`);
        }
      }
      return errors;
    },
  };
}

/**
 * The nftables tables the configuration's jails use (`flush` without a jail removes them whole,
 * sets of jails gone from the configuration included), with the nft program of each.
 */
export function nftTablesOf(
  jails: readonly JailConfig[],
  actions: Record<string, ActionConfig>,
): Array<{ nft: string; table: string }> {
  const seen = new Map<string, { nft: string; table: string }>();
  for (const j of jails) {
    for (const n of j.action) {
      let spec: ActionSpec;
      try {
        spec = actionSpec(n, actions);
      } catch {
        continue;
      }
      if (spec.type !== "nftables") continue;
      const nft = typeof spec.options.nft === "string" ? spec.options.nft : "nft";
      const table = typeof spec.options.table === "string" ? spec.options.table : "fail2ts";
      seen.set(`${nft}\u0000${table}`, { nft, table });
    }
  }
  return [...seen.values()];
}
