// Calls: a request frame to an endpoint and its reply, bounded by a timeout,
// an abort signal and `callsOutstandingMax`; a call to a member whose
// connection is opening waits for it (its timeout runs). Module-private: the
// delivery layer composes it.

import type { TimerId } from "../base/clock.ts";
import {
  CallTimeoutError,
  type ClosedError,
  handlerFailure,
  NodeDownError,
  QueueFullError,
  UnknownEndpointError,
} from "./errors.ts";
import type { Link } from "./_link.ts";
import type { NodeConfig } from "./_config.ts";
import type { Peer, Peers } from "./_peers.ts";
import type { CallOptions } from "./messaging.ts";
import type { OpeningWaits } from "./_opening.ts";

interface PendingCall {
  node: string;
  endpoint: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

/** The calls of one node waiting for their replies. */
export class Calls {
  readonly #cfg: NodeConfig;
  readonly #peers: Peers;
  readonly #isPartitioned: (name: string) => boolean;
  readonly #opening: OpeningWaits;
  readonly #calls = new Map<number, PendingCall>();
  #nextId = 1;

  constructor(
    cfg: NodeConfig,
    peers: Peers,
    opening: OpeningWaits,
    isPartitioned: (name: string) => boolean,
  ) {
    this.#cfg = cfg;
    this.#peers = peers;
    this.#opening = opening;
    this.#isPartitioned = isPartitioned;
  }

  /** Calls waiting for a reply. */
  get outstanding(): number {
    return this.#calls.size;
  }

  /** The next call id (the frame carries it). */
  nextId(): number {
    return this.#nextId++;
  }

  /**
   * Sends the call `frame` (of id `id`) to `peer` and waits for its reply.
   *
   * @throws {NodeDownError} the peer is down (not opening).
   * @throws {QueueFullError} past `callsOutstandingMax`, or too much waits for the peer's connection.
   */
  start(
    peer: Peer,
    id: number,
    endpoint: string,
    frame: Uint8Array,
    channel: string,
    timeoutMs: number,
    options: CallOptions,
  ): Promise<unknown> {
    const to = peer.name;
    const waits = this.#opening.mustWait(peer);
    // A member whose connection is still opening: the call waits for it (its timeout runs).
    if (this.#opening.down(peer)) throw new NodeDownError(to);
    if (this.#calls.size >= this.#cfg.callsOutstandingMax) throw new QueueFullError(to, channel);
    return new Promise<unknown>((resolve, reject) => {
      const { clock } = this.#cfg;
      const onAbort = () => settle(() => reject(options.signal!.reason));
      const timer: { id?: TimerId } = {};
      const pending: PendingCall = {
        node: to,
        endpoint,
        resolve,
        reject,
        cleanup: () => {
          this.#calls.delete(id);
          if (timer.id !== undefined) clock.clearTimeout(timer.id);
          options.signal?.removeEventListener("abort", onAbort);
        },
      };
      const settle = (f: () => void) => {
        if (!this.#calls.has(id)) return;
        pending.cleanup();
        f();
      };
      timer.id = clock.setTimeout(
        () => settle(() => reject(new CallTimeoutError(to, endpoint, timeoutMs))),
        timeoutMs,
      );
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#calls.set(id, pending);
      const transmit = (p: Peer) => {
        if (!this.#calls.has(id)) return;
        if (this.#isPartitioned(to)) {
          this.#peers.counters.partitionDrops++;
          return;
        }
        try {
          this.#peers.counters.framesOut++;
          const waited = this.#peers.pick(p, channel, options.partitionKey).enqueue(frame);
          waited?.catch((e) => settle(() => reject(e)));
        } catch (e) {
          settle(() => reject(e));
        }
      };
      if (!waits) return transmit(peer);
      const queued = this.#opening.wait(to, {
        bytes: frame.length,
        run: transmit,
        fail: (e) => settle(() => reject(e)),
      });
      if (!queued) settle(() => reject(new QueueFullError(to, channel)));
    });
  }

  /** A reply on `link`: status 0 ok, 1 no such endpoint, 2 the handler threw `[name, message]`. */
  replied(id: number, status: 0 | 1 | 2, value: unknown, link: Link): void {
    const c = this.#calls.get(id);
    if (c === undefined || c.node !== link.peer) return;
    c.cleanup();
    if (status === 0) c.resolve(value);
    else if (status === 1) c.reject(new UnknownEndpointError(c.node, c.endpoint));
    else c.reject(handlerFailure(c.node, c.endpoint, value));
  }

  /** A peer went down, or left: its calls fail. */
  failFor(name: string, error: () => unknown): void {
    for (const c of [...this.#calls.values()]) {
      if (c.node === name) {
        c.cleanup();
        c.reject(error());
      }
    }
  }

  close(error: ClosedError): void {
    for (const c of [...this.#calls.values()]) {
      c.cleanup();
      c.reject(error);
    }
  }
}
