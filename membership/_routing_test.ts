import assert from "node:assert/strict";
import { SimulatedClock } from "../base/clock.ts";
import { Router } from "./_routing.ts";

/** Routers on a fixed graph; messages cross edges in FIFO order when `pump` runs. */
function graph(edges: [string, string][], hopsMax: number) {
  const clock = new SimulatedClock(0);
  const nb = new Map<string, Set<string>>();
  for (const [a, b] of edges) {
    (nb.get(a) ?? nb.set(a, new Set()).get(a)!).add(b);
    (nb.get(b) ?? nb.set(b, new Set()).get(b)!).add(a);
  }
  const queue: { to: string; from: string; env: unknown[] }[] = [];
  const inbox = new Map<string, unknown[]>();
  const drops: string[] = [];
  const routers = new Map<string, Router>();
  let frames = 0;
  for (const name of nb.keys()) {
    routers.set(
      name,
      new Router({
        self: name,
        clock,
        retransmitIntervalMs: 100,
        neighbours: () => [...nb.get(name)!],
        isNeighbour: (n) => nb.get(name)!.has(n),
        forward: (to, env) => void (frames++, queue.push({ to, from: name, env })),
        deliver: (_ep, payload) => void inbox.set(name, [...(inbox.get(name) ?? []), payload]),
        answer: (_ep, payload) => Promise.resolve([0, { at: name, payload }]),
        dropped: (why) => void drops.push(`${name}: ${why}`),
      }, { transitiveHopsMax: hopsMax, routesMax: 64, routedIdsMax: 64 }),
    );
  }
  const pump = async () => {
    for (let i = 0; i < 10_000 && queue.length > 0; i++) {
      const m = queue.shift()!;
      routers.get(m.to)!.receive(m.from, m.env);
      await Promise.resolve();
    }
  };
  return { routers, inbox, drops, pump, frames: () => frames, clock };
}

Deno.test("routing: a line a-b-c-d, transitiveHopsMax 2: c is reached, d is not (dropped and counted)", async () => {
  const g = graph([["a", "b"], ["b", "c"], ["c", "d"]], 2);
  g.routers.get("a")!.send("c", "x", "to c");
  g.routers.get("a")!.send("d", "x", "to d");
  await g.pump();
  assert.deepEqual(g.inbox.get("c"), ["to c"]);
  assert.equal(g.inbox.get("d"), undefined);
  assert.equal(g.drops.length, 1);
  assert.match(g.drops[0]!, /transitiveHopsMax \(2\)/);
});

Deno.test("routing: a ring never loops; a flood teaches the way, and the next message goes straight", async () => {
  // A ring of 6 plus a chord: every node floods to its neighbours not on the path.
  const g = graph([["a", "b"], ["b", "c"], ["c", "d"], ["d", "e"], ["e", "f"], ["f", "a"], [
    "b",
    "e",
  ]], 10);
  g.routers.get("a")!.send("d", "x", 1);
  await g.pump();
  const first = g.frames();
  assert.deepEqual(g.inbox.get("d"), [1], "delivered once, whatever the number of paths");
  g.routers.get("a")!.send("d", "x", 2);
  await g.pump();
  const second = g.frames() - first;
  assert.deepEqual(g.inbox.get("d"), [1, 2]);
  assert.ok(
    second <= 3,
    `the second message took ${second} hops (the first flood: ${first} frames)`,
  );
  // A call's answer comes back along the way it went.
  const reply = g.routers.get("a")!.call("d", "x", "q", 1000);
  await g.pump();
  assert.deepEqual(await reply, { at: "d", payload: "q" });
});
