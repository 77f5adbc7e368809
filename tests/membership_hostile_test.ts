// Hostile input is cheap to refuse: bounded decoding, handshake deadlines and
// per-address bounds, and a clear refusal for addresses nobody can dial.

import assert from "node:assert/strict";
import { encodeFrames } from "../membership/mod.ts";
import { encodeValue, PROTOCOL_VERSION } from "../protocol.ts";
import { HandshakeError, Node } from "../mod.ts";
import { MemoryNetwork } from "../testing.ts";
import { converged, freePort, median, rawPeer, startNode } from "./_helpers.ts";

/** CBOR for a positive bignum (tag 2) of `n` bytes. */
function bignum(n: number): Uint8Array {
  const head = [0xc2, 0x5a, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  const out = new Uint8Array(head.length + n);
  out.set(head);
  out.fill(0xab, head.length);
  return out;
}

/**
 * The bound for a good peer's median cycle while under attack: 25 ms on a quiet
 * machine, or four times the median measured just before the attack when
 * other work (a parallel test run) slows every cycle. A stalled event loop
 * (the faults these tests guard against froze a node for minutes) is far past
 * either.
 */
function cycleBound(before: number[]): number {
  return Math.max(25, 4 * median(before));
}

/**
 * Runs `count` cycles of (call from `b` to `a`, then a 5 ms timer) and returns
 * each cycle's duration in ms. Both nodes share this process, so a node that
 * stalls the event loop stretches the cycles (timers fire late), not only calls.
 */
async function callCycles(b: Node, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    assert.equal(await b.call("a", "echo", i, { timeoutMs: 60_000 }), i);
    await new Promise((r) => setTimeout(r, 5));
    out.push(performance.now() - t0);
  }
  return out;
}

Deno.test("a 400 KB big-integer frame from an authenticated peer is refused in milliseconds", async () => {
  await using a = await startNode("a", { failureTimeoutMs: 60_000 });
  await using b = await startNode("b", { failureTimeoutMs: 60_000 });
  a.register("echo", (m) => m);
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const before = await callCycles(b, 20);
  const conn = await rawPeer(a.spec.listenAddrs[0]!);
  try {
    // [Tag.Msg, "echo", <bignum of 400 KB>]
    const frame = new Uint8Array([
      0x83,
      0x01,
      0x64,
      ...new TextEncoder().encode("echo"),
      ...bignum(400_000),
    ]);
    const t0 = performance.now();
    await conn.write([frame]);
    const closed = await conn.read().catch(() => null);
    const ms = performance.now() - t0;
    assert.equal(closed, null, "the connection was closed");
    console.log(`400 KB bignum frame refused in ${ms.toFixed(1)} ms`);
    assert.ok(ms < 200, `refused in ${ms.toFixed(0)} ms`);
    const cycles = await callCycles(b, 20);
    assert.ok(
      median(cycles) < cycleBound(before),
      `good peer's median cycle ${median(cycles).toFixed(1)} ms (${
        median(before).toFixed(1)
      } ms before)`,
    );
  } finally {
    conn.close();
  }
});

Deno.test("unauthenticated 16 KiB hellos full of big integers do not slow a good peer", async () => {
  await using a = await startNode("a", { failureTimeoutMs: 60_000 });
  await using b = await startNode("b", { failureTimeoutMs: 60_000 });
  a.register("echo", (m) => m);
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const addr = a.spec.listenAddrs[0]!;
  let stop = false;
  // A hello whose nonce is a 16,000-byte bignum, sent again and again by 16 attackers at once.
  const hello = encodeValue({ t: "hello", v: PROTOCOL_VERSION, cluster: "murmur", nonce: 0 });
  const body = new Uint8Array([...hello.subarray(0, hello.length - 1), ...bignum(16_000)]);
  const framed = encodeFrames([body]);
  let sent = 0;
  const attacker = async () => {
    for (let i = 0; i < 500 && !stop; i++) {
      const c = await Deno.connect(addr);
      try {
        await c.write(framed);
        sent++;
        await c.read(new Uint8Array(64)).catch(() => null);
      } catch {
        /* closed by the node */
      } finally {
        c.close();
      }
    }
  };
  const before = await callCycles(b, 20);
  const attack = Promise.all(Array.from({ length: 16 }, attacker));
  await new Promise((r) => setTimeout(r, 100));
  const cycles = await callCycles(b, 40);
  stop = true;
  await attack;
  console.log(
    `good peer's call + 5 ms timer cycle under a flood of ${sent} hellos: median ${
      median(cycles).toFixed(2)
    } ms`,
  );
  assert.ok(
    median(cycles) < cycleBound(before),
    `median cycle ${median(cycles).toFixed(1)} ms (${median(before).toFixed(1)} ms before)`,
  );
});

Deno.test("slowloris: 500 connections sending one byte each do not block a new node's join", async () => {
  await using a = await startNode("a");
  const addr = a.spec.listenAddrs[0]!;
  const slow: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 500; i++) {
      const c = await Deno.connect(addr);
      slow.push(c);
      await c.write(new Uint8Array([0]));
    }
    await using n = await startNode("n");
    const t0 = performance.now();
    await n.join(a.spec);
    const ms = performance.now() - t0;
    console.log(`joined in ${ms.toFixed(0)} ms with 500 slow connections open`);
    assert.ok(ms < 1000, `joined in ${ms.toFixed(0)} ms`);
    await converged([a, n], ["a", "n"]);
  } finally {
    for (const c of slow) {
      try {
        c.close();
      } catch { /* closed by the node */ }
    }
  }
});

Deno.test("multi-host: listening on 0.0.0.0 without advertise is refused with a clear message", async () => {
  // A memory transport: the check is the node's, and tests bind loopback only.
  const net = new MemoryNetwork();
  for (const hostname of ["0.0.0.0", "::"]) {
    const e = await Node.start({
      name: "a",
      cookie: "c",
      transport: net.transport(hostname),
      listen: { hostname, port: 0 },
      logger: () => {},
    }).then(async (n) => {
      await n.close();
      return undefined;
    }, (e) => e);
    assert.ok(e instanceof TypeError, `refused, got ${e}`);
    assert.match(e.message, /needs advertise/);
  }
  // With advertise it starts, and its spec carries the advertised address (port 0: the bound port).
  await using n = await Node.start({
    name: "a",
    cookie: "c",
    transport: net.transport("0.0.0.0"),
    listen: { hostname: "0.0.0.0", port: 0 },
    advertise: [{ hostname: "10.1.2.3", port: 0 }],
    logger: () => {},
  });
  assert.equal(n.spec.listenAddrs[0]!.hostname, "10.1.2.3");
  assert.equal(n.spec.listenAddrs[0]!.port, n.listenAddr.port);
  assert.notEqual(n.listenAddr.port, 0);
});

Deno.test("multi-host: a wrong advertised address fails the join at once with the real cause", async () => {
  await using c = await startNode("c");
  // a listens on a port of its own but advertises c's address: whoever dials it reaches c.
  const port = freePort();
  await using _a = await startNode("a", {
    listen: { hostname: "127.0.0.1", port },
    advertise: [c.spec.listenAddrs[0]!],
  });
  await using b = await startNode("b", { connectTimeoutMs: 3000 });
  const t0 = performance.now();
  const e = await b.join(`127.0.0.1:${port}`).catch((e) => e);
  const ms = performance.now() - t0;
  assert.ok(e instanceof HandshakeError, `named error, got ${e}`);
  assert.match(e.message, /expected node "a" but "c" answered/);
  assert.ok(ms < 1500, `failed after ${ms.toFixed(0)} ms, not at the join timeout`);
});
