// `deno task bench:membership`: one run, side by side.
//  1. send throughput between two nodes over TCP (100 B, fire-and-forget) as a
//     ratio of the honest baseline measured in the same run (bench/_raw.ts:
//     the same `[1, endpoint, payload]` messages encoded with the fastest encoder (bench/_raw.ts),
//     length-prefixed and coalesced into 64 KiB writes on a plain Deno.Conn,
//     read 256 KiB at a time and decoded), and of plain framing without
//     encoding (the socket's own limit);
//  2. call round trips per second (1 and 32 concurrent callers);
//  3. membership convergence over TCP for 8, 16, 32 nodes (wall time);
//  4. gossip rounds to converge for 256 nodes on a MemoryNetwork in virtual time.

import { MemoryNetwork } from "../testing.ts";
import { Node, seededRandom } from "../mod.ts";
import { SimulatedClock } from "../protocol.ts";
import { encodeAndWrite, plainFraming } from "./_raw.ts";

const MESSAGES = Number(Deno.env.get("BENCH_MESSAGES") ?? 200_000);
const PAYLOAD = new Uint8Array(100).fill(7);
const quiet = () => {};

async function pair(): Promise<[Node, Node]> {
  const a = await Node.start({ name: "a", cookie: "bench", logger: quiet });
  const b = await Node.start({ name: "b", cookie: "bench", logger: quiet });
  await b.join(a.spec);
  return [a, b];
}

async function nodeSend(n: number): Promise<number> {
  const [a, b] = await pair();
  let got = 0;
  const done = Promise.withResolvers<void>();
  b.register("sink", () => {
    if (++got === n) done.resolve();
  });
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const p = a.send("b", "sink", PAYLOAD);
    if (i % 1024 === 1023) await p; // resolves at once unless the queue is full (backpressure)
  }
  await done.promise;
  const ms = performance.now() - start;
  await a.close();
  await b.close();
  return n / (ms / 1000);
}

async function calls(concurrency: number, durationMs: number): Promise<number> {
  const [a, b] = await pair();
  a.register("echo", (m) => m);
  let count = 0;
  const end = performance.now() + durationMs;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      await b.call("a", "echo", PAYLOAD);
      count++;
    }
  }));
  const rate = count / ((performance.now() - start) / 1000);
  await a.close();
  await b.close();
  return rate;
}

async function convergeTcp(n: number): Promise<number> {
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push(
      await Node.start({ name: `n${i}`, cookie: "bench", logger: quiet, gossipIntervalMs: 500 }),
    );
  }
  const want = nodes.map((x) => x.name).sort().join();
  const start = performance.now();
  await Promise.all(nodes.slice(1).map((x) => x.join(nodes[0]!.spec)));
  for (let i = 0; i < 30_000; i++) {
    if (nodes.every((x) => x.members().join() === want && x.connectedMembers().join() === want)) {
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const ms = performance.now() - start;
  const ok = nodes.every((x) => x.connectedMembers().join() === want);
  await Promise.all(nodes.map((x) => x.close()));
  if (!ok) throw new Error(`${n} nodes did not converge`);
  return ms;
}

async function gossipRounds(
  n: number,
): Promise<{ rounds: number; virtualMs: number; gossipsPerNode: number; wallMs: number }> {
  const clock = new SimulatedClock(0);
  const net = new MemoryNetwork({ clock, seed: 7, latencyMs: [1, 5] });
  const random = seededRandom(7);
  const gossipIntervalMs = 1000;
  const nodes: Node[] = [];
  const wall = performance.now();
  for (let i = 0; i < n; i++) {
    nodes.push(
      await Node.start({
        name: `n${i}`,
        cookie: "sim",
        transport: net.transport(`h${i}`),
        listen: { hostname: `h${i}`, port: 1 },
        clock,
        random,
        logger: quiet,
        gossipIntervalMs,
        pingIntervalMs: 5000,
        failureTimeoutMs: 60_000,
      }),
    );
  }
  // Each node joins one random earlier node (a chain of introductions, no single seed).
  const joins = nodes.slice(1).map((x, i) =>
    x.join(nodes[Math.floor(random.next() * (i + 1))]!.spec)
  );
  const want = nodes.map((x) => x.name).sort().join();
  let t = 0;
  const start = clock.now();
  for (; t < 600_000; t += 100) {
    if (nodes.every((x) => x.members().join() === want)) break;
    await clock.advance(100);
  }
  await Promise.allSettled(joins);
  const virtualMs = clock.now() - start;
  // Gossip goes out on every change (pushed at once) and every gossipIntervalMs:
  // a "round" here is one period of that interval, counted from the first join.
  const rounds = Math.ceil(virtualMs / gossipIntervalMs);
  const gossips = nodes.reduce((sum, x) => sum + x.stats().gossipsOut, 0);
  await Promise.all(nodes.map((x) => x.close()));
  return { rounds, virtualMs, gossipsPerNode: gossips / n, wallMs: performance.now() - wall };
}

const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
console.log(
  `murmur membership comparison (${new Date().toISOString()}, Deno ${Deno.version.deno})`,
);
// Warm-up, then interleave the contenders so that machine noise hits both.
await encodeAndWrite(20_000, "sink", PAYLOAD);
await plainFraming(20_000, 110);
await nodeSend(20_000);
const base: number[] = [], plain: number[] = [], node: number[] = [];
for (let i = 0; i < 3; i++) {
  base.push(await encodeAndWrite(MESSAGES, "sink", PAYLOAD));
  plain.push(await plainFraming(MESSAGES, 110));
  node.push(await nodeSend(MESSAGES));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const baseM = median(base), plainM = median(plain), nodeM = median(node);
console.log(
  "\n| throughput (100 B, fire-and-forget, median of 3) | msgs/s | vs encode-and-write | vs plain framing |",
);
console.log("| --- | ---: | ---: | ---: |");
console.log(
  `| plain framing, pre-encoded (socket limit) | ${fmt(plainM)} | ${
    (plainM / baseM).toFixed(2)
  } | 1.00 |`,
);
console.log(
  `| encode-and-write baseline (fastest codec, 64 KiB writes) | ${fmt(baseM)} | 1.00 | ${
    (baseM / plainM).toFixed(2)
  } |`,
);
console.log(
  `| Node.send a -> b | ${fmt(nodeM)} | ${(nodeM / baseM).toFixed(2)} | ${
    (nodeM / plainM).toFixed(2)
  } |`,
);

const c1 = await calls(1, 2000), c32 = await calls(32, 2000);
console.log("\n| call round trips (100 B) | calls/s |");
console.log("| --- | ---: |");
console.log(`| 1 caller | ${fmt(c1)} |`);
console.log(`| 32 concurrent callers | ${fmt(c32)} |`);

console.log("\n| convergence over TCP (all join n0) | wall time |");
console.log("| --- | ---: |");
for (const n of [8, 16, 32]) {
  console.log(`| ${n} nodes | ${(await convergeTcp(n)).toFixed(0)} ms |`);
}

const g = await gossipRounds(256);
console.log(
  "\n| MemoryNetwork, simulated clock | virtual time to one view | gossip rounds (1 s) | gossip messages per node | wall time of the simulation |",
);
console.log("| --- | ---: | ---: | ---: | ---: |");
console.log(
  `| 256 nodes (random introductions) | ${g.virtualMs} ms | ${g.rounds} | ${
    g.gossipsPerNode.toFixed(1)
  } | ${(g.wallMs / 1000).toFixed(1)} s |`,
);
