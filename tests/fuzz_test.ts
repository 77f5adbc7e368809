// 10,000 random or mutated frames at a live node over TCP: the node stays up,
// its other peer sees no disruption, every bad connection is closed, memory
// stays bounded.

import assert from "node:assert/strict";
import { clientHandshake, encodeValue, PROTOCOL_VERSION, Tag } from "../protocol.ts";
import { encodeFrames, TcpTransport } from "../membership/mod.ts";
import { seededRandom } from "../mod.ts";
import { converged, startNode } from "./_helpers.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 2 ** 31);

Deno.test(`fuzzed frames do not disturb a live node (FUZZ_SEED=${SEED})`, async () => {
  console.log(`FUZZ_SEED=${SEED}`);
  const rnd = seededRandom(SEED);
  const int = (n: number) => Math.floor(rnd.next() * n);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));

  await using a = await startNode("a", { connectTimeoutMs: 300, handshakesPendingMax: 64 });
  await using b = await startNode("b");
  a.register("echo", (m) => m);
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  let flaps = 0;
  a.onDown("b", () => flaps++);
  b.onDown("a", () => flaps++);

  const addr = a.spec.listenAddrs[0]!;
  const hello = {
    t: "hello",
    v: PROTOCOL_VERSION,
    cluster: "murmur",
    spec: { name: "f", incarnation: 1, listenAddrs: [], channels: {} },
    channel: "default",
    index: 0,
    nonce: new Uint8Array(16),
  };
  const validMessages = [
    [Tag.Msg, "echo", "x"],
    [Tag.Call, 1, "echo", [1, 2, 3]],
    [Tag.Gossip, []],
    [Tag.Ping, 1],
  ];

  // One generator per kind of bad input. Each returns the raw bytes to write.
  const kinds: Record<string, () => Uint8Array> = {
    garbage: () => bytes(1 + int(64)),
    framedGarbage: () => encodeFrames([bytes(int(200))]),
    hugeLength: () => {
      const f = new Uint8Array(8);
      new DataView(f.buffer).setUint32(0, 0x7fff_ffff - int(1000));
      return f;
    },
    truncated: () => encodeFrames([encodeValue(hello)]).subarray(0, 4 + int(20)),
    wrongShape: () =>
      encodeFrames([
        encodeValue(
          [
            { t: "hello", v: "x" },
            { ...hello, spec: { name: 5 } },
            { ...hello, nonce: "short" },
            [1, 2, 3],
            "hello",
            { ...hello, index: -1 },
          ][int(6)],
        ),
      ]),
    mutatedHello: () => {
      const f = encodeFrames([encodeValue(hello)]);
      for (let i = 0, n = 1 + int(4); i < n; i++) f[4 + int(f.length - 4)] = int(256);
      return f;
    },
    messageBeforeHandshake: () =>
      encodeFrames([encodeValue(validMessages[int(validMessages.length)])]),
  };
  const kindNames = Object.keys(kinds);

  // Sends `frames` frames of bad input on one raw connection, then waits for the node to close it.
  async function attack(frames: number): Promise<"closed"> {
    const conn = await Deno.connect({ hostname: addr.hostname, port: addr.port });
    try {
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < frames; i++) chunks.push(kinds[kindNames[int(kindNames.length)]!]!());
      let data = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        data.set(c, at);
        at += c.length;
      }
      try {
        while (data.length > 0) data = data.subarray(await conn.write(data));
        await conn.closeWrite();
      } catch { /* the node may close first */ }
      const buf = new Uint8Array(4096);
      // Read until the node closes the connection (bounded by its handshake timeout).
      for (let i = 0; i < 1000; i++) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) return "closed";
      }
      throw new Error("node kept a bad connection open");
    } finally {
      conn.close();
    }
  }

  // Bad frames after a successful handshake, from an authenticated peer.
  const transport = new TcpTransport();
  // Each attack comes back as a new incarnation, as a restarted peer would: a
  // long run (FUZZ_SEED=1059593555 takes a minute) sees "fuzzer" reaped as
  // unreachable, and its old incarnation is then refused as stale.
  let incarnation = 0;
  async function attackAuthenticated(frames: number): Promise<"closed"> {
    const conn = await transport.connect(addr);
    try {
      await clientHandshake(
        conn,
        {
          cluster: "murmur",
          cookie: "test-cookie",
          spec: { name: "fuzzer", incarnation: ++incarnation, listenAddrs: [], channels: {} },
          nonce: () => bytes(16),
          handshakeFrameBytesMax: 16384,
        },
        "default",
        0,
      );
      const bad: Uint8Array[] = [];
      for (let i = 0; i < frames; i++) {
        const pick = int(4);
        if (pick === 0) bad.push(bytes(1 + int(100)));
        else if (pick === 1) bad.push(encodeValue([99, "x"]));
        // A gossip frame that is not an entry list (an invalid entry inside a list is only
        // dropped and counted: tests/membership_lifecycle_test.ts).
        else if (pick === 2) bad.push(encodeValue([Tag.Gossip, { entries: "junk" }]));
        else {
          const f = encodeValue(validMessages[int(validMessages.length)]).slice();
          f[int(f.length)] = int(256);
          bad.push(f);
        }
      }
      await conn.write(bad).catch(() => {});
      for (let i = 0; i < 1000; i++) {
        const f = await conn.read().catch(() => null);
        if (f === null) return "closed";
      }
      throw new Error("node kept a bad authenticated connection open");
    } finally {
      conn.close();
    }
  }

  const rssBefore = Deno.memoryUsage().rss;
  let sent = 0;
  let calls = 0;
  let attacking = true;
  // b keeps calling a the whole time: none of these may fail. Its outcome is
  // held, not left dangling, so that an attack that fails first is the error shown.
  const traffic = (async () => {
    while (sent < 10_000 && attacking) {
      assert.equal(await b.call("a", "echo", calls), calls);
      calls++;
    }
  })().then(() => undefined, (e: unknown) => ({ error: e }));
  const framesPerConn = 5;
  const parallel = 16;
  let attackFailed: { error: unknown } | undefined;
  try {
    for (let round = 0; sent < 10_000 && round < 10_000; round++) {
      const jobs: Promise<"closed">[] = [];
      for (let j = 0; j < parallel && sent < 10_000; j++) {
        jobs.push(round % 8 === 7 ? attackAuthenticated(framesPerConn) : attack(framesPerConn));
        sent += framesPerConn;
      }
      const results = await Promise.all(jobs);
      assert.ok(results.every((r) => r === "closed"));
    }
  } catch (error) {
    attackFailed = { error };
  }
  attacking = false;
  const trafficFailed = await traffic;
  if (attackFailed !== undefined) throw attackFailed.error;
  if (trafficFailed !== undefined) throw trafficFailed.error;
  const rssAfter = Deno.memoryUsage().rss;
  console.log(
    `sent ${sent} bad frames; node a: ${a.stats().badConnections} connections closed for protocol errors; ` +
      `${calls} calls from b succeeded meanwhile; rss ${(rssBefore / 2 ** 20).toFixed(0)} -> ${
        (rssAfter / 2 ** 20).toFixed(0)
      } MiB`,
  );
  assert.equal(sent, 10_000);
  assert.equal(flaps, 0, "the good peer saw no disruption");
  assert.ok(calls > 0);
  assert.ok(a.stats().badConnections > 1000, "bad connections were closed as protocol errors");
  assert.ok(rssAfter - rssBefore < 200 * 2 ** 20, "memory stayed bounded");
  assert.deepEqual(a.connectedMembers(), ["a", "b"]);
  assert.equal(a.stats().connections, b.stats().connections, "no fuzz connection lingers at a");
});
