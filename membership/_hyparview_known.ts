/**
 * HyParView's memory of the nodes it heard of (handshakes, walks, shuffles):
 * who a name is, and whom to ask when the views run dry. Bounded; the oldest
 * quarter goes at once past the bound. Module-private.
 *
 * @module
 */

import type { Random } from "../base/clock.ts";
import type { NodeSpec } from "./spec.ts";

/** The specs heard of, oldest first, at most `max`. */
export class KnownNodes {
  #known = new Map<string, NodeSpec>();
  readonly #max: number;
  readonly #self: () => string;

  /** @param self This node's name (never remembered). */
  constructor(max: number, self: () => string) {
    this.#max = max;
    this.#self = self;
  }

  /** The spec of `name`, if heard of. */
  get(name: string): NodeSpec | undefined {
    return this.#known.get(name);
  }

  /** Forgets `name` (it was found unreachable). */
  delete(name: string): void {
    this.#known.delete(name);
  }

  /** Every spec, oldest first. */
  values(): IterableIterator<NodeSpec> {
    return this.#known.values();
  }

  /** Remembers `spec` (the newest incarnation wins) as the newest entry. */
  learn(spec: NodeSpec): void {
    if (spec.name === this.#self()) return;
    const old = this.#known.get(spec.name);
    if (old === spec || (old !== undefined && old.incarnation > spec.incarnation)) return;
    this.#known.delete(spec.name);
    this.#known.set(spec.name, spec);
    if (this.#known.size > this.#max) this.#forgetOldest();
  }

  /**
   * The oldest quarter goes at once, the rest into a new Map. Deleting one
   * entry per insert from the front of a Map walks the deleted slots before it
   * each time (a tenth of the simulator's time); deleting in place leaves the
   * table V8 doubled when the bound was passed: twice the bound's capacity per
   * node (57 KiB, not 28, at the default), which a simulation of 100,000 nodes
   * holds 100,000 times.
   */
  #forgetOldest(): void {
    let skip = Math.ceil(this.#max / 4);
    const kept = new Map<string, NodeSpec>();
    for (const [name, spec] of this.#known) {
      if (skip > 0) skip--;
      else kept.set(name, spec);
    }
    this.#known = kept;
  }

  /** A random one of those `skip` does not exclude (neighbours, passive members, the failed). */
  pick(random: Random, skip: (name: string) => boolean): NodeSpec | undefined {
    const out: NodeSpec[] = [];
    for (const k of this.#known.values()) if (!skip(k.name)) out.push(k);
    return out.length === 0 ? undefined : out[Math.floor(random.next() * out.length)];
  }
}
