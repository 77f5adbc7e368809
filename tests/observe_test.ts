// The public data behind the dashboard and the metrics: Node.memberInfo,
// Node.observeCalls, Plumtree.trees/observeDeliveries, DurableServer.status,
// DataPublisher.stats and RateHistory.

import assert from "node:assert/strict";
import {
  type CallObservation,
  type DurableBehaviour,
  DurableServer,
  MemoryStorage,
  Plumtree,
  ProcessGroups,
  UnknownEndpointError,
} from "../mod.ts";
import { RateHistory } from "../dashboard/mod.ts";
import { converged, nextEvent, startNode } from "./_helpers.ts";
import { LogHandler } from "./_plumtree_fixture.ts";

Deno.test("memberInfo: up with connections per channel, then down, then left", async () => {
  await using a = await startNode("a", { channels: { default: {}, bulk: { parallelism: 2 } } });
  await using b = await startNode("b", { channels: { default: {}, bulk: { parallelism: 2 } } });
  await using c = await startNode("c");
  await b.join(a.spec);
  await c.join(a.spec);
  await converged([a, b, c], ["a", "b", "c"]);
  const info = (name: string) => a.memberInfo().find((m) => m.name === name)!;
  assert.deepEqual(a.memberInfo().map((m) => m.name), ["a", "b", "c"]);
  assert.equal(info("a").self, true);
  assert.equal(info("a").state, "up");
  assert.equal(info("a").lastHeardMs, undefined);
  assert.equal(info("b").state, "up");
  assert.equal(info("b").incarnation, b.spec.incarnation);
  assert.equal(info("b").address, `127.0.0.1:${b.listenAddr.port}`);
  assert.deepEqual(info("b").connections, { default: 1, bulk: 2 });
  assert.ok(info("b").lastHeardMs! >= 0 && info("b").lastHeardMs! < 2000);

  const down = nextEvent(a, "down", "c");
  await c.close();
  await down;
  assert.equal(info("c").state, "down");
  assert.deepEqual(info("c").connections, {});

  const left = nextEvent(a, "down", "b");
  await b.leave();
  await left;
  assert.equal(info("b").state, "left");
});

Deno.test("observeCalls: each call's duration and error, observers removable, a throwing one harmless", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  b.register("echo", (m) => m);
  const seen: CallObservation[] = [];
  const off = a.observeCalls((c) => seen.push(c));
  const offBad = a.observeCalls(() => {
    throw new Error("observer bug");
  });
  assert.equal(await a.call("b", "echo", 1), 1);
  await assert.rejects(() => a.call("b", "missing", 1), UnknownEndpointError);
  assert.equal(seen.length, 2);
  assert.deepEqual([seen[0]!.to, seen[0]!.endpoint, seen[0]!.error], ["b", "echo", undefined]);
  assert.ok(seen[0]!.ms >= 0 && seen[0]!.ms < 5000);
  assert.ok(seen[1]!.error instanceof UnknownEndpointError);
  off();
  offBad();
  await a.call("b", "echo", 2);
  assert.equal(seen.length, 2);
  assert.throws(() => a.observeCalls("no" as never), TypeError);
});

Deno.test("Plumtree.trees and observeDeliveries: the root's tree and one observation per new payload", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const ha = new LogHandler(), hb = new LogHandler();
  await using pa = await Plumtree.start(a, { handlers: [ha] });
  await using pb = await Plumtree.start(b, { handlers: [hb] });
  const seen: { handler: string; root: string; ms: number }[] = [];
  const off = pa.observeDeliveries((d) => seen.push(d));
  await pb.broadcast({ id: "1", body: "x" }, "log");
  await pb.broadcast({ id: "2", body: "y" }, "log");
  for (let i = 0; i < 300 && ha.delivered.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(ha.delivered, ["1", "2"]);
  assert.deepEqual(seen.map((d) => [d.handler, d.root]), [["log", "b"], ["log", "b"]]);
  assert.ok(seen.every((d) => d.ms >= 0));
  assert.deepEqual(pa.trees().map((t) => t.root), ["b"]);
  assert.deepEqual(pa.trees(0), []);
  off();
});

Deno.test("DurableServer.status: queue, dead letters, the lock held by this handle", async () => {
  const gate = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const B: DurableBehaviour<number, "get", "poison" | "slow" | number, never, number> = {
    init: () => ({ state: 0 }),
    handleCall: (_m, _from, n) => ({ reply: n, state: n }),
    handleCast: (m, n) => {
      if (m === "poison") throw new Error("poison");
      if (m === "slow") return { lock: n };
      return { state: n + m };
    },
    handleLocked: async (_e, _m, n) => {
      entered.resolve();
      await gate.promise;
      return { state: n };
    },
  };
  await using storage = new MemoryStorage();
  await using srv = await DurableServer.start(B, null, {
    storage,
    tenant: ["t"],
    maxAttempts: 1,
    logger: () => {},
  });
  let s = await srv.status();
  assert.deepEqual([s.queueLength, s.deadLetters, s.deadLettersMore, s.lock], [
    0,
    0,
    false,
    undefined,
  ]);
  assert.equal(s.handle.length > 0, true);
  await srv.cast("poison");
  await srv.cast("slow");
  await entered.promise;
  await srv.cast(5);
  s = await srv.status();
  assert.equal(s.deadLetters, 1);
  assert.deepEqual(s.lock, { owner: s.handle, mine: true });
  assert.equal(s.queueLength, 1, "the cast behind the lock waits");
  assert.equal((await srv.status(0)).deadLettersMore, true);
  gate.resolve();
  assert.equal(await srv.call("get"), 5);
  s = await srv.status();
  assert.deepEqual([s.queueLength, s.lock], [0, undefined]);
  assert.equal(s.stats.deadLettered, 1);
});

Deno.test("DataPublisher.stats: local and remote updates", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  await using pa = await ProcessGroups.start(a, "g");
  await using pb = await ProcessGroups.start(b, "g");
  a.register("w", () => 1);
  await pa.join("x", "w");
  for (let i = 0; i < 300 && pb.getMembers("x").length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(pa.publisher.stats().localUpdates, 1);
  const sb = pb.publisher.stats();
  assert.ok(sb.remoteUpdates + sb.fullSyncs >= 1, JSON.stringify(sb));
  assert.equal(sb.localUpdates, 0);
});

Deno.test("RateHistory: rates over the last interval, RMR over the window, bounded", () => {
  const h = new RateHistory(10_000, 5);
  const z = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 };
  assert.equal(h.add(0, z, { deliveries: 0, duplicates: 0 }).rmr1m, undefined);
  const r = h.add(2000, { ...z, framesIn: 100, bytesOut: 4000 }, { deliveries: 10, duplicates: 5 });
  assert.equal(r.framesIn, 50);
  assert.equal(r.bytesOut, 2000);
  assert.equal(r.deliveries, 5);
  assert.equal(r.rmr1m, 0.5);
  // Past the window the old samples go: RMR covers the last 10 s only.
  h.add(13_000, z, { deliveries: 20, duplicates: 5 });
  const late = h.add(14_000, z, { deliveries: 30, duplicates: 5 });
  assert.equal(late.rmr1m, 0);
  assert.equal(h.add(15_000, z, undefined).deliveries, undefined);
  assert.throws(() => new RateHistory(0), RangeError);
  assert.throws(() => new RateHistory(1000, 1), RangeError);
});
