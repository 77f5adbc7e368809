/**
 * The dashboard server: one page, a Server-Sent Events stream of snapshots,
 * and the same snapshot as JSON at `/api/state`.
 *
 * @module
 */

import {
  type DashboardParts,
  type DashboardState,
  jsonSafe,
  RateHistory,
  snapshot,
} from "./state.ts";
import { page } from "./page.ts";
import type { TimerId } from "../base/clock.ts";
import { numberOption } from "../base/options.ts";
import { serveHttp } from "./_http.ts";
import { ControlApi, type ControlOptions } from "./control.ts";
import { type ClusterState, gatherCluster, type GatherOptions, shareSummary } from "./cluster.ts";

/** Options of {@linkcode serveDashboard}. */
export interface DashboardOptions {
  /**
   * Where to listen. Anything but loopback needs a `token`.
   *
   * @default `"127.0.0.1"`
   */
  hostname?: string;
  /**
   * Port (0: any free port).
   *
   * @default 0
   */
  port?: number;
  /**
   * A secret the page, its event stream and the JSON API check (`?token=` or
   * `Authorization: Bearer`). Required when not bound to loopback; at least 16 characters.
   */
  token?: string;
  /**
   * How often the page is refreshed (at least 50).
   *
   * @default 1000
   */
  intervalMs?: number;
  /**
   * Event streams open at once; more are answered 503.
   *
   * @default 16
   */
  clientsMax?: number;
  /**
   * Each event stream ends after this long (the page's EventSource
   * reconnects at once): a client that never reads holds a slot at most this
   * long, since the server cannot tell a reader from a full socket buffer.
   *
   * @default 30000
   */
  streamMaxMs?: number;
  /**
   * TCP connections open at once (each serves one request); more are closed
   * at once. Out of file descriptors, the dashboard backs off and logs: the
   * node never dies of its observer.
   *
   * @default 64
   */
  connectionsMax?: number;
  /**
   * A connection that sends no complete request head within this long is closed.
   *
   * @default 5000
   */
  headerTimeoutMs?: number;
  /**
   * The whole cluster on this page: every node's summary gathered each
   * interval while a page watches, and when the page or `/api/state` is asked
   * for a view older than an interval (bounds: see {@linkcode GatherOptions});
   * `false` shows this node only.
   *
   * @default `{}`
   */
  cluster?: GatherOptions | false;
  /**
   * Serves the control API beside the page (`/api/members`, `/api/monitor`,
   * `POST /api/join`, `/api/leave`, `/api/force-leave`, `/api/tags`,
   * `/api/event`: see {@linkcode ControlApi}); the token, when set, guards it
   * as it guards the page. Off by default.
   *
   * @default false
   */
  control?: ControlOptions | boolean;
}

/** A running dashboard. */
export interface Dashboard extends AsyncDisposable {
  /** The page's address (with the token, when one is set). */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** A snapshot now (what `/api/state` answers). */
  state(): Promise<DashboardState>;
  /** Stops serving: closes event streams and the listener. */
  close(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/;
const HEADERS = { "cache-control": "no-store", "x-content-type-options": "nosniff" };

function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ (y[i % Math.max(1, y.length)] ?? 0);
  return diff === 0;
}

function checkOptions(o: DashboardOptions): Required<Omit<DashboardOptions, "token">> & {
  token: string | undefined;
} {
  if (typeof o !== "object" || o === null) {
    throw new TypeError("dashboard options must be an object");
  }
  const hostname = o.hostname ?? "127.0.0.1";
  if (typeof hostname !== "string" || hostname === "") {
    throw new TypeError(`dashboard hostname must be a non-empty string, got ${String(hostname)}`);
  }
  const port = o.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`dashboard port must be an integer in 0..65535, got ${port}`);
  }
  const token = o.token;
  if (token !== undefined && (typeof token !== "string" || token.length < 16)) {
    throw new TypeError("dashboard token must be a string of at least 16 characters");
  }
  if (token === undefined && !LOOPBACK.test(hostname)) {
    throw new TypeError(
      `a dashboard bound to "${hostname}" (not loopback) needs a token: pass { token } ` +
        `(for example crypto.randomUUID()), or bind to 127.0.0.1`,
    );
  }
  const intervalMs = o.intervalMs ?? 1000;
  if (typeof intervalMs !== "number" || !(intervalMs >= 50) || !Number.isFinite(intervalMs)) {
    throw new RangeError(`dashboard intervalMs must be a number >= 50, got ${intervalMs}`);
  }
  const clientsMax = o.clientsMax ?? 16;
  if (!Number.isInteger(clientsMax) || clientsMax < 1) {
    throw new RangeError(`dashboard clientsMax must be an integer >= 1, got ${clientsMax}`);
  }
  const streamMaxMs = numberOption("dashboard streamMaxMs", o.streamMaxMs, 30_000, 100);
  const connectionsMax = numberOption("dashboard connectionsMax", o.connectionsMax, 64, 2);
  const headerTimeoutMs = numberOption("dashboard headerTimeoutMs", o.headerTimeoutMs, 5000, 10);
  const cluster = o.cluster ?? {};
  if (cluster !== false && (typeof cluster !== "object" || cluster === null)) {
    throw new TypeError("dashboard cluster must be false or gather options");
  }
  if (cluster !== false) {
    numberOption("dashboard cluster.fanOut", cluster.fanOut, 8);
    numberOption("dashboard cluster.timeoutMs", cluster.timeoutMs, 1000);
    numberOption("dashboard cluster.nodesMax", cluster.nodesMax, 64);
  }
  const control = o.control ?? false;
  if (typeof control !== "boolean" && (typeof control !== "object" || control === null)) {
    throw new TypeError("dashboard control must be a boolean or control options");
  }
  return {
    hostname,
    port,
    token,
    intervalMs,
    clientsMax,
    streamMaxMs,
    connectionsMax,
    headerTimeoutMs,
    cluster,
    control,
  };
}

/**
 * Serves a live dashboard of `parts` (a node and, optionally, its Plumtree
 * server, publishers and durable servers): members and their state, traffic
 * and its rates, each broadcast tree as this node sees it, publisher groups
 * and presence topics, durable queues. The page updates over Server-Sent
 * Events every `intervalMs` and at once when a member comes up or goes down;
 * `/api/state` answers the same snapshot as JSON. Binds to loopback unless
 * given a hostname and a token.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { serveDashboard } from "@murmur/murmur/dashboard";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using dash = await serveDashboard({ node });
 * const state = await (await fetch(new URL("api/state", dash.url))).json();
 * console.log(state.members[0].name); // a
 * ```
 */
export async function serveDashboard(
  parts: DashboardParts,
  options: DashboardOptions = {},
): Promise<Dashboard> {
  if (typeof parts !== "object" || parts === null || typeof parts.node?.memberInfo !== "function") {
    throw new TypeError(
      "serveDashboard needs { node } (a Node), and optionally plumtree, publishers, durable",
    );
  }
  const o = checkOptions(options);
  const { node } = parts;
  const clock = node.clock;
  const history = new RateHistory(60_000, Math.ceil(60_000 / o.intervalMs) + 2);
  const clients = new Set<ReadableStreamDefaultController<Uint8Array>>();
  /** Each stream's end (`streamMaxMs`). */
  const expiries = new Map<ReadableStreamDefaultController<Uint8Array>, TimerId>();
  const enc = new TextEncoder();
  let closed = false;
  let timer: TimerId | undefined;
  let soon: TimerId | undefined;
  let pushing: Promise<void> | undefined;
  let cluster: ClusterState | undefined;
  let gathering: Promise<void> | undefined;
  const offSummary = shareSummary(parts);
  const control = o.control === false
    ? undefined
    : new ControlApi(node, o.control === true ? {} : o.control);
  let clusterAt = -Infinity;
  /** A snapshot of this node with the last cluster view. */
  const withCluster = async (): Promise<DashboardState> => ({
    ...(await snapshot(parts, history)),
    ...(cluster === undefined ? {} : { cluster }),
  });
  const gather = () => {
    if (closed || o.cluster === false || gathering !== undefined) return gathering;
    return gathering = gatherCluster(parts, o.cluster).then((c) => {
      cluster = c;
      clusterAt = clock.now();
    }).catch(
      (e) => node.logger({ level: "debug", node: node.name, msg: "cluster view failed", error: e }),
    ).finally(() => gathering = undefined);
  };
  /** The page, the JSON API and `state()`: the cluster view gathered again when older than an interval. */
  const state = async (): Promise<DashboardState> => {
    if (clock.now() - clusterAt >= o.intervalMs) await gather();
    return withCluster();
  };

  const push = async () => {
    if (clients.size === 0) return;
    const chunk = enc.encode(
      `data: ${JSON.stringify(await withCluster(), jsonSafe)}\n\n`,
    );
    for (const c of clients) {
      // A client that does not read is dropped rather than buffered without bound.
      if ((c.desiredSize ?? 0) <= 0) {
        clients.delete(c);
        try {
          c.close();
        } catch { /* already closed */ }
        continue;
      }
      c.enqueue(chunk);
    }
  };
  const pushNow = () => {
    if (closed || pushing !== undefined) return;
    pushing = push().catch((e) =>
      node.logger({ level: "warn", node: node.name, msg: "dashboard snapshot failed", error: e })
    ).finally(() => pushing = undefined);
  };
  const tick = () => {
    if (closed) return;
    // One sample per interval, clients or not: rates and RMR over the last minute.
    history.add(clock.now(), node.stats(), parts.plumtree?.stats());
    // The cluster is asked only while a page watches (or when asked for): an idle
    // dashboard costs the other nodes nothing.
    if (clients.size > 0) void gather();
    pushNow();
    timer = clock.setTimeout(tick, o.intervalMs);
  };
  const pushSoon = () => {
    if (closed || soon !== undefined) return;
    soon = clock.setTimeout(() => {
      soon = undefined;
      pushNow();
    }, 50);
  };
  const offs = [
    node.onUp("*", pushSoon),
    node.onDown("*", pushSoon),
    node.onMemberChange(pushSoon),
  ];

  const authorized = (req: Request, url: URL) => {
    if (o.token === undefined) return true;
    const bearer = req.headers.get("authorization")?.match(/^Bearer (.+)$/)?.[1];
    return sameSecret(url.searchParams.get("token") ?? bearer ?? "", o.token);
  };

  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (!authorized(req, url)) return new Response("missing or wrong token\n", { status: 401 });
    const answered = await control?.route(req, url);
    if (answered !== undefined) return answered;
    if (req.method !== "GET") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
    }
    switch (url.pathname) {
      case "/":
        return new Response(page(await state()), {
          headers: {
            ...HEADERS,
            "content-type": "text/html; charset=utf-8",
            "content-security-policy":
              "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
          },
        });
      case "/api/state":
        return new Response(JSON.stringify(await state(), jsonSafe), {
          headers: { ...HEADERS, "content-type": "application/json" },
        });
      case "/events": {
        if (clients.size >= o.clientsMax) {
          return new Response(`too many event streams (clientsMax ${o.clientsMax})\n`, {
            status: 503,
          });
        }
        let me: ReadableStreamDefaultController<Uint8Array>;
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            me = c;
            clients.add(c);
            c.enqueue(enc.encode("retry: 1000\n\n"));
            // A bounded life: the slot comes back even from a client that never reads.
            expiries.set(
              c,
              clock.setTimeout(() => {
                expiries.delete(c);
                if (!clients.delete(c)) return;
                try {
                  c.close();
                } catch { /* already closed */ }
              }, o.streamMaxMs),
            );
          },
          cancel() {
            clients.delete(me);
            const t = expiries.get(me);
            if (t !== undefined) clock.clearTimeout(t);
            expiries.delete(me);
          },
        }, { highWaterMark: 8, size: () => 1 });
        pushSoon();
        return new Response(body, {
          headers: { ...HEADERS, "content-type": "text/event-stream" },
        });
      }
      default:
        return new Response("not found\n", { status: 404 });
    }
  };

  const server = serveHttp({
    hostname: o.hostname,
    port: o.port,
    connectionsMax: o.connectionsMax,
    headerTimeoutMs: o.headerTimeoutMs,
    log: node.logger,
    node: node.name,
  }, handler);
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}/` +
    (o.token === undefined ? "" : `?token=${encodeURIComponent(o.token)}`);
  await gather(); // the first page already shows the cluster
  tick();

  const close = async () => {
    if (closed) return;
    closed = true;
    for (const off of offs) off();
    offSummary();
    control?.close();
    if (timer !== undefined) clock.clearTimeout(timer);
    if (soon !== undefined) clock.clearTimeout(soon);
    for (const c of clients) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    clients.clear();
    for (const t of expiries.values()) clock.clearTimeout(t);
    expiries.clear();
    await pushing;
    await gathering;
    await server.close();
  };
  return {
    url,
    port: addr.port,
    state,
    close,
    [Symbol.asyncDispose]: close,
  };
}
