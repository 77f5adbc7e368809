// Injected partitions of a node: the names cut off, with optional expiry.
// Module-private; `Node.injectPartition` and friends are the public face.

import type { Clock, TimerId } from "../base/clock.ts";
import { timeoutOption } from "../base/options.ts";
import { isName } from "./spec.ts";
import type { PartitionInfo } from "./node_types.ts";

type Entry = { nodes: Set<string>; expiresAt?: number; timer?: TimerId };

/** The partitions in force at one node. */
export class Partitions {
  readonly #entries = new Map<number, Entry>();
  #nextRef = 1;

  constructor(
    private readonly self: string,
    private readonly clock: Clock,
    private readonly hooks: {
      log(msg: string): void;
      /** A name is reachable again (no partition holds it any longer). */
      healed(name: string): void;
    },
  ) {}

  inject(nodes: string | readonly string[], options: { ttlMs?: number }): number {
    const list = typeof nodes === "string" ? [nodes] : [...nodes];
    if (list.length === 0 || !list.every(isName)) throw new TypeError("nodes must be node names");
    if (list.includes(this.self)) throw new TypeError("a node cannot partition itself");
    const ref = this.#nextRef++;
    const entry: Entry = { nodes: new Set(list) };
    if (options.ttlMs !== undefined) {
      const ttl = timeoutOption("ttlMs", options.ttlMs, 1);
      entry.expiresAt = this.clock.now() + ttl;
      entry.timer = this.clock.setTimeout(() => this.resolve(ref), ttl);
    }
    this.#entries.set(ref, entry);
    this.hooks.log(`partition ${ref} injected: ${list.join(",")}`);
    return ref;
  }

  resolve(ref: number): boolean {
    const entry = this.#entries.get(ref);
    if (entry === undefined) return false;
    this.#entries.delete(ref);
    if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
    this.hooks.log(`partition ${ref} resolved`);
    for (const name of entry.nodes) if (!this.has(name)) this.hooks.healed(name);
    return true;
  }

  has(name: string): boolean {
    if (this.#entries.size === 0) return false;
    for (const e of this.#entries.values()) if (e.nodes.has(name)) return true;
    return false;
  }

  list(): PartitionInfo[] {
    return [...this.#entries].map(([ref, e]) => ({
      ref,
      nodes: [...e.nodes].sort(),
      expiresAt: e.expiresAt,
    }));
  }

  clear(): void {
    for (const e of this.#entries.values()) {
      if (e.timer !== undefined) this.clock.clearTimeout(e.timer);
    }
    this.#entries.clear();
  }
}
