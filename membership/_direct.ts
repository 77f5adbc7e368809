// Direct connections: under a partial-view strategy (HyParView), `send` and
// `call` to a member that is not a neighbour open a connection of their own.
// It is nobody's "up" or "down" but its senders', does not count in
// `connectedMembers()`, closes after `idleMs` unused, and becomes an ordinary
// neighbour link if the strategy later connects to that member. Module-private.

import { NodeDownError } from "./errors.ts";
import type { Delivery } from "./_delivery.ts";
import type { Peer, Peers } from "./_peers.ts";
import type { NodeSpec } from "./spec.ts";
import type { MembershipStrategy } from "./strategy.ts";
import { formatAddress } from "./transport.ts";

/** The direct connections of one node, by peer name. */
export class DirectLinks {
  readonly #links = new Set<string>();

  constructor(
    private readonly self: string,
    private readonly idleMs: number,
    private readonly peers: Peers,
    private readonly delivery: Delivery,
    private readonly strategy: MembershipStrategy,
    private readonly hooks: {
      /** Whether the node may open connections (open, in a cluster). */
      open(): boolean;
      isPartitioned(name: string): boolean;
      debug(msg: string, peer: string, error?: unknown): void;
    },
  ) {}

  /** Direct connections open or being opened. */
  get size(): number {
    return this.#links.size;
  }

  /** Names with a direct connection (not neighbours). */
  has(name: string): boolean {
    return this.#links.has(name);
  }

  /**
   * Opens a direct connection to a member the strategy knows but does not keep
   * connected, or returns undefined when there is nothing to reach. What is
   * sent to the peer meanwhile waits for its connection (see `Peer.opening`).
   */
  reach(name: string): Peer | undefined {
    if (this.strategy.kind === "full-mesh" || !this.hooks.open()) return undefined;
    if (name === this.self || this.hooks.isPartitioned(name)) return undefined;
    const spec = this.strategy.entry(name)?.spec;
    if (spec === undefined || spec.listenAddrs.length === 0) return undefined;
    this.#links.add(name);
    return this.peers.ensure(spec, "direct");
  }

  /**
   * The strategy connects to `spec`: a direct connection to it becomes a
   * neighbour link. Returns the peer when that link is already usable as is
   * (the caller reports it up), else undefined (the caller ensures a link).
   */
  promote(spec: NodeSpec): Peer | undefined {
    if (!this.#links.delete(spec.name)) return undefined;
    const p = this.peers.peers.get(spec.name);
    if (p === undefined || p.spec.incarnation !== spec.incarnation) return undefined;
    delete p.lane; // a neighbour now: its dials are the membership's
    return p;
  }

  /** A peer came up; true when it was a direct connection (handled here). */
  up(peer: Peer): boolean {
    if (!this.#links.has(peer.name)) return false;
    this.hooks.debug("direct connection up", peer.name);
    this.delivery.peerUp(peer);
    return true;
  }

  /** A peer went down; true when it was a direct connection (handled here). */
  down(peer: Peer, error: unknown): boolean {
    if (!this.#links.has(peer.name)) return false;
    this.delivery.peerDown(peer.name, error);
    this.close(peer.name, error);
    return true;
  }

  /** Connecting failed; true when it was a direct connection (handled here). */
  connectFailed(peer: Peer, error: unknown): boolean {
    if (!this.#links.has(peer.name)) return false;
    const addr = peer.spec.listenAddrs.map(formatAddress).join(",");
    this.hooks.debug(`direct connection to ${addr} failed`, peer.name, error);
    this.close(peer.name, new NodeDownError(peer.name, "could not be reached", { cause: error }));
    return true;
  }

  /** Closes the direct connections unused for longer than `idleMs`. */
  reapIdle(now: number): void {
    for (const name of [...this.#links]) {
      const p = this.peers.peers.get(name);
      if (p === undefined) continue;
      if (p.uses !== p.usesSeen) {
        p.usesSeen = p.uses;
        p.usedAt = now;
      }
      if (p.up && now - p.usedAt > this.idleMs) {
        this.close(name, new NodeDownError(name, "direct connection idle"));
      }
    }
  }

  /** Closes a direct connection and fails what waits on it. */
  close(name: string, error: unknown): void {
    if (!this.#links.delete(name)) return;
    const p = this.peers.peers.get(name);
    if (p === undefined) return;
    // Quietly: a direct connection's end is nobody's "down" but its senders'.
    const wasUp = p.up;
    p.up = false;
    this.peers.drop(p, "direct connection closed", error);
    if (wasUp) this.delivery.peerDown(name, error);
  }
}
