// Data publishers, process groups and presence over TCP; a rolling upgrade.

import assert from "node:assert/strict";
import {
  DataPublisher,
  type Node,
  type PgEvent,
  Presence,
  type PresenceDiff,
  ProcessGroups,
  type PublisherModule,
  type Subscriptions,
} from "../mod.ts";
import { converged, eventually, nextEvent, NodeProcess, startNode } from "./_helpers.ts";

async function cluster(n: number): Promise<Node[]> {
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) nodes.push(await startNode(`n${i}`));
  await Promise.all(nodes.slice(1).map((x) => x.join(nodes[0]!.spec)));
  await converged(nodes, nodes.map((x) => x.name));
  return nodes;
}

const viewOf = (pg: ProcessGroups, groups: string[]) =>
  JSON.stringify(groups.map((g) => pg.getMembers(g)));

Deno.test("process groups: 5 nodes over TCP see joins and leaves; unregistered members leave; no empty groups", async () => {
  const nodes = await cluster(5);
  const pgs: ProcessGroups[] = [];
  try {
    for (const x of nodes) pgs.push(await ProcessGroups.start(x, "workers"));
    const events: PgEvent[] = [];
    const { members: initial } = pgs[4]!.monitor("jobs", (e) => events.push(e));
    assert.deepEqual(initial, []);
    for (const [i, x] of nodes.entries()) {
      x.register(`w${i}`, () => i);
      await pgs[i]!.join("jobs", `w${i}`);
      if (i % 2 === 0) await pgs[i]!.join("even", [`w${i}`, `w${i}`]); // twice: two memberships
    }
    const all = nodes.map((x, i) => ({ node: x.name, id: `w${i}` }));
    await eventually(
      () => pgs.every((p) => JSON.stringify(p.getMembers("jobs")) === JSON.stringify(all)),
      "all joins",
    );
    assert.equal(pgs[1]!.getMembers("even").length, 6);
    assert.deepEqual(pgs[3]!.whichGroups(), ["even", "jobs"]);
    assert.deepEqual(pgs[3]!.whichLocalGroups(), ["jobs"]);
    assert.deepEqual(pgs[2]!.getLocalMembers("even"), ["w2", "w2"]);
    await eventually(() => events.length === 5, "the monitor saw every join");
    assert.ok(events.every((e) => e.type === "join" && e.group === "jobs"));

    // Leaving, and an endpoint that goes away, leave everywhere; empty groups vanish.
    assert.equal(await pgs[0]!.leave("even", ["w0", "w0"]), true);
    assert.equal(await pgs[0]!.leave("even", "w0"), false, "not a member any more");
    nodes[2]!.unregister("w2");
    await eventually(
      () =>
        pgs.every((p) => p.getMembers("even").length === 2 && p.getMembers("jobs").length === 4),
      "leaves everywhere",
    );
    await pgs[4]!.leave("even", ["w4", "w4"]);
    await eventually(
      () => pgs.every((p) => p.whichGroups().join() === "jobs"),
      "no empty group lingers",
    );
    await assert.rejects(() => pgs[1]!.join("jobs", "not-registered"), TypeError);
  } finally {
    for (const p of pgs) await p.close();
    for (const x of nodes) await x.close();
  }
});

Deno.test("process groups: a SIGKILLed node's members vanish everywhere and monitors are told", async () => {
  const nodes = await cluster(4);
  const pgs: ProcessGroups[] = [];
  const victim = new NodeProcess([
    "--name",
    "victim",
    "--join",
    `127.0.0.1:${nodes[0]!.spec.listenAddrs[0]!.port}`,
  ]);
  try {
    for (const x of nodes) pgs.push(await ProcessGroups.start(x, "demo-pg"));
    await victim.ready();
    await Promise.all(nodes.map((x) => nextEvent(x, "up", "victim", 15000).catch(() => 0)));
    await eventually(
      () => nodes.every((x) => x.connectedMembers().includes("victim")),
      "victim connected",
    );
    nodes[1]!.register("local", () => 1);
    await pgs[1]!.join("g", "local");
    await nodes[0]!.call("victim", "pg.join", { group: "g", id: "remote-1" });
    await nodes[0]!.call("victim", "pg.join", { group: "solo", id: "remote-2" });
    await eventually(
      () => pgs.every((p) => p.getMembers("g").length === 2 && p.whichGroups().includes("solo")),
      "joined",
    );
    const leaves: PgEvent[] = [];
    pgs[3]!.monitorScope((e) => e.type === "leave" && leaves.push(e));
    await victim.kill("SIGKILL");
    await eventually(
      () =>
        pgs.every((p) =>
          JSON.stringify(p.getMembers("g")) === JSON.stringify([{ node: "n1", id: "local" }])
        ),
      "the victim's members vanish",
    );
    assert.ok(
      pgs.every((p) => p.whichGroups().join() === "g"),
      "its group with no other member is gone",
    );
    assert.deepEqual(leaves.map((e) => e.group).sort(), ["g", "solo"]);
  } finally {
    await victim.kill();
    for (const p of pgs) await p.close();
    for (const x of nodes) await x.close();
  }
});

Deno.test("process groups and presence: a partition injected and healed converges to identical views", async () => {
  const nodes = await cluster(5);
  const pgs: ProcessGroups[] = [];
  const pres: Presence[] = [];
  try {
    for (const x of nodes) pgs.push(await ProcessGroups.start(x, "p"));
    for (const x of nodes) pres.push(await Presence.start(x, "p-presence"));
    for (const [i, x] of nodes.entries()) {
      x.register(`m${i}`, () => i);
      await pgs[i]!.join("g", `m${i}`);
      await pres[i]!.track("room", `user${i}`, { i });
    }
    await eventually(() => pgs.every((p) => p.getMembers("g").length === 5), "joined");
    // Cut {n0, n1} from {n2, n3, n4} (both sides inject), change things on both sides, heal.
    const refs = [nodes[0]!, nodes[1]!].map((x) => x.injectPartition(["n2", "n3", "n4"]));
    const refs2 = [nodes[2]!, nodes[3]!, nodes[4]!].map((x) => x.injectPartition(["n0", "n1"]));
    await eventually(() => nodes[0]!.connectedMembers().join() === "n0,n1", "partitioned", 5000);
    await eventually(
      () => pgs[0]!.getMembers("g").length === 2 && pgs[4]!.getMembers("g").length === 3,
      "each side sees its half",
    );
    await pgs[0]!.leave("g", "m0");
    nodes[3]!.register("late", () => 0);
    await pgs[3]!.join("g", "late");
    await pres[4]!.untrack("room", "user4");
    refs.forEach((r, i) => nodes[i]!.resolvePartition(r));
    refs2.forEach((r, i) => nodes[i + 2]!.resolvePartition(r));
    const want = ["n1/m1", "n2/m2", "n3/late", "n3/m3", "n4/m4"].join();
    await eventually(
      () => pgs.every((p) => p.getMembers("g").map((m) => `${m.node}/${m.id}`).join() === want),
      "identical group views",
      10_000,
    );
    await eventually(
      () =>
        pres.every((p) => Object.keys(p.list("room")).sort().join() === "user0,user1,user2,user3"),
      "identical presence",
      10_000,
    );
    const first = viewOf(pgs[0]!, ["g"]);
    assert.ok(pgs.every((p) => viewOf(p, ["g"]) === first));
  } finally {
    for (const p of [...pgs, ...pres]) await p.close();
    for (const x of nodes) await x.close();
  }
});

Deno.test("presence: a blip shorter than downGraceMs reports no leave; a longer one does", async () => {
  const nodes = await cluster(2);
  const [a, b] = nodes as [Node, Node];
  const pa = await Presence.start(a, "pr", { downGraceMs: 1500 });
  const pb = await Presence.start(b, "pr", { downGraceMs: 1500 });
  try {
    const diffs: PresenceDiff[] = [];
    pa.subscribe("lobby", (d) => diffs.push(d));
    await pb.track("lobby", "bob", { status: "online" });
    await eventually(() => pa.list("lobby").bob !== undefined, "bob visible");
    assert.equal(diffs.length, 1);
    // A short blip: b is down at a for less than the grace period.
    const down = nextEvent(a, "down", "n1", 3000);
    const ref = a.injectPartition("n1", { ttlMs: 900 });
    await down;
    await nextEvent(a, "up", "n1", 5000);
    await eventually(() => pa.publisher.peers().length === 1, "b rediscovered");
    assert.equal(a.resolvePartition(ref), false);
    assert.equal(diffs.length, 1, "no leave and no join for a blip");
    assert.ok(pa.list("lobby").bob);
    // A long one: the leave comes after the grace period.
    const down2 = nextEvent(a, "down", "n1", 3000);
    const ref2 = a.injectPartition("n1");
    const downAt = await down2;
    await eventually(() => diffs.length === 2, "the leave", 5000);
    assert.ok(Date.now() - downAt >= 1400, "not before the grace period");
    assert.deepEqual(Object.keys(diffs[1]!.leaves), ["bob"]);
    a.resolvePartition(ref2);
    await eventually(() => diffs.length === 3 && pa.list("lobby").bob !== undefined, "back", 5000);
  } finally {
    await pa.close();
    await pb.close();
    for (const x of nodes) await x.close();
  }
});

// --------------------------------------------------------------- rolling upgrade

// Version 1: a node publishes a set of tags (string[]). Version 2: tags with a weight.
type V1Local = string[];
type V2Local = { tag: string; weight: number }[];
type V1Update = { add: string[]; remove: string[] };
type V2Update = { add: { tag: string; weight: number }[]; remove: string[] };
type TagView = Map<string, Map<string, number>>; // node -> tag -> weight

const tagsOf = (data: V1Local | V2Local): { tag: string; weight: number }[] =>
  (data as (string | { tag: string; weight: number })[]).map((t) =>
    typeof t === "string" ? { tag: t, weight: 1 } : t
  );
const updOf = (u: V1Update | V2Update): V2Update => ({
  add: (u.add as (string | { tag: string; weight: number })[]).map((t) =>
    typeof t === "string" ? { tag: t, weight: 1 } : t
  ),
  remove: u.remove,
});

function tagModule(version: 1 | 2): PublisherModule<V2Local, V2Update, TagView, string, string[]> {
  return {
    version: () => version,
    initLocalData: () => [],
    initGlobalView: () => new Map(),
    // Newer versions read older data and updates (backward compatible).
    dataDiff: (o, n) => {
      const old = new Map(tagsOf(o).map((t) => [t.tag, t.weight])), now = tagsOf(n);
      return {
        add: now.filter((t) => old.get(t.tag) !== t.weight),
        remove: [...old.keys()].filter((k) => !now.some((t) => t.tag === k)),
      };
    },
    updateLocalData: (u, data) => {
      const up = updOf(u);
      const m = new Map(tagsOf(data).map((t) => [t.tag, t.weight]));
      for (const r of up.remove) m.delete(r);
      for (const a of up.add) m.set(a.tag, a.weight);
      return [...m].map(([tag, weight]) => ({ tag, weight }));
    },
    updateGlobalViewAndNotify: (node, u, subs: Subscriptions<string>, view) => {
      const up = updOf(u);
      const m = view.get(node) ?? new Map();
      for (const r of up.remove) m.delete(r);
      for (const a of up.add) m.set(a.tag, a.weight);
      if (m.size > 0) view.set(node, m);
      else view.delete(node);
      subs.notify("all", node);
      return view;
    },
    newSubscription: (_s, view) => [...view.keys()],
    stopGlobalView: () => {},
    // Translation happens on the sender: a v2 node speaks v1 to v1 peers.
    translateLocalData: (mine, peer, data) =>
      mine === 2 && peer === 1 ? tagsOf(data).map((t) => t.tag) as unknown as V2Local : data,
    translateUpdate: (mine, peer, u) =>
      mine === 2 && peer === 1
        // Removals travel as a plain message of the old protocol, to exercise translateMessage.
        ? { plainMessages: [{ v1add: updOf(u).add.map((t) => t.tag) }, { v1remove: u.remove }] }
        : u,
    translateMessage: (msg, view) => {
      const m = msg as { v1add?: string[]; v1remove?: string[]; from?: string };
      if (m.v1add) {
        return {
          type: "peerUpdate",
          node: m.from ?? "",
          update: { add: m.v1add as never, remove: [] },
          view,
        };
      }
      if (m.v1remove) {
        return {
          type: "peerUpdate",
          node: m.from ?? "",
          update: { add: [], remove: m.v1remove },
          view,
        };
      }
      return { type: "drop", view };
    },
  };
}

Deno.test("rolling upgrade: v1 and v2 nodes exchange through the translate callbacks, upgraded one by one", async () => {
  const nodes = await cluster(3);
  const pubs: DataPublisher<V2Local, V2Update, TagView, string, string[]>[] = [];
  // v1 peers read v2's plain messages through translateMessage; tag each with its sender.
  const start = (x: Node, v: 1 | 2) => {
    const mod = tagModule(v);
    const tm = mod.translateMessage!;
    mod.translateMessage = (msg, view) =>
      tm({ ...(msg as object), from: (msg as { from?: string }).from }, view);
    return DataPublisher.start(x, "tags", mod);
  };
  try {
    for (const x of nodes) pubs.push(await start(x, 1));
    const expect = (tags: Record<string, string>) =>
      eventually(
        () =>
          pubs.every((p) => {
            const got = Object.fromEntries(
              [...p.view].map(([n, m]) => [n, [...m.keys()].sort().join(",")]),
            );
            return JSON.stringify(got, Object.keys(got).sort()) ===
              JSON.stringify(tags, Object.keys(tags).sort());
          }),
        `views ${JSON.stringify(tags)}`,
      );
    await pubs[0]!.update({ add: ["a"] as never, remove: [] });
    await pubs[1]!.update({ add: ["b"] as never, remove: [] });
    await expect({ n0: "a", n1: "b" });
    // Upgrade n0, then n1, then n2; after each, write from an upgraded node and check every view.
    for (const i of [0, 1, 2]) {
      const before = pubs[i]!.localData;
      await pubs[i]!.close();
      pubs[i] = await start(nodes[i]!, 2);
      await pubs[i]!.update({ add: tagsOf(before), remove: [] });
      await pubs[i]!.update({ add: [{ tag: `v2-by-n${i}`, weight: 2 }], remove: [] });
    }
    await expect({ n0: "a,v2-by-n0", n1: "b,v2-by-n1", n2: "v2-by-n2" });
    await pubs[0]!.update({ add: [], remove: ["a"] });
    await expect({ n0: "v2-by-n0", n1: "b,v2-by-n1", n2: "v2-by-n2" });
    assert.ok(pubs.every((p) => p.peers().every((peer) => peer.version === 2)));
    assert.equal(pubs[2]!.view.get("n0")?.get("v2-by-n0"), 2, "weights survive between v2 nodes");
  } finally {
    for (const p of pubs) await p.close();
    for (const x of nodes) await x.close();
  }
});
