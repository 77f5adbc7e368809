// The HyParView state machine on its own: events in, effects out.

import assert from "node:assert/strict";
import { seededRandom } from "../base/clock.ts";
import { ProtocolError } from "../base/errors.ts";
import { HPV, HyParView } from "./hyparview.ts";
import type { NodeSpec } from "./spec.ts";

const spec = (name: string, incarnation = 1): NodeSpec => ({
  name,
  incarnation,
  listenAddrs: [{ hostname: "10.0.0.1", port: 1000 + name.length }],
  channels: {},
});

/** Makes `names` neighbours of `n` (known, asked at high priority, connected). */
function neighbours(n: HyParView, names: string[]): void {
  for (const p of names) {
    n.seen(spec(p), 0);
    n.receive(p, [HPV.Neighbor, 1], 0);
    n.up(p, 0);
  }
}

function node(name: string, options: ConstructorParameters<typeof HyParView>[1] | object = {}) {
  return new HyParView(spec(name), { random: seededRandom(name.length * 7), ...options });
}

Deno.test("hyparview core: a join connects, greets with JOIN, and the contact spreads it", () => {
  const a = node("a"), c = node("contact");
  const fx = a.join(spec("contact"), 0);
  assert.deepEqual(fx.connect.map((s) => s.name), ["contact"]);
  assert.deepEqual(a.greeting("contact"), [HPV.Join]);
  assert.equal(a.greeting("contact"), undefined, "a greeting is said once");
  // The contact knows x and y as neighbours; a JOIN from a reaches it.
  neighbours(c, ["x", "y"]);
  c.seen(spec("a"), 0);
  const j = c.receive("a", [HPV.Join], 0);
  assert.deepEqual(j.connect.map((s) => s.name), ["a"]);
  assert.deepEqual(
    j.sends.map((s) => [s.to, (s.msg as unknown[])[0]]).sort(),
    [["x", HPV.ForwardJoin], ["y", HPV.ForwardJoin]],
  );
  assert.deepEqual(c.activeView(), ["a", "x", "y"]);
});

Deno.test("hyparview core: a full node refuses a low-priority NEIGHBOR by closing, accepts a high one by evicting with a hand-over", () => {
  const n = node("n", { activeViewSize: 2 });
  neighbours(n, ["p", "q"]);
  n.seen(spec("r"), 0);
  const low = n.receive("r", [HPV.Neighbor, 0], 0);
  assert.deepEqual(low.disconnect.map((d) => d.name), ["r"], "refused: its connection is closed");
  assert.ok(n.passiveView().includes("r"));
  const high = n.receive("r", [HPV.Neighbor, 1], 0);
  assert.deepEqual(high.connect.map((s) => s.name), ["r"]);
  const told = high.sends.find((s) => (s.msg as unknown[])[0] === HPV.Disconnect)!;
  assert.ok(told !== undefined, "the evicted neighbour is told");
  assert.equal(((told.msg as unknown[])[1] as NodeSpec).name, "r", "and given the newcomer");
  assert.equal(n.activeView().length, 2);
  // The evicted one links to the newcomer.
  const v = node(told.to);
  v.seen(spec("n"), 0);
  v.receive("n", [HPV.Neighbor, 1], 0);
  v.up("n", 0);
  const d = v.receive("n", told.msg, 0);
  assert.deepEqual(d.disconnect.map((x) => x.name), ["n"]);
  assert.deepEqual(d.connect.map((s) => s.name), ["r"]);
});

Deno.test("hyparview core: a failed neighbour is replaced from the passive view; a refusal backs off", () => {
  const n = node("n", { activeViewSize: 2 });
  n.seen(spec("p"), 0);
  n.receive("p", [HPV.Neighbor, 1], 0);
  n.up("p", 0);
  // Passive entries through a shuffle reply.
  n.receive("p", [HPV.ShuffleReply, [spec("s1"), spec("s2")], []], 0);
  assert.deepEqual(n.passiveView(), ["s1", "s2"]);
  n.tick(0); // fills the free slot at low priority
  const asked = n.activeView().filter((x) => x !== "p");
  assert.equal(asked.length, 1);
  // The request is refused (closed before any confirmation): not lost, back to passive, backoff.
  const refused = n.down(asked[0]!, 10);
  assert.ok(n.passiveView().includes(asked[0]!));
  assert.equal(refused.connect.length, 0, "no new request before the backoff");
  const later = n.tick(10_000);
  assert.equal(later.connect.length, 1, "after it, one more");
  // The neighbour p fails: replaced at once (with high priority when nothing is left).
  const fx = n.down("p", 10_001);
  assert.ok(fx.disconnect.some((d) => d.name === "p"));
});

Deno.test("hyparview core: a NEIGHBOR request never answered (connected, then silent) is given up and a new request goes out", () => {
  const n = node("n", { activeViewSize: 2, shuffleIntervalMs: 10_000 });
  neighbours(n, ["p"]);
  n.receive("p", [HPV.ShuffleReply, [spec("s1"), spec("s2")], []], 0);
  const first = n.tick(0).connect.map((c) => c.name);
  assert.equal(first.length, 1, "one request");
  n.up(first[0]!, 5); // its connection is up, and it never answers (a lost frame, a hung peer)
  let t = 500, gaveUpAt = -1;
  const next: string[] = [];
  for (; t <= 60_000 && next.length === 0; t += 500) {
    const fx = n.tick(t);
    if (fx.disconnect.some((d) => d.name === first[0])) {
      gaveUpAt = t;
      assert.ok(n.passiveView().includes(first[0]!), "it is a passive candidate again");
    }
    next.push(...fx.connect.map((c) => c.name));
  }
  assert.ok(gaveUpAt > 0, "the silent request is given up (its connection closed)");
  assert.equal(next.length, 1, `a new request goes out (by ${t} ms)`);
  assert.ok(t <= 2 * 10_000, `within two shuffle intervals, not never: ${t} ms`);
});

Deno.test("hyparview core: a node kept short by refusals insists (high priority) after six shuffle intervals of them, so a full component cannot shut it out", () => {
  // Two components: n and p hold each other only, every other node is full and
  // refuses low-priority requests. Without insisting they never join up.
  const n = node("n", { activeViewSize: 2, shuffleIntervalMs: 10_000 });
  n.seen(spec("p"), 0);
  n.receive("p", [HPV.Neighbor, 1], 0);
  n.up("p", 0);
  n.receive("p", [HPV.ShuffleReply, [spec("s1"), spec("s2"), spec("s3")], []], 0);
  const priorities: number[] = [];
  let t = 0, firstRefusal = -1, insistedAt = -1;
  for (let i = 0; i < 200 && insistedAt < 0; i++, t += 500) {
    const fx = n.tick(t);
    for (const c of fx.connect) {
      const g = n.greeting(c.name) as [number, number];
      assert.equal(g[0], HPV.Neighbor);
      priorities.push(g[1]);
      if (g[1] === 1) insistedAt = t;
      else {
        n.down(c.name, t + 1); // refused: closed before any confirmation
        if (firstRefusal < 0) firstRefusal = t + 1;
      }
    }
  }
  assert.ok(priorities.length >= 4, `requests made: ${priorities}`);
  assert.ok(priorities.slice(0, -1).every((p) => p === 0), `low priority first: ${priorities}`);
  assert.ok(insistedAt >= 0, `then one at high priority: ${priorities}`);
  const waited = insistedAt - firstRefusal;
  assert.ok(waited >= 60_000 && waited <= 71_000, `insisted ${waited} ms after the first refusal`);
  assert.equal(n.activeView().length, 2);
});

Deno.test("hyparview core: a shuffle walks, is answered along its path, and mixes the passive views", () => {
  const o = node("o", { shuffleIntervalMs: 1000 });
  o.seen(spec("h"), 0);
  o.receive("h", [HPV.Neighbor, 1], 0);
  o.up("h", 0);
  o.receive("h", [HPV.ShuffleReply, [spec("old")], []], 0);
  o.tick(0); // schedules
  const fx = o.tick(5000);
  const sh = fx.sends.find((s) => (s.msg as unknown[])[0] === HPV.Shuffle)!;
  assert.equal(sh.to, "h");
  const [, ttl, specs, path] = sh.msg as [number, number, NodeSpec[], string[]];
  assert.ok(ttl > 0 && specs.some((s) => s.name === "o") && path[0] === "o");
  // The last hop (z, with only o's hop as neighbour) answers back toward o.
  const z = node("z");
  z.receive("h", [HPV.ShuffleReply, [spec("zp")], []], 0);
  const ans = z.receive("h", [HPV.Shuffle, 1, specs, ["o", "h"]], 0);
  const reply = ans.sends[0]!;
  assert.equal(reply.to, "h");
  assert.deepEqual((reply.msg as unknown[]).slice(2), [["o"]]);
  assert.ok(z.passiveView().includes("o"), "the shuffle's specs land in the passive view");
  // At o, the answer integrates.
  o.receive("h", [HPV.ShuffleReply, [spec("zp")], []], 6000);
  assert.ok(o.passiveView().includes("zp"));
});

Deno.test("hyparview core: malformed messages are protocol errors; options are checked by name", () => {
  const n = node("n");
  for (const bad of ["x", [], [99], [HPV.ForwardJoin, spec("a"), -1], [HPV.Shuffle, 1, "x", []]]) {
    assert.throws(() => n.receive("p", bad, 0), ProtocolError, JSON.stringify(bad));
  }
  assert.throws(() => node("m", { activeViewSize: 0 }), /activeViewSize/);
  assert.throws(() => node("m", { passiveRandomWalkLength: 9 }), /passiveRandomWalkLength/);
  assert.throws(() => node("m", { shuffleIntervalMs: 0 }), /shuffleIntervalMs/);
});

Deno.test("hyparview core: short of neighbours with no passive member, a node asks one it only heard of, and forgets it if unreachable", () => {
  // After a mass failure, a pair of survivors holding only each other and dead
  // addresses stayed apart for good: nobody with room had them in a passive view.
  const n = node("n", { activeViewSize: 3 });
  neighbours(n, ["p", "q"]);
  for (const p of [...n.passiveView()]) n.unreachable(p, 0);
  assert.deepEqual(n.passiveView(), []);
  // A SHUFFLE walk passing through: its addresses are heard of, not passive members.
  n.receive("p", [HPV.Shuffle, 3, [spec("h")], ["p"]], 0);
  assert.deepEqual(n.passiveView(), []);
  const fx = n.tick(1_000);
  assert.ok(fx.connect.some((s) => s.name === "h"), "asks the node it heard of");
  assert.deepEqual(n.greeting("h"), [HPV.Neighbor, 0]);
  // Unreachable: forgotten, neither lost (probed again later) nor asked again.
  n.unreachable("h", 1_000);
  for (let t = 2_000; t < 60_000; t += 1_000) {
    assert.ok(!n.tick(t).connect.some((s) => s.name === "h"), `h asked again at ${t} ms`);
  }
});
