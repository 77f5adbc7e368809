/**
 * The options of {@linkcode Node.start}: every timing and limit, with its
 * default. Times are milliseconds on the node's monotonic clock; `Infinity`
 * means "never" wherever a timeout is taken.
 *
 * @module
 */

import type { DiscoveryOptions } from "./discovery.ts";
import type { Clock, Random } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { ChannelOptions } from "./spec.ts";
import type { TlsOptions } from "./tcp_transport.ts";
import type { HyParViewOptions } from "./hyparview.ts";
import type { Address, Transport } from "./transport.ts";

/** Which membership strategy a node runs (the seed's peer service managers). */
export type MembershipOptions = FullMeshOptions | HyParViewMembershipOptions;

/** The full mesh: every node knows and connects to every other (the default). */
export interface FullMeshOptions {
  /** `"full-mesh"`. */
  strategy: "full-mesh";
}

/**
 * HyParView partial views, for clusters past a few hundred nodes: a node
 * connects to `activeViewSize` neighbours only. `members()` is what this node
 * knows (its views), `connectedMembers()` its neighbours; `send` and `call`
 * reach other nodes whose address it knows over a direct connection. Data
 * publishers need the full mesh.
 */
export interface HyParViewMembershipOptions extends HyParViewOptions {
  /** `"hyparview"`. */
  strategy: "hyparview";
  /**
   * A direct connection opened for `send`/`call` to a non-neighbour closes after this long unused.
   *
   * @default 30000
   */
  directIdleMs?: number;
}

/**
 * Options of {@linkcode Node.start}. Every timing and limit has a documented
 * default; see the README's limits table for what happens at each.
 *
 * @example A node reachable from other hosts
 * ```ts
 * import type { NodeOptions } from "@murmur/murmur/membership";
 * const options: NodeOptions = {
 *   name: "a",
 *   cookie: "s3cret",
 *   listen: { hostname: "0.0.0.0", port: 7000 },
 *   advertise: [{ hostname: "10.0.0.1", port: 7000 }], // what peers dial
 * };
 * console.log(options.advertise?.[0]?.hostname);
 * ```
 */
export interface NodeOptions {
  /** Unique name of this node in the cluster (1-255 characters). */
  name: string;
  /**
   * Where to find the cluster: seeds retried with backoff while this node is
   * alone, and a DNS name polled for members (see `DiscoveryOptions`).
   */
  discovery?: DiscoveryOptions;
  /** Shared secret; peers without it are refused. */
  cookie: string;
  /**
   * Cluster name; peers of another cluster are refused.
   *
   * @default `"murmur"`
   */
  cluster?: string;
  /** Where to listen (default `{ hostname: "127.0.0.1", port: 0 }`; port 0 is any free port). */
  listen?: Address;
  /**
   * Addresses published to peers: what they dial (default: the bound listen
   * address). Required when listening on `0.0.0.0` or `::`, which nobody can
   * dial. A port of 0 stands for the bound port.
   */
  advertise?: Address[];
  /**
   * Channels and their settings; `default` is always present.
   *
   * @default `{ default: {} }`
   */
  channels?: Record<string, ChannelOptions>;
  /**
   * The membership strategy.
   *
   * @default `{ strategy: "full-mesh" }`
   */
  membership?: MembershipOptions;
  /**
   * This node's tags (serf's tags): small strings others select members by
   * (`members({ tags })`), seen in `memberInfo()`, `onUp`/`onDown` callbacks
   * and the dashboard. At most 32 tags (`TAGS_MAX`) of 1024 characters
   * together (`TAGS_LENGTH_MAX`); change them with `setTags`.
   */
  tags?: Record<string, string>;
  /** TLS for every connection (ignored when `transport` is given). */
  tls?: TlsOptions;
  /** The transport (default: a {@linkcode TcpTransport}). */
  transport?: Transport;
  /** Timers, monotonic and wall time (default the system clock). */
  clock?: Clock;
  /** Randomness for jitter, peer choice, nonces and the instance id (default `Math.random` / Web Crypto). */
  random?: Random;
  /**
   * First incarnation of this run (default: the wall clock in ms). It only has
   * to be a guess: a peer that remembers this name at a higher incarnation says
   * so in the handshake and the node takes one above it.
   */
  incarnation?: number;
  /** Receives log records (default {@linkcode consoleLogger}: `info` and above). */
  logger?: Logger;
  /**
   * Period of anti-entropy gossip (full mesh: a digest of the view to one
   * random peer).
   *
   * @default 1000
   */
  gossipIntervalMs?: number;
  /**
   * Peers that each change is pushed to at once.
   *
   * @default 4
   */
  gossipFanout?: number;
  /**
   * Period of liveness. Full mesh (SWIM): one peer probed per period, a
   * probe unanswered within 0.4 of it asks three others to probe. HyParView:
   * a ping on each idle connection per period.
   *
   * @default 1000
   */
  pingIntervalMs?: number;
  /**
   * Full mesh: a suspicion of a peer that nothing cleared this long (no frame
   * from it) makes it down. HyParView: a peer silent this long is down.
   *
   * @default 5000
   */
  failureTimeoutMs?: number;
  /**
   * A member down (or never reached) this long is removed from the view, by a
   * tombstone that gossip spreads.
   *
   * @default 60000
   */
  deadMemberRemoveMs?: number;
  /**
   * Tombstones (departed and removed members) are forgotten after this long.
   *
   * @default 600000
   */
  tombstoneTtlMs?: number;
  /**
   * Period at which a few removed members are probed, so that a partition
   * longer than `deadMemberRemoveMs` still heals.
   *
   * @default 10000
   */
  deadProbeIntervalMs?: number;
  /**
   * Time for one outgoing connection attempt including the handshake.
   *
   * @default 5000
   */
  connectTimeoutMs?: number;
  /**
   * Time an incoming connection has to complete its handshake.
   *
   * @default 3000
   */
  handshakeTimeoutMs?: number;
  /**
   * First reconnection delay; doubles per failure with jitter.
   *
   * @default 100
   */
  reconnectBackoffMinMs?: number;
  /**
   * Largest reconnection delay.
   *
   * @default 5000
   */
  reconnectBackoffMaxMs?: number;
  /**
   * Period of retransmission of unacknowledged `ack: true` sends.
   *
   * @default 1000
   */
  retransmitIntervalMs?: number;
  /**
   * Default `call` timeout.
   *
   * @default 5000
   */
  callTimeoutMs?: number;
  /**
   * Default timeout of `ack: true` sends.
   *
   * @default 30000
   */
  ackTimeoutMs?: number;
  /**
   * Largest frame body.
   *
   * @default 1 MiB
   */
  frameBytesMax?: number;
  /**
   * Largest frame body before the handshake succeeds.
   *
   * @default 16 KiB
   */
  handshakeFrameBytesMax?: number;
  /**
   * Queued bytes per connection past which `send` waits for room (default
   * 4 MiB); past `sendWaitersMax` waiting senders, sends are dropped.
   */
  sendQueueBytesMax?: number;
  /**
   * Queued bytes per connection past which the promise of a fire-and-forget
   * `send` settles only once the queue is back under this mark (default
   * 256 KiB, at most `sendQueueBytesMax`). The message is queued either way:
   * this paces a sender that awaits `send`, like a stream's high-water mark,
   * and keeps what waits in memory small; a sender that does not await is held
   * back only at `sendQueueBytesMax`.
   */
  sendQueueHighWaterBytes?: number;
  /**
   * Senders waiting on one full connection (or on one peer's acknowledgement
   * bound) past which an acknowledged send or a call fails with
   * `QueueFullError` and a fire-and-forget send is dropped.
   *
   * @default 1024
   */
  sendWaitersMax?: number;
  /**
   * Bytes written per batch.
   *
   * @default 256 KiB
   */
  writeBatchBytesMax?: number;
  /**
   * Calls waiting for a reply.
   *
   * @default 65536
   */
  callsOutstandingMax?: number;
  /**
   * Acknowledged sends waiting for their acknowledgement, all peers together.
   *
   * @default 65536
   */
  acksOutstandingMax?: number;
  /**
   * Bytes of unacknowledged `ack: true` sends per peer; past it, sends wait.
   *
   * @default 16 MiB
   */
  ackBytesMax?: number;
  /**
   * Acknowledged message ids remembered per sender for deduplication.
   *
   * @default 65536
   */
  dedupWindow?: number;
  /**
   * Live members in the view.
   *
   * @default 4096
   */
  membersMax?: number;
  /**
   * Tombstones in the view; the oldest are forgotten first.
   *
   * @default 4096
   */
  tombstonesMax?: number;
  /**
   * Open connections, all peers together.
   *
   * @default 4096
   */
  connectionsMax?: number;
  /**
   * Incoming connections still in their handshake.
   *
   * @default 256
   */
  handshakesPendingMax?: number;
  /**
   * Incoming connections in their handshake from one remote address; never
   * below twice the connections this node's channels open to a peer (a peer
   * with the same channels opens them all at once). At the bound, the oldest
   * handshake whose hello has not arrived is closed to make room (logged).
   *
   * @default 32
   */
  handshakesPendingPerAddressMax?: number;
  /**
   * Outgoing connection attempts at once.
   *
   * @default 64
   */
  connectsPendingMax?: number;
  /**
   * Causal delivery (`send`'s `causalLabel`): messages of one label waiting for
   * a predecessor, per label; past it the oldest is delivered and the
   * predecessors it waits for are skipped (`stats().causalSkips`).
   *
   * @default 1000
   */
  causalBufferMax?: number;
  /**
   * Causal delivery: how long a message may wait for a predecessor before it
   * is skipped as lost; a skipped predecessor that arrives later is dropped
   * (`stats().causalDrops`), never delivered out of order (default 30000 ms;
   * `Infinity`: wait for ever, bounded by `causalBufferMax`).
   */
  causalWaitMs?: number;
  /**
   * Causal delivery: labels with state on this node; a send with one more throws `RangeError`.
   *
   * @default 1024
   */
  causalLabelsMax?: number;
  /**
   * Causal delivery: entries of one label's vector clock and order buffer.
   *
   * @default 1024
   */
  causalClockEntriesMax?: number;
  /**
   * `transitive` sends and calls: hops a routed message takes at most before
   * it is dropped (`stats().routeDrops`).
   *
   * @default 10
   */
  transitiveHopsMax?: number;
}
