/**
 * HyParView's shuffle: now and then a node sends itself and a sample of its
 * views on a random walk of `activeRandomWalkLength` hops; the node where the
 * walk ends answers along the same path with a sample of its passive view,
 * and both take what they got into their passive views, evicting first what
 * they sent. The hops learn the addresses on the way (after a mass failure, a
 * node left alone rejoins through one it knows). Module-private: HyParView
 * composes it.
 *
 * @module
 */

import { HPV, type HyParViewOptions, PATH_MAX } from "./hyparview_options.ts";
import type { NodeSpec } from "./spec.ts";
import type { StrategyEffects } from "./strategy.ts";

/** What the shuffle needs from its HyParView. */
export interface ShuffleHost {
  readonly self: NodeSpec;
  readonly options: Readonly<Required<HyParViewOptions>>;
  /** Active neighbours whose connection is up. */
  up(): ReadonlySet<string>;
  activeView(): Iterable<NodeSpec>;
  passiveView(): Iterable<NodeSpec>;
  /** One of `items` at random (undefined when empty). */
  pick<T>(items: T[]): T | undefined;
  /** Up to `n` of `items` at random. */
  sample<T>(items: T[], n: number): T[];
  send(fx: StrategyEffects, to: string, msg: unknown): void;
  /** Remembers a node heard of (the known-node memory). */
  learn(spec: NodeSpec): void;
  /** Takes `spec` into the passive view, evicting one of `preferEvict` first when full. */
  addPassive(spec: NodeSpec, preferEvict: readonly string[]): void;
}

/** The shuffles of one node: the walk it started last and the answers to others' walks. */
export class Shuffles {
  readonly #h: ShuffleHost;
  /** Names this node sent in its last shuffle: evicted first for what comes back. */
  #shuffled: string[] = [];

  constructor(host: ShuffleHost) {
    this.#h = host;
  }

  /** Starts a shuffle through a random neighbour that is up. */
  start(fx: StrategyEffects): void {
    const h = this.#h;
    const to = h.pick([...h.up()]);
    if (to === undefined) return;
    const active = h.sample(
      [...h.activeView()].filter((s) => s.name !== to),
      h.options.shuffleActiveCount,
    );
    const passive = h.sample([...h.passiveView()], h.options.shufflePassiveCount);
    const specs = [h.self, ...active, ...passive];
    this.#shuffled = specs.map((s) => s.name);
    h.send(fx, to, [HPV.Shuffle, h.options.activeRandomWalkLength, specs, [h.self.name]]);
  }

  /** A SHUFFLE from `from`: passed on while its walk lasts, else answered and taken in. */
  received(
    from: string,
    ttl: number,
    specs: NodeSpec[],
    path: string[],
    fx: StrategyEffects,
  ): void {
    const h = this.#h;
    const next = [...h.up()].filter((n) => n !== from && !path.includes(n));
    if (ttl > 1 && next.length > 0 && path.length < PATH_MAX) {
      for (const s of specs) h.learn(s);
      h.send(fx, h.pick(next)!, [HPV.Shuffle, ttl - 1, specs, [...path, h.self.name]]);
      return;
    }
    const reply = h.sample([...h.passiveView()], specs.length);
    const back = path.at(-1);
    if (back !== undefined) {
      h.send(fx, from, [HPV.ShuffleReply, reply, path.slice(0, -1)]);
    }
    const sent = reply.map((s) => s.name);
    // Learnt where the walk ends (the hops on the way only pass them on).
    for (const s of specs) {
      h.learn(s);
      h.addPassive(s, sent);
    }
  }

  /** A SHUFFLE_REPLY: passed on toward the walk's origin, or taken in there. */
  replied(specs: NodeSpec[], path: string[], fx: StrategyEffects): void {
    const h = this.#h;
    const back = path.at(-1);
    if (back !== undefined) {
      // A hop of the walk: pass the answer on toward the origin.
      if (h.up().has(back)) h.send(fx, back, [HPV.ShuffleReply, specs, path.slice(0, -1)]);
      return;
    }
    for (const s of specs) {
      h.learn(s);
      h.addPassive(s, this.#shuffled);
    }
    this.#shuffled = [];
  }
}
