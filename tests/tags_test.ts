// Node tags (serf's tags, memberlist's Meta): set at start, changed at
// runtime without touching connections, bounded, visible in memberInfo(),
// onUp callbacks and members({ tags }) on every node.

import assert from "node:assert/strict";
import { type MembershipChange, type Node, ProtocolError } from "../mod.ts";
import { validateSpec } from "../protocol.ts";
import { TAGS_LENGTH_MAX, TAGS_MAX } from "../membership/mod.ts";
import { converged, eventually, startNode } from "./_helpers.ts";

async function trio(): Promise<[Node, Node, Node]> {
  const a = await startNode("a", { tags: { role: "web", zone: "eu-1" } });
  const b = await startNode("b", { tags: { role: "db" } });
  const c = await startNode("c");
  return [a, b, c];
}

Deno.test("tags: set at start, seen by every member, in onUp callbacks, members({ tags }) filters", async () => {
  const [a, b, c] = await trio();
  try {
    const seenUp = new Map<string, Record<string, string>>();
    c.onUp("*", (node, _channel, tags) => void seenUp.set(node, { ...tags }));
    await b.join(a.spec);
    await c.join(a.spec);
    await converged([a, b, c], ["a", "b", "c"]);
    for (const n of [a, b, c]) {
      assert.deepEqual(n.members({ tags: { role: "web" } }), ["a"], `${n.name} filters`);
      assert.deepEqual(n.members({ tags: { role: "web", zone: "eu-1" } }), ["a"]);
      assert.deepEqual(n.members({ tags: { role: "cache" } }), []);
      assert.deepEqual(n.members({ tags: {} }), ["a", "b", "c"]);
      const info = Object.fromEntries(n.memberInfo().map((m) => [m.name, m.tags]));
      assert.deepEqual(info, { a: { role: "web", zone: "eu-1" }, b: { role: "db" }, c: {} });
    }
    await eventually(() => seenUp.size === 2, "c saw a and b come up");
    assert.deepEqual(seenUp.get("a"), { role: "web", zone: "eu-1" });
    assert.deepEqual(seenUp.get("b"), { role: "db" });
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});

Deno.test("tags: setTags spreads to every member; connections stay (no down, no reconnect)", async () => {
  const [a, b, c] = await trio();
  try {
    await b.join(a.spec);
    await c.join(a.spec);
    await converged([a, b, c], ["a", "b", "c"]);
    const downs: string[] = [];
    const changes: MembershipChange[] = [];
    for (const n of [a, c]) {
      n.onDown("*", (node) => void downs.push(`${n.name}:${node}`));
      n.onMemberChange((ch) => void changes.push(ch));
    }
    const before = a.memberInfo().find((m) => m.name === "b")!;
    const t0 = performance.now();
    b.setTags({ role: "db", version: "2.1" });
    assert.deepEqual(b.tags, { role: "db", version: "2.1" });
    await eventually(
      () => [a, c].every((n) => n.members({ tags: { version: "2.1" } }).join() === "b"),
      "a and c see b's new tags",
    );
    console.log(`  new tags seen everywhere after ${Math.round(performance.now() - t0)} ms`);
    assert.deepEqual(downs, [], "no member went down");
    assert.deepEqual(changes.map((ch) => `${ch.kind} ${ch.name}`), ["updated b", "updated b"]);
    const after = a.memberInfo().find((m) => m.name === "b")!;
    assert.equal(after.incarnation, before.incarnation, "the same incarnation");
    assert.equal(after.state, "up");
    assert.deepEqual(after.tags, { role: "db", version: "2.1" });
    assert.equal(await c.call("b", "missing", 1).catch((e) => e.name), "UnknownEndpointError");
    // Twice more: the highest version wins everywhere.
    b.setTags({ role: "db", version: "2.2" });
    b.setTags({ role: "db", version: "2.3" });
    await eventually(
      () => [a, c].every((n) => n.members({ tags: { version: "2.3" } }).join() === "b"),
      "the last tags win",
    );
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});

Deno.test("tags: bounded, and bad ones are refused with what was wrong", async () => {
  await assert.rejects(
    () => startNode("x", { tags: { role: 7 as unknown as string } }),
    /invalid tags: tag "role" is not a string/,
  );
  const many = Object.fromEntries(Array.from({ length: TAGS_MAX + 1 }, (_, i) => [`k${i}`, "v"]));
  await assert.rejects(() => startNode("x", { tags: many }), /33 tags \(at most 32\)/);
  await using n = await startNode("x");
  assert.throws(
    () => n.setTags({ big: "v".repeat(TAGS_LENGTH_MAX) }),
    /tags of 1027 characters \(at most 1024/,
  );
  assert.throws(() => n.setTags({ "": "v" }), /tag name "" is not 1-64 characters/);
  assert.throws(() => n.members({ tags: { a: 1 as unknown as string } }), /invalid tags/);
  assert.deepEqual(n.tags, {}, "nothing changed");
  // From the wire: a spec with oversized tags is a protocol error.
  const spec = { name: "p", incarnation: 1, listenAddrs: [], channels: {} };
  assert.throws(
    () => validateSpec({ ...spec, tags: { big: "v".repeat(TAGS_LENGTH_MAX) } }),
    ProtocolError,
  );
  assert.deepEqual(validateSpec({ ...spec, tags: { r: "x" }, tagsVersion: 3 }).tags, { r: "x" });
});

Deno.test("tags under HyParView: neighbours see each other's tags", async () => {
  const membership = { strategy: "hyparview" as const, activeViewSize: 3, passiveViewSize: 6 };
  const nodes: Node[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const n = await startNode(`h${i}`, { membership, tags: { rank: String(i) } });
      if (i > 0) await n.join(nodes[0]!.spec);
      nodes.push(n);
    }
    const h0 = nodes[0]!;
    await eventually(() => h0.members().length === 4, "h0 has three neighbours");
    assert.deepEqual(h0.members({ tags: { rank: "2" } }), ["h2"]);
    assert.deepEqual(
      h0.memberInfo().filter((m) => m.name === "h3").map((m) => m.tags),
      [{ rank: "3" }],
    );
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});
