// The dashboard's HTTP/1.1 server, on its own accept loop: an observer must
// never take its node down. `Deno.serve` died of "Too many open files" when a
// thousand idle connections reached the dashboard port under `ulimit -n 1024`
// (its accept loop's error ends the process). Here: at most `connectionsMax`
// connections (more are closed at once), a request head within
// `headerTimeoutMs` or the connection is closed, accept errors (EMFILE,
// ENFILE) back off and log once per interval. One request per connection
// (`connection: close`): the page, the JSON snapshot and the event stream need
// no more. Module-private: `serveDashboard` uses it.

import type { Logger } from "../base/logger.ts";

/** Largest request head (request line and headers), in bytes. */
export const HEAD_BYTES_MAX = 16 * 1024;
/** At most one "accept failed" warning per this many ms. */
const ACCEPT_LOG_MS = 5000;

export interface HttpOptions {
  hostname: string;
  port: number;
  connectionsMax: number;
  headerTimeoutMs: number;
  log: Logger;
  node: string;
}

export interface HttpServer {
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  readonly connections: number;
  close(): Promise<void>;
}

const enc = new TextEncoder();
const REASONS: Record<number, string> = {
  200: "OK",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  400: "Bad Request",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** Largest request body (control commands are small JSON), in bytes. */
export const BODY_BYTES_MAX = 64 * 1024;

/**
 * Reads a request head and its body (by `content-length`, at most
 * {@linkcode BODY_BYTES_MAX}); undefined when the peer sent none in time or
 * too much. The deadline covers both.
 */
async function readRequest(
  conn: Deno.Conn,
  timeoutMs: number,
): Promise<{ head: string; body: Uint8Array } | undefined> {
  let buf = new Uint8Array(HEAD_BYTES_MAX);
  let n = 0;
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    let headEnd = -1;
    while (headEnd < 0) {
      if (n === buf.length) return undefined;
      const r = await conn.read(buf.subarray(n));
      if (r === null) return undefined;
      const from = Math.max(0, n - 3);
      n += r;
      for (let i = from; i + 3 < n; i++) {
        if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) {
          headEnd = i;
          break;
        }
      }
    }
    const head = new TextDecoder().decode(buf.subarray(0, headEnd));
    const length = Number(head.match(/\r\ncontent-length:\s*(\d+)/i)?.[1] ?? 0);
    if (!(length <= BODY_BYTES_MAX)) return undefined;
    const start = headEnd + 4;
    if (start + length > buf.length) {
      const bigger = new Uint8Array(start + length);
      bigger.set(buf.subarray(0, n));
      buf = bigger;
    }
    while (n < start + length) {
      const r = await conn.read(buf.subarray(n, start + length));
      if (r === null) return undefined;
      n += r;
    }
    return { head, body: buf.slice(start, start + length) as Uint8Array<ArrayBuffer> };
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function parse(head: string, body: Uint8Array, host: string): Request | undefined {
  const [line, ...rest] = head.split("\r\n");
  const m = line?.match(/^([A-Z]+) (\S+) HTTP\/1\.[01]$/);
  if (m === undefined || m === null) return undefined;
  const headers = new Headers();
  for (const h of rest) {
    const i = h.indexOf(":");
    if (i <= 0) return undefined;
    try {
      headers.append(h.slice(0, i).trim(), h.slice(i + 1).trim());
    } catch {
      return undefined;
    }
  }
  const target = m[2]!;
  if (!target.startsWith("/")) return undefined;
  try {
    const method = m[1]!;
    return new Request(`http://${host}${target}`, {
      method,
      headers,
      ...(method === "GET" || method === "HEAD" ? {} : { body: body as Uint8Array<ArrayBuffer> }),
    });
  } catch {
    return undefined;
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** Writes `res` (status, headers, body until its end) and closes nothing. */
async function respond(conn: Deno.Conn, res: Response): Promise<void> {
  const stream = res.headers.get("content-type") === "text/event-stream";
  const body = stream ? undefined : new Uint8Array(await res.arrayBuffer());
  let head = `HTTP/1.1 ${res.status} ${REASONS[res.status] ?? "Status"}\r\n`;
  for (const [k, v] of res.headers) head += `${k}: ${v}\r\n`;
  if (body !== undefined) head += `content-length: ${body.length}\r\n`;
  head += "connection: close\r\n\r\n";
  await writeAll(conn, enc.encode(head));
  if (body !== undefined) return writeAll(conn, body);
  const reader = res.body?.getReader();
  if (reader === undefined) return;
  // A stream writes only now and then: a client that hangs up is noticed by reading.
  void conn.read(new Uint8Array(1)).catch(() => null).then(() => reader.cancel().catch(() => {}));
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      await writeAll(conn, value);
    }
  } finally {
    await reader.cancel().catch(() => {}); // a client gone: the stream's slot comes back
  }
}

/** Serves `handler` until `close()`. */
export function serveHttp(
  o: HttpOptions,
  handler: (req: Request) => Promise<Response>,
): HttpServer {
  const listener = Deno.listen({ hostname: o.hostname, port: o.port, transport: "tcp" });
  const addr = listener.addr as Deno.NetAddr;
  const host = `${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let closed = false;
  let lastLog = -Infinity, suppressed = 0;
  const log = (level: "warn" | "debug", msg: string, error?: unknown) =>
    o.log({ level, node: o.node, msg, ...(error === undefined ? {} : { error }) });

  const serve = async (conn: Deno.Conn) => {
    try {
      const got = await readRequest(conn, o.headerTimeoutMs);
      if (got === undefined || closed) return;
      const req = parse(got.head, got.body, host);
      let res: Response;
      if (req === undefined) res = new Response("bad request\n", { status: 400 });
      else {
        try {
          res = await handler(req);
        } catch (e) {
          log("warn", "dashboard request failed", e);
          res = new Response("internal error\n", { status: 500 });
        }
      }
      await respond(conn, res);
    } catch {
      /* the client went away */
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };

  const loop = (async () => {
    let backoff = 10;
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        backoff = 10;
      } catch (e) {
        if (closed || e instanceof Deno.errors.BadResource) return;
        // Out of descriptors: wait, log at most once per interval.
        const now = performance.now();
        if (now - lastLog >= ACCEPT_LOG_MS) {
          const more = suppressed > 0 ? ` (${suppressed} more since the last warning)` : "";
          log("warn", `dashboard accept failed${more}; backing off`, e);
          lastLog = now;
          suppressed = 0;
        } else suppressed++;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(1000, backoff * 2);
        continue;
      }
      if (open.size >= o.connectionsMax) {
        log("debug", `dashboard connection refused (connectionsMax ${o.connectionsMax})`);
        conn.close();
        continue;
      }
      open.add(conn);
      const t = serve(conn);
      tasks.add(t);
      void t.finally(() => tasks.delete(t));
    }
  })();

  return {
    addr,
    get connections() {
      return open.size;
    },
    close: async () => {
      if (closed) return;
      closed = true;
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
      await Promise.all(tasks);
    },
  };
}
