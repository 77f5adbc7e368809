// Anti-entropy exchanges of a Plumtree server (Partisan's periodic exchange):
// one random handler with one random peer every `exchangeTickMs`, every
// handler with each peer that comes up, at most `exchangesMax` running and
// one waiting per handler and peer. Module-private: Plumtree composes it.

import type { Clock, Random, TimerId } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { BroadcastHandler } from "./handler.ts";

/** A running anti-entropy exchange. */
export interface ExchangeInfo {
  /** Its reference, for `cancelExchanges`. */
  readonly ref: number;
  /** The handler. */
  readonly handler: string;
  /** The peer. */
  readonly peer: string;
  /** When it started (clock time). */
  readonly startedAt: number;
}

/** Which exchanges `Plumtree.cancelExchanges` cancels. */
export type ExchangeSelector = "all" | { peer: string } | { handler: string } | number;

// deno-lint-ignore no-explicit-any
type Handler = BroadcastHandler<any, any, any>;

/** What the exchanges need from their server. */
export interface ExchangeHost {
  readonly node: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly handlers: ReadonlyMap<string, Handler>;
  /** The members broadcast to (self included). */
  members(): readonly string[];
  /** True when `peer` is connected now. */
  connected(peer: string): boolean;
  /** Counts an exchange started. */
  started(): void;
}

/** The exchanges of one Plumtree server. */
export class Exchanges {
  readonly #h: ExchangeHost;
  readonly #tickMs: number;
  readonly #max: number;
  readonly #running = new Map<
    number,
    ExchangeInfo & { ctl: AbortController; done: Promise<void> }
  >();
  /** Exchanges waiting for a slot, by handler and peer (one each). */
  readonly #queue = new Map<string, { handler: string; peer: string }>();
  #nextRef = 1;
  #timer: TimerId | undefined;
  #closed = false;

  constructor(host: ExchangeHost, tickMs: number, max: number) {
    this.#h = host;
    this.#tickMs = tickMs;
    this.#max = max;
  }

  /** Running and waiting. */
  get pending(): number {
    return this.#running.size + this.#queue.size;
  }

  /** The exchanges running now. */
  list(): ExchangeInfo[] {
    return [...this.#running.values()].map(({ ref, handler, peer, startedAt }) => ({
      ref,
      handler,
      peer,
      startedAt,
    }));
  }

  /** Starts the periodic exchange. */
  schedule(): void {
    this.#timer = this.#h.clock.setTimeout(() => {
      this.schedule();
      if (this.#running.size >= this.#max) return;
      const peers = this.#h.members().filter((m) => m !== this.#h.node);
      const handlers = [...this.#h.handlers.values()];
      if (peers.length === 0 || handlers.length === 0) return;
      const peer = peers[Math.floor(this.#h.random.next() * peers.length)]!;
      const h = handlers[Math.floor(this.#h.random.next() * handlers.length)]!;
      void this.run(h, peer);
    }, this.#tickMs);
  }

  /**
   * A peer came up (a restart, a healed partition, a late start): every
   * handler exchanges with it now, `exchangesMax` at a time; the rest wait
   * their turn (one entry per handler and peer).
   */
  with(peer: string): void {
    if (this.#closed) return;
    for (const h of this.#h.handlers.values()) {
      this.#queue.set(`${h.name}\u0000${peer}`, { handler: h.name, peer });
    }
    this.#pump();
  }

  /** Cancels running exchanges (their signals abort) and drops matching waiting ones. */
  cancel(selector: ExchangeSelector): number {
    const hit = (e: { ref?: number; handler: string; peer: string }) =>
      selector === "all" || (typeof selector === "number" && selector === e.ref) ||
      (typeof selector === "object" && "peer" in selector && selector.peer === e.peer) ||
      (typeof selector === "object" && "handler" in selector && selector.handler === e.handler);
    for (const [k, q] of [...this.#queue]) if (hit(q)) this.#queue.delete(k);
    let n = 0;
    for (const e of [...this.#running.values()]) {
      if (hit(e)) {
        e.ctl.abort(new Error("exchange cancelled"));
        this.#running.delete(e.ref);
        n++;
      }
    }
    return n;
  }

  /** Stops: no more exchanges; waits for the running ones to end (they are cancelled). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.clear();
    if (this.#timer !== undefined) this.#h.clock.clearTimeout(this.#timer);
    const running = [...this.#running.values()].map((e) => e.done);
    this.cancel("all");
    await Promise.allSettled(running);
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < this.#max) {
      const next = this.#queue.entries().next();
      if (next.done) return;
      this.#queue.delete(next.value[0]);
      const { handler, peer } = next.value[1];
      const h = this.#h.handlers.get(handler);
      if (h === undefined || !this.#h.connected(peer)) continue;
      void this.run(h, peer);
    }
  }

  /** One exchange of `h` with `peer`; resolves when it ends. */
  async run(h: Handler, peer: string): Promise<void> {
    const ctl = new AbortController();
    const ref = this.#nextRef++;
    let result: "ignore" | Promise<void>;
    const failed = (how: string) => (e: unknown) =>
      this.#h.log({
        level: "warn",
        node: this.#h.node,
        peer,
        msg: `exchange of "${h.name}" ${how}`,
        error: e,
      });
    try {
      result = h.exchange(peer, ctl.signal);
    } catch (e) {
      failed("threw")(e);
      return;
    }
    if (result === "ignore") return;
    this.#h.started();
    const done = result.catch((e) => {
      if (!ctl.signal.aborted) failed("failed")(e);
    }).finally(() => {
      this.#running.delete(ref);
      this.#pump();
    });
    this.#running.set(ref, {
      ref,
      handler: h.name,
      peer,
      startedAt: this.#h.clock.now(),
      ctl,
      done,
    });
    await done;
  }
}
