// Plumtree test fixtures: a handler that records deliveries, and a cluster of
// nodes on a simulated network in virtual time.

import {
  type BroadcastHandler,
  KvHandler,
  Node,
  Plumtree,
  type PlumtreeOptions,
  seededRandom,
} from "../mod.ts";
import { MemoryNetwork } from "../testing.ts";
import { SimulatedClock } from "../protocol.ts";

/** Records each message the application receives. */
export class LogHandler implements BroadcastHandler<{ id: string; body: string }, string, string> {
  readonly name: string = "log";
  readonly store = new Map<string, string>();
  readonly delivered: string[] = [];
  broadcastData(m: { id: string; body: string }) {
    return { id: m.id, payload: m.body };
  }
  merge(id: string, body: string): boolean {
    if (this.store.has(id)) return false;
    this.store.set(id, body);
    this.delivered.push(id); // what the application sees
    return true;
  }
  isStale(id: string): boolean {
    return this.store.has(id);
  }
  graft(id: string) {
    const b = this.store.get(id);
    return b === undefined ? { error: "unknown" } : { ok: b };
  }
  exchange(): "ignore" {
    return "ignore";
  }
}

export interface SimNode {
  node: Node;
  plumtree: Plumtree; // replaced by tests that restart it
  log: LogHandler;
  kv: KvHandler;
}

export async function simCluster(
  n: number,
  seed: number,
  plumtreeOptions: Partial<PlumtreeOptions> = {},
) {
  const clock = new SimulatedClock(1_000_000);
  const net = new MemoryNetwork({ clock, seed, latencyMs: [1, 10], lossFreeFrames: 4 });
  // Not `seed` itself: the network's stream would be the nodes' own, and its
  // losses would follow what the nodes draw (SIM_SEED=1057608042 lost every one
  // of eight copies of one message sent to one node, so a graft never got through).
  const random = seededRandom(seed ^ 0x5bd1e995);
  const nodes: SimNode[] = [];
  const add = async (i: number) => {
    const node = await Node.start({
      name: `n${String(i).padStart(2, "0")}`,
      cookie: "sim",
      transport: net.transport(`h${i}`),
      listen: { hostname: `h${i}`, port: 1 },
      clock,
      random,
      logger: () => {},
      pingIntervalMs: 500,
      failureTimeoutMs: 4000,
      gossipIntervalMs: 1000,
    });
    const log = new LogHandler();
    const kv = new KvHandler("kv", node, { clock });
    const plumtree = await Plumtree.start(node, {
      handlers: [log, kv],
      clock,
      random,
      logger: () => {},
      lazyTickMs: 200,
      exchangeTickMs: 1000,
      ...plumtreeOptions,
    });
    const s = { node, plumtree, log, kv };
    nodes.push(s);
    return s;
  };
  for (let i = 0; i < n; i++) await add(i);
  const joins = nodes.slice(1).map((s) => s.node.join(nodes[0]!.node.spec));
  const run = async (ms: number, until?: () => boolean) => {
    for (let t = 0; t < ms; t += 50) {
      if (until?.()) return t;
      await clock.advance(50);
    }
    if (until && !until()) {
      throw new Error(`not reached within ${ms} virtual ms (SIM_SEED=${seed})`);
    }
    return ms;
  };
  await run(20_000, () => nodes.every((s) => s.node.connectedMembers().length === n));
  await Promise.all(joins);
  const close = async () => {
    for (const s of nodes) {
      await s.plumtree.close();
      s.kv.close();
      await s.node.close();
    }
  };
  return { clock, net, nodes, run, add, close };
}
