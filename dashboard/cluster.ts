/**
 * The whole cluster from any node: each node answers a summary of itself
 * (counters, tags, neighbours, broadcast links) on a reserved endpoint, and a
 * dashboard gathers them through the cluster with bounded fan-out, a timeout
 * per node and a sample past a size. Under HyParView it walks the overlay
 * from neighbour to neighbour (routed calls), so it reaches nodes this one
 * has no connection to.
 *
 * @module
 */

import { formatAddress } from "../membership/transport.ts";
import type { DashboardParts } from "./parts.ts";

/** The endpoint every node answers its summary on (see {@linkcode shareSummary}). */
export const SUMMARY_ENDPOINT = "murmur.dashboard.summary";

/** One node, as the cluster view shows it. */
export interface NodeSummary {
  /** Its name. */
  readonly name: string;
  /** Its advertised address (`host:port`). */
  readonly address: string;
  /** `full-mesh` or `hyparview`. */
  readonly strategy: string;
  /** Its tags. */
  readonly tags: Readonly<Record<string, string>>;
  /** The members it is connected to (its active view under HyParView). */
  readonly neighbours: readonly string[];
  /** Counters. */
  readonly stats: {
    readonly framesIn: number;
    readonly framesOut: number;
    readonly bytesIn: number;
    readonly bytesOut: number;
    readonly connections: number;
    readonly sendDrops: number;
    readonly deliveries: number;
    readonly duplicates: number;
  };
  /** Its eager (tree) links per broadcast root, at most 32 roots. */
  readonly eager: Readonly<Record<string, readonly string[]>>;
}

/** The whole cluster as one node gathered it. */
export interface ClusterState {
  /** The nodes that answered, by name. */
  readonly nodes: readonly NodeSummary[];
  /** Nodes known but not answering within the timeout (or without a summary endpoint). */
  readonly unreachable: readonly string[];
  /** True when the cluster was larger than `nodesMax` and only a sample was asked. */
  readonly sampled: boolean;
  /** Counters summed over the nodes that answered. */
  readonly sums: NodeSummary["stats"];
  /** Each broadcast root's tree, assembled from every node's eager links: `[a, b]` edges, once per pair. */
  readonly trees: readonly { readonly root: string; readonly edges: readonly [string, string][] }[];
  /** The overlay: `[a, b]` for each pair of neighbours (once per pair). */
  readonly links: readonly [string, string][];
  /** Milliseconds the gathering took. */
  readonly ms: number;
}

/** Bounds of {@linkcode gatherCluster}. */
export interface GatherOptions {
  /** Nodes asked at once. @default {8} */
  fanOut?: number;
  /** Per node. @default {1000} */
  timeoutMs?: number;
  /** Most nodes asked (a sample past it). @default {64} */
  nodesMax?: number;
}

/** This node's summary. */
export function summary(parts: DashboardParts): NodeSummary {
  const { node, plumtree } = parts;
  const s = node.stats();
  const pt = plumtree?.stats();
  const eager: Record<string, string[]> = Object.create(null);
  for (const t of plumtree?.trees(32) ?? []) eager[t.root] = t.eager;
  const addr = node.spec.listenAddrs[0];
  return {
    name: node.name,
    address: addr === undefined ? formatAddress(node.listenAddr) : formatAddress(addr),
    strategy: node.strategy,
    tags: node.tags,
    neighbours: node.connectedMembers().filter((n) => n !== node.name),
    stats: {
      framesIn: s.framesIn,
      framesOut: s.framesOut,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      connections: s.connections,
      sendDrops: s.sendDrops,
      deliveries: pt?.deliveries ?? 0,
      duplicates: pt?.duplicates ?? 0,
    },
    eager,
  };
}

/**
 * Answers this node's summary to cluster-wide dashboards (registers
 * {@linkcode SUMMARY_ENDPOINT}); `serveDashboard` does it for its node. Run it
 * on every node that should show up in another node's dashboard. Returns a
 * function that stops.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur";
 * import { shareSummary } from "@murmur/murmur/dashboard";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * const off = shareSummary({ node });
 * off();
 * ```
 */
export function shareSummary(parts: DashboardParts): () => void {
  if (parts.node.registered(SUMMARY_ENDPOINT)) return () => {};
  return parts.node.register(SUMMARY_ENDPOINT, () => summary(parts));
}

function isSummary(v: unknown): v is NodeSummary {
  const s = v as NodeSummary;
  return typeof v === "object" && v !== null && typeof s.name === "string" &&
    Array.isArray(s.neighbours) && typeof s.stats === "object" && s.stats !== null &&
    typeof s.eager === "object" && s.eager !== null;
}

/**
 * Gathers every node's summary, starting from this node's members and
 * following each answer's neighbours: at most `fanOut` calls at once, each
 * bounded by `timeoutMs`, at most `nodesMax` nodes.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur";
 * import { gatherCluster } from "@murmur/murmur/dashboard";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * const c = await gatherCluster({ node });
 * console.log(c.nodes.map((n) => n.name)); // [ "a" ]
 * ```
 */
export async function gatherCluster(
  parts: DashboardParts,
  options: GatherOptions = {},
): Promise<ClusterState> {
  const { node } = parts;
  const fanOut = options.fanOut ?? 8, timeoutMs = options.timeoutMs ?? 1000;
  const nodesMax = options.nodesMax ?? 64;
  const t0 = performance.now();
  const got = new Map<string, NodeSummary>([[node.name, summary(parts)]]);
  const unreachable = new Set<string>();
  const queued = new Set<string>([node.name]);
  const todo: string[] = [];
  let sampled = false;
  const want = (name: string) => {
    if (queued.has(name)) return;
    if (queued.size >= nodesMax) {
      sampled = true;
      return;
    }
    queued.add(name);
    todo.push(name);
  };
  for (const m of node.members()) want(m);
  for (const m of got.get(node.name)!.neighbours) want(m);
  const partial = node.strategy !== "full-mesh";
  const ask = async (name: string) => {
    try {
      const r = await node.call(name, SUMMARY_ENDPOINT, null, { timeoutMs, transitive: partial });
      if (!isSummary(r)) throw new TypeError("not a summary");
      got.set(name, r);
      for (const n of r.neighbours) want(n);
    } catch {
      unreachable.add(name);
    }
  };
  const running = new Set<Promise<void>>();
  while (todo.length > 0 || running.size > 0) {
    while (todo.length > 0 && running.size < fanOut) {
      const p = ask(todo.shift()!);
      running.add(p);
      void p.finally(() => running.delete(p));
    }
    if (running.size > 0) await Promise.race(running);
  }
  const nodes = [...got.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const zero = {
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    connections: 0,
    sendDrops: 0,
    deliveries: 0,
    duplicates: 0,
  };
  const sums = { ...zero };
  for (const n of nodes) {
    for (const k of Object.keys(zero) as (keyof typeof zero)[]) sums[k] += n.stats[k] ?? 0;
  }
  /** Adds the pair `a`-`b` once. */
  const pair = (seen: Set<string>, out: [string, string][], a: string, b: string) => {
    const [x, y] = a < b ? [a, b] : [b, a];
    const key = `${x}\u0000${y}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push([x, y]);
  };
  const roots = new Map<string, { seen: Set<string>; edges: [string, string][] }>();
  const pairs = new Set<string>();
  const links: [string, string][] = [];
  for (const n of nodes) {
    for (const [root, to] of Object.entries(n.eager)) {
      let t = roots.get(root);
      if (t === undefined) roots.set(root, t = { seen: new Set(), edges: [] });
      for (const x of to) pair(t.seen, t.edges, n.name, x);
    }
    for (const m of n.neighbours) pair(pairs, links, n.name, m);
  }
  return {
    nodes,
    unreachable: [...unreachable].sort(),
    sampled,
    sums,
    trees: [...roots].map(([root, t]) => ({ root, edges: t.edges.sort() })).sort((a, b) =>
      a.root < b.root ? -1 : 1
    ),
    links: links.sort(),
    ms: Math.round(performance.now() - t0),
  };
}
