// The seams of membership and delivery: a member listed by members() is one a
// send can reach; an unawaited acknowledged send never kills the process;
// onUp/onDown per channel; HyParView's members() is its active view; unknown
// send options are refused by name.

import assert from "node:assert/strict";
import { type Node, NodeDownError, UnknownNodeError } from "../mod.ts";
import { converged, eventually, nextEvent, startNode, withPeerDown } from "./_helpers.ts";

/** Four nodes a, b, c and d; d joins through a while b watches for it. */
async function fourth(
  prepare: (d: Node) => void,
  onListed: (b: Node) => void,
): Promise<{ nodes: Node[]; close: () => Promise<void> }> {
  const a = await startNode("a"), b = await startNode("b"), c = await startNode("c");
  await b.join(a.spec);
  await c.join(a.spec);
  await converged([a, b, c], ["a", "b", "c"]);
  const d = await startNode("d");
  prepare(d);
  let fired = false;
  const off = b.onMemberChange((ch) => {
    if (ch.kind === "added" && ch.name === "d" && !fired) {
      fired = true;
      assert.ok(b.members().includes("d"), "b lists d");
      onListed(b);
    }
  });
  await d.join(a.spec);
  await converged([a, b, c, d], ["a", "b", "c", "d"]);
  off();
  assert.ok(fired, "b learned of d by gossip");
  return {
    nodes: [a, b, c, d],
    close: async () => {
      for (const n of [a, b, c, d]) await n.close();
    },
  };
}

Deno.test("a send right after members() lists a new member waits for its connection: all 100 arrive, in order", async () => {
  for (let round = 0; round < 3; round++) {
    const got: number[] = [];
    let dropsBefore = 0;
    let b: Node | undefined;
    const c = await fourth((d) => {
      d.register("sink", (m) => {
        got.push(m as number);
      });
    }, (bb) => {
      b = bb;
      dropsBefore = bb.stats().sendDrops;
      // Fire-and-forget, at once: the connection to d is still being opened.
      for (let i = 0; i < 100; i++) void bb.send("d", "sink", i);
    });
    try {
      await eventually(
        () => got.length === 100 || b!.stats().sendDrops > dropsBefore,
        "100 messages or a drop",
      );
      assert.equal(b!.stats().sendDrops - dropsBefore, 0, "nothing dropped");
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i), "all 100, in order");
    } finally {
      await c.close();
    }
  }
});

Deno.test("a call and an acknowledged send right after members() lists a new member succeed", async () => {
  let call: Promise<unknown> | undefined, acked: Promise<void> | undefined;
  let delivered = 0;
  const c = await fourth((d) => {
    d.register("echo", (m) => m);
    d.register("count", () => void delivered++);
  }, (b) => {
    call = b.call("d", "echo", "hello");
    acked = b.send("d", "count", 1, { ack: true });
  });
  try {
    assert.equal(await call, "hello");
    await acked;
    assert.equal(delivered, 1);
  } finally {
    await c.close();
  }
});

Deno.test("an unawaited acknowledged send that fails never kills the process; a caller that awaits learns why", async () => {
  await using a = await withPeerDown({ ackTimeoutMs: 200 });
  const before = a.stats().ackFailures;
  // Not awaited, not caught: as Partisan's acked forward_message. On main this is an
  // "Uncaught (in promise)" that fails the test (and ends a process).
  a.send("b", "echo", 1, { ack: true, timeoutMs: 100 });
  a.send("nobody", "echo", 2, { ack: true, timeoutMs: 100 });
  await eventually(() => a.stats().ackFailures - before === 2, "two failures counted");
  // Whoever awaits gets the error.
  await assert.rejects(a.send("nobody", "echo", 3, { ack: true }), UnknownNodeError);
});

Deno.test("onUp and onDown with { channel } fire per channel and pass the node and the channel", async () => {
  const channels = { bulk: { parallelism: 2 } };
  await using a = await startNode("a", { channels });
  const b = await startNode("b", { channels });
  const seen: string[] = [];
  a.onUp("b", (node, channel) => seen.push(`up ${node} ${channel}`), { channel: "bulk" });
  a.onUp("*", (node, channel) => seen.push(`up* ${node} ${channel}`), { channel: "default" });
  a.onDown("*", (node, channel) => seen.push(`down ${node} ${channel}`), { channel: "bulk" });
  a.onUp("b", (node, channel) => seen.push(`plain ${node} ${channel}`));
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const down = nextEvent(a, "down", "b");
  await b.close();
  await down;
  assert.deepEqual(seen.sort(), [
    "down b bulk",
    "plain b undefined",
    "up b bulk",
    "up* b default",
  ]);
  assert.throws(() => a.onUp("b", () => {}, { channel: "nope" }), /unknown channel "nope"/);
});

Deno.test("unknown send and call options are refused with a TypeError naming the key", async () => {
  await using a = await startNode("a");
  a.register("echo", (m) => m);
  assert.throws(
    () => a.send("a", "echo", 1, { partitonKey: 1 } as never),
    (e: unknown) => e instanceof TypeError && /unknown send option "partitonKey"/.test(e.message),
  );
  assert.throws(
    () => a.send("a", "echo", 1, { clock: {} } as never),
    (e: unknown) => e instanceof TypeError && /"clock"/.test(e.message),
  );
  await assert.rejects(
    a.call("a", "echo", 1, { timeout: 5 } as never),
    (e: unknown) => e instanceof TypeError && /unknown call option "timeout"/.test(e.message),
  );
  await assert.rejects(
    a.sendMany(["a"], "echo", 1, { ack: true } as never),
    (e: unknown) => e instanceof TypeError && /"ack"/.test(e.message),
  );
});

Deno.test("under HyParView members() is the active view and self; the passive view has its own name", async () => {
  const opts = {
    membership: { strategy: "hyparview" as const, activeViewSize: 2, passiveViewSize: 8 },
  };
  const nodes: Node[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      const n = await startNode(`p${i}`, opts);
      if (nodes.length > 0) await n.join(nodes[0]!.spec);
      nodes.push(n);
    }
    await eventually(
      () => nodes.some((n) => n.passiveMembers().length > 0),
      "some node has a passive view",
    );
    for (const n of nodes) {
      const active = n.connectedMembers().filter((m) => m !== n.name);
      const passive = n.passiveMembers();
      assert.ok(
        n.members().length <= 3,
        `${n.name}: members() ${n.members()} holds at most the active view (2) and self`,
      );
      for (const p of passive) {
        if (!active.includes(p)) assert.ok(!n.members().includes(p), `${n.name}: passive ${p}`);
      }
    }
  } finally {
    for (const n of nodes) await n.close();
  }
});

Deno.test("a send to a member that is really down is dropped and counted at once", async () => {
  await using a = await withPeerDown();
  const before = a.stats().sendDrops;
  await a.send("b", "echo", 1);
  assert.equal(a.stats().sendDrops - before, 1);
  await assert.rejects(a.call("b", "echo", 1), NodeDownError);
});
