/**
 * The simulator's broadcast table: per broadcast, which node got it at which
 * hop and how long after it was sent, and the one broadcast handler every
 * simulated node serves, answering from that table. Module-private.
 *
 * @module
 */

import type { PlumtreeHandlers } from "../broadcast/dispatch.ts";
import type { Broadcast, BroadcastReport, SimNode } from "./_simulation_types.ts";

/** The name of the simulated nodes' one broadcast handler. */
export const SIM_HANDLER = "sim";

/** Every broadcast of a run, by id (ids count from 0). */
export class BroadcastTable {
  readonly #all: Broadcast[] = [];
  /** The cluster's nodes, by index (the simulation's own list, which grows). */
  readonly #nodes: readonly SimNode[];

  constructor(nodes: readonly SimNode[]) {
    this.#nodes = nodes;
  }

  /** A new broadcast from `origin` at `now`, expected by every node alive now: its id. */
  open(origin: SimNode, now: number): number {
    const size = this.#nodes.length;
    const b: Broadcast = {
      origin: origin.index,
      hops: new Int16Array(size).fill(-1),
      expected: new Uint8Array(size),
      sentAt: now,
      delays: new Float32Array(size).fill(NaN),
      payloads: 0,
    };
    for (const x of this.#nodes) if (x.alive) b.expected[x.index] = 1;
    b.hops[origin.index] = 0;
    this.#all.push(b);
    return this.#all.length - 1;
  }

  /** A payload frame of broadcast `id` was sent (eager push or graft answer). */
  sent(id: number): void {
    const b = this.#all[id];
    if (b !== undefined) b.payloads++;
  }

  /** Broadcast `id` reached `n` at `round` hops, at `now`. */
  delivered(n: SimNode, id: number, round: number, now: number): void {
    const b = this.#all[id]!;
    b.hops[n.index] = Math.min(round, 32767);
    b.delays[n.index] = now - b.sentAt;
  }

  /** Node `n`'s broadcast handler: it holds what the table says it got. */
  handlers(n: SimNode): PlumtreeHandlers {
    const held = (id: unknown) => {
      const b = this.#all[id as number];
      return b !== undefined && b.hops[n.index] !== -1;
    };
    return {
      has: (handler) => handler === SIM_HANDLER,
      merge: (_h, id) => {
        const b = this.#all[id as number]!;
        if (b.hops[n.index] !== -1) return false;
        b.hops[n.index] = 0; // delivered; its hop is set from the message (see delivered)
        return true;
      },
      isStale: (_h, id) => this.#all[id as number] === undefined || held(id),
      graft: (_h, id) => held(id) ? { ok: id } : "stale",
    };
  }

  /** The outcome of broadcast `id` so far. */
  report(id: number): BroadcastReport {
    const b = this.#get(id);
    let delivered = 0, missed = 0, ldh = 0;
    for (let i = 0; i < b.hops.length; i++) {
      if (i === b.origin) continue;
      const h = b.hops[i]!;
      if (h >= 0) {
        delivered++;
        if (h > ldh) ldh = h;
      } else if (b.expected[i] && this.#nodes[i]!.alive) missed++;
    }
    return { delivered, missed, payloads: b.payloads, ldh };
  }

  /**
   * The fraction of the nodes expected to get broadcast `id` (alive when it
   * was sent and now, its origin excluded) that got it within `ms` of its
   * sending (1 when none is expected).
   */
  reachedWithin(id: number, ms: number): number {
    const b = this.#get(id);
    let expected = 0, reached = 0;
    for (let i = 0; i < b.hops.length; i++) {
      if (i === b.origin || !b.expected[i] || !this.#nodes[i]!.alive) continue;
      expected++;
      if (b.delays[i]! <= ms) reached++;
    }
    return expected === 0 ? 1 : reached / expected;
  }

  /** The live nodes expected to get broadcast `id` that have not. */
  missedBy(id: number): string[] {
    const b = this.#get(id);
    const out: string[] = [];
    for (const n of this.#nodes) {
      if (n.index !== b.origin && b.hops[n.index] === -1 && b.expected[n.index] && n.alive) {
        out.push(n.name);
      }
    }
    return out;
  }

  #get(id: number): Broadcast {
    const b = this.#all[id];
    if (b === undefined) throw new RangeError(`no broadcast ${id}`);
    return b;
  }
}
