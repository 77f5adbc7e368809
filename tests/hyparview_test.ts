// HyParView on real nodes over TCP (loopback): partial views, Plumtree over
// the active views, direct connections for send and call to non-neighbours,
// survivors still served after nodes die, publishers over the overlay.

import assert from "node:assert/strict";
import { DataPublisher, type Node, NodeDownError, Plumtree, ProcessGroups } from "../mod.ts";
import { eventually, startNode } from "./_helpers.ts";
import { LogHandler } from "./_plumtree_fixture.ts";

const SEED = Number(Deno.env.get("HPV_SEED") ?? Date.now() % 100_000);

function rng(seed: number) {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

async function cluster(n: number, active: number): Promise<Node[]> {
  const next = rng(SEED);
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    const node = await startNode(`h${String(i).padStart(2, "0")}`, {
      membership: { strategy: "hyparview", activeViewSize: active, passiveViewSize: 8 },
    });
    if (nodes.length > 0) await node.join(nodes[Math.floor(next() * nodes.length)]!.spec);
    nodes.push(node);
  }
  return nodes;
}

/** The neighbour graph (connectedMembers) when it is symmetric with no node alone, else undefined. */
function symmetric(nodes: Node[]): Map<string, string[]> | undefined {
  const names = new Set(nodes.map((n) => n.name));
  const nb = new Map(nodes.map((n) => [n.name, n.connectedMembers().filter((m) => m !== n.name)]));
  for (const [a, list] of nb) {
    if (list.length === 0) return undefined;
    for (const b of list) if (names.has(b) && !nb.get(b)?.includes(a)) return undefined;
  }
  return nb;
}

/** Prints every node's neighbours and members (when an overlay wait times out). */
function printViews(nodes: Node[]): void {
  for (const n of nodes) {
    console.log(
      n.name,
      "connected",
      n.connectedMembers().join(","),
      "members",
      n.members().join(","),
    );
  }
}

/** True when the neighbour graph (connectedMembers) is connected and symmetric. */
function overlayOk(nodes: Node[]): boolean {
  const names = new Set(nodes.map((n) => n.name));
  const nb = symmetric(nodes);
  if (nb === undefined) return false;
  const seen = new Set([nodes[0]!.name]);
  const stack = [nodes[0]!.name];
  while (stack.length > 0) {
    for (const b of nb.get(stack.pop()!) ?? []) {
      if (names.has(b) && !seen.has(b)) {
        seen.add(b);
        stack.push(b);
      }
    }
  }
  return seen.size === nodes.length;
}

Deno.test(`hyparview: 12 nodes, partial views, broadcasts reach all, direct sends, failures (HPV_SEED=${SEED})`, async () => {
  console.log(`HPV_SEED=${SEED}`);
  const nodes = await cluster(12, 3);
  const plumtrees: Plumtree[] = [];
  try {
    await eventually(() => overlayOk(nodes), "a connected, symmetric overlay", 15_000, 50)
      .catch((e) => {
        printViews(nodes);
        throw e;
      });
    for (const n of nodes) {
      assert.equal(n.strategy, "hyparview");
      const neighbours = n.connectedMembers().length - 1;
      assert.ok(neighbours >= 1 && neighbours <= 3, `${n.name}: ${neighbours} neighbours`);
      assert.ok(n.members().length <= 1 + 3 + 8, `${n.name} knows ${n.members().length}`);
    }
    console.log(
      "neighbours:",
      nodes.map((n) => `${n.name}:${n.connectedMembers().length - 1}`).join(" "),
    );

    // Plumtree over the active views.
    const logs = nodes.map(() => new LogHandler());
    for (const [i, n] of nodes.entries()) {
      plumtrees.push(await Plumtree.start(n, { handlers: [logs[i]!], logger: () => {} }));
    }
    for (let i = 0; i < 10; i++) await plumtrees[0]!.broadcast({ id: `m${i}`, body: "x" }, "log");
    await eventually(
      () => logs.every((l) => l.store.size === 10),
      "every node delivers every broadcast",
      10_000,
      20,
    );

    // send and call to a node that is not a neighbour: a direct connection.
    const a = nodes[0]!;
    const far = nodes.find((n) =>
      n !== a && !a.connectedMembers().includes(n.name) &&
      a.memberSpec(n.name) !== undefined
    );
    if (far !== undefined) {
      const ups: string[] = [];
      const off = a.onUp("*", (p) => ups.push(p));
      far.register("echo", (m) => m);
      assert.equal(await a.call(far.name, "echo", "hi", { timeoutMs: 5000 }), "hi");
      const got = Promise.withResolvers<unknown>();
      far.register("inbox", (m) => got.resolve(m));
      await a.send(far.name, "inbox", { n: 1 });
      assert.deepEqual(await got.promise, { n: 1 });
      assert.ok(!a.connectedMembers().includes(far.name), "a direct connection is not a neighbour");
      assert.ok(!ups.includes(far.name), "and fires no onUp");
      off();
    } else console.log("every known node is a neighbour here: direct sends not exercised");

    // A third of the nodes die: the survivors still receive every later broadcast.
    const dead = nodes.slice(8);
    for (const d of dead) await d.close();
    const live = nodes.slice(0, 8);
    for (let i = 10; i < 20; i++) {
      await plumtrees[1]!.broadcast({ id: `m${i}`, body: "y" }, "log");
    }
    await eventually(
      () => logs.slice(0, 8).every((l) => l.store.size === 20),
      "every survivor delivers every later broadcast",
      20_000,
      50,
    );
    try {
      await eventually(() => overlayOk(live), "the survivors' overlay repaired", 20_000, 50);
    } catch (e) {
      printViews(live);
      throw e;
    }
  } finally {
    for (const p of plumtrees) await p.close().catch(() => {});
    for (const n of nodes) await n.close();
  }
});

Deno.test(`hyparview: a direct connection stays open while calls use it, closes after directIdleMs unused, and the next call reopens it (HPV_SEED=${SEED})`, async () => {
  const next = rng(SEED);
  const nodes: Node[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      const node = await startNode(`d${i}`, {
        membership: { strategy: "hyparview", activeViewSize: 2, directIdleMs: 800 },
        // Under a loaded test run a stalled event loop must not pass for a failed neighbour
        // (whose replacement could promote the direct connection below).
        failureTimeoutMs: 5000,
      });
      node.register("echo", (m) => m);
      if (nodes.length > 0) await node.join(nodes[Math.floor(next() * nodes.length)]!.spec);
      nodes.push(node);
    }
    // Settled: symmetric active views, none empty. Connectivity is not needed here: a direct
    // connection goes to any member known.
    await eventually(() => symmetric(nodes) !== undefined, "symmetric active views", 15_000, 50);
    // The overlay may still take a member as a neighbour (a join's FORWARD_JOIN walk in
    // flight, a repair), which promotes a direct connection to it: the connection is then no
    // longer direct (and may be refused as a neighbour). Then another pair is tried; with calls
    // not counting as use (the fault this test was written for) every attempt fails.
    const promoted = (a: Node, far: Node) =>
      a.connectedMembers().includes(far.name) || a.stats().directConnections !== 1;
    const tries: string[] = [];
    const tried = new Set<string>();
    let done: [Node, Node] | undefined;
    for (let attempt = 0; attempt < 5 && done === undefined; attempt++) {
      // A passive entry: known, not a neighbour and not being connected to as one.
      const [a, far] = await eventually(() => {
        for (const x of nodes) {
          if (x.stats().directConnections !== 0) continue;
          for (const m of x.memberInfo()) {
            const y = nodes.find((n) => n.name === m.name);
            if (m.state === "passive" && !tried.has(`${x.name}->${m.name}`) && y !== undefined) {
              tried.add(`${x.name}->${m.name}`); // another pair on the next attempt
              return [x, y] as const;
            }
          }
        }
        return undefined;
      }, "a node that knows a non-neighbour");
      assert.equal(await a.call(far.name, "echo", 1), 1);
      if (promoted(a, far)) continue;
      assert.equal(a.stats().directConnections, 1, "the direct connection is open after the call");
      // Calls alone keep it in use: it stays open for 2.5 x directIdleMs of calls every 100 ms.
      const busyUntil = Date.now() + 2000;
      let ok = true;
      let closed = "";
      for (let i = 2; ok && Date.now() < busyUntil && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 100));
        if (promoted(a, far)) ok = false;
        else {
          try {
            assert.equal(await a.call(far.name, "echo", i), i);
          } catch (e) {
            // The connection closed under a call (one failure in a loaded full run): a
            // neighbour request over it that far refused by closing it, or far's idle
            // reaper after a stall longer than directIdleMs between two calls. Either way
            // not this test's subject (calls count as use); another pair is tried.
            if (!(e instanceof NodeDownError)) throw e;
            closed = ` (closed under a call: ${e.message})`;
            ok = false;
          }
        }
      }
      if (!ok) {
        tries.push(
          `${a.name}->${far.name} not direct after ${2000 - (busyUntil - Date.now())} ms${closed}`,
        );
        continue;
      }
      const t0 = Date.now();
      await eventually(
        () => a.stats().directConnections === 0,
        "the idle direct connection closed",
        5000,
      );
      if (a.connectedMembers().includes(far.name) || Date.now() - t0 < 700) {
        tries.push(`${a.name}->${far.name} closed ${Date.now() - t0} ms after the last call`);
        continue;
      }
      done = [a, far];
    }
    assert.ok(done !== undefined, `no direct connection stayed open while used: ${tries}`);
    const [a, far] = done;
    assert.equal(await a.call(far.name, "echo", -1), -1, "the next call reopens it");
  } finally {
    for (const n of nodes) await n.close();
  }
});

Deno.test("hyparview: directIdleMs is checked", async () => {
  await assert.rejects(
    () => startNode("bad3", { membership: { strategy: "hyparview", directIdleMs: -1 } }),
    /directIdleMs/,
  );
});

Deno.test("hyparview: data publishers start (over the overlay); a bad module is refused by name", async () => {
  const node = await startNode("pub", { membership: { strategy: "hyparview" } });
  try {
    await using pg = await ProcessGroups.start(node);
    node.register("w1", () => {});
    await pg.join("g", "w1");
    assert.deepEqual(pg.getMembers("g").map((m) => m.node), ["pub"]);
    await assert.rejects(
      () => DataPublisher.start(node, "s", {} as never),
      (e: Error) => e instanceof TypeError && /module\.version/.test(e.message),
    );
  } finally {
    await node.close();
  }
});

Deno.test("hyparview: bad options are refused by name", async () => {
  await assert.rejects(
    () => startNode("bad", { membership: { strategy: "hyparview", activeViewSize: 0 } }),
    /activeViewSize/,
  );
  await assert.rejects(
    () => startNode("bad2", { membership: { strategy: "ring" as never } }),
    /unknown membership strategy "ring"/,
  );
});
