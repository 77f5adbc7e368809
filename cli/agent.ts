/**
 * `agent`: one murmur node you can run on any machine (the CLI's default
 * command):
 *
 *   deno task cli agent --name a --port 7000 --cookie s3cret
 *   deno task cli agent --name b --port 7001 --join 127.0.0.1:7000 --cookie s3cret
 *
 * Across hosts, listen on every interface and advertise the address the other
 * hosts reach this one at (a node that advertised 0.0.0.0 would make every
 * peer dial itself, so the node refuses to start without --advertise):
 *
 *   deno task cli agent --name a --host 0.0.0.0 --port 7000 --advertise 10.0.0.1:7000 --cookie s3cret
 *   deno task cli agent --name b --host 0.0.0.0 --port 7000 --advertise 10.0.0.2:7000 \
 *     --join 10.0.0.1:7000 --cookie s3cret
 *
 * `--join` targets that do not answer yet are tried again, with a backoff
 * capped at 5 s, until they do (a `join-retry` line each time with `--json`):
 * start order does not matter. `--dns NAME` polls a DNS name for members
 * (`SRV` records by default, or `--dns-type A --dns-port 7000`; a Kubernetes
 * headless service), `--dns-server IP:PORT` naming another server.
 * `--members-file FILE` (one `host:port` per line) is applied with
 * `updateMembers` at start and whenever the file changes. SIGTERM and
 * SIGINT leave the cluster before the process exits.
 *
 * `--dashboard PORT` serves a live dashboard (members, traffic, broadcast
 * trees, groups) on 127.0.0.1:PORT; `--dashboard-host 0.0.0.0` exposes it,
 * with the token from `--dashboard-token` or MURMUR_DASHBOARD_TOKEN (required
 * off loopback). From another shell, `status` prints the node's state:
 *
 *   deno task cli agent --name a --port 7000 --cookie s3cret --dashboard 8080
 *   deno task cli status http://127.0.0.1:8080/
 *
 * The dashboard port also serves the control API that the serf-style
 * commands use (`members`, `join`, `leave`, `force-leave`, `tags`, `monitor`,
 * `event`, with `--addr http://127.0.0.1:8080/`). `--tag NAME=VALUE`
 * (repeatable) sets the node's tags.
 *
 * TLS between nodes: `--tls-cert FILE --tls-key FILE [--tls-ca FILE]...`.
 * Metrics: run with `OTEL_DENO=true` (and OTEL_EXPORTER_OTLP_ENDPOINT) to
 * export murmur's OpenTelemetry metrics.
 *
 * `--membership hyparview` runs HyParView partial views (for large clusters:
 * a node connects to a few neighbours only; process groups and presence then
 * travel through the overlay); `--shuffle-interval-ms` sets how often a node
 * trades passive members with a random one (default 10000).
 *
 * It logs membership changes, answers `echo` and `info` calls, and with
 * `--json` prints one JSON object per line (used by the demo and the tests).
 * With `--control` it also reads one JSON command per line on stdin
 * (`{ "id": 1, "op": "call", "to": "b", "endpoint": "echo", "msg": "hi" }`,
 * `{ "id": 2, "op": "members" }`, `{ "id": 3, "op": "stats" }`,
 * `{ "id": 4, "op": "join", "target": "127.0.0.1:7000" }`,
 * `{ "id": 5, "op": "track", "topic": "t", "key": "k" }`,
 * `{ "id": 6, "op": "presences", "topic": "t" }`) and answers
 * with a `result` line carrying the same id.
 *
 * @module
 */

import { parseArgs } from "./_args.ts";
// Each part from its own module, not the root's: an agent loads what it runs (the dashboard's
// server only with --dashboard), which an idle process's memory shows.
import { createConsoleLogger, type LogLevel, Node, parseAddress } from "../membership/mod.ts";
import { Plumtree, UserEvents } from "../broadcast/mod.ts";
import { Presence, ProcessGroups } from "../publisher/mod.ts";
import { ChatLog } from "./chat.ts";
import { shareSummary } from "../dashboard/cluster.ts";
import type { Dashboard } from "../dashboard/server.ts";
import { COMMANDS_USAGE } from "./commands.ts";
import type { Metrics } from "../metrics/mod.ts";

/** The longest wait between two attempts of a `--join` target. */
const JOIN_RETRY_MAX_MS = 5000;

/** The agent's usage, printed by `--help` and with an error. */
const AGENT_USAGE =
  "usage: murmur agent --name NAME --cookie SECRET [--host 127.0.0.1] [--port 0] " +
  "[--advertise HOST:PORT]... [--join HOST:PORT]... " +
  "[--membership full-mesh|hyparview [--shuffle-interval-ms 10000]] " +
  "[--log-level info] [--dashboard PORT [--dashboard-host H] [--dashboard-token T]] " +
  "[--tls-cert FILE --tls-key FILE [--tls-ca FILE]...] " +
  "[--dns NAME [--dns-type SRV|A|AAAA] [--dns-port PORT] [--dns-server IP:PORT]] " +
  "[--members-file FILE] [--tag NAME=VALUE]... [--json] " +
  "[--control]\n" +
  "       murmur status [--json] DASHBOARD_URL\n" + COMMANDS_USAGE.replace(/^usage: /, "       ");

/**
 * Checks agent command-line `args` without starting anything: throws a
 * `TypeError` naming an unknown option or one without its value (used to
 * check deployment files against the flags).
 *
 * @example
 * ```ts
 * import { checkAgentArgs } from "./agent.ts";
 * checkAgentArgs(["--name", "a", "--port", "7000"]); // fine
 * ```
 */
export function checkAgentArgs(args: string[]): void {
  parseAgentArgs(args);
}

/** The agent's options parsed (the defaults read the environment); throws on an unknown one. */
function parseAgentArgs(args: string[]) {
  return parseArgs({
    args,
    options: {
      name: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      advertise: { type: "string", multiple: true, default: [] },
      join: { type: "string", multiple: true, default: [] },
      cookie: { type: "string", default: Deno.env.get("MURMUR_COOKIE") ?? "" },
      "failure-timeout-ms": { type: "string", default: "2000" },
      "ping-interval-ms": { type: "string", default: "300" },
      "dead-member-remove-ms": { type: "string", default: "60000" },
      "log-level": { type: "string", default: "info" },
      membership: { type: "string", default: "full-mesh" },
      "shuffle-interval-ms": { type: "string" },
      "lazy-tick-ms": { type: "string", default: "200" },
      json: { type: "boolean", default: false },
      control: { type: "boolean", default: false },
      dashboard: { type: "string" },
      "dashboard-host": { type: "string", default: "127.0.0.1" },
      "dashboard-token": { type: "string", default: Deno.env.get("MURMUR_DASHBOARD_TOKEN") },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-ca": { type: "string", multiple: true, default: [] },
      dns: { type: "string" },
      "dns-type": { type: "string" },
      "dns-port": { type: "string" },
      "dns-server": { type: "string" },
      "members-file": { type: "string" },
      tag: { type: "string", multiple: true, default: [] },
    },
  });
}

/**
 * Runs the agent with the command-line `args` (see the module documentation);
 * resolves once it is up. On SIGTERM or SIGINT it leaves the cluster (the
 * others see it `left` at once), closes and exits.
 *
 * @example
 * ```ts ignore
 * import { agent } from "@murmur/murmur/cli";
 * await agent(["--name", "a", "--port", "7000", "--cookie", "s3cret"]);
 * ```
 */
export async function agent(args: string[]): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(AGENT_USAGE);
    Deno.exit(0);
  }
  let values: ReturnType<typeof parseAgentArgs>["values"];
  try {
    values = parseAgentArgs(args).values;
  } catch (e) {
    // An unknown option, or one without its value: named, with the usage.
    console.error(`murmur agent: ${(e as Error).message}\n${AGENT_USAGE}`);
    Deno.exit(2);
  }
  const USAGE = AGENT_USAGE;

  if (!values.name || !values.cookie) {
    console.error(USAGE);
    Deno.exit(2);
  }
  const logLevel = values["log-level"] as LogLevel;
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    console.error(`--log-level must be debug, info, warn or error\n${USAGE}`);
    Deno.exit(2);
  }

  if (values.membership !== "full-mesh" && values.membership !== "hyparview") {
    console.error(`--membership must be full-mesh or hyparview\n${USAGE}`);
    Deno.exit(2);
  }
  const hyparview = values.membership === "hyparview";
  const shuffleMs = values["shuffle-interval-ms"];
  if (shuffleMs !== undefined && !(hyparview && Number(shuffleMs) > 0)) {
    console.error(
      `--shuffle-interval-ms must be a positive number of ms, with --membership hyparview, got ${
        JSON.stringify(shuffleMs)
      }\n${USAGE}`,
    );
    Deno.exit(2);
  }
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
    console.error(`--tls-cert and --tls-key go together\n${USAGE}`);
    Deno.exit(2);
  }
  const dashboardPort = values.dashboard === undefined ? undefined : Number(values.dashboard);
  if (dashboardPort !== undefined && !(Number.isInteger(dashboardPort) && dashboardPort >= 0)) {
    console.error(`--dashboard must be a port number, got ${values.dashboard}\n${USAGE}`);
    Deno.exit(2);
  }
  const tags: Record<string, string> = {};
  for (const t of values.tag) {
    const i = t.indexOf("=");
    if (i <= 0) {
      console.error(`--tag must be NAME=VALUE, got ${JSON.stringify(t)}\n${USAGE}`);
      Deno.exit(2);
    }
    tags[t.slice(0, i)] = t.slice(i + 1);
  }
  const tls = values["tls-cert"] === undefined ? undefined : {
    certFile: values["tls-cert"],
    keyFile: values["tls-key"]!,
    ...(values["tls-ca"].length > 0
      ? { caCerts: values["tls-ca"].map((f) => Deno.readTextFileSync(f)) }
      : {}),
  };

  const started = Date.now();
  function emit(event: string, fields: Record<string, unknown> = {}): void {
    if (values.json) console.log(JSON.stringify({ t: Date.now(), event, ...fields }));
    else {
      const extra = Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
      console.log(
        `${((Date.now() - started) / 1000).toFixed(3)}s ${values.name} ${event} ${extra}`,
      );
    }
  }

  const console_ = createConsoleLogger({ level: logLevel });
  const node = await Node.start({
    name: values.name,
    cookie: values.cookie,
    listen: { hostname: values.host, port: Number(values.port) },
    ...(values.advertise.length > 0 ? { advertise: values.advertise.map(parseAddress) } : {}),
    failureTimeoutMs: Number(values["failure-timeout-ms"]),
    pingIntervalMs: Number(values["ping-interval-ms"]),
    deadMemberRemoveMs: Number(values["dead-member-remove-ms"]),
    reconnectBackoffMaxMs: 1000,
    membership: hyparview
      ? {
        strategy: "hyparview",
        ...(shuffleMs === undefined ? {} : { shuffleIntervalMs: Number(shuffleMs) }),
      }
      : { strategy: "full-mesh" },
    ...(values.tag.length > 0 ? { tags } : {}),
    ...(tls === undefined ? {} : { tls }),
    ...(values.dns === undefined ? {} : {
      discovery: {
        dns: {
          name: values.dns,
          ...(values["dns-type"] ? { type: values["dns-type"] as "A" | "AAAA" | "SRV" } : {}),
          ...(values["dns-port"] ? { port: Number(values["dns-port"]) } : {}),
          ...(values["dns-server"]
            ? {
              nameServer: {
                ipAddr: parseAddress(values["dns-server"]).hostname,
                port: parseAddress(values["dns-server"]).port,
              },
            }
            : {}),
        },
      },
    }),
    logger: (r) => {
      if (!values.json) return console_(r);
      if (r.level === "warn" || r.level === "error") {
        emit("log", { level: r.level, msg: r.msg, peer: r.peer, error: String(r.error ?? "") });
      }
    },
  }).catch((e) => {
    console.error(`murmur agent: ${(e as Error).message}`);
    Deno.exit(2);
  });
  node.register("echo", (msg) => msg);

  // Plumtree broadcast with a chat handler: `chat.say` broadcasts, `chat.stats` reports.
  const chat = new ChatLog();
  // User events (`murmur event NAME PAYLOAD`), reported as `user-event` lines.
  const events = new UserEvents(node.name);
  events.onEvent((e) => emit("user-event", { name: e.name, payload: e.payload, origin: e.origin }));
  const plumtree = await Plumtree.start(node, {
    handlers: [chat, events],
    lazyTickMs: Number(values["lazy-tick-ms"]),
    logger: () => {},
  });
  node.register("chat.say", async (msg) => {
    const { count, tag } = msg as { count: number; tag: string };
    for (let i = 0; i < count; i++) {
      await plumtree.broadcast({ id: `${node.name}/${tag}/${i}`, text: `hello ${i}` }, "chat");
    }
    return count;
  });
  node.register(
    "chat.stats",
    () => ({ received: chat.lines.size, delivered: chat.delivered, plumtree: plumtree.stats() }),
  );
  // Process groups and presence: `pg.join` registers a local member endpoint and joins it to a
  // group; `presence.track` tracks a key; `groups` reports what this node sees.
  const publishers = await startPublishers();
  async function startPublishers(): Promise<[ProcessGroups, Presence]> {
    const pg = await ProcessGroups.start(node, "demo-pg");
    const presence = await Presence.start(node, "demo-presence", { downGraceMs: 1000 });
    node.register("pg.join", async (msg) => {
      const { group, id } = msg as { group: string; id: string };
      if (!node.registered(id)) node.register(id, (m) => m);
      await pg.join(group, id);
      return pg.getMembers(group);
    });
    node.register("presence.track", async (msg) => {
      const { topic, key, meta } = msg as { topic: string; key: string; meta: unknown };
      await presence.track(topic, key, meta);
      return presence.list(topic);
    });
    node.register("groups", (msg) => {
      const { group, topic } = msg as { group: string; topic: string };
      return {
        groups: pg.whichGroups(),
        members: pg.getMembers(group),
        presences: presence.list(topic),
      };
    });
    return [pg, presence];
  }
  node.register(
    "info",
    () => ({ name: node.name, incarnation: node.spec.incarnation, pid: Deno.pid }),
  );

  let lastMembers = "";
  function reportMembers(): void {
    const m = node.members().join(",");
    if (m !== lastMembers) {
      lastMembers = m;
      emit("members", { members: node.members() });
    }
  }
  node.onUp("*", (peer) => {
    emit("up", { peer, incarnation: node.memberSpec(peer)?.incarnation });
    reportMembers();
  });
  node.onDown("*", (peer) => {
    emit("down", { peer });
    reportMembers();
  });
  // Membership changes are reported as they happen (coalesced per task); under HyParView a
  // slow poll catches the rest (its passive view changes without events). A full mesh's
  // changes all come as events: its idle agent does not wake for the poll.
  let reportQueued = false;
  node.onMemberChange(() => {
    if (reportQueued) return;
    reportQueued = true;
    queueMicrotask(() => {
      reportQueued = false;
      reportMembers();
    });
  });
  const poll = node.strategy === "hyparview" ? setInterval(reportMembers, 1000) : undefined;

  // OpenTelemetry metrics, only under Deno's built-in exporter (OTEL_DENO=true). Their module is
  // loaded only then: its npm package would start Deno's Node compatibility layer (~6 MiB).
  const parts = {
    node,
    plumtree,
    publishers: { pg: publishers[0], presence: publishers[1] },
  };
  const otel = Deno.env.get("OTEL_DENO");
  const metrics: Pick<Metrics, "enabled" | "close"> = otel === "true" || otel === "1"
    ? (await import("../metrics/mod.ts")).instrumentMetrics(parts)
    : { enabled: false, close: () => Promise.resolve() };
  // Every agent answers cluster-wide dashboards, with or without one of its own.
  const offSummary = shareSummary(parts);
  let dashboard: Dashboard | undefined;
  if (dashboardPort !== undefined) {
    try {
      const { serveDashboard } = await import("../dashboard/server.ts");
      dashboard = await serveDashboard(parts, {
        hostname: values["dashboard-host"],
        port: dashboardPort,
        ...(values["dashboard-token"] ? { token: values["dashboard-token"] } : {}),
        // The serf-style commands talk to it; `leave` is a graceful stop, as on SIGTERM.
        control: { events, leave: () => Promise.resolve(Deno.kill(Deno.pid, "SIGTERM")) },
      });
    } catch (e) {
      console.error(`murmur agent: dashboard: ${(e as Error).message}`);
      await node.close();
      Deno.exit(2);
    }
  }

  // SIGTERM and SIGINT: leave (the others see `left` at once), close, exit. Installed before
  // "ready": a supervisor may stop the process as soon as it is up.
  node.leaveOnSignals({
    drainMs: 5000,
    beforeClose: async () => {
      clearInterval(poll);
      emit("stopping");
      await dashboard?.close();
      offSummary();
      await metrics.close();
      await plumtree.close();
      for (const p of publishers) await p.close();
    },
  });

  emit("ready", {
    name: node.name,
    port: node.listenAddr.port,
    advertised: node.spec.listenAddrs,
    incarnation: node.spec.incarnation,
    pid: Deno.pid,
    ...(dashboard ? { dashboard: dashboard.url } : {}),
    metrics: metrics.enabled,
  });

  // --members-file: the member list from outside (one host:port per line, # comments), applied
  // with updateMembers at start and whenever the file changes.
  const membersFile = values["members-file"];
  if (membersFile !== undefined) {
    const apply = async () => {
      let text: string;
      try {
        text = await Deno.readTextFile(membersFile);
      } catch (e) {
        emit("members-file", { error: `cannot read ${membersFile}: ${(e as Error).message}` });
        return;
      }
      const targets = text.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
      try {
        emit("members-file", { ...(await node.updateMembers(targets)) });
      } catch (e) {
        emit("members-file", { error: (e as Error).message });
      }
    };
    // Watching starts before the first read: a change made right after it is not missed.
    const watcher = Deno.watchFs(membersFile);
    await apply();
    void (async () => {
      let pending: ReturnType<typeof setTimeout> | undefined;
      for await (const _ of watcher) {
        clearTimeout(pending); // an editor writes in several steps: apply once they settle
        pending = setTimeout(() => void apply(), 100);
      }
    })().catch(() => {});
  }

  // --join: each target retried until joined (a seed may start later: compose, Kubernetes),
  // with a capped exponential backoff and jitter; in the background (control answers meanwhile).
  void (async () => {
    for (const target of values.join) {
      for (let attempt = 1;; attempt++) {
        try {
          await node.join(target);
          emit("joined", { target, attempt });
          break;
        } catch (e) {
          const step = Math.min(JOIN_RETRY_MAX_MS, 250 * 2 ** Math.min(attempt - 1, 10));
          const nextMs = Math.round(step * (0.5 + Math.random() / 2));
          emit("join-retry", { target, attempt, error: String(e), nextMs });
          if (!values.json) {
            console.error(`murmur agent: join ${target}: ${e}; again in ${nextMs} ms`);
          }
          await new Promise((r) => setTimeout(r, nextMs));
        }
      }
    }
  })().catch(() => {}); // the node closed

  /** `--control`: one JSON command per line on stdin, one `result` line per command. */
  async function control(): Promise<void> {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of Deno.stdin.readable) {
      buf += dec.decode(chunk, { stream: true });
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === "") continue;
        let cmd: { id?: unknown; op?: unknown; to?: string; endpoint?: string; msg?: unknown };
        try {
          cmd = JSON.parse(line);
        } catch {
          emit("result", { ok: false, error: "not JSON" });
          continue;
        }
        const id = cmd.id;
        try {
          let value: unknown;
          if (cmd.op === "call") {
            value = await node.call(String(cmd.to), String(cmd.endpoint), cmd.msg ?? null);
          } else if (cmd.op === "members") {
            value = {
              members: node.members(),
              connected: node.connectedMembers(),
              passive: node.passiveMembers(),
            };
          } else if (cmd.op === "stats") value = node.stats();
          else if (cmd.op === "track" || cmd.op === "presences") {
            const { topic, key } = cmd as { topic?: unknown; key?: unknown };
            if (typeof topic !== "string") throw new TypeError("topic must be a string");
            if (cmd.op === "track") {
              if (typeof key !== "string") throw new TypeError("key must be a string");
              await publishers[1].track(topic, key, null);
            }
            value = Object.keys(publishers[1].list(topic)).sort();
          } else if (cmd.op === "join") {
            value = await node.join(String((cmd as { target?: unknown }).target));
          } else throw new TypeError(`unknown op ${JSON.stringify(cmd.op)}`);
          emit("result", { id, ok: true, value });
        } catch (e) {
          emit("result", { id, ok: false, error: String(e) });
        }
      }
    }
  }
  if (values.control) void control();
}
