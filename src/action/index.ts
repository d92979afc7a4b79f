/** The action library: kinds, instances from config, and the runner the daemon drives. */
export { type Exec, type ExecOptions, type ExecResult, recordingExec, spawnExec } from "./exec.ts";
export { removeNftTable } from "./nftables.ts";
export {
  ACTION_TYPES,
  type ActionDeps,
  type ActionSpec,
  BUILTIN_ACTIONS,
  builtinSpec,
  createAction,
  validateActionSpec,
} from "./registry.ts";
export { ActionRunner, type RunnerOptions, type RunnerStatus } from "./runner.ts";
export type { Action, ActionLogger, BanEvent, JailInfo } from "./types.ts";
