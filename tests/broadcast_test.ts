// Plumtree under faults, on a simulated network in virtual time (seeded) and over TCP.

import assert from "node:assert/strict";
import { encodeValue, PT, Tag } from "../protocol.ts";
import { Plumtree, seededRandom } from "../mod.ts";
import { PLUMTREE_ENDPOINT } from "../broadcast/mod.ts";
import { relayOf } from "../membership/relay.ts";
import { converged, eventually, startNode } from "./_helpers.ts";
import { LogHandler, simCluster, type SimNode } from "./_plumtree_fixture.ts";

const SEED = Number(Deno.env.get("SIM_SEED") ?? Date.now() % 2 ** 31);

Deno.test(`plumtree: 16 nodes, 20% frame loss: every broadcast reaches every node exactly once (SIM_SEED=${SEED})`, async () => {
  console.log(`SIM_SEED=${SEED}`);
  const c = await simCluster(16, SEED);
  try {
    c.net.setLossRate(0.2);
    const rnd = seededRandom(SEED + 1);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const from = c.nodes[Math.floor(rnd.next() * c.nodes.length)]!;
      const id = `m${i}`;
      ids.push(id);
      await from.plumtree.broadcast({ id, body: `from ${from.node.name}` }, "log");
      await c.run(50);
    }
    await c.run(60_000, () => c.nodes.every((s) => s.log.store.size === ids.length));
    for (const s of c.nodes) {
      assert.deepEqual(
        [...s.log.delivered].sort(),
        [...ids].sort(),
        `${s.node.name} got each message once`,
      );
    }
    const lost = c.net.stats().lost;
    const st = c.nodes.map((s) => s.plumtree.stats());
    const grafts = st.reduce((a, s) => a + s.graft, 0);
    console.log(`${lost} frames lost; ${grafts} grafts repaired the trees`);
    assert.ok(lost > 0 && grafts > 0, "loss happened and was repaired by lazy push and graft");
  } finally {
    await c.close();
  }
});

Deno.test(`plumtree: a stable tree has no redundant payloads (RMR 0) (SIM_SEED=${SEED})`, async () => {
  const c = await simCluster(12, SEED);
  try {
    const root = c.nodes[3]!;
    // Warm-up: the first broadcasts prune the redundant links of this root's tree.
    for (let i = 0; i < 5; i++) {
      await root.plumtree.broadcast({ id: `w${i}`, body: "" }, "log");
      await c.run(1000);
    }
    const before = c.nodes.reduce((a, s) => a + s.plumtree.stats().eager, 0);
    for (let i = 0; i < 20; i++) await root.plumtree.broadcast({ id: `s${i}`, body: "" }, "log");
    await c.run(5000, () => c.nodes.every((s) => s.log.store.size === 25));
    const payloads = c.nodes.reduce((a, s) => a + s.plumtree.stats().eager, 0) - before;
    const rmr = payloads / 20 / (c.nodes.length - 1) - 1;
    console.log(`RMR after warm-up: ${rmr.toFixed(3)}`);
    assert.equal(rmr, 0);
    // debugGetPeers answers for this node and, through a call, for the others.
    // (Eager links toward a node's own parent stay: they are never used, so never pruned.)
    for (const other of c.nodes) {
      const remote = c.nodes[0]!.plumtree.debugGetPeers(other.node.name, root.node.name);
      await c.run(100);
      const peers = await remote;
      assert.ok(
        peers.eager.every((p) => !peers.lazy.includes(p)),
        "eager and lazy sets are disjoint",
      );
      if (other === root) assert.ok(peers.eager.length >= 1, "the root pushes to someone");
    }
  } finally {
    await c.close();
  }
});

Deno.test(`plumtree kv: a node killed mid-broadcast and a healed partition; exchange makes all stores identical (SIM_SEED=${SEED})`, async () => {
  const c = await simCluster(8, SEED);
  try {
    const [a, b, , , , , , victim] = c.nodes as SimNode[] & { length: 8 };
    for (let i = 0; i < 10; i++) await a!.kv.put(a!.plumtree, `k${i}`, i);
    // The victim writes and dies before its writes can spread.
    const writes = [
      victim!.kv.put(victim!.plumtree, "victim", "gone soon"),
      victim!.kv.put(victim!.plumtree, "k1", "v2"),
    ];
    await Promise.all(writes);
    await victim!.plumtree.close();
    await victim!.node.close();
    victim!.kv.close();
    c.nodes.splice(c.nodes.indexOf(victim!), 1);
    // Partition the rest in two halves, write on both sides, then heal.
    const left = c.nodes.slice(0, 3).map((s) => `h${Number(s.node.name.slice(1))}`);
    const right = c.nodes.slice(3).map((s) => `h${Number(s.node.name.slice(1))}`);
    const ref = c.net.partition(left, right);
    await c.run(6000);
    await a!.kv.put(a!.plumtree, "side", "left");
    await c.nodes.at(-1)!.kv.put(c.nodes.at(-1)!.plumtree, "other", "right");
    await b!.kv.delete(b!.plumtree, "k0");
    await c.run(2000);
    c.net.heal(ref);
    const same = () => {
      const d = JSON.stringify(c.nodes[0]!.kv.digest());
      return c.nodes.every((s) => JSON.stringify(s.kv.digest()) === d);
    };
    await c.run(120_000, same);
    const store = c.nodes[0]!.kv.entries();
    for (const s of c.nodes) {
      assert.deepEqual(s.kv.entries(), store, `${s.node.name} has the same store`);
    }
    assert.equal(c.nodes[0]!.kv.get("side"), "left");
    assert.equal(c.nodes[0]!.kv.get("other"), "right");
    assert.equal(c.nodes[0]!.kv.get("k0"), undefined, "the delete won");
    assert.ok(c.nodes.some((s) => s.plumtree.stats().exchanges > 0));
  } finally {
    await c.close();
  }
});

Deno.test(`plumtree: a node that joins a running cluster receives every broadcast made after its join (SIM_SEED=${SEED})`, async () => {
  const c = await simCluster(6, SEED);
  try {
    for (let i = 0; i < 10; i++) {
      await c.nodes[i % 6]!.plumtree.broadcast({ id: `before${i}`, body: "" }, "log");
    }
    await c.run(3000);
    const late = await c.add(6);
    const joined = late.node.join(c.nodes[0]!.node.spec);
    await c.run(20_000, () => c.nodes.every((s) => s.node.connectedMembers().length === 7));
    await joined;
    const after: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = `after${i}`;
      after.push(id);
      await c.nodes[i % 6]!.plumtree.broadcast({ id, body: "" }, "log");
    }
    await c.run(30_000, () => after.every((id) => late.log.store.has(id)));
    assert.deepEqual(
      late.log.delivered.filter((id) => id.startsWith("after")).sort(),
      after.sort(),
    );
  } finally {
    await c.close();
  }
});

Deno.test("plumtree over TCP: malformed messages from an authenticated peer are dropped and counted", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const la = new LogHandler(), lb = new LogHandler();
  await using pa = await Plumtree.start(a, { handlers: [la], logger: () => {} });
  await using pb = await Plumtree.start(b, { handlers: [lb], logger: () => {} });
  const junk: unknown[] = [
    "junk",
    [],
    [0, "log"],
    [0, "nohandler", "id", "x", "b", 1],
    [1, "not a list"],
    [1, [[1, 2]]],
    [2, "log", "id", -1, "b"],
    [3],
    [4, [5]],
    [5, 7],
    [99, 1],
    { tag: 0 },
  ];
  for (const j of junk) await b.send("a", PLUMTREE_ENDPOINT, j);
  // Then a real broadcast still goes through, both ways.
  const got = new Promise<void>((resolve) => {
    const orig = la.merge.bind(la);
    la.merge = (id, body) => {
      const r = orig(id, body);
      if (id === "real") resolve();
      return r;
    };
  });
  await pb.broadcast({ id: "real", body: "ok" }, "log");
  await got;
  assert.equal(pa.stats().malformed, junk.length);
  assert.equal(la.store.get("real"), "ok");
  await pa.broadcast({ id: "back", body: "ok" }, "log");
  for (let i = 0; i < 200 && !lb.store.has("back"); i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(lb.store.get("back"), "ok");
});

Deno.test(`plumtree: heartbeats reach every node; exchanges are listed and can be cancelled (SIM_SEED=${SEED})`, async () => {
  const c = await simCluster(5, SEED);
  const stops: (() => void)[] = [];
  try {
    const { HeartbeatHandler } = await import("../mod.ts");
    // Restart each node's Plumtree with a heartbeat handler added (one server per node).
    const hbs = c.nodes.map((s) =>
      new HeartbeatHandler(s.node.name, { clock: c.clock, intervalMs: 500 })
    );
    const trees = await Promise.all(c.nodes.map(async (s, i) => {
      await s.plumtree.close();
      const t = await Plumtree.start(s.node, {
        handlers: [s.log, s.kv, hbs[i]!],
        clock: c.clock,
        logger: () => {},
        lazyTickMs: 200,
      });
      s.plumtree = t;
      return t;
    }));
    for (const [i, t] of trees.entries()) stops.push(hbs[i]!.run(t));
    await c.run(
      5000,
      () => hbs.every((h) => c.nodes.every((s) => (h.latest(s.node.name)?.counter ?? 0) >= 3)),
    );
    const t0 = c.clock.now();
    await c.run(1000);
    for (const h of hbs) {
      for (const s of c.nodes) {
        assert.ok(h.lastHeard(s.node.name)! >= t0, "heard within the last second");
      }
    }
    // An exchange that runs until cancelled.
    let aborted = false;
    const slow = {
      ...c.nodes[0]!.log,
      name: "slow",
      broadcastData: (m: unknown) => ({ id: m, payload: m }),
      merge: () => true,
      isStale: () => false,
      graft: () => ({ error: "none" }),
      exchange: (_peer: string, signal: AbortSignal) =>
        new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => (aborted = true, resolve()), { once: true })
        ),
    };
    await c.nodes[0]!.plumtree.close();
    const p0 = await Plumtree.start(c.nodes[0]!.node, {
      handlers: [slow],
      clock: c.clock,
      logger: () => {},
    });
    c.nodes[0]!.plumtree = p0;
    // The server already exchanges with every peer that is up, one at a time (exchangesMax 1).
    await c.run(10);
    assert.deepEqual(p0.exchanges().map((e) => [e.handler, e.peer]), [["slow", "n01"]]);
    const running = p0.exchangeNow("n01", "slow");
    await c.run(10);
    assert.equal(p0.exchanges().length, 2, "exchangeNow runs beside the queued ones");
    assert.equal(p0.cancelExchanges({ peer: "n01" }), 2);
    await running;
    assert.ok(aborted);
    await c.run(10);
    assert.ok(p0.exchanges().every((e) => e.peer !== "n01"), "the next waiting peer's turn");
    assert.ok(p0.cancelExchanges("all") >= 1);
    await c.run(10);
    assert.deepEqual(p0.exchanges(), [], "nothing runs or waits after cancelling all");
  } finally {
    for (const s of stops) s();
    await c.close();
  }
});

Deno.test("plumtree over TCP: a relay forwards a push as the bytes it came in, one round on; its own copy of the payload stays intact", async () => {
  await using a = await startNode("a");
  await using m = await startNode("m");
  await using b = await startNode("b");
  await m.join(a.spec);
  await b.join(a.spec);
  await converged([a, m, b], ["a", "b", "m"]);
  const log = new LogHandler();
  await using pa = await Plumtree.start(a, { handlers: [log], logger: () => {} });
  // m and b run no Plumtree: m pushes frames of its own making, b records what a relays.
  const got = new Map<string, unknown[]>();
  b.register(PLUMTREE_ENDPOINT, (msg) => {
    if (Array.isArray(msg) && msg[0] === PT.Broadcast) got.set(msg[2], msg);
  });
  await b.send("a", PLUMTREE_ENDPOINT, [PT.Neighbor, 1]);
  const frame = (msg: unknown) => encodeValue([Tag.Msg, PLUMTREE_ENDPOINT, msg]).slice();
  const pad = Uint8Array.from({ length: 32 }, (_, i) => i);
  // Rounds rewritten in place (0, 22, 24, 300) and not (23: the next one is wider; 255
  // written in five bytes): either way b must get round + 1 and the same payload.
  const rounds = new Map([["r0", 0], ["r22", 22], ["r23", 23], ["r24", 24], ["r300", 300]]);
  const frames = [...rounds].map(([id, r]) => frame([PT.Broadcast, "log", id, pad, "m", r]));
  const wide = frame([PT.Broadcast, "log", "w255", pad, "m", 0]).slice(0, -1);
  frames.push(new Uint8Array([...wide, 0x1a, 0, 0, 0, 0xff]));
  rounds.set("w255", 255);
  let failed = 0;
  for (const f of frames) {
    relayOf(m).sendMany(["a"], PLUMTREE_ENDPOINT, null, f, undefined, () => failed++);
  }
  assert.equal(failed, 0);
  await eventually(() => got.size === rounds.size, "b gets every push a relays", 10_000);
  for (const [id, r] of rounds) {
    assert.deepEqual(got.get(id), [PT.Broadcast, "log", id, pad, "m", r + 1], id);
    // a's handler keeps a view of the frame a forwarded: the payload bytes are untouched.
    assert.deepEqual([...(log.store.get(id) as unknown as Uint8Array)], [...pad], id);
  }
  assert.equal(pa.stats().malformed, 0);
});
