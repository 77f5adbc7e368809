/**
 * The plain types of a `Node`'s API: join results, partitions,
 * up/down options and counters.
 *
 * @module
 */

import type { NodeSpec, Tags } from "./spec.ts";

/** A partition injected with `Node.injectPartition`. */
export interface PartitionInfo {
  /** Reference for `Node.resolvePartition`. */
  readonly ref: number;
  /** Nodes cut off from this node. */
  readonly nodes: readonly string[];
  /** When it heals by itself (the node's monotonic clock), or undefined. */
  readonly expiresAt: number | undefined;
}

/** What `Node.join` resolves with. */
export interface JoinResult {
  /** The node joined through. */
  readonly node: string;
  /** This node's incarnation after the join (raised if the cluster knew a higher one). */
  readonly incarnation: number;
  /**
   * This node's stale specs the cluster held (a crashed former run, maybe at
   * another address) and that the join replaced: the seed's `connect` with `prune`.
   */
  readonly stale: readonly NodeSpec[];
}

/** Options of `Node.onUp` and `Node.onDown`. */
export interface UpDownOptions {
  /**
   * Only for this channel (the seed's `on_up/3`): the callback receives the
   * node and the channel. Every channel of a peer comes up together and a
   * lost channel takes the peer down, so a channel's callback fires at the
   * peer's transitions. An unknown channel is refused with a `TypeError`.
   */
  channel?: string;
}

/**
 * An `onUp`/`onDown` callback: the node, the channel when it was registered
 * with `{ channel }`, and the node's tags.
 *
 * @example
 * ```ts
 * import type { UpDownCallback } from "@murmur/murmur/membership";
 * const log: UpDownCallback = (node, channel, tags) =>
 *   console.log(node, channel ?? "(all)", tags.role ?? "-");
 * log("b", undefined, { role: "web" }); // b (all) web
 * ```
 */
export type UpDownCallback = (node: string, channel: string | undefined, tags: Tags) => void;

/**
 * How a node sees one entry of its view: `up` (connected), `down` (a member
 * whose connections are lost), `passive` (a HyParView passive view entry,
 * known but deliberately not connected), `left` or `removed` (tombstones).
 */
export type MemberState = "up" | "down" | "passive" | "left" | "removed";

/** One entry of `Node.memberInfo`. */
export interface MemberInfo {
  /** The member's name. */
  readonly name: string;
  /** True for the node asked. */
  readonly self: boolean;
  /** Its state as this node sees it (self is always `up` until it leaves). */
  readonly state: MemberState;
  /** The incarnation of the newest spec known. */
  readonly incarnation: number;
  /** Its tags (empty when it has none). */
  readonly tags: Tags;
  /** Its first listen address (`host:port`), or undefined. */
  readonly address: string | undefined;
  /** Open connections per channel (empty when not connected). */
  readonly connections: Readonly<Record<string, number>>;
  /** Milliseconds since a frame was last heard from it, or undefined (self, never connected). */
  readonly lastHeardMs: number | undefined;
}

/** What `Node.observeCalls` observers receive when a call ends. */
export interface CallObservation {
  /** The node called. */
  readonly to: string;
  /** The endpoint called. */
  readonly endpoint: string;
  /** Milliseconds from the call to its reply or failure (the node's clock). */
  readonly ms: number;
  /** The error it failed with, or undefined. */
  readonly error: unknown;
}

/** An observer of finished calls. */
export type CallObserver = (call: CallObservation) => void;

/** Counters of a node. Everything dropped or refused is counted. */
export interface NodeStats {
  /** Frames received after handshakes. */
  framesIn: number;
  /** Frames queued for sending. */
  framesOut: number;
  /** Bytes of the frames received (without length prefixes). */
  bytesIn: number;
  /** Bytes of the frames written to connections (without length prefixes). */
  bytesOut: number;
  /** Connections closed for a protocol violation (bad frame, bad handshake, oversize). */
  badConnections: number;
  /** Frames dropped by injected partitions. */
  partitionDrops: number;
  /**
   * Fire-and-forget sends dropped: unknown or down node, closed connection,
   * queue past its bound, a connection that did not open within `connectTimeoutMs`.
   */
  sendDrops: number;
  /**
   * Acknowledged sends that failed (timed out, refused, their node gone),
   * whether or not the caller awaited them; each is logged at debug.
   */
  ackFailures: number;
  /** Labelled messages (`causalLabel`) that waited for a predecessor before delivery. */
  causalWaits: number;
  /** Predecessors of labelled messages given up on (past `causalWaitMs` or `causalBufferMax`). */
  causalSkips: number;
  /** Labelled messages dropped: a skipped predecessor arriving late, or past a bound. */
  causalDrops: number;
  /** Routed (`transitive`) messages this node passed on for others. */
  forwarded: number;
  /** Routed messages dropped: past `transitiveHopsMax`, no neighbour left to try, or duplicate copies of a flood. */
  routeDrops: number;
  /** Messages refused by an endpoint's schema: sends dropped, calls answered with a `ValidationError`. */
  invalidMessages: number;
  /** Acknowledged messages retransmitted. */
  retransmits: number;
  /** Duplicate acknowledged messages suppressed at this receiver. */
  duplicates: number;
  /** Acknowledged sends waiting for their acknowledgement. */
  acksOutstanding: number;
  /** Bytes of unacknowledged `ack: true` sends, all peers together. */
  ackBytes: number;
  /** Calls waiting for a reply. */
  callsOutstanding: number;
  /** Membership messages sent. */
  gossipsOut: number;
  /** Open connections, incoming and outgoing (a neighbour usually has one each way). */
  connections: number;
  /**
   * Direct connections this node opened or is opening to members that are not
   * its neighbours (HyParView `send`/`call`); each closes after `directIdleMs`
   * unused. Always 0 under full mesh.
   */
  directConnections: number;
  /** Bytes waiting in send queues, all connections together. */
  queuedBytes: number;
  /** Incoming handshakes refused (wrong cookie, cluster or protocol, stale, name in use, full, limits). */
  handshakesRefused: number;
  /** Pending handshakes closed to make room (slow or silent connections). */
  handshakesEvicted: number;
  /** Incoming handshakes that did not finish within `handshakeTimeoutMs`. */
  handshakesTimedOut: number;
  /** Outgoing connects refused by the peer. */
  connectsRefused: number;
  /** Gossip entries dropped as invalid. */
  invalidEntries: number;
  /** Live entries refused because the view was at `membersMax`. */
  membersRejected: number;
  /** Members removed: reaped after `deadMemberRemoveMs`, or by `leave(name)`. */
  membersRemoved: number;
  /** Live members in the view, self included. */
  members: number;
  /** Tombstones held. */
  tombstones: number;
  /** Times this node took a higher incarnation because a peer had it stale or dead. */
  refutations: number;
  /** Full mesh (SWIM liveness): peers this node pinged, one per `pingIntervalMs` at most. 0 under HyParView. */
  probes: number;
  /** Full mesh: peers asked to ping a peer that did not answer this node. */
  indirectProbes: number;
  /** Full mesh: suspicions this node started (its probe failed, or a peer told it). */
  suspicions: number;
  /** Full mesh: suspicions cleared by a frame from the suspect. */
  suspicionsCleared: number;
  /** Full mesh: peers this node made down because a suspicion of them was not cleared. */
  suspicionDowns: number;
  /** Full mesh: times this node answered a suspicion of itself. */
  suspicionsRefuted: number;
}
