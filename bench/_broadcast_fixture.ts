// Shared by the broadcast benchmarks: a cluster of nodes over TCP in one
// process, a handler that timestamps deliveries, and the two baselines.

import { instrumentMetrics } from "../metrics/mod.ts";
import { type BroadcastHandler, Node, Plumtree } from "../mod.ts";
import { cborDecode, cborEncode, connectedPair, FrameWriter, readFrames } from "./_raw.ts";

export type Msg = { id: number; sentAt: number; pad: Uint8Array };

/** Records when each message reached this node; resolves waiters when a count is reached. */
export class DeliveryLog implements BroadcastHandler<Msg, number, [number, Uint8Array]> {
  readonly name = "bench";
  readonly store = new Map<number, [number, Uint8Array]>();
  readonly latencies: number[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];
  #next = Infinity;
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
    // Cheap per delivery: the waiters are looked at only once the smallest count is reached.
    if (size < this.#next) return;
    this.#waiters = this.#waiters.filter((w) => (w.n <= size ? (w.resolve(), false) : true));
    this.#next = Math.min(Infinity, ...this.#waiters.map((w) => w.n));
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
    this.#next = Math.min(this.#next, n);
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
  /** Lazy announcements dropped at their bound so far (Plumtree only). */
  lazyDropped?(): number;
  close(): Promise<void>;
}

export async function plumtree(nodes: Node[]): Promise<Contender> {
  const logs = nodes.map(() => new DeliveryLog());
  const trees = await Promise.all(
    nodes.map((x, i) => Plumtree.start(x, { handlers: [logs[i]!], logger: quiet })),
  );
  // BENCH_METRICS=1 (under OTEL_DENO=true): every node's metrics on, to measure their cost;
  // BENCH_METRICS=counters: without the per-event histograms.
  const mode = Deno.env.get("BENCH_METRICS");
  const metrics = mode === "1" || mode === "counters"
    ? nodes.map((node, i) =>
      instrumentMetrics({ node, plumtree: trees[i]! }, { histograms: mode === "1" })
    )
    : [];
  if (metrics.length > 0 && !metrics[0]!.enabled) {
    throw new Error("BENCH_METRICS=1 needs OTEL_DENO=true (telemetry is off)");
  }
  return {
    logs,
    send: (m) => trees[0]!.broadcast(m, "bench"),
    payloads: () => trees.reduce((a, t) => a + t.stats().eager, 0),
    lazyDropped: () => trees.reduce((a, t) => a + t.stats().lazyDropped, 0),
    close: async () => {
      for (const m of metrics) await m.close();
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

/**
 * The raw limit, written on plain sockets with nothing of murmur in the path:
 * the root encodes each message once (bench/_raw.ts cborEncode) and appends the frame to
 * every receiver's coalescing writer (64 KiB writes, one write loop per
 * socket); each receiver reads 256 KiB at a time, splits the frames in place
 * and decodes each (bench/_raw.ts).
 */
export async function raw(n: number): Promise<Contender> {
  const logs = Array.from({ length: n }, () => new DeliveryLog());
  const pairs = await Promise.all(logs.slice(1).map(() => connectedPair()));
  const writers = pairs.map(([client]) => new FrameWriter(client));
  const loops = pairs.map(([, server], i) =>
    readFrames(server, Infinity, (body) => {
      const [id, sentAt, pad] = cborDecode(body) as [number, number, Uint8Array];
      logs[i + 1]!.merge(id, [sentAt, pad]);
    })
  );
  let payloads = 0;
  return {
    logs,
    send: (m) => {
      const frame = cborEncode([m.id, m.sentAt, m.pad]);
      logs[0]!.merge(m.id, [m.sentAt, m.pad]);
      for (const w of writers) {
        w.push(frame);
        payloads++;
      }
      return Promise.resolve();
    },
    payloads: () => payloads,
    close: async () => {
      await Promise.all(writers.map((w) => w.drained()));
      for (const [c, s, l] of pairs) {
        c.close();
        s.close();
        l.close();
      }
      await Promise.all(loops);
    },
  };
}

/**
 * Sends `count` messages from the root and waits until every node has all of
 * them. `window` is the flow control: at most `window` messages are sent and
 * not yet delivered to every node (checked every `window / 8` messages, at
 * most 32), so receivers keep up; `window` 1 is unloaded latency (each message
 * waits until every node has the previous one). `open`: no flow control, the
 * root only yields to the event loop every `window` messages (overload: on one
 * process the root can outrun the receivers, and queues grow).
 */
export async function run(
  c: Contender,
  count: number,
  padBytes: number,
  firstId: number,
  window = 256,
  deadlineMs = Infinity,
  open = false,
): Promise<{
  ms: number;
  payloads: number;
  latencies: number[];
  /** Deliveries still missing when `deadlineMs` passed (0 when all arrived). */
  missing: number;
}> {
  const pad = new Uint8Array(padBytes);
  const startPayloads = c.payloads();
  const startLat = c.logs.map((l) => l.latencies.length);
  const start = performance.now();
  // A contender that may lose messages (gossipsub) is waited for until the deadline only.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = deadlineMs === Infinity
    ? new Promise<never>(() => {})
    : new Promise<void>((r) => timer = setTimeout(r, deadlineMs));
  const all = (n: (j: number) => number) =>
    Promise.race([Promise.all(c.logs.map((l, j) => l.reached(n(j)))), deadline]);
  // Checked every `step` messages: at most `window` sent and not yet delivered everywhere.
  const step = Math.max(1, Math.min(32, window >> 3));
  for (let i = 0; i < count; i++) {
    if (open) {
      if (i % window === 0 && i > 0) await new Promise((r) => setTimeout(r, 0)); // let receivers run
    } else if (i % step === 0 && i + step > window) {
      await all((j) => startLat[j]! + i + step - window);
    }
    await c.send({ id: firstId + i, sentAt: performance.now(), pad });
  }
  await all((j) => startLat[j]! + count);
  clearTimeout(timer);
  const ms = performance.now() - start;
  const latencies = c.logs.slice(1).flatMap((l, i) => l.latencies.slice(startLat[i + 1]!));
  const missing = c.logs.reduce(
    (m, l, j) => m + Math.max(0, startLat[j]! + count - l.latencies.length),
    0,
  );
  return { ms, payloads: c.payloads() - startPayloads, latencies, missing };
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
