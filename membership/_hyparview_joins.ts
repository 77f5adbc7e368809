/**
 * HyParView's bookkeeping of joins, kept apart from the views: the forwarded
 * joiners a node dials (bounded per forwarding neighbour and in all), the
 * joiners whose FORWARD_JOIN walks wait for a neighbour to carry them, and a
 * joiner's own retry schedule when its contact sheds it.
 *
 * @module
 */

import type { NodeSpec } from "./spec.ts";
import {
  CANDIDATES_MAX,
  CANDIDATES_PER_SOURCE,
  CANDIDATES_WAITING_MAX,
  JOIN_BACKLOG_MAX,
  JOIN_RETRY_MAX_MS,
  JOIN_RETRY_MS,
  REJOIN_TRIES_MAX,
} from "./hyparview_options.ts";
import type { Random } from "../base/clock.ts";

interface Candidate {
  readonly spec: NodeSpec;
  readonly from: string;
}

/**
 * Forwarded joiners being connected to: taken into the active view only once
 * their connection is up (a working neighbour is never dropped for an unproven
 * node), at most {@linkcode CANDIDATES_PER_SOURCE} per forwarding neighbour and
 * {@linkcode CANDIDATES_MAX} in all; the next {@linkcode CANDIDATES_WAITING_MAX}
 * wait their turn, and past that they are dropped (a flood) and counted.
 */
export class ForwardedJoiners {
  /** Forwarded joiners not dialed: past the bounds. */
  dropped = 0;
  readonly #dialing = new Map<string, Candidate>();
  #waiting: Candidate[] = [];

  /** True while `name` is being dialed or waits for a dial. */
  has(name: string): boolean {
    return this.#dialing.has(name) || this.#waiting.some((w) => w.spec.name === name);
  }

  /** Dials `spec` (pushed to `connect`) now, or queues it. */
  offer(spec: NodeSpec, from: string, connect: NodeSpec[]): void {
    if (this.has(spec.name)) return;
    if (this.#mayDial(from)) {
      this.#dialing.set(spec.name, { spec, from });
      connect.push(spec);
    } else if (this.#waiting.length < CANDIDATES_WAITING_MAX) {
      this.#waiting.push({ spec, from });
    } else this.dropped++;
  }

  /**
   * The dial of `name` ended (its connection is up or failed, or it asked
   * first): returns its entry if it was dialed, and dials the waiting joiners
   * whose source has room (but those `skip` says are placed already).
   */
  settle(
    name: string,
    connect: NodeSpec[],
    skip: (name: string) => boolean,
  ): Candidate | undefined {
    const c = this.#dialing.get(name);
    if (c === undefined) return undefined;
    this.#dialing.delete(name);
    const rest: Candidate[] = [];
    for (const w of this.#waiting) {
      const n = w.spec.name;
      if (skip(n) || this.#dialing.has(n)) continue;
      if (this.#mayDial(w.from)) {
        this.#dialing.set(n, w);
        connect.push(w.spec);
      } else rest.push(w);
    }
    this.#waiting = rest;
    return c;
  }

  #mayDial(from: string): boolean {
    if (this.#dialing.size >= CANDIDATES_MAX) return false;
    let n = 0;
    for (const c of this.#dialing.values()) {
      if (c.from === from && ++n >= CANDIDATES_PER_SOURCE) return false;
    }
    return true;
  }
}

/**
 * Joiners whose FORWARD_JOIN walks could not go out (the contact had no other
 * neighbour up): they go out as neighbours come up. At most
 * {@linkcode JOIN_BACKLOG_MAX}; past it the oldest is dropped and counted (its
 * joiner was shed, so it joins again after its backoff: nothing is lost for good).
 */
export class JoinBacklog {
  /** Joiners dropped past the bound. */
  dropped = 0;
  readonly #specs = new Map<string, NodeSpec>();

  get size(): number {
    return this.#specs.size;
  }

  push(spec: NodeSpec): void {
    this.#specs.delete(spec.name);
    this.#specs.set(spec.name, spec);
    if (this.#specs.size > JOIN_BACKLOG_MAX) {
      this.#specs.delete(this.#specs.keys().next().value!);
      this.dropped++;
    }
  }

  /** Takes up to `max` joiners, oldest first. */
  take(max: number): NodeSpec[] {
    const out: NodeSpec[] = [];
    for (const [name, spec] of this.#specs) {
      if (out.length >= max) break;
      this.#specs.delete(name);
      out.push(spec);
    }
    return out;
  }
}

/**
 * A joiner's side: the contact it sent JOIN to, and when it may join again
 * after a contact closed the connection without taking it (shed). The wait is
 * jittered and doubles per shed in a row, from {@linkcode JOIN_RETRY_MS} to
 * {@linkcode JOIN_RETRY_MAX_MS}, so that a thousand joiners shed at once do not
 * come back at once.
 */
export class JoinRetry {
  /** The contact a JOIN went to, until it answers. */
  contact: string | undefined;
  #shed = 0;
  /** Contacts that could not be reached since this node was last placed. */
  readonly #tried = new Set<string>();

  /**
   * The contact could not be reached: the next may be tried at once (a crashed
   * process is refused within a round trip), until {@linkcode REJOIN_TRIES_MAX}
   * in a row failed; then true, and the caller waits its backoff.
   */
  unreachable(name: string): boolean {
    this.contact = undefined;
    this.#tried.add(name);
    if (this.#tried.size < REJOIN_TRIES_MAX) return false;
    this.#tried.clear();
    return true;
  }

  /**
   * A contact to join through: one not tried since this node was placed,
   * preferring `fresh` specs (not known to have failed) to `lost` ones.
   */
  pick(fresh: NodeSpec[], lost: NodeSpec[], random: Random): NodeSpec | undefined {
    for (const pool of [fresh, lost]) {
      const ok = pool.filter((s) => !this.#tried.has(s.name));
      if (ok.length > 0) return ok[Math.floor(random.next() * ok.length)];
    }
    const all = [...fresh, ...lost];
    return all.length === 0 ? undefined : all[Math.floor(random.next() * all.length)];
  }

  /** The contact closed the connection without taking this node; the time to join again. */
  shed(now: number, random: Random): number {
    this.contact = undefined;
    const base = Math.min(JOIN_RETRY_MAX_MS, JOIN_RETRY_MS * 2 ** Math.min(this.#shed++, 16));
    return now + base / 2 + random.next() * base;
  }

  /** Some node took this one: the next shed starts from the first wait again. */
  placed(): void {
    this.contact = undefined;
    this.#shed = 0;
    this.#tried.clear();
  }
}
