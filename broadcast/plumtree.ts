/**
 * The Plumtree broadcast server of a node: epidemic broadcast trees (eager
 * push along a tree, lazy IHAVE digests to the other neighbours, GRAFT to
 * repair, PRUNE on duplicates) plus periodic anti-entropy exchanges.
 *
 * @module
 */

import * as D from "./defaults.ts";
import { type Clock, mathRandom, type Random, systemClock, type TimerId } from "../base/clock.ts";
import { checkSendable } from "../base/codec.ts";
import type { Logger } from "../base/logger.ts";
import type { Node } from "../membership/node.ts";
import { type Relay, relayOf } from "../membership/relay.ts";
import { ECLIPSE_IDS_MAX, ECLIPSE_SETTLED_MS, EclipseCheck } from "./_eclipse.ts";
import { bumpRound } from "./_forward.ts";
import type { BroadcastHandler, BroadcastServer } from "./handler.ts";
import { SerialInbox } from "./_inbox.ts";
import { type ExchangeInfo, Exchanges, type ExchangeSelector } from "./_exchange.ts";

export type { ExchangeInfo, ExchangeSelector } from "./_exchange.ts";
import { type PlumtreeHandlers, type Received, receivePlumtree } from "./dispatch.ts";
import { PlumtreeCore, type PlumtreeCoreOptions } from "./plumtree_core.ts";
import { type PlumtreeStats, PT, type Send } from "./wire.ts";

/** The endpoint Plumtree registers on its node. */
export const PLUMTREE_ENDPOINT = "murmur.plumtree";

/** Options of {@linkcode Plumtree.start}. */
export interface PlumtreeOptions extends Omit<PlumtreeCoreOptions, "random"> {
  /** The handlers this node serves (the same names on every node). */
  // deno-lint-ignore no-explicit-any
  handlers: BroadcastHandler<any, any, any>[];
  /**
   * Period of anti-entropy exchanges, as in Partisan.
   *
   * @default 10000
   */
  exchangeTickMs?: number;
  /**
   * Exchanges running at once; more wait their turn, one per handler and peer.
   *
   * @default 1
   */
  exchangesMax?: number;
  /**
   * Under a partial view (HyParView): how often this node asks a random
   * passive member which broadcasts it delivered lately; when this node has
   * none of some of them, its neighbours delivered nothing that others got (an
   * eclipse): it logs it and rotates them out (`Node.rotateNeighbours`). 0
   * turns the check off.
   *
   * @default 30000
   */
  eclipseCheckMs?: number;
  /**
   * Plumtree messages waiting while a handler's promise is pending; past it they are dropped.
   *
   * @default 10000
   */
  inboxMax?: number;
  /**
   * The endpoint this server registers on its node; two Plumtree servers on
   * one node (each with its own trees) need two endpoints.
   *
   * @default "murmur.plumtree"
   */
  endpoint?: string;
  /** Default channel (default `"broadcast"` if the node has it, else `"default"`). */
  channel?: string;
  /** Timers (default: the system clock). */
  clock?: Clock;
  /**
   * Randomness.
   *
   * @default `Math.random`
   */
  random?: Random;
  /** Receives log records (default: the node's logger). */
  logger?: Logger;
}

/** What {@linkcode Plumtree.observeDeliveries} observers receive for each new payload. */
export interface DeliveryObservation {
  /** The handler that merged it. */
  readonly handler: string;
  /** The node whose broadcast it is. */
  readonly root: string;
  /** Milliseconds from its arrival here to the end of the merge (inbox wait included). */
  readonly ms: number;
}

/** An observer of deliveries. */
export type DeliveryObserver = (delivery: DeliveryObservation) => void;

/** Counters of a Plumtree server (protocol counters plus exchanges). */
export interface PlumtreeServerStats extends PlumtreeStats {
  /** Exchanges started. */
  exchanges: number;
  /** Sends that failed: one per destination down, one per frame refused whole. */
  sendFailures: number;
  /** Messages dropped because the inbox was at `inboxMax`. */
  inboxDropped: number;
  /** Eclipse checks that found broadcasts a passive member had and this node did not. */
  eclipses: number;
}

/** What a Plumtree server holds now; each figure is bounded by an option. */
export interface PlumtreePending {
  /** Announced ids waiting for their payload (`missingMax`). */
  missing: number;
  /** Trees kept (`rootsMax`). */
  roots: number;
  /** Lazy entries waiting to be announced or acknowledged (`lazyOutstandingMax` per peer). */
  outstanding: number;
  /** Exchanges running (`exchangesMax`) and waiting. */
  exchanges: number;
  /** Messages waiting in the inbox (`inboxMax`). */
  inbox: number;
}

/**
 * Plumtree on a {@linkcode Node}.
 *
 * @example Broadcast to a two-node cluster
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { KvHandler, Plumtree } from "@murmur/murmur/broadcast";
 * await using a = await Node.start({ name: "a", cookie: "c" });
 * await using b = await Node.start({ name: "b", cookie: "c" });
 * await b.join(a.spec);
 * const kvA = new KvHandler("kv", a), kvB = new KvHandler("kv", b);
 * await using pa = await Plumtree.start(a, { handlers: [kvA] });
 * await using pb = await Plumtree.start(b, { handlers: [kvB] });
 * const arrived = new Promise((r) => kvB.onChange(r));
 * await kvA.put(pa, "color", "blue");
 * await arrived;
 * console.log(kvB.get("color")); // blue
 * ```
 */
export class Plumtree implements AsyncDisposable, BroadcastServer {
  readonly #node: Node;
  readonly #relay: Relay;
  readonly #core: PlumtreeCore;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;
  // deno-lint-ignore no-explicit-any
  readonly #handlers = new Map<string, BroadcastHandler<any, any, any>>();
  readonly #channel: string;
  readonly #endpoint: string;
  /** The next lazy tick's timer and when it fires. */
  #lazyTimer: { id: TimerId; at: number } | undefined;
  readonly #exchanges: Exchanges;
  #graftTimer: { id: TimerId; at: number } | undefined;
  /** One message at a time, in arrival order (a handler's promise holds the rest). */
  readonly #inbox: SerialInbox;
  readonly #deliveryObservers = new Set<DeliveryObserver>();
  readonly #offs: (() => void)[] = [];
  #closed = false;
  readonly #extra = { exchanges: 0, sendFailures: 0, inboxDropped: 0, eclipses: 0 };
  readonly #eclipse: EclipseCheck;
  /** Counts a failed send (made once: a broadcast sends per message). */
  readonly #sendFailed = () => void this.#extra.sendFailures++;
  readonly #now = () => this.#clock.now();
  /** The handlers as the shared dispatch asks them. */
  readonly #handlerHost: PlumtreeHandlers = {
    has: (name) => this.#handlers.has(name),
    merge: (name, id, payload) => this.#handlers.get(name)!.merge(id, payload),
    isStale: (name, id) => this.#handlers.get(name)!.isStale(id),
    graft: (name, id) => this.#handlers.get(name)!.graft(id),
  };

  private constructor(node: Node, options: PlumtreeOptions) {
    this.#node = node;
    this.#relay = relayOf(node);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? mathRandom;
    this.#log = options.logger ?? node.logger;
    this.#core = new PlumtreeCore(node.name, { ...options, random: this.#random });
    const exchangeTickMs = options.exchangeTickMs ?? D.DEFAULT_EXCHANGE_TICK_MS;
    const exchangesMax = options.exchangesMax ?? D.DEFAULT_EXCHANGES_MAX;
    const inboxMax = options.inboxMax ?? D.DEFAULT_INBOX_MAX;
    for (
      const [k, v] of Object.entries({
        exchangeTickMs,
        exchangesMax,
        inboxMax,
      })
    ) {
      if (!(v > 0)) throw new RangeError(`${k} must be > 0, got ${v}`);
    }
    this.#inbox = new SerialInbox(
      inboxMax,
      (from, raw, at, frame) => this.#handle(from, raw, at, frame),
      (from, e) => this.#failed(from, e),
    );
    this.#endpoint = options.endpoint ?? PLUMTREE_ENDPOINT;
    if (typeof this.#endpoint !== "string" || this.#endpoint.length === 0) {
      throw new TypeError(`endpoint must be a non-empty string, got ${String(this.#endpoint)}`);
    }
    this.#channel = options.channel ?? (node.spec.channels["broadcast"] ? "broadcast" : "default");
    for (const h of options.handlers) {
      if (typeof h?.name !== "string" || h.name.length === 0) {
        throw new TypeError("every handler needs a name");
      }
      if (this.#handlers.has(h.name)) throw new TypeError(`two handlers are named "${h.name}"`);
      this.#handlers.set(h.name, h);
    }
    this.#exchanges = new Exchanges(
      {
        node: node.name,
        clock: this.#clock,
        random: this.#random,
        log: this.#log,
        handlers: this.#handlers,
        members: () => this.#core.members,
        connected: (peer) => this.#node.connectedMembers().includes(peer),
        started: () => void this.#extra.exchanges++,
      },
      exchangeTickMs,
      exchangesMax,
    );
    const eclipseCheckMs = options.eclipseCheckMs ?? D.DEFAULT_ECLIPSE_CHECK_MS;
    if (!(eclipseCheckMs >= 0) || !Number.isFinite(eclipseCheckMs)) {
      throw new RangeError(`eclipseCheckMs must be a finite number >= 0, got ${eclipseCheckMs}`);
    }
    this.#eclipse = new EclipseCheck({
      node,
      clock: this.#clock,
      random: this.#random,
      log: this.#log,
      handlers: this.#handlers,
      endpoint: `${this.#endpoint}.recent`,
      found: () => void this.#extra.eclipses++,
    }, eclipseCheckMs);
  }

  /**
   * Starts Plumtree on `node` with the given handlers: starts each handler
   * that has a `start`, and exchanges at once with every peer already up (and
   * then with each peer that comes up).
   */
  static start(node: Node, options: PlumtreeOptions): Promise<Plumtree> {
    if (typeof options !== "object" || !Array.isArray(options?.handlers)) {
      return Promise.reject(new TypeError("options.handlers must be an array of handlers"));
    }
    let p: Plumtree;
    try {
      p = new Plumtree(node, options);
    } catch (e) {
      return Promise.reject(e);
    }
    p.#offs.push(
      p.#relay.register(p.#endpoint, (msg, ctx, frame) => p.#receive(ctx.from, msg, frame)),
    );
    p.#offs.push(node.register(`${p.#endpoint}.peers`, (root) => p.#core.peers(String(root))));
    // What this node delivered a little while ago, for another node's eclipse check.
    p.#offs.push(node.register(`${p.#endpoint}.recent`, () =>
      p.#core.recentDeliveries(
        p.#clock.now(),
        Math.max(ECLIPSE_SETTLED_MS, 3 * p.#core.lazyTickMs),
        60_000,
        ECLIPSE_IDS_MAX,
      )
        .map((e) => [e.handler, e.id])));
    p.#offs.push(
      node.onUp("*", (peer) => {
        p.#refreshMembers();
        p.#exchanges.with(peer);
      }),
      node.onDown("*", () => p.#refreshMembers()),
    );
    p.#refreshMembers();
    p.#armLazy();
    p.#exchanges.schedule();
    p.#eclipse.schedule();
    for (const h of p.#handlers.values()) {
      try {
        h.start?.(p);
      } catch (e) {
        p.#log({
          level: "error",
          node: node.name,
          msg: `handler "${h.name}" start threw`,
          error: e,
        });
      }
    }
    for (const peer of node.connectedMembers()) if (peer !== node.name) p.#exchanges.with(peer);
    return Promise.resolve(p);
  }

  /**
   * Broadcasts `msg` through the handler named `handlerName`: spreads what
   * `broadcastData(msg)` returns, after handing it to the local `merge` (whose
   * answer does not decide whether it spreads: see {@linkcode BroadcastHandler}).
   *
   * @throws {TypeError} an unknown handler, a closed server, or an id or
   *   payload that cannot cross the wire (nothing is stored or sent then).
   */
  async broadcast(msg: unknown, handlerName: string): Promise<void> {
    if (this.#closed) throw new TypeError("plumtree is closed");
    const h = this.#handler(handlerName);
    const { id, payload } = h.broadcastData(msg);
    checkSendable(id, "id", `cannot broadcast through "${h.name}"`);
    checkSendable(payload, "payload", `cannot broadcast through "${h.name}"`);
    await h.merge(id, payload);
    if (this.#closed) return;
    this.#sendAll(this.#core.broadcast(h.name, id, payload, this.#clock.now()), h);
  }

  /** The members this server broadcasts to, sorted (connected members, self included). */
  broadcastMembers(): string[] {
    return [...this.#core.members];
  }

  /** The eager and lazy peers of `node` for the tree rooted at `root` (asks `node` when remote). */
  async debugGetPeers(node: string, root: string): Promise<{ eager: string[]; lazy: string[] }> {
    if (node === this.#node.name) return this.#core.peers(root);
    return await this.#node.call(node, `${this.#endpoint}.peers`, root) as {
      eager: string[];
      lazy: string[];
    };
  }

  /**
   * The broadcast trees this node knows, as it sees them: for each root
   * (a node that broadcast through here lately; at most `limit`, the most
   * recently used, default 64) its eager and lazy links from this node.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * import { Plumtree } from "@murmur/murmur/broadcast";
   * await using node = await Node.start({ name: "a", cookie: "c" });
   * await using pt = await Plumtree.start(node, { handlers: [] });
   * console.log(pt.trees()); // []
   * ```
   */
  trees(limit = 64): { root: string; eager: string[]; lazy: string[] }[] {
    return this.#core.trees(limit);
  }

  /**
   * Calls `fn` for each payload delivered here (new to this node), with the
   * milliseconds from its arrival to the end of its handler's merge; metrics
   * use it. Returns a function that removes the observer. Without observers a
   * delivery pays nothing for this.
   *
   * @example
   * ```ts
   * import { Node } from "@murmur/murmur/membership";
   * import { Plumtree } from "@murmur/murmur/broadcast";
   * await using node = await Node.start({ name: "a", cookie: "c" });
   * await using pt = await Plumtree.start(node, { handlers: [] });
   * const off = pt.observeDeliveries((d) => console.log(d.handler, d.ms));
   * off();
   * ```
   */
  observeDeliveries(fn: DeliveryObserver): () => void {
    if (typeof fn !== "function") throw new TypeError("delivery observer must be a function");
    const entry: DeliveryObserver = (d) => fn(d);
    this.#deliveryObservers.add(entry);
    return () => void this.#deliveryObservers.delete(entry);
  }

  #observed(handler: string, root: string, at: number): void {
    const ms = this.#clock.now() - at;
    for (const fn of this.#deliveryObservers) {
      try {
        fn({ handler, root, ms });
      } catch (e) {
        this.#log({
          level: "error",
          node: this.#node.name,
          msg: "delivery observer threw",
          error: e,
        });
      }
    }
  }

  /** The exchanges running now. */
  exchanges(): ExchangeInfo[] {
    return this.#exchanges.list();
  }

  /**
   * Cancels running exchanges (their signals abort) and drops matching ones
   * waiting for a slot. Returns how many were running.
   */
  cancelExchanges(selector: ExchangeSelector = "all"): number {
    return this.#exchanges.cancel(selector);
  }

  /** Starts one exchange now with `peer` (or a random peer) for one handler (or each). Resolves when done. */
  async exchangeNow(peer?: string, handlerName?: string): Promise<void> {
    const peers = this.#core.members.filter((m) => m !== this.#node.name);
    const target = peer ?? peers[Math.floor(this.#random.next() * peers.length)];
    if (target === undefined) return;
    const handlers = handlerName ? [this.#handler(handlerName)] : [...this.#handlers.values()];
    await Promise.all(handlers.map((h) => this.#exchanges.run(h, target)));
  }

  /** Protocol counters: enough to compute the relative message redundancy. */
  stats(): PlumtreeServerStats {
    return { ...this.#core.stats, ...this.#extra };
  }

  /** What the server holds now (each bounded by an option). */
  pending(): PlumtreePending {
    return {
      missing: this.#core.missingCount,
      roots: this.#core.rootCount,
      outstanding: this.#core.outstandingCount,
      exchanges: this.#exchanges.pending,
      inbox: this.#inbox.size,
    };
  }

  /** Stops: stops the handlers, unregisters, clears timers, cancels exchanges. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of this.#handlers.values()) {
      try {
        h.stop?.();
      } catch (e) {
        this.#log({
          level: "error",
          node: this.#node.name,
          msg: `handler "${h.name}" stop threw`,
          error: e,
        });
      }
    }
    for (const off of this.#offs) off();
    for (const t of [this.#lazyTimer?.id, this.#graftTimer?.id]) {
      if (t !== undefined) this.#clock.clearTimeout(t);
    }
    await this.#exchanges.close();
    await this.#eclipse.close();
    await this.#inbox.settled;
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------- internals

  // deno-lint-ignore no-explicit-any
  #handler(name: string): BroadcastHandler<any, any, any> {
    const h = this.#handlers.get(name);
    if (h === undefined) throw new TypeError(`no broadcast handler named "${name}"`);
    return h;
  }

  #refreshMembers(): void {
    if (this.#closed) return;
    this.#sendAll(this.#core.setMembers(this.#node.connectedMembers(), this.#clock.now()));
  }

  /**
   * Sends the core's output. `pushed`: the encoded frame of the push that
   * opens `sends` (a received frame, round patched), sent as it is.
   */
  #sendAll(
    sends: Send[],
    // deno-lint-ignore no-explicit-any
    handler?: BroadcastHandler<any, any, any>,
    pushed?: Uint8Array,
  ): void {
    // Sends that share one message object go out through one sendMany (one encoding).
    for (let i = 0; i < sends.length;) {
      const msg = sends[i]!.msg;
      const to = [sends[i]!.to];
      let j = i + 1;
      while (j < sends.length && sends[j]!.msg === msg) to.push(sends[j++]!.to);
      const h = handler ??
        (msg[0] === PT.Broadcast || msg[0] === PT.Graft ? this.#handlers.get(msg[1]) : undefined);
      try {
        const frame = i === 0 ? pushed : undefined;
        const channel = h?.channel ?? this.#channel;
        this.#relay.sendMany(to, this.#endpoint, msg, frame, channel, this.#sendFailed);
      } catch {
        this.#sendFailed(); // an unsendable message (merge style: checked at broadcast)
      }
      i = j;
    }
    this.#armGraftTimer();
    this.#armLazy();
  }

  #armGraftTimer(): void {
    const at = this.#core.nextDeadline();
    if (at === undefined || this.#closed) return;
    if (this.#graftTimer !== undefined && this.#graftTimer.at <= at) return;
    if (this.#graftTimer !== undefined) this.#clock.clearTimeout(this.#graftTimer.id);
    const id = this.#clock.setTimeout(() => {
      this.#graftTimer = undefined;
      this.#sendAll(this.#core.timers(this.#clock.now()));
    }, Math.max(0, at - this.#clock.now()));
    this.#graftTimer = { id, at };
  }

  /**
   * Arms the timer of the next lazy tick at the core's `nextLazyTickAt`, or
   * earlier than it was armed when a neighbour change moved the tick up; none
   * while the core has nothing to announce (it says Infinity), so an idle node
   * does not wake for it (polling every `repairTickMs` cost five wake-ups a
   * second). Called after every call into the core.
   */
  #armLazy(): void {
    if (this.#closed) return;
    const at = this.#core.nextLazyTickAt();
    if (at === Infinity) return; // nothing to announce: armed again when something is queued
    if (this.#lazyTimer !== undefined && this.#lazyTimer.at <= at) return;
    if (this.#lazyTimer !== undefined) this.#clock.clearTimeout(this.#lazyTimer.id);
    const id = this.#clock.setTimeout(() => {
      this.#lazyTimer = undefined;
      this.#sendAll(this.#core.lazyTickDue(this.#clock.now()));
      this.#armLazy(); // when lazyTickDue found it early and sent nothing
    }, Math.max(0, at - this.#clock.now()));
    this.#lazyTimer = { id, at };
  }

  /** `frame`: the bytes `raw` arrived in, forwarded (round patched) when it is a new push. */
  #receive(from: string, raw: unknown, frame: Uint8Array | undefined): void {
    const at = this.#deliveryObservers.size > 0 ? this.#clock.now() : -1;
    if (!this.#inbox.push(from, raw, at, frame)) this.#extra.inboxDropped++;
  }

  #failed(from: string, error: unknown): void {
    this.#log({
      level: "error",
      node: this.#node.name,
      peer: from,
      msg: "plumtree message failed",
      error,
    });
  }

  /** What a received message came to: the sends, and a new payload forwarded as its bytes. */
  #received(from: string, r: Received, at: number, frame: Uint8Array | undefined): void {
    if (r.dropped !== undefined) {
      this.#log({ level: "warn", node: this.#node.name, peer: from, msg: r.dropped });
    }
    const p = r.payload;
    if (p === undefined || !p.isNew) return this.#sendAll(r.sends);
    const [, name, , , root, round] = p.msg;
    const h = this.#handlers.get(name);
    // A new message goes on to the eager peers as the bytes it came in, one round on.
    const pushed = frame !== undefined && r.sends.length > 0 &&
        r.sends[0]!.msg[0] === PT.Broadcast && bumpRound(frame, root, round)
      ? frame
      : undefined;
    this.#sendAll(r.sends, h, pushed);
    if (at >= 0) this.#observed(name, root, at);
  }

  #handle(
    from: string,
    raw: unknown,
    at: number,
    frame: Uint8Array | undefined,
  ): void | Promise<void> {
    if (this.#closed) return;
    const r = receivePlumtree(this.#core, from, raw, this.#handlerHost, this.#now);
    if (r instanceof Promise) return r.then((x) => this.#received(from, x, at, frame));
    this.#received(from, r, at, frame);
  }
}
