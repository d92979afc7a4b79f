/**
 * The `[fleet]` table: where Redis is, the shared signing key, this node's name, which jails are
 * shared and accepted, fleet-wide maxretry. Validation here, called from src/config/load.ts with
 * its error reporter, so that a bad [fleet] fails `check` and `run` like any other key.
 *
 * Secrets (the key, a Redis password file) are checked at load and read again at start; they
 * never sit in the config object, so `check -o json` cannot print them.
 */
import { readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { isAbsolute, resolve } from "node:path";
import { Fail2tsError } from "../util/errors.ts";

export interface FleetConfig {
  /** redis:// or rediss:// URL as written (may hold user and password). */
  redis: string;
  /** Absolute path of a file holding the Redis password (instead of one in the URL). */
  password_file?: string;
  /** Absolute path of the shared HMAC key. */
  key_file: string;
  /** Absolute path of a PEM CA bundle for rediss:// (default: the system's). */
  ca_file?: string;
  /** This host's name in events (default: hostname). */
  node: string;
  /** Jails whose local bans are published; null = all. */
  share: string[] | null;
  /** Jails whose fleet bans are applied here; null = all. */
  accept: string[] | null;
  /** Jail → failures counted across the fleet (within the jail's findtime) that ban everywhere. */
  global_maxretry: Record<string, number>;
  /** Key prefix: the stream is `<prefix>:events`, failure windows `<prefix>:fail:<jail>:<ip>`. */
  prefix: string;
  /** Stream length bound (XADD MAXLEN ~). */
  maxlen: number;
  /** Outgoing events kept in the database while Redis is unreachable (oldest dropped beyond). */
  queue: number;
}

export const FLEET_KEYS = new Set([
  "redis",
  "password_file",
  "key_file",
  "ca_file",
  "node",
  "share",
  "accept",
  "global_maxretry",
  "prefix",
  "maxlen",
  "queue",
]);

export const NODE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const PREFIX = /^[A-Za-z0-9_][A-Za-z0-9_:.{}-]{0,63}$/;
/** Shortest key accepted, in bytes. */
export const MIN_KEY_BYTES = 16;

/** Reports one problem at `["fleet", ...key]`. */
export type FleetIssue = (key: string[], message: string, item?: string) => void;

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * Reads a secret file: it must be a regular file that other users cannot read or write. Returns
 * its content without the trailing newline.
 */
export function readSecretFile(path: string, what: string): string {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new Fail2tsError(
      "config",
      `${what}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      path,
    );
  }
  if (!st.isFile()) throw new Fail2tsError("config", `${what}: not a regular file`, path);
  if ((st.mode & 0o006) !== 0) {
    throw new Fail2tsError(
      "config",
      `${what}: other users can ${st.mode & 0o004 ? "read" : "write"} it (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${path}`,
      path,
    );
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Fail2tsError(
      "config",
      `${what}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      path,
    );
  }
  return text.replace(/[\r\n]+$/, "");
}

/** Reads and checks the shared key. */
export function readKey(path: string): Buffer {
  const k = readSecretFile(path, "key_file");
  const b = Buffer.from(k, "utf8");
  if (b.length < MIN_KEY_BYTES) {
    throw new Fail2tsError(
      "config",
      `key_file: the key is ${b.length === 0 ? "empty" : `${b.length} bytes`}, at least ${MIN_KEY_BYTES} are needed (head -c 32 /dev/urandom | base64 > ${path}; chmod 600 ${path}; the same file on every host)`,
      path,
    );
  }
  return b;
}

/** The URL with its password replaced by `***` (for logs and status). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

/** The URL to connect to: the password from `password_file` put in, when there is one. */
export function connectUrl(c: FleetConfig): string {
  if (!c.password_file) return c.redis;
  const u = new URL(c.redis);
  u.password = encodeURIComponent(readSecretFile(c.password_file, "password_file"));
  return u.toString();
}

function strList(v: unknown, key: string, issue: FleetIssue): string[] | null {
  if (typeof v === "string") return v.split(/[\s,]+/).filter(Boolean);
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  issue([key], "expected an array of jail names");
  return null;
}

function intIn(v: unknown, key: string, min: number, issue: FleetIssue, path = [key]): number | null {
  if (typeof v === "number" && Number.isInteger(v) && v >= min) return v;
  issue(path, `expected a whole number from ${min} up, got ${JSON.stringify(v)}`);
  return null;
}

/**
 * Checks `[fleet]` (`t`, as parsed). `jails`: the names of the configured jails, enabled or not.
 * Returns null when absent or invalid (issues reported through `issue`).
 */
export function checkFleet(
  t: unknown,
  base: string,
  jails: Map<string, { enabled: boolean }>,
  issue: FleetIssue,
  warn: FleetIssue,
): FleetConfig | null {
  if (t === undefined) return null;
  if (!isTable(t)) {
    issue([], "expected a table [fleet]");
    return null;
  }
  let bad = false;
  const err: FleetIssue = (k, m, item) => {
    bad = true;
    issue(k, m, item);
  };
  for (const k of Object.keys(t))
    if (!FLEET_KEYS.has(k)) err([k], `unknown key (known: ${[...FLEET_KEYS].join(", ")})`);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));

  let redis = "";
  if (typeof t.redis !== "string" || t.redis === "")
    err(["redis"], 'needs the Redis URL (redis = "redis://10.0.0.5:6379/0")');
  else {
    redis = t.redis;
    let u: URL | null = null;
    try {
      u = new URL(redis);
    } catch {
      err(["redis"], `not a URL: ${JSON.stringify(redis)} (redis://host:6379/0 or rediss:// for TLS)`);
    }
    if (u) {
      if (u.protocol !== "redis:" && u.protocol !== "rediss:")
        err(["redis"], `the scheme must be redis:// or rediss://, not ${u.protocol}//`);
      else if (!u.hostname) err(["redis"], "no host in the URL");
      else if (u.pathname !== "" && u.pathname !== "/" && !/^\/\d{1,4}$/.test(u.pathname)) {
        err(["redis"], `the path is the database number (/0, /1 ...), not ${JSON.stringify(u.pathname)}`);
      } else if (u.search || u.hash) err(["redis"], "query strings and fragments are not supported");
      if (u.password && t.password_file !== undefined)
        err(["password_file"], "the URL already has a password: give one or the other");
    }
  }

  const file = (k: "password_file" | "key_file" | "ca_file", required: boolean): string | undefined => {
    const v = t[k];
    if (v === undefined) {
      if (required) {
        err(
          [k],
          "needs the shared key file: every event is signed with it (head -c 32 /dev/urandom | base64 > /etc/fail2ts/fleet.key; chmod 600; the same on every host)",
        );
      }
      return undefined;
    }
    if (typeof v !== "string" || v === "") {
      err([k], "expected a file path");
      return undefined;
    }
    const p = abs(v);
    try {
      if (k === "key_file") readKey(p);
      else if (k === "password_file") readSecretFile(p, k);
      else readFileSync(p);
    } catch (e) {
      err(
        [k],
        e instanceof Fail2tsError
          ? `${p}: ${e.message.replace(/^\w+: /, "")}`
          : `${p}: ${(e as Error).message}`,
      );
    }
    return p;
  };
  const key_file = file("key_file", true) ?? "";
  const password_file = file("password_file", false);
  const ca_file = file("ca_file", false);

  let node = hostname().split(".")[0] || "localhost";
  if (t.node !== undefined) {
    if (typeof t.node === "string" && NODE_NAME.test(t.node)) node = t.node;
    else err(["node"], "a node name is letters, digits, '_', '-', '.' (at most 64)");
  } else if (!NODE_NAME.test(node))
    err(["node"], `the hostname ${JSON.stringify(node)} is not usable as a node name: set node`);

  const jailList = (k: "share" | "accept"): string[] | null => {
    if (t[k] === undefined) return null;
    const l = strList(t[k], k, err);
    if (!l) return null;
    for (const j of l) if (!jails.has(j)) warn([k], `no jail named ${JSON.stringify(j)} here`);
    return l;
  };
  const share = jailList("share");
  const accept = jailList("accept");

  const global_maxretry: Record<string, number> = {};
  if (t.global_maxretry !== undefined) {
    if (!isTable(t.global_maxretry))
      err(["global_maxretry"], "expected a table of jail = failures ({ sshd = 10 })");
    else {
      for (const [j, v] of Object.entries(t.global_maxretry)) {
        const n = intIn(v, "global_maxretry", 1, err, ["global_maxretry", j]);
        if (!jails.has(j)) err(["global_maxretry", j], `no jail named ${JSON.stringify(j)}`);
        else if (n !== null) global_maxretry[j] = n;
      }
    }
  }

  let prefix = "fail2ts";
  if (t.prefix !== undefined) {
    if (typeof t.prefix === "string" && PREFIX.test(t.prefix)) prefix = t.prefix;
    else err(["prefix"], "a key prefix is letters, digits and _ : . - { } (at most 64)");
  }
  const maxlen = t.maxlen === undefined ? 100000 : (intIn(t.maxlen, "maxlen", 100, err) ?? 100000);
  const queue = t.queue === undefined ? 10000 : (intIn(t.queue, "queue", 10, err) ?? 10000);
  if (bad) return null;
  return {
    redis,
    ...(password_file ? { password_file } : {}),
    key_file,
    ...(ca_file ? { ca_file } : {}),
    node,
    share,
    accept,
    global_maxretry,
    prefix,
    maxlen,
    queue,
  };
}

/** `[fleet]` as `check` shows it: the password hidden. */
export function effectiveFleet(c: FleetConfig): Record<string, unknown> {
  return { ...c, redis: redactUrl(c.redis) };
}
