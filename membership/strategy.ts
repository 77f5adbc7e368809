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
  /** Replaces every neighbour by passive members, when the strategy has such (HyParView). */
  rotate?(now: number, prefer?: string): StrategyEffects;
  /** Removed members worth probing now (a partition may have healed). */
  probeCandidates(count: number): NodeSpec[];
}

/** Effects that do nothing. */
export function noEffects(): StrategyEffects {
  return { sends: [], connect: [], disconnect: [], changes: [], logs: [], flush: false };
}

/**
 * What carries out a strategy's effects: a {@linkcode Node} (real
 * connections) or the simulator (modelled links). {@linkcode applyEffects} is
 * the one interpreter both use, so the order of what happens is the same in
 * both.
 */
export interface EffectsHost {
  /** True when this node may open connections (open, and in a cluster). */
  canConnect(): boolean;
  /** A record to log. */
  log(level: LogLevel, msg: string, peer?: string): void;
  /** Closes the connections with a node (see {@linkcode StrategyEffects.disconnect}). */
  disconnect(d: StrategyEffects["disconnect"][number]): void;
  /** Starts keeping a connection to a node. */
  connect(spec: NodeSpec): void;
  /** Membership changes, for listeners. */
  changes(changes: readonly MembershipChange[]): void;
  /** Sends a membership message to a node (one that is up; others are skipped). */
  send(to: string, msg: unknown): void;
  /** This node must take an incarnation above `above`. */
  refute(above: number, reason: string): void;
  /** Calls the strategy's `flush` soon (once, however many effects ask). */
  scheduleFlush(): void;
}

/**
 * Carries out a strategy's effects on `host`, in this order: logs,
 * disconnects, connects (when the host may), changes (after the connects: a
 * listener that sends to a member just added finds its connection opening),
 * sends, the refutation, the flush.
 *
 * @example
 * ```ts
 * import { applyEffects, type EffectsHost, FullMesh, seededRandom } from "@murmur/murmur/protocol";
 * const spec = (name: string) => ({ name, incarnation: 1, listenAddrs: [], channels: {} });
 * const a = new FullMesh(spec("a"), { random: seededRandom(1) });
 * const done: string[] = [];
 * const host: EffectsHost = {
 *   canConnect: () => true,
 *   log: () => {},
 *   disconnect: (d) => void done.push(`drop ${d.name}`),
 *   connect: (s) => void done.push(`connect ${s.name}`),
 *   changes: (cs) => void done.push(...cs.map((c) => `${c.kind} ${c.name}`)),
 *   send: (to) => void done.push(`send ${to}`),
 *   refute: () => {},
 *   scheduleFlush: () => void done.push("flush"),
 * };
 * applyEffects(a.seen(spec("b"), 0), host);
 * console.log(done); // [ "connect b", "added b", "flush" ]
 * ```
 */
export function applyEffects(fx: StrategyEffects, host: EffectsHost): void {
  for (const l of fx.logs) host.log(l.level, l.msg, l.peer);
  for (const d of fx.disconnect) host.disconnect(d);
  if (fx.connect.length > 0 && host.canConnect()) {
    for (const spec of fx.connect) host.connect(spec);
  }
  if (fx.changes.length > 0) host.changes(fx.changes);
  for (const s of fx.sends) host.send(s.to, s.msg);
  if (fx.refute !== undefined) host.refute(fx.refute.above, fx.refute.reason);
  if (fx.flush) host.scheduleFlush();
}
