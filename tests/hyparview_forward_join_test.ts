// Issue 29, fault 6: a flood of FORWARD_JOINs naming made-up nodes emptied a
// HyParView node's active view (each one evicted a working neighbour for an
// unproven newcomer) and made it dial the attacker's addresses over and over.
// Now a forwarded joiner is taken only once its connection is up (a working
// neighbour is dropped for it then, not before), and the candidates being
// dialed are bounded, per forwarding neighbour and in all.

import assert from "node:assert/strict";
import { encodeValue, Tag } from "../protocol.ts";
import type { Node } from "../mod.ts";
import { eventually, rawPeer, startNode, tarpit } from "./_helpers.ts";

const HPV_FORWARD_JOIN = 1;

Deno.test("hyparview: a flood of FORWARD_JOINs of made-up nodes keeps the working neighbours", async () => {
  // A tarpit: accepts TCP and never answers (the made-up nodes' address).
  const pit = tarpit();
  const membership = { strategy: "hyparview" as const, activeViewSize: 3, passiveViewSize: 8 };
  const nodes: Node[] = [];
  let mallory: Awaited<ReturnType<typeof rawPeer>> | undefined;
  try {
    const t = await startNode("target", { membership, connectTimeoutMs: 3000 });
    nodes.push(t);
    for (let i = 1; i <= 3; i++) {
      const n = await startNode(`n${i}`, { membership });
      await n.join(t.spec);
      nodes.push(n);
    }
    await eventually(
      () => t.connectedMembers().filter((m) => m !== "target").length === 3,
      "three working neighbours",
    );
    const before = t.connectedMembers().join();
    mallory = await rawPeer(t.listenAddr);
    const port = pit.port;
    const frames = Array.from({ length: 200 }, (_, i) =>
      encodeValue([Tag.Gossip, [
        HPV_FORWARD_JOIN,
        {
          name: `fake-${i}`,
          incarnation: 1,
          listenAddrs: [{ hostname: "127.0.0.1", port }],
          channels: {},
        },
        0,
      ]]).slice());
    await mallory.write(frames);
    // Give the flood time to do its harm (the tarpit holds each dial for connectTimeoutMs).
    await new Promise((r) => setTimeout(r, 1500));
    const after = t.connectedMembers().join();
    console.log(
      `  neighbours before ${before}, after ${after}; ${pit.dials()} dials to the tarpit`,
    );
    assert.equal(after, before, "the working neighbours stay");
    assert.ok(pit.dials() <= 8, `${pit.dials()} dials on the attacker's behalf (bounded)`);
    for (const n of nodes.slice(1)) {
      assert.ok(n.connectedMembers().includes("target"), `${n.name} still has target`);
    }
  } finally {
    mallory?.close();
    await Promise.all(nodes.map((n) => n.close()));
    await pit.close();
  }
});
