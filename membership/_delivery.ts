// Delivery: endpoints, fire-and-forget and acknowledged sends, calls,
// retransmission and deduplication. Module-private: Node composes it.

import type { TimerId } from "../base/clock.ts";
import { checkSendable, decodeValue, encodeForWire, encodeValue } from "../base/codec.ts";
import { decodeMessage, ENDPOINT_NAME_BYTES_MAX, Tag, type WireMessage } from "./wire.ts";
import {
  AckTimeoutError,
  CallTimeoutError,
  ClosedError,
  FrameTooLargeError,
  NodeDownError,
  QueueFullError,
  RemoteHandlerError,
  UnknownEndpointError,
  UnknownNodeError,
} from "./errors.ts";
import type { Link } from "./_link.ts";
import { DEFAULT_CHANNEL, logAs, type NodeConfig } from "./_config.ts";
import { timeoutOption } from "../base/options.ts";
import type { Peer, Peers } from "./_peers.ts";
import type { CallOptions, Handler, MessageContext, SendOptions } from "./messaging.ts";
import type { RelayHandler } from "./relay.ts";
import { type CausalMessage, CausalOrder, parseStamp } from "./_causal.ts";
import { ROUTE_ENDPOINT, Router } from "./_routing.ts";
import type { NodeSpec } from "./spec.ts";

/** The reserved endpoint of labelled (causally ordered) messages. */
export const CAUSAL_ENDPOINT = "murmur.causal";

/** A labelled message waiting for causal delivery. */
interface Labelled {
  endpoint: string;
  payload: unknown;
  ctx: MessageContext;
}

/** Every fire-and-forget send that needs no waiting returns this one settled promise (none made per send). */
const RESOLVED: Promise<void> = Promise.resolve();

/** Counters kept by the delivery layer (part of NodeStats). */
export interface DeliveryCounters {
  sendDrops: number;
  retransmits: number;
  duplicates: number;
  /** Acknowledged sends that failed (timed out, refused, peer gone), awaited or not. */
  ackFailures: number;
}

/**
 * Something that waits for a member's connection to open (a send, a call's
 * frame): `run` once it is up, in the order they came; `fail` when it does not
 * come up (the connect failed, the member went, or the wait passed
 * `connectTimeoutMs`).
 */
interface Waiting {
  run(peer: Peer): void;
  fail(error: unknown): void;
  bytes: number;
}

/** What waits for one member's connection to open, and the deadline of the wait. */
interface Opening {
  items: Waiting[];
  bytes: number;
  timer: TimerId;
}

/** The keys `send` takes (anything else is refused by name). */
const SEND_OPTIONS: ReadonlySet<string> = new Set([
  "channel",
  "partitionKey",
  "ack",
  "timeoutMs",
  "signal",
  "causalLabel",
  "transitive",
]);
/** The keys `call` takes. */
const CALL_OPTIONS: ReadonlySet<string> = new Set([
  "timeoutMs",
  "channel",
  "partitionKey",
  "signal",
  "transitive",
]);
/** The keys `sendMany` takes. */
const SEND_MANY_OPTIONS: ReadonlySet<string> = new Set(["channel", "partitionKey"]);

/** Refuses an options object with a key `known` does not hold, naming it. */
export function checkOptionKeys(options: object, known: ReadonlySet<string>, what: string): void {
  for (const k in options) {
    if (known.has(k)) continue;
    const hint = k === "clock"
      ? " (causal delivery keeps its own vector clocks per label: pass causalLabel)"
      : "";
    throw new TypeError(
      `unknown ${what} option ${JSON.stringify(k)}${hint}; known: ${[...known].join(", ")}`,
    );
  }
}

interface PendingCall {
  node: string;
  endpoint: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

interface PendingAck {
  node: string;
  endpoint: string;
  frame: Uint8Array;
  channel: string;
  key: string | number | undefined;
  lastSentAt: number;
  admitted: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

interface Deduper {
  seen: Set<number>;
  order: number[];
  head: number;
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

export function checkEndpoint(endpoint: unknown): asserts endpoint is string {
  if (
    typeof endpoint !== "string" || endpoint.length === 0 ||
    endpoint.length > ENDPOINT_NAME_BYTES_MAX
  ) {
    throw new TypeError(
      `endpoint name must be a string of 1-${ENDPOINT_NAME_BYTES_MAX} characters, got ${
        typeof endpoint === "string" ? JSON.stringify(endpoint.slice(0, 40)) : typeof endpoint
      }`,
    );
  }
}

function monoKey(endpoint: string, key: string | number | undefined): string {
  return key === undefined ? endpoint : `${endpoint}\u0000${key}`;
}

export class Delivery {
  readonly #cfg: NodeConfig;
  readonly #peers: Peers;
  readonly #isPartitioned: (name: string) => boolean;
  readonly #isOpen: () => boolean;
  readonly #isMember: (name: string) => boolean;
  /** A peer for a node this node knows but keeps no connection to (a direct connection), or undefined. */
  readonly #reach: (name: string) => Peer | undefined;
  readonly #hooks: DeliveryHooks;
  readonly handlers = new Map<string, Handler>();
  /** murmur's own endpoints (causal delivery, routing): not the user's to replace. */
  readonly #internal = new Map<string, RelayHandler>();
  readonly causal: CausalOrder<Labelled>;
  #causalTimer: { id: TimerId; at: number } | undefined;
  readonly router: Router;
  readonly #unregisterListeners = new Set<(endpoint: string) => void>();
  readonly #calls = new Map<number, PendingCall>();
  readonly #acks = new Map<number, PendingAck>();
  /** Bytes of admitted unacknowledged sends, per peer. */
  readonly #ackBytes = new Map<string, number>();
  /** Acknowledged sends waiting for room under `ackBytesMax`, per peer. */
  readonly #ackWaiters = new Map<string, PendingAck[]>();
  readonly #dedup = new Map<string, Deduper>();
  /** Sends and calls waiting for a member's connection to open, by member. */
  readonly #opening = new Map<string, Opening>();
  #nextCallId = 1;
  #nextAckSeq = 1;
  readonly counters: DeliveryCounters = {
    sendDrops: 0,
    retransmits: 0,
    duplicates: 0,
    ackFailures: 0,
  };

  constructor(cfg: NodeConfig, peers: Peers, hooks: DeliveryHooks) {
    this.#cfg = cfg;
    this.#peers = peers;
    this.#hooks = hooks;
    this.#isPartitioned = hooks.isPartitioned;
    this.#isOpen = hooks.isOpen;
    this.#isMember = hooks.isMember;
    this.#reach = hooks.reach ?? (() => undefined);
    this.causal = new CausalOrder<Labelled>(hooks.selfKey?.() ?? `${cfg.name}@0`, cfg.causal);
    this.#internal.set(CAUSAL_ENDPOINT, (msg, ctx) => this.#receiveLabelled(msg, ctx));
    this.router = new Router({
      self: cfg.name,
      clock: cfg.clock,
      retransmitIntervalMs: cfg.retransmitIntervalMs,
      neighbours: () => {
        const out: string[] = [];
        for (const p of this.#peers.peers.values()) {
          if (p.up && (hooks.neighbour?.(p.name) ?? true)) out.push(p.name);
        }
        return out;
      },
      isNeighbour: (name) =>
        this.#peers.peers.get(name)?.up === true && (hooks.neighbour?.(name) ?? true),
      forward: (to, envelope) => {
        const peer = this.#peers.peers.get(to);
        if (peer === undefined || !peer.up || this.#isPartitioned(to)) return;
        const frame = this.#encodeFrame(
          [Tag.Msg, ROUTE_ENDPOINT, envelope],
          envelope,
          to,
          ROUTE_ENDPOINT,
        );
        void this.#enqueue(peer, DEFAULT_CHANNEL, undefined, ROUTE_ENDPOINT, frame);
      },
      deliver: (endpoint, payload, ctx) => this.#deliver(endpoint, payload, ctx),
      answer: (endpoint, payload, ctx) => this.#answerRouted(endpoint, payload, ctx),
      dropped: (why) => this.#log("debug", `routed message dropped: ${why}`),
    }, cfg.routing);
    this.#internal.set(ROUTE_ENDPOINT, (msg, ctx) => this.router.receive(ctx.from, msg));
  }

  /** The peer of `name`, opening a direct connection when the strategy allows one. */
  #peer(name: string): Peer | undefined {
    return this.#peers.peers.get(name) ?? this.#reach(name);
  }

  /** Unacknowledged bytes, all peers together. */
  get ackBytes(): number {
    let n = 0;
    for (const b of this.#ackBytes.values()) n += b;
    return n;
  }

  get acksOutstanding(): number {
    return this.#acks.size;
  }

  get callsOutstanding(): number {
    return this.#calls.size;
  }

  // ------------------------------------------------------------- endpoints

  register(endpoint: string, handler: Handler): () => void {
    checkEndpoint(endpoint);
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    if (this.#internal.has(endpoint)) {
      throw new TypeError(`endpoint "${endpoint}" is reserved by murmur`);
    }
    if (this.handlers.has(endpoint)) {
      throw new TypeError(`endpoint "${endpoint}" is already registered`);
    }
    this.handlers.set(endpoint, handler);
    return () => {
      if (this.handlers.get(endpoint) === handler) this.unregister(endpoint);
    };
  }

  unregister(endpoint: string): boolean {
    if (!this.handlers.delete(endpoint)) return false;
    for (const fn of [...this.#unregisterListeners]) {
      try {
        fn(endpoint);
      } catch (e) {
        this.#log("error", "onUnregister callback threw", undefined, e);
      }
    }
    return true;
  }

  onUnregister(fn: (endpoint: string) => void): () => void {
    if (typeof fn !== "function") throw new TypeError("callback must be a function");
    this.#unregisterListeners.add(fn);
    return () => void this.#unregisterListeners.delete(fn);
  }

  // ------------------------------------------------------------- sending

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
    if (options.transitive !== undefined && typeof options.transitive !== "boolean") {
      throw new TypeError(`transitive must be a boolean, got ${typeof options.transitive}`);
    }
    if (options.causalLabel !== undefined) {
      const label = options.causalLabel;
      if (typeof label !== "string" || label.length === 0 || label.length > 256) {
        throw new TypeError(
          `causalLabel must be a string of 1-256 characters, got ${
            typeof label === "string" ? JSON.stringify(label.slice(0, 40)) : typeof label
          }`,
        );
      }
      checkSendable(msg, "msg", `cannot send to endpoint "${endpoint}" on node "${to}"`);
      const spec = this.#hooks.specOf?.(to);
      if (spec !== undefined && this.#isOpen()) {
        const st = this.causal.stamp(label, `${to}@${spec.incarnation}`);
        msg = [st.label, st.sender, st.ts, st.before, endpoint, msg];
        endpoint = CAUSAL_ENDPOINT;
      }
      // An unknown node is not stamped: the send below fails as any send to it does.
    }
    if (options.transitive === true && this.#routes(to)) {
      if (options.ack === true) {
        const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, this.#cfg.ackTimeoutMs);
        this.#encodeFrame([Tag.AckMsg, 0, endpoint, msg], msg, to, endpoint); // checks it fits
        const p = this.router.sendAcked(to, endpoint, msg, timeoutMs);
        p.catch((e) => {
          this.counters.ackFailures++;
          this.#log("debug", `acknowledged send to endpoint "${endpoint}" failed`, to, e);
        });
        return p;
      }
      this.#encodeFrame([Tag.Msg, endpoint, msg], msg, to, endpoint);
      if (!this.#isOpen()) return this.#drop();
      this.router.send(to, endpoint, msg);
      return RESOLVED;
    }
    if (options.ack === true) {
      const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, this.#cfg.ackTimeoutMs);
      let p: Promise<void>;
      // A peer with as many sends waiting as allowed: refuse before encoding (an overloaded
      // sender must not pay to encode what is refused anyway).
      if ((this.#ackWaiters.get(to)?.length ?? 0) >= this.#cfg.link.sendWaitersMax) {
        p = Promise.reject(new QueueFullError(to, channel));
      } else {
        const seq = this.#nextAckSeq++;
        const frame = this.#encodeFrame([Tag.AckMsg, seq, endpoint, msg], msg, to, endpoint);
        p = this.#sendAcked(to, seq, endpoint, frame, channel, timeoutMs, options);
      }
      // Fire-and-forget never kills the process: the failure is counted and logged here,
      // and only a caller that awaits (or calls then) sees the rejection.
      p.catch((e) => {
        this.counters.ackFailures++;
        this.#log("debug", `acknowledged send to endpoint "${endpoint}" failed`, to, e);
      });
      return p;
    }
    const frame = this.#encodeFrame([Tag.Msg, endpoint, msg], msg, to, endpoint);
    if (!this.#isOpen()) return this.#drop();
    if (to === this.#cfg.name) {
      this.#deliverLocal(endpoint, frame, channel);
      return RESOLVED;
    }
    const peer = this.#peer(to);
    if (peer === undefined) return this.#drop();
    if (!peer.up || this.#opening.has(to)) {
      // Listed, its connection still opening: the send waits for it (in order), bounded by
      // connectTimeoutMs and the queue bound. A member that is really down: dropped.
      if (!peer.opening && !this.#opening.has(to)) return this.#drop();
      const done = Promise.withResolvers<void>();
      const queued = this.#wait(to, {
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
      if (!queued) return this.#drop();
      return done.promise;
    }
    if (this.#isPartitioned(to)) {
      this.#peers.counters.partitionDrops++;
      return RESOLVED;
    }
    return this.#enqueue(peer, channel, options.partitionKey, endpoint, frame);
  }

  /**
   * Queues `w` until `name`'s connection is up; false when the wait is full
   * (`sendQueueBytesMax` bytes already wait for it).
   */
  #wait(name: string, w: Waiting): boolean {
    let o = this.#opening.get(name);
    if (o !== undefined && o.bytes + w.bytes > this.#cfg.link.sendQueueBytesMax) return false;
    if (o === undefined) {
      const { clock, connectTimeoutMs } = this.#cfg;
      const timer = clock.setTimeout(
        () =>
          this.#failOpening(
            name,
            new NodeDownError(name, `not connected within ${connectTimeoutMs} ms`),
          ),
        connectTimeoutMs,
      );
      this.#opening.set(name, o = { items: [], bytes: 0, timer });
    }
    o.items.push(w);
    o.bytes += w.bytes;
    return true;
  }

  /** `name`'s connection is up: what waited for it goes out, in order. */
  #flushOpening(peer: Peer): void {
    const o = this.#opening.get(peer.name);
    if (o === undefined) return;
    this.#opening.delete(peer.name);
    this.#cfg.clock.clearTimeout(o.timer);
    for (const w of o.items) w.run(peer);
  }

  /** `name`'s connection did not open: what waited for it fails. */
  #failOpening(name: string, error: unknown): void {
    const o = this.#opening.get(name);
    if (o === undefined) return;
    this.#opening.delete(name);
    this.#cfg.clock.clearTimeout(o.timer);
    for (const w of o.items) w.fail(error);
  }

  /** A peer's first connect attempt ended without it coming up. */
  unreached(name: string, error: unknown): void {
    this.#failOpening(name, new NodeDownError(name, "could not be reached", { cause: error }));
  }

  /** True when a transitive message to `to` goes through the overlay (a partial view, not a neighbour). */
  #routes(to: string): boolean {
    if (to === this.#cfg.name || this.#hooks.partial?.() !== true) return false;
    const p = this.#peers.peers.get(to);
    return !(p?.up === true && (this.#hooks.neighbour?.(to) ?? true));
  }

  /** A labelled message arrived: delivered now (with what it unblocks), or it waits. */
  #receiveLabelled(raw: unknown, ctx: MessageContext): void {
    const v = raw as unknown[];
    if (!Array.isArray(v) || v.length !== 6 || typeof v[4] !== "string") {
      this.#log("warn", "malformed labelled message dropped", ctx.from);
      return;
    }
    let stamp;
    try {
      stamp = parseStamp(v, this.#cfg.causal);
    } catch (e) {
      this.#log("warn", "malformed labelled message dropped", ctx.from, e);
      return;
    }
    const m: CausalMessage<Labelled> = {
      stamp,
      item: { endpoint: v[4], payload: v[5], ctx },
      at: this.#cfg.clock.now(),
    };
    const ready = this.causal.receive(
      m,
      (why) => this.#log("warn", `labelled message of "${stamp.label}" dropped: ${why}`, ctx.from),
    );
    for (const r of ready) this.#deliver(r.item.endpoint, r.item.payload, r.item.ctx);
    this.#armCausalTimer();
  }

  /** Wakes up when the oldest waiting labelled message passes `causalWaitMs`. */
  #armCausalTimer(): void {
    const at = this.causal.nextDeadline();
    if (at === undefined || !Number.isFinite(at)) return;
    if (this.#causalTimer !== undefined && this.#causalTimer.at <= at) return;
    const { clock } = this.#cfg;
    if (this.#causalTimer !== undefined) clock.clearTimeout(this.#causalTimer.id);
    const id = clock.setTimeout(() => {
      this.#causalTimer = undefined;
      for (const r of this.causal.expire(clock.now())) {
        this.#log(
          "warn",
          `labelled message of "${r.stamp.label}" delivered after its wait: predecessors skipped`,
          r.item.ctx.from,
        );
        this.#deliver(r.item.endpoint, r.item.payload, r.item.ctx);
      }
      this.#armCausalTimer();
    }, Math.max(0, at - clock.now()));
    this.#causalTimer = { id, at };
  }

  /** A routed call arrived here: the handler's answer as `[status, value]`. */
  async #answerRouted(
    endpoint: string,
    payload: unknown,
    ctx: MessageContext,
  ): Promise<[0 | 1 | 2, unknown]> {
    const h = this.handlers.get(endpoint);
    if (h === undefined) return [1, null];
    let value: unknown;
    try {
      value = await h(payload, ctx);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      return [2, [err.name, err.message.slice(0, 4096)]];
    }
    try {
      encodeForWire(value, "reply", `reply of endpoint "${endpoint}"`);
    } catch (e) {
      return [2, ["TypeError", `reply could not be sent: ${(e as Error).message}`]];
    }
    return [0, value];
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
      waits = this.fanOut(to, endpoint, msg, options, undefined, (node, error) => {
        (failures ??= []).push({ node, error });
      });
    } catch (e) {
      return Promise.reject(e);
    }
    if (waits !== undefined) return Promise.all(waits).then(() => failures ?? []);
    return Promise.resolve(failures ?? []);
  }

  /**
   * The work of `sendMany`, without its promise: `fail` is called for each
   * destination that cannot be sent to (later, for a send that waited for room
   * and then failed); the sends that wait for room are returned, if any (they
   * never reject). Throws a `TypeError` on bad arguments or an unsendable `msg`.
   * `encoded`: the frame `[Tag.Msg, endpoint, msg]` already encoded (a relay
   * forwarding what it received, see `#deliver`); `msg` is then not encoded again.
   */
  fanOut(
    to: readonly string[],
    endpoint: string,
    msg: unknown,
    options: Omit<SendOptions, "ack" | "signal" | "timeoutMs">,
    encoded: Uint8Array | undefined,
    fail: (node: string, error: unknown) => void,
  ): Promise<void>[] | undefined {
    if (!Array.isArray(to)) throw new TypeError("to must be an array of node names");
    const channel = this.channelOf(options.channel);
    checkEndpoint(endpoint);
    checkKey(options.partitionKey);
    let waits: Promise<void>[] | undefined;
    // Bytes over this node's frame limit are encoded again (and refused there).
    let frame = encoded !== undefined && encoded.length <= this.#cfg.frameBytesMax
      ? encoded
      : undefined;
    for (const name of to) {
      if (!this.#isOpen()) {
        fail(name, new ClosedError(`node "${this.#cfg.name}" is closed`));
        continue;
      }
      if (name === this.#cfg.name) {
        frame ??= this.#encodeFrame([Tag.Msg, endpoint, msg], msg, "*", endpoint);
        this.#deliverLocal(endpoint, frame, channel);
        continue;
      }
      const peer = this.#peers.peers.get(name);
      if (
        peer !== undefined && (!peer.up || this.#opening.has(name)) &&
        (peer.opening || this.#opening.has(name))
      ) {
        // Its connection is opening: this copy waits for it (see send).
        frame ??= this.#encodeFrame([Tag.Msg, endpoint, msg], msg, "*", endpoint);
        const f = frame, key = options.partitionKey;
        const done = Promise.withResolvers<void>();
        const queued = this.#wait(name, {
          bytes: f.length,
          run: (p) => {
            if (this.#isPartitioned(name)) {
              this.#peers.counters.partitionDrops++;
              return done.resolve();
            }
            try {
              this.#peers.counters.framesOut++;
              const w = this.#peers.pick(p, channel, key).enqueue(f, monoKey(endpoint, key));
              if (w === undefined) return done.resolve();
              w.then(() => done.resolve(), (error) => {
                this.counters.sendDrops++;
                fail(name, error);
                done.resolve();
              });
            } catch (error) {
              this.counters.sendDrops++;
              fail(name, error);
              done.resolve();
            }
          },
          fail: (error) => {
            this.counters.sendDrops++;
            fail(name, error);
            done.resolve();
          },
        });
        if (queued) (waits ??= []).push(done.promise);
        else {
          this.counters.sendDrops++;
          fail(name, new QueueFullError(name, channel));
        }
        continue;
      }
      if (peer === undefined || !peer.up) {
        this.counters.sendDrops++;
        fail(name, this.#isMember(name) ? new NodeDownError(name) : new UnknownNodeError(name));
        continue;
      }
      if (this.#isPartitioned(name)) {
        this.#peers.counters.partitionDrops++;
        continue;
      }
      try {
        const link = this.#peers.pick(peer, channel, options.partitionKey);
        this.#peers.counters.framesOut++;
        frame ??= this.#encodeFrame([Tag.Msg, endpoint, msg], msg, "*", endpoint);
        const w = link.enqueue(frame, monoKey(endpoint, options.partitionKey));
        if (w !== undefined) {
          (waits ??= []).push(w.catch((error) => {
            this.counters.sendDrops++;
            fail(name, error);
          }));
        }
      } catch (error) {
        if (error instanceof TypeError) throw error;
        this.counters.sendDrops++;
        fail(name, error);
      }
    }
    return waits;
  }

  #sendAcked(
    to: string,
    seq: number,
    endpoint: string,
    frame: Uint8Array,
    channel: string,
    timeoutMs: number,
    options: SendOptions,
  ): Promise<void> {
    if (!this.#isOpen()) {
      return Promise.reject(new ClosedError(`node "${this.#cfg.name}" is closed`));
    }
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    if (to === this.#cfg.name) {
      this.#deliverLocal(endpoint, frame, channel);
      return Promise.resolve();
    }
    if (this.#peer(to) === undefined) return Promise.reject(new UnknownNodeError(to));
    if (this.#acks.size >= this.#cfg.acksOutstandingMax) {
      return Promise.reject(new QueueFullError(to, channel));
    }
    const waiting = this.#ackWaiters.get(to);
    const room = (this.#ackBytes.get(to) ?? 0) + frame.length <= this.#cfg.ackBytesMax &&
      (waiting === undefined || waiting.length === 0);
    if (!room && (waiting?.length ?? 0) >= this.#cfg.link.sendWaitersMax) {
      return Promise.reject(new QueueFullError(to, channel));
    }
    return new Promise<void>((resolve, reject) => {
      const { clock } = this.#cfg;
      const onAbort = () => settle(() => reject(options.signal!.reason));
      const timer: { id?: TimerId } = {};
      const a: PendingAck = {
        node: to,
        endpoint,
        frame,
        channel,
        key: options.partitionKey,
        lastSentAt: clock.now(),
        admitted: false,
        resolve: () => settle(resolve),
        reject: (e) => settle(() => reject(e)),
        cleanup: () => {
          this.#acks.delete(seq);
          if (timer.id !== undefined) clock.clearTimeout(timer.id);
          options.signal?.removeEventListener("abort", onAbort);
          if (a.admitted) {
            a.admitted = false;
            this.#ackBytes.set(to, (this.#ackBytes.get(to) ?? 0) - frame.length);
            this.#admitWaiting(to);
          } else {
            const ws = this.#ackWaiters.get(to);
            const i = ws?.indexOf(a) ?? -1;
            if (i >= 0) ws!.splice(i, 1);
          }
        },
      };
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        a.cleanup();
        f();
      };
      timer.id = clock.setTimeout(
        () => a.reject(new AckTimeoutError(to, endpoint, timeoutMs)),
        timeoutMs,
      );
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#acks.set(seq, a);
      if (room) this.#admit(a);
      else {
        let ws = this.#ackWaiters.get(to);
        if (ws === undefined) this.#ackWaiters.set(to, ws = []);
        ws.push(a);
      }
    });
  }

  #admit(a: PendingAck): void {
    a.admitted = true;
    this.#ackBytes.set(a.node, (this.#ackBytes.get(a.node) ?? 0) + a.frame.length);
    const peer = this.#peers.peers.get(a.node);
    if (peer?.up) this.#transmitAck(peer, a);
  }

  #admitWaiting(name: string): void {
    const ws = this.#ackWaiters.get(name);
    while (ws !== undefined && ws.length > 0) {
      const next = ws[0]!;
      if ((this.#ackBytes.get(name) ?? 0) + next.frame.length > this.#cfg.ackBytesMax) return;
      ws.shift();
      this.#admit(next);
    }
    if (ws !== undefined && ws.length === 0) this.#ackWaiters.delete(name);
  }

  #transmitAck(peer: Peer, a: PendingAck): void {
    a.lastSentAt = this.#cfg.clock.now();
    if (this.#isPartitioned(peer.name)) {
      this.#peers.counters.partitionDrops++;
      return;
    }
    try {
      // Retransmissions use the control path: they must not wait behind the bound.
      this.#peers.pick(peer, a.channel, a.key).enqueueControl(a.frame);
      this.#peers.counters.framesOut++;
    } catch { /* the retransmit timer tries again */ }
  }

  call(to: string, endpoint: string, msg: unknown, options: CallOptions): Promise<unknown> {
    try {
      if (typeof options !== "object" || options === null) {
        throw new TypeError("call options must be an object");
      }
      checkOptionKeys(options, CALL_OPTIONS, "call");
      if (!this.#isOpen()) throw new ClosedError(`node "${this.#cfg.name}" is closed`);
      const channel = this.channelOf(options.channel);
      checkEndpoint(endpoint);
      checkKey(options.partitionKey);
      const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, this.#cfg.callTimeoutMs);
      options.signal?.throwIfAborted();
      if (typeof to !== "string") throw new TypeError("node name must be a string");
      if (options.transitive !== undefined && typeof options.transitive !== "boolean") {
        throw new TypeError(`transitive must be a boolean, got ${typeof options.transitive}`);
      }
      const id = this.#nextCallId++;
      const frame = this.#encodeFrame([Tag.Call, id, endpoint, msg], msg, to, endpoint);
      if (to === this.#cfg.name) return this.#callLocal(endpoint, frame, channel);
      if (options.transitive === true && this.#routes(to)) {
        return this.router.call(to, endpoint, msg, timeoutMs);
      }
      const peer = this.#peer(to);
      if (peer === undefined) throw new UnknownNodeError(to);
      const opening = !peer.up || this.#opening.has(to);
      // A member whose connection is still opening: the call waits for it (its timeout runs).
      if (opening && !peer.opening && !this.#opening.has(to)) throw new NodeDownError(to);
      if (this.#calls.size >= this.#cfg.callsOutstandingMax) throw new QueueFullError(to, channel);
      return new Promise<unknown>((resolve, reject) => {
        const { clock } = this.#cfg;
        const onAbort = () => settle(() => reject(options.signal!.reason));
        const timer: { id?: TimerId } = {};
        const pending: PendingCall = {
          node: to,
          endpoint,
          resolve,
          reject,
          cleanup: () => {
            this.#calls.delete(id);
            if (timer.id !== undefined) clock.clearTimeout(timer.id);
            options.signal?.removeEventListener("abort", onAbort);
          },
        };
        const settle = (f: () => void) => {
          if (!this.#calls.has(id)) return;
          pending.cleanup();
          f();
        };
        timer.id = clock.setTimeout(
          () => settle(() => reject(new CallTimeoutError(to, endpoint, timeoutMs))),
          timeoutMs,
        );
        options.signal?.addEventListener("abort", onAbort, { once: true });
        this.#calls.set(id, pending);
        const transmit = (p: Peer) => {
          if (!this.#calls.has(id)) return;
          if (this.#isPartitioned(to)) {
            this.#peers.counters.partitionDrops++;
            return;
          }
          try {
            this.#peers.counters.framesOut++;
            const waited = this.#peers.pick(p, channel, options.partitionKey).enqueue(frame);
            waited?.catch((e) => settle(() => reject(e)));
          } catch (e) {
            settle(() => reject(e));
          }
        };
        if (!opening) return transmit(peer);
        const queued = this.#wait(to, {
          bytes: frame.length,
          run: transmit,
          fail: (e) => settle(() => reject(e)),
        });
        if (!queued) settle(() => reject(new QueueFullError(to, channel)));
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // ------------------------------------------------------------- receiving

  handle(m: WireMessage, link: Link, frame?: Uint8Array): void {
    switch (m.tag) {
      case Tag.Msg:
        this.#deliver(m.endpoint, m.payload, link.context, frame);
        return;
      case Tag.AckMsg: {
        // Deduplicated per sending process: a restart (new instance) starts afresh.
        const key = `${link.peer}\u0000${link.instance}`;
        let d = this.#dedup.get(key);
        if (d === undefined) {
          for (const k of this.#dedup.keys()) {
            if (k.startsWith(`${link.peer}\u0000`)) this.#dedup.delete(k);
          }
          this.#dedup.set(key, d = { seen: new Set(), order: [], head: 0 });
        }
        if (d.seen.has(m.seq)) {
          this.counters.duplicates++;
        } else {
          d.seen.add(m.seq);
          d.order.push(m.seq);
          if (d.order.length - d.head > this.#cfg.dedupWindow) d.seen.delete(d.order[d.head++]!);
          if (d.head > 4096 && d.head * 2 > d.order.length) {
            d.order = d.order.slice(d.head);
            d.head = 0;
          }
          this.#deliver(m.endpoint, m.payload, link.context);
        }
        if (!this.#isPartitioned(link.peer)) link.enqueueControl(encodeValue([Tag.Ack, m.seq]));
        return;
      }
      case Tag.Ack: {
        const a = this.#acks.get(m.seq);
        if (a !== undefined && a.node === link.peer) a.resolve();
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
    }
  }

  /**
   * Calls the endpoint's handler. A frame received as `[Tag.Msg, endpoint, payload]`
   * goes along as a third argument, which only murmur's own handlers read (a
   * relay such as Plumtree forwards those bytes instead of encoding them again).
   */
  #deliver(endpoint: string, payload: unknown, ctx: MessageContext, frame?: Uint8Array): void {
    const h = this.handlers.get(endpoint) ?? this.#internal.get(endpoint);
    if (h === undefined) {
      this.#log("debug", `message for unknown endpoint "${endpoint}" dropped`, ctx.from);
      return;
    }
    try {
      const r = (h as RelayHandler)(payload, ctx, frame);
      if (r instanceof Promise) {
        r.catch((e) => this.#log("error", `handler "${endpoint}" failed`, ctx.from, e));
      }
    } catch (e) {
      this.#log("error", `handler "${endpoint}" threw`, ctx.from, e);
    }
  }

  #deliverLocal(endpoint: string, frame: Uint8Array, channel: string): void {
    // Same copy semantics as the wire: the handler never shares the sender's object.
    const m = decodeMessage(frame) as { payload: unknown };
    const ctx: MessageContext = Object.freeze({ from: this.#cfg.name, channel });
    queueMicrotask(() => this.#deliver(endpoint, m.payload, ctx));
  }

  async #callLocal(endpoint: string, frame: Uint8Array, channel: string): Promise<unknown> {
    const h = this.handlers.get(endpoint);
    if (h === undefined) throw new UnknownEndpointError(this.#cfg.name, endpoint);
    const m = decodeMessage(frame) as { payload: unknown };
    let r: unknown;
    try {
      r = await h(m.payload, { from: this.#cfg.name, channel });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      throw new RemoteHandlerError(this.#cfg.name, endpoint, err.name, err.message);
    }
    return decodeValue(encodeForWire(r, "reply", `reply of endpoint "${endpoint}"`));
  }

  async #answer(id: number, endpoint: string, payload: unknown, link: Link): Promise<void> {
    const h = this.handlers.get(endpoint);
    let reply: unknown[];
    if (h === undefined) {
      reply = [Tag.Reply, id, 1, null];
    } else {
      try {
        reply = [Tag.Reply, id, 0, await h(payload, link.context)];
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        reply = [Tag.Reply, id, 2, [err.name, err.message.slice(0, 4096)]];
      }
    }
    if (link.closed || this.#isPartitioned(link.peer)) return;
    let frame: Uint8Array;
    try {
      frame = encodeForWire(reply, "frame");
      if (frame.length > this.#cfg.frameBytesMax) {
        throw new FrameTooLargeError(frame.length, this.#cfg.frameBytesMax);
      }
    } catch (e) {
      let why = (e as Error).message;
      try {
        encodeForWire(reply[3], "reply");
      } catch (inner) {
        why = (inner as Error).message;
      }
      this.#log("warn", `reply of endpoint "${endpoint}" could not be sent: ${why}`, link.peer);
      frame = encodeValue([Tag.Reply, id, 2, ["TypeError", `reply could not be sent: ${why}`]]);
    }
    link.enqueueControl(frame);
  }

  // ------------------------------------------------------------- peer events

  /**
   * A peer came up: what waited for its connection goes out (in order, before
   * anything else), then what waits for its acknowledgement goes out again.
   */
  peerUp(peer: Peer): void {
    this.#flushOpening(peer);
    for (const a of this.#acks.values()) {
      if (a.node === peer.name && a.admitted) this.#transmitAck(peer, a);
    }
  }

  /** A peer went down: its calls fail (acknowledged sends wait for it to come back). */
  peerDown(name: string, error: unknown): void {
    for (const c of [...this.#calls.values()]) {
      if (c.node === name) {
        c.cleanup();
        c.reject(
          error instanceof ClosedError
            ? error
            : new NodeDownError(name, "went down", { cause: error }),
        );
      }
    }
  }

  /** A peer left or was removed: what waits for its acknowledgement can never complete. */
  peerDeparted(name: string, why: string): void {
    let error: NodeDownError | undefined;
    const reason = () => error ??= new NodeDownError(name, why);
    if (this.#opening.has(name)) this.#failOpening(name, reason());
    for (const c of [...this.#calls.values()]) {
      if (c.node === name) {
        c.cleanup();
        c.reject(reason());
      }
    }
    for (const a of [...this.#acks.values()]) if (a.node === name) a.reject(reason());
  }

  retransmit(now: number): void {
    for (const a of this.#acks.values()) {
      if (!a.admitted) continue;
      const peer = this.#peers.peers.get(a.node);
      if (peer?.up && now - a.lastSentAt >= this.#cfg.retransmitIntervalMs) {
        this.counters.retransmits++;
        this.#transmitAck(peer, a);
      }
    }
  }

  close(error: ClosedError): void {
    for (const name of [...this.#opening.keys()]) this.#failOpening(name, error);
    this.router.close(error);
    if (this.#causalTimer !== undefined) this.#cfg.clock.clearTimeout(this.#causalTimer.id);
    this.#causalTimer = undefined;
    for (const c of [...this.#calls.values()]) {
      c.cleanup();
      c.reject(error);
    }
    for (const a of [...this.#acks.values()]) a.reject(error);
  }

  #log(level: "debug" | "warn" | "error", msg: string, peer?: string, error?: unknown): void {
    logAs(this.#cfg, level, msg, peer, error);
  }
}

function checkKey(key: unknown): void {
  if (key !== undefined && typeof key !== "string" && typeof key !== "number") {
    throw new TypeError(`partitionKey must be a string or a number, got ${typeof key}`);
  }
}
