// A connection after its handshake: a bounded send queue with one writer loop,
// monotonic replacement, and backpressure. Module-private.

import type { FrameConnection } from "./transport.ts";
import { NodeDownError, QueueFullError } from "./errors.ts";

export interface LinkLimits {
  /** Soft bound: past it, `enqueue` waits. */
  sendQueueBytesMax: number;
  /** Hard bound on waiting senders: past it, `enqueue` throws QueueFullError. */
  sendWaitersMax: number;
  /** Bytes written per batch. */
  writeBatchBytesMax: number;
}

interface Item {
  frame: Uint8Array;
  key: string | undefined;
}

export class Link {
  readonly conn: FrameConnection;
  readonly peer: string;
  readonly incarnation: number;
  readonly channel: string;
  readonly index: number;
  readonly outgoing: boolean;
  readonly monotonic: boolean;
  /** The peer's process instance (hex), from the handshake. */
  readonly instance: string;
  closed = false;
  lastSentAt = 0;
  readonly #limits: LinkLimits;
  readonly #onError: (link: Link, error: unknown) => void;
  readonly #now: () => number;
  readonly #track: (task: Promise<unknown>) => void;
  readonly #onClosed: (() => void) | undefined;
  readonly #counters: { bytesOut: number } | undefined;
  #queue: Item[] = [];
  #head = 0;
  #bytes = 0;
  #byKey = new Map<string, Item>();
  #writing = false;
  #idle: (() => void)[] = [];
  #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  constructor(
    conn: FrameConnection,
    info: {
      peer: string;
      incarnation: number;
      channel: string;
      index: number;
      outgoing: boolean;
      monotonic: boolean;
      instance: string;
    },
    limits: LinkLimits,
    now: () => number,
    onError: (link: Link, error: unknown) => void,
    track: (task: Promise<unknown>) => void,
    onClosed?: () => void,
    counters?: { bytesOut: number },
  ) {
    this.conn = conn;
    this.peer = info.peer;
    this.incarnation = info.incarnation;
    this.channel = info.channel;
    this.index = info.index;
    this.outgoing = info.outgoing;
    this.monotonic = info.monotonic;
    this.instance = info.instance;
    this.#limits = limits;
    this.#now = now;
    this.#onError = onError;
    this.#track = track;
    this.#onClosed = onClosed;
    this.#counters = counters;
  }

  get queuedBytes(): number {
    return this.#bytes;
  }

  get queuedFrames(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Queues a frame. Returns undefined when queued at once, a promise when the
   * caller must wait for room; throws QueueFullError past the hard bound.
   */
  enqueue(frame: Uint8Array, key?: string): Promise<void> | undefined {
    if (this.closed) throw new NodeDownError(this.peer, "connection closed");
    if (this.monotonic && key !== undefined) {
      const old = this.#byKey.get(key);
      if (old !== undefined) {
        // Keep only the newest message for this key, in the old one's place.
        this.#bytes += frame.length - old.frame.length;
        old.frame = frame;
        return undefined;
      }
    }
    if (this.#bytes < this.#limits.sendQueueBytesMax) {
      this.#push(frame, key);
      return undefined;
    }
    if (this.#waiters.length >= this.#limits.sendWaitersMax) {
      throw new QueueFullError(this.peer, this.channel);
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    }).then(() => {
      if (this.closed) throw new NodeDownError(this.peer, "connection closed");
      this.#push(frame, key);
    });
  }

  /** Queues a control frame (pong, ack, reply, gossip): no waiting, dropped past 2x the bound. */
  enqueueControl(frame: Uint8Array): boolean {
    if (this.closed || this.#bytes >= 2 * this.#limits.sendQueueBytesMax) return false;
    this.#push(frame, undefined);
    return true;
  }

  #push(frame: Uint8Array, key: string | undefined): void {
    const item: Item = { frame, key };
    this.#queue.push(item);
    this.#bytes += frame.length;
    if (this.monotonic && key !== undefined) this.#byKey.set(key, item);
    if (!this.#writing) this.#track(this.#writeLoop());
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (!this.closed && this.#head < this.#queue.length) {
        const batch: Uint8Array[] = [];
        let size = 0;
        while (this.#head < this.#queue.length && size < this.#limits.writeBatchBytesMax) {
          const item = this.#queue[this.#head++]!;
          if (item.key !== undefined && this.#byKey.get(item.key) === item) {
            this.#byKey.delete(item.key);
          }
          batch.push(item.frame);
          size += item.frame.length;
        }
        if (this.#head === this.#queue.length) {
          this.#queue = [];
          this.#head = 0;
        } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
        this.lastSentAt = this.#now();
        await this.conn.write(batch);
        this.#bytes -= size;
        if (this.#counters !== undefined) this.#counters.bytesOut += size;
        this.#wake();
      }
    } catch (e) {
      if (!this.closed) this.#onError(this, e);
    } finally {
      this.#writing = false;
      this.#settleIdle();
    }
  }

  #wake(): void {
    while (this.#waiters.length > 0 && this.#bytes < this.#limits.sendQueueBytesMax) {
      this.#waiters.shift()!.resolve();
    }
  }

  /** Resolves once everything queued now has been written (or the link closed). */
  flush(): Promise<void> {
    if (this.closed || (!this.#writing && this.#head >= this.#queue.length)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #settleIdle(): void {
    const idle = this.#idle;
    this.#idle = [];
    for (const r of idle) r();
  }

  close(reason: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.close();
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#byKey.clear();
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w.reject(reason);
    this.#settleIdle();
    this.#onClosed?.();
  }
}
