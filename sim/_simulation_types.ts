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
  /** How it crashed (while alive: undefined). */
  crash: CrashKind | undefined;
  /** Which incarnation of each outgoing link is up (a close arriving late must not close a newer one). */
  readonly linkEpoch: Map<string, number>;
  ptDeadline: number;
  /** When its next lazy tick is scheduled: Infinity before the first, -1 while one runs. */
  lazyAt: number;
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
  /** Virtual time it was sent. */
  readonly sentAt: number;
  /** Virtual ms from sending to delivery per node index (NaN: not delivered). */
  readonly delays: Float32Array;
  payloads: number;
}

/**
 * How a node crashes: a `"process"` crash (the host stays up and resets the
 * crashed process's connections, so peers learn it within a round trip and a
 * connect is refused at once) or a `"host"` crash (silence: peers find its
 * links silent after `failureTimeoutMs`, connects time out after
 * `connectTimeoutMs`).
 */
export type CrashKind = "process" | "host";

/** The shape of the overlay at one instant (see {@linkcode Simulation.overlay}). */
export interface OverlayShape {
  /** Connected components of the live nodes (links taken both ways). */
  components: number;
  /** Live nodes in the largest component. */
  largest: number;
  /** Live nodes without a single link up. */
  isolated: number;
  /** Live nodes whose active view is below its size (HyParView; 0 for the full mesh). */
  notFull: number;
  /**
   * Live nodes two or more neighbours short of a full active view. An overlay
   * where every view is full need not exist (the free slots left must pair
   * up), and HyParView's settled overlays keep some nodes one short (the
   * paper: in-degree 5 for 91% of the nodes), so "whole" means none is two short.
   */
  short: number;
}
