/**
 * The membership strategy seam (the seed's `partisan_peer_service_manager`
 * behaviour, which has several implementations). A strategy is a state
 * machine with no I/O: the {@linkcode Node} feeds it events (a peer
 * authenticated, came up, went down, sent a membership message, time passed)
 * and carries out the {@linkcode StrategyEffects} it returns (send these
 * messages, connect to these nodes, drop those, report these changes).
 * Time and randomness come in from outside, so the same code runs in a node
 * and in a simulator.
 *
 * @module
 */

import type { LogLevel } from "../base/logger.ts";
import type { MemberEntry, MembershipChange } from "./membership_state.ts";
import type { NodeSpec } from "./spec.ts";

/** What a strategy asks its node to do after an event. */
export interface StrategyEffects {
  /** Membership messages to send, each to one node. */
  sends: { to: string; msg: unknown }[];
  /** Nodes to connect to (and keep connected). */
  connect: NodeSpec[];
  /**
   * Nodes to disconnect from; `departed` when they are gone for good (left or
   * removed); `graceful`: after the sends of these effects to it are flushed.
   */
  disconnect: { name: string; reason: string; departed: boolean; graceful?: boolean }[];
  /** Changes of the known membership, for listeners and logs. */
  changes: MembershipChange[];
  /** This node must take an incarnation above `above` (it was declared dead, or is stale). */
  refute?: { above: number; reason: string };
  /** Records to log. */
  logs: { level: LogLevel; msg: string; peer?: string }[];
  /** Call {@linkcode MembershipStrategy.flush} soon (changes to spread, coalesced). */
  flush: boolean;
}

/** Counters a strategy keeps. */
export interface StrategyStats {
  /** Gossip entries dropped as invalid. */
  invalidEntries: number;
  /** Live entries refused because the view was at `membersMax`. */
  membersRejected: number;
  /** Members removed (reaped after `deadMemberRemoveMs`, or by `leave(name)`). */
  membersRemoved: number;
  /** Membership messages sent. */
  gossipsOut: number;
}

/**
 * Zeroed counters, for a strategy's `stats`.
 *
 * @example
 * ```ts
 * import { newStrategyStats } from "@murmur/murmur/membership";
 * console.log(newStrategyStats().gossipsOut); // 0
 * ```
 */
export function newStrategyStats(): StrategyStats {
  return { invalidEntries: 0, membersRejected: 0, membersRemoved: 0, gossipsOut: 0 };
}

/**
 * A membership strategy: which nodes this node knows, which it keeps
 * connections to, and the messages that keep that true.
 *
 * @example The events a node feeds a strategy
 * ```ts
 * import { FullMesh } from "@murmur/murmur/membership";
 * const self = { name: "a", incarnation: 1, listenAddrs: [], channels: {} };
 * const s = new FullMesh(self, { random: { next: () => 0.5 } });
 * const fx = s.seen({ name: "b", incarnation: 1, listenAddrs: [], channels: {} }, 0);
 * console.log(fx.connect.map((c) => c.name), s.members()); // [ "b" ] [ "a", "b" ]
 * ```
 */
export interface MembershipStrategy {
  /** The strategy's name. */
  readonly kind: string;
  /** Counters. */
  readonly stats: StrategyStats;
  /** Every member this node knows of, self included, sorted. */
  members(): string[];
  /** The entry (member or tombstone) known for `name`. */
  entry(name: string): MemberEntry | undefined;
  /** Specs of every known member, self included, sorted by name. */
  specs(): NodeSpec[];
  /** Every entry worth showing an operator, members and tombstones, sorted by name. */
  entries(): MemberEntry[];
  /** True for a member known but deliberately not connected (a HyParView passive view entry). */
  passive?(name: string): boolean;
  /** The members known but deliberately not connected, sorted (HyParView's passive view). */
  passiveView?(): string[];
  /** Number of tombstones held. */
  tombstones(): number;
  /** True when this node is in a cluster (it has not left). */
  readonly active: boolean;
  /** The user joins the cluster through `spec` (already authenticated). */
  join(spec: NodeSpec, now: number): StrategyEffects;
  /** A node authenticated in a handshake, either way. */
  seen(spec: NodeSpec, now: number): StrategyEffects;
  /** The connections to `name` are up. */
  up(name: string, now: number): StrategyEffects;
  /** The connections to `name` are down. */
  down(name: string, now: number): StrategyEffects;
  /** A connection to `name` could not be made (optional: the full mesh keeps retrying). */
  unreachable?(name: string, now: number): StrategyEffects;
  /** A membership message from `from`. Throws `ProtocolError` when malformed. */
  receive(from: string, msg: unknown, now: number): StrategyEffects;
  /** Periodic work (called every `pingIntervalMs`): gossip, reaping, expiry. */
  tick(now: number): StrategyEffects;
  /** Spreads what changed since the last flush. */
  flush(now: number): StrategyEffects;
  /** The message to greet a peer with when it comes up, if any. */
  greeting(to: string): unknown;
  /** This node leaves the cluster. */
  leave(now: number): StrategyEffects;
  /** Removes members by hand (`leave(name)` of a crashed member). */
  remove(names: readonly string[], now: number): StrategyEffects;
  /** This node took a new spec (a higher incarnation). */
  setSelf(spec: NodeSpec, now: number): StrategyEffects;
  /** Removed members worth probing now (a partition may have healed). */
  probeCandidates(count: number): NodeSpec[];
}

/** Effects that do nothing. */
export function noEffects(): StrategyEffects {
  return { sends: [], connect: [], disconnect: [], changes: [], logs: [], flush: false };
}
