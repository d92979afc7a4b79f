/**
 * `fail2ts action-test` with the real binary: the two example modules against a local HTTP server
 * (the chat webhook, RDAP) and a local SMTP listener, the README's complete example, failing
 * modules, and the firewall guard. Also: the examples type-check against the published contract.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Netns, requireFirewall } from "../helpers/netns.ts";
import { parseMail, type SmtpServer, startSmtp } from "../helpers/smtp.ts";
import { binary } from "./daemon-helpers.ts";

const ROOT = join(import.meta.dir, "..", "..");
const EXAMPLES = join(ROOT, "examples", "actions");
const dir = mkdtempSync(join(tmpdir(), "f2ts-action-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(() => {
  binary();
}, 120000);

function cli(...args: string[]): { code: number; out: string; err: string } {
  const r = Bun.spawnSync([binary(), ...args], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1", FAIL2TS_DEBUG: "" },
  });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

function cliAsync(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return cliAsyncIn([], ...args);
}

async function cliAsyncIn(
  prefix: string[],
  ...args: string[]
): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([...prefix, binary(), ...args], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1", FAIL2TS_DEBUG: "" },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

interface Hit {
  method: string;
  path: string;
  body: string;
}

/** One local HTTP server (in this process: run the CLI with cliAsync when it talks to it): the chat webhook (/hook) and an RDAP service (/rdap/ip/ADDRESS). */
const hits: Hit[] = [];
let rdapDelayMs = 0;
const RDAP: Record<string, unknown> = {
  "203.0.113.7": {
    objectClassName: "ip network",
    handle: "NET-203-0-113-0-1",
    name: "TEST-NET-3",
    startAddress: "203.0.113.0",
    endAddress: "203.0.113.255",
    entities: [
      {
        roles: ["registrant"],
        vcardArray: [
          "vcard",
          [
            ["version", {}, "text", "4.0"],
            ["email", {}, "text", "noc@example.net"],
          ],
        ],
        entities: [
          {
            roles: ["abuse"],
            vcardArray: [
              "vcard",
              [
                ["version", {}, "text", "4.0"],
                ["fn", {}, "text", "Abuse desk"],
                ["email", {}, "text", "Abuse@Example.NET"],
                // a hostile registry entry must not become a header
                ["email", {}, "text", "x@example.net\r\nBcc: victim@example.org"],
              ],
            ],
          },
        ],
      },
    ],
  },
};
const http = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const url = new URL(req.url);
    hits.push({ method: req.method, path: url.pathname, body: await req.text() });
    if (url.pathname === "/hook") return new Response("ok");
    if (url.pathname === "/hook-503") return new Response("slow down", { status: 503 });
    if (url.pathname.startsWith("/rdap/ip/")) {
      if (rdapDelayMs) await Bun.sleep(rdapDelayMs);
      const rec = RDAP[decodeURIComponent(url.pathname.slice("/rdap/ip/".length))];
      return rec
        ? Response.json(rec, { headers: { "content-type": "application/rdap+json" } })
        : Response.json({ errorCode: 404 }, { status: 404 });
    }
    return new Response("no", { status: 404 });
  },
});
const BASE = `http://127.0.0.1:${http.port}`;
let smtp: SmtpServer;
beforeAll(async () => {
  smtp = await startSmtp();
});
afterAll(async () => {
  await http.stop(true);
  await smtp.close();
});
afterEach(() => {
  hits.length = 0;
  rdapDelayMs = 0;
});

/** A config with the examples as [actions.chat] and [actions.abuse], and a few test modules. */
function config(extra = ""): string {
  const p = join(dir, "fail2ts.toml");
  writeFileSync(
    p,
    `[actions.chat]
type = "script"
path = ${JSON.stringify(join(EXAMPLES, "chat-webhook.ts"))}
options = { url = "${BASE}/hook", format = "slack", events = ["ban", "unban"] }

[actions.discord]
type = "script"
path = ${JSON.stringify(join(EXAMPLES, "chat-webhook.ts"))}
options = { url = "${BASE}/hook", format = "discord" }

[actions.abuse]
type = "script"
path = ${JSON.stringify(join(EXAMPLES, "abuse-report.ts"))}
timeout = "10s"
options = { from = "reports@example.org", cc = "security@example.org", rdap_url = "${BASE}/rdap/ip/", rdap_timeout = "500ms", smtp_host = "127.0.0.1", smtp_port = ${smtp.port}, organization = "Example Org" }

[actions.hook]
type = "webhook"
url = "${BASE}/hook"
${extra}
[server]
socket = ${JSON.stringify(join(dir, "f.sock"))}
database = ":memory:"
logtarget = "stderr"
`,
  );
  return p;
}

const HOSTILE = [
  "Nov 25 07:18:31 host sshd[311]: Invalid user <!channel> ```@everyone``` from 203.0.113.7 port 4242",
  "Nov 25 07:18:32 host sshd[312]: Failed password for \u001b[31mroot\u202e from 203.0.113.7 port 4243 ssh2",
  ".leading dot & <b>html</b>",
];

describe("action-test on the examples (real binary, local HTTP and SMTP)", () => {
  test("chat-webhook (slack): one message per batch, log lines defused", async () => {
    const conf = config();
    const args = ["action-test", "chat", "-c", conf, "--ban", "203.0.113.7,198.51.100.9", "--unban"];
    const r = await cliAsync(...args, ...HOSTILE.flatMap((l) => ["--match", l]));
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const lines = r.out.trim().split("\n");
    expect(lines[0]).toMatch(/^load {3}ok +[\d.]+ ms {2}exports start, ban, unban$/);
    expect(r.out).toMatch(/^ban {4}ok +[\d.]+ ms {2}203\.0\.113\.7 198\.51\.100\.9$/m);
    expect(r.out).toMatch(/^unban {2}ok +[\d.]+ ms {2}203\.0\.113\.7 198\.51\.100\.9$/m);
    expect(lines.at(-1)).toMatch(
      /^OK: chat \(script .*chat-webhook\.ts\), jail action-test: 5 steps in [\d.]+ ms$/,
    );
    expect(hits.map((h) => h.path)).toEqual(["/hook", "/hook"]);
    const ban = JSON.parse(hits[0]!.body) as { text: string; unfurl_links: boolean };
    expect(ban.unfurl_links).toBe(false);
    expect(ban.text).toStartWith(":no_entry: fail2ts on *");
    expect(ban.text).toContain("banned *2* addresses in jail *action-test*");
    expect(ban.text).toContain("• `203.0.113.7`: 3 failures, 10m");
    expect(ban.text).toContain("&lt;!channel&gt; ˋˋˋ@everyoneˋˋˋ");
    expect(ban.text).toContain("\\u001b[31mroot\\u202e");
    expect(ban.text).toContain(".leading dot &amp; &lt;b&gt;html&lt;/b&gt;");
    expect(ban.text).not.toContain("<!channel>");
    expect(ban.text.match(/```/g)?.length).toBe(4); // two fenced blocks, none opened by a log line
    const unban = JSON.parse(hits[1]!.body) as { text: string };
    expect(unban.text).toContain("unbanned *2* addresses in jail *action-test*");
  });

  test("chat-webhook (discord): no mention can ping; an HTTP error fails the step", async () => {
    const conf = config();
    const r = await cliAsync(
      "action-test",
      "discord",
      "-c",
      conf,
      "--ban",
      "203.0.113.7",
      "--match",
      HOSTILE[0]!,
    );
    expect(r.code).toBe(0);
    const body = JSON.parse(hits[0]!.body) as { content: string; allowed_mentions: unknown };
    expect(body.allowed_mentions).toEqual({ parse: [] });
    expect(body.content).toContain("**1** address in jail **action-test**");
    expect(body.content).toContain("ˋˋˋ@everyoneˋˋˋ");
    const bad = await cliAsync(
      "action-test",
      "discord",
      "-c",
      conf,
      "--ban",
      "203.0.113.7",
      "--opt",
      `url=${BASE}/hook-503`,
    );
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(
      /^ban {4}FAILED +[\d.]+ ms {2}discord ban: 127\.0\.0\.1:\d+ answered HTTP 503: slow down$/m,
    );
    expect(bad.out).toMatch(/^FAILED: discord .*: ban failed$/m);
  });

  test("abuse-report: RDAP abuse contact, one mail with the log lines escaped", async () => {
    const conf = config();
    const before = smtp.messages.length;
    const r = await cliAsync(
      "action-test",
      "abuse",
      "-c",
      conf,
      "--jail",
      "sshd",
      "--ban",
      "203.0.113.7,198.51.100.9",
      ...HOSTILE.flatMap((l) => ["--match", l]),
    );
    expect(r.code).toBe(0);
    expect(r.out).toContain("INFO  abuse: 203.0.113.7: reported to abuse@example.net");
    expect(r.out).toContain("WARN  abuse: 198.51.100.9: no abuse contact in RDAP: not reported");
    expect(hits.map((h) => h.path).sort()).toEqual(["/rdap/ip/198.51.100.9", "/rdap/ip/203.0.113.7"]);
    expect(smtp.messages.length).toBe(before + 1);
    const m = smtp.messages.at(-1)!;
    expect(m.from).toBe("reports@example.org");
    expect(m.to).toEqual(["abuse@example.net", "security@example.org"]);
    const { headers, body } = parseMail(m.data);
    expect(headers.get("to")).toBe("abuse@example.net");
    expect(headers.get("cc")).toBe("security@example.org");
    expect(headers.has("bcc")).toBe(false);
    expect(headers.get("subject")).toMatch(
      /^Abuse report: 203\.0\.113\.7 attacked \S+ \(sshd, 3 attempts\)$/,
    );
    expect(headers.get("auto-submitted")).toBe("auto-generated");
    expect(headers.get("content-transfer-encoding")).toBe("base64");
    expect(body).toContain(
      "the address 203.0.113.7 (your network TEST-NET-3, NET-203-0-113-0-1, 203.0.113.0 - 203.0.113.255)",
    );
    expect(body).toContain(`  ${HOSTILE[0]}`);
    expect(body).toContain("Failed password for \\u001b[31mroot\\u202e from 203.0.113.7");
    expect(body).toContain("  .leading dot & <b>html</b>");
    expect(body).not.toContain("\u001b");
    expect(body).toContain("Example Org");
  });

  test("abuse-report: an RDAP server that does not answer in time fails the step, not the run", async () => {
    const conf = config();
    rdapDelayMs = 3000;
    const t0 = performance.now();
    const r = await cliAsync("action-test", "abuse", "-c", conf, "--ban", "203.0.113.7", "-o", "json");
    expect(performance.now() - t0).toBeLessThan(2500);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out) as {
      ok: boolean;
      steps: { step: string; ok: boolean; ms: number; error?: string }[];
    };
    expect(report.ok).toBe(false);
    const ban = report.steps.find((s) => s.step === "ban")!;
    expect(ban.ok).toBe(false);
    expect(ban.error).toMatch(/^abuse ban: TimeoutError: /);
    expect(ban.ms).toBeGreaterThanOrEqual(450);
    expect(report.steps.map((s) => `${s.step}:${s.ok}`)).toEqual([
      "load:true",
      "start:true",
      "ban:false",
      "stop:true",
    ]);
  });
});

describe("action-test, the command", () => {
  test("the README's complete example, run from a copy with its types beside it", () => {
    const readme = readFileSync(join(EXAMPLES, "README.md"), "utf8");
    const code = /## A complete example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)![1]!;
    const d = mkdtempSync(join(dir, "nginx-"));
    writeFileSync(join(d, "nginx-deny.ts"), code);
    writeFileSync(join(d, "fail2ts.d.ts"), cli("types").out);
    const reloads = join(d, "reloads.txt");
    const r = cli(
      "action-test",
      join(d, "nginx-deny.ts"),
      "--ban",
      "203.0.113.7",
      "--ban",
      "2001:db8::1",
      "--unban",
      "2001:db8::1",
      "--no-stop",
      "--opt",
      `dir=${d}`,
      "--opt",
      `reload=${JSON.stringify(["/bin/sh", "-c", `echo reloaded >> ${reloads}`])}`,
    );
    expect(r.out).toMatch(/^load {3}ok .* exports start, ban, unban, flush, stop$/m);
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(/^stop/m);
    expect(readFileSync(join(d, "action-test.conf"), "utf8")).toBe(
      "# fail2ts, jail action-test\ndeny 203.0.113.7;\n",
    );
    expect(readFileSync(reloads, "utf8")).toBe("reloaded\nreloaded\nreloaded\n");
  });

  test("a throwing module: FAILED with its stack, exit 1; stop still runs", () => {
    const p = join(dir, "throws.ts");
    writeFileSync(
      p,
      'function deep(): never { throw new Error("nope"); }\nexport function ban() { deep(); }\nexport function unban() {}\n',
    );
    const r = cli("action-test", p, "--ban", "203.0.113.7");
    expect(r.code).toBe(1);
    expect(r.out).toContain(`ERROR throws ban: ${p} threw: nope`);
    expect(r.out).toContain(`ERROR     at deep (${p}:1:`);
    expect(r.out).toMatch(/^ban {4}FAILED +[\d.]+ ms {2}throws ban: nope$/m);
    expect(r.out).toMatch(/^stop {3}ok/m);
  });

  test("a hanging module: FAILED after its timeout", () => {
    const p = join(dir, "hangs.ts");
    writeFileSync(p, "export function ban() { return new Promise(() => {}); }\nexport function unban() {}\n");
    const conf = config(
      `\n[actions.hangs]\ntype = "script"\npath = ${JSON.stringify(p)}\ntimeout = "300ms"\n`,
    );
    const t0 = performance.now();
    const r = cli("action-test", "hangs", "-c", conf, "--ban", "203.0.113.7", "--unban");
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^ban {4}FAILED +\d+ ms {2}hangs ban: timed out after 0\.3 s/m);
    expect(r.out).toMatch(/^unban {2}ok/m);
  });

  test("a module that cannot load: the load step fails, nothing else runs", () => {
    const p = join(dir, "broken.ts");
    writeFileSync(p, 'throw new Error("no token");\nexport function ban() {}\nexport function unban() {}\n');
    const r = cli("action-test", p, "--ban", "203.0.113.7");
    expect(r.code).toBe(1);
    expect(r.out).toMatch(
      new RegExp(`^load {3}FAILED +[\\d.]+ ms {2}${p.replace(/[.]/g, "\\.")}: cannot load: no token$`, "m"),
    );
    expect(r.out).not.toMatch(/^(start|ban|stop) /m);
  });

  test("any kind: a built-in webhook from the config, as JSON", async () => {
    const conf = config();
    const r = await cliAsync("action-test", "hook", "-c", conf, "--ban", "203.0.113.7", "-o", "json");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report).toMatchObject({
      action: "hook",
      type: "webhook",
      jail: "action-test",
      dryRun: false,
      ok: true,
    });
    expect(report.steps.map((s: { step: string }) => s.step)).toEqual(["start", "ban", "stop"]);
    expect(hits).toHaveLength(1);
    expect(JSON.parse(hits[0]!.body)).toMatchObject({ event: "ban", ip: "203.0.113.7", jail: "action-test" });
  });

  test("firewall kinds want --yes; --dry-run shows what would run", () => {
    const conf = config();
    const r = cli("action-test", "nftables", "-c", conf, "--ban", "203.0.113.7");
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      "fail2ts: action nftables (nftables) changes the nftables firewall for real: add --yes to go ahead, or --dry-run to see what it would run",
    );
    const dry = cli("action-test", "nftables", "-c", conf, "--ban", "203.0.113.7", "--unban", "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.out).toContain("INFO  dry-run stdin of nft:");
    expect(dry.out).toContain("203.0.113.7");
    expect(dry.out).toMatch(/^OK: nftables \(nftables\), jail action-test: 4 steps in .* \(dry run\)$/m);
    expect(cli("action-test", "hostsdeny", "-c", conf, "--ban", "203.0.113.7").code).toBe(2);
  });

  test("usage errors", () => {
    const conf = config();
    expect(cli("action-test", "nosuch", "-c", conf, "--ban", "203.0.113.7")).toMatchObject({ code: 2 });
    expect(cli("action-test", "nosuch", "-c", conf, "--ban", "203.0.113.7").err).toContain(
      `unknown action "nosuch": no [actions.nosuch] in ${conf}, not a built-in`,
    );
    expect(cli("action-test", "chat", "-c", conf).err).toContain("give --ban IP");
    expect(cli("action-test", "chat", "-c", conf, "--ban", "300.1.1.1").err).toContain(
      '--ban: "300.1.1.1" is not an IP address or CIDR',
    );
  });
});

const firewall = requireFirewall("action-test with nftables", ["nft"], { test });
describe.skipIf(!firewall)("action-test on a real firewall (in a network namespace)", () => {
  test("nftables --yes really adds the address; a second run removes it and tears down", async () => {
    const ns = await Netns.create();
    try {
      const conf = config();
      const inNs = (...args: string[]) => cliAsyncIn(["ip", "netns", "exec", ns.name], ...args);
      const add = await inNs(
        "action-test",
        "nftables",
        "-c",
        conf,
        "--ban",
        "203.0.113.7",
        "--yes",
        "--no-stop",
      );
      expect(add.err).toContain(
        "fail2ts: warning: action nftables (nftables) changes the nftables firewall for real",
      );
      expect(add.code).toBe(0);
      expect(await ns.out(["nft", "list", "ruleset"])).toContain("203.0.113.7");
      const del = await inNs("action-test", "nftables", "-c", conf, "--unban", "203.0.113.7", "--yes");
      expect(del.code).toBe(0);
      expect(del.out).toMatch(/^unban {2}ok/m);
      expect(await ns.out(["nft", "list", "ruleset"])).not.toContain("203.0.113.7");
    } finally {
      await ns.delete();
    }
  }, 20000);
});

describe("the published contract", () => {
  test("the examples type-check against types/fail2ts.d.ts (as an editor would)", () => {
    const r = Bun.spawnSync([join(ROOT, "node_modules", ".bin", "tsc"), "-p", EXAMPLES], {
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.stdout.toString() + r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  }, 60000);

  test("examples/actions/fail2ts.d.ts is the contract itself", () => {
    const a = readFileSync(join(EXAMPLES, "fail2ts.d.ts"), "utf8");
    expect(a).toBe(readFileSync(join(ROOT, "types", "fail2ts.d.ts"), "utf8"));
  });
});
