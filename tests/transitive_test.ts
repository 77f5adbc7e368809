// Transitive sends and calls (send's and call's `transitive`): under HyParView a
// message to a member that is not a neighbour travels hop by hop through the
// overlay, with a hop limit and no new connection.

import assert from "node:assert/strict";
import type { Node } from "../mod.ts";
import { eventually, startNode } from "./_helpers.ts";

const SEED = Number(Deno.env.get("HPV_SEED") ?? Date.now() % 100_000);

async function overlay(n: number, active: number, extra = {}): Promise<Node[]> {
  let s = SEED;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    const node = await startNode(`t${String(i).padStart(2, "0")}`, {
      membership: { strategy: "hyparview", activeViewSize: active, passiveViewSize: 8 },
      ...extra,
    });
    if (nodes.length > 0) await node.join(nodes[Math.floor(next() * nodes.length)]!.spec);
    nodes.push(node);
  }
  // A settled overlay: every node has a neighbour, and every link is known at both ends.
  const settled = () =>
    nodes.every((x) =>
      x.connectedMembers().length >= 2 &&
      x.connectedMembers().every((m) =>
        m === x.name || nodes.find((y) => y.name === m)?.connectedMembers().includes(x.name)
      )
    );
  await eventually(settled, "a settled overlay", 10_000);
  return nodes;
}

/** Pairs (a, b) where b is not a neighbour of a, as many as `count`. */
function strangers(nodes: Node[], count: number): [Node, Node][] {
  const out: [Node, Node][] = [];
  for (const a of nodes) {
    for (const b of nodes) {
      if (out.length >= count) return out;
      if (a !== b && !a.connectedMembers().includes(b.name)) out.push([a, b]);
    }
  }
  return out;
}

Deno.test(`transitive: 16 HyParView nodes (active view 3): sends, acknowledged sends and calls to 10 non-neighbours arrive, with no new connection (HPV_SEED=${SEED})`, async () => {
  console.log(`HPV_SEED=${SEED}`);
  const nodes = await overlay(16, 3);
  try {
    const got = new Map<string, unknown[]>();
    for (const n of nodes) {
      n.register(
        "inbox",
        (m, ctx) => void got.set(n.name, [...(got.get(n.name) ?? []), [ctx.from, m]]),
      );
      n.register("whoami", (m, ctx) => ({ me: n.name, from: ctx.from, m }));
    }
    const pairs = strangers(nodes, 10);
    assert.equal(pairs.length, 10, "10 pairs that are not neighbours");
    const direct = nodes.reduce((a, n) => a + n.stats().directConnections, 0);
    // Acknowledged sends and calls arrive whatever the overlay does meanwhile.
    for (const [a, b] of pairs) {
      await a.send(b.name, "inbox", `acked from ${a.name}`, { transitive: true, ack: true });
      assert.deepEqual(
        await a.call(b.name, "whoami", 7, { transitive: true }),
        { me: b.name, from: a.name, m: 7 },
      );
    }
    // Fire-and-forget ones are at most once: they arrive unless a link of the
    // overlay went down on their way (then the test says how many were lost).
    let changes = 0;
    const offs = nodes.map((n) => n.onDown("*", () => void changes++));
    for (const [a, b] of pairs) {
      await a.send(b.name, "inbox", `hello from ${a.name}`, { transitive: true });
    }
    const arrived = (a: Node, b: Node, what: string) =>
      (got.get(b.name) ?? []).some((x) =>
        (x as string[])[0] === a.name && (x as string[])[1] === what
      );
    await eventually(
      () => changes > 0 || pairs.every(([a, b]) => arrived(a, b, `hello from ${a.name}`)),
      "every send arrived",
    ).catch(() => {});
    for (const off of offs) off();
    const lost = pairs.filter(([a, b]) => !arrived(a, b, `hello from ${a.name}`)).length;
    if (changes === 0) assert.equal(lost, 0, "no link went down: every send arrived");
    else console.log(`${changes} links went down meanwhile: ${lost} of 10 at-most-once sends lost`);
    for (const [a, b] of pairs) {
      const mine = (got.get(b.name) ?? []).filter((x) => (x as string[])[0] === a.name);
      assert.equal(
        mine.filter((x) => (x as string[])[1] === `acked from ${a.name}`).length,
        1,
        "the acknowledged send arrived once",
      );
    }
    assert.equal(
      nodes.reduce((a, n) => a + n.stats().directConnections, 0),
      direct,
      "no direct connection was opened",
    );
    const [a0, b0] = pairs[0]!;
    await assert.rejects(
      a0.call(b0.name, "nothing-here", 1, { transitive: true }),
      (e: unknown) => (e as Error).name === "UnknownEndpointError",
    );
    const forwarded = nodes.reduce((a, n) => a + n.stats().forwarded, 0);
    console.log(`${forwarded} hops forwarded for 30 routed messages and their answers`);
    assert.ok(forwarded > 0);
  } finally {
    for (const n of nodes) await n.close();
  }
});
