// Causal delivery per label (send's causalLabel): over TCP across a partition
// that heals, and a property test over MemoryNetwork with random delays.

import assert from "node:assert/strict";
import { MemoryNetwork } from "../testing.ts";
import { Node, seededRandom } from "../mod.ts";
import { SimulatedClock } from "../protocol.ts";
import { converged, eventually, startNode } from "./_helpers.ts";

Deno.test("causalLabel: m2 sent after delivering m1 is delivered after m1 at a node that gets m1 late (a partition that heals)", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await using c = await startNode("c");
  await b.join(a.spec);
  await c.join(a.spec);
  await converged([a, b, c], ["a", "b", "c"]);
  const atC: string[] = [];
  c.register("chat", (m) => void atC.push(m as string));
  b.register("chat", (m) => {
    // b delivered m1: what it sends now with the label comes causally after m1.
    void b.send("c", "chat", `reply to ${m}`, { causalLabel: "room" });
  });
  const ref = c.injectPartition("a"); // a's messages to c wait (retransmitted: ack)
  const m1ToC = a.send("c", "chat", "m1", { causalLabel: "room", ack: true });
  await a.send("b", "chat", "m1", { causalLabel: "room" });
  await eventually(() => c.stats().causalWaits > 0, "c holds the reply back");
  assert.deepEqual(atC, [], "the reply waits for m1");
  c.resolvePartition(ref);
  await m1ToC;
  await eventually(() => atC.length === 2, "both at c");
  assert.deepEqual(atC, ["m1", "reply to m1"]);
  assert.equal(c.stats().causalSkips, 0);
  // Without a label the same reply would not wait (no order is promised).
  assert.throws(
    () => a.send("b", "chat", 1, { causalLabel: "" }),
    /causalLabel must be a string of 1-256 characters/,
  );
});

Deno.test("causalLabel: a predecessor that never comes is skipped after causalWaitMs; if it comes later it is dropped, not delivered out of order", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await using c = await startNode("c", { causalWaitMs: 300 });
  await b.join(a.spec);
  await c.join(a.spec);
  await converged([a, b, c], ["a", "b", "c"]);
  const atC: string[] = [];
  c.register("x", (m) => void atC.push(m as string));
  b.register("x", () => void b.send("c", "x", "after", { causalLabel: "L" }));
  const ref = c.injectPartition("a");
  await a.send("c", "x", "lost", { causalLabel: "L" }); // at most once: dropped by the partition
  await a.send("b", "x", "go", { causalLabel: "L" });
  await eventually(() => atC.length === 1, "the wait ends", 3000);
  assert.deepEqual(atC, ["after"]);
  assert.equal(c.stats().causalSkips, 1);
  c.resolvePartition(ref);
});

// The oracle: per node and label, the ids in its causal past (messages of that
// label sent or delivered there, and theirs, transitively). Causality is per
// label: a message of another label orders nothing.
Deno.test("causalLabel property: random sends and relays over MemoryNetwork with random delays are delivered in causal order (SIM_SEED)", async () => {
  const seeds = Deno.env.get("SIM_SEED") !== undefined
    ? [Number(Deno.env.get("SIM_SEED"))]
    : [1, 2, 3, 4, 5, 6].map((i) => (Date.now() % 100_000) * 10 + i);
  for (const seed of seeds) {
    console.log(`SIM_SEED=${seed}`);
    const clock = new SimulatedClock(1_000_000);
    const net = new MemoryNetwork({ clock, seed, latencyMs: [1, 120] });
    const rnd = seededRandom(seed);
    const names = ["n0", "n1", "n2", "n3", "n4"];
    const nodes: Node[] = [];
    type Msg = { id: string; label: string; to: string; deps: string[]; relay: number };
    const past = new Map<string, Set<string>>();
    const pastOf = (node: string, label: string) => {
      const k = `${node}/${label}`;
      let s = past.get(k);
      if (s === undefined) past.set(k, s = new Set());
      return s;
    };
    const delivered = new Map(names.map((n) => [n, [] as string[]]));
    const byId = new Map<string, Msg>();
    const violations: string[] = [];
    let nextId = 0;
    const sends: Promise<void>[] = [];
    const send = (from: Node, label: string, relay: number) => {
      const to = names[Math.floor(rnd.next() * names.length)]!;
      const id = `m${nextId++}`;
      const m: Msg = { id, label, to, deps: [...pastOf(from.name, label)], relay };
      byId.set(id, m);
      pastOf(from.name, label).add(id);
      sends.push(from.send(to, "x", m, { causalLabel: label, ack: true }));
    };
    try {
      for (const n of names) {
        const node = await Node.start({
          name: n,
          cookie: "sim",
          transport: net.transport(n),
          listen: { hostname: n, port: 1 },
          clock,
          random: seededRandom(seed + n.charCodeAt(1)),
          logger: () => {},
          pingIntervalMs: 500,
          failureTimeoutMs: 5000,
          retransmitIntervalMs: 200,
        });
        node.register("x", (raw) => {
          const m = raw as Msg;
          const mine = delivered.get(n)!;
          for (const d of m.deps) {
            const x = byId.get(d)!;
            if (x.to === n && !mine.includes(d)) {
              violations.push(`${n} delivered ${m.id} before ${d}`);
            }
          }
          mine.push(m.id);
          const p = pastOf(n, m.label);
          for (const d of m.deps) p.add(d);
          p.add(m.id);
          if (m.relay > 0) send(node, m.label, m.relay - 1);
        });
        nodes.push(node);
      }
      let joined = false;
      const joins = Promise.all(nodes.slice(1).map((x) => x.join(nodes[0]!.spec)));
      void joins.then(() => void (joined = true), () => {});
      for (
        let t = 0;
        t < 400 && !(joined && nodes.every((x) => x.connectedMembers().length === 5));
        t++
      ) await clock.advance(50);
      await joins;
      for (let i = 0; i < 40; i++) {
        const from = nodes[Math.floor(rnd.next() * nodes.length)]!;
        send(from, rnd.next() < 0.5 ? "A" : "B", Math.floor(rnd.next() * 5));
        await clock.advance(Math.floor(rnd.next() * 5));
      }
      // Relays send more while this runs: wait until every send so far is acknowledged.
      let acked = 0;
      const counted = new Set<Promise<void>>();
      for (let t = 0; t < 400 && acked < sends.length; t++) {
        for (const p of sends) {
          if (!counted.has(p)) {
            counted.add(p);
            void p.then(() => void acked++);
          }
        }
        await clock.advance(50);
      }
      await Promise.all(sends);
      assert.deepEqual(violations, [], `SIM_SEED=${seed}`);
      assert.equal(
        [...delivered.values()].flat().length,
        byId.size,
        `SIM_SEED=${seed}: all delivered`,
      );
      const waits = nodes.reduce((a, x) => a + x.stats().causalWaits, 0);
      const skips = nodes.reduce((a, x) => a + x.stats().causalSkips, 0);
      assert.equal(skips, 0, `SIM_SEED=${seed}`);
      console.log(`  ${byId.size} messages, ${waits} waited for a predecessor, 0 out of order`);
    } finally {
      for (const x of nodes) await x.close();
    }
  }
});
