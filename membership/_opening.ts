// What waits for a member's connection to open: a member listed by members()
// is one a send can reach, so a send, an acknowledged send or a call to a
// member whose connection is still opening waits for it (bounded by
// `connectTimeoutMs` and `sendQueueBytesMax`) and goes out first, in order,
// when it is up. Module-private: the delivery layer composes it.

import type { TimerId } from "../base/clock.ts";
import type { NodeConfig } from "./_config.ts";
import { NodeDownError } from "./errors.ts";
import type { Peer } from "./_peers.ts";

/**
 * Something that waits for a member's connection to open: `run` once it is
 * up, in the order they came; `fail` when it does not come up (the connect
 * failed, the member went, or the wait passed `connectTimeoutMs`).
 */
export interface Waiting {
  run(peer: Peer): void;
  fail(error: unknown): void;
  bytes: number;
}

interface Opening {
  items: Waiting[];
  bytes: number;
  timer: TimerId;
}

/** The waits for opening connections of one node, by member. */
export class OpeningWaits {
  readonly #cfg: NodeConfig;
  readonly #byName = new Map<string, Opening>();

  constructor(cfg: NodeConfig) {
    this.#cfg = cfg;
  }

  /** True while something waits for `name`'s connection (a send to it waits too, to keep order). */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /**
   * True when a send to `peer` must wait: its connection is opening, or
   * others wait for it already. False for a peer that is up with nothing
   * waiting, and for one that is really down (`down` tells them apart).
   */
  mustWait(peer: Peer): boolean {
    return (!peer.up && peer.opening) || this.#byName.has(peer.name);
  }

  /** True for a peer that is down, not opening, with nothing waiting for it. */
  down(peer: Peer): boolean {
    return !peer.up && !peer.opening && !this.#byName.has(peer.name);
  }

  /** Queues `w` until `name`'s connection is up; false when `sendQueueBytesMax` bytes wait already. */
  wait(name: string, w: Waiting): boolean {
    let o = this.#byName.get(name);
    if (o !== undefined && o.bytes + w.bytes > this.#cfg.link.sendQueueBytesMax) return false;
    if (o === undefined) {
      const { clock, connectTimeoutMs } = this.#cfg;
      const timer = clock.setTimeout(
        () =>
          this.fail(name, new NodeDownError(name, `not connected within ${connectTimeoutMs} ms`)),
        connectTimeoutMs,
      );
      this.#byName.set(name, o = { items: [], bytes: 0, timer });
    }
    o.items.push(w);
    o.bytes += w.bytes;
    return true;
  }

  /** `peer`'s connection is up: what waited for it goes out, in order. */
  flush(peer: Peer): void {
    const o = this.#byName.get(peer.name);
    if (o === undefined) return;
    this.#byName.delete(peer.name);
    this.#cfg.clock.clearTimeout(o.timer);
    for (const w of o.items) w.run(peer);
  }

  /** `name`'s connection did not open: what waited for it fails. */
  fail(name: string, error: unknown): void {
    const o = this.#byName.get(name);
    if (o === undefined) return;
    this.#byName.delete(name);
    this.#cfg.clock.clearTimeout(o.timer);
    for (const w of o.items) w.fail(error);
  }

  close(error: unknown): void {
    for (const name of [...this.#byName.keys()]) this.fail(name, error);
  }
}
