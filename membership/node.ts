/**
 * A cluster node: listens, authenticates peers, keeps the membership view in
 * sync by gossip, keeps a full mesh of connections, detects failures, and
 * carries messages and calls between named endpoints.
 *
 * @module
 */

import {
  type Clock,
  mathRandom,
  type Random,
  randomBytes,
  systemClock,
  type TimerId,
} from "./clock.ts";
import {
  decodeMessage,
  decodeValue,
  encodeValue,
  ENDPOINT_NAME_BYTES_MAX,
  Tag,
  type WireMessage,
} from "./codec.ts";
import {
  CallTimeoutError,
  ClosedError,
  FrameTooLargeError,
  HandshakeError,
  NodeDownError,
  ProtocolError,
  QueueFullError,
  RemoteHandlerError,
  UnknownEndpointError,
  UnknownNodeError,
} from "./errors.ts";
import {
  type Accepted,
  clientHandshake,
  DEFAULT_HANDSHAKE_FRAME_BYTES_MAX,
  type HandshakeConfig,
  serverHandshake,
} from "./handshake.ts";
import { Link, type LinkLimits } from "./_link.ts";
import {
  type ChannelOptions,
  CHANNELS_MAX,
  DEFAULT_MEMBERS_MAX,
  entriesForWire,
  initialState,
  isName,
  members as viewMembers,
  type MembershipChange,
  type MembershipEvent,
  type MembershipState,
  type NodeSpec,
  PARALLELISM_MAX,
  step,
  validateEntries,
} from "./membership_state.ts";
import { TcpTransport, type TlsOptions } from "./tcp_transport.ts";
import {
  type Address,
  DEFAULT_FRAME_BYTES_MAX,
  formatAddress,
  type FrameConnection,
  type FrameListener,
  parseAddress,
  type Transport,
} from "./transport.ts";

/** The channel every node has; membership and liveness traffic use it. */
export const DEFAULT_CHANNEL = "default";

/** One log record. */
export interface LogRecord {
  /** Severity. */
  level: "debug" | "info" | "warn" | "error";
  /** The node that logs. */
  node: string;
  /** What happened. */
  msg: string;
  /** The peer concerned, when there is one. */
  peer?: string;
  /** The error behind it, when there is one. */
  error?: unknown;
}

/** Receives log records. */
export type Logger = (record: LogRecord) => void;

/**
 * The default logger: warnings and errors to `console.error`, the rest dropped.
 *
 * @example
 * ```ts
 * import { consoleLogger } from "@murmur/murmur/membership";
 * consoleLogger({ level: "debug", node: "a", msg: "not printed" });
 * ```
 */
export const consoleLogger: Logger = (r) => {
  if (r.level === "warn" || r.level === "error") {
    const peer = r.peer ? ` peer=${r.peer}` : "";
    const err = r.error instanceof Error ? `: ${r.error.message}` : "";
    console.error(`[murmur ${r.level}] ${r.node}${peer} ${r.msg}${err}`);
  }
};

/** Options of {@linkcode Node.start}. Every timing and limit has a documented default. */
export interface NodeOptions {
  /** Unique name of this node in the cluster (1-255 characters). */
  name: string;
  /** Shared secret; peers without it are refused. */
  cookie: string;
  /** Cluster name; peers of another cluster are refused (default `"murmur"`). */
  cluster?: string;
  /** Where to listen (default `{ hostname: "127.0.0.1", port: 0 }`; port 0 is any free port). */
  listen?: Address;
  /** Addresses published to peers (default: the bound listen address). */
  advertise?: Address[];
  /** Channels and their settings; `default` is always present (default `{ default: {} }`). */
  channels?: Record<string, ChannelOptions>;
  /** TLS for every connection (ignored when `transport` is given). */
  tls?: TlsOptions;
  /** The transport (default: a {@linkcode TcpTransport}). */
  transport?: Transport;
  /** Timers (default the system clock). */
  clock?: Clock;
  /** Randomness for jitter, peer choice and nonces (default `Math.random` / Web Crypto). */
  random?: Random;
  /** Incarnation of this run (default `clock.now()`); must grow across restarts. */
  incarnation?: number;
  /** Receives log records (default {@linkcode consoleLogger}). */
  logger?: Logger;
  /** Period of anti-entropy gossip to `gossipFanout` random peers (default 1000 ms). */
  gossipIntervalMs?: number;
  /** Peers that receive each gossip round and each change (default 4). */
  gossipFanout?: number;
  /** Period of pings on each peer's connection (default 1000 ms). */
  pingIntervalMs?: number;
  /** A peer silent this long is down (default 5000 ms). */
  failureTimeoutMs?: number;
  /** Time for one connection attempt including the handshake (default 5000 ms). */
  connectTimeoutMs?: number;
  /** First reconnection delay; doubles per failure with jitter (default 100 ms). */
  reconnectBackoffMinMs?: number;
  /** Largest reconnection delay (default 5000 ms). */
  reconnectBackoffMaxMs?: number;
  /** Period of retransmission of unacknowledged `ack: true` sends (default 1000 ms). */
  retransmitIntervalMs?: number;
  /** Default `call` timeout (default 5000 ms). */
  callTimeoutMs?: number;
  /** Largest frame body (default 1 MiB). */
  frameBytesMax?: number;
  /** Largest frame body before the handshake succeeds (default 16 KiB). */
  handshakeFrameBytesMax?: number;
  /** Queued bytes per connection past which `send` waits (default 4 MiB). */
  sendQueueBytesMax?: number;
  /** Senders waiting on one full connection past which `send` fails with `QueueFullError` (default 1024). */
  sendWaitersMax?: number;
  /** Bytes written per batch (default 256 KiB). */
  writeBatchBytesMax?: number;
  /** Calls waiting for a reply (default 65536). */
  callsOutstandingMax?: number;
  /** Acknowledged sends waiting for their acknowledgement (default 65536). */
  acksOutstandingMax?: number;
  /** Acknowledged message ids remembered per sender for deduplication (default 65536). */
  dedupWindow?: number;
  /** Entries (members and departed nodes) in the view (default 4096). */
  membersMax?: number;
  /** Open connections, all peers together (default 4096). */
  connectionsMax?: number;
  /** Connections still in their handshake (default 256). */
  handshakesPendingMax?: number;
}

/** Settings of one channel after defaults. */
interface ChannelConfig {
  name: string;
  parallelism: number;
  monotonic: boolean;
}

/** Who sent a message and how. */
export interface MessageContext {
  /** Name of the sending node. */
  from: string;
  /** Channel it came on. */
  channel: string;
}

/** An endpoint: receives sends, and answers calls with its return value. */
export type Handler = (msg: unknown, ctx: MessageContext) => unknown;

/** Options of {@linkcode Node.send}. */
export interface SendOptions {
  /** Channel to send on (default `"default"`). */
  channel?: string;
  /** Picks the connection within the channel; same key, same order. Also the monotonic key. */
  partitionKey?: string | number;
  /** Retransmit until acknowledged; delivered once; resolves on the acknowledgement. */
  ack?: boolean;
  /** Gives up an acknowledged send (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** Options of {@linkcode Node.call}. */
export interface CallOptions {
  /** Give up after this long (default the node's `callTimeoutMs`). */
  timeoutMs?: number;
  /** Channel to call on (default `"default"`). */
  channel?: string;
  /** Picks the connection within the channel. */
  partitionKey?: string | number;
  /** Gives up the call (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** A partition injected with {@linkcode Node.injectPartition}. */
export interface PartitionInfo {
  /** Reference for {@linkcode Node.resolvePartition}. */
  readonly ref: number;
  /** Nodes cut off from this node. */
  readonly nodes: readonly string[];
  /** When it heals by itself (clock time), or undefined. */
  readonly expiresAt: number | undefined;
}

/** Counters of a node. */
export interface NodeStats {
  /** Frames received after handshakes. */
  framesIn: number;
  /** Frames queued for sending. */
  framesOut: number;
  /** Connections closed for a protocol violation (bad frame, bad handshake, oversize). */
  badConnections: number;
  /** Frames dropped by injected partitions. */
  partitionDrops: number;
  /** Acknowledged messages retransmitted. */
  retransmits: number;
  /** Duplicate acknowledged messages suppressed at this receiver. */
  duplicates: number;
  /** Gossip messages sent. */
  gossipsOut: number;
  /** Open connections. */
  connections: number;
  /** Bytes waiting in send queues, all connections together. */
  queuedBytes: number;
}

interface Peer {
  name: string;
  spec: NodeSpec;
  up: boolean;
  connecting: AbortController | undefined;
  attempt: number;
  retryTimer: TimerId | undefined;
  slots: Map<string, Link[]>;
  rr: Map<string, number>;
  lastHeard: number;
}

interface PendingCall {
  node: string;
  endpoint: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: TimerId | undefined;
  cleanup: () => void;
}

interface PendingAck {
  node: string;
  frame: Uint8Array;
  channel: string;
  key: string | number | undefined;
  lastSentAt: number;
  resolve: () => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

interface Deduper {
  seen: Set<number>;
  order: number[];
  head: number;
}

function positive(name: string, v: number | undefined, dflt: number, min = 1): number {
  const x = v ?? dflt;
  if (typeof x !== "number" || !Number.isFinite(x) || x < min) {
    throw new RangeError(`${name} must be a number >= ${min}, got ${String(v)}`);
  }
  return x;
}

/**
 * A member of a murmur cluster.
 *
 * @example A two-node cluster with an echo endpoint
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * await using a = await Node.start({ name: "a", cookie: "s3cret" });
 * await using b = await Node.start({ name: "b", cookie: "s3cret" });
 * a.register("echo", (msg) => msg);
 * await b.join(a.spec);
 * console.log(b.members()); // [ "a", "b" ]
 * console.log(await b.call("a", "echo", "hello")); // hello
 * ```
 */
export class Node implements AsyncDisposable {
  readonly #name: string;
  readonly #cookie: string;
  readonly #cluster: string;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;
  readonly #channels: Map<string, ChannelConfig>;
  readonly #listener: FrameListener;
  #spec: NodeSpec;
  #view: MembershipState;
  #left = false;
  #closed = false;

  // timings and limits
  readonly #gossipIntervalMs: number;
  readonly #gossipFanout: number;
  readonly #pingIntervalMs: number;
  readonly #failureTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #backoffMinMs: number;
  readonly #backoffMaxMs: number;
  readonly #retransmitIntervalMs: number;
  readonly #callTimeoutMs: number;
  readonly #frameBytesMax: number;
  readonly #handshakeFrameBytesMax: number;
  readonly #linkLimits: LinkLimits;
  readonly #callsOutstandingMax: number;
  readonly #acksOutstandingMax: number;
  readonly #dedupWindow: number;
  readonly #membersMax: number;
  readonly #connectionsMax: number;
  readonly #handshakesPendingMax: number;

  readonly #peers = new Map<string, Peer>();
  readonly #incoming = new Set<Link>();
  readonly #handshaking = new Set<FrameConnection>();
  readonly #handlers = new Map<string, Handler>();
  readonly #unregisterListeners = new Set<(endpoint: string) => void>();
  readonly #upListeners = new Map<string, Set<(name: string) => void>>();
  readonly #downListeners = new Map<string, Set<(name: string) => void>>();
  readonly #calls = new Map<number, PendingCall>();
  readonly #acks = new Map<number, PendingAck>();
  readonly #dedup = new Map<string, Deduper>();
  readonly #partitions = new Map<
    number,
    { nodes: Set<string>; expiresAt?: number; timer?: TimerId }
  >();
  readonly #joinWaiters = new Map<
    string,
    Set<{ resolve: () => void; reject: (e: unknown) => void }>
  >();
  #nextCallId = 1;
  #nextAckSeq = 1;
  #nextPartitionRef = 1;
  #gossipTimer: TimerId | undefined;
  #pingTimer: TimerId | undefined;
  #retransmitTimer: TimerId | undefined;
  #gossipSoon: TimerId | undefined;
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #stats: Omit<NodeStats, "connections" | "queuedBytes"> = {
    framesIn: 0,
    framesOut: 0,
    badConnections: 0,
    partitionDrops: 0,
    retransmits: 0,
    duplicates: 0,
    gossipsOut: 0,
  };

  private constructor(options: NodeOptions, listener: FrameListener, transport: Transport) {
    this.#name = options.name;
    this.#cookie = options.cookie;
    this.#cluster = options.cluster ?? "murmur";
    this.#transport = transport;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? mathRandom;
    this.#log = options.logger ?? consoleLogger;
    this.#listener = listener;
    this.#gossipIntervalMs = positive("gossipIntervalMs", options.gossipIntervalMs, 1000);
    this.#gossipFanout = positive("gossipFanout", options.gossipFanout, 4);
    this.#pingIntervalMs = positive("pingIntervalMs", options.pingIntervalMs, 1000);
    this.#failureTimeoutMs = positive("failureTimeoutMs", options.failureTimeoutMs, 5000);
    this.#connectTimeoutMs = positive("connectTimeoutMs", options.connectTimeoutMs, 5000);
    this.#backoffMinMs = positive("reconnectBackoffMinMs", options.reconnectBackoffMinMs, 100);
    this.#backoffMaxMs = positive("reconnectBackoffMaxMs", options.reconnectBackoffMaxMs, 5000);
    this.#retransmitIntervalMs = positive(
      "retransmitIntervalMs",
      options.retransmitIntervalMs,
      1000,
    );
    this.#callTimeoutMs = positive("callTimeoutMs", options.callTimeoutMs, 5000);
    this.#frameBytesMax = positive(
      "frameBytesMax",
      options.frameBytesMax,
      DEFAULT_FRAME_BYTES_MAX,
      1024,
    );
    this.#handshakeFrameBytesMax = positive(
      "handshakeFrameBytesMax",
      options.handshakeFrameBytesMax,
      DEFAULT_HANDSHAKE_FRAME_BYTES_MAX,
      1024,
    );
    this.#linkLimits = {
      sendQueueBytesMax: positive("sendQueueBytesMax", options.sendQueueBytesMax, 4 * 1024 * 1024),
      sendWaitersMax: positive("sendWaitersMax", options.sendWaitersMax, 1024, 0),
      writeBatchBytesMax: positive("writeBatchBytesMax", options.writeBatchBytesMax, 256 * 1024),
    };
    this.#callsOutstandingMax = positive("callsOutstandingMax", options.callsOutstandingMax, 65536);
    this.#acksOutstandingMax = positive("acksOutstandingMax", options.acksOutstandingMax, 65536);
    this.#dedupWindow = positive("dedupWindow", options.dedupWindow, 65536);
    this.#membersMax = positive("membersMax", options.membersMax, DEFAULT_MEMBERS_MAX, 2);
    this.#connectionsMax = positive("connectionsMax", options.connectionsMax, 4096);
    this.#handshakesPendingMax = positive(
      "handshakesPendingMax",
      options.handshakesPendingMax,
      256,
    );

    this.#channels = new Map();
    const chans: Record<string, ChannelOptions> = { [DEFAULT_CHANNEL]: {}, ...options.channels };
    if (Object.keys(chans).length > CHANNELS_MAX) {
      throw new RangeError(`at most ${CHANNELS_MAX} channels, got ${Object.keys(chans).length}`);
    }
    for (const [name, c] of Object.entries(chans)) {
      if (!isName(name)) throw new TypeError(`invalid channel name ${JSON.stringify(name)}`);
      const parallelism = c.parallelism ?? 1;
      if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > PARALLELISM_MAX) {
        throw new RangeError(
          `channel "${name}": parallelism must be an integer in [1, ${PARALLELISM_MAX}], got ${parallelism}`,
        );
      }
      this.#channels.set(name, { name, parallelism, monotonic: c.monotonic === true });
    }
    const incarnation = options.incarnation ?? Math.floor(this.#clock.now());
    if (!Number.isSafeInteger(incarnation) || incarnation < 0) {
      throw new RangeError(`incarnation must be a non-negative integer, got ${incarnation}`);
    }
    this.#spec = {
      name: this.#name,
      incarnation,
      listenAddrs: options.advertise ?? [listener.addr],
      channels: Object.fromEntries(
        [...this.#channels.values()].map((
          c,
        ) => [c.name, { parallelism: c.parallelism, monotonic: c.monotonic }]),
      ),
    };
    this.#view = initialState(this.#spec);
  }

  /**
   * Starts a node: binds its listener and begins serving. It is alone until it
   * joins a member or a member joins it.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * const node = await Node.start({ name: "a", cookie: "secret", listen: { hostname: "127.0.0.1", port: 0 } });
   * console.log(node.spec.listenAddrs[0]?.port !== 0); // true
   * await node.close();
   * ```
   */
  static async start(options: NodeOptions): Promise<Node> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("options are required");
    }
    if (!isName(options.name)) {
      throw new TypeError(
        `name must be 1-255 characters without control characters, got ${
          JSON.stringify(options.name)
        }`,
      );
    }
    if (typeof options.cookie !== "string" || options.cookie.length === 0) {
      throw new TypeError("cookie must be a non-empty string");
    }
    if (options.cluster !== undefined && !isName(options.cluster)) {
      throw new TypeError(`invalid cluster name ${JSON.stringify(options.cluster)}`);
    }
    const transport = options.transport ??
      new TcpTransport(options.tls !== undefined ? { tls: options.tls } : {});
    const listener = await transport.listen(options.listen ?? { hostname: "127.0.0.1", port: 0 });
    let node: Node;
    try {
      node = new Node(options, listener, transport);
    } catch (e) {
      listener.close();
      throw e;
    }
    node.#track(node.#runAcceptLoop());
    node.#schedulePeriodic();
    return node;
  }

  /** This node's name. */
  get name(): string {
    return this.#name;
  }

  /** This node's current spec (name, listen addresses, incarnation, channels). */
  get spec(): NodeSpec {
    return this.#spec;
  }

  /** Sorted names of all members, self included (empty after `leave()`). */
  members(): string[] {
    return viewMembers(this.#view);
  }

  /** Sorted names of the members with live connections, self included. */
  connectedMembers(): string[] {
    if (this.#left) return [];
    const out = [this.#name];
    for (const p of this.#peers.values()) if (p.up) out.push(p.name);
    return out.sort();
  }

  /** The spec this node knows for a member, or undefined. */
  memberSpec(name: string): NodeSpec | undefined {
    const e = this.#view.entries.get(name);
    return e === undefined || e.left ? undefined : e.spec;
  }

  /** Counters (see {@linkcode NodeStats}). */
  stats(): NodeStats {
    let connections = 0;
    let queuedBytes = 0;
    for (const l of this.#incoming) {
      connections++;
      queuedBytes += l.queuedBytes;
    }
    for (const p of this.#peers.values()) {
      for (const ls of p.slots.values()) {
        for (const l of ls) {
          connections++;
          queuedBytes += l.queuedBytes;
        }
      }
    }
    return { ...this.#stats, connections, queuedBytes };
  }

  /**
   * Calls `fn(name)` each time `name` (or any node, for `"*"`) comes up: its
   * connections are established. Returns a function that removes the callback.
   */
  onUp(name: string, fn: (name: string) => void): () => void {
    return addListener(this.#upListeners, name, fn);
  }

  /**
   * Calls `fn(name)` each time `name` (or any node, for `"*"`) goes down: its
   * connections were lost, it fell silent, or it left. Once per transition.
   */
  onDown(name: string, fn: (name: string) => void): () => void {
    return addListener(this.#downListeners, name, fn);
  }

  /**
   * Registers an endpoint. Sends to it call `handler(msg, ctx)`; calls to it
   * reply with the handler's (awaited) return value. Returns an unregister function.
   *
   * @throws {TypeError} on an invalid name or a name already registered.
   */
  register(endpoint: string, handler: Handler): () => void {
    if (
      typeof endpoint !== "string" || endpoint.length === 0 ||
      endpoint.length > ENDPOINT_NAME_BYTES_MAX
    ) {
      throw new TypeError(`endpoint name must be 1-${ENDPOINT_NAME_BYTES_MAX} characters`);
    }
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    if (this.#handlers.has(endpoint)) {
      throw new TypeError(`endpoint "${endpoint}" is already registered`);
    }
    this.#handlers.set(endpoint, handler);
    return () => {
      if (this.#handlers.get(endpoint) === handler) this.unregister(endpoint);
    };
  }

  /** Removes an endpoint. Returns whether it was registered. */
  unregister(endpoint: string): boolean {
    if (!this.#handlers.delete(endpoint)) return false;
    for (const fn of [...this.#unregisterListeners]) {
      try {
        fn(endpoint);
      } catch (e) {
        this.#log({
          level: "error",
          node: this.#name,
          msg: "onUnregister callback threw",
          error: e,
        });
      }
    }
    return true;
  }

  /** Calls `fn(endpoint)` whenever an endpoint of this node is unregistered. Returns an unsubscribe function. */
  onUnregister(fn: (endpoint: string) => void): () => void {
    if (typeof fn !== "function") throw new TypeError("callback must be a function");
    this.#unregisterListeners.add(fn);
    return () => void this.#unregisterListeners.delete(fn);
  }

  /** Whether an endpoint is registered on this node. */
  registered(endpoint: string): boolean {
    return this.#handlers.has(endpoint);
  }

  /**
   * Joins the cluster of the node at `target` (its spec, or `"host:port"`).
   * Resolves once this node is connected to it; the rest of the cluster
   * follows by gossip. After `leave()`, joins again with a new incarnation.
   */
  async join(target: NodeSpec | string, options: { timeoutMs?: number } = {}): Promise<void> {
    this.#assertOpen();
    const timeoutMs = positive("timeoutMs", options.timeoutMs, this.#connectTimeoutMs * 2);
    if (this.#left) this.#rejoin();
    // Nothing enters the view before it authenticates: probe the target first.
    let spec: NodeSpec;
    if (typeof target === "string") {
      spec = await this.#probe(parseAddress(target));
    } else {
      if (typeof target !== "object" || target === null || !isName(target.name)) {
        throw new TypeError('join target must be a node spec or a "host:port" string');
      }
      if (target.name === this.#name) {
        throw new TypeError(`a node cannot join itself ("${target.name}")`);
      }
      const addr = target.listenAddrs?.[0];
      if (addr === undefined) throw new TypeError(`spec of "${target.name}" has no listen address`);
      spec = await this.#probe(addr, target.name);
    }
    if (spec.name === this.#name) throw new TypeError(`a node cannot join itself ("${spec.name}")`);
    if (this.#peers.get(spec.name)?.up) return;
    const upped = new Promise<void>((resolve, reject) => {
      let set = this.#joinWaiters.get(spec.name);
      if (set === undefined) this.#joinWaiters.set(spec.name, set = new Set());
      const s = set;
      const w = {
        resolve: () => {
          this.#clock.clearTimeout(timer);
          s.delete(w);
          resolve();
        },
        reject: (e: unknown) => {
          this.#clock.clearTimeout(timer);
          s.delete(w);
          reject(e);
        },
      };
      const timer = this.#clock.setTimeout(
        () => w.reject(new NodeDownError(spec.name, `could not be joined within ${timeoutMs} ms`)),
        timeoutMs,
      );
      s.add(w);
    });
    this.#apply({ type: "seen", spec });
    const peer = this.#peers.get(spec.name);
    if (peer !== undefined && !peer.up && peer.connecting === undefined) {
      // A join is a reason to try now rather than wait for the backoff.
      this.#clearRetry(peer);
      this.#track(this.#connect(peer));
    }
    await upped;
  }

  /**
   * Leaves the cluster: every member hears of it and stops connecting to this
   * node, which is then alone until it joins again.
   */
  async leave(): Promise<void> {
    this.#assertOpen();
    if (this.#left) return;
    this.#apply({ type: "leave" });
    const frame = this.#gossipFrame();
    const flushes: Promise<void>[] = [];
    for (const p of this.#peers.values()) {
      const l = p.slots.get(DEFAULT_CHANNEL)?.[0];
      if (p.up && l !== undefined && !this.#isPartitioned(p.name) && l.enqueueControl(frame)) {
        flushes.push(l.flush());
      }
    }
    await raceTimeout(Promise.all(flushes), this.#clock, this.#connectTimeoutMs);
    this.#left = true;
    const gone = new NodeDownError(this.#name, "left the cluster");
    for (const p of [...this.#peers.values()]) this.#dropPeer(p, "this node left", gone, true);
    for (const l of [...this.#incoming]) l.close(new NodeDownError(l.peer, "this node left"));
    this.#view = {
      self: this.#name,
      entries: new Map([[this.#name, { spec: this.#spec, left: true }]]),
    };
  }

  /**
   * Sends `msg` to `endpoint` on node `to`. At most once and in order per
   * connection; with `ack: true`, retransmitted until acknowledged and
   * delivered once, and the promise resolves on the acknowledgement.
   *
   * @throws {UnknownNodeError} `to` is not a member.
   * @throws {NodeDownError} `to` is not connected (without `ack`).
   * @throws {QueueFullError} the connection's queue is past its hard bound.
   * @throws {FrameTooLargeError} the encoded message is over `frameBytesMax`.
   */
  send(to: string, endpoint: string, msg: unknown, options: SendOptions = {}): Promise<void> {
    try {
      this.#assertOpen();
      const channel = this.#channelOf(options.channel);
      checkEndpoint(endpoint);
      if (to === this.#name) {
        this.#deliverLocal(endpoint, msg, channel);
        return Promise.resolve();
      }
      const peer = this.#memberPeer(to);
      if (options.ack === true) return this.#sendAcked(peer, endpoint, msg, channel, options);
      const frame = this.#encode([Tag.Msg, endpoint, msg]);
      if (!peer.up) throw new NodeDownError(to);
      if (this.#isPartitioned(to)) {
        this.#stats.partitionDrops++;
        return Promise.resolve();
      }
      const link = this.#pick(peer, channel, options.partitionKey);
      this.#stats.framesOut++;
      return link.enqueue(frame, monoKey(endpoint, options.partitionKey)) ?? Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Sends the same message to several nodes (at most once each), encoding it
   * once. Resolves with the sends that failed (an empty array when every one
   * was queued); a full queue waits as with `send`.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * await using a = await Node.start({ name: "a", cookie: "c" });
   * console.log(await a.sendMany(["zz"], "echo", 1)); // one UnknownNodeError failure
   * ```
   */
  async sendMany(
    to: readonly string[],
    endpoint: string,
    msg: unknown,
    options: Omit<SendOptions, "ack" | "signal"> = {},
  ): Promise<{ node: string; error: unknown }[]> {
    this.#assertOpen();
    const channel = this.#channelOf(options.channel);
    checkEndpoint(endpoint);
    if (!Array.isArray(to)) throw new TypeError("to must be an array of node names");
    const failures: { node: string; error: unknown }[] = [];
    let frame: Uint8Array | undefined;
    const waits: Promise<void>[] = [];
    for (const name of to) {
      try {
        if (name === this.#name) {
          this.#deliverLocal(endpoint, msg, channel);
          continue;
        }
        const peer = this.#memberPeer(name);
        if (!peer.up) throw new NodeDownError(name);
        if (this.#isPartitioned(name)) {
          this.#stats.partitionDrops++;
          continue;
        }
        frame ??= this.#encode([Tag.Msg, endpoint, msg]);
        this.#stats.framesOut++;
        const w = this.#pick(peer, channel, options.partitionKey).enqueue(
          frame,
          monoKey(endpoint, options.partitionKey),
        );
        if (w !== undefined) {
          waits.push(w.catch((error) => void failures.push({ node: name, error })));
        }
      } catch (error) {
        failures.push({ node: name, error });
      }
    }
    if (waits.length > 0) await Promise.all(waits);
    return failures;
  }

  /**
   * Calls `endpoint` on node `to` and resolves with its handler's return value.
   *
   * @throws {UnknownNodeError} `to` is not a member.
   * @throws {NodeDownError} `to` is down, or went down before replying.
   * @throws {UnknownEndpointError} `to` has no such endpoint.
   * @throws {RemoteHandlerError} the handler threw.
   * @throws {CallTimeoutError} no reply within `timeoutMs`.
   */
  call(to: string, endpoint: string, msg: unknown, options: CallOptions = {}): Promise<unknown> {
    try {
      this.#assertOpen();
      const channel = this.#channelOf(options.channel);
      checkEndpoint(endpoint);
      const timeoutMs = positive("timeoutMs", options.timeoutMs, this.#callTimeoutMs);
      options.signal?.throwIfAborted();
      if (to === this.#name) return this.#callLocal(endpoint, msg, channel);
      const peer = this.#memberPeer(to);
      if (!peer.up) throw new NodeDownError(to);
      if (this.#calls.size >= this.#callsOutstandingMax) throw new QueueFullError(to, channel);
      const id = this.#nextCallId++;
      const frame = this.#encode([Tag.Call, id, endpoint, msg]);
      return new Promise<unknown>((resolve, reject) => {
        const onAbort = () => settle(() => reject(options.signal!.reason));
        const pending: PendingCall = {
          node: to,
          endpoint,
          resolve,
          reject,
          timer: undefined,
          cleanup: () => {
            this.#calls.delete(id);
            if (pending.timer !== undefined) this.#clock.clearTimeout(pending.timer);
            options.signal?.removeEventListener("abort", onAbort);
          },
        };
        const settle = (f: () => void) => {
          if (!this.#calls.has(id)) return;
          pending.cleanup();
          f();
        };
        pending.timer = this.#clock.setTimeout(
          () => settle(() => reject(new CallTimeoutError(to, endpoint, timeoutMs))),
          timeoutMs,
        );
        options.signal?.addEventListener("abort", onAbort, { once: true });
        this.#calls.set(id, pending);
        if (this.#isPartitioned(to)) {
          this.#stats.partitionDrops++;
          return;
        }
        try {
          this.#stats.framesOut++;
          const waited = this.#pick(peer, channel, options.partitionKey).enqueue(frame);
          waited?.catch((e) => settle(() => reject(e)));
        } catch (e) {
          settle(() => reject(e));
        }
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Drops all traffic to and from the named nodes at this node, until
   * {@linkcode Node.resolvePartition} or until `ttlMs` elapses. Failure
   * detection then sees them down on both sides. Returns a reference.
   */
  injectPartition(nodes: string | readonly string[], options: { ttlMs?: number } = {}): number {
    this.#assertOpen();
    const list = typeof nodes === "string" ? [nodes] : [...nodes];
    if (list.length === 0 || !list.every(isName)) throw new TypeError("nodes must be node names");
    if (list.includes(this.#name)) throw new TypeError("a node cannot partition itself");
    const ref = this.#nextPartitionRef++;
    const entry: { nodes: Set<string>; expiresAt?: number; timer?: TimerId } = {
      nodes: new Set(list),
    };
    if (options.ttlMs !== undefined) {
      const ttl = positive("ttlMs", options.ttlMs, 0, 0);
      entry.expiresAt = this.#clock.now() + ttl;
      entry.timer = this.#clock.setTimeout(() => this.resolvePartition(ref), ttl);
    }
    this.#partitions.set(ref, entry);
    this.#log({
      level: "info",
      node: this.#name,
      msg: `partition ${ref} injected: ${list.join(",")}`,
    });
    return ref;
  }

  /** Heals a partition. Returns false for an unknown reference. */
  resolvePartition(ref: number): boolean {
    const entry = this.#partitions.get(ref);
    if (entry === undefined) return false;
    this.#partitions.delete(ref);
    if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer);
    this.#log({ level: "info", node: this.#name, msg: `partition ${ref} resolved` });
    for (const name of entry.nodes) {
      const p = this.#peers.get(name);
      if (p !== undefined && !p.up && p.connecting === undefined && !this.#isPartitioned(name)) {
        this.#clearRetry(p);
        p.attempt = 0;
        this.#track(this.#connect(p));
      }
    }
    return true;
  }

  /** The partitions in force. */
  partitions(): PartitionInfo[] {
    return [...this.#partitions].map(([ref, e]) => ({
      ref,
      nodes: [...e.nodes].sort(),
      expiresAt: e.expiresAt,
    }));
  }

  /**
   * Stops the node: closes the listener and every connection and rejects what
   * is pending with {@linkcode ClosedError}. Members see it down, not gone; a
   * restart under the same name replaces it. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of [this.#gossipTimer, this.#pingTimer, this.#retransmitTimer, this.#gossipSoon]) {
      if (t !== undefined) this.#clock.clearTimeout(t);
    }
    for (const e of this.#partitions.values()) {
      if (e.timer !== undefined) this.#clock.clearTimeout(e.timer);
    }
    this.#partitions.clear();
    this.#listener.close();
    const closed = new ClosedError(`node "${this.#name}" is closed`);
    for (const p of [...this.#peers.values()]) this.#dropPeer(p, "node closed", closed);
    for (const l of [...this.#incoming]) l.close(closed);
    for (const c of [...this.#handshaking]) c.close();
    for (const c of [...this.#calls.values()]) {
      c.cleanup();
      c.reject(closed);
    }
    for (const a of [...this.#acks.values()]) {
      a.cleanup();
      a.reject(closed);
    }
    this.#upListeners.clear();
    this.#downListeners.clear();
    for (const w of this.#joinWaiters.values()) for (const j of [...w]) j.reject(closed);
    // Wait for every read, write and accept loop so that no I/O outlives close().
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  /** Same as {@linkcode Node.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------- internals

  #track(p: Promise<unknown>): void {
    this.#tasks.add(p);
    void p.finally(() => this.#tasks.delete(p));
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError(`node "${this.#name}" is closed`);
  }

  #channelOf(channel: string | undefined): string {
    const c = channel ?? DEFAULT_CHANNEL;
    if (!this.#channels.has(c)) throw new TypeError(`unknown channel "${c}"`);
    return c;
  }

  #memberPeer(name: string): Peer {
    if (typeof name !== "string") throw new TypeError("node name must be a string");
    const peer = this.#peers.get(name);
    if (peer === undefined || this.#left) throw new UnknownNodeError(name);
    return peer;
  }

  #encode(value: unknown): Uint8Array {
    const frame = encodeValue(value);
    if (frame.length > this.#frameBytesMax) {
      throw new FrameTooLargeError(frame.length, this.#frameBytesMax);
    }
    return frame;
  }

  #isPartitioned(name: string): boolean {
    for (const e of this.#partitions.values()) if (e.nodes.has(name)) return true;
    return false;
  }

  #apply(event: MembershipEvent): void {
    const r = step(this.#view, event, this.#membersMax);
    if (r.rejected > 0) {
      this.#log({
        level: "warn",
        node: this.#name,
        msg: `${r.rejected} members ignored: membersMax reached`,
      });
    }
    if (r.state === this.#view) return;
    this.#view = r.state;
    for (const c of r.changes) this.#onChange(c);
    if (r.gossip) this.#gossipChanged();
  }

  #onChange(c: MembershipChange): void {
    if (c.name === this.#name) return;
    this.#log({
      level: "info",
      node: this.#name,
      peer: c.name,
      msg: `member ${c.kind} (incarnation ${c.spec.incarnation})`,
    });
    const existing = this.#peers.get(c.name);
    if (c.kind === "left") {
      if (existing !== undefined) {
        this.#dropPeer(
          existing,
          "left the cluster",
          new NodeDownError(c.name, "left the cluster"),
          true,
        );
      }
      return;
    }
    if (c.kind === "replaced" && existing !== undefined) {
      this.#dropPeer(existing, `restarted with incarnation ${c.spec.incarnation}`);
    }
    if (this.#left) return;
    const peer: Peer = {
      name: c.name,
      spec: c.spec,
      up: false,
      connecting: undefined,
      attempt: 0,
      retryTimer: undefined,
      slots: new Map(),
      rr: new Map(),
      lastHeard: this.#clock.now(),
    };
    this.#peers.set(c.name, peer);
    this.#track(this.#connect(peer));
  }

  /** Closes everything of a peer and forgets it; fires down if it was up. */
  #dropPeer(
    peer: Peer,
    why: string,
    error: unknown = new NodeDownError(peer.name, why),
    departed = false,
  ): void {
    this.#peers.delete(peer.name);
    this.#clearRetry(peer);
    peer.connecting?.abort(error);
    this.#down(peer, why, error);
    if (!departed) return;
    // Acknowledged sends to a departed node can never complete (a restart keeps them).
    for (const a of [...this.#acks.values()]) {
      if (a.node === peer.name) {
        a.cleanup();
        a.reject(error);
      }
    }
  }

  /** Marks a peer down: closes its links, fails its calls, fires onDown once. */
  #down(peer: Peer, why: string, error: unknown = new NodeDownError(peer.name, why)): void {
    for (const links of peer.slots.values()) for (const l of links) l.close(error);
    peer.slots.clear();
    for (const l of [...this.#incoming]) {
      if (l.peer === peer.name && l.incarnation <= peer.spec.incarnation) {
        l.close(error);
        this.#incoming.delete(l);
      }
    }
    for (const c of [...this.#calls.values()]) {
      if (c.node === peer.name) {
        c.cleanup();
        c.reject(error instanceof ClosedError ? error : new NodeDownError(peer.name, why));
      }
    }
    if (peer.up) {
      peer.up = false;
      this.#log({ level: "info", node: this.#name, peer: peer.name, msg: `down: ${why}` });
      this.#fire(this.#downListeners, peer.name);
    }
  }

  #clearRetry(peer: Peer): void {
    if (peer.retryTimer !== undefined) {
      this.#clock.clearTimeout(peer.retryTimer);
      peer.retryTimer = undefined;
    }
  }

  #scheduleReconnect(peer: Peer): void {
    if (
      this.#closed || this.#left || this.#peers.get(peer.name) !== peer ||
      peer.retryTimer !== undefined
    ) return;
    const base = Math.min(this.#backoffMaxMs, this.#backoffMinMs * 2 ** Math.min(peer.attempt, 30));
    const delay = base / 2 + this.#random.next() * (base / 2); // "equal jitter"
    peer.attempt++;
    peer.retryTimer = this.#clock.setTimeout(() => {
      peer.retryTimer = undefined;
      this.#track(this.#connect(peer));
    }, delay);
  }

  /** Opens every connection of a peer; up when all succeed, else backs off. */
  async #connect(peer: Peer): Promise<void> {
    if (this.#closed || this.#left || peer.up || peer.connecting !== undefined) return;
    if (this.#peers.get(peer.name) !== peer) return;
    if (this.#isPartitioned(peer.name)) {
      this.#scheduleReconnect(peer);
      return;
    }
    const ctl = new AbortController();
    peer.connecting = ctl;
    const timer = this.#clock.setTimeout(
      () => ctl.abort(new HandshakeError(`connect timed out after ${this.#connectTimeoutMs} ms`)),
      this.#connectTimeoutMs,
    );
    const opened: Link[] = [];
    try {
      const jobs: Promise<Link>[] = [];
      for (const ch of this.#channels.values()) {
        for (let i = 0; i < ch.parallelism; i++) jobs.push(this.#openLink(peer, ch, i, ctl.signal));
      }
      const results = await Promise.allSettled(jobs);
      for (const r of results) if (r.status === "fulfilled") opened.push(r.value);
      const failed = results.find((r) => r.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      if (ctl.signal.aborted) throw ctl.signal.reason;
      if (this.#peers.get(peer.name) !== peer || this.#closed || this.#left) {
        throw new NodeDownError(peer.name, "no longer a member");
      }
    } catch (e) {
      for (const l of opened) l.close(e);
      this.#clock.clearTimeout(timer);
      peer.connecting = undefined;
      if (e instanceof HandshakeError && /refused|cookie|cluster|protocol/.test(e.message)) {
        const waiters = this.#joinWaiters.get(peer.name);
        if (waiters !== undefined) { for (const w of [...waiters]) w.reject(e); }
        this.#log({
          level: "info",
          node: this.#name,
          peer: peer.name,
          msg: "connect refused",
          error: e,
        });
      } else {
        this.#log({
          level: "debug",
          node: this.#name,
          peer: peer.name,
          msg: "connect failed",
          error: e,
        });
      }
      this.#scheduleReconnect(peer);
      return;
    }
    this.#clock.clearTimeout(timer);
    peer.connecting = undefined;
    for (const l of opened) {
      let list = peer.slots.get(l.channel);
      if (list === undefined) peer.slots.set(l.channel, list = []);
      list[l.index] = l;
    }
    peer.attempt = 0;
    peer.lastHeard = this.#clock.now();
    peer.up = true;
    for (const l of opened) this.#track(this.#readLoop(l));
    this.#log({
      level: "info",
      node: this.#name,
      peer: peer.name,
      msg: `up (incarnation ${peer.spec.incarnation})`,
    });
    // Greet with our view, resend what waits for an acknowledgement.
    peer.slots.get(DEFAULT_CHANNEL)?.[0]?.enqueueControl(this.#gossipFrame());
    this.#stats.gossipsOut++;
    for (const a of this.#acks.values()) if (a.node === peer.name) this.#transmitAck(peer, a);
    this.#fire(this.#upListeners, peer.name);
    const waiters = this.#joinWaiters.get(peer.name);
    if (waiters !== undefined) { for (const w of [...waiters]) w.resolve(); }
  }

  async #openLink(
    peer: Peer,
    ch: ChannelConfig,
    index: number,
    signal: AbortSignal,
  ): Promise<Link> {
    if (this.stats().connections >= this.#connectionsMax) {
      throw new HandshakeError(`connectionsMax (${this.#connectionsMax}) reached`);
    }
    let lastError: unknown = new NodeDownError(peer.name, "has no listen address");
    for (const addr of peer.spec.listenAddrs) {
      signal.throwIfAborted();
      let conn: FrameConnection | undefined;
      try {
        conn = await this.#transport.connect(addr, { signal });
        const c = conn;
        const onAbort = () => c.close();
        signal.addEventListener("abort", onAbort, { once: true });
        let server: NodeSpec;
        try {
          server = await clientHandshake(c, this.#handshakeConfig(), ch.name, index, peer.name);
        } finally {
          signal.removeEventListener("abort", onAbort);
        }
        signal.throwIfAborted();
        if (server.incarnation < peer.spec.incarnation) {
          throw new HandshakeError(
            `"${peer.name}" answered with stale incarnation ${server.incarnation}`,
          );
        }
        if (server.incarnation > peer.spec.incarnation) {
          // It restarted at the same address: adopt the newer spec, this attempt is void.
          queueMicrotask(() => this.#apply({ type: "seen", spec: server }));
          throw new HandshakeError(`"${peer.name}" restarted (incarnation ${server.incarnation})`);
        }
        c.frameBytesMax = this.#frameBytesMax;
        return this.#makeLink(
          c,
          peer.name,
          peer.spec.incarnation,
          ch.name,
          index,
          true,
          ch.monotonic,
        );
      } catch (e) {
        conn?.close();
        lastError = signal.aborted ? signal.reason : e;
        if (signal.aborted) break;
      }
    }
    throw lastError;
  }

  #makeLink(
    conn: FrameConnection,
    peer: string,
    incarnation: number,
    channel: string,
    index: number,
    outgoing: boolean,
    monotonic: boolean,
  ): Link {
    return new Link(
      conn,
      { peer, incarnation, channel, index, outgoing, monotonic },
      this.#linkLimits,
      () => this.#clock.now(),
      (link, e) => this.#linkFailed(link, e),
      (p) => this.#track(p),
    );
  }

  #handshakeConfig(): HandshakeConfig {
    return {
      cluster: this.#cluster,
      cookie: this.#cookie,
      spec: this.#spec,
      nonce: () => randomBytes(this.#random, 16),
      handshakeFrameBytesMax: this.#handshakeFrameBytesMax,
    };
  }

  #linkFailed(link: Link, e: unknown): void {
    if (link.closed) return;
    const bad = e instanceof ProtocolError || e instanceof FrameTooLargeError;
    if (bad) this.#stats.badConnections++;
    this.#log({
      level: bad ? "warn" : "debug",
      node: this.#name,
      peer: link.peer,
      msg: `connection ${link.channel}/${link.index} ${link.outgoing ? "to" : "from"} peer closed`,
      error: e,
    });
    link.close(new NodeDownError(link.peer, "connection lost", { cause: e }));
    this.#incoming.delete(link);
    if (!link.outgoing) return;
    const peer = this.#peers.get(link.peer);
    if (peer === undefined || peer.slots.get(link.channel)?.[link.index] !== link) return;
    this.#down(peer, bad ? `protocol error: ${(e as Error).message}` : "connection lost");
    this.#scheduleReconnect(peer);
  }

  async #runAcceptLoop(): Promise<void> {
    for (;;) {
      let conn: FrameConnection | null;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#closed) return;
        this.#log({ level: "warn", node: this.#name, msg: "accept failed", error: e });
        continue;
      }
      if (conn === null) return;
      if (this.#closed) {
        conn.close();
        return;
      }
      if (
        this.#handshaking.size >= this.#handshakesPendingMax ||
        this.stats().connections >= this.#connectionsMax
      ) {
        this.#log({
          level: "warn",
          node: this.#name,
          msg: "connection refused: too many connections",
        });
        conn.close();
        continue;
      }
      this.#track(this.#acceptOne(conn));
    }
  }

  async #acceptOne(conn: FrameConnection): Promise<void> {
    this.#handshaking.add(conn);
    const timer = this.#clock.setTimeout(() => conn.close(), this.#connectTimeoutMs);
    let accepted: Accepted;
    try {
      accepted = await serverHandshake(conn, this.#handshakeConfig(), (a) => this.#admit(a));
    } catch (e) {
      const bad = e instanceof ProtocolError || e instanceof FrameTooLargeError ||
        (e instanceof HandshakeError && /cookie|cluster|protocol/.test(e.message));
      if (bad) this.#stats.badConnections++;
      this.#log({
        level: bad ? "warn" : "debug",
        node: this.#name,
        msg: `handshake from ${formatAddress(conn.remoteAddr)} failed`,
        error: e,
      });
      conn.close();
      return;
    } finally {
      this.#clock.clearTimeout(timer);
      this.#handshaking.delete(conn);
    }
    if (this.#closed) {
      conn.close();
      return;
    }
    conn.frameBytesMax = this.#frameBytesMax;
    const ch = this.#channels.get(accepted.channel);
    const link = this.#makeLink(
      conn,
      accepted.spec.name,
      accepted.spec.incarnation,
      accepted.channel,
      accepted.index,
      false,
      ch?.monotonic ?? false,
    );
    // An authenticated node that connects is a member (it may be joining us).
    this.#apply({ type: "seen", spec: accepted.spec });
    this.#incoming.add(link);
    const peer = this.#peers.get(accepted.spec.name);
    if (peer !== undefined) {
      peer.lastHeard = this.#clock.now();
      if (!peer.up && peer.connecting === undefined) {
        // It is reachable right now: no need to wait for the backoff.
        this.#clearRetry(peer);
        this.#track(this.#connect(peer));
      }
    }
    this.#track(this.#readLoop(link));
  }

  #admit(a: Accepted): string | undefined {
    const name = a.spec.name;
    if (this.#left) return "has left the cluster";
    if (name === this.#name) return `duplicate node name "${name}"`;
    if (this.#isPartitioned(name)) return "partitioned";
    const known = this.#view.entries.get(name);
    if (known !== undefined) {
      if (known.spec.incarnation > a.spec.incarnation) {
        return `stale incarnation ${a.spec.incarnation}`;
      }
      if (known.left && known.spec.incarnation >= a.spec.incarnation) {
        return "stale incarnation (it left)";
      }
    } else if (this.#view.entries.size >= this.#membersMax) {
      return "membersMax reached";
    }
    return undefined;
  }

  async #readLoop(link: Link): Promise<void> {
    try {
      for (;;) {
        const frame = await link.conn.read();
        if (frame === null) break;
        if (link.closed) return;
        if (this.#isPartitioned(link.peer)) {
          this.#stats.partitionDrops++;
          continue;
        }
        this.#stats.framesIn++;
        const peer = this.#peers.get(link.peer);
        if (peer !== undefined && peer.spec.incarnation === link.incarnation) {
          peer.lastHeard = this.#clock.now();
        }
        this.#handle(decodeMessage(frame), link);
      }
      if (!link.closed) {
        this.#linkFailed(link, new NodeDownError(link.peer, "connection closed by peer"));
      }
    } catch (e) {
      this.#linkFailed(link, e);
    }
  }

  #handle(m: WireMessage, link: Link): void {
    switch (m.tag) {
      case Tag.Msg:
        this.#deliver(m.endpoint, m.payload, link.peer, link.channel);
        return;
      case Tag.AckMsg: {
        const key = `${link.peer}\u0000${link.incarnation}`;
        let d = this.#dedup.get(key);
        if (d === undefined) {
          // Forget the dedup state of older incarnations of this peer.
          for (const k of this.#dedup.keys()) {
            if (k.startsWith(`${link.peer}\u0000`)) this.#dedup.delete(k);
          }
          this.#dedup.set(key, d = { seen: new Set(), order: [], head: 0 });
        }
        if (d.seen.has(m.seq)) {
          this.#stats.duplicates++;
        } else {
          d.seen.add(m.seq);
          d.order.push(m.seq);
          if (d.order.length - d.head > this.#dedupWindow) d.seen.delete(d.order[d.head++]!);
          if (d.head > 4096 && d.head * 2 > d.order.length) {
            d.order = d.order.slice(d.head);
            d.head = 0;
          }
          this.#deliver(m.endpoint, m.payload, link.peer, link.channel);
        }
        if (!this.#isPartitioned(link.peer)) link.enqueueControl(encodeValue([Tag.Ack, m.seq]));
        return;
      }
      case Tag.Ack: {
        const a = this.#acks.get(m.seq);
        if (a !== undefined && a.node === link.peer) {
          a.cleanup();
          a.resolve();
        }
        return;
      }
      case Tag.Call:
        void this.#answer(m.id, m.endpoint, m.payload, link);
        return;
      case Tag.Reply: {
        const c = this.#calls.get(m.id);
        if (c === undefined || c.node !== link.peer) return;
        c.cleanup();
        if (m.status === 0) c.resolve(m.value);
        else if (m.status === 1) c.reject(new UnknownEndpointError(c.node, c.endpoint));
        else {
          const [name, message] = Array.isArray(m.value) ? m.value : [];
          c.reject(
            new RemoteHandlerError(
              c.node,
              c.endpoint,
              String(name ?? "Error"),
              String(message ?? ""),
            ),
          );
        }
        return;
      }
      case Tag.Ping:
        link.enqueueControl(encodeValue([Tag.Pong, m.stamp]));
        return;
      case Tag.Pong:
        return;
      case Tag.Gossip:
        this.#apply({ type: "gossip", entries: validateEntries(m.entries, this.#membersMax) });
        return;
    }
  }

  #deliver(endpoint: string, payload: unknown, from: string, channel: string): void {
    const h = this.#handlers.get(endpoint);
    if (h === undefined) {
      this.#log({
        level: "debug",
        node: this.#name,
        peer: from,
        msg: `message for unknown endpoint "${endpoint}" dropped`,
      });
      return;
    }
    try {
      const r = h(payload, { from, channel });
      if (r instanceof Promise) {
        r.catch((e) =>
          this.#log({
            level: "error",
            node: this.#name,
            peer: from,
            msg: `handler "${endpoint}" failed`,
            error: e,
          })
        );
      }
    } catch (e) {
      this.#log({
        level: "error",
        node: this.#name,
        peer: from,
        msg: `handler "${endpoint}" threw`,
        error: e,
      });
    }
  }

  #deliverLocal(endpoint: string, msg: unknown, channel: string): void {
    // Same copy semantics as the wire: the handler never shares the sender's object.
    const copy = decodeValue(encodeValue(msg));
    queueMicrotask(() => this.#deliver(endpoint, copy, this.#name, channel));
  }

  async #callLocal(endpoint: string, msg: unknown, channel: string): Promise<unknown> {
    const h = this.#handlers.get(endpoint);
    if (h === undefined) throw new UnknownEndpointError(this.#name, endpoint);
    try {
      const r = await h(decodeValue(encodeValue(msg)), { from: this.#name, channel });
      return decodeValue(encodeValue(r));
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      throw new RemoteHandlerError(this.#name, endpoint, err.name, err.message);
    }
  }

  async #answer(id: number, endpoint: string, payload: unknown, link: Link): Promise<void> {
    const h = this.#handlers.get(endpoint);
    let reply: unknown[];
    if (h === undefined) {
      reply = [Tag.Reply, id, 1, null];
    } else {
      try {
        reply = [Tag.Reply, id, 0, await h(payload, { from: link.peer, channel: link.channel })];
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        reply = [Tag.Reply, id, 2, [err.name, err.message.slice(0, 4096)]];
      }
    }
    if (link.closed || this.#isPartitioned(link.peer)) return;
    let frame: Uint8Array;
    try {
      frame = this.#encode(reply);
    } catch (e) {
      const err = e as Error;
      frame = encodeValue([Tag.Reply, id, 2, [
        err.name,
        `reply could not be sent: ${err.message}`,
      ]]);
    }
    link.enqueueControl(frame);
  }

  #sendAcked(
    peer: Peer,
    endpoint: string,
    msg: unknown,
    channel: string,
    options: SendOptions,
  ): Promise<void> {
    options.signal?.throwIfAborted();
    if (this.#acks.size >= this.#acksOutstandingMax) throw new QueueFullError(peer.name, channel);
    const seq = this.#nextAckSeq++;
    const frame = this.#encode([Tag.AckMsg, seq, endpoint, msg]);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        if (!this.#acks.has(seq)) return;
        a.cleanup();
        reject(options.signal!.reason);
      };
      const a: PendingAck = {
        node: peer.name,
        frame,
        channel,
        key: options.partitionKey,
        lastSentAt: this.#clock.now(),
        resolve,
        reject,
        cleanup: () => {
          this.#acks.delete(seq);
          options.signal?.removeEventListener("abort", onAbort);
        },
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#acks.set(seq, a);
      if (peer.up) this.#transmitAck(peer, a);
    });
  }

  #transmitAck(peer: Peer, a: PendingAck): void {
    a.lastSentAt = this.#clock.now();
    if (this.#isPartitioned(peer.name)) {
      this.#stats.partitionDrops++;
      return;
    }
    try {
      // Retransmissions use the control path: they must not wait behind the bound.
      this.#pick(peer, a.channel, a.key).enqueueControl(a.frame);
      this.#stats.framesOut++;
    } catch { /* the retransmit timer tries again */ }
  }

  #pick(peer: Peer, channel: string, key: string | number | undefined): Link {
    const links = peer.slots.get(channel);
    if (links === undefined || links.length === 0) throw new NodeDownError(peer.name);
    let i: number;
    if (key !== undefined) {
      i = hashKey(key) % links.length;
    } else {
      i = ((peer.rr.get(channel) ?? -1) + 1) % links.length;
      peer.rr.set(channel, i);
    }
    return links[i]!;
  }

  #gossipFrame(): Uint8Array {
    return encodeValue([Tag.Gossip, entriesForWire(this.#view)]);
  }

  /** Gossips to `gossipFanout` random peers (all of them when fewer), soon. */
  #gossipChanged(): void {
    if (this.#gossipSoon !== undefined || this.#closed) return;
    this.#gossipSoon = this.#clock.setTimeout(() => {
      this.#gossipSoon = undefined;
      this.#gossipRound();
    }, 0);
  }

  #gossipRound(): void {
    if (this.#left || this.#closed) return;
    const up = [...this.#peers.values()].filter((p) => p.up && !this.#isPartitioned(p.name));
    if (up.length === 0) return;
    const frame = this.#gossipFrame();
    for (const p of sample(up, this.#gossipFanout, this.#random)) {
      if (p.slots.get(DEFAULT_CHANNEL)?.[0]?.enqueueControl(frame)) this.#stats.gossipsOut++;
    }
  }

  #schedulePeriodic(): void {
    const gossip = () => {
      this.#gossipTimer = this.#clock.setTimeout(gossip, this.#gossipIntervalMs);
      this.#gossipRound();
    };
    this.#gossipTimer = this.#clock.setTimeout(gossip, this.#gossipIntervalMs);
    const ping = () => {
      this.#pingTimer = this.#clock.setTimeout(ping, this.#pingIntervalMs);
      this.#checkLiveness();
    };
    this.#pingTimer = this.#clock.setTimeout(ping, this.#pingIntervalMs);
    const retransmit = () => {
      this.#retransmitTimer = this.#clock.setTimeout(retransmit, this.#retransmitIntervalMs);
      const now = this.#clock.now();
      for (const a of this.#acks.values()) {
        const peer = this.#peers.get(a.node);
        if (peer?.up && now - a.lastSentAt >= this.#retransmitIntervalMs) {
          this.#stats.retransmits++;
          this.#transmitAck(peer, a);
        }
      }
    };
    this.#retransmitTimer = this.#clock.setTimeout(retransmit, this.#retransmitIntervalMs);
  }

  #checkLiveness(): void {
    const now = this.#clock.now();
    for (const p of [...this.#peers.values()]) {
      if (!p.up) continue;
      if (now - p.lastHeard > this.#failureTimeoutMs) {
        this.#down(p, `silent for ${now - p.lastHeard} ms`);
        this.#scheduleReconnect(p);
        continue;
      }
      if (this.#isPartitioned(p.name)) {
        this.#stats.partitionDrops++;
        continue;
      }
      for (const links of p.slots.values()) {
        for (const l of links) {
          if (now - l.lastSentAt >= this.#pingIntervalMs) {
            l.lastSentAt = now;
            l.enqueueControl(encodeValue([Tag.Ping, now]));
          }
        }
      }
    }
  }

  #fire(map: Map<string, Set<(name: string) => void>>, name: string): void {
    for (const key of [name, "*"]) {
      const set = map.get(key);
      if (set === undefined) continue;
      for (const fn of [...set]) {
        try {
          fn(name);
        } catch (e) {
          this.#log({
            level: "error",
            node: this.#name,
            peer: name,
            msg: "up/down callback threw",
            error: e,
          });
        }
      }
    }
  }

  #rejoin(): void {
    const incarnation = Math.max(Math.floor(this.#clock.now()), this.#spec.incarnation + 1);
    this.#spec = { ...this.#spec, incarnation };
    this.#view = { self: this.#name, entries: new Map() };
    this.#apply({ type: "rejoin", spec: this.#spec });
    this.#left = false;
  }

  /** Learns the spec of whoever listens at `addr` with a short handshake. */
  async #probe(addr: Address, expectName?: string): Promise<NodeSpec> {
    const ctl = new AbortController();
    const timer = this.#clock.setTimeout(
      () =>
        ctl.abort(
          new HandshakeError(
            `no handshake from ${formatAddress(addr)} within ${this.#connectTimeoutMs} ms`,
          ),
        ),
      this.#connectTimeoutMs,
    );
    let conn: FrameConnection | undefined;
    try {
      conn = await this.#transport.connect(addr, { signal: ctl.signal });
      const c = conn;
      ctl.signal.addEventListener("abort", () => c.close(), { once: true });
      return await clientHandshake(
        c,
        this.#handshakeConfig(),
        DEFAULT_CHANNEL,
        PARALLELISM_MAX,
        expectName,
      );
    } catch (e) {
      if (ctl.signal.aborted) throw ctl.signal.reason;
      throw e;
    } finally {
      this.#clock.clearTimeout(timer);
      conn?.close();
    }
  }
}

function addListener(
  map: Map<string, Set<(name: string) => void>>,
  name: string,
  fn: (name: string) => void,
): () => void {
  if (typeof name !== "string" || (name !== "*" && !isName(name))) {
    throw new TypeError(`expected a node name or "*", got ${JSON.stringify(name)}`);
  }
  if (typeof fn !== "function") throw new TypeError("callback must be a function");
  let set = map.get(name);
  if (set === undefined) map.set(name, set = new Set());
  const s = set;
  s.add(fn);
  return () => {
    s.delete(fn);
  };
}

function checkEndpoint(endpoint: unknown): asserts endpoint is string {
  if (
    typeof endpoint !== "string" || endpoint.length === 0 ||
    endpoint.length > ENDPOINT_NAME_BYTES_MAX
  ) {
    throw new TypeError(`endpoint name must be 1-${ENDPOINT_NAME_BYTES_MAX} characters`);
  }
}

function monoKey(endpoint: string, key: string | number | undefined): string {
  return key === undefined ? endpoint : `${endpoint}\u0000${key}`;
}

/** FNV-1a over the key's string form. */
function hashKey(key: string | number): number {
  const s = String(key);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function sample<T>(items: T[], n: number, random: Random): T[] {
  if (items.length <= n) return items;
  const a = items.slice();
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random.next() * (a.length - i));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}

async function raceTimeout(p: Promise<unknown>, clock: Clock, ms: number): Promise<void> {
  let timer: TimerId | undefined;
  await Promise.race([
    p,
    new Promise<void>((r) => (timer = clock.setTimeout(r, ms))),
  ]);
  if (timer !== undefined) clock.clearTimeout(timer);
}
