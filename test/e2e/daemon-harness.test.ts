/**
 * The benchmark harness's adapter (../shared/bench/daemon/adapters/fail2ts.py) drives the real
 * binary through its config and socket contract: config written by the adapter, ping,
 * jails_active, stats, a ban seen by the stamp action, ban through the CLI, stop.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "bun";
import { binary } from "./daemon-helpers.ts";

const BENCH = join(import.meta.dir, "..", "..", "..", "shared", "bench", "daemon");
const PY = "/usr/bin/python3";

const SCRIPT = `
import json, os, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from adapters.fail2ts import Adapter
from adapters.base import Jail
wd = sys.argv[2]
a = Adapter(wd, None)
jails = [Jail(name=n, filter=n, logpath=os.path.join(wd, "logs", n + ".log")) for n in ("sshd", "nginx-http-auth")]
a.prepare(jails, "stamp")
p = subprocess.Popen(a.start_argv(), cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
out = {}
try:
    t0 = time.time()
    while not a.ping():
        assert p.poll() is None, p.stderr.read().decode()
        assert time.time() - t0 < 10, "no ping"
        time.sleep(0.005)
    out["active"] = a.jails_active(["sshd", "nginx-http-auth"])
    ip = "203.0.113.77"
    with open(jails[0].logpath, "a") as f:
        for i in range(3):
            f.write(time.strftime("%b %d %H:%M:%S") + f" host sshd[{100 + i}]: Failed password for root from {ip} port 22 ssh2\\n")
    t0 = time.time()
    while not a.fw_has(ip):
        assert time.time() - t0 < 5, "no ban"
        time.sleep(0.005)
    out["stats"] = a.stats("sshd")
    r = subprocess.run(a.ban_argv("sshd", ["198.51.100.1", "198.51.100.2"]), capture_output=True, text=True)
    out["ban_rc"] = r.returncode
    out["after_cli_ban"] = a.stats("sshd")
    r = subprocess.run(a.cli_ping_argv(), capture_output=True, text=True)
    out["cli_ping"] = [r.returncode, r.stdout.strip()]
    out["stopped"] = a.stop()
    out["exit"] = p.wait(10)
finally:
    if p.poll() is None:
        p.kill()
print(json.dumps(out))
`;

test.skipIf(!existsSync(join(BENCH, "adapters", "fail2ts.py")) || !existsSync(PY))(
  "the benchmark harness's fail2ts adapter works against the binary",
  () => {
    const wd = mkdtempSync(join(tmpdir(), "f2ts-harness-"));
    try {
      const r = spawnSync([PY, "-c", SCRIPT, BENCH, wd], {
        env: { ...process.env, FAIL2TS: binary() },
        stdout: "pipe",
        stderr: "pipe",
      });
      const err = r.stderr.toString();
      expect(err).toBe("");
      const out = JSON.parse(r.stdout.toString());
      expect(out).toEqual({
        active: true,
        stats: { failed_total: 3, failed_now: 0, banned_total: 1, banned_now: 1 },
        ban_rc: 0,
        after_cli_ban: { failed_total: 3, failed_now: 0, banned_total: 3, banned_now: 3 },
        cli_ping: [0, "pong"],
        stopped: true,
        exit: 0,
      });
    } finally {
      rmSync(wd, { recursive: true, force: true });
    }
  },
  30000,
);
