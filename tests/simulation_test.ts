// Nodes on a MemoryNetwork driven by a SimulatedClock: virtual time, seeded.

import assert from "node:assert/strict";
import { MemoryNetwork } from "../testing.ts";
import { Node, seededRandom } from "../mod.ts";
import { SimulatedClock } from "../protocol.ts";

const SEED = Number(Deno.env.get("SIM_SEED") ?? Date.now() % 2 ** 31);

async function cluster(n: number, opts: { lossRate?: number; latencyMs?: [number, number] } = {}) {
  const clock = new SimulatedClock(1_000_000);
  const net = new MemoryNetwork({ clock, seed: SEED, lossFreeFrames: 4, ...opts });
  const random = seededRandom(SEED);
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    const host = `n${i}`;
    nodes.push(
      await Node.start({
        name: host,
        cookie: "sim",
        transport: net.transport(host),
        listen: { hostname: host, port: 7000 },
        clock,
        random,
        logger: () => {},
        gossipIntervalMs: 1000,
        pingIntervalMs: 500,
        failureTimeoutMs: 3000,
      }),
    );
  }
  return { clock, net, nodes };
}

function identical(nodes: Node[]): boolean {
  const want = nodes.map((n) => n.name).sort().join();
  return nodes.every((n) => n.members().join() === want && n.connectedMembers().join() === want);
}

async function runUntil(
  clock: SimulatedClock,
  cond: () => boolean,
  maxMs: number,
  stepMs = 100,
): Promise<number> {
  for (let t = 0; t <= maxMs; t += stepMs) {
    if (cond()) return t;
    await clock.advance(stepMs);
  }
  throw new Error(`condition not reached within ${maxMs} ms of virtual time (SIM_SEED=${SEED})`);
}

Deno.test(`simulation: 16 nodes converge, partition heals (SIM_SEED=${SEED})`, async () => {
  console.log(`SIM_SEED=${SEED}`);
  const { clock, net, nodes } = await cluster(16, { latencyMs: [1, 20] });
  try {
    // Everybody joins n0 at once.
    await Promise.all(
      nodes.slice(1).map(async (n) => {
        const j = n.join(nodes[0]!.spec);
        await j;
      }).map((p) => Promise.race([p, clock.advance(5000)])),
    );
    const t = await runUntil(clock, () => identical(nodes), 20_000);
    console.log(`converged ${t} ms of virtual time after the joins`);

    // Cut the cluster in two halves at the network level.
    const left = nodes.slice(0, 8).map((n) => n.name), right = nodes.slice(8).map((n) => n.name);
    const ref = net.partition(left, right);
    await runUntil(clock, () => nodes[0]!.connectedMembers().length === 8, 20_000);
    assert.deepEqual(nodes[0]!.members().length, 16, "members stay members across a partition");
    net.heal(ref);
    const healed = await runUntil(clock, () => identical(nodes), 30_000);
    console.log(`healed ${healed} ms of virtual time after the partition ended`);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});

Deno.test(`simulation: convergence with 20% frame loss (SIM_SEED=${SEED})`, async () => {
  const { clock, nodes } = await cluster(8, { lossRate: 0.2, latencyMs: [1, 10] });
  try {
    for (const n of nodes.slice(1)) {
      n.join(nodes[0]!.spec).catch(() => {}); // joins may need retries under loss
    }
    await runUntil(clock, () => nodes.every((n) => n.members().length === 8), 60_000);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});
