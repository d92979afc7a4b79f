/** PF on Linux: the argv (and stdin) the action would run, recorded by an injected Exec. */
import { describe, expect, test } from "bun:test";
import { recordingExec } from "../src/action/exec.ts";
import { createAction } from "../src/action/registry.ts";
import type { JailInfo } from "../src/action/types.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { ev, memoryLog, v4s } from "./helpers/netns.ts";

function make(jail: Partial<JailInfo> = {}, options: Record<string, unknown> = {}) {
  const exec = recordingExec();
  const action = createAction(
    { name: "pf", type: "pf", options },
    { name: "sshd", port: "ssh", ...jail },
    {
      log: memoryLog(),
      exec,
    },
  );
  return { action, exec };
}

describe("pf action", () => {
  test("start loads the anchor's table and block rule from stdin", async () => {
    const { action, exec } = make({ port: "ssh,2222" });
    await action.start();
    expect(exec.calls).toEqual([
      {
        argv: ["pfctl", "-a", "fail2ts/sshd", "-f", "-"],
        stdin:
          "table <f2t-sshd> persist counters\nblock return quick proto { tcp } from <f2t-sshd> to any port { 22, 2222 }\n",
      },
    ]);
  });

  test("allports and drop", async () => {
    const { action, exec } = make({ protocol: "all" }, { blocktype: "drop" });
    await action.start();
    expect(exec.calls[0]!.stdin).toBe(
      "table <f2t-sshd> persist counters\nblock drop quick from <f2t-sshd>\n",
    );
  });

  test("a batch is one table command; v6 prefix applied; invalid addresses dropped", async () => {
    const { action, exec } = make({ banprefix6: 64 });
    await action.ban([ev("192.0.2.1"), ev("2001:db8:1:2::9"), ev("-f /etc/passwd"), ev("192.0.2.1")]);
    await action.unban([ev("192.0.2.1")]);
    expect(exec.calls.map((c) => c.argv)).toEqual([
      ["pfctl", "-a", "fail2ts/sshd", "-t", "f2t-sshd", "-T", "add", "192.0.2.1", "2001:db8:1:2::/64"],
      ["pfctl", "-a", "fail2ts/sshd", "-t", "f2t-sshd", "-T", "delete", "192.0.2.1"],
    ]);
  });

  test("restore replaces the table; large batches are chunked", async () => {
    const { action, exec } = make();
    await action.restore!(v4s(4500).map((ip) => ev(ip)));
    expect(exec.calls.map((c) => c.argv.slice(0, 7).concat(String(c.argv.length - 7)))).toEqual([
      ["pfctl", "-a", "fail2ts/sshd", "-t", "f2t-sshd", "-T", "replace", "2000"],
      ["pfctl", "-a", "fail2ts/sshd", "-t", "f2t-sshd", "-T", "add", "2000"],
      ["pfctl", "-a", "fail2ts/sshd", "-t", "f2t-sshd", "-T", "add", "500"],
    ]);
  });

  test("flush and stop; a missing table is not an error", async () => {
    const exec = recordingExec((argv) =>
      argv.includes("kill") ? { code: 1, stderr: "pfctl: Table does not exist." } : {},
    );
    const action = createAction(
      { name: "pf", type: "pf", options: {} },
      { name: "sshd" },
      { log: memoryLog(), exec },
    );
    await action.flush();
    await action.stop();
    expect(exec.calls.map((c) => c.argv.slice(3).join(" "))).toEqual([
      "-t f2t-sshd -T flush",
      "-t f2t-sshd -T kill",
      "-F rules",
    ]);
  });

  test("a failing pfctl is an action error with its stderr", async () => {
    const exec = recordingExec(() => ({ code: 1, stderr: "pfctl: /dev/pf: Permission denied" }));
    const action = createAction(
      { name: "pf", type: "pf", options: {} },
      { name: "sshd" },
      { log: memoryLog(), exec },
    );
    const err = await action.ban([ev("192.0.2.1")]).catch((e) => e);
    expect(err).toBeInstanceOf(Fail2tsError);
    expect((err as Error).message).toBe("pf ban: pfctl exited 1: pfctl: /dev/pf: Permission denied");
  });
});
