// Membership over real TCP on 127.0.0.1.

import assert from "node:assert/strict";
import {
  CallTimeoutError,
  HandshakeError,
  NodeDownError,
  RemoteHandlerError,
  UnknownEndpointError,
  UnknownNodeError,
} from "../mod.ts";
import { converged, eventually, nextEvent, NodeProcess, startNode } from "./_helpers.ts";

Deno.test("join, leave and rejoin over TCP", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await using c = await startNode("c");
  await b.join(a.spec);
  await c.join(`127.0.0.1:${b.spec.listenAddrs[0]!.port}`);
  await converged([a, b, c], ["a", "b", "c"]);

  const downAtA = nextEvent(a, "down", "c");
  await c.leave();
  await downAtA;
  await eventually(
    () => a.members().join() === "a,b" && b.members().join() === "a,b",
    "c gone at a and b",
  );
  assert.deepEqual(c.members(), [], "a node that left is alone");
  // A node that left stays out: gossip from b must not bring it back.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(a.members(), ["a", "b"]);

  const oldIncarnation = c.spec.incarnation;
  await c.join(a.spec);
  assert.ok(c.spec.incarnation > oldIncarnation, "rejoin uses a new incarnation");
  await converged([a, b, c], ["a", "b", "c"]);
});

Deno.test("a peer with the wrong cookie is refused and never becomes a member", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await using x = await startNode("intruder", { cookie: "wrong" });
  await assert.rejects(() => x.join(a.spec), HandshakeError);
  await assert.rejects(() => x.join(`127.0.0.1:${a.spec.listenAddrs[0]!.port}`), HandshakeError);
  await new Promise((r) => setTimeout(r, 300)); // one gossip period
  for (const n of [a, b]) assert.deepEqual(n.members(), ["a", "b"]);
  assert.deepEqual(x.members(), ["intruder"]);
});

Deno.test("call errors are distinct and named", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b", { callTimeoutMs: 200 });
  a.register("echo", (m) => m);
  a.register("boom", () => {
    throw new TypeError("kaboom");
  });
  a.register("slow", () => new Promise((r) => setTimeout(() => r("late"), 500)));
  await b.join(a.spec);

  assert.deepEqual(await b.call("a", "echo", { n: [1, 2] }), { n: [1, 2] });
  const e1 = await b.call("a", "nope", 1).catch((e) => e);
  assert.ok(e1 instanceof UnknownEndpointError && e1.endpoint === "nope", String(e1));
  const e2 = await b.call("a", "boom", 1).catch((e) => e);
  assert.ok(e2 instanceof RemoteHandlerError, String(e2));
  assert.equal(e2.remoteName, "TypeError");
  assert.match(e2.message, /kaboom/);
  const e3 = await b.call("a", "slow", 1, { timeoutMs: 100 }).catch((e) => e);
  assert.ok(e3 instanceof CallTimeoutError && e3.timeoutMs === 100, String(e3));
  const e4 = await b.call("zz", "echo", 1).catch((e) => e);
  assert.ok(e4 instanceof UnknownNodeError, String(e4));
  await assert.rejects(() => b.call("a", "", 1), TypeError);

  // A call in flight when the node dies, and a call to a node that is down.
  const inFlight = b.call("a", "slow", 1, { timeoutMs: 5000 });
  const down = nextEvent(b, "down", "a");
  await a.close();
  const e5 = await inFlight.catch((e) => e);
  assert.ok(e5 instanceof NodeDownError && e5.node === "a", String(e5));
  await down;
  const e6 = await b.call("a", "echo", 1).catch((e) => e);
  assert.ok(e6 instanceof NodeDownError, String(e6));
  await new Promise((r) => setTimeout(r, 600)); // let the late "slow" timer of a fire
});

Deno.test("partitions injected on both sides are seen as down, and heal", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);

  const downA = nextEvent(a, "down", "b", 3000);
  const downB = nextEvent(b, "down", "a", 3000);
  const t0 = Date.now();
  const ref = a.injectPartition("b");
  assert.deepEqual(a.partitions().map((p) => p.nodes), [["b"]]);
  await Promise.all([downA, downB]);
  assert.ok(Date.now() - t0 < 600 + 500, "detected within failureTimeoutMs + 500 ms");
  await assert.rejects(() => a.call("b", "x", 1), NodeDownError);
  // b keeps trying to reconnect; a refuses while the partition holds.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(a.connectedMembers(), ["a"]);

  const upA = nextEvent(a, "up", "b");
  const upB = nextEvent(b, "up", "a");
  assert.equal(a.resolvePartition(ref), true);
  assert.equal(a.resolvePartition(ref), false);
  await Promise.all([upA, upB]);

  // Both sides at once, healing by TTL.
  const down2 = nextEvent(a, "down", "b", 3000);
  a.injectPartition("b", { ttlMs: 1200 });
  b.injectPartition(["a"], { ttlMs: 1200 });
  await down2;
  await Promise.all([nextEvent(a, "up", "b", 4000), nextEvent(b, "up", "a", 4000)]);
  assert.deepEqual(a.partitions(), []);
  await converged([a, b], ["a", "b"]);
});

Deno.test("channels: parallelism, per-key order, monotonic dropping", async () => {
  const channels = { bulk: { parallelism: 4 }, state: { monotonic: true } };
  await using a = await startNode("a", { channels });
  await using b = await startNode("b", { channels });
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  // default(1) + bulk(4) + state(1) outgoing on each side, and as many incoming.
  assert.equal(a.stats().connections, 12);

  const seen = new Map<string, number[]>();
  const conns = new Set<string>();
  const total = 4000;
  const all = Promise.withResolvers<void>();
  let count = 0;
  b.register("seq", (m) => {
    const { key, i } = m as { key: string; i: number };
    let list = seen.get(key);
    if (!list) seen.set(key, list = []);
    list.push(i);
    if (++count === total) all.resolve();
  });
  const sends: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const key = `k${i % 16}`;
    sends.push(a.send("b", "seq", { key, i }, { channel: "bulk", partitionKey: key }));
  }
  await Promise.all(sends);
  await all.promise;
  for (const [key, list] of seen) {
    assert.deepEqual(list, [...list].sort((x, y) => x - y), `order kept for ${key}`);
    assert.equal(list.length, total / 16);
  }
  void conns;

  // Monotonic: a burst on one key while the connection is busy keeps only the newest.
  const got: number[] = [];
  const last = Promise.withResolvers<void>();
  b.register("level", (m) => {
    got.push(m as number);
    if (m === 9999) last.resolve();
  });
  for (let i = 0; i < 10_000; i++) {
    void a.send("b", "level", i, { channel: "state", partitionKey: "x" });
  }
  await last.promise;
  assert.equal(got.at(-1), 9999, "the newest value always arrives");
  assert.ok(got.length < 10_000, `older queued values were dropped (${got.length} delivered)`);
  assert.deepEqual(got, [...got].sort((x, y) => x - y), "never out of order");
});

Deno.test("ack: retransmitted across a dropped connection, delivered once", async () => {
  await using a = await startNode("a");
  await using b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const delivered: unknown[] = [];
  b.register("once", (m) => {
    delivered.push(m);
    // Lose the acknowledgement and the link: b cuts a off for longer than failureTimeoutMs.
    if (delivered.length === 1) b.injectPartition("a", { ttlMs: 1000 });
  });
  const down = nextEvent(a, "down", "b", 3000);
  const acked = a.send("b", "once", "hello", { ack: true });
  await down; // the connection was dropped before any acknowledgement came back
  await acked; // retransmitted after reconnection, then acknowledged
  assert.deepEqual(delivered, ["hello"], "delivered exactly once");
  assert.ok(a.stats().retransmits >= 1, "it was retransmitted");
  assert.ok(b.stats().duplicates >= 1, "the duplicate was suppressed");
});

Deno.test("a SIGKILLed node is seen down, and its restart on a new port replaces the stale spec", async () => {
  await using a = await startNode("a", { failureTimeoutMs: 1000 });
  const port = a.spec.listenAddrs[0]!.port;
  const b1 = new NodeProcess([
    "--name",
    "b",
    "--join",
    `127.0.0.1:${port}`,
    "--failure-timeout-ms",
    "1000",
  ]);
  let b2: NodeProcess | undefined;
  try {
    const p1 = await b1.ready();
    await nextEvent(a, "up", "b", 15000);
    const inc1 = a.memberSpec("b")!.incarnation;
    assert.equal(a.memberSpec("b")!.listenAddrs[0]!.port, p1);

    const down = nextEvent(a, "down", "b", 3000);
    const killedAt = Date.now();
    await b1.kill("SIGKILL");
    const downAt = await down;
    assert.ok(downAt - killedAt <= 1000 + 500, `down seen ${downAt - killedAt} ms after SIGKILL`);
    assert.deepEqual(a.members(), ["a", "b"], "a crashed node stays a member until it leaves");

    const up = nextEvent(a, "up", "b", 15000);
    b2 = new NodeProcess(["--name", "b", "--join", `127.0.0.1:${port}`]);
    const p2 = await b2.ready();
    await up;
    const spec = a.memberSpec("b")!;
    assert.ok(spec.incarnation > inc1, "new incarnation");
    assert.equal(spec.listenAddrs[0]!.port, p2, "the stale spec was replaced");
    assert.notEqual(p1, p2);
    assert.equal(((await a.call("b", "info", null)) as { pid: number }).pid, b2.child.pid);
  } finally {
    await b1.kill();
    await b2?.kill();
  }
});

Deno.test("a peer that stops reading does not grow the sender's memory past its bound", async () => {
  await using a = await startNode("a", {
    failureTimeoutMs: 20_000,
    sendQueueBytesMax: 256 * 1024,
    sendWaitersMax: 8,
  });
  const b = new NodeProcess(["--name", "b", "--join", `127.0.0.1:${a.spec.listenAddrs[0]!.port}`]);
  try {
    await b.ready();
    await nextEvent(a, "up", "b", 15000);
    b.child.kill("SIGSTOP"); // b stops reading; the kernel buffers fill up
    const payload = new Uint8Array(16 * 1024);
    const drops0 = a.stats().sendDrops;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 10_000 && a.stats().sendDrops === drops0; i++) {
      sends.push(a.send("b", "echo", payload)); // never rejects: past the hard bound, dropped
      if (i % 64 === 63) await new Promise((r) => setTimeout(r, 0)); // let the writer run
    }
    assert.ok(a.stats().sendDrops > drops0, "past the hard bound, sends are dropped and counted");
    const queued = a.stats().queuedBytes;
    assert.ok(queued <= 256 * 1024 + 2 * payload.length + 64, `queued ${queued} bytes`);
    b.child.kill("SIGCONT");
    await a.close(); // what still waits resolves: nothing is left pending
    await Promise.all(sends);
  } finally {
    await b.kill();
  }
});

Deno.test("a 3-node TLS cluster", async () => {
  const dir = new URL("./fixtures/", import.meta.url).pathname;
  const tls = {
    certFile: `${dir}node.pem`,
    keyFile: `${dir}node-key.pem`,
    caCerts: [await Deno.readTextFile(`${dir}ca.pem`)],
  };
  await using a = await startNode("a", { tls });
  await using b = await startNode("b", { tls });
  await using c = await startNode("c", { tls });
  a.register("echo", (m) => m);
  await b.join(a.spec);
  await c.join(b.spec);
  await converged([a, b, c], ["a", "b", "c"]);
  assert.equal(await c.call("a", "echo", "over tls"), "over tls");
  // A plain-TCP node cannot join a TLS cluster.
  await using plain = await startNode("plain", { connectTimeoutMs: 500 });
  await assert.rejects(() => plain.join(a.spec));
  assert.deepEqual(a.members(), ["a", "b", "c"]);
});
