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

import { updateMembers, type UpdateMembersResult } from "./_update_members.ts";
import { checkDiscovery, Discovery } from "./discovery.ts";
import { mathRandom } from "../base/clock.ts";
import { leaveOnSignals, type LeaveOnSignalsOptions } from "./_signals.ts";
import type { Clock } from "../base/clock.ts";
import { checkAddress, isWildcard, resolveConfig } from "./_config.ts";
import { NodeCore } from "./_node_core.ts";
import { provideRelay } from "./relay.ts";
import type { Logger } from "../base/logger.ts";
import { checkTags, isName, matchesTags, type NodeSpec, type Tags } from "./spec.ts";
import type { MembershipChange } from "./membership_state.ts";
import type { CallOptions, Handler, MessageContext, SendOptions } from "./messaging.ts";
import {
  type Endpoint,
  endpointName,
  type RegisterOptions,
  type TypedHandler,
} from "./endpoint.ts";
import type { Schema } from "../base/schema.ts";
import type { NodeOptions } from "./options.ts";
import { TcpTransport } from "./tcp_transport.ts";
import type { Address } from "./transport.ts";

export { DEFAULT_CHANNEL } from "./_config.ts";
import type {
  CallObserver,
  JoinResult,
  MemberInfo,
  NodeStats,
  PartitionInfo,
  UpDownCallback,
  UpDownOptions,
} from "./node_types.ts";

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
  readonly #core: NodeCore;
  #discovery: Discovery | undefined;

  private constructor(core: NodeCore) {
    this.#core = core;
    provideRelay(this, core.relay());
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
    if (strategy !== "full-mesh" && strategy !== "hyparview") {
      throw new TypeError(
        `unknown membership strategy ${
          JSON.stringify(strategy)
        } (expected "full-mesh" or "hyparview")`,
      );
    }
    const cfg = resolveConfig(options);
    if (options.discovery !== undefined) checkDiscovery(options.discovery);
    const listen = checkAddress(options.listen ?? { hostname: "127.0.0.1", port: 0 }, "listen");
    if (isWildcard(listen.hostname) && options.advertise === undefined) {
      throw new TypeError(
        `listening on ${listen.hostname} needs advertise: peers cannot dial ${listen.hostname}, ` +
          `and a node that advertises it makes every peer dial itself. Pass the address other hosts ` +
          `reach this one at, such as advertise: [{ hostname: "10.0.0.5", port: ${listen.port} }] ` +
          `(the CLI: --advertise HOST:PORT)`,
      );
    }
    const transport = options.transport ??
      new TcpTransport(options.tls !== undefined ? { tls: options.tls } : {});
    const listener = await transport.listen(listen);
    let node: Node;
    try {
      node = new Node(new NodeCore(cfg, listener, transport, options));
    } catch (e) {
      listener.close();
      throw e;
    }
    node.#core.track(node.#core.peers.runAcceptLoop());
    node.#core.schedulePeriodic();
    if (options.discovery !== undefined) {
      const core = node.#core;
      node.#discovery = new Discovery(
        {
          name: core.cfg.name,
          members: () => node.members(),
          knownAddresses: () =>
            new Set(node.memberInfo().flatMap((m) => m.address === undefined ? [] : [m.address])),
          join: (target) => node.join(target),
          log: (level, msg) => core.log(level, msg),
        },
        options.discovery,
        core.clock,
        options.random ?? mathRandom,
      );
      node.#discovery.start();
    }
    return node;
  }

  /** This node's name. */
  get name(): string {
    return this.#core.cfg.name;
  }

  /** This node's current spec (name, advertised addresses, incarnation, channels). */
  get spec(): NodeSpec {
    return this.#core.spec;
  }

  /** The address the listener is bound to (the advertised ones are in `spec.listenAddrs`). */
  get listenAddr(): Address {
    return this.#core.peers.listenAddr;
  }

  /** The logger every module on this node logs through. */
  get logger(): Logger {
    return this.#core.cfg.log;
  }

  /** The node's clock. */
  get clock(): Clock {
    return this.#core.clock;
  }

  /** The membership strategy's name (`"full-mesh"` or `"hyparview"`). */
  get strategy(): string {
    return this.#core.strategy.kind;
  }

  /**
   * Sorted names of the members this node knows, self included (empty after
   * `leave()`). Full mesh: the cluster. HyParView: the active view (the
   * neighbours, connected or being connected) and self, as the seed's
   * HyParView manager; the passive view is {@linkcode Node.passiveMembers}.
   * A send to a listed member whose connection is still opening waits for it.
   * With `tags`, only the members that have every one of those tags
   * (`members({ tags: { role: "web" } })`).
   */
  members(options: { tags?: Tags } = {}): string[] {
    const all = this.#core.strategy.members();
    if (options.tags === undefined) return all;
    const want = checkTags(options.tags);
    return all.filter((name) =>
      matchesTags(
        name === this.name ? this.#core.spec.tags : this.#core.strategy.entry(name)?.spec.tags,
        want,
      )
    );
  }

  /**
   * Under HyParView, replaces every neighbour by members of the passive view,
   * at high priority; the neighbours rotated out are forgotten (an eclipse
   * defence: a Plumtree server calls it when its neighbours delivered none of
   * what a passive member got). `prefer`, a member this node knows, is asked
   * first. Logs `reason` as a warning. Returns false when there is nothing to
   * do (full mesh, or no member to take).
   */
  rotateNeighbours(reason: string, prefer?: string): boolean {
    return this.#core.rotateNeighbours(reason, prefer);
  }

  /** This node's tags (empty when it has none). */
  get tags(): Tags {
    return this.#core.spec.tags ?? {};
  }

  /**
   * Replaces this node's tags; the new ones spread with the membership
   * (connections stay). Under full mesh every member sees them within a
   * gossip round; under HyParView, nodes learn them with the spec (joins,
   * shuffles, handshakes), neighbours at their next exchange.
   *
   * @throws {TypeError} naming what is wrong (a name, a value, the count or the size).
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur";
   * await using a = await Node.start({ name: "a", cookie: "c", tags: { role: "web" } });
   * a.setTags({ role: "web", zone: "eu-1" });
   * console.log(a.tags.zone, a.members({ tags: { role: "web" } })); // eu-1 [ "a" ]
   * ```
   */
  setTags(tags: Record<string, string>): void {
    this.#core.setTags(tags);
  }

  /**
   * Sorted names of the members this node knows but deliberately keeps no
   * connection to: HyParView's passive view (empty under full mesh).
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * await using a = await Node.start({ name: "a", cookie: "c" });
   * console.log(a.passiveMembers()); // []
   * ```
   */
  passiveMembers(): string[] {
    return this.#core.strategy.passiveView?.() ?? [];
  }

  /**
   * Sorted names of the members with live connections, self included. Full
   * mesh: every member that is up. HyParView: the active view (neighbours);
   * direct connections opened for `send`/`call` do not count.
   */
  connectedMembers(): string[] {
    return this.#core.connectedMembers();
  }

  /** The spec this node knows for a member, or undefined. */
  memberSpec(name: string): NodeSpec | undefined {
    return this.#core.memberSpec(name);
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
    return this.#core.strategy.specs();
  }

  /**
   * Every entry of this node's view with its state, incarnation, address,
   * connections per channel and when it was last heard: what a dashboard
   * shows. Bounded by `membersMax` and `tombstonesMax`.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * await using a = await Node.start({ name: "a", cookie: "c" });
   * console.log(a.memberInfo().map((m) => `${m.name} ${m.state}`)); // [ "a up" ]
   * ```
   */
  memberInfo(): MemberInfo[] {
    return this.#core.memberInfo();
  }

  /** Counters (see {@linkcode NodeStats}). */
  stats(): NodeStats {
    return this.#core.stats();
  }

  /**
   * Calls `fn(name)` each time `name` (or any node, for `"*"`) comes up: its
   * connections are established. With `{ channel }` (the seed's `on_up/3`),
   * `fn(name, channel)` when that channel's connections are up. Returns a
   * function that removes the callback.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * await using a = await Node.start({ name: "a", cookie: "c", channels: { bulk: {} } });
   * const off = a.onUp("*", (node, channel) => console.log(node, channel), { channel: "bulk" });
   * off();
   * ```
   */
  onUp(name: string, fn: UpDownCallback, options: UpDownOptions = {}): () => void {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("onUp options must be an object");
    }
    const channel = options.channel === undefined
      ? undefined
      : this.#core.delivery.channelOf(options.channel);
    return this.#core.upListeners.add(name, fn, channel);
  }

  /**
   * Calls `fn(name)` each time `name` (or any node, for `"*"`) goes down: its
   * connections were lost, it fell silent, it left or it was removed. Once per
   * transition. With `{ channel }`, `fn(name, channel)` when that channel's
   * connections are lost.
   */
  onDown(name: string, fn: UpDownCallback, options: UpDownOptions = {}): () => void {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("onDown options must be an object");
    }
    const channel = options.channel === undefined
      ? undefined
      : this.#core.delivery.channelOf(options.channel);
    return this.#core.downListeners.add(name, fn, channel);
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
    return this.#core.changeListeners.add(fn);
  }

  /**
   * Registers a typed endpoint (see {@linkcode endpoint}): the handler gets a
   * `Req` and answers a `Res`. Its schema (`options.schema`, else the
   * endpoint's) checks each message first: one that fails never reaches the
   * handler; a call is answered with a `ValidationError` naming the path, a
   * send is dropped, counted in `stats().invalidMessages` and logged.
   * Returns an unregister function.
   *
   * @throws {TypeError} on an invalid name, a name already registered, or a schema that is not a Standard Schema.
   *
   * @example
   * ```ts
   * import { endpoint, Node } from "@murmur/murmur";
   * const greet = endpoint<string, string>("greet");
   * await using node = await Node.start({ name: "a", cookie: "c" });
   * node.register(greet, (who) => `hello ${who}`);
   * console.log(await node.call("a", greet, "ada")); // hello ada
   * ```
   */
  register<Req, Res>(
    endpoint: Endpoint<Req, Res>,
    handler: TypedHandler<Req, Res>,
    options?: RegisterOptions<Req>,
  ): () => void;
  /**
   * Registers an endpoint by name, its messages checked by `options.schema`
   * (the handler gets the schema's output).
   */
  register<T>(
    endpoint: string,
    handler: (msg: T, ctx: MessageContext) => unknown,
    options: RegisterOptions<T> & { schema: Schema<unknown, T> },
  ): () => void;
  /**
   * Registers an endpoint. Sends to it call `handler(msg, ctx)`; calls to it
   * reply with the handler's (awaited) return value. Returns an unregister function.
   *
   * @throws {TypeError} on an invalid name or a name already registered.
   */
  register(endpoint: string, handler: Handler, options?: RegisterOptions): () => void;
  register(
    endpoint: string | Endpoint<unknown, unknown>,
    handler: Handler,
    options: RegisterOptions = {},
  ): () => void {
    const schema = options.schema ?? (typeof endpoint === "string" ? undefined : endpoint.schema);
    return this.#core.delivery.register(endpointName(endpoint), handler, schema);
  }

  /** Removes an endpoint. Returns whether it was registered. */
  unregister(endpoint: string | Endpoint<unknown, unknown>): boolean {
    return this.#core.delivery.endpoints.unregister(endpointName(endpoint));
  }

  /** Calls `fn(endpoint)` whenever an endpoint of this node is unregistered. Returns an unsubscribe function. */
  onUnregister(fn: (endpoint: string) => void): () => void {
    return this.#core.delivery.endpoints.onUnregister(fn);
  }

  /** Whether an endpoint is registered on this node. */
  registered(endpoint: string | Endpoint<unknown, unknown>): boolean {
    return this.#core.delivery.endpoints.handlers.has(endpointName(endpoint));
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
  join(target: NodeSpec | string, options: { timeoutMs?: number } = {}): Promise<JoinResult> {
    return this.#core.join(target, options);
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
  leave(name?: string): Promise<void> {
    return this.#core.leave(name);
  }

  /**
   * Declarative membership (the seed's `update_members/1`): joins every
   * listed node that is not an up member, and removes the members no longer
   * listed that are down (a live member is not removed: it leaves by itself,
   * and is reported in `kept`). Never this node. Joins run at once, each
   * bounded by `timeoutMs`.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur";
   * await using a = await Node.start({ name: "a", cookie: "s3cret" });
   * await using b = await Node.start({ name: "b", cookie: "s3cret" });
   * const r = await b.updateMembers([a.spec]);
   * console.log(r.joined); // [ "a" ]
   * ```
   */
  updateMembers(
    targets: readonly (NodeSpec | string)[],
    options: { timeoutMs?: number } = {},
  ): Promise<UpdateMembersResult> {
    return updateMembers(this, targets, options);
  }

  /**
   * Leaves the cluster when the process is asked to stop (SIGTERM, SIGINT:
   * `docker stop`, systemd, Kubernetes, Ctrl-C): the leave goes out (others
   * see `left` at once, not `down` after the failure timeout), then
   * `beforeClose`, then the node closes and the process exits, each step
   * bounded by `drainMs`. Returns a function that removes the listeners.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur";
   * await using node = await Node.start({ name: "a", cookie: "s3cret" });
   * const off = node.leaveOnSignals({ drainMs: 3000, beforeClose: () => console.log("bye") });
   * off(); // (in a real service: kept until the process stops)
   * ```
   */
  leaveOnSignals(options: LeaveOnSignalsOptions = {}): () => void {
    return leaveOnSignals(this, options);
  }

  /**
   * Sends `msg` to `endpoint` on node `to`. At most once and in order per
   * connection. Never rejects for delivery reasons: a message to an unknown or
   * down node, or past a queue's hard bound, is dropped and counted in
   * `stats().sendDrops`. The promise waits while the connection's queue is full
   * (backpressure); when the message was queued but more than
   * `sendQueueHighWaterBytes` wait on the connection, it settles once they have
   * drained under that mark, so a sender that awaits `send` is paced there.
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
  send<Req>(
    to: string,
    endpoint: Endpoint<Req, unknown>,
    msg: Req,
    options?: SendOptions,
  ): Promise<void>;
  /** Sends `msg` to the endpoint named `endpoint` on node `to` (as above). */
  send(to: string, endpoint: string, msg: unknown, options?: SendOptions): Promise<void>;
  send(
    to: string,
    endpoint: string | Endpoint<unknown, unknown>,
    msg: unknown,
    options: SendOptions = {},
  ): Promise<void> {
    const name = typeof endpoint === "string" ? endpoint : endpointName(endpoint);
    return this.#core.delivery.send(to, name, msg, options);
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
  sendMany<Req>(
    to: readonly string[],
    endpoint: Endpoint<Req, unknown>,
    msg: Req,
    options?: Omit<SendOptions, "ack" | "signal" | "timeoutMs">,
  ): Promise<{ node: string; error: unknown }[]>;
  /** Sends the same message to the endpoint named `endpoint` on several nodes (as above). */
  sendMany(
    to: readonly string[],
    endpoint: string,
    msg: unknown,
    options?: Omit<SendOptions, "ack" | "signal" | "timeoutMs">,
  ): Promise<{ node: string; error: unknown }[]>;
  sendMany(
    to: readonly string[],
    endpoint: string | Endpoint<unknown, unknown>,
    msg: unknown,
    options: Omit<SendOptions, "ack" | "signal" | "timeoutMs"> = {},
  ): Promise<{ node: string; error: unknown }[]> {
    return this.#core.delivery.sendMany(to, endpointName(endpoint), msg, options);
  }

  /**
   * Calls `endpoint` on node `to` and resolves with its handler's return value.
   *
   * @throws {UnknownNodeError} `to` is not a member.
   * @throws {NodeDownError} `to` is down, or went down before replying.
   * @throws {UnknownEndpointError} `to` has no such endpoint.
   * @throws {RemoteHandlerError} the handler threw.
   * @throws {CallTimeoutError} no reply within `timeoutMs` (`Infinity`: never).
   * @throws {ValidationError} the endpoint's schema refused `msg` (the handler did not run).
   */
  call<Req, Res>(
    to: string,
    endpoint: Endpoint<Req, Res>,
    msg: Req,
    options?: CallOptions,
  ): Promise<Res>;
  /** Calls the endpoint named `endpoint` on node `to` (as above). */
  call(to: string, endpoint: string, msg: unknown, options?: CallOptions): Promise<unknown>;
  call(
    to: string,
    ep: string | Endpoint<unknown, unknown>,
    msg: unknown,
    options: CallOptions = {},
  ): Promise<unknown> {
    const endpoint = typeof ep === "string" ? ep : endpointName(ep);
    if (this.#core.callObservers.size === 0) {
      return this.#core.delivery.call(to, endpoint, msg, options);
    }
    const t0 = this.#core.clock.now();
    const seen = (error: unknown) => {
      const ms = this.#core.clock.now() - t0;
      for (const fn of this.#core.callObservers) {
        try {
          fn({ to, endpoint, ms, error });
        } catch (e) {
          this.#core.log("error", "call observer threw", undefined, e);
        }
      }
    };
    const p = this.#core.delivery.call(to, endpoint, msg, options);
    p.then(() => seen(undefined), (e) => seen(e ?? new Error("call failed")));
    return p;
  }

  /**
   * Calls `fn` when each call this node makes ends, with its duration and its
   * error (undefined on success); metrics use it. Returns a function that
   * removes the observer. Without observers a call pays nothing for this.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * await using a = await Node.start({ name: "a", cookie: "c" });
   * a.register("echo", (m) => m);
   * const off = a.observeCalls((c) => console.log(c.endpoint, c.error === undefined));
   * await a.call("a", "echo", 1); // echo true
   * off();
   * ```
   */
  observeCalls(fn: CallObserver): () => void {
    if (typeof fn !== "function") throw new TypeError("call observer must be a function");
    // A fresh wrapper: the same function observed twice is called twice, removed once each.
    const entry: CallObserver = (c) => fn(c);
    this.#core.callObservers.add(entry);
    return () => void this.#core.callObservers.delete(entry);
  }

  /**
   * Drops all traffic to and from the named nodes at this node, until
   * {@linkcode Node.resolvePartition} or until `ttlMs` elapses. Failure
   * detection then sees them down on both sides. Returns a reference.
   */
  injectPartition(nodes: string | readonly string[], options: { ttlMs?: number } = {}): number {
    this.#core.assertOpen();
    return this.#core.partitions.inject(nodes, options);
  }

  /** Heals a partition. Returns false for an unknown reference. */
  resolvePartition(ref: number): boolean {
    return this.#core.partitions.resolve(ref);
  }

  /** The partitions in force. */
  partitions(): PartitionInfo[] {
    return this.#core.partitions.list();
  }

  /**
   * Stops the node: closes the listener and every connection and rejects what
   * is pending with {@linkcode ClosedError}. Members see it down, not gone; a
   * restart under the same name replaces it. Idempotent.
   */
  async close(): Promise<void> {
    await this.#discovery?.close();
    return await this.#core.close();
  }

  /** Same as {@linkcode Node.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
