// Member lifecycle under crash churn and hostile gossip: dead and never-reachable
// members are reaped after deadMemberRemoveMs, by tombstones that gossip spreads.

import assert from "node:assert/strict";
import {
  encodeValue,
  entriesForWire,
  initialState,
  type MembershipState,
  step,
  Tag,
} from "../protocol.ts";
import type { Node, NodeSpec } from "../mod.ts";
import { converged, eventually, nextEvent, rawPeer, startNode } from "./_helpers.ts";

const REAP = { deadMemberRemoveMs: 1000 };

Deno.test("crash churn: crashed members are reaped, so membersMax never locks new nodes out", async () => {
  await using a = await startNode("a", { membersMax: 8, ...REAP });
  // Seven nodes join and crash (close without leaving): with a, eight entries fill membersMax.
  for (let i = 0; i < 7; i++) {
    const w = await startNode(`w${i}`, REAP);
    await w.join(a.spec);
    const down = nextEvent(a, "down", w.name);
    await w.close();
    await down;
  }
  // The crashed members leave the view after deadMemberRemoveMs.
  await eventually(() => a.members().join() === "a", "crashed members reaped", 5000);
  assert.ok(a.stats().membersRemoved >= 7, `removed ${a.stats().membersRemoved}`);
  // A new node joins within its usual time.
  await using n = await startNode("newcomer", REAP);
  const t0 = performance.now();
  await n.join(a.spec);
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `joined in ${ms.toFixed(0)} ms`);
  await converged([a, n], ["a", "newcomer"]);
});

/** A gossip frame carrying `count` made-up members (at unreachable loopback ports). */
function junkGossip(count: number, extra: unknown[] = []): Uint8Array {
  let s: MembershipState = initialState({
    name: "junk-0",
    incarnation: 1,
    listenAddrs: [{ hostname: "127.255.255.254", port: 1 }],
    channels: {},
  });
  for (let i = 1; i < count; i++) {
    const spec: NodeSpec = {
      name: `junk-${i}`,
      incarnation: 1,
      listenAddrs: [{ hostname: "127.255.255.254", port: 1 + (i % 60000) }],
      channels: {},
    };
    s = step(s, { type: "seen", spec }, 1_000_000).state;
  }
  return encodeValue([Tag.Gossip, [...entriesForWire(s), ...extra]]);
}

Deno.test("hostile gossip: 4,093 made-up members are reaped everywhere and a new node joins", async () => {
  // Built before the nodes start: building it takes the event loop for a while
  // (a second under load), long enough for the nodes to time each other out.
  const junk = junkGossip(4093);
  await using a = await startNode("a", REAP);
  await using b = await startNode("b", REAP);
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const conn = await rawPeer(a.spec.listenAddrs[0]!);
  try {
    await conn.write([junk]);
    // Spread: b holds the junk, or has already reaped it (a stall of the shared event loop
    // longer than deadMemberRemoveMs would otherwise hide the second it is in b's view).
    await eventually(
      () => b.members().length > 1000 || b.stats().membersRemoved > 1000,
      "junk spread to b",
      5000,
    );
  } finally {
    conn.close();
  }
  // Never-reachable members are reaped like dead ones, on every node.
  await eventually(
    () => a.members().join() === "a,b" && b.members().join() === "a,b",
    "junk reaped on a and b",
    8000,
  );
  // "Its usual time": a join between two fresh nodes, timed just before on the same machine.
  await using r0 = await startNode("r0", REAP);
  await using r1 = await startNode("r1", REAP);
  let t0 = performance.now();
  await r1.join(r0.spec);
  const usual = performance.now() - t0;
  await using c = await startNode("c", REAP);
  t0 = performance.now();
  await c.join(a.spec);
  const ms = performance.now() - t0;
  console.log(`c joined in ${ms.toFixed(0)} ms (a fresh pair: ${usual.toFixed(0)} ms)`);
  assert.ok(ms < Math.max(1000, 4 * usual), "c joined within its usual time");
  await converged([a, b, c], ["a", "b", "c"]);
  // Reaped junk does not come back through gossip (tombstones win at the same incarnation).
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(a.members(), ["a", "b", "c"]);
});

Deno.test("hostile gossip: an invalid entry is dropped and counted, the valid ones are applied", async () => {
  await using a = await startNode("a", REAP);
  const conn = await rawPeer(a.spec.listenAddrs[0]!);
  try {
    const bad = [{ name: "", incarnation: -1, listenAddrs: "x", channels: 3 }, false];
    await conn.write([junkGossip(10, [bad])]);
    await eventually(() => a.members().length >= 11, "valid entries applied", 3000);
    assert.ok(a.stats().invalidEntries >= 1, "the invalid entry was counted");
    assert.equal(a.stats().badConnections, 0, "the connection was not closed for it");
  } finally {
    conn.close();
  }
});

Deno.test("leave(name) removes a crashed member by hand, on every node", async () => {
  await using a = await startNode("a", { deadMemberRemoveMs: 60_000 });
  await using b = await startNode("b", { deadMemberRemoveMs: 60_000 });
  const c = await startNode("c", { deadMemberRemoveMs: 60_000 });
  await b.join(a.spec);
  await c.join(a.spec);
  await converged([a, b, c], ["a", "b", "c"]);
  const down = Promise.all([nextEvent(a, "down", "c"), nextEvent(b, "down", "c")]);
  await c.close(); // a crash: c never leaves
  await down;
  assert.deepEqual(a.members(), ["a", "b", "c"], "a crashed node stays a member until reaped");
  await (a as Node).leave("c");
  assert.deepEqual(a.members(), ["a", "b"]);
  await eventually(() => b.members().join() === "a,b", "b hears of the removal", 3000);
  assert.deepEqual(a.connectedMembers(), ["a", "b"], "a is still in the cluster");
});

Deno.test("a partition longer than deadMemberRemoveMs still heals: removed members find each other again", async () => {
  const opts = { deadMemberRemoveMs: 800, deadProbeIntervalMs: 200, tombstoneTtlMs: 60_000 };
  await using a = await startNode("a", opts);
  await using b = await startNode("b", opts);
  await using c = await startNode("c", opts);
  await b.join(a.spec);
  await c.join(a.spec);
  await converged([a, b, c], ["a", "b", "c"]);
  // c is cut off from a and b, on both sides, for 2 s: longer than deadMemberRemoveMs.
  a.injectPartition("c", { ttlMs: 2000 });
  b.injectPartition("c", { ttlMs: 2000 });
  c.injectPartition(["a", "b"], { ttlMs: 2000 });
  await eventually(
    () =>
      a.members().join() === "a,b" && b.members().join() === "a,b" && c.members().join() === "c",
    "both sides removed the other",
    4000,
  );
  assert.ok(a.stats().membersRemoved >= 1 && c.stats().membersRemoved >= 2);
  // After the partition, probes of removed members reach them; the side that finds
  // itself tombstoned (or stale) takes a higher incarnation, and the views merge.
  await converged([a, b, c], ["a", "b", "c"], 8000);
  const refutations = a.stats().refutations + b.stats().refutations + c.stats().refutations;
  assert.ok(refutations >= 1, `incarnations were raised (${refutations})`);
});

Deno.test("membersForOrchestration, onUp for one channel, and the stale warning", async () => {
  const records: { level: string; msg: string }[] = [];
  await using a = await startNode("a", { channels: { bulk: { parallelism: 2 } } });
  const b1 = await startNode("b", { incarnation: 5, channels: { bulk: { parallelism: 2 } } });
  const ups: string[] = [];
  a.onUp("*", (n) => ups.push(n), { channel: "bulk" });
  assert.throws(() => a.onUp("*", () => {}, { channel: "nope" }), TypeError);
  await b1.join(a.spec);
  assert.deepEqual(a.membersForOrchestration().map((s) => [s.name, s.incarnation]), [
    ["a", a.spec.incarnation],
    ["b", 5],
  ]);
  assert.deepEqual(ups, ["b"]);
  const down = nextEvent(a, "down", "b");
  await b1.close();
  await down;
  await using b2 = await startNode("b", {
    incarnation: 3,
    channels: { bulk: { parallelism: 2 } },
    logger: (r) => records.push(r),
  });
  const r = await b2.join(a.spec);
  assert.equal(r.incarnation, 6);
  assert.ok(
    records.some((x) => x.level === "warn" && /stale/.test(x.msg) && /incarnation 6/.test(x.msg)),
    "the node says at warn level that it was stale, and what it took",
  );
  await eventually(() => ups.length === 2, "up again for the bulk channel");
});
