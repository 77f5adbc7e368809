// Issue 26 item 2: SWIM-style liveness for the full mesh. Real nodes on a
// MemoryNetwork in virtual time (seeded): an idle node's traffic does not grow
// with the cluster, a hung node (its connections open, nothing answered) is
// found down by everyone, and 10% frame loss makes no one down.

import assert from "node:assert/strict";
import { MemoryNetwork } from "../testing.ts";
import { DataPublisher, Node, seededRandom } from "../mod.ts";
import { tags } from "./_tags_module.ts";
import { type Clock, SimulatedClock } from "../protocol.ts";

type TimerId = ReturnType<Clock["setTimeout"]>;

const SEED = Number(Deno.env.get("SIM_SEED") ?? Date.now() % 2 ** 31);
const PING_MS = 500;
const FAILURE_MS = 3000;

/** Timer callbacks run, counted: the wake-ups of the nodes that use this clock. */
class CountingClock implements Clock {
  fired = 0;
  constructor(readonly inner: SimulatedClock) {}
  now(): number {
    return this.inner.now();
  }
  wallNow(): number {
    return this.inner.wallNow();
  }
  setTimeout(fn: () => void, ms: number): TimerId {
    return this.inner.setTimeout(() => {
      this.fired++;
      fn();
    }, ms);
  }
  clearTimeout(id: TimerId): void {
    this.inner.clearTimeout(id);
  }
}

async function cluster(n: number, lossRate = 0, counting?: CountingClock) {
  const clock = counting?.inner ?? new SimulatedClock(1_000_000);
  const net = new MemoryNetwork({ clock, seed: SEED, latencyMs: [1, 10], lossFreeFrames: 8 });
  const random = seededRandom(SEED);
  const nodes: Node[] = [];
  const downs: string[] = [];
  for (let i = 0; i < n; i++) {
    const host = `n${i}`;
    const node = await Node.start({
      name: host,
      cookie: "swim",
      transport: net.transport(host),
      listen: { hostname: host, port: 7000 },
      clock: counting ?? clock,
      random,
      logger: () => {},
      gossipIntervalMs: 1000,
      pingIntervalMs: PING_MS,
      failureTimeoutMs: FAILURE_MS,
    });
    node.onDown("*", (name) => void downs.push(`${clock.now() | 0}: ${host} saw ${name} down`));
    nodes.push(node);
  }
  for (const node of nodes.slice(1)) {
    const j = node.join(nodes[0]!.spec);
    await Promise.race([j, clock.advance(5000)]);
    await j;
  }
  const want = nodes.map((n) => n.name).sort().join();
  for (let t = 0; t < 30_000; t += 100) {
    if (nodes.every((n) => n.connectedMembers().join() === want)) break;
    await clock.advance(100);
  }
  assert.ok(
    nodes.every((n) => n.connectedMembers().join() === want),
    `converged (SIM_SEED=${SEED})`,
  );
  net.setLossRate(lossRate);
  return { clock, net, nodes, downs };
}

/** Frames one idle node sends per second, on average, in a settled cluster of `n`. */
async function idleFramesPerNode(n: number): Promise<number> {
  const { clock, net, nodes } = await cluster(n);
  try {
    await clock.advance(5000);
    const before = net.stats().sent;
    await clock.advance(20_000);
    return (net.stats().sent - before) / n / 20;
  } finally {
    await Promise.all(nodes.map((x) => x.close()));
  }
}

Deno.test(`swim: an idle full-mesh node sends as much in a cluster of 24 as in one of 6 (SIM_SEED=${SEED})`, async () => {
  console.log(`SIM_SEED=${SEED}`);
  const small = await idleFramesPerNode(6);
  const large = await idleFramesPerNode(24);
  console.log(
    `  idle frames per node per second: ${small.toFixed(1)} at 6, ${large.toFixed(1)} at 24`,
  );
  // Pinging every idle link made this grow with the cluster (4x the links at 24).
  assert.ok(large < small * 1.5, `${large.toFixed(1)} at 24 vs ${small.toFixed(1)} at 6`);
  assert.ok(large < 12, `${large.toFixed(1)} frames per second per idle node`);
});

Deno.test(`swim: an idle node does not wake for the timeout of a probe that was answered (SIM_SEED=${SEED})`, async () => {
  const counting = new CountingClock(new SimulatedClock(1_000_000));
  const { clock, nodes } = await cluster(8, 0, counting);
  try {
    await clock.advance(5000);
    const before = counting.fired;
    await clock.advance(20_000);
    const perNode = (counting.fired - before) / nodes.length / 20;
    const probes = nodes.reduce((a, x) => a + x.stats().probes, 0);
    console.log(
      `  timer callbacks per idle node per second: ${perNode.toFixed(2)} (${probes} probes)`,
    );
    // A period (500 ms) wakes a node twice a second, the digest once; each answered probe
    // woke it once more for its timeout (two more a second) until the timer was cancelled.
    assert.ok(probes > 0, "probes went out");
    assert.ok(perNode < 2.6, `${perNode.toFixed(2)} wake-ups per second per idle node`);
  } finally {
    await Promise.all(nodes.map((x) => x.close()));
  }
});

Deno.test(`swim: a hung node (connections open, nothing answered) is down on every other node, and it sees them down (SIM_SEED=${SEED})`, async () => {
  const { clock, net, nodes, downs } = await cluster(12);
  try {
    const hung = nodes[5]!;
    const others = nodes.filter((n) => n !== hung);
    const t0 = clock.now();
    net.partition([hung.name], others.map((n) => n.name));
    const seen = new Map<string, number>();
    for (let t = 0; t < 20_000 && seen.size < others.length; t += 50) {
      await clock.advance(50);
      for (const n of others) {
        if (!seen.has(n.name) && !n.connectedMembers().includes(hung.name)) {
          seen.set(n.name, clock.now() - t0);
        }
      }
    }
    const times = [...seen.values()].sort((a, b) => a - b);
    console.log(
      `  down on all ${others.length} others after ${times[0]!.toFixed(0)}-${
        times.at(-1)!.toFixed(0)
      } ms`,
    );
    assert.equal(seen.size, others.length, `every other node saw it down: ${downs.join("; ")}`);
    // Until someone probes it: each of the 11 others probes it once in 11 periods, at a random
    // place in its round, so no one has after 7 periods with probability (4/11)^11 < 2e-5. Then a
    // period for the probe and its indirect probes, the suspicion, and a period to notice it.
    assert.ok(times.at(-1)! <= FAILURE_MS + 9 * PING_MS, `all within ${times.at(-1)} ms`);
    assert.deepEqual(hung.connectedMembers(), [hung.name], "the hung node sees the others down");
  } finally {
    await Promise.all(nodes.map((x) => x.close()));
  }
});

Deno.test(`swim: one broken link is not a failure: indirect probes keep the peer up (SIM_SEED=${SEED})`, async () => {
  const { clock, net, nodes, downs } = await cluster(6);
  try {
    const [a, x] = [nodes[0]!, nodes[3]!];
    net.partition([a.name], [x.name]); // only the a-x path: the others reach both
    await clock.advance(4 * FAILURE_MS);
    assert.ok(a.connectedMembers().includes(x.name), `x stays up on a: ${downs.join("; ")}`);
    assert.ok(x.connectedMembers().includes(a.name), `a stays up on x: ${downs.join("; ")}`);
    assert.deepEqual(downs, []);
  } finally {
    await Promise.all(nodes.map((x) => x.close()));
  }
});

Deno.test(`swim: 10 minutes of 10% frame loss on 16 nodes make no one down (SIM_SEED=${SEED})`, async () => {
  const { clock, nodes, downs } = await cluster(16, 0.1);
  try {
    await clock.advance(10 * 60_000);
    const sum = (f: (s: ReturnType<Node["stats"]>) => number) =>
      nodes.reduce((t, n) => t + f(n.stats()), 0);
    console.log(
      `  ${sum((s) => s.probes)} probes, ${sum((s) => s.indirectProbes)} indirect, ` +
        `${sum((s) => s.suspicions)} suspicions (${sum((s) => s.suspicionsCleared)} cleared, ` +
        `${sum((s) => s.suspicionsRefuted)} refutations), ${downs.length} downs`,
    );
    assert.deepEqual(downs, [], "no one is down");
  } finally {
    await Promise.all(nodes.map((x) => x.close()));
  }
});

/** Frames per idle node per second with a data publisher on every node, after one update each. */
async function idlePublisherFrames(n: number): Promise<number> {
  const { clock, net, nodes } = await cluster(n);
  const pubs: DataPublisher<unknown, unknown, unknown, unknown, unknown>[] = [];
  try {
    for (const node of nodes) {
      const started = DataPublisher.start(node, "tags", tags(1), { syncIntervalMs: 1000, clock });
      await Promise.race([started, clock.advance(100)]);
      pubs.push(await started as never);
    }
    for (const p of pubs) await p.update({ add: ["x"], remove: [] } as never);
    await clock.advance(10_000);
    const before = net.stats().sent;
    await clock.advance(20_000);
    return (net.stats().sent - before) / n / 20;
  } finally {
    for (const p of pubs) await p.close();
    await Promise.all(nodes.map((x) => x.close()));
  }
}

Deno.test(`swim: an idle full-mesh data publisher's sync ticks do not grow with the cluster (SIM_SEED=${SEED})`, async () => {
  const small = await idlePublisherFrames(6);
  const large = await idlePublisherFrames(24);
  console.log(
    `  idle frames per node per second, with a publisher: ${small.toFixed(1)} at 6, ${
      large.toFixed(1)
    } at 24`,
  );
  // A tick to every peer every sync interval made this grow with the cluster.
  assert.ok(large < small * 1.5, `${large.toFixed(1)} at 24 vs ${small.toFixed(1)} at 6`);
});
