/**
 * The simulator's types: its options, its counters, a broadcast's report, and
 * what it keeps per node and per broadcast. Module-private but for what
 * `simulation.ts` exports.
 *
 * @module
 */

import type { HyParViewOptions } from "../membership/hyparview.ts";
import type { NodeSpec } from "../membership/spec.ts";
import type { EffectsHost, MembershipStrategy } from "../membership/strategy.ts";
import type { PlumtreeHandlers } from "../broadcast/dispatch.ts";
import type { PlumtreeCore, PlumtreeCoreOptions } from "../broadcast/plumtree_core.ts";
import type { SimPublisherOptions } from "./_publishers.ts";

/** Options of a {@linkcode Simulation}. */
export interface SimulationOptions {
  /** Seed of every random choice. */
  seed: number;
  /** Membership strategy of every node. */
  strategy: "hyparview" | "full-mesh";
  /** HyParView settings (the paper's defaults). */
  hyparview?: HyParViewOptions;
  /** Plumtree settings (besides `random`). */
  plumtree?: Omit<PlumtreeCoreOptions, "random">;
  /** One-way latency, drawn uniformly per frame (default [10, 50] ms). */
  latencyMs?: [number, number];
  /**
   * Probability that a Plumtree frame is lost; membership frames ride a reliable stream.
   *
   * @default 0
   */
  loss?: number;
  /**
   * Period of liveness checks and strategy ticks.
   *
   * @default 1000
   */
  pingIntervalMs?: number;
  /**
   * A silent link (crashed peer, partition) is declared down after this long.
   *
   * @default 5000
   */
  failureTimeoutMs?: number;
  /**
   * A connect to an unreachable (partitioned) node fails after this long.
   *
   * @default 5000
   */
  connectTimeoutMs?: number;
  /**
   * Full mesh: reconnect backoff after a failure.
   *
   * @default 1000
   */
  reconnectMs?: number;
  /**
   * Plumtree's lazy tick.
   *
   * @default 1000
   */
  lazyTickMs?: number;
  /**
   * Full-mesh gossip period.
   *
   * @default 1000
   */
  gossipIntervalMs?: number;
  /**
   * Full mesh: a member down this long is removed.
   *
   * @default 60000
   */
  deadMemberRemoveMs?: number;
  /**
   * Runs a data publisher on every node (one scope, the real publisher core
   * over a Plumtree of its own, as a node's publisher hub does); see
   * {@linkcode Simulation.publish}. Default: none.
   */
  publishers?: SimPublisherOptions;
  /**
   * Counts the bytes of every frame (its encoding, plus 8 bytes of framing)
   * in `counters.bytes`. Costs time.
   *
   * @default false
   */
  measureBytes?: boolean;
}

export interface SimNode {
  readonly name: string;
  readonly index: number;
  spec: NodeSpec;
  alive: boolean;
  readonly strategy: MembershipStrategy;
  readonly pt: PlumtreeCore;
  /** Outgoing links that are up. */
  readonly up: Set<string>;
  /** Outgoing links this node keeps (wants up), with their specs. */
  readonly wanted: Map<string, NodeSpec>;
  readonly connecting: Set<string>;
  /** Nodes with an incoming link to this node (they count it as up). */
  readonly inbound: Set<string>;
  /** Which incarnation of each outgoing link is up (a close arriving late must not close a newer one). */
  readonly linkEpoch: Map<string, number>;
  ptDeadline: number;
  flushScheduled: boolean;
  /** How this node carries out its strategy's effects (the interpreter a Node shares). */
  effects: EffectsHost;
  /** Its one broadcast handler, as the shared Plumtree dispatch asks it. */
  handlers: PlumtreeHandlers;
}

/** One broadcast's outcome. */
export interface BroadcastReport {
  /** Nodes that received it (the origin excluded). */
  delivered: number;
  /** Nodes alive when it was sent and at the end that did not receive it. */
  missed: number;
  /** Payload frames sent for it (eager pushes and graft answers). */
  payloads: number;
  /** Hops of its last delivery. */
  ldh: number;
}

/** Counters of a run. */
export interface SimulationCounters {
  /** Frames sent, all kinds. */
  frames: number;
  /** Membership frames. */
  membershipFrames: number;
  /** Plumtree frames. */
  plumtreeFrames: number;
  /** Publisher frames (their Plumtree and anti-entropy). */
  publisherFrames: number;
  /** Bytes of every frame sent, when `measureBytes` is on. */
  bytes: number;
  /** Frames lost to `loss`, partitions or dead nodes. */
  lost: number;
  /** Events processed. */
  events: number;
}

export interface Broadcast {
  readonly origin: number;
  /** Hop of delivery per node index; -1: not delivered. */
  readonly hops: Int16Array;
  /** Alive when it was sent. */
  readonly expected: Uint8Array;
  payloads: number;
}
