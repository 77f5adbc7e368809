// What the connection layer's parts share: a Peer (one member this node
// keeps connected to), its counters, the hooks into the node, and the
// registry the dialer and the acceptor work on. Module-private.

import type { TimerId } from "../base/clock.ts";
import type { HandshakeCode } from "./errors.ts";
import type { Accepted, HandshakeConfig, Refusal } from "./handshake.ts";
import type { Link } from "./_link.ts";
import type { NodeConfig } from "./_config.ts";
import type { NodeSpec } from "./spec.ts";
import type { FrameConnection } from "./transport.ts";
import type { WireMessage } from "./wire.ts";

/** Counters kept by the connection layer (part of NodeStats). */
export interface PeerCounters {
  framesIn: number;
  framesOut: number;
  /** Frame bytes read after handshakes (without the length prefix). */
  bytesIn: number;
  /** Frame bytes written (without the length prefix). */
  bytesOut: number;
  badConnections: number;
  partitionDrops: number;
  handshakesRefused: number;
  handshakesEvicted: number;
  handshakesTimedOut: number;
  connectsRefused: number;
}

export interface Peer {
  readonly name: string;
  readonly spec: NodeSpec;
  up: boolean;
  connecting: AbortController | undefined;
  /** Waiting for a connect slot. */
  queued: boolean;
  attempt: number;
  retryTimer: TimerId | undefined;
  readonly slots: Map<string, Link[]>;
  readonly rr: Map<string, number>;
  lastHeard: number;
  /** The peer's process instance, from the last successful outgoing handshake. */
  instance: string | undefined;
  /**
   * True from `ensure` until the first connect attempt ends: up, failed, or
   * the peer dropped. Sends to a member whose connection is still opening
   * wait for it instead of being dropped.
   */
  opening: boolean;
  /** When a use was last noticed (at a liveness tick); a direct connection unused for long is closed. */
  usedAt: number;
  /** Frames sent to this peer (sends, calls, retransmissions: each picks a link); `usedAt` is brought up to date from it (no clock reading per send). */
  uses: number;
  /** `uses` when `usedAt` was last brought up to date. */
  usesSeen: number;
  /**
   * `"direct"`: a connection opened on a peer's behalf (a send or call to a
   * node that is no neighbour); its dials take their own bounded lane, so
   * they never hold up the membership's own.
   */
  lane?: "direct";
}

export interface PeersHooks {
  /** Decides whether to take an authenticated incoming connection. */
  admit(a: Accepted, instance: string): Refusal | undefined;
  /** An authenticated incoming connection was taken. */
  accepted(a: Accepted, link: Link): void;
  up(peer: Peer): void;
  down(peer: Peer, why: string, error: unknown): void;
  /** A decoded message that is not liveness traffic. */
  /** `frame` is the bytes `m` was decoded from (a copy owned by the receiver). */
  message(link: Link, m: WireMessage, frame: Uint8Array): void;
  /** An outgoing connect failed; `code` is the handshake code when there is one. */
  connectFailed(peer: Peer, error: unknown, code: HandshakeCode | undefined): void;
  /**
   * A peer's first connection attempt ended without it coming up (it failed,
   * or the peer was dropped): what waited for it can give up. Called before
   * `connectFailed`.
   */
  unreached(peer: Peer, error: unknown): void;
  /** The server answered with a higher incarnation than the peer's spec: it restarted. */
  restarted(spec: NodeSpec): void;
  handshakeConfig(): HandshakeConfig;
  isPartitioned(name: string): boolean;
  /** Whether this node is in a cluster (not left, not closed). */
  active(): boolean;
}

/** Hex form of an instance id. */
export function instanceHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** Handshake codes after which retrying the same peer soon is pointless (a join fails at once). */
export const FATAL_CODES: ReadonlySet<HandshakeCode> = new Set<HandshakeCode>([
  "auth",
  "cluster",
  "protocol",
  "name-in-use",
  "mismatch",
  "left",
  "full",
]);

/** What the dialer and the acceptor work on: the registry of peers and links. */
export interface PeerRegistry {
  readonly cfg: NodeConfig;
  readonly hooks: PeersHooks;
  readonly peers: Map<string, Peer>;
  readonly incoming: Set<Link>;
  readonly counters: PeerCounters;
  /** Open links, kept as they open and close (the bound is checked per connection). */
  readonly links: number;
  readonly closed: boolean;
  track(p: Promise<unknown>): void;
  makeLink(
    conn: FrameConnection,
    peer: string,
    incarnation: number,
    channel: string,
    index: number,
    outgoing: boolean,
    monotonic: boolean,
    instance: string,
  ): Link;
  readLoop(link: Link): Promise<void>;
  scheduleReconnect(peer: Peer): void;
  retryNow(peer: Peer): void;
}
