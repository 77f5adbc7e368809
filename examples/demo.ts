/**
 * `deno task demo`: five murmur nodes as separate `deno` processes on
 * 127.0.0.1. Shows them converge, a call round trip, one node killed with
 * SIGKILL and seen down by the others, then restarted and seen up again with
 * its new incarnation. Broadcasts go through Plumtree: every node receives each
 * message once, and the tree settles (payload messages per delivery fall to
 * one). A process group and a presence list are replicated over the cluster,
 * and the killed node's members and presences leave them everywhere. Then a
 * durable counter on a file-backed Deno KV,
 * incremented by two processes one after the other: its value survives each
 * process (and each run of the demo). Prints a timeline and exits 0 by itself.
 *
 * The demo's own node serves the dashboard while the cluster runs and prints
 * its URL; `deno task demo --hold 60` keeps the cluster and the dashboard up
 * 60 s longer before stopping, to look at them.
 *
 * @module
 */

import {
  Node,
  type PgEvent,
  Plumtree,
  type PlumtreeServerStats,
  Presence,
  type PresenceDiff,
  ProcessGroups,
} from "../mod.ts";
import { ChatLog } from "../cli/chat.ts";
import { type Dashboard, type DashboardParts, serveDashboard } from "../dashboard/mod.ts";

const holdArg = Deno.args.indexOf("--hold");
const holdS = holdArg >= 0 ? Number(Deno.args[holdArg + 1]) : 0;
if (!(Number.isFinite(holdS) && holdS >= 0 && holdS <= 3600)) {
  console.error(
    "usage: demo.ts [--hold SECONDS] (0..3600: keep the cluster up that long at the end)",
  );
  Deno.exit(2);
}

const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(3).padStart(7)}s`;
function say(line: string): void {
  console.log(`${stamp()}  ${line}`);
}

type Event = Record<string, unknown> & { event: string };

class Proc {
  readonly name: string;
  readonly child: Deno.ChildProcess;
  readonly events: Event[] = [];
  #listeners: ((e: Event) => void)[] = [];
  readonly done: Promise<void>;

  constructor(name: string, join?: number) {
    this.name = name;
    const script = new URL("../cli/mod.ts", import.meta.url).pathname;
    const args = ["run", "--allow-net=127.0.0.1", "--allow-env", script, "--json", "--name", name];
    args.push("--cookie", "demo-cookie", "--failure-timeout-ms", "1500");
    if (join !== undefined) args.push("--join", `127.0.0.1:${join}`);
    this.child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" })
      .spawn();
    this.done = this.#pump();
  }

  async #pump(): Promise<void> {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of this.child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const e = JSON.parse(line) as Event;
          this.events.push(e);
          for (const l of this.#listeners) l(e);
        } catch { /* not an event line */ }
      }
    }
  }

  next(match: (e: Event) => boolean, what: string, timeoutMs = 10_000): Promise<Event> {
    const past = this.events.find(match);
    if (past) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const l = (e: Event) => {
        if (!match(e)) return;
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((x) => x !== l);
        resolve(e);
      };
      const timer = setTimeout(() => {
        this.#listeners = this.#listeners.filter((x) => x !== l);
        reject(new Error(`${this.name}: timed out waiting for ${what}`));
      }, timeoutMs);
      this.#listeners.push(l);
    });
  }

  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    try {
      this.child.kill(signal);
    } catch { /* already exited */ }
    await this.child.status;
    await this.done;
  }
}

const names = ["n1", "n2", "n3", "n4", "n5"];
const procs = new Map<string, Proc>();
const deadline = setTimeout(() => {
  console.error("demo: over 30 s, giving up");
  for (const p of procs.values()) p.child.kill("SIGKILL");
  Deno.exit(1);
}, 30_000 + holdS * 1000);

let observer: Node | undefined;
let observerTree: Plumtree | undefined;
let observerPg: ProcessGroups | undefined;
let observerPresence: Presence | undefined;
let dashboard: Dashboard | undefined;
try {
  say("starting 5 nodes as separate deno processes");
  const first = new Proc("n1");
  procs.set("n1", first);
  const seedPort = (await first.next((e) => e.event === "ready", "n1 ready")).port as number;
  say(`n1 listening on 127.0.0.1:${seedPort}`);
  for (const name of names.slice(1)) procs.set(name, new Proc(name, seedPort));
  const ready = await Promise.all(
    names.slice(1).map((n) => procs.get(n)!.next((e) => e.event === "ready", "ready")),
  );
  for (const [i, e] of ready.entries()) {
    say(`${names[i + 1]} listening on 127.0.0.1:${e.port} (pid ${e.pid})`);
  }

  // Convergence: every process reports the same 5 members.
  const full = (e: Event) => e.event === "members" && (e.members as string[]).length === 5;
  await Promise.all(names.map((n) => procs.get(n)!.next(full, "5 members")));
  say(`converged: every node sees [${names.join(", ")}]`);

  // The demo's own node joins as an observer and makes a call.
  observer = await Node.start({
    name: "observer",
    cookie: "demo-cookie",
    failureTimeoutMs: 1500,
    pingIntervalMs: 300,
    logger: () => {},
  });
  const obs = observer;
  const allUp = new Promise<void>((resolve) => {
    const check = () => obs.connectedMembers().length === 6 && (off(), resolve());
    const off = obs.onUp("*", check);
  });
  await observer.join(`127.0.0.1:${seedPort}`);
  await allUp;
  say(`observer (this process) joined via n1 and is connected to all 5`);
  // The dashboard reads `parts` at each refresh: Plumtree and the publishers show up once started.
  const parts: DashboardParts = { node: observer };
  dashboard = await serveDashboard(parts, { hostname: "127.0.0.1", port: 0 });
  say(`dashboard: ${dashboard.url} (live while the demo runs; --hold 60 keeps it up longer)`);
  const t = performance.now();
  const reply = await observer.call("n3", "echo", { hello: "from the demo" });
  say(
    `call observer -> n3 echo: ${JSON.stringify(reply)} in ${
      (performance.now() - t).toFixed(2)
    } ms`,
  );
  // Plumtree: n2 broadcasts twice 50 messages; every member (the observer too) gets each once.
  const chat = new ChatLog();
  observerTree = await Plumtree.start(observer, {
    handlers: [chat],
    lazyTickMs: 200,
    logger: () => {},
  });
  parts.plumtree = observerTree;
  type ChatStats = { received: number; delivered: number; plumtree: PlumtreeServerStats };
  const allStats = async (): Promise<ChatStats[]> => [
    ...await Promise.all(
      names.map((n) => observer!.call(n, "chat.stats", null) as Promise<ChatStats>),
    ),
    { received: chat.lines.size, delivered: chat.delivered, plumtree: observerTree!.stats() },
  ];
  const sum = (xs: ChatStats[], f: (s: PlumtreeServerStats) => number) =>
    xs.reduce((a, x) => a + f(x.plumtree), 0);
  for (const [round, tag] of [[1, "first"], [2, "second"]] as const) {
    const before = await allStats();
    await observer.call("n2", "chat.say", { count: 50, tag });
    let after = before;
    for (let i = 0; i < 200; i++) {
      after = await allStats();
      if (after.every((x) => x.received >= 50 * round)) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const payloads = sum(after, (s) => s.eager) - sum(before, (s) => s.eager);
    const deliveries = 50 * (after.length - 1);
    say(
      `broadcast round ${round}: n2 sent 50 messages; every one of the ${after.length} members received ` +
        `${after.map((x) => x.received - 50 * (round - 1)).join("/")}, each delivered once ` +
        `(${after.every((x) => x.delivered === x.received) ? "no duplicates" : "DUPLICATES"})`,
    );
    say(
      `  ${payloads} payload messages for ${deliveries} deliveries: RMR ${
        (payloads / deliveries - 1).toFixed(2)
      }; ` +
        `prunes ${sum(after, (s) => s.prune) - sum(before, (s) => s.prune)}, ` +
        `grafts ${sum(after, (s) => s.graft) - sum(before, (s) => s.graft)}, ` +
        `IHAVE ids ${sum(after, (s) => s.lazy) - sum(before, (s) => s.lazy)}` +
        (round === 1 ? " (the tree forms)" : " (the tree has settled)"),
    );
  }

  // Process groups and presence: every node puts one member in "workers" and one user in "lobby".
  observerPg = await ProcessGroups.start(observer, "demo-pg", { logger: () => {} });
  observerPresence = await Presence.start(observer, "demo-presence", {
    downGraceMs: 1000,
    logger: () => {},
  });
  parts.publishers = { "demo-pg": observerPg, "demo-presence": observerPresence };
  const pgEvents: PgEvent[] = [];
  const presenceDiffs: PresenceDiff[] = [];
  observerPg.monitor("workers", (e) => pgEvents.push(e));
  observerPresence.subscribe("lobby", (d) => presenceDiffs.push(d));
  for (const n of names) {
    await observer.call(n, "pg.join", { group: "workers", id: `worker-of-${n}` });
    await observer.call(n, "presence.track", { topic: "lobby", key: `user-${n}`, meta: { on: n } });
  }
  for (let i = 0; i < 200 && observerPg.getMembers("workers").length < 5; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const views = await Promise.all(
    names.map((n) =>
      observer!.call(n, "groups", { group: "workers", topic: "lobby" }) as Promise<
        { members: unknown[]; presences: object }
      >
    ),
  );
  say(
    `process group "workers" and presence "lobby" replicated; members/presences seen by n1..n5: ` +
      `${views.map((v) => `${v.members.length}/${Object.keys(v.presences).length}`).join(" ")}; ` +
      `here: ${observerPg.getMembers("workers").map((m) => m.id).join(", ")}`,
  );

  const info = await observer.call("n4", "info", null) as { incarnation: number; pid: number };
  say(`n4 is pid ${info.pid}, incarnation ${info.incarnation}`);

  // SIGKILL n4.
  const victim = procs.get("n4")!;
  const downs = ["n1", "n2", "n3", "n5"].map((n) =>
    procs.get(n)!.next((e) => e.event === "down" && e.peer === "n4", `${n} sees n4 down`).then(() =>
      n
    )
  );
  const killedAt = Date.now();
  say("SIGKILL n4");
  await victim.stop("SIGKILL");
  for (const d of downs) {
    const who = await d;
    say(`${who} sees n4 down (${Date.now() - killedAt} ms after the kill)`);
  }
  say(
    `members at n1 still include n4 (a crash is not a leave): [${observer.members().join(", ")}]`,
  );
  for (let i = 0; i < 300 && !pgEvents.some((e) => e.type === "leave"); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const pgLeave = pgEvents.find((e) => e.type === "leave");
  say(
    `"workers" lost ${pgLeave?.members.map((m) => m.id).join(", ")} (${
      Date.now() - killedAt
    } ms after the kill); ` +
      `${observerPg.getMembers("workers").length} members left`,
  );
  for (let i = 0; i < 300 && !presenceDiffs.some((d) => Object.keys(d.leaves).length > 0); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const left = presenceDiffs.find((d) => Object.keys(d.leaves).length > 0);
  say(
    `presence "lobby" reported ${Object.keys(left?.leaves ?? {}).join(", ")} gone ${
      Date.now() - killedAt
    } ms ` +
      `after the kill (its grace period is 1 s, so a short blip would not flap it)`,
  );

  // Restart n4: new process, new port, new incarnation.
  const ups = ["n1", "n2", "n3", "n5"].map((n) =>
    procs.get(n)!.next(
      (e) => e.event === "up" && e.peer === "n4" && (e.incarnation as number) > info.incarnation,
      `${n} sees the new n4`,
    ).then((e) => [n, e] as const)
  );
  const observerUp = new Promise<void>((resolve) => {
    const off = observer!.onUp("n4", () => (off(), resolve()));
  });
  say("restarting n4");
  const reborn = new Proc("n4", seedPort);
  procs.set("n4", reborn);
  const r = await reborn.next((e) => e.event === "ready", "n4 ready");
  say(`n4 is back on 127.0.0.1:${r.port} (pid ${r.pid}), incarnation ${r.incarnation}`);
  for (const u of ups) {
    const [who, e] = await u;
    say(`${who} sees n4 up again, incarnation ${e.incarnation} (was ${info.incarnation})`);
  }
  await observerUp;
  const spec = observer.memberSpec("n4");
  say(`stale spec replaced everywhere: n4 -> 127.0.0.1:${spec?.listenAddrs[0]?.port}`);
  const again = await observer.call("n4", "info", null) as { pid: number };
  say(`call observer -> n4 info: pid ${again.pid}`);
  if (holdS > 0) {
    say(`holding the cluster for ${holdS} s: ${dashboard.url}`);
    await new Promise((r) => setTimeout(r, holdS * 1000));
  }
} finally {
  say("stopping the cluster");
  await dashboard?.close();
  await observerPg?.close();
  await observerPresence?.close();
  await observerTree?.close();
  await observer?.close();
  await Promise.all([...procs.values()].map((p) => p.stop()));
}

// A durable counter whose state lives in a Deno KV file, not in any process.
const counterFile = `${Deno.env.get("TMPDIR") ?? "/tmp"}/murmur-demo-counter.sqlite`;
say(`durable counter in ${counterFile}`);
for (const run of [1, 2]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-read",
      "--allow-write",
      new URL("./durable_counter.ts", import.meta.url).pathname,
      "--path",
      counterFile,
      "--add",
      "5",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "{}";
  const e = JSON.parse(line) as { before: number; after: number; pid: number };
  say(
    `process ${run} (pid ${e.pid}) found the counter at ${e.before}, added 5, left it at ${e.after}, exited`,
  );
}
clearTimeout(deadline);
say("done (run the demo again: the counter goes on from where it is)");
