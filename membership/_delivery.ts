// Delivery: sends (fire-and-forget, acknowledged, labelled, routed), fan-outs
// and calls, and what arrives on a connection. It composes the endpoints, the
// acknowledged sends, the calls, the waits for opening connections and the
// router. Module-private: Node composes it.

import { checkSendable, encodeForWire } from "../base/codec.ts";
import { timeoutOption } from "../base/options.ts";
import { Tag, type WireMessage } from "./wire.ts";
import {
  type ClosedError,
  ClosedError as Closed,
  FrameTooLargeError,
  NodeDownError,
  QueueFullError,
  UnknownNodeError,
} from "./errors.ts";
import type { Link } from "./_link.ts";
import { DEFAULT_CHANNEL, logAs, type NodeConfig } from "./_config.ts";
import type { Peer, Peers } from "./_peers.ts";
import type { CallOptions, Handler, SendOptions } from "./messaging.ts";
import type { NodeSpec } from "./spec.ts";
import { Acks } from "./_acks.ts";
import { Calls } from "./_calls.ts";
import type { Schema } from "../base/schema.ts";
import { CAUSAL_ENDPOINT, checkEndpoint, Endpoints } from "./_endpoints.ts";
import { OpeningWaits } from "./_opening.ts";
import { ROUTE_ENDPOINT, Router } from "./_routing.ts";
import { fanOut, type FanOutHost, monoKey } from "./_fanout.ts";
import {
  CALL_OPTIONS,
  checkKey,
  checkLabel,
  checkOptionKeys,
  checkTransitive,
  SEND_MANY_OPTIONS,
  SEND_OPTIONS,
} from "./_send_options.ts";

/** Every fire-and-forget send that needs no waiting returns this one settled promise (none made per send). */
const RESOLVED: Promise<void> = Promise.resolve();

/** Counters kept by the delivery layer (part of NodeStats). */
export interface DeliveryCounters {
  sendDrops: number;
  /** Acknowledged sends that failed (timed out, refused, peer gone), awaited or not. */
  ackFailures: number;
}

/** What the delivery layer needs from its node. */
export interface DeliveryHooks {
  isPartitioned: (name: string) => boolean;
  isOpen: () => boolean;
  isMember: (name: string) => boolean;
  /** A peer for a node this node knows but keeps no connection to (a direct connection). */
  reach?: (name: string) => Peer | undefined;
  /** True for an overlay neighbour (a peer that is not a direct connection). */
  neighbour?: (name: string) => boolean;
  /** True under a partial view (transitive sends route through the overlay). */
  partial?: () => boolean;
  /** The spec of a member this node knows (self included), for causal stamps. */
  specOf?: (name: string) => NodeSpec | undefined;
  /** This process's key in causal clocks (`name@incarnation`). */
  selfKey?: () => string;
}

export { checkEndpoint };

export class Delivery {
  readonly #cfg: NodeConfig;
  readonly #peers: Peers;
  readonly #hooks: DeliveryHooks;
  readonly #isPartitioned: (name: string) => boolean;
  readonly #isOpen: () => boolean;
  readonly endpoints: Endpoints;
  readonly acks: Acks;
  readonly calls: Calls;
  readonly #opening: OpeningWaits;
  readonly router: Router;
  readonly counters: DeliveryCounters = { sendDrops: 0, ackFailures: 0 };

  constructor(cfg: NodeConfig, peers: Peers, hooks: DeliveryHooks) {
    this.#cfg = cfg;
    this.#peers = peers;
    this.#hooks = hooks;
    this.#isPartitioned = hooks.isPartitioned;
    this.#isOpen = hooks.isOpen;
    this.endpoints = new Endpoints(cfg, hooks.selfKey?.() ?? `${cfg.name}@0`, hooks.isPartitioned);
    this.acks = new Acks(cfg, peers, hooks.isPartitioned);
    this.#opening = new OpeningWaits(cfg);
    this.calls = new Calls(cfg, peers, this.#opening, hooks.isPartitioned);
    // Routed messages travel on any link with a node, either way (a neighbour
    // whose own link to this node is up but not this node's to it, during an
    // overlay change, still carries them).
    const isNeighbour = (name: string) => this.#peers.anyLink(name) !== undefined;
    this.router = new Router({
      self: cfg.name,
      clock: cfg.clock,
      retransmitIntervalMs: cfg.retransmitIntervalMs,
      neighbours: () => this.#peers.linked(),
      isNeighbour,
      forward: (to, envelope) => {
        const link = this.#peers.anyLink(to);
        if (link === undefined || this.#isPartitioned(to)) return;
        const frame = this.#encodeFrame(
          [Tag.Msg, ROUTE_ENDPOINT, envelope],
          envelope,
          to,
          ROUTE_ENDPOINT,
        );
        try {
          this.#peers.counters.framesOut++;
          link.enqueue(frame)?.catch(() =>
            this.#log("debug", "routed message dropped: queue full", to)
          );
        } catch {
          this.#log("debug", "routed message dropped: connection closed", to);
        }
      },
      deliver: (endpoint, payload, ctx) => this.endpoints.deliver(endpoint, payload, ctx),
      answer: (endpoint, payload, ctx) => this.endpoints.answerRouted(endpoint, payload, ctx),
      dropped: (why) => this.#log("debug", `routed message dropped: ${why}`),
    }, cfg.routing);
    this.endpoints.setInternal(ROUTE_ENDPOINT, (msg, ctx) => this.router.receive(ctx.from, msg));
    this.fanOutHost = {
      cfg,
      peers,
      endpoints: this.endpoints,
      opening: this.#opening,
      counters: this.counters,
      isOpen: () => this.#isOpen(),
      isPartitioned: (name) => this.#isPartitioned(name),
      isMember: (name) => hooks.isMember(name),
      channelOf: (c) => this.channelOf(c),
      encodeFrame: (f, m, to, e) => this.#encodeFrame(f, m, to, e),
    };
  }

  /** The peer of `name`, opening a direct connection when the strategy allows one. */
  #peer(name: string): Peer | undefined {
    return this.#peers.peers.get(name) ?? this.#hooks.reach?.(name);
  }

  register(endpoint: string, handler: Handler, schema?: Schema): () => void {
    return this.endpoints.register(endpoint, handler, schema);
  }

  channelOf(channel: string | undefined): string {
    const c = channel ?? DEFAULT_CHANNEL;
    if (typeof c !== "string" || !this.#cfg.channels.has(c)) {
      throw new TypeError(`unknown channel ${JSON.stringify(c)}`);
    }
    return c;
  }

  /** Encodes a frame whose last element is the user's value; names the bad path on failure. */
  #encodeFrame(frame: unknown[], msg: unknown, to: string, endpoint: string): Uint8Array {
    let bytes: Uint8Array;
    try {
      bytes = encodeForWire(frame, "frame");
    } catch (e) {
      // The message is built only on failure (a send must not pay for it).
      const context = `cannot send to endpoint "${endpoint}" on node "${to}"`;
      encodeForWire(msg, "msg", context); // throws with the path inside msg when it is there
      throw new TypeError(`${context}: ${(e as Error).message}`);
    }
    if (bytes.length > this.#cfg.frameBytesMax) {
      throw new FrameTooLargeError(bytes.length, this.#cfg.frameBytesMax);
    }
    return bytes;
  }

  send(to: string, endpoint: string, msg: unknown, options: SendOptions): Promise<void> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("send options must be an object");
    }
    checkOptionKeys(options, SEND_OPTIONS, "send");
    const channel = this.channelOf(options.channel);
    checkEndpoint(endpoint);
    if (typeof to !== "string") throw new TypeError("node name must be a string");
    checkKey(options.partitionKey);
    checkTransitive(options.transitive);
    if (options.causalLabel !== undefined) {
      [endpoint, msg] = this.#labelled(to, endpoint, msg, options.causalLabel);
    }
    if (options.transitive === true && this.#routes(to)) {
      if (options.ack === true) {
        const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, this.#cfg.ackTimeoutMs);
        this.#encodeFrame([Tag.AckMsg, 0, endpoint, msg], msg, to, endpoint); // checks it fits
        return this.#counted(this.router.sendAcked(to, endpoint, msg, timeoutMs), to, endpoint);
      }
      this.#encodeFrame([Tag.Msg, endpoint, msg], msg, to, endpoint);
      if (!this.#isOpen()) return this.#drop();
      this.router.send(to, endpoint, msg);
      return RESOLVED;
    }
    if (options.ack === true) return this.#sendAcked(to, endpoint, msg, channel, options);
    const frame = this.#encodeFrame([Tag.Msg, endpoint, msg], msg, to, endpoint);
    if (!this.#isOpen()) return this.#drop();
    if (to === this.#cfg.name) {
      this.endpoints.deliverLocal(endpoint, frame, channel);
      return RESOLVED;
    }
    const peer = this.#peer(to);
    if (peer === undefined || this.#opening.down(peer)) return this.#drop();
    if (this.#opening.mustWait(peer)) {
      // Listed, its connection still opening: the send waits for it (in order), bounded by
      // connectTimeoutMs and the queue bound.
      const done = Promise.withResolvers<void>();
      const queued = this.#opening.wait(to, {
        bytes: frame.length,
        run: (p) => {
          if (this.#isPartitioned(to)) {
            this.#peers.counters.partitionDrops++;
            done.resolve();
          } else {
            done.resolve(this.#enqueue(p, channel, options.partitionKey, endpoint, frame));
          }
        },
        fail: () => {
          this.counters.sendDrops++;
          done.resolve();
        },
      });
      return queued ? done.promise : this.#drop();
    }
    if (this.#isPartitioned(to)) {
      this.#peers.counters.partitionDrops++;
      return RESOLVED;
    }
    return this.#enqueue(peer, channel, options.partitionKey, endpoint, frame);
  }

  /** Wraps a labelled message for causal delivery: the reserved endpoint, and the stamp with it. */
  #labelled(to: string, endpoint: string, msg: unknown, label: unknown): [string, unknown] {
    checkLabel(label);
    checkSendable(msg, "msg", `cannot send to endpoint "${endpoint}" on node "${to}"`);
    const spec = this.#hooks.specOf?.(to);
    // An unknown node is not stamped: the send fails as any send to it does.
    if (spec === undefined || !this.#isOpen()) return [endpoint, msg];
    const st = this.endpoints.causal.stamp(label, `${to}@${spec.incarnation}`);
    return [CAUSAL_ENDPOINT, [st.label, st.sender, st.ts, st.before, endpoint, msg]];
  }

  #sendAcked(
    to: string,
    endpoint: string,
    msg: unknown,
    channel: string,
    options: SendOptions,
  ): Promise<void> {
    const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, this.#cfg.ackTimeoutMs);
    let p: Promise<void>;
    // A peer with as many sends waiting as allowed: refuse before encoding (an overloaded
    // sender must not pay to encode what is refused anyway).
    if (this.acks.full(to)) p = Promise.reject(new QueueFullError(to, channel));
    else {
      const seq = this.acks.nextSeq();
      const frame = this.#encodeFrame([Tag.AckMsg, seq, endpoint, msg], msg, to, endpoint);
      if (!this.#isOpen()) p = Promise.reject(new Closed(`node "${this.#cfg.name}" is closed`));
      else if (options.signal?.aborted) p = Promise.reject(options.signal.reason);
      else if (to === this.#cfg.name) {
        this.endpoints.deliverLocal(endpoint, frame, channel);
        p = Promise.resolve();
      } else if (this.#peer(to) === undefined) p = Promise.reject(new UnknownNodeError(to));
      else p = this.acks.send(to, seq, endpoint, frame, channel, timeoutMs, options);
    }
    return this.#counted(p, to, endpoint);
  }

  /**
   * Fire-and-forget never kills the process: an acknowledged send's failure is
   * counted and logged here, and only a caller that awaits (or calls then) sees it.
   */
  #counted(p: Promise<void>, to: string, endpoint: string): Promise<void> {
    p.catch((e) => {
      this.counters.ackFailures++;
      this.#log("debug", `acknowledged send to endpoint "${endpoint}" failed`, to, e);
    });
    return p;
  }

  /** A peer's first connect attempt ended without it coming up. */
  unreached(name: string, error: unknown): void {
    this.#opening.fail(name, new NodeDownError(name, "could not be reached", { cause: error }));
  }

  /** True when a transitive message to `to` goes through the overlay (a partial view, not a neighbour). */
  #routes(to: string): boolean {
    if (to === this.#cfg.name || this.#hooks.partial?.() !== true) return false;
    const p = this.#peers.peers.get(to);
    return !(p?.up === true && (this.#hooks.neighbour?.(to) ?? true));
  }

  #drop(): Promise<void> {
    this.counters.sendDrops++;
    return RESOLVED;
  }

  #enqueue(
    peer: Peer,
    channel: string,
    key: string | number | undefined,
    endpoint: string,
    frame: Uint8Array,
  ): Promise<void> {
    try {
      const link = this.#peers.pick(peer, channel, key);
      this.#peers.counters.framesOut++;
      const waited = link.enqueue(frame, monoKey(endpoint, key));
      // Queued at once: the sender that awaits is paced at the high-water mark.
      if (waited === undefined) return link.drained();
      return waited.catch(() => void this.counters.sendDrops++);
    } catch {
      // Past the hard bound, or the link just closed: dropped, never a rejection.
      return this.#drop();
    }
  }

  sendMany(
    to: readonly string[],
    endpoint: string,
    msg: unknown,
    options: Omit<SendOptions, "ack" | "signal" | "timeoutMs">,
  ): Promise<{ node: string; error: unknown }[]> {
    // Not async: a broadcast calls this once per message, and most calls finish
    // here with nothing to wait for (one settled promise, no arrays made).
    let failures: { node: string; error: unknown }[] | undefined;
    let waits: Promise<void>[] | undefined;
    try {
      if (typeof options !== "object" || options === null) {
        throw new TypeError("sendMany options must be an object");
      }
      checkOptionKeys(options, SEND_MANY_OPTIONS, "sendMany");
      waits = fanOut(this.fanOutHost, to, endpoint, msg, options, undefined, (node, error) => {
        (failures ??= []).push({ node, error });
      });
    } catch (e) {
      return Promise.reject(e);
    }
    if (waits !== undefined) return Promise.all(waits).then(() => failures ?? []);
    return Promise.resolve(failures ?? []);
  }

  /** What a fan-out (`fanOut` in _fanout.ts) reads of this delivery layer; Plumtree's relay uses it too. */
  readonly fanOutHost: FanOutHost;

  call(to: string, endpoint: string, msg: unknown, options: CallOptions): Promise<unknown> {
    try {
      if (typeof options !== "object" || options === null) {
        throw new TypeError("call options must be an object");
      }
      checkOptionKeys(options, CALL_OPTIONS, "call");
      if (!this.#isOpen()) throw new Closed(`node "${this.#cfg.name}" is closed`);
      const channel = this.channelOf(options.channel);
      checkEndpoint(endpoint);
      checkKey(options.partitionKey);
      const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, this.#cfg.callTimeoutMs);
      options.signal?.throwIfAborted();
      if (typeof to !== "string") throw new TypeError("node name must be a string");
      checkTransitive(options.transitive);
      const id = this.calls.nextId();
      const frame = this.#encodeFrame([Tag.Call, id, endpoint, msg], msg, to, endpoint);
      if (to === this.#cfg.name) return this.endpoints.callLocal(endpoint, frame, channel);
      if (options.transitive === true && this.#routes(to)) {
        return this.router.call(to, endpoint, msg, timeoutMs);
      }
      const peer = this.#peer(to);
      if (peer === undefined) throw new UnknownNodeError(to);
      return this.calls.start(peer, id, endpoint, frame, channel, timeoutMs, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** A message that arrived on `link` (not liveness, not membership). */
  handle(m: WireMessage, link: Link, frame?: Uint8Array): void {
    switch (m.tag) {
      case Tag.Msg:
        this.endpoints.deliver(m.endpoint, m.payload, link.context, frame);
        return;
      case Tag.AckMsg:
        if (this.acks.received(m.seq, link)) {
          this.endpoints.deliver(m.endpoint, m.payload, link.context);
        }
        this.acks.acknowledge(m.seq, link);
        return;
      case Tag.Ack:
        this.acks.acknowledged(m.seq, link.peer);
        return;
      case Tag.Call:
        void this.endpoints.answer(m.id, m.endpoint, m.payload, link);
        return;
      case Tag.Reply:
        this.calls.replied(m.id, m.status, m.value, link);
        return;
    }
  }

  /**
   * A peer came up: what waited for its connection goes out (in order, before
   * anything else), then what waits for its acknowledgement goes out again.
   */
  peerUp(peer: Peer): void {
    this.#opening.flush(peer);
    this.acks.peerUp(peer);
  }

  /** A peer went down: its calls fail (acknowledged sends wait for it to come back). */
  peerDown(name: string, error: unknown): void {
    this.calls.failFor(
      name,
      () =>
        error instanceof Closed ? error : new NodeDownError(name, "went down", { cause: error }),
    );
  }

  /** A peer left or was removed: what waits for it can never complete. */
  peerDeparted(name: string, why: string): void {
    let error: NodeDownError | undefined;
    const reason = () => error ??= new NodeDownError(name, why);
    if (this.#opening.has(name)) this.#opening.fail(name, reason());
    this.calls.failFor(name, reason);
    this.acks.peerDeparted(name, reason);
  }

  close(error: ClosedError): void {
    this.#opening.close(error);
    this.router.close(error);
    this.endpoints.close();
    this.calls.close(error);
    this.acks.close(error);
  }

  #log(level: "debug" | "warn" | "error", msg: string, peer?: string, error?: unknown): void {
    logAs(this.#cfg, level, msg, peer, error);
  }
}
