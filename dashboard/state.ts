/**
 * What a dashboard shows, as plain JSON: a snapshot of a node and the parts
 * registered with it, and the short history that turns counters into rates.
 *
 * @module
 */

import type { MemberInfo, NodeStats } from "../membership/node_types.ts";
import { formatAddress } from "../membership/transport.ts";
import {
  type DashboardParts,
  namedDurable,
  namedPublishers,
  publisherOf,
  type ShownPublisher,
} from "./parts.ts";

export { type DashboardParts, jsonSafe, type ShownDurable, type ShownPublisher } from "./parts.ts";
import type { PlumtreePending, PlumtreeServerStats } from "../broadcast/plumtree.ts";
import type { PublisherStats } from "../publisher/data_publisher.ts";
import { ProcessGroups } from "../publisher/process_groups.ts";
import { Presence } from "../publisher/presence.ts";
import type { DurableServerStatus } from "../durable/behaviour.ts";
import type { ClusterState } from "./cluster.ts";

/** Limits on what one snapshot holds. */
export interface SnapshotLimits {
  /** Plumtree trees shown (the most recently used). */
  treesMax: number;
  /** Groups or topics shown per publisher. */
  groupsMax: number;
  /** Members or keys shown per group or topic. */
  entriesMax: number;
}

/** One publisher in a {@linkcode DashboardState}. */
export interface PublisherState {
  /** The name it was registered under. */
  readonly name: string;
  /** Its scope. */
  readonly scope: string;
  /** `process-groups`, `presence` or `data-publisher`. */
  readonly kind: "process-groups" | "presence" | "data-publisher";
  /** Peers publishing in this scope. */
  readonly peers: readonly string[];
  /** Groups (process groups) or topics (presence): name to `node/id` or key entries. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
  /** True when groups or entries were cut to the snapshot's limits. */
  readonly truncated: boolean;
  /** Its counters. */
  readonly stats: PublisherStats;
}

/** One durable server in a {@linkcode DashboardState}. */
export interface DurableState {
  /** The name it was registered under. */
  readonly name: string;
  /** What its storage holds now, or the error reading it. */
  readonly status: DurableServerStatus | { readonly error: string };
}

/** Rates per second over the last interval, and broadcast redundancy over the last minute. */
export interface DashboardRates {
  /** Frames received per second. */
  readonly framesIn: number;
  /** Frames sent per second. */
  readonly framesOut: number;
  /** Bytes received per second. */
  readonly bytesIn: number;
  /** Bytes sent per second. */
  readonly bytesOut: number;
  /** Broadcast deliveries per second, or undefined without Plumtree. */
  readonly deliveries: number | undefined;
  /**
   * Relative message redundancy of the payloads this node received over the
   * last minute (duplicates / deliveries; 0 is a perfect tree), or undefined
   * when nothing was delivered.
   */
  readonly rmr1m: number | undefined;
}

/** The JSON the dashboard serves at `/api/state` and pushes over its event stream. */
export interface DashboardState {
  /** Wall-clock time of the snapshot (ms since the epoch). */
  readonly at: number;
  /** This node. */
  readonly node: { readonly name: string; readonly strategy: string; readonly address: string };
  /** Every entry of its view. */
  readonly members: readonly MemberInfo[];
  /** Its counters. */
  readonly stats: NodeStats;
  /** Rates computed from the history. */
  readonly rates: DashboardRates;
  /** Plumtree, when registered. */
  readonly plumtree:
    | {
      readonly stats: PlumtreeServerStats;
      readonly pending: PlumtreePending;
      readonly trees: readonly { root: string; eager: string[]; lazy: string[] }[];
    }
    | undefined;
  /** Publishers registered. */
  readonly publishers: readonly PublisherState[];
  /** Durable servers registered. */
  readonly durable: readonly DurableState[];
  /** The whole cluster, as this node's dashboard last gathered it (absent in a bare snapshot). */
  readonly cluster?: ClusterState;
}

interface Sample {
  at: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  deliveries: number;
  duplicates: number;
}

/**
 * Counter samples of the last minute (at most `samplesMax`), turned into
 * rates. Owned by one dashboard; no global state.
 *
 * @example
 * ```ts
 * import { RateHistory } from "@murmur/murmur/dashboard";
 * const h = new RateHistory(60_000, 120);
 * h.add(0, { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 }, undefined);
 * const r = h.add(1000, { framesIn: 50, framesOut: 10, bytesIn: 500, bytesOut: 100 }, undefined);
 * console.log(r.framesIn); // 50
 * ```
 */
export class RateHistory {
  readonly #windowMs: number;
  readonly #samplesMax: number;
  #samples: Sample[] = [];
  #rates: DashboardRates = {
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    deliveries: undefined,
    rmr1m: undefined,
  };

  /** Keeps samples of the last `windowMs`, at most `samplesMax` of them. */
  constructor(windowMs = 60_000, samplesMax = 120) {
    if (!(windowMs > 0)) throw new RangeError(`windowMs must be > 0, got ${windowMs}`);
    if (!Number.isInteger(samplesMax) || samplesMax < 2) {
      throw new RangeError(`samplesMax must be an integer >= 2, got ${samplesMax}`);
    }
    this.#windowMs = windowMs;
    this.#samplesMax = samplesMax;
  }

  /** The rates the last sample gave (zeros before two samples). */
  get rates(): DashboardRates {
    return this.#rates;
  }

  /** Adds a sample taken at `at` (ms, monotonic) and returns the rates it gives. */
  add(
    at: number,
    s: Pick<NodeStats, "framesIn" | "framesOut" | "bytesIn" | "bytesOut">,
    pt: Pick<PlumtreeServerStats, "deliveries" | "duplicates"> | undefined,
  ): DashboardRates {
    const sample: Sample = {
      at,
      framesIn: s.framesIn,
      framesOut: s.framesOut,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      deliveries: pt?.deliveries ?? 0,
      duplicates: pt?.duplicates ?? 0,
    };
    const last = this.#samples.at(-1);
    if (last === undefined || at > last.at) this.#samples.push(sample);
    while (
      this.#samples.length > this.#samplesMax ||
      (this.#samples.length > 2 && at - this.#samples[1]!.at >= this.#windowMs)
    ) this.#samples.shift();
    const prev = this.#samples.length >= 2 ? this.#samples.at(-2)! : sample;
    const first = this.#samples[0]!;
    const secs = (at - prev.at) / 1000;
    const rate = (k: keyof Sample) => secs > 0 ? Math.max(0, (sample[k] - prev[k]) / secs) : 0;
    const delivered = sample.deliveries - first.deliveries;
    return this.#rates = {
      framesIn: rate("framesIn"),
      framesOut: rate("framesOut"),
      bytesIn: rate("bytesIn"),
      bytesOut: rate("bytesOut"),
      deliveries: pt === undefined ? undefined : rate("deliveries"),
      rmr1m: pt === undefined || delivered <= 0
        ? undefined
        : Math.max(0, sample.duplicates - first.duplicates) / delivered,
    };
  }
}

function publisherState(name: string, p: ShownPublisher, lim: SnapshotLimits): PublisherState {
  const pub = publisherOf(p);
  const groups: Record<string, string[]> = Object.create(null);
  let truncated = false;
  const cut = <T>(xs: T[], max: number): T[] => {
    if (xs.length > max) truncated = true;
    return xs.slice(0, max);
  };
  let kind: PublisherState["kind"] = "data-publisher";
  if (p instanceof ProcessGroups) {
    kind = "process-groups";
    for (const g of cut(p.whichGroups(), lim.groupsMax)) {
      groups[g] = cut(p.getMembers(g).map((m) => `${m.node}/${m.id}`), lim.entriesMax);
    }
  } else if (p instanceof Presence) {
    kind = "presence";
    for (const t of cut(p.topics(), lim.groupsMax)) {
      const list = p.list(t);
      groups[t] = cut(
        Object.keys(list).map((k) => `${k} @ ${list[k]!.map((m) => m.node).join(",")}`),
        lim.entriesMax,
      );
    }
  }
  return {
    name,
    scope: pub.scope,
    kind,
    peers: pub.peers().map((x) => x.node).sort(),
    groups,
    truncated,
    stats: pub.stats(),
  };
}

/**
 * Takes a snapshot of `parts` (reads durable servers' storage), with the
 * rates of the last sample added to `history` (a dashboard adds one every
 * `intervalMs`, so a snapshot taken between two never shortens the interval).
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { RateHistory, snapshot } from "@murmur/murmur/dashboard";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * const s = await snapshot({ node }, new RateHistory());
 * console.log(s.members.map((m) => m.state)); // [ "up" ]
 * ```
 */
export async function snapshot(
  parts: DashboardParts,
  history: RateHistory,
  limits: SnapshotLimits = { treesMax: 32, groupsMax: 200, entriesMax: 200 },
): Promise<DashboardState> {
  const { node, plumtree } = parts;
  const stats = node.stats();
  const pt = plumtree?.stats();
  const durable = await Promise.all(
    namedDurable(parts).map(
      async ([name, d]): Promise<DurableState> => {
        try {
          return { name, status: await d.status() };
        } catch (e) {
          return { name, status: { error: e instanceof Error ? e.message : String(e) } };
        }
      },
    ),
  );
  return {
    at: node.clock.wallNow(),
    node: {
      name: node.name,
      strategy: node.strategy,
      // The advertised address (what peers dial), not a wildcard it may be bound to.
      address: formatAddress(node.spec.listenAddrs[0] ?? node.listenAddr),
    },
    members: node.memberInfo(),
    stats,
    rates: history.rates,
    plumtree: plumtree === undefined ? undefined : {
      stats: pt!,
      pending: plumtree.pending(),
      trees: plumtree.trees(limits.treesMax),
    },
    publishers: namedPublishers(parts)
      .map(([name, p]) => publisherState(name, p, limits)),
    durable,
  };
}
