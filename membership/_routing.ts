// Transitive sends and calls (the seed's `transitive` forward option): under a
// partial view, a message to a member that is not a neighbour travels hop by
// hop through the overlay instead of over a new connection. Module-private:
// the node registers the reserved endpoint `murmur.route` for it.
//
// Routing: a hop sends straight to the destination when it is a neighbour;
// else to the neighbour its route table names for the destination; else it
// floods (every neighbour not yet on the path). Every hop learns the way back
// to the origin (the neighbour the message came from), so the answer of a
// call, the acknowledgement of an acknowledged send, and a ROUTE notice (sent
// back when a message had to be flooded) travel back along the path and teach
// the hops on it the way to the destination: the next message goes straight.
// Loops cannot form: a message is never sent to a node already on its path,
// its path is at most `transitiveHopsMax` long, and each hop drops a copy it
// has seen (a bounded window of ids).

import type { Clock, TimerId } from "../base/clock.ts";
import {
  AckTimeoutError,
  CallTimeoutError,
  type ClosedError,
  handlerFailure,
  UnknownEndpointError,
} from "./errors.ts";
import { ProtocolError } from "../base/errors.ts";

import type { MessageContext } from "./messaging.ts";

/** The reserved endpoint of routed messages. */
export const ROUTE_ENDPOINT = "murmur.route";

/** Kinds of routed envelopes. */
const K = { Send: 0, Call: 1, AckSend: 2, Reply: 3, Ack: 4, Route: 5 } as const;
type Kind = typeof K[keyof typeof K];

/**
 * `[kind, origin, id, attempt, dest, path, flooded, endpoint, payload]`: for
 * SEND, CALL and acknowledged SEND `path` is the hops so far (origin first);
 * for REPLY, ACK and ROUTE it is the whole way back (the answering node first,
 * the destination last).
 */
type Envelope = [Kind, string, number, number, string, string[], 0 | 1, string, unknown];

/** Limits of routing. */
export interface RoutingLimits {
  /**
   * Hops of a routed message at most.
   *
   * @default 10
   */
  transitiveHopsMax: number;
  /**
   * Routes remembered, least recently used dropped.
   *
   * @default 4096
   */
  routesMax: number;
  /**
   * Ids of routed copies remembered for duplicate detection.
   *
   * @default 8192
   */
  routedIdsMax: number;
}

/** What the router needs from its node. */
export interface RouterHost {
  readonly self: string;
  readonly clock: Clock;
  readonly retransmitIntervalMs: number;
  /** Neighbours with a live connection (not direct connections). */
  neighbours(): string[];
  isNeighbour(name: string): boolean;
  /** Sends a routing envelope to a neighbour (fire-and-forget). */
  forward(to: string, envelope: unknown[]): void;
  /** Delivers a message to a local endpoint. */
  deliver(endpoint: string, payload: unknown, ctx: MessageContext): void;
  /** Runs a local endpoint's handler for a call: `[status, value]` as a reply frame has them. */
  answer(endpoint: string, payload: unknown, ctx: MessageContext): Promise<[0 | 1 | 2, unknown]>;
  /** A routed message was dropped (hop limit, nowhere to go). */
  dropped(why: string): void;
}

/** Counters of routing. */
export interface RoutingCounters {
  /** Routed messages this node passed on for others. */
  forwarded: number;
  /** Routed messages dropped: past the hop limit, no neighbour left to try, or duplicates. */
  routeDrops: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** A call answered with a failure status (1: no such endpoint, 2: the handler threw). */
  failed: (status: number, value: unknown) => void;
  timer: TimerId;
  retry?: TimerId;
}

/** A call whose handler still runs. */
const PENDING: unique symbol = Symbol("pending");

/** An LRU set or map bounded by `max` entries. */
function touch<K, V>(m: Map<K, V>, k: K, v: V, max: number): void {
  m.delete(k);
  m.set(k, v);
  if (m.size > max) m.delete(m.keys().next().value!);
}

function isNames(v: unknown, max: number): v is string[] {
  return Array.isArray(v) && v.length > 0 && v.length <= max &&
    v.every((n) => typeof n === "string" && n.length > 0 && n.length <= 255);
}

/** Routes messages hop by hop through the overlay. */
export class Router {
  readonly #h: RouterHost;
  readonly #limits: RoutingLimits;
  /** Destination -> the neighbour to send to, and how many hops away the destination was then. */
  readonly #routes = new Map<string, { via: string; hops: number }>();
  /**
   * Copies seen, with the shortest path they came by: a later copy is dropped
   * unless it came a shorter way (the first copy of a flood may come the
   * longest way round, and stop at the hop limit or at a node whose every
   * neighbour is on its path).
   */
  readonly #seen = new Map<string, number>();
  /** Acknowledged sends delivered here, by origin and id (a retransmission is acknowledged again). */
  readonly #delivered = new Map<string, true>();
  /** Calls answered here (or running), by origin and id: a copy sent again gets the same reply. */
  readonly #answers = new Map<string, unknown>();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  readonly counters: RoutingCounters = { forwarded: 0, routeDrops: 0 };

  constructor(host: RouterHost, limits: RoutingLimits) {
    this.#h = host;
    this.#limits = limits;
  }

  /** Calls and acknowledged sends waiting for their answer. */
  get outstanding(): number {
    return this.#pending.size;
  }

  /** A fire-and-forget send to `dest` through the overlay. */
  send(dest: string, endpoint: string, payload: unknown): void {
    this.#start([K.Send, this.#h.self, this.#nextId++, 0, dest, [], 0, endpoint, payload]);
  }

  /** A call to `dest` through the overlay; its reply comes back the same way. */
  call(dest: string, endpoint: string, payload: unknown, timeoutMs: number): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = this.#h.clock.setTimeout(() => {
        this.#settle(id);
        reject(new CallTimeoutError(dest, endpoint, timeoutMs));
      }, Math.min(timeoutMs, 2 ** 31 - 1));
      const p: Pending = {
        timer,
        resolve,
        reject,
        failed: (status, value) => {
          if (status === 1) return reject(new UnknownEndpointError(dest, endpoint));
          reject(handlerFailure(dest, endpoint, value));
        },
      };
      // Sent again until answered (the overlay may change on the way): the destination
      // runs the handler once and answers every copy with the same reply.
      let attempt = 0;
      const go = () => {
        p.retry = this.#h.clock.setTimeout(go, this.#h.retransmitIntervalMs);
        this.#start([K.Call, this.#h.self, id, attempt++, dest, [], 0, endpoint, payload]);
      };
      this.#pending.set(id, p);
      go();
    });
  }

  /**
   * An acknowledged send to `dest` through the overlay: sent again every
   * `retransmitIntervalMs` until `dest` acknowledges it (delivered once there).
   */
  sendAcked(dest: string, endpoint: string, payload: unknown, timeoutMs: number): Promise<void> {
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      let attempt = 0;
      const p: Pending = {
        resolve: () => resolve(),
        reject,
        failed: () => {},
        timer: this.#h.clock.setTimeout(() => {
          this.#settle(id);
          reject(new AckTimeoutError(dest, endpoint, timeoutMs));
        }, Math.min(timeoutMs, 2 ** 31 - 1)),
      };
      const go = () => {
        p.retry = this.#h.clock.setTimeout(go, this.#h.retransmitIntervalMs);
        this.#start([K.AckSend, this.#h.self, id, attempt++, dest, [], 0, endpoint, payload]);
      };
      this.#pending.set(id, p);
      go();
    });
  }

  /** Fails everything waiting (the node closed). */
  close(error: ClosedError): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(error);
  }

  /** An envelope from neighbour `from`. Throws `ProtocolError` when malformed. */
  receive(from: string, raw: unknown): void {
    const e = this.#parse(raw);
    const [kind, origin, id, attempt, dest, path] = e;
    if (kind >= K.Reply) return this.#back(from, e);
    if (from !== this.#h.self) this.#learn(origin, from, path.length); // the way back
    const key = `${kind}\u0000${origin}\u0000${id}\u0000${attempt}`;
    const seen = this.#seen.get(key);
    if (seen !== undefined && (dest === this.#h.self || seen <= path.length)) {
      this.counters.routeDrops++;
      return;
    }
    touch(this.#seen, key, path.length, this.#limits.routedIdsMax);
    if (dest !== this.#h.self) {
      this.counters.forwarded++;
      return this.#next(e, from);
    }
    const back = (k: Kind, payload: unknown) =>
      this.#back(this.#h.self, [
        k,
        this.#h.self,
        id,
        0,
        origin,
        [this.#h.self, ...path.toReversed()],
        0,
        "",
        payload,
      ]);
    const ctx: MessageContext = { from: origin, channel: "default" };
    switch (kind) {
      case K.Send:
        this.#h.deliver(e[7], e[8], ctx);
        if (e[6] === 1) back(K.Route, null); // it was flooded: teach the way here
        return;
      case K.AckSend: {
        const k = `${origin}\u0000${id}`;
        if (!this.#delivered.has(k)) {
          touch(this.#delivered, k, true, this.#limits.routedIdsMax);
          this.#h.deliver(e[7], e[8], ctx);
        }
        back(K.Ack, null);
        return;
      }
      case K.Call: {
        // Once per call: a copy sent again gets the reply of the first (none while it runs).
        const k = `${origin}\u0000${id}`;
        const known = this.#answers.get(k);
        if (known === undefined) {
          touch(this.#answers, k, PENDING, this.#limits.routedIdsMax);
          void this.#h.answer(e[7], e[8], ctx).then((reply) => {
            if (this.#answers.has(k)) this.#answers.set(k, reply);
            back(K.Reply, reply);
          });
        } else if (known !== PENDING) back(K.Reply, known);
        return;
      }
    }
  }

  /** `to` is `hops` away through neighbour `via`: kept unless a route as short is known and usable. */
  #learn(to: string, via: string, hops: number): void {
    const r = this.#routes.get(to);
    if (r !== undefined && r.hops < hops && r.via !== via && this.#h.isNeighbour(r.via)) return;
    touch(this.#routes, to, { via, hops }, this.#limits.routesMax);
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    if (p === undefined) return undefined;
    this.#pending.delete(id);
    this.#h.clock.clearTimeout(p.timer);
    if (p.retry !== undefined) this.#h.clock.clearTimeout(p.retry);
    return p;
  }

  /** Sends a new message on its first hop (from this node). */
  #start(e: Envelope): void {
    if (e[4] === this.#h.self) return this.receive(this.#h.self, e);
    this.#next(e, undefined);
  }

  /** Passes a forward envelope on: to the destination, along a known route, or flooded. */
  #next(e: Envelope, from: string | undefined): void {
    const [, , , , dest, path] = e;
    const way = [...path, this.#h.self];
    if (way.length > this.#limits.transitiveHopsMax) {
      this.counters.routeDrops++;
      return this.#h.dropped(`past transitiveHopsMax (${this.#limits.transitiveHopsMax}) hops`);
    }
    let to: string[];
    if (this.#h.isNeighbour(dest)) to = [dest];
    else {
      const r = this.#routes.get(dest)?.via;
      if (r !== undefined && r !== from && this.#h.isNeighbour(r) && !way.includes(r)) to = [r];
      else {
        to = this.#h.neighbours().filter((n) => n !== from && !way.includes(n));
        e = [...e] as Envelope;
        e[6] = 1;
      }
    }
    if (to.length === 0) {
      this.counters.routeDrops++;
      return this.#h.dropped(`no neighbour left to try toward "${dest}"`);
    }
    const out = [...e] as Envelope;
    out[5] = way;
    for (const n of to) this.#h.forward(n, out);
  }

  /** A REPLY, ACK or ROUTE going back along its path (`from` is the hop it came from, or self). */
  #back(from: string, e: Envelope): void {
    const [kind, origin, id, , dest, path] = e;
    const i = path.indexOf(this.#h.self);
    if (i < 0) {
      this.counters.routeDrops++;
      return;
    }
    // The hop before this one on the way back leads to the answering node.
    if (i > 0 && from !== this.#h.self) this.#learn(origin, from, i);
    if (i === path.length - 1) {
      if (dest !== this.#h.self) return;
      if (kind === K.Route) return;
      const p = this.#settle(id);
      if (p === undefined) return; // timed out, or a second acknowledgement
      if (kind === K.Ack) return p.resolve(undefined);
      const [status, value] = Array.isArray(e[8]) ? e[8] as [number, unknown] : [2, []];
      if (status === 0) p.resolve(value);
      else p.failed(status, value);
      return;
    }
    const next = path[i + 1]!;
    if (!this.#h.isNeighbour(next)) {
      this.counters.routeDrops++;
      return this.#h.dropped(`the way back to "${dest}" is broken at "${next}"`);
    }
    if (i > 0) this.counters.forwarded++;
    this.#h.forward(next, e);
  }

  #parse(raw: unknown): Envelope {
    const v = raw as unknown[];
    if (
      !Array.isArray(v) || v.length !== 9 || typeof v[0] !== "number" || v[0] < 0 || v[0] > 5 ||
      typeof v[1] !== "string" || !Number.isSafeInteger(v[2]) || !Number.isSafeInteger(v[3]) ||
      typeof v[4] !== "string" || typeof v[7] !== "string" || (v[6] !== 0 && v[6] !== 1)
    ) throw new ProtocolError("routed message malformed");
    const hopsMax = this.#limits.transitiveHopsMax + 1;
    const path = v[5];
    const ok = (v[0] as Kind) < K.Reply && Array.isArray(path) && path.length === 0
      ? true
      : isNames(path, hopsMax);
    if (!ok) throw new ProtocolError("routed message path malformed");
    return v as Envelope;
  }
}
