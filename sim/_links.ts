/**
 * The simulator's network: directed links between simulated nodes, as a
 * node's {@linkcode Node} sees its connections. A link comes up after a
 * connect round trip (or fails after `connectTimeoutMs` when its target is
 * gone or cut off), carries frames in order with seeded latency (Plumtree
 * frames may be lost), breaks on both sides when either closes it, and falls
 * silent when a host crashes or a partition cuts it. Module-private.
 *
 * @module
 */

import type { Random } from "../base/clock.ts";
import type { NodeSpec } from "../membership/spec.ts";
import type { StrategyEffects } from "../membership/strategy.ts";
import type { EventQueue } from "./_queue.ts";
import type { SimNode, SimulationCounters } from "./_simulation_types.ts";

/** What the links need of the simulation. */
export interface LinksHost {
  readonly queue: EventQueue;
  readonly random: Random;
  readonly counters: SimulationCounters;
  readonly options: {
    readonly latencyMs: readonly [number, number];
    readonly loss: number;
    readonly connectTimeoutMs: number;
    readonly reconnectMs: number;
  };
  now(): number;
  node(name: string): SimNode | undefined;
  /** Carries out a strategy's effects for `n`. */
  apply(n: SimNode, fx: StrategyEffects): void;
  /** `n`'s link to `to` came up: the node's strategy, Plumtree and publishers hear of it. */
  up(n: SimNode, to: string): void;
  /** `n`'s link to `to` is down (closed, broken or silent). */
  down(n: SimNode, to: string): void;
  /** A frame arrives at `t` from `from` (kinds as in {@linkcode SimLinks.send}). */
  receive(t: SimNode, from: string, msg: unknown, kind: 0 | 1 | 2 | 3): void;
  /** The encoded size of a frame's message, when bytes are counted (else undefined). */
  size(msg: unknown): number | undefined;
}

/** The links of a simulated cluster. */
export class SimLinks {
  readonly #h: LinksHost;
  /** Per directed link, the arrival time of its last frame (frames stay in order). */
  readonly #lastArrival = new Map<number, number>();
  #linkSeq = 0;
  /** Links (dialer index * 2^20 + target index) whose close by the target is on its way. */
  readonly #closing = new Map<number, number>();
  /** Partition group of each node index (undefined: no partition). */
  #group: Int32Array | undefined;

  constructor(host: LinksHost) {
    this.#h = host;
  }

  /** Links (dialer index * 2^20 + target index) whose close by the target is on its way. */
  get closing(): ReadonlyMap<number, number> {
    return this.#closing;
  }

  /** One network latency, drawn from `latencyMs`. */
  latency(): number {
    const [lo, hi] = this.#h.options.latencyMs;
    return lo + this.#h.random.next() * (hi - lo);
  }

  /** True when a partition puts `a` and `b` on different sides. */
  cut(a: SimNode, b: SimNode): boolean {
    const g = this.#group;
    return g !== undefined && g[a.index] !== g[b.index];
  }

  /** Splits the cluster: the nodes whose index `side` holds on one side, all others on the other. */
  partition(size: number, side: Iterable<number>): void {
    this.#group = new Int32Array(size);
    for (const i of side) this.#group[i] = 1;
  }

  /** Ends the partition. */
  heal(): void {
    this.#group = undefined;
  }

  /** A node was added (a partition in place leaves it on the first side). */
  added(size: number): void {
    if (this.#group !== undefined) this.#group = grow(this.#group, size);
  }

  /** `n` wants a link to `spec`'s node (kept up, reconnected after failures). */
  ensure(n: SimNode, spec: NodeSpec): void {
    if (spec.name === n.name) return;
    n.wanted.set(spec.name, spec);
    this.connect(n, spec.name);
  }

  /** Opens `n`'s link to `to` if it is wanted and neither up nor opening. */
  connect(n: SimNode, to: string): void {
    if (n.up.has(to) || n.connecting.has(to) || !n.wanted.has(to)) return;
    const h = this.#h;
    const target = h.node(to);
    n.connecting.add(to);
    const ok = target !== undefined && target.alive && !this.cut(n, target);
    // A crashed process is refused after a round trip; a crashed host or one
    // across a partition is never heard from.
    const delay = ok || target?.crash === "process"
      ? 2 * this.latency()
      : h.options.connectTimeoutMs;
    h.queue.push(h.now() + delay, () => {
      if (!n.alive) return;
      n.connecting.delete(to);
      if (!n.wanted.has(to)) return;
      const t = h.node(to);
      if (t !== undefined && t.alive && !this.cut(n, t)) {
        n.linkEpoch.set(to, ++this.#linkSeq);
        t.inbound.add(n.name);
        h.apply(t, t.strategy.seen(n.spec, h.now()));
        n.up.add(to);
        h.up(n, to);
      } else {
        const fx = n.strategy.unreachable?.(to, h.now());
        if (fx !== undefined) h.apply(n, fx);
        this.#retry(n, to);
      }
    });
  }

  /** Closes `n`'s links with `to` (both directions), as Peers.drop does. */
  drop(n: SimNode, to: string): void {
    const h = this.#h;
    n.wanted.delete(to);
    n.connecting.delete(to);
    const wasUp = n.up.delete(to);
    const t = h.node(to);
    const hadInbound = n.inbound.delete(to);
    if (t !== undefined && (wasUp || hadInbound)) {
      // The other side sees its link to this node break, after what this node
      // sent it (a connection's close comes after its last frame). Only the
      // links closed now: one opened again meanwhile stays (a late close once
      // took a newer link's inbound side, leaving its dialer up on a link the
      // other side did not have).
      const outEpoch = n.linkEpoch.get(to),
        inEpoch = hadInbound ? t.linkEpoch.get(n.name) : undefined;
      const key = n.index * 0x100000 + t.index;
      const at = Math.max(h.now() + this.latency(), (this.#lastArrival.get(key) ?? 0) + 0.001);
      const back = t.index * 0x100000 + n.index;
      this.#closing.set(back, (this.#closing.get(back) ?? 0) + 1);
      h.queue.push(at, () => {
        const c = this.#closing.get(back)! - 1;
        if (c === 0) this.#closing.delete(back);
        else this.#closing.set(back, c);
        if (!(n.up.has(to) && n.linkEpoch.get(to) !== outEpoch)) t.inbound.delete(n.name);
        if (
          t.alive && t.up.has(n.name) &&
          (inEpoch === undefined || t.linkEpoch.get(n.name) === inEpoch)
        ) this.linkDown(t, n.name, "closed");
      });
    }
    if (wasUp) h.down(n, to);
  }

  /** A link of `n` to `to` broke: closed by the peer, reset, or silent (unless healed meanwhile). */
  linkDown(n: SimNode, to: string, why: "closed" | "reset" | "silent"): void {
    if (!n.alive || !n.up.has(to)) return;
    const t = this.#h.node(to);
    if (why === "silent" && t !== undefined && t.alive && !this.cut(n, t)) return; // healed meanwhile
    n.up.delete(to);
    this.#h.down(n, to);
    this.#retry(n, to);
  }

  /**
   * Sends one frame on `n`'s link to `to` (dropped when that link is not up).
   * Kind: 0 membership, 1 Plumtree, 2 the publishers' Plumtree, 3 publisher
   * anti-entropy; Plumtree frames may be lost (`loss`), the others ride a
   * reliable stream.
   */
  send(n: SimNode, to: string, msg: unknown, kind: 0 | 1 | 2 | 3): void {
    if (!n.up.has(to)) return;
    const h = this.#h;
    const t = h.node(to)!;
    const counters = h.counters;
    counters.frames++;
    if (kind === 1) counters.plumtreeFrames++;
    else if (kind === 0) counters.membershipFrames++;
    else counters.publisherFrames++;
    const size = h.size(msg);
    if (size !== undefined) counters.bytes += size + 8;
    const lossy = kind === 1 || kind === 2;
    const loss = h.options.loss;
    if (!t.alive || this.cut(n, t) || (lossy && loss > 0 && h.random.next() < loss)) {
      counters.lost++;
      return;
    }
    const key = n.index * 0x100000 + t.index;
    const at = Math.max(h.now() + this.latency(), (this.#lastArrival.get(key) ?? 0) + 0.001);
    this.#lastArrival.set(key, at);
    h.queue.push(at, () => {
      if (t.alive && n.alive) h.receive(t, n.name, msg, kind);
    });
  }

  #retry(n: SimNode, to: string): void {
    const h = this.#h;
    if (n.wanted.has(to)) h.queue.push(h.now() + h.options.reconnectMs, () => this.connect(n, to));
  }
}

function grow(a: Int32Array, n: number): Int32Array {
  const b = new Int32Array(n);
  b.set(a);
  return b;
}
