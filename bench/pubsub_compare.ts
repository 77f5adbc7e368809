// `deno task bench:pubsub`: topic publish throughput and latency to 1 / 10 /
// 1,000 subscribers across 8 nodes over TCP (one process, loopback), three
// ways side by side in one run:
//
//  - pubsub:    `PubSub.publish` from node n00; subscribers tracked by process
//               groups; one frame per node with subscribers, fanned out locally.
//  - send:      the hand-written equivalent and PubSub's floor: n00 knows where
//               the subscribers are (a fixed table, no groups) and calls
//               `sendMany` to those nodes; each node fans out to its own
//               subscribers with a plain loop (no queues, no schema checks).
//  - plumtree:  `Plumtree.broadcast` to every node (those without subscribers
//               too), each node fanning out to its own subscribers.
//
// Subscribers sit on n01..n07 (never on the publisher), subscriber k on node
// 1 + k mod 7. Each run sends M messages with flow control (at most 256 not
// yet delivered to every subscriber); "msgs/s" is messages published per
// second until every subscriber had them all, "deliveries/s" that times the
// subscriber count. Latency: publish to handler, sampled on up to 10
// subscribers, under that load (p50 / p99) and unloaded (one message at a
// time, 300 messages: p99).

import { type BroadcastHandler, type Node, Plumtree, PubSub } from "../mod.ts";
import { percentile, startCluster } from "./_broadcast_fixture.ts";

type Msg = [id: number, sentAt: number];
type Fan = (m: Msg) => void;

/** Subscribers: counts deliveries, samples latencies, wakes the publisher's flow control. */
class Sink {
  delivered = 0;
  readonly latencies: number[] = [];
  #waiter: { n: number; resolve: () => void } | undefined;
  readonly sampled: Set<number>;
  constructor(readonly subscribers: number) {
    const step = Math.max(1, Math.floor(subscribers / 10));
    this.sampled = new Set(Array.from({ length: Math.min(10, subscribers) }, (_, i) => i * step));
  }
  handler(k: number): Fan {
    const sample = this.sampled.has(k);
    return (m) => {
      if (sample) this.latencies.push(performance.now() - m[1]);
      if (++this.delivered >= (this.#waiter?.n ?? Infinity)) {
        const w = this.#waiter!;
        this.#waiter = undefined;
        w.resolve();
      }
    };
  }
  reached(n: number): Promise<void> {
    if (this.delivered >= n) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiter = { n, resolve };
    return promise;
  }
}

interface Contender {
  publish(m: Msg): Promise<unknown> | void;
  close(): Promise<void>;
}

const nodeOf = (k: number) => 1 + (k % 7);

/** Each node's local subscribers, as plain functions. */
function placed(sink: Sink, n: number): Fan[][] {
  const at: Fan[][] = Array.from({ length: n }, () => []);
  for (let k = 0; k < sink.subscribers; k++) at[nodeOf(k)]!.push(sink.handler(k));
  return at;
}

async function pubsub(nodes: Node[], sink: Sink): Promise<Contender> {
  const pss = await Promise.all(nodes.map((x) => PubSub.start(x, "bench", { queueMax: 100_000 })));
  const at = placed(sink, nodes.length);
  for (const [i, fans] of at.entries()) {
    for (const f of fans) await pss[i]!.subscribe("t", (m) => f(m as Msg));
  }
  const want = [...new Set(at.flatMap((f, i) => (f.length > 0 ? [nodes[i]!.name] : [])))].sort();
  for (let i = 0; i < 4000 && pss[0]!.subscribers("t").join() !== want.join(); i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    publish: (m) => pss[0]!.publish("t", m),
    close: async () => {
      for (const p of pss) await p.close();
    },
  };
}

function send(nodes: Node[], sink: Sink): Contender {
  const at = placed(sink, nodes.length);
  const offs = nodes.map((x, i) =>
    x.register("bench.topic", (raw) => {
      const m = (raw as [string, Msg])[1];
      for (const f of at[i]!) f(m);
    })
  );
  const targets = at.flatMap((f, i) => (f.length > 0 ? [nodes[i]!.name] : []));
  return {
    publish: (m) => nodes[0]!.sendMany(targets, "bench.topic", ["t", m], { partitionKey: "t" }),
    close: () => Promise.resolve(offs.forEach((off) => off())),
  };
}

class FanOut implements BroadcastHandler<Msg, number, Msg> {
  readonly name = "bench.topic";
  readonly #seen = new Map<number, Msg>();
  constructor(readonly fans: Fan[]) {}
  broadcastData(m: Msg) {
    return { id: m[0], payload: m };
  }
  merge(id: number, m: Msg): boolean {
    if (this.#seen.has(id)) return false;
    this.#seen.set(id, m);
    for (const f of this.fans) f(m);
    return true;
  }
  isStale(id: number): boolean {
    return this.#seen.has(id);
  }
  graft(id: number) {
    const m = this.#seen.get(id);
    return m ? { ok: m } : { error: "unknown" };
  }
  exchange(): "ignore" {
    return "ignore";
  }
}

async function plumtree(nodes: Node[], sink: Sink): Promise<Contender> {
  const at = placed(sink, nodes.length);
  const trees = await Promise.all(
    nodes.map((x, i) => Plumtree.start(x, { handlers: [new FanOut(at[i]!)], logger: () => {} })),
  );
  return {
    publish: (m) => trees[0]!.broadcast(m, "bench.topic"),
    close: async () => {
      for (const t of trees) await t.close();
    },
  };
}

async function run(c: Contender, sink: Sink, count: number, firstId: number, window: number) {
  const s = sink.subscribers;
  const base = sink.delivered;
  const startLat = sink.latencies.length;
  const step = Math.max(1, Math.min(32, window >> 3));
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    if (i % step === 0 && i + step > window) await sink.reached(base + (i + step - window) * s);
    const p = c.publish([firstId + i, performance.now()]);
    if (p) await p;
  }
  await sink.reached(base + count * s);
  return { ms: performance.now() - t0, latencies: sink.latencies.slice(startLat) };
}

const KINDS = { pubsub, send, plumtree } as const;
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");

console.log(
  "| subscribers | contender | msgs/s | deliveries/s | p50 ms | p99 ms | unloaded p99 ms |",
);
console.log("|---:|---|---:|---:|---:|---:|---:|");
const results = new Map<string, number>();
for (const subs of [1, 10, 1000]) {
  const count = subs >= 1000 ? 3000 : 20_000;
  for (const kind of ["pubsub", "send", "plumtree"] as const) {
    const nodes = await startCluster(8);
    const sink = new Sink(subs);
    const c = await KINDS[kind](nodes, sink);
    await run(c, sink, 500, 0, 256); // warm-up
    const load = await run(c, sink, count, 1_000, 256);
    const idle = await run(c, sink, 300, 1_000_000, 1);
    const rate = count / (load.ms / 1000);
    results.set(`${subs}/${kind}`, rate);
    console.log(
      `| ${subs} | ${kind} | ${fmt(rate)} | ${fmt(rate * subs)} | ${
        percentile(load.latencies, 50).toFixed(2)
      } | ${percentile(load.latencies, 99).toFixed(2)} | ${
        percentile(idle.latencies, 99).toFixed(2)
      } |`,
    );
    await c.close();
    await Promise.all(nodes.map((x) => x.close()));
  }
}
console.log("\nratios (msgs/s):");
for (const subs of [1, 10, 1000]) {
  const p = results.get(`${subs}/pubsub`)!;
  console.log(
    `  ${subs} subscriber(s): pubsub / send ${(p / results.get(`${subs}/send`)!).toFixed(2)}, ` +
      `pubsub / plumtree ${(p / results.get(`${subs}/plumtree`)!).toFixed(2)}`,
  );
}
