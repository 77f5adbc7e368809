// Plumtree against the seed's semantics and against hostile peers: broadcast
// spreads what broadcastData returns, floods stay bounded, what cannot
// replicate is refused at the call, a restarted node is repaired at once, no
// node is left out of a tree, and heartbeats run with the server.

import assert from "node:assert/strict";
import { encodeValue, PT, SimulatedClock, Tag } from "../protocol.ts";
import { HeartbeatHandler, KvHandler, Node, Plumtree, seededRandom } from "../mod.ts";
import { MemoryNetwork } from "../testing.ts";
import { PLUMTREE_ENDPOINT } from "../broadcast/mod.ts";
import { converged, eventually, rawPeer, startNode } from "./_helpers.ts";
import { LogHandler, simCluster } from "./_plumtree_fixture.ts";

const SEED = Number(Deno.env.get("SIM_SEED") ?? Date.now() % 2 ** 31);

/** The riak_core habit: store in broadcastData, then broadcast; merge says "not new" for it. */
class StoreFirst extends LogHandler {
  override readonly name: string = "store-first";
  override broadcastData(m: { id: string; body: string }) {
    this.store.set(m.id, m.body); // stored here, before the broadcast
    return super.broadcastData(m);
  }
}

Deno.test(`broadcast spreads what broadcastData returns, for both handler styles (SIM_SEED=${SEED})`, async () => {
  const c = await simCluster(4, SEED);
  const sf = new Map<string, StoreFirst>();
  try {
    // Add the store-first handler to every node (one Plumtree server per node).
    for (const s of c.nodes) {
      await s.plumtree.close();
      const h = new StoreFirst();
      sf.set(s.node.name, h);
      s.plumtree = await Plumtree.start(s.node, {
        handlers: [s.log, h],
        clock: c.clock,
        logger: () => {},
        lazyTickMs: 200,
      });
    }
    const origin = c.nodes[1]!;
    await origin.plumtree.broadcast({ id: "sf1", body: "stored first" }, "store-first");
    await origin.plumtree.broadcast({ id: "m1", body: "merged here" }, "log");
    await c.run(
      5000,
      () => c.nodes.every((s) => sf.get(s.node.name)!.store.has("sf1") && s.log.store.has("m1")),
    );
    for (const s of c.nodes) {
      assert.equal(sf.get(s.node.name)!.store.get("sf1"), "stored first", s.node.name);
      assert.equal(s.log.store.get("m1"), "merged here");
    }
    assert.deepEqual(origin.log.delivered, ["m1"], "the local merge still stores (merge style)");
  } finally {
    await c.close();
  }
});

/** The frame an authenticated peer sends to reach Plumtree directly. */
const ptFrame = (msg: unknown) => encodeValue([Tag.Msg, PLUMTREE_ENDPOINT, msg]);

Deno.test("a flood of IHAVE, PRUNE and GRAFT from an authenticated peer stays bounded; a good peer keeps its latency", async () => {
  const opts = { failureTimeoutMs: 30_000 };
  await using a = await startNode("a", opts);
  await using b = await startNode("b", opts);
  a.register("echo", (m) => m);
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const log = new LogHandler();
  await using pt = await Plumtree.start(a, { handlers: [log], logger: () => {} });
  const conn = await rawPeer(a.spec.listenAddrs[0]!);
  // The attack is built before anything is measured: the attacker shares this process,
  // and its own work must not count against the node.
  // 10^6 announced ids in 100 IHAVE frames, 10^5 PRUNEs for new roots, 10^4 GRAFTs for unknown ids.
  const attack: Uint8Array[][] = [];
  for (let f = 0; f < 100; f++) {
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i++) ids.push(`x${f}-${i}`);
    attack.push([ptFrame([PT.IHave, f + 1, [["log", "mallory", ids, ids.map(() => 1)]]])]);
  }
  for (let f = 0; f < 100; f++) {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 1000; i++) frames.push(ptFrame([PT.Prune, `root-${f}-${i}`]));
    attack.push(frames);
  }
  for (let f = 0; f < 10; f++) {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 1000; i++) {
      frames.push(ptFrame([PT.Graft, "log", `nope-${f}-${i}`, 1, `groot-${f}-${i}`]));
    }
    attack.push(frames);
  }
  const rss0 = Deno.memoryUsage().rss;
  const latencies: number[] = [];
  const failures: unknown[] = [];
  let flooding = true;
  const good = (async () => {
    for (let i = 0; flooding && i < 100_000; i++) {
      const t0 = performance.now();
      try {
        await b.call("a", "echo", i, { timeoutMs: 30_000 });
        latencies.push(performance.now() - t0);
      } catch (e) {
        failures.push(e);
        latencies.push(Infinity);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  try {
    for (const frames of attack) await conn.write(frames);
    // Everything sent has been read once the node answers a call made after it.
    await b.call("a", "echo", "after", { timeoutMs: 60_000 }).catch((e) => failures.push(e));
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    flooding = false;
    conn.close();
    await good;
  }
  const rss = Deno.memoryUsage().rss - rss0;
  const sorted = [...latencies].sort((x, y) => x - y);
  const p99 = sorted[Math.floor(sorted.length * 0.99)] ?? Infinity;
  const p95 = sorted[Math.floor(sorted.length * 0.95)] ?? Infinity;
  const st = pt.stats();
  console.log(
    `flood: ${latencies.length} good calls, p95 ${p95.toFixed(1)} ms, p99 ${
      p99.toFixed(1)
    } ms; rss +${
      (rss / 2 ** 20).toFixed(0)
    } MiB (bound 256 MiB); missing ${pt.pending().missing}, roots ${pt.pending().roots}, ` +
      `dropped: ${st.missingDropped} announcements, ${st.rootsDropped} roots, ${st.malformed} malformed`,
  );
  assert.deepEqual(failures.map(String), [], "every call of the good peer was answered");
  // About 100 calls: p99 is the worst one, which a major GC of the attacker's own ~10^6
  // prebuilt ids (same process) can stretch past 100 ms on a loaded 2-core machine (seen
  // once: 132.7 ms). The bound on the typical call stays tight; the worst is bounded too.
  assert.ok(p95 < 100, `good peer's p95 ${p95.toFixed(1)} ms`);
  assert.ok(p99 < 500, `good peer's p99 ${p99.toFixed(1)} ms`);
  assert.ok(rss < 256 * 2 ** 20, `rss grew ${(rss / 2 ** 20).toFixed(0)} MiB`);
  assert.ok(pt.pending().missing <= 10_000, "announced ids waiting for a graft stay bounded");
  assert.ok(pt.pending().roots <= 1024, "trees stay bounded");
  assert.ok(st.missingDropped > 0 || st.malformed > 0, "what was shed is counted");
});

Deno.test("what cannot replicate is refused at the call: KvHandler.put of a function", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const ka = new KvHandler("kv", a), kb = new KvHandler("kv", b);
  await using pa = await Plumtree.start(a, { handlers: [ka], logger: () => {} });
  await using pb = await Plumtree.start(b, { handlers: [kb], logger: () => {} });
  try {
    await assert.rejects(
      () => ka.put(pa, "job", { run() {} }),
      (e: Error) => e instanceof TypeError && /value\.run is a function/.test(e.message),
    );
    assert.equal(ka.get("job"), undefined, "nothing changed locally");
    // Replication and anti-entropy keep working.
    await ka.put(pa, "x", 1);
    await eventually(() => kb.get("x") === 1, "x replicated");
    const before = pb.stats().exchanges;
    await pb.exchangeNow("a", "kv");
    assert.equal(pb.stats().exchanges, before + 1, "an exchange ran and succeeded");
  } finally {
    ka.close();
    kb.close();
  }
});

Deno.test("a restarted node's replicated KV is complete within 1 s (exchange on peer up)", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  const ka = new KvHandler("kv", a), kb = new KvHandler("kv", b);
  const opts = { logger: () => {}, exchangeTickMs: 60_000 };
  await using pa = await Plumtree.start(a, { handlers: [ka], ...opts });
  await using pb = await Plumtree.start(b, { handlers: [kb], ...opts });
  let c = await startNode("c");
  let kc = new KvHandler("kv", c);
  let pc = await Plumtree.start(c, { handlers: [kc], ...opts });
  try {
    await c.join(a.spec);
    await converged([a, b, c], ["a", "b", "c"]);
    for (let i = 0; i < 50; i++) await (i % 2 ? ka.put(pa, `k${i}`, i) : kb.put(pb, `k${i}`, i));
    await eventually(() => kc.entries().length === 50, "c has all 50 keys");
    await pc.close();
    kc.close();
    await c.close();
    // c restarts empty; the others come up at it and it at them: exchanges repair it at once.
    c = await startNode("c");
    kc = new KvHandler("kv", c);
    pc = await Plumtree.start(c, { handlers: [kc], ...opts });
    const t0 = performance.now();
    await c.join(a.spec);
    await eventually(() => kc.entries().length === 50, "c's store complete", 1000);
    console.log(
      `restarted node's store complete ${(performance.now() - t0).toFixed(0)} ms after its join`,
    );
  } finally {
    await pc.close();
    kc.close();
    ka.close();
    kb.close();
    await c.close();
  }
});

Deno.test(`no node is left out of a tree: Plumtree started at every moment of the join sequence (SIM_SEED=${SEED})`, async () => {
  for (let round = 0; round < 4; round++) {
    const seed = SEED + round;
    const rnd = seededRandom(seed);
    const clock = new SimulatedClock(1_000_000);
    const net = new MemoryNetwork({ clock, seed, latencyMs: [1, 10] });
    const nodes: { node: Node; log: LogHandler; pt?: Plumtree }[] = [];
    for (let i = 0; i < 16; i++) {
      const node = await Node.start({
        name: `n${String(i).padStart(2, "0")}`,
        cookie: "sim",
        transport: net.transport(`h${i}`),
        listen: { hostname: `h${i}`, port: 1 },
        clock,
        random: seededRandom(seed * 31 + i),
        logger: () => {},
      });
      nodes.push({ node, log: new LogHandler() });
    }
    try {
      // Each node starts Plumtree at its own moment of the join sequence (0 to 600 ms).
      const starts = nodes.map(() => Math.floor(rnd.next() * 600));
      for (const [i, s] of nodes.entries()) {
        clock.setTimeout(() => {
          void Plumtree.start(s.node, {
            handlers: [s.log],
            clock,
            random: seededRandom(seed + i),
            logger: () => {},
            lazyTickMs: 200,
          }).then((pt) => (s.pt = pt));
        }, starts[i]!);
      }
      const joins = nodes.slice(1).map((s) => s.node.join(nodes[0]!.node.spec).catch(() => {}));
      for (
        let t = 0;
        t < 200 && !nodes.every((s) => s.pt && s.node.connectedMembers().length === 16);
        t++
      ) {
        await clock.advance(50);
      }
      await Promise.all(joins);
      assert.ok(nodes.every((s) => s.pt), "every Plumtree started");
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) {
        const from = nodes[Math.floor(rnd.next() * 16)]!;
        ids.push(`r${round}-${i}`);
        await from.pt!.broadcast({ id: ids.at(-1)!, body: "" }, "log");
        await clock.advance(20);
      }
      for (let t = 0; t < 200 && !nodes.every((s) => ids.every((id) => s.log.store.has(id))); t++) {
        await clock.advance(50);
      }
      const missing = nodes.filter((s) => !ids.every((id) => s.log.store.has(id)));
      assert.deepEqual(
        missing.map((s) =>
          `${s.node.name} (started at ${
            starts[nodes.indexOf(s)]
          } ms): ${s.log.store.size}/${ids.length}`
        ),
        [],
        `every node received every broadcast (SIM_SEED=${seed}, starts ${starts.join(",")})`,
      );
    } finally {
      for (const s of nodes) await s.pt?.close();
      for (const s of nodes) await s.node.close();
    }
  }
});

Deno.test(`heartbeats start with the Plumtree server and carry { node, epoch, counter, timestamp } (SIM_SEED=${SEED})`, async () => {
  const c = await simCluster(3, SEED);
  try {
    const hbs = c.nodes.map((s) =>
      new HeartbeatHandler(s.node.name, { clock: c.clock, intervalMs: 500 })
    );
    for (const [i, s] of c.nodes.entries()) {
      await s.plumtree.close();
      s.plumtree = await Plumtree.start(s.node, {
        handlers: [s.log, s.kv, hbs[i]!], // no run(): the server starts them
        clock: c.clock,
        logger: () => {},
      });
    }
    await c.run(
      5000,
      () => hbs.every((h) => c.nodes.every((s) => (h.latest(s.node.name)?.counter ?? 0) >= 3)),
    );
    const hb = hbs[0]!.latest("n01")!;
    assert.deepEqual(Object.keys(hb).sort(), ["counter", "epoch", "node", "timestamp"]);
    assert.equal(hb.node, "n01");
    assert.ok(
      Math.abs(hb.timestamp - c.clock.wallNow()) < 2000,
      "the payload is the sender's timestamp",
    );
    assert.equal(new HeartbeatHandler("x").intervalMs, 10_000, "the seed's default interval");
  } finally {
    await c.close();
  }
});
