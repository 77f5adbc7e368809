/**
 * Data publishers (OTP's `data_publisher`, the generalization of `pg`): on
 * every node of a scope, a global view built from what each node published.
 * Each node is the single writer of its own local data, so the view converges
 * without conflicts.
 *
 * Protocol (as in OTP): on start, and on each node up, a publisher sends
 * DISCOVER to its peers; a DISCOVER is answered with the full local data
 * (translated to the peer's version) and, from an unknown peer, with a
 * DISCOVER back; after that, updates go out as diffs. A repeated full local
 * data is applied as a diff; updates from unknown peers are dropped; when a
 * peer goes down its whole contribution leaves the view
 * (`dataDiff(peerData, initLocalData())`), after `downGraceMs` if set.
 *
 * Safer than OTP under message loss: murmur's `send` is at most once, and a
 * short partition can drop an update without any node going down. Updates
 * carry a sequence number per publisher; a gap, or a periodic tick
 * (`syncIntervalMs`) showing a newer sequence, makes the receiver ask for the
 * peer's full local data again (RESYNC).
 *
 * @module
 */

import { checkSendable } from "../base/codec.ts";
import { type Clock, systemClock, type TimerId } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { Node } from "../membership/node.ts";
import {
  isVersion,
  type Listener,
  type PublisherModule,
  Subscriptions,
  type Version,
} from "./module.ts";
import { isPlain, isWire, type Wire } from "./_wire.ts";

/** Counters of a {@linkcode DataPublisher}. */
export interface PublisherStats {
  /** Updates applied on this node (`update`). */
  localUpdates: number;
  /** Updates applied from peers. */
  remoteUpdates: number;
  /** Full local data received from peers (discovery, resync). */
  fullSyncs: number;
  /** Peer updates dropped: unknown peer or instance, or out of sequence. */
  dropped: number;
  /** Full local data asked of peers again (a gap in their sequence); at most one per peer per `syncIntervalMs`. */
  resyncs: number;
}

/** Options of {@linkcode DataPublisher.start}. */
export interface DataPublisherOptions {
  /**
   * One node, no network.
   *
   * @default false
   */
  standalone?: boolean;
  /**
   * Wait this long before removing a down peer's contribution; if the node
   * comes back within it, only the difference is applied.
   *
   * @default 0
   */
  downGraceMs?: number;
  /** Options passed to `initLocalData` and `initGlobalView`. */
  moduleOptions?: Record<string, unknown>;
  /** Timers (default the system clock). */
  clock?: Clock;
  /**
   * Period of the sequence tick that reveals lost updates.
   *
   * @default 2000
   */
  syncIntervalMs?: number;
  /** Receives log records (default: the node's logger). */
  logger?: Logger;
}

interface Peer<Local> {
  node: string;
  instance: string;
  version: Version;
  data: Local;
  /** Sequence of the last update applied from this peer. */
  seq: number;
  /** When (this node's clock) a RESYNC was last asked of this peer, while its full data has not come. */
  resyncAt?: number;
}

/**
 * A data publisher of one scope on one node.
 *
 * @example
 * ```ts
 * import { DataPublisher, type PublisherModule } from "@murmur/murmur/publisher";
 * import { Node } from "@murmur/murmur/membership";
 * const Sum: PublisherModule<number, number, Map<string, number>, "total", number> = {
 *   version: () => 1,
 *   initLocalData: () => 0,
 *   initGlobalView: () => new Map(),
 *   dataDiff: (o, n) => n - o,
 *   updateLocalData: (d, n) => n + d,
 *   updateGlobalViewAndNotify: (node, d, subs, view) => {
 *     view.set(node, (view.get(node) ?? 0) + d);
 *     subs.notify("total", [...view.values()].reduce((a, b) => a + b, 0));
 *     return view;
 *   },
 *   newSubscription: (_s, view) => [...view.values()].reduce((a, b) => a + b, 0),
 *   stopGlobalView: () => {},
 *   translateLocalData: (_m, _p, n) => n,
 *   translateUpdate: (_m, _p, d) => d,
 * };
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using pub = await DataPublisher.start(node, "sums", Sum);
 * const { result } = pub.subscribe("total", (t) => console.log("total", t));
 * await pub.update(5);
 * console.log(result, pub.view.get("a")); // 0 5
 * ```
 */
export class DataPublisher<Local, Update, View, Sub, SubResult> implements AsyncDisposable {
  readonly #node: Node;
  readonly #scope: string;
  readonly #module: PublisherModule<Local, Update, View, Sub, SubResult>;
  readonly #version: Version;
  readonly #instance = crypto.randomUUID();
  readonly #standalone: boolean;
  readonly #graceMs: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #options: Record<string, unknown>;
  readonly #peers = new Map<string, Peer<Local>>(); // by node name
  readonly #zombies = new Map<string, { data: Local; timer: TimerId }>();
  readonly #subs = new Subscriptions<Sub>();
  readonly #subRefs = new Map<number, Sub>();
  #nextRef = 1;
  #seq = 0;
  #tickTimer: TimerId | undefined;
  readonly #syncIntervalMs: number;
  #view: View;
  #local: Local;
  #closed = false;
  readonly #stats: PublisherStats = {
    localUpdates: 0,
    remoteUpdates: 0,
    fullSyncs: 0,
    dropped: 0,
    resyncs: 0,
  };
  readonly #offs: (() => void)[] = [];

  private constructor(
    node: Node,
    scope: string,
    module: PublisherModule<Local, Update, View, Sub, SubResult>,
    options: DataPublisherOptions,
  ) {
    this.#node = node;
    this.#scope = scope;
    this.#module = module;
    this.#version = module.version();
    if (!isVersion(this.#version)) {
      throw new TypeError(
        `module.version() must return a number, a string or a boolean, got ${typeof this.#version}`,
      );
    }
    this.#standalone = options.standalone ?? false;
    this.#graceMs = options.downGraceMs ?? 0;
    if (!(this.#graceMs >= 0)) {
      throw new RangeError(`downGraceMs must be >= 0, got ${this.#graceMs}`);
    }
    this.#clock = options.clock ?? systemClock;
    this.#log = options.logger ?? node.logger;
    this.#options = options.moduleOptions ?? {};
    this.#syncIntervalMs = options.syncIntervalMs ?? 2000;
    if (!(this.#syncIntervalMs > 0)) {
      throw new RangeError(`syncIntervalMs must be > 0, got ${this.#syncIntervalMs}`);
    }
    this.#view = module.initGlobalView(scope, this.#options);
    this.#local = module.initLocalData(this.#options);
  }

  /**
   * Starts the publisher of `scope` on `node` and, unless standalone,
   * discovers the scope's peers.
   */
  static start<Local, Update, View, Sub, SubResult>(
    node: Node,
    scope: string,
    module: PublisherModule<Local, Update, View, Sub, SubResult>,
    options: DataPublisherOptions = {},
  ): Promise<DataPublisher<Local, Update, View, Sub, SubResult>> {
    if (typeof scope !== "string" || scope.length === 0 || scope.length > 200) {
      return Promise.reject(new TypeError("scope must be a non-empty string"));
    }
    if (node.strategy !== "full-mesh") {
      return Promise.reject(
        new TypeError(
          `data publishers need the full-mesh membership: node "${node.name}" runs ` +
            `"${node.strategy}", whose partial views do not show every publisher ` +
            `(start the node with membership: { strategy: "full-mesh" })`,
        ),
      );
    }
    for (
      const f of [
        "version",
        "initLocalData",
        "initGlobalView",
        "dataDiff",
        "updateLocalData",
        "updateGlobalViewAndNotify",
        "newSubscription",
        "stopGlobalView",
        "translateLocalData",
        "translateUpdate",
      ] as const
    ) {
      if (typeof module?.[f] !== "function") {
        return Promise.reject(new TypeError(`module.${f} must be a function`));
      }
    }
    let p: DataPublisher<Local, Update, View, Sub, SubResult>;
    try {
      p = new DataPublisher(node, scope, module, options);
    } catch (e) {
      return Promise.reject(e);
    }
    p.#offs.push(node.register(p.#endpoint, (msg, ctx) => p.#receive(ctx.from, msg)));
    if (!p.#standalone) {
      p.#offs.push(node.onUp("*", (peer) => p.#send(peer, ["discover", p.#instance, p.#version])));
      p.#offs.push(node.onDown("*", (peer) => p.#peerDown(peer)));
      for (const peer of node.connectedMembers()) {
        if (peer !== node.name) p.#send(peer, ["discover", p.#instance, p.#version]);
      }
      p.#scheduleTick();
    }
    return Promise.resolve(p);
  }

  get #endpoint(): string {
    return `murmur.pub.${this.#scope}`;
  }

  /** The scope. */
  get scope(): string {
    return this.#scope;
  }

  /** The global view (the module's structure; read it, do not change it). */
  get view(): View {
    return this.#view;
  }

  /** This node's local data. */
  get localData(): Local {
    return this.#local;
  }

  /** The peers this publisher exchanges with: node name and module version. */
  peers(): { node: string; version: Version }[] {
    return [...this.#peers.values()].map((p) => ({ node: p.node, version: p.version })).sort((
      a,
      b,
    ) => a.node < b.node ? -1 : 1);
  }

  /** Counters of this publisher (see {@linkcode PublisherStats}). */
  stats(): PublisherStats {
    return { ...this.#stats };
  }

  /**
   * Applies a local update: this node's data, the view here, and every peer
   * (translated). All or nothing: an update that cannot cross the wire is
   * refused with a `TypeError` naming its path before anything changes, and a
   * module callback that throws leaves the local data and the view as they were
   * (the promise rejects with its error; no peer hears of the update).
   */
  update(update: Update): Promise<void> {
    if (this.#closed) return Promise.reject(new TypeError(`publisher "${this.#scope}" is closed`));
    try {
      this.#applyLocal(update);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Subscribes `listener` to `sub` (the module decides what a subscription
   * means). Returns a reference for `unsubscribe` and the module's initial result.
   */
  subscribe(sub: Sub, listener: Listener): { ref: number; result: SubResult } {
    if (typeof listener !== "function") throw new TypeError("listener must be a function");
    const ref = this.#nextRef++;
    const result = this.#module.newSubscription(sub, this.#view);
    this.#subs._add(sub, ref, listener);
    this.#subRefs.set(ref, sub);
    return { ref, result };
  }

  /** Removes a subscription. Returns whether it existed. */
  unsubscribe(ref: number): boolean {
    const sub = this.#subRefs.get(ref);
    if (sub === undefined) return false;
    this.#subRefs.delete(ref);
    return this.#subs._remove(sub, ref);
  }

  /**
   * Hands a message to the module's `translateMessage` (a local event, such as
   * a member going away). A callback's error is thrown, with nothing changed.
   */
  message(msg: unknown): void {
    if (this.#closed) throw new TypeError(`publisher "${this.#scope}" is closed`);
    this.#translate(msg, undefined);
  }

  /** Stops: peers drop this node's contribution; subscriptions end; the view is released. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    for (const p of this.#peers.values()) this.#send(p.node, ["bye", this.#instance]);
    this.#closed = true;
    if (this.#tickTimer !== undefined) this.#clock.clearTimeout(this.#tickTimer);
    for (const off of this.#offs) off();
    for (const z of this.#zombies.values()) this.#clock.clearTimeout(z.timer);
    this.#zombies.clear();
    this.#subRefs.clear();
    this.#module.stopGlobalView(this.#view);
    return Promise.resolve();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -------------------------------------------------------------- internals

  #send(to: string, msg: Wire): void {
    if (this.#closed || this.#standalone) return;
    this.#node.send(to, this.#endpoint, msg).catch((e) => {
      this.#log({
        level: "debug",
        node: this.#node.name,
        peer: to,
        msg: "publisher send failed",
        error: e,
      });
    });
  }

  /** The wire message of `value` for `peer`'s version (throws when it cannot cross the wire). */
  #translated(peer: Peer<Local>, kind: "local_data" | "update", value: Local | Update): Wire {
    const t = kind === "local_data"
      ? this.#module.translateLocalData(this.#version, peer.version, value as Local)
      : this.#module.translateUpdate(this.#version, peer.version, value as Update);
    const what = `publisher "${this.#scope}": translated for version ${String(peer.version)}`;
    if (isPlain(t)) {
      checkSendable(t.plainMessages, "plainMessages", what);
      return kind === "local_data"
        ? ["plain", this.#instance, this.#seq, t.plainMessages, 1]
        : ["plain", this.#instance, this.#seq, t.plainMessages];
    }
    checkSendable(t, kind === "local_data" ? "data" : "update", what);
    return kind === "local_data"
      ? ["local_data", this.#instance, this.#version, t, this.#seq]
      : ["update", this.#instance, this.#seq, t];
  }

  #sendTranslated(peer: Peer<Local>, kind: "local_data" | "update", value: Local | Update): void {
    let w: Wire;
    try {
      w = this.#translated(peer, kind, value);
    } catch (e) {
      this.#log({
        level: "error",
        node: this.#node.name,
        peer: peer.node,
        msg: `publisher "${this.#scope}": ${kind} not sent`,
        error: e,
      });
      return;
    }
    this.#send(peer.node, w);
  }

  #scheduleTick(): void {
    this.#tickTimer = this.#clock.setTimeout(() => {
      if (this.#closed) return;
      this.#scheduleTick();
      for (const p of this.#peers.values()) this.#send(p.node, ["tick", this.#instance, this.#seq]);
    }, this.#syncIntervalMs);
  }

  /** An update from a known peer in sequence is applied; a gap asks for the full data again. */
  #inSequence(peer: Peer<Local>, seq: number): boolean {
    if (seq <= peer.seq) return false; // already covered
    if (seq === peer.seq + 1) {
      peer.seq = seq;
      return true;
    }
    this.#resync(peer);
    return false;
  }

  /**
   * Asks `peer` for its full local data: at most one request outstanding per
   * peer, asked again only after `syncIntervalMs` without an answer (a lost
   * request or answer), so that no exchange can loop.
   */
  #resync(peer: Peer<Local>): void {
    const now = this.#clock.now();
    if (peer.resyncAt !== undefined && now - peer.resyncAt < this.#syncIntervalMs) return;
    peer.resyncAt = now;
    this.#stats.resyncs++;
    this.#send(peer.node, ["resync", this.#instance]);
  }

  #notifyView(node: string, update: Update): void {
    this.#view = this.#module.updateGlobalViewAndNotify(node, update, this.#subs, this.#view);
  }

  /**
   * The local update, all or nothing: translations and encodability first
   * (nothing changed yet), then local data (from a snapshot on failure, unless
   * the module declares `atomicUpdates`), then the view (rebuilt from every
   * node's data on failure), then the peers.
   */
  #applyLocal(update: Update): void {
    const m = this.#module;
    checkSendable(update, "update", `cannot update publisher "${this.#scope}"`);
    const outgoing: [Peer<Local>, Wire][] = [];
    for (const p of this.#peers.values()) outgoing.push([p, this.#translated(p, "update", update)]);
    const snapshot = m.atomicUpdates === true ? undefined : structuredClone(this.#local);
    // The view too: a callback that throws halfway leaves the view as it was. (A view
    // that cannot be cloned is rebuilt from every node's data instead.)
    let viewSnapshot: { view: View } | undefined;
    if (m.atomicUpdates !== true) {
      try {
        viewSnapshot = { view: structuredClone(this.#view) };
      } catch { /* not cloneable: rebuilt on failure */ }
    }
    const oldLocal = this.#local;
    let local: Local;
    try {
      local = m.updateLocalData(update, this.#local);
    } catch (e) {
      if (snapshot !== undefined) this.#local = snapshot;
      throw e;
    }
    try {
      this.#view = m.updateGlobalViewAndNotify(this.#node.name, update, this.#subs, this.#view);
    } catch (e) {
      this.#local = snapshot ?? oldLocal;
      if (viewSnapshot !== undefined) this.#view = viewSnapshot.view;
      else this.#rebuildView();
      throw e;
    }
    this.#local = local;
    this.#seq++;
    this.#stats.localUpdates++;
    for (const [p, w] of outgoing) {
      // The sequence number is the one of this update.
      if (w[0] === "update" || w[0] === "plain") w[2] = this.#seq;
      this.#send(p.node, w);
    }
  }

  /**
   * Rebuilds the view from every node's data (this node's, the peers', those
   * in their grace period), with subscribers not notified: after a module
   * callback threw halfway through a view update.
   */
  #rebuildView(): void {
    const m = this.#module;
    const muted = new Subscriptions<Sub>();
    try {
      m.stopGlobalView(this.#view);
    } catch { /* the view is being replaced anyway */ }
    const empty = () => m.initLocalData(this.#options);
    let view = m.initGlobalView(this.#scope, this.#options);
    const add = (node: string, data: Local) => {
      view = m.updateGlobalViewAndNotify(node, m.dataDiff(empty(), data), muted, view);
    };
    try {
      add(this.#node.name, this.#local);
      for (const p of this.#peers.values()) add(p.node, p.data);
      for (const [node, z] of this.#zombies) add(node, z.data);
    } catch (e) {
      this.#log({
        level: "error",
        node: this.#node.name,
        msg: `publisher "${this.#scope}": the view could not be rebuilt`,
        error: e,
      });
    }
    this.#view = view;
  }

  #receive(from: string, raw: unknown): void {
    if (this.#closed || this.#standalone) return;
    if (!isWire(raw)) {
      this.#log({
        level: "warn",
        node: this.#node.name,
        peer: from,
        msg: `malformed publisher message dropped`,
      });
      return;
    }
    try {
      this.#handle(from, raw);
    } catch (e) {
      this.#log({
        level: "error",
        node: this.#node.name,
        peer: from,
        msg: "publisher callback threw",
        error: e,
      });
    }
  }

  #handle(from: string, msg: Wire): void {
    switch (msg[0]) {
      case "discover": {
        const [, instance, version] = msg;
        let peer = this.#peers.get(from);
        const fresh = peer === undefined || peer.instance !== instance;
        if (fresh) {
          // A new instance on a known node (a restart): its old contribution is the baseline.
          peer = { node: from, instance, version, data: peer?.data ?? this.#adopt(from), seq: -1 };
          this.#peers.set(from, peer);
          this.#send(from, ["discover", this.#instance, this.#version]);
        } else peer!.version = version;
        this.#sendTranslated(peer!, "local_data", this.#local);
        return;
      }
      case "local_data": {
        const [, instance, version, data, seq] = msg;
        let peer = this.#peers.get(from);
        if (peer === undefined || peer.instance !== instance) {
          peer = { node: from, instance, version, data: peer?.data ?? this.#adopt(from), seq };
          this.#peers.set(from, peer);
        }
        peer.version = version;
        peer.seq = seq; // the full data covers every update up to `seq`
        delete peer.resyncAt;
        this.#stats.fullSyncs++;
        // A full local data is applied as the difference from what is known of that peer.
        const update = this.#module.dataDiff(peer.data, data as Local);
        peer.data = data as Local;
        this.#notifyView(from, update);
        return;
      }
      case "update": {
        const [, instance, seq, update] = msg;
        const peer = this.#peers.get(from);
        if (peer === undefined || peer.instance !== instance || !this.#inSequence(peer, seq)) {
          this.#stats.dropped++; // an unknown peer, or out of sequence (a resync follows)
          return;
        }
        this.#stats.remoteUpdates++;
        this.#notifyView(from, update as Update);
        peer.data = this.#module.updateLocalData(update as Update, peer.data);
        return;
      }
      case "plain": {
        const [, instance, seq, messages, full] = msg;
        const peer = this.#peers.get(from);
        if (peer === undefined || peer.instance !== instance) return;
        if (full === 1) {
          // Full local data in plain form: it covers every update up to `seq`.
          if (seq < peer.seq) return; // older than what was applied
          peer.seq = seq;
          delete peer.resyncAt;
          this.#stats.fullSyncs++;
        } else if (!this.#inSequence(peer, seq)) {
          this.#stats.dropped++;
          return;
        }
        for (const m of messages) this.#translate(m, from, instance);
        return;
      }
      case "tick": {
        const peer = this.#peers.get(from);
        // A newer sequence than the last update applied: one was lost on the way.
        if (peer !== undefined && peer.instance === msg[1] && msg[2] > peer.seq) this.#resync(peer);
        return;
      }
      case "resync": {
        const peer = this.#peers.get(from);
        if (peer !== undefined && peer.instance === msg[1]) {
          this.#sendTranslated(peer, "local_data", this.#local);
        }
        return;
      }
      case "bye": {
        const peer = this.#peers.get(from);
        if (peer !== undefined && peer.instance === msg[1]) {
          this.#peers.delete(from);
          this.#dropContribution(peer);
        }
        return;
      }
    }
  }

  /** The data to diff a returning node against: what a grace period kept, else nothing. */
  #adopt(node: string): Local {
    const z = this.#zombies.get(node);
    if (z === undefined) return this.#module.initLocalData(this.#options);
    this.#clock.clearTimeout(z.timer);
    this.#zombies.delete(node);
    // Its contribution is still in the view: the next local data is diffed against it.
    return z.data;
  }

  #dropContribution(peer: Peer<Local>): void {
    this.#notifyView(
      peer.node,
      this.#module.dataDiff(peer.data, this.#module.initLocalData(this.#options)),
    );
  }

  #peerDown(node: string): void {
    const peer = this.#peers.get(node);
    if (peer === undefined || this.#closed) return;
    this.#peers.delete(node);
    if (this.#graceMs === 0) {
      this.#dropContribution(peer);
      return;
    }
    const timer = this.#clock.setTimeout(() => {
      this.#zombies.delete(node);
      if (!this.#closed) this.#dropContribution(peer);
    }, this.#graceMs);
    this.#zombies.set(node, { data: peer.data, timer });
  }

  #translate(msg: unknown, from: string | undefined, instance?: string): void {
    const t = this.#module.translateMessage?.(msg, this.#view, from);
    if (t === undefined) return;
    this.#view = t.view;
    switch (t.type) {
      case "drop":
        return;
      case "update":
        this.#applyLocal(t.update);
        return;
      case "discover": {
        // An old peer's discover: take it as a peer of that version, answer with local data.
        if (typeof t.node !== "string" || !isVersion(t.version)) return;
        if (from !== undefined && from !== t.node) return;
        let peer = this.#peers.get(t.node);
        if (peer === undefined) {
          peer = {
            node: t.node,
            instance: instance ?? `plain:${t.node}`,
            version: t.version,
            data: this.#adopt(t.node),
            seq: -1,
          };
          this.#peers.set(t.node, peer);
          this.#send(t.node, ["discover", this.#instance, this.#version]);
        } else peer.version = t.version;
        this.#sendTranslated(peer, "local_data", this.#local);
        return;
      }
      case "peerUpdate": {
        const peer = this.#peers.get(t.node);
        if (peer === undefined || (from !== undefined && from !== t.node)) return;
        this.#notifyView(t.node, t.update);
        peer.data = this.#module.updateLocalData(t.update, peer.data);
        return;
      }
      case "localData": {
        const peer = this.#peers.get(t.node);
        if (peer === undefined || (from !== undefined && from !== t.node)) return;
        const update = this.#module.dataDiff(peer.data, t.data);
        peer.data = t.data;
        peer.version = t.version;
        this.#notifyView(t.node, update);
        return;
      }
    }
  }
}
