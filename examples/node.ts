/**
 * One murmur node you can run on any machine:
 *
 *   deno run --allow-net examples/node.ts --name a --port 7000 --cookie s3cret
 *   deno run --allow-net examples/node.ts --name b --port 7001 --join 127.0.0.1:7000 --cookie s3cret
 *
 * It logs membership changes, answers `echo` and `info` calls, and with
 * `--json` prints one JSON object per line (used by the demo and the tests).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Node, Plumtree, Presence, ProcessGroups } from "../mod.ts";
import { ChatLog } from "./chat.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    name: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    join: { type: "string", multiple: true, default: [] },
    cookie: { type: "string", default: Deno.env.get("MURMUR_COOKIE") ?? "" },
    "failure-timeout-ms": { type: "string", default: "2000" },
    "ping-interval-ms": { type: "string", default: "300" },
    json: { type: "boolean", default: false },
  },
});

if (!values.name || !values.cookie) {
  console.error(
    "usage: node.ts --name NAME --cookie SECRET [--host 127.0.0.1] [--port 0] [--join HOST:PORT]... [--json]",
  );
  Deno.exit(2);
}

const started = Date.now();
function emit(event: string, fields: Record<string, unknown> = {}): void {
  if (values.json) console.log(JSON.stringify({ t: Date.now(), event, ...fields }));
  else {
    const extra = Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
    console.log(`${((Date.now() - started) / 1000).toFixed(3)}s ${values.name} ${event} ${extra}`);
  }
}

const node = await Node.start({
  name: values.name,
  cookie: values.cookie,
  listen: { hostname: values.host, port: Number(values.port) },
  failureTimeoutMs: Number(values["failure-timeout-ms"]),
  pingIntervalMs: Number(values["ping-interval-ms"]),
  reconnectBackoffMaxMs: 1000,
  logger: (r) => {
    if (r.level === "warn" || r.level === "error") {
      emit("log", { level: r.level, msg: r.msg, peer: r.peer, error: String(r.error ?? "") });
    }
  },
});
node.register("echo", (msg) => msg);

// Plumtree broadcast with a chat handler: `chat.say` broadcasts, `chat.stats` reports.
const chat = new ChatLog();
const plumtree = await Plumtree.start(node, {
  handlers: [chat],
  lazyTickMs: 200,
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
const poll = setInterval(reportMembers, 200);

emit("ready", {
  name: node.name,
  port: node.spec.listenAddrs[0]?.port,
  incarnation: node.spec.incarnation,
  pid: Deno.pid,
});

for (const target of values.join) {
  for (let attempt = 1;; attempt++) {
    try {
      await node.join(target);
      emit("joined", { target });
      break;
    } catch (e) {
      if (attempt >= 20) {
        emit("join-failed", { target, error: String(e) });
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function shutdown(): Promise<void> {
  clearInterval(poll);
  emit("stopping");
  await plumtree.close();
  await pg.close();
  await presence.close();
  await node.close();
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", shutdown);
Deno.addSignalListener("SIGINT", shutdown);
