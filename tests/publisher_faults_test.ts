// Publishers against the seed's contracts and against names that are data:
// Object.prototype members as names, values that cannot replicate refused at
// the call, a throwing module callback that changes nothing, the `discover`
// form of translateMessage, and versions that are strings.

import assert from "node:assert/strict";
import { DataPublisher, type Node, Presence, ProcessGroups, type PublisherModule } from "../mod.ts";
import { converged, eventually, startNode } from "./_helpers.ts";

const NAMES = ["toString", "constructor", "__proto__", "hasOwnProperty", ""];

async function pair(): Promise<[Node, Node]> {
  const a = await startNode("a");
  const b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  return [a, b];
}

Deno.test("names are data: toString, constructor, __proto__, hasOwnProperty and '' as groups, topics and keys", async () => {
  const [a, b] = await pair();
  const pga = await ProcessGroups.start(a, "pg");
  const pgb = await ProcessGroups.start(b, "pg");
  const pra = await Presence.start(a, "pr");
  const prb = await Presence.start(b, "pr");
  try {
    for (const id of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
      a.register(id, () => id);
    }
    for (const g of NAMES) {
      await pga.join(g, ["toString", "constructor", "__proto__", "hasOwnProperty"]);
    }
    for (const t of NAMES) for (const k of NAMES) await pra.track(t, k, { t, k });
    const groupsView = (pg: ProcessGroups) => JSON.stringify(NAMES.map((g) => pg.getMembers(g)));
    await eventually(() => groupsView(pgb) === groupsView(pga), "b has a's groups");
    assert.deepEqual(pgb.whichGroups(), [...NAMES].sort());
    assert.equal(pgb.getMembers("__proto__").length, 4);
    assert.deepEqual(pga.getLocalMembers("toString"), [
      "__proto__",
      "constructor",
      "hasOwnProperty",
      "toString",
    ]);
    await eventually(
      () => NAMES.every((t) => JSON.stringify(prb.list(t)) === JSON.stringify(pra.list(t))),
      "b has a's presences",
    );
    assert.deepEqual(Object.keys(prb.list("constructor")).sort(), [...NAMES].sort());
    assert.deepEqual(prb.list("__proto__")["__proto__"], [{
      node: "a",
      meta: { t: "__proto__", k: "__proto__" },
    }]);
    // Unregistering an endpoint leaves every group, everywhere: no ghosts.
    a.unregister("toString");
    await eventually(
      () => NAMES.every((g) => pgb.getMembers(g).every((m) => m.id !== "toString")),
      "toString left everywhere",
    );
    assert.equal(groupsView(pgb), groupsView(pga));
    assert.equal(await prb.untrack("constructor", "toString"), false, "b never tracked it");
    assert.equal(await pra.untrack("constructor", "toString"), true);
    await eventually(() => !("toString" in prb.list("constructor")), "untracked everywhere");
  } finally {
    for (const p of [pga, pgb, pra, prb]) await p.close();
    await a.close();
    await b.close();
  }
});

Deno.test("what cannot replicate is refused at the call: Presence.track and DataPublisher.update", async () => {
  const [a, b] = await pair();
  const pra = await Presence.start(a, "pr");
  const prb = await Presence.start(b, "pr");
  try {
    await assert.rejects(
      () => pra.track("room", "ada", { status: "online", cb: () => {} }),
      (e: Error) => e instanceof TypeError && /meta\.cb is a function/.test(e.message),
    );
    assert.deepEqual(Object.keys(pra.list("room")), [], "nothing changed locally");
    await assert.rejects(
      () => pra.publisher.update([["track", "room", "x", Symbol("s")]]),
      /symbol/,
    );
    // Later changes still reach the peer.
    await pra.track("room", "ada", { status: "online" });
    await eventually(() => prb.list("room")["ada"]?.[0]?.node === "a", "ada reached b");
  } finally {
    await pra.close();
    await prb.close();
    await a.close();
    await b.close();
  }
});

type Bag = Map<string, number>;
/** A module whose callbacks change their input and then throw on a "poison" key. */
function fragile(
  where: "local" | "view",
): PublisherModule<Bag, [string, number][], Map<string, Bag>, string, null> {
  return {
    version: () => 1,
    initLocalData: () => new Map(),
    initGlobalView: () => new Map(),
    dataDiff: (o, n) => {
      const out: [string, number][] = [];
      for (const k of new Set([...o.keys(), ...n.keys()])) {
        out.push([k, (n.get(k) ?? 0) - (o.get(k) ?? 0)]);
      }
      return out;
    },
    updateLocalData: (u, data) => {
      for (const [k, d] of u) {
        data.set(k, (data.get(k) ?? 0) + d);
        if (where === "local" && k === "poison") throw new RangeError("poison in updateLocalData");
      }
      return data;
    },
    updateGlobalViewAndNotify: (node, u, _subs, view) => {
      let bag = view.get(node);
      if (bag === undefined) view.set(node, bag = new Map());
      for (const [k, d] of u) {
        bag.set(k, (bag.get(k) ?? 0) + d);
        if (where === "view" && k === "poison") throw new RangeError("poison in the view");
      }
      return view;
    },
    newSubscription: () => null,
    stopGlobalView: () => {},
    translateLocalData: (_m, _p, d) => d,
    translateUpdate: (_m, _p, u) => u,
  };
}

Deno.test("a module callback that throws in update leaves the local data and the view as they were", async () => {
  for (const where of ["local", "view"] as const) {
    const [a, b] = await pair();
    const pa = await DataPublisher.start(a, "f", fragile(where));
    const pb = await DataPublisher.start(b, "f", fragile(where));
    try {
      await pa.update([["x", 1]]);
      await eventually(() => pb.view.get("a")?.get("x") === 1, "x reached b");
      const snap = (p: DataPublisher<Bag, [string, number][], Map<string, Bag>, string, null>) =>
        JSON.stringify([[...p.localData], [...p.view].map(([n, m]) => [n, [...m]])]);
      const before = snap(pa);
      await assert.rejects(() => pa.update([["y", 2], ["poison", 1], ["z", 3]]), RangeError);
      assert.equal(snap(pa), before, `${where}: local data and view unchanged`);
      await pa.update([["y", 5]]);
      await eventually(() => pb.view.get("a")?.get("y") === 5, "a later update replicates");
      assert.equal(pb.view.get("a")?.get("poison"), undefined, "the failed update never left a");
      assert.equal(JSON.stringify([...pb.view.get("a")!]), JSON.stringify([...pa.localData]));
    } finally {
      await pa.close();
      await pb.close();
      await a.close();
      await b.close();
    }
  }
});

/** A module with string versions, recording the translations it is asked for. */
function versioned(
  version: string,
  calls: unknown[],
): PublisherModule<number, number, Map<string, number>, string, null> {
  return {
    version: () => version,
    initLocalData: () => 0,
    initGlobalView: () => new Map(),
    dataDiff: (o, n) => n - o,
    updateLocalData: (d, n) => n + d,
    updateGlobalViewAndNotify: (node, d, _s, view) => view.set(node, (view.get(node) ?? 0) + d),
    newSubscription: () => null,
    stopGlobalView: () => {},
    translateLocalData: (mine, peer, n) => (calls.push(["local", mine, peer]), n),
    translateUpdate: (_m, _p, d) => d,
    // An old peer's hello arrives as a plain message: the seed's `{discover, Pid, Version, View}`.
    translateMessage: (msg, view) => {
      const m = msg as { hello?: string; version?: string };
      if (typeof m.hello === "string") {
        return { type: "discover", node: m.hello, version: m.version ?? "0", view };
      }
      return { type: "drop", view };
    },
  };
}

Deno.test("versions may be strings; translateMessage's discover form answers with local data", async () => {
  const [a, b] = await pair();
  const calls: unknown[] = [];
  const pa = await DataPublisher.start(a, "v", versioned("2.0", calls));
  const pb = await DataPublisher.start(b, "v", versioned("1.0", []));
  try {
    await pa.update(3);
    await pb.update(4);
    await eventually(() => pb.view.get("a") === 3 && pa.view.get("b") === 4, "views converge");
    assert.deepEqual(pa.peers(), [{ node: "b", version: "1.0" }]);
    // A discover that arrives as a plain message: the local data goes (again) to that node,
    // translated to the version it announced.
    calls.length = 0;
    pa.message({ hello: "b", version: "0.9" });
    await eventually(
      () => calls.some((c) => JSON.stringify(c) === '["local","2.0","0.9"]'),
      "translated for 0.9",
    );
    assert.deepEqual(pa.peers(), [{ node: "b", version: "0.9" }]);
    await pa.update(1);
    await eventually(() => pb.view.get("a") === 4, "updates still flow");
  } finally {
    await pa.close();
    await pb.close();
    await a.close();
    await b.close();
  }
});
