/** webhook: JSON POSTs to a local Bun.serve on 127.0.0.1, with headers, timeout and retries. */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createAction } from "../src/action/registry.ts";
import type { Action } from "../src/action/types.ts";
import { Fail2tsError } from "../src/util/errors.ts";
import { type HttpServer, startHttp } from "./helpers/http.ts";
import { ev, memoryLog } from "./helpers/netns.ts";

let http: HttpServer;
beforeAll(() => {
  http = startHttp();
});
afterAll(async () => {
  await http.close();
});
afterEach(() => {
  http.requests.length = 0;
  http.respond = () => ({ status: 204 });
});

function make(options: Record<string, unknown> = {}): Action {
  return createAction(
    { name: "hook", type: "webhook", options: { url: `${http.url}/ban`, retry_delay: "10ms", ...options } },
    { name: "sshd" },
    { log: memoryLog() },
  );
}

describe("webhook action", () => {
  test("one POST per event with the JSON event and the configured headers", async () => {
    const matches = ['"quoted" $(reboot) `x`', "line\nwith newline", "\u0000nul"];
    await make({ headers: { authorization: "Bearer s3cret", "x-fail2ts": "1" } }).ban([
      ev("203.0.113.7", { time: 1700000000, bantime: 600, failures: 5, count: 2, matches }),
      ev("2001:db8::1", { time: 1700000001 }),
    ]);
    expect(http.requests.length).toBe(2);
    const r = http.requests.find((q) => q.body.includes("203.0.113.7"))!;
    expect(r.method).toBe("POST");
    expect(r.path).toBe("/ban");
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers.authorization).toBe("Bearer s3cret");
    expect(r.headers["x-fail2ts"]).toBe("1");
    expect(JSON.parse(r.body)).toEqual({
      event: "ban",
      ip: "203.0.113.7",
      jail: "sshd",
      time: 1700000000,
      bantime: 600,
      failures: 5,
      count: 2,
      matches,
    });
  });

  test("unban events, and the events option", async () => {
    await make().unban([ev("203.0.113.7")]);
    expect(JSON.parse(http.requests[0]!.body).event).toBe("unban");
    await make({ events: ["ban"] }).unban([ev("203.0.113.7")]);
    expect(http.requests.length).toBe(1);
  });

  test("restored bans are not posted unless restored = true", async () => {
    await make().ban([ev("203.0.113.8", { restored: true })]);
    expect(http.requests.length).toBe(0);
    await make({ restored: true }).ban([ev("203.0.113.8", { restored: true })]);
    expect(JSON.parse(http.requests[0]!.body).restored).toBe(true);
  });

  test("a 500 is retried; success after a retry is success", async () => {
    http.respond = (n) => ({ status: n === 0 ? 500 : 200 });
    await make({ retries: 2 }).ban([ev("203.0.113.9")]);
    expect(http.requests.length).toBe(2);
  });

  test("exhausted retries throw an action error naming the status", async () => {
    http.respond = () => ({ status: 503 });
    const err = await make({ retries: 2 })
      .ban([ev("203.0.113.10")])
      .catch((e) => e);
    expect(http.requests.length).toBe(3);
    expect(err).toBeInstanceOf(Fail2tsError);
    expect((err as Error).message).toBe(`hook ban: POST ${http.url}/ban failed: HTTP 503`);
  });

  test("a hanging receiver times out", async () => {
    http.respond = () => ({ status: 200, delayMs: 2000 });
    const t0 = performance.now();
    const err = await make({ timeout: "150ms", retries: 0 })
      .ban([ev("203.0.113.11")])
      .catch((e) => e);
    expect(performance.now() - t0).toBeLessThan(1500);
    expect((err as Error).message).toContain("timed out after 150 ms");
  });

  test("after a partly failed batch, the retry posts only what was not delivered", async () => {
    http.respond = (n) => ({ status: n === 1 ? 500 : 204 });
    const a = make({ retries: 0, concurrency: 1 });
    const batch = [ev("203.0.113.12"), ev("203.0.113.13"), ev("203.0.113.14")];
    await expect(a.ban(batch)).rejects.toThrow(/HTTP 500/);
    http.requests.length = 0;
    http.respond = () => ({ status: 204 });
    await a.ban(batch);
    expect(http.requests.map((r) => JSON.parse(r.body).ip)).toEqual(["203.0.113.13"]);
  });

  test("config errors: url required and http(s) only, header values without line breaks", () => {
    expect(() =>
      createAction({ name: "h", type: "webhook", options: {} }, { name: "sshd" }, { log: memoryLog() }),
    ).toThrow(/url: required/);
    expect(() => make({ url: "file:///etc/passwd" })).toThrow(/http/);
    expect(() => make({ headers: { x: "a\r\nInjected: 1" } })).toThrow(/header/);
  });
});
