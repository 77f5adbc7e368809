// Data publishers over the full mesh (OTP's protocol), where every node has a
// connection to every other: on start, and on each node up, a publisher sends
// DISCOVER to its peers; a DISCOVER is answered with the full local data
// (translated to the peer's version) and, from an unknown peer, with a
// DISCOVER back; after that, updates go out as diffs. A repeated full local
// data is applied as a diff; updates from unknown peers are dropped; when a
// peer goes down its whole contribution leaves the view
// (`dataDiff(peerData, initLocalData())`), after `downGraceMs` if set.
//
// Safer than OTP under message loss: murmur's `send` is at most once, and a
// short partition can drop an update without any node going down. Updates
// carry a sequence number per publisher; a gap, or a periodic tick
// (`syncIntervalMs`: to every peer for three intervals after a local update,
// then to one peer per interval, round-robin) showing a newer sequence, makes
// the receiver ask for the peer's full local data again (RESYNC).
// Module-private: `DataPublisher` picks this engine on a full-mesh node.

import { checkSendable } from "../base/codec.ts";
import type { Clock, TimerId } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { Node } from "../membership/node.ts";
import { isVersion, type Listener, type Version } from "./module.ts";
import type { PublisherEngine, PublisherStats } from "./_engine.ts";
import type { ScopeState } from "./_scope.ts";
import { isPlain, isWire, type Wire } from "./_wire.ts";

/** Sync intervals after a local update during which the tick goes to every peer. */
const TICK_ALL_ROUNDS = 3;

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

/** Settings of a mesh engine. */
export interface MeshSettings {
  standalone: boolean;
  graceMs: number;
  clock: Clock;
  log: Logger;
  syncIntervalMs: number;
}

/** One scope's publisher on a full-mesh node. */
export class MeshPublisher<Local, Update, View, Sub, SubResult>
  implements PublisherEngine<Local, Update, View, Sub, SubResult> {
  readonly #node: Node;
  readonly #s: ScopeState<Local, Update, View, Sub, SubResult>;
  readonly #instance = crypto.randomUUID();
  readonly #o: MeshSettings;
  readonly #peers = new Map<string, Peer<Local>>(); // by node name
  readonly #zombies = new Map<string, { data: Local; timer: TimerId }>();
  #seq = 0;
  #tickTimer: TimerId | undefined;
  /** When this node last updated its local data (its clock). */
  #updatedAt = -Infinity;
  /** Round-robin position of the idle tick. */
  #tickNext = 0;
  #closed = false;
  readonly #stats: PublisherStats = {
    localUpdates: 0,
    remoteUpdates: 0,
    fullSyncs: 0,
    dropped: 0,
    resyncs: 0,
    deaths: 0,
    refutations: 0,
  };
  readonly #offs: (() => void)[] = [];

  constructor(
    node: Node,
    state: ScopeState<Local, Update, View, Sub, SubResult>,
    settings: MeshSettings,
  ) {
    this.#node = node;
    this.#s = state;
    this.#o = settings;
    this.#offs.push(node.register(this.#endpoint, (msg, ctx) => this.#receive(ctx.from, msg)));
    if (!settings.standalone) {
      const discover = (peer: string) =>
        this.#send(peer, ["discover", this.#instance, this.#s.version]);
      this.#offs.push(node.onUp("*", discover));
      this.#offs.push(node.onDown("*", (peer) => this.#peerDown(peer)));
      for (const peer of node.connectedMembers()) if (peer !== node.name) discover(peer);
      this.#scheduleTick();
    }
  }

  get #endpoint(): string {
    return `murmur.pub.${this.#s.scope}`;
  }

  get view(): View {
    return this.#s.view;
  }

  get localData(): Local {
    return this.#s.local;
  }

  peers(): { node: string; version: Version }[] {
    return [...this.#peers.values()].map((p) => ({ node: p.node, version: p.version }))
      .sort((a, b) => (a.node < b.node ? -1 : 1));
  }

  stats(): PublisherStats {
    return { ...this.#stats };
  }

  update(update: Update): void {
    checkSendable(update, "update", `cannot update publisher "${this.#s.scope}"`);
    // Translations first: one that cannot cross the wire refuses the update before anything changes.
    const outgoing: [Peer<Local>, Wire][] = [];
    const bytes = this.#s.checkSize(update, "update");
    for (const p of this.#peers.values()) {
      const w = this.#translated(p, "update", update);
      if (p.version !== this.#s.version) this.#s.checkSize(w, "update"); // else: the update's size
      outgoing.push([p, w]);
    }
    this.#s.applyLocal(this.#node.name, update, () => this.#others(), bytes);
    this.#seq++;
    this.#updatedAt = this.#o.clock.now();
    this.#stats.localUpdates++;
    for (const [p, w] of outgoing) {
      // The sequence number is the one of this update.
      if (w[0] === "update" || w[0] === "plain") w[2] = this.#seq;
      this.#send(p.node, w);
    }
  }

  subscribe(sub: Sub, listener: Listener): { ref: number; result: SubResult } {
    return this.#s.subscribe(sub, listener);
  }

  unsubscribe(ref: number): boolean {
    return this.#s.unsubscribe(ref);
  }

  message(msg: unknown): void {
    this.#translate(msg, undefined);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    for (const p of this.#peers.values()) this.#send(p.node, ["bye", this.#instance]);
    this.#closed = true;
    if (this.#tickTimer !== undefined) this.#o.clock.clearTimeout(this.#tickTimer);
    for (const off of this.#offs) off();
    for (const z of this.#zombies.values()) this.#o.clock.clearTimeout(z.timer);
    this.#zombies.clear();
    this.#s.stop();
    return Promise.resolve();
  }

  // -------------------------------------------------------------- internals

  *#others(): Iterable<[string, Local]> {
    for (const p of this.#peers.values()) yield [p.node, p.data];
    for (const [node, z] of this.#zombies) yield [node, z.data];
  }

  #send(to: string, msg: Wire): void {
    if (this.#closed || this.#o.standalone) return;
    this.#node.send(to, this.#endpoint, msg).catch((e) => {
      this.#o.log({
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
    const m = this.#s.module, mine = this.#s.version;
    const t = kind === "local_data"
      ? m.translateLocalData(mine, peer.version, value as Local)
      : m.translateUpdate(mine, peer.version, value as Update);
    const what = `publisher "${this.#s.scope}": translated for version ${String(peer.version)}`;
    if (isPlain(t)) {
      checkSendable(t.plainMessages, "plainMessages", what);
      return kind === "local_data"
        ? ["plain", this.#instance, this.#seq, t.plainMessages, 1]
        : ["plain", this.#instance, this.#seq, t.plainMessages];
    }
    checkSendable(t, kind === "local_data" ? "data" : "update", what);
    return kind === "local_data"
      ? ["local_data", this.#instance, mine, t, this.#seq]
      : ["update", this.#instance, this.#seq, t];
  }

  #sendTranslated(peer: Peer<Local>, kind: "local_data" | "update", value: Local | Update): void {
    let w: Wire;
    try {
      w = this.#translated(peer, kind, value);
    } catch (e) {
      this.#o.log({
        level: "error",
        node: this.#node.name,
        peer: peer.node,
        msg: `publisher "${this.#s.scope}": ${kind} not sent`,
        error: e,
      });
      return;
    }
    this.#send(peer.node, w);
  }

  /**
   * The sync tick: for `TICK_ALL_ROUNDS` intervals after a local update it
   * goes to every peer (one that lost the update asks again at once); after
   * that to one peer per interval, round-robin, so an idle publisher costs
   * the same at any cluster size.
   */
  #scheduleTick(): void {
    this.#tickTimer = this.#o.clock.setTimeout(() => {
      if (this.#closed) return;
      this.#scheduleTick();
      const tick: Wire = ["tick", this.#instance, this.#seq];
      const now = this.#o.clock.now();
      if (now - this.#updatedAt <= TICK_ALL_ROUNDS * this.#o.syncIntervalMs) {
        for (const p of this.#peers.values()) this.#send(p.node, tick);
        return;
      }
      if (this.#peers.size === 0) return;
      const peers = [...this.#peers.keys()];
      this.#send(peers[this.#tickNext++ % peers.length]!, tick);
    }, this.#o.syncIntervalMs);
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
    const now = this.#o.clock.now();
    if (peer.resyncAt !== undefined && now - peer.resyncAt < this.#o.syncIntervalMs) return;
    peer.resyncAt = now;
    this.#stats.resyncs++;
    this.#send(peer.node, ["resync", this.#instance]);
  }

  #receive(from: string, raw: unknown): void {
    if (this.#closed || this.#o.standalone) return;
    if (!isWire(raw)) {
      this.#o.log({
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
      this.#o.log({
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
          this.#send(from, ["discover", this.#instance, this.#s.version]);
        } else peer!.version = version;
        this.#sendTranslated(peer!, "local_data", this.#s.local);
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
        const update = this.#s.module.dataDiff(peer.data, data as Local);
        peer.data = data as Local;
        this.#s.notify(from, update);
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
        this.#s.notify(from, update as Update);
        peer.data = this.#s.module.updateLocalData(update as Update, peer.data);
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
          this.#sendTranslated(peer, "local_data", this.#s.local);
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
    if (z === undefined) return this.#s.empty();
    this.#o.clock.clearTimeout(z.timer);
    this.#zombies.delete(node);
    // Its contribution is still in the view: the next local data is diffed against it.
    return z.data;
  }

  #dropContribution(peer: Peer<Local>): void {
    this.#s.replace(peer.node, peer.data, this.#s.empty());
  }

  #peerDown(node: string): void {
    const peer = this.#peers.get(node);
    if (peer === undefined || this.#closed) return;
    this.#peers.delete(node);
    this.#stats.deaths++;
    if (this.#o.graceMs === 0) {
      this.#dropContribution(peer);
      return;
    }
    const timer = this.#o.clock.setTimeout(() => {
      this.#zombies.delete(node);
      if (!this.#closed) this.#dropContribution(peer);
    }, this.#o.graceMs);
    this.#zombies.set(node, { data: peer.data, timer });
  }

  #translate(msg: unknown, from: string | undefined, instance?: string): void {
    const t = this.#s.module.translateMessage?.(msg, this.#s.view, from);
    if (t === undefined) return;
    this.#s.view = t.view;
    switch (t.type) {
      case "drop":
        return;
      case "update":
        this.update(t.update);
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
          this.#send(t.node, ["discover", this.#instance, this.#s.version]);
        } else peer.version = t.version;
        this.#sendTranslated(peer, "local_data", this.#s.local);
        return;
      }
      case "peerUpdate": {
        const peer = this.#peers.get(t.node);
        if (peer === undefined || (from !== undefined && from !== t.node)) return;
        this.#s.notify(t.node, t.update);
        peer.data = this.#s.module.updateLocalData(t.update, peer.data);
        return;
      }
      case "localData": {
        const peer = this.#peers.get(t.node);
        if (peer === undefined || (from !== undefined && from !== t.node)) return;
        const update = this.#s.module.dataDiff(peer.data, t.data);
        peer.data = t.data;
        peer.version = t.version;
        this.#s.notify(t.node, update);
        return;
      }
    }
  }
}
