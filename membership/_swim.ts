// SWIM-style liveness for the full mesh (after SWIM, Das et al. 2002, and
// memberlist/Lifeguard): each protocol period (`pingIntervalMs`) a node probes
// ONE peer, round-robin over a shuffled list of the peers that are up, so its
// cost is the same at any cluster size (the links of an idle full mesh used to
// get one ping each per period). No I/O here: the host sends and reads the
// clock. Module-private: the node core drives it.
//
// One period, for the peer probed:
// - heard from it within the period (any frame): alive, nothing is sent;
// - else a ping; any frame from it within `probeTimeoutMs` (0.4 of a period)
//   answers;
// - else `INDIRECT_PROBES` other peers are asked to ping it (`req`) and answer
//   `ack` when it answered them: a lossy or broken link of this node's own is
//   not taken for the peer's failure;
// - no answer by the next period: this node suspects it and tells every peer
//   (`suspect`), the suspect included.
// A suspected peer is pinged every period by every node that suspects it, and
// refutes by sending `alive` to every peer when it hears it is suspected: any
// frame heard from it after the suspicion began clears it. A suspicion that
// nothing cleared within `suspicionTimeoutMs` (the node's `failureTimeoutMs`)
// makes the peer down on this node. A crashed process is seen sooner: its
// connections close.

import type { Random } from "../base/clock.ts";

/** The internal endpoint SWIM's messages travel on. */
export const SWIM_ENDPOINT = "murmur.swim";
/** Peers asked to probe a peer that did not answer this node (SWIM's `k`). */
export const INDIRECT_PROBES = 3;
/** Indirect probes this node runs for others at once; more requests are ignored. */
export const INDIRECT_PENDING_MAX = 32;

/**
 * Share of the period a direct ping waits for an answer; the indirect probes
 * get as long again, and their acks the rest of the period to come back.
 */
export const PROBE_TIMEOUT_SHARE = 0.4;

/** SWIM messages, `[kind, target]`. */
export type SwimMessage = ["req", string] | ["ack", string] | ["suspect", string] | ["alive"];

/** What SWIM needs from the node. */
export interface SwimHost {
  readonly self: string;
  readonly random: Random;
  /** Names of the peers that are up (partitioned ones too). */
  up(): string[];
  /** When a frame was last heard from `name` (undefined: not a peer that is up). */
  lastHeard(name: string): number | undefined;
  /** Whether this node drops `name`'s traffic (an injected partition): no one is asked for it. */
  partitioned(name: string): boolean;
  /** Sends a ping to `name` (its answer, like any frame, updates `lastHeard`). */
  ping(name: string): void;
  /** Sends a SWIM message to `name`. */
  send(name: string, msg: SwimMessage): void;
  /** Marks `name` down on this node. */
  down(name: string, why: string): void;
  /** Runs `f` after `ms`; the function returned cancels it. */
  after(ms: number, f: () => void): () => void;
  /**
   * Calls `heard` once when the next frame from `name` arrives (it replaces the
   * last watch): the host cancels an answered probe's timeout with it, so an
   * idle node does not wake for it. Optional: without it the timeout runs.
   */
  watch?(name: string, heard: () => void): void;
}

/** Counters, for stats and tests. */
export interface SwimStats {
  /** Direct pings sent by this node's own probes. */
  probes: number;
  /** Indirect probe requests sent (`req`). */
  indirect: number;
  /** Suspicions this node started (its own probe failed, or a peer told it). */
  suspected: number;
  /** Suspicions cleared by a frame from the suspect. */
  cleared: number;
  /** Peers made down by a suspicion that was not cleared. */
  downs: number;
  /** Times this node refuted a suspicion of itself. */
  refuted: number;
}

interface Probe {
  target: string;
  sentAt: number;
  /** Helpers asked; undefined until the direct ping went unanswered. */
  helpers: string[] | undefined;
  acked: boolean;
}

/** The SWIM failure detector of one node. */
export class Swim {
  readonly #h: SwimHost;
  readonly #periodMs: number;
  readonly #probeTimeoutMs: number;
  readonly #suspicionTimeoutMs: number;
  #order: string[] = [];
  #next = 0;
  #probe: Probe | undefined;
  /** Suspected peers: when the suspicion began, and who it came from. */
  readonly #suspects = new Map<string, { since: number; by: string }>();
  #pendingIndirect = 0;
  #refutedAt = -Infinity;
  readonly stats: SwimStats = {
    probes: 0,
    indirect: 0,
    suspected: 0,
    cleared: 0,
    downs: 0,
    refuted: 0,
  };

  constructor(host: SwimHost, periodMs: number, suspicionTimeoutMs: number) {
    this.#h = host;
    this.#periodMs = periodMs;
    this.#probeTimeoutMs = periodMs * PROBE_TIMEOUT_SHARE;
    this.#suspicionTimeoutMs = suspicionTimeoutMs;
  }

  /** Peers suspected now. */
  suspects(): string[] {
    return [...this.#suspects.keys()];
  }

  #heardSince(name: string, t: number): boolean {
    const h = this.#h.lastHeard(name);
    return h !== undefined && h > t;
  }

  /** One protocol period: settles the last probe, ages suspicions, probes the next peer. */
  tick(now: number): void {
    const p = this.#probe;
    this.#probe = undefined;
    if (p !== undefined && !p.acked && !this.#heardSince(p.target, p.sentAt)) {
      if (this.#h.lastHeard(p.target) !== undefined) {
        this.#suspect(p.target, this.#h.self, now);
        for (const name of this.#h.up()) this.#h.send(name, ["suspect", p.target]);
      }
    }
    for (const [name, s] of [...this.#suspects]) {
      if (this.#h.lastHeard(name) === undefined) {
        this.#suspects.delete(name); // down or gone already
      } else if (this.#heardSince(name, s.since)) {
        this.#suspects.delete(name);
        this.stats.cleared++;
      } else if (now - s.since >= this.#suspicionTimeoutMs) {
        this.#suspects.delete(name);
        this.stats.downs++;
        const by = s.by === this.#h.self ? "this node" : s.by;
        this.#h.down(
          name,
          `suspected for ${Math.round(now - s.since)} ms (by ${by}) and not heard from since`,
        );
      } else {
        this.#h.ping(name);
      }
    }
    const target = this.#nextTarget();
    if (target === undefined) return;
    if (this.#heardSince(target, now - this.#periodMs)) return; // traffic answers for it
    this.#probe = { target, sentAt: now, helpers: undefined, acked: false };
    this.stats.probes++;
    this.#h.ping(target);
    const probe = this.#probe;
    const cancel = this.#h.after(this.#probeTimeoutMs, () => this.#indirect(probe));
    this.#h.watch?.(target, cancel); // answered: nothing to do at the timeout
  }

  /** The direct ping went unanswered: asks others to probe. */
  #indirect(p: Probe): void {
    if (this.#probe !== p || p.acked || this.#heardSince(p.target, p.sentAt)) return;
    // A partition injected here is this node's choice: others' answers do not count.
    if (this.#h.partitioned(p.target)) return;
    const others = this.#h.up().filter((n) => n !== p.target && !this.#h.partitioned(n));
    const helpers: string[] = [];
    for (let i = 0; i < INDIRECT_PROBES && others.length > 0; i++) {
      const j = Math.floor(this.#h.random.next() * others.length);
      helpers.push(others[j]!);
      others[j] = others[others.length - 1]!;
      others.pop();
    }
    p.helpers = helpers;
    for (const h of helpers) {
      this.stats.indirect++;
      this.#h.send(h, ["req", p.target]);
    }
  }

  #suspect(name: string, by: string, now: number): void {
    if (this.#suspects.has(name)) return;
    this.#suspects.set(name, { since: now, by });
    this.stats.suspected++;
  }

  #nextTarget(): string | undefined {
    for (let round = 0; round < 2; round++) {
      while (this.#next < this.#order.length) {
        const name = this.#order[this.#next++]!;
        if (this.#h.lastHeard(name) !== undefined) return name;
      }
      // A new round over a fresh shuffle of the peers up now.
      const order = this.#h.up();
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(this.#h.random.next() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      this.#order = order;
      this.#next = 0;
    }
    return undefined;
  }

  /** A SWIM message from `from` (a peer). Malformed ones are ignored. */
  receive(from: string, msg: unknown, now: number): void {
    if (!Array.isArray(msg) || typeof msg[0] !== "string") return;
    const target = msg[1];
    switch (msg[0]) {
      case "req": {
        if (typeof target !== "string" || target === this.#h.self) return;
        if (this.#h.lastHeard(target) === undefined) return; // not up here: no answer
        if (this.#heardSince(target, now - this.#probeTimeoutMs)) {
          this.#h.send(from, ["ack", target]);
          return;
        }
        if (this.#pendingIndirect >= INDIRECT_PENDING_MAX) return;
        this.#pendingIndirect++;
        this.#h.ping(target);
        this.#h.after(this.#probeTimeoutMs, () => {
          this.#pendingIndirect--;
          if (this.#heardSince(target, now)) this.#h.send(from, ["ack", target]);
        });
        return;
      }
      case "ack": {
        const p = this.#probe;
        if (p !== undefined && p.target === target && p.helpers?.includes(from)) p.acked = true;
        return;
      }
      case "suspect": {
        if (typeof target !== "string") return;
        if (target === this.#h.self) {
          // Refute, at most once per probe timeout however many suspect this node.
          if (now - this.#refutedAt < this.#probeTimeoutMs) return;
          this.#refutedAt = now;
          this.stats.refuted++;
          for (const name of this.#h.up()) this.#h.send(name, ["alive"]);
          return;
        }
        if (this.#h.lastHeard(target) === undefined) return;
        if (this.#heardSince(target, now - this.#probeTimeoutMs)) return; // fresh evidence here
        if (!this.#suspects.has(target)) {
          this.#suspect(target, from, now);
          this.#h.ping(target);
        }
        return;
      }
      case "alive":
        return; // the frame itself was heard: the next tick clears a suspicion of `from`
    }
  }
}
