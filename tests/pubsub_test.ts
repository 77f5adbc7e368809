// PubSub over real TCP: 8 nodes, subscribers on some of them; every
// subscriber gets every message once, in order per publisher; nodes without
// subscribers get nothing; a late joiner's subscriber is reached; a node
// that dies with subscribers leaves the topic; a subscriber that throws or
// hangs stops no one else; HyParView nodes work the same.

import assert from "node:assert/strict";
import { type Node, PubSub } from "../mod.ts";
import { converged, eventually, startNode } from "./_helpers.ts";

const SEED = Number(Deno.env.get("PUBSUB_SEED") ?? Date.now() % 100_000);
console.log(`pubsub seed: ${SEED} (PUBSUB_SEED=${SEED} to repeat)`);

function rng(seed: number) {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

interface Member {
  node: Node;
  ps: PubSub;
}

async function cluster(n: number, hyparview = false): Promise<Member[]> {
  const membership = hyparview
    ? { strategy: "hyparview" as const, activeViewSize: 3, passiveViewSize: 8 }
    : undefined;
  const out: Member[] = [];
  for (let i = 0; i < n; i++) {
    const node = await startNode(`n${i}`, membership ? { membership } : {});
    if (i > 0) await node.join(out[0]!.node.spec);
    out.push({ node, ps: await PubSub.start(node, "app") });
  }
  if (!hyparview) await converged(out.map((m) => m.node), out.map((m) => m.node.name), 10_000);
  return out;
}

async function closeAll(ms: Member[]) {
  for (const m of ms) await m.ps.close();
  await Promise.all(ms.map((m) => m.node.close()));
}

/** Waits until every member sees `want` as the nodes subscribed to `topic`. */
function subscribed(ms: Member[], topic: string, want: string[], timeoutMs = 10_000) {
  const w = [...want].sort().join(",");
  return eventually(
    () => ms.every((m) => m.ps.subscribers(topic).join(",") === w),
    `every node to see ${w} subscribed to ${topic}`,
    timeoutMs,
    20,
  );
}

Deno.test("8 nodes: every subscriber gets every message once, in order per publisher; nodes without subscribers get nothing", async () => {
  const next = rng(SEED);
  const ms = await cluster(8);
  try {
    // 0-3 subscribers per node, drawn from the seed; at least two nodes without.
    const counts = ms.map((_, i) => (i < 2 ? 0 : Math.floor(next() * 4)));
    if (counts.reduce((x, y) => x + y, 0) === 0) counts[7] = 1;
    const got: { from: string; n: number }[][] = [];
    for (const [i, m] of ms.entries()) {
      for (let k = 0; k < counts[i]!; k++) {
        const mine: { from: string; n: number }[] = [];
        got.push(mine);
        await m.ps.subscribe(
          "t",
          (msg, ctx) => void mine.push({ from: ctx.from, n: msg as number }),
        );
      }
    }
    const withSubs = ms.filter((_, i) => counts[i]! > 0).map((m) => m.node.name);
    await subscribed(ms, "t", withSubs);
    const PER = 200;
    for (let n = 0; n < PER; n++) {
      for (const m of ms) void m.ps.publish("t", n);
    }
    await eventually(
      () => got.every((g) => g.length === PER * 8),
      "every message everywhere",
      15_000,
      20,
    );
    for (const g of got) {
      for (const m of ms) {
        const seq = g.filter((x) => x.from === m.node.name).map((x) => x.n);
        assert.deepEqual(
          seq,
          Array.from({ length: PER }, (_, i) => i),
          `in order from ${m.node.name}`,
        );
      }
    }
    for (const [i, m] of ms.entries()) {
      const s = m.ps.stats();
      assert.equal(s.published, PER);
      if (counts[i] === 0) {
        assert.equal(s.received, 0, `${m.node.name} has no subscriber and got nothing`);
      } else {assert.equal(
          s.received,
          PER * 7,
          `${m.node.name}: one frame per message from each other node`,
        );}
      assert.equal(s.drops + s.invalid + s.handlerErrors + s.malformed, 0);
    }
  } finally {
    await closeAll(ms);
  }
});

Deno.test("a subscriber on a node that joins late is reached; a node that dies with subscribers leaves the topic", async () => {
  const ms = await cluster(3);
  let late: Member | undefined;
  try {
    const at0: unknown[] = [];
    await ms[1]!.ps.subscribe("room", (m) => void at0.push(m));
    await subscribed(ms, "room", ["n1"]);
    const node = await startNode("late");
    await node.join(ms[0]!.node.spec);
    late = { node, ps: await PubSub.start(node, "app") };
    const atLate: unknown[] = [];
    await late.ps.subscribe("room", (m) => void atLate.push(m));
    await subscribed([...ms, late], "room", ["late", "n1"]);
    const r = await ms[2]!.ps.publish("room", "hello", { ack: true });
    assert.deepEqual(r, { nodes: 2, failed: [] });
    assert.deepEqual(atLate, ["hello"], "acknowledged: already handed over");
    await eventually(() => at0.length === 1, "n1 got it too");
    // The late node dies with its subscriber: it leaves the topic everywhere.
    await late.node.close();
    late = undefined;
    await subscribed(ms, "room", ["n1"]);
    const r2 = await ms[2]!.ps.publish("room", "again");
    assert.equal(r2.nodes, 1);
    await eventually(() => at0.length === 2, "n1 still served");
  } finally {
    if (late) await late.node.close();
    await closeAll(ms);
  }
});

Deno.test("a subscriber that throws or hangs stops no one; a full queue drops and counts; the last unsubscribe leaves the topic", async () => {
  const ms = await cluster(2);
  try {
    const [a, b] = ms as [Member, Member];
    const ok: number[] = [];
    let thrown = 0;
    const offThrowing = await b.ps.subscribe("x", () => {
      thrown++;
      throw new Error("bad subscriber");
    });
    const off = await b.ps.subscribe("x", (m) => void ok.push(m as number));
    await subscribed(ms, "x", ["n1"]);
    for (let i = 0; i < 5; i++) await a.ps.publish("x", i);
    await eventually(() => ok.length === 5 && thrown === 5, "the good one got all five");
    assert.deepEqual(ok, [0, 1, 2, 3, 4]);
    assert.equal(b.ps.stats().handlerErrors, 5);
    await off();
    assert.equal(b.ps.localSubscribers("x"), 1);
    assert.deepEqual(b.ps.subscribers("x"), ["n1"], "one subscriber left: still subscribed");
    await offThrowing();
    await subscribed(ms, "x", []);
    assert.deepEqual(await a.ps.publish("x", 9), { nodes: 0, failed: [] });
    // A hung subscriber with a small queue, on a pubsub of its own.
    await using small = await PubSub.start(b.node, "small", { queueMax: 4 });
    await using other = await PubSub.start(a.node, "small");
    const hung = Promise.withResolvers<void>();
    const seen: number[] = [];
    const offHung = await small.subscribe("h", async (m) => {
      seen.push(m as number);
      await hung.promise;
    });
    const fast: number[] = [];
    await small.subscribe("h", (m) => void fast.push(m as number));
    await eventually(() => other.subscribers("h").includes("n1"), "a sees n1 on h");
    for (let i = 0; i < 10; i++) await other.publish("h", i);
    await eventually(
      () => fast.length === 10,
      `the fast subscriber got all ten (${JSON.stringify([fast, seen, small.stats()])})`,
    );
    // The hung one holds message 0; 4 wait; 5 were dropped for it alone.
    assert.deepEqual(seen, [0]);
    assert.equal(small.stats().drops, 5);
    hung.resolve();
    await eventually(() => seen.length === 5, "the hung one catches up with what it kept");
    await offHung();
  } finally {
    await closeAll(ms);
  }
});

Deno.test("localBroadcast stays on this node; bad input is refused with what was wrong", async () => {
  const ms = await cluster(2);
  try {
    const [a, b] = ms as [Member, Member];
    const atA: unknown[] = [], atB: unknown[] = [];
    await a.ps.subscribe("l", (m) => void atA.push(m));
    await b.ps.subscribe("l", (m) => void atB.push(m));
    await subscribed(ms, "l", ["n0", "n1"]);
    const obj = { v: 1 };
    assert.equal(a.ps.localBroadcast("l", obj), 1);
    await eventually(() => atA.length === 1, "local delivery");
    assert.notEqual(atA[0], obj, "subscribers get a copy, not the publisher's object");
    assert.deepEqual(atA[0], obj);
    assert.equal(b.ps.stats().received, 0);
    await assert.rejects(
      () => a.ps.publish("l", { f: () => 1 }),
      /cannot publish on "l": msg\.f is a function/,
    );
    await b.ps.subscribe("r", () => {});
    await subscribed(ms, "r", ["n1"]);
    await assert.rejects(
      () => a.ps.publish("r", { f: () => 1 }),
      /cannot publish on "r": msg\.f is a function/,
    );
    await assert.rejects(
      () => b.ps.publish("nobody", { f: () => 1 }),
      /cannot publish on "nobody": msg\.f is a function/,
    );
    await assert.rejects(() => a.ps.publish(3 as unknown as string, 1), /a topic is a string/);
    await assert.rejects(() => a.ps.subscribe("l", 5 as never), /handler is a function/);
    await assert.rejects(
      () => PubSub.start(a.node, "app"),
      /pubsub "app" already runs on node "n0"/,
    );
    await assert.rejects(() => PubSub.start(a.node, "q", { queueMax: 0 }), /queueMax must be/);
    assert.equal(atB.length, 0);
  } finally {
    await closeAll(ms);
  }
});

Deno.test("HyParView: 8 nodes with partial views, every subscriber reached", async () => {
  const ms = await cluster(8, true);
  try {
    const got = new Map<string, number[]>();
    for (const m of ms.slice(4)) {
      const mine: number[] = [];
      got.set(m.node.name, mine);
      await m.ps.subscribe("hv", (msg) => void mine.push(msg as number));
    }
    await subscribed(ms, "hv", ms.slice(4).map((m) => m.node.name), 20_000);
    for (let i = 0; i < 20; i++) await ms[0]!.ps.publish("hv", i);
    // Acknowledged end to end under a partial view (a routed frame can be lost while the
    // overlay changes): each subscriber gets each message once.
    await eventually(
      () => [...got.values()].every((g) => g.length === 20),
      "all 20 everywhere",
      10_000,
    ).catch((e) => {
      console.log(
        [...got.entries()].map(([k, v]) => `${k}:${v.length}`),
        ms.map((m) =>
          `${m.node.name} ${m.node.members().join(",")} ${
            JSON.stringify(m.ps.stats())
          } ${m.node.stats().sendDrops}`
        ),
      );
      throw e;
    });
    for (const g of got.values()) {
      assert.deepEqual([...g].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
    }
  } finally {
    await closeAll(ms);
  }
});
