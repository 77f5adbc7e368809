// A fan-out: the same message to several nodes, encoded once (Node.sendMany,
// and Plumtree's pushes through the relay door). Never rejects for delivery
// reasons: what cannot be sent is counted and reported per destination.
// Module-private: the delivery layer composes it.

import { ClosedError, NodeDownError, QueueFullError, UnknownNodeError } from "./errors.ts";
import type { NodeConfig } from "./_config.ts";
import type { Peers } from "./_peers.ts";
import type { SendOptions } from "./messaging.ts";
import type { Endpoints } from "./_endpoints.ts";
import { checkEndpoint } from "./_endpoints.ts";
import type { OpeningWaits } from "./_opening.ts";
import { Tag } from "./wire.ts";
import { checkKey } from "./_send_options.ts";

/** What a fan-out reads of the delivery layer. */
export interface FanOutHost {
  readonly cfg: NodeConfig;
  readonly peers: Peers;
  readonly endpoints: Endpoints;
  readonly opening: OpeningWaits;
  readonly counters: { sendDrops: number };
  isOpen(): boolean;
  isPartitioned(name: string): boolean;
  isMember(name: string): boolean;
  channelOf(channel: string | undefined): string;
  encodeFrame(frame: unknown[], msg: unknown, to: string, endpoint: string): Uint8Array;
}

/** The key a monotonic link keeps the newest message of: endpoint and partition key. */
export function monoKey(endpoint: string, key: string | number | undefined): string {
  return key === undefined ? endpoint : `${endpoint}\u0000${key}`;
}

/**
 * The work of `sendMany`, without its promise: `fail` is called for each
 * destination that cannot be sent to (later, for a send that waited for room
 * and then failed); the sends that wait for room are returned, if any (they
 * never reject). Throws a `TypeError` on bad arguments or an unsendable `msg`.
 * `encoded`: the frame `[Tag.Msg, endpoint, msg]` already encoded (a relay
 * forwarding what it received); `msg` is then not encoded again.
 */
export function fanOut(
  d: FanOutHost,
  to: readonly string[],
  endpoint: string,
  msg: unknown,
  options: Omit<SendOptions, "ack" | "signal" | "timeoutMs">,
  encoded: Uint8Array | undefined,
  fail: (node: string, error: unknown) => void,
): Promise<void>[] | undefined {
  if (!Array.isArray(to)) throw new TypeError("to must be an array of node names");
  const channel = d.channelOf(options.channel);
  checkEndpoint(endpoint);
  const key = options.partitionKey;
  checkKey(key);
  let waits: Promise<void>[] | undefined;
  // Bytes over this node's frame limit are encoded again (and refused there).
  let frame = encoded !== undefined && encoded.length <= d.cfg.frameBytesMax ? encoded : undefined;
  const failed = (name: string, error: unknown) => {
    d.counters.sendDrops++;
    fail(name, error);
  };
  for (const name of to) {
    if (!d.isOpen()) {
      fail(name, new ClosedError(`node "${d.cfg.name}" is closed`));
      continue;
    }
    if (name === d.cfg.name) {
      frame ??= d.encodeFrame([Tag.Msg, endpoint, msg], msg, "*", endpoint);
      d.endpoints.deliverLocal(endpoint, frame, channel);
      continue;
    }
    const peer = d.peers.peers.get(name);
    if (peer !== undefined && d.opening.mustWait(peer)) {
      // Its connection is opening: this copy waits for it (see send).
      const f = frame ??= d.encodeFrame([Tag.Msg, endpoint, msg], msg, "*", endpoint);
      const done = Promise.withResolvers<void>();
      const queued = d.opening.wait(name, {
        bytes: f.length,
        run: (p) => {
          if (d.isPartitioned(name)) {
            d.peers.counters.partitionDrops++;
            return done.resolve();
          }
          try {
            d.peers.counters.framesOut++;
            const w = d.peers.pick(p, channel, key).enqueue(f, monoKey(endpoint, key));
            if (w === undefined) return done.resolve();
            w.then(() => done.resolve(), (error) => {
              failed(name, error);
              done.resolve();
            });
          } catch (error) {
            failed(name, error);
            done.resolve();
          }
        },
        fail: (error) => {
          failed(name, error);
          done.resolve();
        },
      });
      if (queued) (waits ??= []).push(done.promise);
      else failed(name, new QueueFullError(name, channel));
      continue;
    }
    if (peer === undefined || !peer.up) {
      failed(
        name,
        d.isMember(name) ? new NodeDownError(name) : new UnknownNodeError(name),
      );
      continue;
    }
    if (d.isPartitioned(name)) {
      d.peers.counters.partitionDrops++;
      continue;
    }
    try {
      const link = d.peers.pick(peer, channel, key);
      d.peers.counters.framesOut++;
      frame ??= d.encodeFrame([Tag.Msg, endpoint, msg], msg, "*", endpoint);
      const w = link.enqueue(frame, monoKey(endpoint, key));
      if (w !== undefined) (waits ??= []).push(w.catch((error) => failed(name, error)));
    } catch (error) {
      if (error instanceof TypeError) throw error;
      failed(name, error);
    }
  }
  return waits;
}
