// Acknowledged sends (`ack: true`): admitted under `ackBytesMax` per peer (the
// rest wait their turn), retransmitted every `retransmitIntervalMs` until the
// peer acknowledges them, and delivered once at the receiver, which keeps a
// window of the sequence numbers it has seen per sending process.
// Module-private: the delivery layer composes it.

import type { TimerId } from "../base/clock.ts";
import { encodeValue } from "../base/codec.ts";
import { AckTimeoutError, type ClosedError, type NodeDownError, QueueFullError } from "./errors.ts";
import type { Link } from "./_link.ts";
import type { NodeConfig } from "./_config.ts";
import type { Peer, Peers } from "./_peers.ts";
import type { SendOptions } from "./messaging.ts";
import { Tag } from "./wire.ts";

interface PendingAck {
  node: string;
  endpoint: string;
  frame: Uint8Array;
  channel: string;
  key: string | number | undefined;
  lastSentAt: number;
  admitted: boolean;
  resolve: () => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

interface Deduper {
  seen: Set<number>;
  order: number[];
  head: number;
}

/** Counters of acknowledged sends. */
export interface AckCounters {
  retransmits: number;
  duplicates: number;
}

/** The acknowledged sends of one node, out and in. */
export class Acks {
  readonly #cfg: NodeConfig;
  readonly #peers: Peers;
  readonly #isPartitioned: (name: string) => boolean;
  readonly #acks = new Map<number, PendingAck>();
  /** Bytes of admitted unacknowledged sends, per peer. */
  readonly #bytes = new Map<string, number>();
  /** Acknowledged sends waiting for room under `ackBytesMax`, per peer. */
  readonly #waiters = new Map<string, PendingAck[]>();
  readonly #dedup = new Map<string, Deduper>();
  #nextSeq = 1;
  readonly counters: AckCounters = { retransmits: 0, duplicates: 0 };

  constructor(cfg: NodeConfig, peers: Peers, isPartitioned: (name: string) => boolean) {
    this.#cfg = cfg;
    this.#peers = peers;
    this.#isPartitioned = isPartitioned;
  }

  /** Unacknowledged bytes, all peers together. */
  get bytes(): number {
    let n = 0;
    for (const b of this.#bytes.values()) n += b;
    return n;
  }

  /** Called when a send starts waiting for its acknowledgement (the node arms its retransmit timer). */
  onPending: (() => void) | undefined;

  /** Sends waiting for their acknowledgement. */
  get outstanding(): number {
    return this.#acks.size;
  }

  /** The next sequence number (the frame carries it). */
  nextSeq(): number {
    return this.#nextSeq++;
  }

  /** True when `to` has as many sends waiting for room as allowed (refuse before encoding). */
  full(to: string): boolean {
    return (this.#waiters.get(to)?.length ?? 0) >= this.#cfg.link.sendWaitersMax;
  }

  /**
   * Sends `frame` (an `AckMsg` of sequence `seq`) to the known node `to` until
   * it is acknowledged; resolves then, rejects after `timeoutMs`, on abort, or
   * when the node departs.
   */
  send(
    to: string,
    seq: number,
    endpoint: string,
    frame: Uint8Array,
    channel: string,
    timeoutMs: number,
    options: SendOptions,
  ): Promise<void> {
    if (this.#acks.size >= this.#cfg.acksOutstandingMax) {
      return Promise.reject(new QueueFullError(to, channel));
    }
    const waiting = this.#waiters.get(to);
    const room = (this.#bytes.get(to) ?? 0) + frame.length <= this.#cfg.ackBytesMax &&
      (waiting === undefined || waiting.length === 0);
    if (!room && (waiting?.length ?? 0) >= this.#cfg.link.sendWaitersMax) {
      return Promise.reject(new QueueFullError(to, channel));
    }
    return new Promise<void>((resolve, reject) => {
      const { clock } = this.#cfg;
      const onAbort = () => settle(() => reject(options.signal!.reason));
      const timer: { id?: TimerId } = {};
      const a: PendingAck = {
        node: to,
        endpoint,
        frame,
        channel,
        key: options.partitionKey,
        lastSentAt: clock.now(),
        admitted: false,
        resolve: () => settle(resolve),
        reject: (e) => settle(() => reject(e)),
        cleanup: () => {
          this.#acks.delete(seq);
          if (timer.id !== undefined) clock.clearTimeout(timer.id);
          options.signal?.removeEventListener("abort", onAbort);
          if (a.admitted) {
            a.admitted = false;
            this.#bytes.set(to, (this.#bytes.get(to) ?? 0) - frame.length);
            this.#admitWaiting(to);
          } else {
            const ws = this.#waiters.get(to);
            const i = ws?.indexOf(a) ?? -1;
            if (i >= 0) ws!.splice(i, 1);
          }
        },
      };
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        a.cleanup();
        f();
      };
      timer.id = clock.setTimeout(
        () => a.reject(new AckTimeoutError(to, endpoint, timeoutMs)),
        timeoutMs,
      );
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#acks.set(seq, a);
      this.onPending?.();
      if (room) this.#admit(a);
      else {
        let ws = this.#waiters.get(to);
        if (ws === undefined) this.#waiters.set(to, ws = []);
        ws.push(a);
      }
    });
  }

  #admit(a: PendingAck): void {
    a.admitted = true;
    this.#bytes.set(a.node, (this.#bytes.get(a.node) ?? 0) + a.frame.length);
    const peer = this.#peers.peers.get(a.node);
    if (peer?.up) this.#transmit(peer, a);
  }

  #admitWaiting(name: string): void {
    const ws = this.#waiters.get(name);
    while (ws !== undefined && ws.length > 0) {
      const next = ws[0]!;
      if ((this.#bytes.get(name) ?? 0) + next.frame.length > this.#cfg.ackBytesMax) return;
      ws.shift();
      this.#admit(next);
    }
    if (ws !== undefined && ws.length === 0) this.#waiters.delete(name);
  }

  #transmit(peer: Peer, a: PendingAck): void {
    a.lastSentAt = this.#cfg.clock.now();
    if (this.#isPartitioned(peer.name)) {
      this.#peers.counters.partitionDrops++;
      return;
    }
    try {
      // Retransmissions use the control path: they must not wait behind the bound.
      this.#peers.pick(peer, a.channel, a.key).enqueueControl(a.frame);
      this.#peers.counters.framesOut++;
    } catch { /* the retransmit timer tries again */ }
  }

  /**
   * An acknowledged message arrived on `link`: true when it is new (deliver
   * it, then acknowledge it), false for a duplicate (acknowledge it again).
   */
  received(seq: number, link: Link): boolean {
    // Deduplicated per sending process: a restart (new instance) starts afresh.
    const key = `${link.peer}\u0000${link.instance}`;
    let d = this.#dedup.get(key);
    if (d === undefined) {
      for (const k of this.#dedup.keys()) {
        if (k.startsWith(`${link.peer}\u0000`)) this.#dedup.delete(k);
      }
      this.#dedup.set(key, d = { seen: new Set(), order: [], head: 0 });
    }
    let fresh = false;
    if (d.seen.has(seq)) {
      this.counters.duplicates++;
    } else {
      fresh = true;
      d.seen.add(seq);
      d.order.push(seq);
      if (d.order.length - d.head > this.#cfg.dedupWindow) d.seen.delete(d.order[d.head++]!);
      if (d.head > 4096 && d.head * 2 > d.order.length) {
        d.order = d.order.slice(d.head);
        d.head = 0;
      }
    }
    return fresh;
  }

  /** Acknowledges `seq` on `link` (after its delivery: what the handler did comes first). */
  acknowledge(seq: number, link: Link): void {
    if (!this.#isPartitioned(link.peer)) link.enqueueControl(encodeValue([Tag.Ack, seq]));
  }

  /** An acknowledgement from `from`. */
  acknowledged(seq: number, from: string): void {
    const a = this.#acks.get(seq);
    if (a !== undefined && a.node === from) a.resolve();
  }

  /** A peer came up: what waits for its acknowledgement goes out again. */
  peerUp(peer: Peer): void {
    for (const a of this.#acks.values()) {
      if (a.node === peer.name && a.admitted) this.#transmit(peer, a);
    }
  }

  /** A peer left or was removed: what waits for its acknowledgement can never complete. */
  peerDeparted(name: string, reason: () => NodeDownError): void {
    for (const a of [...this.#acks.values()]) if (a.node === name) a.reject(reason());
  }

  /** Sends again what has waited `retransmitIntervalMs` for its acknowledgement. */
  retransmit(now: number): void {
    for (const a of this.#acks.values()) {
      if (!a.admitted) continue;
      const peer = this.#peers.peers.get(a.node);
      if (peer?.up && now - a.lastSentAt >= this.#cfg.retransmitIntervalMs) {
        this.counters.retransmits++;
        this.#transmit(peer, a);
      }
    }
  }

  close(error: ClosedError): void {
    for (const a of [...this.#acks.values()]) a.reject(error);
  }
}
