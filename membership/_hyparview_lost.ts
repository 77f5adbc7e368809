/**
 * HyParView's memory of neighbours lost to a failure: they are asked back now
 * and then (a connect first; only one that answers takes a place), so that two
 * sides of a healed partition merge again. Module-private.
 *
 * @module
 */

import type { Random } from "../base/clock.ts";
import type { NodeSpec } from "./spec.ts";

interface Lost {
  readonly spec: NodeSpec;
  readonly since: number;
}

/** Lost nodes (at most `max`, the oldest forgotten), and those being probed. */
export class LostNodes {
  readonly #lost = new Map<string, Lost>();
  readonly #probing = new Map<string, Lost>();
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #intervalMs: number;
  #next = -Infinity;

  constructor(max: number, ttlMs: number, intervalMs: number) {
    this.#max = max;
    this.#ttlMs = ttlMs;
    this.#intervalMs = intervalMs;
  }

  /** Remembers a node that failed (its first failure time is kept). */
  lose(spec: NodeSpec, now: number): void {
    const old = this.#lost.get(spec.name);
    this.#lost.delete(spec.name);
    this.#lost.set(spec.name, { spec, since: old?.since ?? now });
    if (this.#lost.size > this.#max) this.#lost.delete(this.#lost.keys().next().value!);
  }

  /** `name` was heard from: it is alive. */
  alive(name: string): void {
    this.#lost.delete(name);
  }

  /** True while a connect to `name` tests whether it is back. */
  probing(name: string): boolean {
    return this.#probing.has(name);
  }

  /** The probe of `name` ended; its entry if it was probed. */
  settle(name: string): Lost | undefined {
    const p = this.#probing.get(name);
    this.#probing.delete(name);
    return p;
  }

  /** A probe that failed: lost again, unless past its time to live. */
  unreachable(name: string, now: number): boolean {
    const p = this.settle(name);
    if (p === undefined) return false;
    if (now - p.since <= this.#ttlMs) this.#lost.set(name, p);
    return true;
  }

  /** The names of the lost nodes and of those being probed. */
  names(): Set<string> {
    return new Set([...this.#lost.keys(), ...this.#probing.keys()]);
  }

  /** The specs of the lost nodes. */
  specs(): NodeSpec[] {
    return [...this.#lost.values()].map((l) => l.spec);
  }

  /**
   * Now and then (every probe interval, jittered): one lost node to connect
   * to, taken out of the lost set into the probed one. `isActive` nodes and
   * those lost longer than the time to live are forgotten.
   */
  next(now: number, random: Random, isActive: (name: string) => boolean): NodeSpec | undefined {
    if (this.#next === -Infinity) {
      this.#next = now + this.#intervalMs * random.next();
      return undefined;
    }
    if (now < this.#next) return undefined;
    this.#next = now + this.#intervalMs * (0.75 + random.next() / 2);
    for (const [name, l] of this.#lost) {
      if (now - l.since > this.#ttlMs || isActive(name)) this.#lost.delete(name);
    }
    const names = [...this.#lost.keys()].filter((n) => !this.#probing.has(n));
    if (names.length === 0) return undefined;
    const pick = names[Math.floor(random.next() * names.length)]!;
    const l = this.#lost.get(pick)!;
    this.#lost.delete(pick);
    this.#probing.set(pick, l);
    return l.spec;
  }

  clear(): void {
    this.#lost.clear();
    this.#probing.clear();
  }
}
