// Shared by the broadcast benchmarks: a cluster of nodes over TCP in one
// process, a handler that timestamps deliveries, and the two baselines.

import {
  type BroadcastHandler,
  decodeValue,
  encodeValue,
  type FrameConnection,
  Node,
  Plumtree,
  TcpTransport,
} from "../mod.ts";

export type Msg = { id: number; sentAt: number; pad: Uint8Array };

/** Records when each message reached this node; resolves waiters when a count is reached. */
export class DeliveryLog implements BroadcastHandler<Msg, number, [number, Uint8Array]> {
  readonly name = "bench";
  readonly store = new Map<number, [number, Uint8Array]>();
  readonly latencies: number[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];
  broadcastData(m: Msg): { id: number; payload: [number, Uint8Array] } {
    return { id: m.id, payload: [m.sentAt, m.pad] };
  }
  merge(id: number, payload: [number, Uint8Array]): boolean {
    if (this.store.has(id)) return false;
    this.store.set(id, payload);
    this.record(payload[0]);
    return true;
  }
  record(sentAt: number): void {
    this.latencies.push(performance.now() - sentAt);
    const size = this.latencies.length;
    this.#waiters = this.#waiters.filter((w) => (w.n <= size ? (w.resolve(), false) : true));
  }
  isStale(id: number): boolean {
    return this.store.has(id);
  }
  graft(id: number): { ok: [number, Uint8Array] } | { error: string } {
    const p = this.store.get(id);
    return p ? { ok: p } : { error: "unknown" };
  }
  exchange(): "ignore" {
    return "ignore";
  }
  /** Resolves when `n` deliveries have been recorded in total. */
  reached(n: number): Promise<void> {
    if (this.latencies.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }
}

const quiet = () => {};

export async function startCluster(n: number): Promise<Node[]> {
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push(
      await Node.start({
        name: `n${String(i).padStart(2, "0")}`,
        cookie: "bench",
        logger: quiet,
        channels: { broadcast: { parallelism: 1 } },
        sendQueueBytesMax: 16 * 1024 * 1024,
      }),
    );
  }
  await Promise.all(nodes.slice(1).map((x) => x.join(nodes[0]!.spec)));
  for (let i = 0; i < 2000; i++) {
    if (nodes.every((x) => x.connectedMembers().length === n)) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  return nodes;
}

export interface Contender {
  logs: DeliveryLog[];
  /** Sends one message from the root. */
  send(m: Msg): Promise<void>;
  /** Payload messages sent so far, all nodes together. */
  payloads(): number;
  close(): Promise<void>;
}

export async function plumtree(nodes: Node[]): Promise<Contender> {
  const logs = nodes.map(() => new DeliveryLog());
  const trees = await Promise.all(
    nodes.map((x, i) => Plumtree.start(x, { handlers: [logs[i]!], logger: quiet })),
  );
  return {
    logs,
    send: (m) => trees[0]!.broadcast(m, "bench"),
    payloads: () => trees.reduce((a, t) => a + t.stats().eager, 0),
    close: async () => {
      for (const t of trees) await t.close();
    },
  };
}

/** Flooding: eager push to every member, no lazy path, duplicates dropped. */
export function flooding(nodes: Node[]): Contender {
  const logs = nodes.map(() => new DeliveryLog());
  let payloads = 0;
  const offs = nodes.map((x, i) =>
    x.register("bench.flood", (raw, ctx) => {
      const [id, sentAt, pad] = raw as [number, number, Uint8Array];
      if (!logs[i]!.merge(id, [sentAt, pad])) return;
      for (const peer of x.connectedMembers()) {
        if (peer === x.name || peer === ctx.from) continue;
        payloads++;
        x.send(peer, "bench.flood", raw, { channel: "broadcast" }).catch(() => {});
      }
    })
  );
  const root = nodes[0]!;
  return {
    logs,
    send: async (m) => {
      const raw = [m.id, m.sentAt, m.pad];
      logs[0]!.merge(m.id, [m.sentAt, m.pad]);
      for (const peer of root.connectedMembers()) {
        if (peer === root.name) continue;
        payloads++;
        await root.send(peer, "bench.flood", raw, { channel: "broadcast" });
      }
    },
    payloads: () => payloads,
    close: () => {
      for (const off of offs) off();
      return Promise.resolve();
    },
  };
}

/** The raw limit: the root writes the same frames straight to every node over TCP. */
export async function raw(n: number): Promise<Contender> {
  const t = new TcpTransport();
  const logs = Array.from({ length: n }, () => new DeliveryLog());
  const listeners = await Promise.all(
    logs.slice(1).map(() => t.listen({ hostname: "127.0.0.1", port: 0 })),
  );
  const clients: FrameConnection[] = [];
  const servers: FrameConnection[] = [];
  const loops: Promise<void>[] = [];
  for (const [i, l] of listeners.entries()) {
    clients.push(await t.connect(l.addr));
    const s = (await l.accept())!;
    servers.push(s);
    loops.push((async () => {
      for (;;) {
        const f = await s.read().catch(() => null);
        if (f === null) return;
        const [id, sentAt, pad] = decodeValue(f) as [number, number, Uint8Array];
        logs[i + 1]!.merge(id, [sentAt, pad]);
      }
    })());
  }
  let payloads = 0;
  // One writer per connection, batching what queued while it wrote (as a node's link does).
  const queues = clients.map(() => [] as Uint8Array[]);
  const writing = clients.map(() => Promise.resolve());
  const busy = clients.map(() => false);
  const kick = (j: number) => {
    if (busy[j]) return;
    busy[j] = true;
    writing[j] = (async () => {
      while (queues[j]!.length > 0) {
        const batch = queues[j]!.splice(0);
        await clients[j]!.write(batch);
      }
      busy[j] = false;
    })();
  };
  return {
    logs,
    send: (m) => {
      const frame = encodeValue([m.id, m.sentAt, m.pad]);
      logs[0]!.merge(m.id, [m.sentAt, m.pad]);
      for (let j = 0; j < clients.length; j++) {
        queues[j]!.push(frame);
        payloads++;
        kick(j);
      }
      return Promise.resolve();
    },
    payloads: () => payloads,
    close: async () => {
      await Promise.all(writing);
      for (const c of clients) c.close();
      for (const s of servers) s.close();
      for (const l of listeners) l.close();
      await Promise.all(loops);
    },
  };
}

/** Sends `count` messages from the root and waits until every node has all of them. */
export async function run(c: Contender, count: number, padBytes: number, firstId: number): Promise<{
  ms: number;
  payloads: number;
  latencies: number[];
}> {
  const pad = new Uint8Array(padBytes);
  const startPayloads = c.payloads();
  const startLat = c.logs.map((l) => l.latencies.length);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    await c.send({ id: firstId + i, sentAt: performance.now(), pad });
    if (i % 256 === 255) await new Promise((r) => setTimeout(r, 0)); // let receivers run
  }
  await Promise.all(c.logs.map((l, i) => l.reached(startLat[i]! + count)));
  const ms = performance.now() - start;
  const latencies = c.logs.slice(1).flatMap((l, i) => l.latencies.slice(startLat[i + 1]!));
  return { ms, payloads: c.payloads() - startPayloads, latencies };
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
