/**
 * A recording HTTP server on 127.0.0.1 (Bun.serve) for the webhook tests. `respond` decides each
 * reply (status and an optional delay), so tests can make the receiver fail or hang.
 */

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface HttpServer {
  url: string;
  requests: ReceivedRequest[];
  /** Status (and delay in ms) for the n-th request (0-based); default 204 at once. */
  respond: (n: number) => { status: number; delayMs?: number };
  close(): Promise<void>;
}

export function startHttp(): HttpServer {
  const requests: ReceivedRequest[] = [];
  const state: HttpServer = {
    url: "",
    requests,
    respond: () => ({ status: 204 }),
    close: async () => {
      await server.stop(true);
    },
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const n = requests.length;
      requests.push({
        method: req.method,
        path: new URL(req.url).pathname,
        headers: Object.fromEntries(req.headers),
        body: await req.text(),
      });
      const { status, delayMs } = state.respond(n);
      if (delayMs) await Bun.sleep(delayMs);
      return new Response(status === 204 ? null : "x", { status });
    },
  });
  state.url = `http://127.0.0.1:${server.port}`;
  return state;
}
