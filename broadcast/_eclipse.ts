// The eclipse check of a Plumtree server on a partial view: now and then this
// node asks one random passive-view member which broadcasts it delivered a
// little while ago (it answers from its catch-up ring). If this node has none
// of some of them, its neighbours delivered nothing that others got (they
// swallow, or they are cut off with it): it logs it and rotates them out,
// taking passive members instead (HyParView's `rotateNeighbours`).
// Module-private: Plumtree composes it.

import type { Clock, Random, TimerId } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { Node } from "../membership/node.ts";
import type { BroadcastHandler } from "./handler.ts";

/** Ids asked of a passive member at most. */
export const ECLIPSE_IDS_MAX = 64;
/**
 * A passive member answers only ids it delivered at least this long ago (or
 * three lazy ticks, if longer): by then the IHAVE and graft paths have had
 * their time, so an id missing here was not merely late.
 */
export const ECLIPSE_SETTLED_MS = 5000;

// deno-lint-ignore no-explicit-any
type Handler = BroadcastHandler<any, any, any>;

/** What the check needs from its server. */
export interface EclipseHost {
  readonly node: Node;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly handlers: ReadonlyMap<string, Handler>;
  /** The endpoint passive members answer on. */
  readonly endpoint: string;
  /** Counts a check that found this node missing what a passive member has. */
  found(missing: number): void;
}

/** Periodic eclipse checks; `intervalMs` 0 turns them off. */
export class EclipseCheck {
  readonly #h: EclipseHost;
  readonly #intervalMs: number;
  #timer: TimerId | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  /** Ids already found missing (at most ECLIPSE_IDS_MAX × 4): each counts once, or a node that
   * never recovers old broadcasts would rotate its new neighbours out again and again. */
  readonly #reported = new Set<string>();

  constructor(host: EclipseHost, intervalMs: number) {
    this.#h = host;
    this.#intervalMs = intervalMs;
  }

  schedule(): void {
    if (this.#closed || this.#intervalMs === 0 || this.#h.node.strategy === "full-mesh") return;
    this.#timer = this.#h.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.check().then(() => {}, () => {}).finally(() => {
        this.#running = undefined;
        this.schedule();
      });
    }, this.#intervalMs);
  }

  /** One check now: true when the neighbours were rotated out. */
  async check(): Promise<boolean> {
    const { node, random } = this.#h;
    const passive = node.passiveMembers();
    if (passive.length === 0 || this.#closed) return false;
    const asked = passive[Math.floor(random.next() * passive.length)]!;
    let got: unknown;
    try {
      got = await node.call(asked, this.#h.endpoint, null, {
        timeoutMs: Math.min(5000, this.#intervalMs || 5000),
      });
    } catch {
      return false; // not reachable, or no Plumtree there: nothing learned
    }
    if (!Array.isArray(got) || this.#closed) return false;
    let known = 0;
    const missingKeys: string[] = [];
    for (const e of got.slice(0, ECLIPSE_IDS_MAX)) {
      if (!Array.isArray(e) || typeof e[0] !== "string") continue;
      const h = this.#h.handlers.get(e[0]);
      if (h === undefined) continue;
      const key = `${e[0]}\u0000${JSON.stringify(e[1])}`;
      if (this.#reported.has(key)) continue;
      known++;
      try {
        if (!(await h.isStale(e[1]))) missingKeys.push(key);
      } catch { /* a handler that cannot tell: not counted */ }
    }
    const missing = missingKeys.length;
    // Most of them missing, not one that is late: the neighbours deliver nothing.
    if (missing === 0 || missing * 2 < known || this.#closed) return false;
    for (const k of missingKeys) this.#reported.add(k);
    while (this.#reported.size > ECLIPSE_IDS_MAX * 4) {
      this.#reported.delete(this.#reported.values().next().value!);
    }
    this.#h.found(missing);
    const neighbours = node.members().filter((n) => n !== node.name).join(", ") || "none";
    return node.rotateNeighbours(
      `${missing} of ${known} broadcasts that passive member ${asked} delivered never reached ` +
        `this node through its neighbours (${neighbours}): possible eclipse`,
      asked,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#h.clock.clearTimeout(this.#timer);
    await this.#running;
  }
}
