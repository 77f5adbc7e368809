// Node identity: one live owner per name, restarts with any incarnation and on
// any address, and wall-clock jumps that must not hide a dead peer or refuse a restart.

import assert from "node:assert/strict";
import { HandshakeError } from "../mod.ts";
import { converged, eventually, nextEvent, startNode } from "./_helpers.ts";

Deno.test("a second process with a live node's name is refused at its join; the owner keeps its place", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await using x = await startNode("x");
  x.register("who", () => "owner");
  await b.join(a.spec);
  await x.join(a.spec);
  await converged([a, b, x], ["a", "b", "x"]);
  const ownerPort = x.spec.listenAddrs[0]!.port;

  await using impostor = await startNode("x", { connectTimeoutMs: 1000 });
  impostor.register("who", () => "impostor");
  const e = await impostor.join(a.spec).catch((e) => e);
  assert.ok(e instanceof HandshakeError, `join refused with a named error, got ${e}`);
  assert.equal(e.name, "NameConflictError");
  assert.match(e.message, /in use/);
  for (const n of [a, b]) {
    assert.equal(n.memberSpec("x")?.listenAddrs[0]?.port, ownerPort, `${n.name} keeps the owner`);
    assert.equal(await n.call("x", "who", null), "owner");
  }
  await impostor.close();
  // The owner is not refused afterwards.
  await new Promise((r) => setTimeout(r, 300));
  await converged([a, b, x], ["a", "b", "x"]);
  assert.equal(await a.call("x", "who", null), "owner");
});

Deno.test("a restart with the same incarnation on a new address replaces the stale spec everywhere", async () => {
  await using a = await startNode("a");
  await using c = await startNode("c");
  await c.join(a.spec);
  const b1 = await startNode("b", { incarnation: 7 });
  await b1.join(a.spec);
  await converged([a, b1, c], ["a", "b", "c"]);
  const down = nextEvent(a, "down", "b");
  await b1.close();
  await down;

  await using b2 = await startNode("b", { incarnation: 7 });
  b2.register("echo", (m) => m);
  const result = await b2.join(a.spec);
  const port2 = b2.spec.listenAddrs[0]!.port;
  for (const n of [a, c]) {
    await eventually(
      () => n.memberSpec("b")?.listenAddrs[0]?.port === port2,
      `${n.name} has b's new address`,
      3000,
    );
  }
  await converged([a, b2, c], ["a", "b", "c"]);
  assert.equal(await a.call("b", "echo", 1), 1, "the link works both ways");
  assert.equal(await c.call("b", "echo", 2), 2);
  assert.ok(b2.spec.incarnation > 7, `b took a higher incarnation (${b2.spec.incarnation})`);
  assert.deepEqual(
    result?.stale?.map((s) => s.listenAddrs[0]!.port),
    [b1.spec.listenAddrs[0]!.port],
    "the stale spec is reported",
  );
});

/** Moves `Date.now()` (the wall clock) by `ms` for the rest of `fn`. */
async function withWallClockJump<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => real() + ms;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

Deno.test("a 60 s backward wall-clock jump neither hides a frozen peer nor refuses a restart", async () => {
  await using a = await startNode("a");
  const b1 = await startNode("b");
  await b1.join(a.spec);
  await converged([a, b1], ["a", "b"]);
  // b freezes (it drops everything to and from a), then the wall clock jumps back 60 s:
  // a must still see b down within failureTimeoutMs.
  const t0 = performance.now();
  const down = nextEvent(a, "down", "b", 5000);
  b1.injectPartition("a");
  await new Promise((r) => setTimeout(r, 50)); // what was in flight has landed
  await withWallClockJump(-60_000, async () => {
    await down;
    const ms = performance.now() - t0;
    assert.ok(ms < 600 + 500, `down seen after ${ms.toFixed(0)} ms`);
    await b1.close();

    // b restarts while the wall clock is behind its previous start: it must be accepted.
    await using b2 = await startNode("b");
    await b2.join(a.spec);
    await converged([a, b2], ["a", "b"]);
    assert.ok(b2.spec.incarnation > b1.spec.incarnation, "it took a higher incarnation");
  });
});
