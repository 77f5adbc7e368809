/**
 * A cluster node: listens, authenticates peers, keeps the membership view in
 * sync through its membership strategy (a full mesh by default), detects
 * failures, and carries messages and calls between named endpoints.
 *
 * The node is the I/O around pure parts: the membership strategy decides who
 * is a member and whom to connect to ({@linkcode MembershipStrategy}), the
 * connection layer keeps links and liveness, the delivery layer carries sends
 * and calls.
 *
 * @module
 */

import { type Clock, randomBytes, type TimerId } from "./clock.ts";
import { encodeValue, Tag, type WireMessage } from "./codec.ts";
import {
  ClosedError,
  type HandshakeCode,
  HandshakeError,
  NodeDownError,
  UnknownNodeError,
} from "./errors.ts";
import type { Accepted, HandshakeConfig, Refusal } from "./handshake.ts";
import type { Link } from "./_link.ts";
import {
  checkAddress,
  DEFAULT_CHANNEL,
  isWildcard,
  type NodeConfig,
  resolveConfig,
  timeoutOption,
} from "./_config.ts";
import { Delivery } from "./_delivery.ts";
import { FATAL_CODES, type Peer, Peers } from "./_peers.ts";
import { FullMesh } from "./full_mesh.ts";
import type { Logger, LogLevel } from "./logger.ts";
import { isName, type MembershipChange, type NodeSpec } from "./membership_state.ts";
import type { CallOptions, Handler, SendOptions } from "./messaging.ts";
import type { NodeOptions } from "./options.ts";
import type { MembershipStrategy, StrategyEffects } from "./strategy.ts";
import { TcpTransport } from "./tcp_transport.ts";
import {
  type Address,
  formatAddress,
  type FrameListener,
  parseAddress,
  type Transport,
} from "./transport.ts";

export { DEFAULT_CHANNEL } from "./_config.ts";

/** A partition injected with {@linkcode Node.injectPartition}. */
export interface PartitionInfo {
  /** Reference for {@linkcode Node.resolvePartition}. */
  readonly ref: number;
  /** Nodes cut off from this node. */
  readonly nodes: readonly string[];
  /** When it heals by itself (the node's monotonic clock), or undefined. */
  readonly expiresAt: number | undefined;
}

/** What {@linkcode Node.join} resolves with. */
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

/** Options of {@linkcode Node.onUp} and {@linkcode Node.onDown}. */
export interface UpDownOptions {
  /**
   * Only for this channel (the seed's `on_up/3`). Every channel of a peer
   * comes up together and a lost channel takes the peer down, so the callback
   * fires at the same transitions; the option checks the channel exists.
   */
  channel?: string;
}

/** Counters of a node. Everything dropped or refused is counted. */
export interface NodeStats {
  /** Frames received after handshakes. */
  framesIn: number;
  /** Frames queued for sending. */
  framesOut: number;
  /** Connections closed for a protocol violation (bad frame, bad handshake, oversize). */
  badConnections: number;
  /** Frames dropped by injected partitions. */
  partitionDrops: number;
  /** Fire-and-forget sends dropped: unknown or down node, closed connection, queue past its bound. */
  sendDrops: number;
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
  /** Open connections. */
  connections: number;
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
}

type Listener = { fn: (name: string) => void };

/** Changes of one event logged one per line; more are summarized. */
const CHANGES_LOGGED_MAX = 16;

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
  readonly #cfg: NodeConfig;
  readonly #clock: Clock;
  readonly #instance: Uint8Array;
  readonly #peers: Peers;
  readonly #delivery: Delivery;
  readonly #strategy: MembershipStrategy;
  #spec: NodeSpec;
  #closed = false;
  #refutations = 0;
  readonly #upListeners = new Map<string, Set<Listener>>();
  readonly #downListeners = new Map<string, Set<Listener>>();
  readonly #changeListeners = new Set<(change: MembershipChange) => void>();
  readonly #partitions = new Map<
    number,
    { nodes: Set<string>; expiresAt?: number; timer?: TimerId }
  >();
  readonly #joinWaiters = new Map<
    string,
    Set<{ resolve: () => void; reject: (e: unknown) => void }>
  >();
  #nextPartitionRef = 1;
  #tickTimer: TimerId | undefined;
  #retransmitTimer: TimerId | undefined;
  #probeTimer: TimerId | undefined;
  #flushTimer: TimerId | undefined;
  readonly #tasks = new Set<Promise<unknown>>();

  private constructor(
    cfg: NodeConfig,
    listener: FrameListener,
    transport: Transport,
    options: NodeOptions,
  ) {
    this.#cfg = cfg;
    this.#clock = cfg.clock;
    this.#instance = randomBytes(cfg.random, 16);
    const incarnation = options.incarnation ?? Math.floor(this.#clock.wallNow());
    if (!Number.isSafeInteger(incarnation) || incarnation < 0) {
      throw new RangeError(`incarnation must be a non-negative integer, got ${incarnation}`);
    }
    const bound = listener.addr;
    this.#spec = {
      name: cfg.name,
      incarnation,
      listenAddrs: (options.advertise ?? [bound]).map((a) => ({
        hostname: a.hostname,
        port: a.port === 0 ? bound.port : a.port,
      })),
      channels: Object.fromEntries(
        [...cfg.channels.values()].map((c) => [c.name, {
          parallelism: c.parallelism,
          monotonic: c.monotonic,
        }]),
      ),
    };
    this.#strategy = new FullMesh(this.#spec, {
      random: cfg.random,
      membersMax: cfg.membersMax,
      tombstonesMax: cfg.tombstonesMax,
      deadMemberRemoveMs: cfg.deadMemberRemoveMs,
      tombstoneTtlMs: cfg.tombstoneTtlMs,
      gossipIntervalMs: cfg.gossipIntervalMs,
      gossipFanout: cfg.gossipFanout,
    });
    this.#peers = new Peers(cfg, transport, listener, {
      admit: (a, instance) => this.#admit(a, instance),
      accepted: (a) => this.#run(this.#strategy.seen(a.spec, this.#clock.now())),
      up: (peer) => this.#onUp(peer),
      down: (peer, why, error) => this.#onDown(peer, why, error),
      message: (link, m) => this.#onMessage(link, m),
      connectFailed: (peer, e, code) => this.#onConnectFailed(peer, e, code),
      restarted: (spec) => this.#run(this.#strategy.seen(spec, this.#clock.now())),
      handshakeConfig: () => this.#handshakeConfig(),
      isPartitioned: (name) => this.#isPartitioned(name),
      active: () => !this.#closed && this.#strategy.active,
    }, (p) => this.#track(p));
    this.#delivery = new Delivery(cfg, this.#peers, {
      isPartitioned: (name) => this.#isPartitioned(name),
      isOpen: () => !this.#closed && this.#strategy.active,
      isMember: (name) => this.#strategy.entry(name)?.status === "alive",
    });
  }

  /**
   * Starts a node: binds its listener and begins serving. It is alone until it
   * joins a member or a member joins it.
   *
   * @throws {TypeError} on invalid options, and when listening on `0.0.0.0` or
   *   `::` without `advertise` (peers cannot dial a wildcard address).
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
    const strategy = options.membership?.strategy ?? "full-mesh";
    if (strategy !== "full-mesh") {
      throw new TypeError(`unknown membership strategy ${JSON.stringify(strategy)}`);
    }
    const cfg = resolveConfig(options);
    const listen = checkAddress(options.listen ?? { hostname: "127.0.0.1", port: 0 }, "listen");
    if (isWildcard(listen.hostname) && options.advertise === undefined) {
      throw new TypeError(
        `listening on ${listen.hostname} needs advertise: peers cannot dial ${listen.hostname}, ` +
          `and a node that advertises it makes every peer dial itself. Pass the address other hosts ` +
          `reach this one at, such as advertise: [{ hostname: "10.0.0.5", port: ${listen.port} }] ` +
          `(examples/node.ts: --advertise HOST:PORT)`,
      );
    }
    const transport = options.transport ??
      new TcpTransport(options.tls !== undefined ? { tls: options.tls } : {});
    const listener = await transport.listen(listen);
    let node: Node;
    try {
      node = new Node(cfg, listener, transport, options);
    } catch (e) {
      listener.close();
      throw e;
    }
    node.#track(node.#peers.runAcceptLoop());
    node.#schedulePeriodic();
    return node;
  }

  /** This node's name. */
  get name(): string {
    return this.#cfg.name;
  }

  /** This node's current spec (name, advertised addresses, incarnation, channels). */
  get spec(): NodeSpec {
    return this.#spec;
  }

  /** The address the listener is bound to (the advertised ones are in `spec.listenAddrs`). */
  get listenAddr(): Address {
    return this.#peers.listenAddr;
  }

  /** The logger every module on this node logs through. */
  get logger(): Logger {
    return this.#cfg.log;
  }

  /** The node's clock. */
  get clock(): Clock {
    return this.#clock;
  }

  /** The membership strategy's name (`"full-mesh"`). */
  get strategy(): string {
    return this.#strategy.kind;
  }

  /** Sorted names of all members, self included (empty after `leave()`). */
  members(): string[] {
    return this.#strategy.members();
  }

  /** Sorted names of the members with live connections, self included. */
  connectedMembers(): string[] {
    if (!this.#strategy.active) return [];
    const out = [this.#cfg.name];
    for (const p of this.#peers.peers.values()) if (p.up) out.push(p.name);
    return out.sort();
  }

  /** The spec this node knows for a member, or undefined. */
  memberSpec(name: string): NodeSpec | undefined {
    const e = this.#strategy.entry(name);
    return e === undefined || e.status !== "alive" ? undefined : e.spec;
  }

  /**
   * The specs of all members, self included, sorted by name (the seed's
   * `members_for_orchestration`).
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * await using a = await Node.start({ name: "a", cookie: "c" });
   * console.log(a.membersForOrchestration().map((s) => s.name)); // [ "a" ]
   * ```
   */
  membersForOrchestration(): NodeSpec[] {
    return this.#strategy.specs();
  }

  /** Counters (see {@linkcode NodeStats}). */
  stats(): NodeStats {
    const c = this.#peers.connections();
    const pc = this.#peers.counters, dc = this.#delivery.counters, sc = this.#strategy.stats;
    return {
      framesIn: pc.framesIn,
      framesOut: pc.framesOut,
      badConnections: pc.badConnections,
      partitionDrops: pc.partitionDrops,
      sendDrops: dc.sendDrops,
      retransmits: dc.retransmits,
      duplicates: dc.duplicates,
      acksOutstanding: this.#delivery.acksOutstanding,
      ackBytes: this.#delivery.ackBytes,
      callsOutstanding: this.#delivery.callsOutstanding,
      gossipsOut: sc.gossipsOut,
      connections: c.count,
      queuedBytes: c.queuedBytes,
      handshakesRefused: pc.handshakesRefused,
      handshakesEvicted: pc.handshakesEvicted,
      handshakesTimedOut: pc.handshakesTimedOut,
      connectsRefused: pc.connectsRefused,
      invalidEntries: sc.invalidEntries,
      membersRejected: sc.membersRejected,
      membersRemoved: sc.membersRemoved,
      members: this.#strategy.members().length,
      tombstones: this.#strategy.tombstones(),
      refutations: this.#refutations,
    };
  }

  /**
   * Calls `fn(name)` each time `name` (or any node, for `"*"`) comes up: its
   * connections are established. Returns a function that removes the callback.
   */
  onUp(name: string, fn: (name: string) => void, options: UpDownOptions = {}): () => void {
    return this.#addListener(this.#upListeners, name, fn, options);
  }

  /**
   * Calls `fn(name)` each time `name` (or any node, for `"*"`) goes down: its
   * connections were lost, it fell silent, it left or it was removed. Once per
   * transition.
   */
  onDown(name: string, fn: (name: string) => void, options: UpDownOptions = {}): () => void {
    return this.#addListener(this.#downListeners, name, fn, options);
  }

  /**
   * Calls `fn(change)` for each membership change (a member added, replaced,
   * left or removed). Returns a function that removes the callback.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * await using a = await Node.start({ name: "a", cookie: "c" });
   * const off = a.onMemberChange((c) => console.log(c.kind, c.name));
   * off();
   * ```
   */
  onMemberChange(fn: (change: MembershipChange) => void): () => void {
    if (typeof fn !== "function") throw new TypeError("callback must be a function");
    this.#changeListeners.add(fn);
    return () => void this.#changeListeners.delete(fn);
  }

  /**
   * Registers an endpoint. Sends to it call `handler(msg, ctx)`; calls to it
   * reply with the handler's (awaited) return value. Returns an unregister function.
   *
   * @throws {TypeError} on an invalid name or a name already registered.
   */
  register(endpoint: string, handler: Handler): () => void {
    return this.#delivery.register(endpoint, handler);
  }

  /** Removes an endpoint. Returns whether it was registered. */
  unregister(endpoint: string): boolean {
    return this.#delivery.unregister(endpoint);
  }

  /** Calls `fn(endpoint)` whenever an endpoint of this node is unregistered. Returns an unsubscribe function. */
  onUnregister(fn: (endpoint: string) => void): () => void {
    return this.#delivery.onUnregister(fn);
  }

  /** Whether an endpoint is registered on this node. */
  registered(endpoint: string): boolean {
    return this.#delivery.handlers.has(endpoint);
  }

  /**
   * Joins the cluster of the node at `target` (its spec, or `"host:port"`).
   * Resolves once this node is connected to it; the rest of the cluster
   * follows by gossip. After `leave()`, joins again with a new incarnation.
   * When the cluster remembers this node's name at a higher incarnation (a
   * former run), the node takes one above it and reports the stale specs.
   *
   * @throws {NameConflictError} another live node owns this name.
   * @throws {HandshakeError} refused (wrong cookie, cluster or protocol; another
   *   node answered at that address; the peer's view is full), with its `code`.
   * @throws {NodeDownError} not connected within `timeoutMs` (default 2 × `connectTimeoutMs`).
   */
  async join(target: NodeSpec | string, options: { timeoutMs?: number } = {}): Promise<JoinResult> {
    this.#assertOpen();
    const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, this.#cfg.connectTimeoutMs * 2);
    let addr: Address;
    let expect: string | undefined;
    if (typeof target === "string") {
      addr = parseAddress(target);
    } else {
      if (typeof target !== "object" || target === null || !isName(target.name)) {
        throw new TypeError('join target must be a node spec or a "host:port" string');
      }
      if (target.name === this.#cfg.name) {
        throw new TypeError(`a node cannot join itself ("${target.name}")`);
      }
      const first = target.listenAddrs?.[0];
      if (first === undefined) {
        throw new TypeError(`spec of "${target.name}" has no listen address`);
      }
      addr = first;
      expect = target.name;
    }
    if (!this.#strategy.active) this.#rejoin();
    // Nothing enters the view before it authenticates: probe the target first.
    const stale: NodeSpec[] = [];
    let spec: NodeSpec | undefined;
    for (let attempt = 0; spec === undefined; attempt++) {
      try {
        spec = (await this.#peers.probe(addr, expect)).spec;
      } catch (e) {
        if (e instanceof HandshakeError && e.code === "stale" && attempt < 3) {
          if (e.known !== undefined) stale.push(e.known);
          this.#takeIncarnationAbove(e.known?.incarnation ?? this.#spec.incarnation, e.message);
          continue;
        }
        throw e;
      }
    }
    if (spec.name === this.#cfg.name) {
      throw new TypeError(`a node cannot join itself ("${spec.name}")`);
    }
    const result = (): JoinResult => ({
      node: spec.name,
      incarnation: this.#spec.incarnation,
      stale,
    });
    if (this.#peers.peers.get(spec.name)?.up) return result();
    const upped = this.#waitUp(spec.name, timeoutMs);
    this.#run(this.#strategy.join(spec, this.#clock.now()));
    const peer = this.#peers.peers.get(spec.name);
    if (peer !== undefined) this.#peers.retryNow(peer);
    await upped;
    return result();
  }

  /**
   * Without a name: leaves the cluster. Every member hears of it and stops
   * connecting to this node, which is then alone until it joins again.
   *
   * With a name: removes that crashed member by hand (the seed's `leave/1`):
   * a tombstone spreads, and the member stays out unless it comes back with a
   * higher incarnation.
   *
   * @throws {UnknownNodeError} `name` is not a member.
   * @throws {TypeError} `name` is up: a live member leaves by itself.
   */
  async leave(name?: string): Promise<void> {
    this.#assertOpen();
    if (name !== undefined && name !== this.#cfg.name) {
      if (!isName(name)) throw new TypeError(`invalid node name ${JSON.stringify(name)}`);
      if (this.#strategy.entry(name)?.status !== "alive") throw new UnknownNodeError(name);
      if (this.#peers.peers.get(name)?.up) {
        throw new TypeError(
          `"${name}" is up: a live member leaves by itself (leave() on that node)`,
        );
      }
      this.#run(this.#strategy.remove([name], this.#clock.now()));
      return;
    }
    if (!this.#strategy.active) return;
    const fx = this.#strategy.leave(this.#clock.now());
    const flushes: Promise<void>[] = [];
    for (const s of fx.sends) {
      const l = this.#peers.control(s.to);
      if (l !== undefined && !this.#isPartitioned(s.to) && l.enqueueControl(this.#frame(s.msg))) {
        flushes.push(l.flush());
      }
    }
    await raceTimeout(Promise.all(flushes), this.#clock, this.#cfg.connectTimeoutMs);
    this.#run({ ...fx, sends: [] });
    const gone = new NodeDownError(this.#cfg.name, "left the cluster");
    for (const p of [...this.#peers.peers.values()]) this.#peers.drop(p, "this node left", gone);
    for (const l of [...this.#peers.incoming]) l.close(gone);
    this.#peers.incoming.clear();
  }

  /**
   * Sends `msg` to `endpoint` on node `to`. At most once and in order per
   * connection. Never rejects for delivery reasons: a message to an unknown or
   * down node, or past a queue's hard bound, is dropped and counted in
   * `stats().sendDrops`. The promise waits while the connection's queue is full
   * (backpressure).
   *
   * With `ack: true`: retransmitted until acknowledged and delivered once; the
   * promise resolves on the acknowledgement and rejects with
   * `UnknownNodeError`, `QueueFullError` (past `ackBytesMax` and
   * `sendWaitersMax`), `AckTimeoutError` (after `timeoutMs`), `NodeDownError`
   * (the node left or was removed) or `ClosedError`.
   *
   * @throws {TypeError} synchronously, for bad arguments and for a value that
   *   cannot cross the wire (naming the endpoint and the path: `msg.items[3].callback is a function`).
   * @throws {FrameTooLargeError} synchronously, when the encoded message is over `frameBytesMax`.
   */
  send(to: string, endpoint: string, msg: unknown, options: SendOptions = {}): Promise<void> {
    return this.#delivery.send(to, endpoint, msg, options);
  }

  /**
   * Sends the same message to several nodes (at most once each), encoding it
   * once. Resolves with the sends that failed (an empty array when every one
   * was queued); a full queue waits as with `send`. Never rejects for delivery
   * reasons.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * await using a = await Node.start({ name: "a", cookie: "c" });
   * console.log(await a.sendMany(["zz"], "echo", 1)); // one UnknownNodeError failure
   * ```
   */
  sendMany(
    to: readonly string[],
    endpoint: string,
    msg: unknown,
    options: Omit<SendOptions, "ack" | "signal" | "timeoutMs"> = {},
  ): Promise<{ node: string; error: unknown }[]> {
    return this.#delivery.sendMany(to, endpoint, msg, options);
  }

  /**
   * Calls `endpoint` on node `to` and resolves with its handler's return value.
   *
   * @throws {UnknownNodeError} `to` is not a member.
   * @throws {NodeDownError} `to` is down, or went down before replying.
   * @throws {UnknownEndpointError} `to` has no such endpoint.
   * @throws {RemoteHandlerError} the handler threw.
   * @throws {CallTimeoutError} no reply within `timeoutMs` (`Infinity`: never).
   */
  call(to: string, endpoint: string, msg: unknown, options: CallOptions = {}): Promise<unknown> {
    return this.#delivery.call(to, endpoint, msg, options);
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
    if (list.includes(this.#cfg.name)) throw new TypeError("a node cannot partition itself");
    const ref = this.#nextPartitionRef++;
    const entry: { nodes: Set<string>; expiresAt?: number; timer?: TimerId } = {
      nodes: new Set(list),
    };
    if (options.ttlMs !== undefined) {
      const ttl = timeoutOption("ttlMs", options.ttlMs, 1);
      entry.expiresAt = this.#clock.now() + ttl;
      entry.timer = this.#clock.setTimeout(() => this.resolvePartition(ref), ttl);
    }
    this.#partitions.set(ref, entry);
    this.#log("info", `partition ${ref} injected: ${list.join(",")}`);
    return ref;
  }

  /** Heals a partition. Returns false for an unknown reference. */
  resolvePartition(ref: number): boolean {
    const entry = this.#partitions.get(ref);
    if (entry === undefined) return false;
    this.#partitions.delete(ref);
    if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer);
    this.#log("info", `partition ${ref} resolved`);
    for (const name of entry.nodes) {
      const p = this.#peers.peers.get(name);
      if (p !== undefined && !p.up && !this.#isPartitioned(name)) this.#peers.retryNow(p);
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
    for (const t of [this.#tickTimer, this.#retransmitTimer, this.#probeTimer, this.#flushTimer]) {
      if (t !== undefined) this.#clock.clearTimeout(t);
    }
    for (const e of this.#partitions.values()) {
      if (e.timer !== undefined) this.#clock.clearTimeout(e.timer);
    }
    this.#partitions.clear();
    const closed = new ClosedError(`node "${this.#cfg.name}" is closed`);
    this.#peers.close(closed);
    this.#delivery.close(closed);
    this.#upListeners.clear();
    this.#downListeners.clear();
    this.#changeListeners.clear();
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
    if (this.#closed) throw new ClosedError(`node "${this.#cfg.name}" is closed`);
  }

  #log(level: LogLevel, msg: string, peer?: string, error?: unknown): void {
    this.#cfg.log({
      level,
      node: this.#cfg.name,
      msg,
      ...(peer === undefined ? {} : { peer }),
      ...(error === undefined ? {} : { error }),
    });
  }

  #isPartitioned(name: string): boolean {
    if (this.#partitions.size === 0) return false;
    for (const e of this.#partitions.values()) if (e.nodes.has(name)) return true;
    return false;
  }

  #handshakeConfig(): HandshakeConfig {
    return {
      cluster: this.#cfg.cluster,
      cookie: this.#cfg.cookie,
      spec: this.#spec,
      instance: this.#instance,
      nonce: () => randomBytes(this.#cfg.random, 16),
      handshakeFrameBytesMax: this.#cfg.handshakeFrameBytesMax,
    };
  }

  /** A membership message frame; one encoding per message object in a batch. */
  #frame(msg: unknown): Uint8Array {
    return encodeValue([Tag.Gossip, msg]);
  }

  /** Carries out what the strategy asked for. */
  #run(fx: StrategyEffects): void {
    for (const l of fx.logs) this.#log(l.level, l.msg, l.peer);
    if (fx.changes.length > CHANGES_LOGGED_MAX) this.#summarizeChanges(fx.changes);
    for (const c of fx.changes) this.#reportChange(c, fx.changes.length <= CHANGES_LOGGED_MAX);
    for (const d of fx.disconnect) {
      const peer = this.#peers.peers.get(d.name);
      if (peer !== undefined) this.#peers.drop(peer, d.reason);
      if (d.departed) {
        this.#delivery.peerDeparted(d.name, d.reason);
        const waiters = this.#joinWaiters.get(d.name);
        if (waiters !== undefined && waiters.size > 0) {
          const error = new NodeDownError(d.name, d.reason);
          for (const w of [...waiters]) w.reject(error);
        }
      }
    }
    if (!this.#closed && this.#strategy.active) {
      for (const spec of fx.connect) if (spec.name !== this.#cfg.name) this.#peers.ensure(spec);
    }
    let last: unknown, frame: Uint8Array | undefined;
    for (const s of fx.sends) {
      if (s.msg !== last) {
        last = s.msg;
        frame = this.#frame(s.msg);
      }
      if (this.#isPartitioned(s.to)) continue;
      this.#peers.control(s.to)?.enqueueControl(frame!);
    }
    if (fx.refute !== undefined) this.#takeIncarnationAbove(fx.refute.above, fx.refute.reason);
    if (fx.flush && this.#flushTimer === undefined && !this.#closed) {
      this.#flushTimer = this.#clock.setTimeout(() => {
        this.#flushTimer = undefined;
        if (!this.#closed) this.#run(this.#strategy.flush(this.#clock.now()));
      }, 0);
    }
  }

  /** One line per kind for a large batch (junk gossip must not flood the log). */
  #summarizeChanges(changes: readonly MembershipChange[]): void {
    const byKind = new Map<string, string[]>();
    for (const c of changes) {
      let names = byKind.get(c.kind);
      if (names === undefined) byKind.set(c.kind, names = []);
      names.push(c.name);
    }
    for (const [kind, names] of byKind) {
      const shown = names.slice(0, 4).join(", ");
      this.#log(
        names.length > 100 ? "warn" : "info",
        `${names.length} members ${kind}: ${shown}${names.length > 4 ? ", ..." : ""}`,
      );
    }
  }

  #reportChange(c: MembershipChange, log: boolean): void {
    const addrs = (s: NodeSpec) => s.listenAddrs.map(formatAddress).join(",");
    const msg = c.kind === "replaced"
      ? `member replaced: incarnation ${c.previous!.incarnation} -> ${c.spec.incarnation}` +
        (c.previous && addrs(c.previous) !== addrs(c.spec)
          ? `, stale spec at ${addrs(c.previous)} pruned for ${addrs(c.spec)}`
          : "")
      : `member ${c.kind} (incarnation ${c.spec.incarnation}, ${addrs(c.spec) || "no address"})`;
    if (log) this.#log("info", msg, c.name);
    for (const fn of [...this.#changeListeners]) {
      try {
        fn(c);
      } catch (e) {
        this.#log("error", "member-change callback threw", c.name, e);
      }
    }
  }

  /** Takes an incarnation above `above` (this node was stale or declared dead) and says so. */
  #takeIncarnationAbove(above: number, reason: string): void {
    const incarnation = Math.max(this.#spec.incarnation + 1, above + 1);
    if (!Number.isSafeInteger(incarnation)) {
      this.#log("error", `cannot take an incarnation above ${above}: ${reason}`);
      return;
    }
    this.#refutations++;
    this.#log("warn", `stale: ${reason}; taking incarnation ${incarnation}`);
    this.#spec = { ...this.#spec, incarnation };
    this.#run(this.#strategy.setSelf(this.#spec, this.#clock.now()));
  }

  #rejoin(): void {
    const incarnation = Math.max(Math.floor(this.#clock.wallNow()), this.#spec.incarnation + 1);
    this.#spec = { ...this.#spec, incarnation };
    this.#run(this.#strategy.setSelf(this.#spec, this.#clock.now()));
  }

  /** Admission of an authenticated incoming connection. */
  #admit(a: Accepted, instance: string): Refusal | undefined {
    const name = a.spec.name;
    if (!this.#strategy.active) return { code: "left", reason: "this node has left the cluster" };
    if (name === this.#cfg.name) {
      return {
        code: "name-in-use",
        reason: `this node is "${name}"`,
        owner: this.#spec.listenAddrs,
      };
    }
    if (this.#isPartitioned(name)) return { code: "partitioned", reason: "partitioned" };
    const known = this.#strategy.entry(name);
    const peer = this.#peers.peers.get(name);
    const now = this.#clock.now();
    const live = peer !== undefined && peer.up &&
      now - peer.lastHeard <= this.#cfg.failureTimeoutMs;
    const knownInstance = peer?.instance ?? this.#incomingInstance(name);
    if (
      known?.status === "alive" && live && knownInstance !== undefined && knownInstance !== instance
    ) {
      return {
        code: "name-in-use",
        reason: `node name "${name}" is in use by a live node`,
        owner: known.spec.listenAddrs,
      };
    }
    if (known !== undefined) {
      const k = known.spec.incarnation, c = a.spec.incarnation;
      const otherProcess = knownInstance !== undefined && knownInstance !== instance;
      if (
        (known.status !== "alive" && k >= c) || (known.status === "alive" && k > c) ||
        (known.status === "alive" && k === c && !live &&
          (otherProcess || !sameSpec(known.spec, a.spec)))
      ) {
        return {
          code: "stale",
          reason: `stale incarnation ${c}: this cluster has "${name}" ${
            known.status === "alive" ? "at" : known.status + " at"
          } incarnation ${k}`,
          known: known.spec,
        };
      }
    } else if (this.#strategy.members().length >= this.#cfg.membersMax) {
      return { code: "full", reason: `membersMax (${this.#cfg.membersMax}) reached` };
    }
    return undefined;
  }

  #incomingInstance(name: string): string | undefined {
    for (const l of this.#peers.incoming) if (l.peer === name && !l.closed) return l.instance;
    return undefined;
  }

  #onUp(peer: Peer): void {
    this.#log("info", `up (incarnation ${peer.spec.incarnation})`, peer.name);
    this.#run(this.#strategy.up(peer.name, this.#clock.now()));
    const hello = this.#strategy.greeting(peer.name);
    if (hello !== undefined) {
      peer.slots.get(DEFAULT_CHANNEL)?.[0]?.enqueueControl(this.#frame(hello));
      this.#strategy.stats.gossipsOut++;
    }
    this.#delivery.peerUp(peer);
    this.#fire(this.#upListeners, peer.name);
    const waiters = this.#joinWaiters.get(peer.name);
    if (waiters !== undefined) { for (const w of [...waiters]) w.resolve(); }
  }

  #onDown(peer: Peer, why: string, error: unknown): void {
    this.#log("info", `down: ${why}`, peer.name);
    this.#run(this.#strategy.down(peer.name, this.#clock.now()));
    this.#delivery.peerDown(peer.name, error);
    this.#fire(this.#downListeners, peer.name);
  }

  #onMessage(link: Link, m: WireMessage): void {
    if (m.tag === Tag.Gossip) {
      this.#run(this.#strategy.receive(link.peer, m.entries, this.#clock.now()));
    } else {
      this.#delivery.handle(m, link);
    }
  }

  #onConnectFailed(peer: Peer, e: unknown, code: HandshakeCode | undefined): void {
    const addr = peer.spec.listenAddrs.map(formatAddress).join(",");
    if (code === "stale" && e instanceof HandshakeError) {
      this.#takeIncarnationAbove(e.known?.incarnation ?? this.#spec.incarnation, e.message);
      return;
    }
    if (code !== undefined && FATAL_CODES.has(code)) {
      this.#log("warn", `connect to ${addr} refused`, peer.name, e);
      const waiters = this.#joinWaiters.get(peer.name);
      if (waiters !== undefined) { for (const w of [...waiters]) w.reject(e); }
      return;
    }
    this.#log("debug", `connect to ${addr} failed`, peer.name, e);
  }

  #waitUp(name: string, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let set = this.#joinWaiters.get(name);
      if (set === undefined) this.#joinWaiters.set(name, set = new Set());
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
        () => w.reject(new NodeDownError(name, `could not be joined within ${timeoutMs} ms`)),
        timeoutMs,
      );
      s.add(w);
    });
  }

  #schedulePeriodic(): void {
    const { pingIntervalMs, retransmitIntervalMs, deadProbeIntervalMs } = this.#cfg;
    const tick = () => {
      this.#tickTimer = this.#clock.setTimeout(tick, pingIntervalMs);
      const now = this.#clock.now();
      this.#peers.checkLiveness(now);
      if (this.#strategy.active) this.#run(this.#strategy.tick(now));
    };
    this.#tickTimer = this.#clock.setTimeout(tick, pingIntervalMs);
    const retransmit = () => {
      this.#retransmitTimer = this.#clock.setTimeout(retransmit, retransmitIntervalMs);
      this.#delivery.retransmit(this.#clock.now());
    };
    this.#retransmitTimer = this.#clock.setTimeout(retransmit, retransmitIntervalMs);
    const probe = () => {
      this.#probeTimer = this.#clock.setTimeout(probe, deadProbeIntervalMs);
      if (this.#strategy.active) {
        for (const spec of this.#strategy.probeCandidates(2)) this.#track(this.#probeDead(spec));
      }
    };
    this.#probeTimer = this.#clock.setTimeout(probe, deadProbeIntervalMs);
  }

  /**
   * Probes a removed member: if it answers, it is alive after all (a partition
   * healed). A higher incarnation is adopted as a restart; at the same one it
   * is sent this node's view, which shows it its tombstone, so it refutes.
   */
  async #probeDead(spec: NodeSpec): Promise<void> {
    try {
      const addr = spec.listenAddrs[0]!;
      const server = await this.#peers.probe(addr, spec.name, (conn) =>
        conn.write([
          this.#frame(this.#strategy.greeting(spec.name)),
        ]));
      if (server.spec.incarnation > spec.incarnation) {
        this.#run(this.#strategy.seen(server.spec, this.#clock.now()));
      }
    } catch (e) {
      if (e instanceof HandshakeError && e.code === "stale") {
        this.#takeIncarnationAbove(e.known?.incarnation ?? this.#spec.incarnation, e.message);
      }
    }
  }

  #addListener(
    map: Map<string, Set<Listener>>,
    name: string,
    fn: (name: string) => void,
    options: UpDownOptions,
  ): () => void {
    if (typeof name !== "string" || (name !== "*" && !isName(name))) {
      throw new TypeError(`expected a node name or "*", got ${JSON.stringify(name)}`);
    }
    if (typeof fn !== "function") throw new TypeError("callback must be a function");
    if (options.channel !== undefined) this.#delivery.channelOf(options.channel);
    let set = map.get(name);
    if (set === undefined) map.set(name, set = new Set());
    const s = set;
    const l = { fn };
    s.add(l);
    return () => void s.delete(l);
  }

  #fire(map: Map<string, Set<Listener>>, name: string): void {
    for (const key of [name, "*"]) {
      const set = map.get(key);
      if (set === undefined) continue;
      for (const l of [...set]) {
        try {
          l.fn(name);
        } catch (e) {
          this.#log("error", "up/down callback threw", name, e);
        }
      }
    }
  }
}

function sameSpec(a: NodeSpec, b: NodeSpec): boolean {
  return JSON.stringify([a.listenAddrs, a.channels]) ===
    JSON.stringify([b.listenAddrs, b.channels]);
}

async function raceTimeout(p: Promise<unknown>, clock: Clock, ms: number): Promise<void> {
  let timer: TimerId | undefined;
  await Promise.race([
    p,
    new Promise<void>((r) => (timer = clock.setTimeout(r, ms))),
  ]);
  if (timer !== undefined) clock.clearTimeout(timer);
}
