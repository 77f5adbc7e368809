// A connection after its handshake: a bounded send queue with one writer loop,
// monotonic replacement, and backpressure. Module-private.

import type { FrameConnection } from "./transport.ts";
import { NodeDownError, QueueFullError } from "./errors.ts";
import type { MessageContext } from "./messaging.ts";

const RESOLVED = Promise.resolve();

export interface LinkLimits {
  /** Soft bound: past it, `enqueue` waits. */
  sendQueueBytesMax: number;
  /** Past it, `drained()` waits for the queue to come back under it (pacing, nothing refused). */
  sendQueueHighWaterBytes: number;
  /** Hard bound on waiting senders: past it, `enqueue` throws QueueFullError. */
  sendWaitersMax: number;
  /** Bytes written per batch. */
  writeBatchBytesMax: number;
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
  /** What handlers get with each message from this link (one frozen object). */
  readonly context: MessageContext;
  closed = false;
  lastSentAt = 0;
  readonly #limits: LinkLimits;
  readonly #onError: (link: Link, error: unknown) => void;
  readonly #now: () => number;
  readonly #track: (task: Promise<unknown>) => void;
  readonly #onClosed: (() => void) | undefined;
  readonly #counters: { bytesOut: number } | undefined;
  // The queue: frames from #head on wait to be written. A monotonic link also
  // keeps each frame's key (in #keys, same positions) and, per key, the
  // absolute position (#base + index) of the frame that replacement overwrites.
  #frames: Uint8Array[] = [];
  #keys: (string | undefined)[] = [];
  #head = 0;
  #base = 0;
  #bytes = 0;
  #byKey = new Map<string, number>();
  #writing = false;
  #idle: (() => void)[] = [];
  #waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  #drained: PromiseWithResolvers<void> | undefined;

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
    this.context = Object.freeze({ from: info.peer, channel: info.channel });
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
    return this.#frames.length - this.#head;
  }

  /**
   * Queues a frame. Returns undefined when queued at once, a promise when the
   * caller must wait for room; throws QueueFullError past the hard bound.
   */
  enqueue(frame: Uint8Array, key?: string): Promise<void> | undefined {
    if (this.closed) throw new NodeDownError(this.peer, "connection closed");
    if (this.monotonic && key !== undefined) {
      const at = this.#byKey.get(key);
      if (at !== undefined) {
        // Keep only the newest message for this key, in the old one's place.
        const i = at - this.#base;
        this.#bytes += frame.length - this.#frames[i]!.length;
        this.#frames[i] = frame;
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

  /**
   * Settles once the queue is at or under the high-water mark, or the link has
   * closed: what a sender awaits to be paced (one promise for all who wait).
   */
  drained(): Promise<void> {
    if (this.closed || this.#bytes <= this.#limits.sendQueueHighWaterBytes) return RESOLVED;
    return (this.#drained ??= Promise.withResolvers<void>()).promise;
  }

  /** Queues a control frame (pong, ack, reply, gossip): no waiting, dropped past 2x the bound. */
  enqueueControl(frame: Uint8Array): boolean {
    if (this.closed || this.#bytes >= 2 * this.#limits.sendQueueBytesMax) return false;
    this.#push(frame, undefined);
    return true;
  }

  #push(frame: Uint8Array, key: string | undefined): void {
    if (this.monotonic) {
      if (key !== undefined) this.#byKey.set(key, this.#base + this.#frames.length);
      this.#keys.push(key);
    }
    this.#frames.push(frame);
    this.#bytes += frame.length;
    if (!this.#writing) this.#track(this.#writeLoop());
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (!this.closed && this.#head < this.#frames.length) {
        const frames = this.#frames, start = this.#head, max = this.#limits.writeBatchBytesMax;
        let end = start, size = 0;
        while (end < frames.length && size < max) size += frames[end++]!.length;
        if (this.monotonic) {
          for (let i = start; i < end; i++) {
            const key = this.#keys[i];
            if (key !== undefined && this.#byKey.get(key) === this.#base + i) {
              this.#byKey.delete(key);
            }
          }
        }
        const batch = start === 0 && end === frames.length ? frames : frames.slice(start, end);
        this.#head = end;
        if (end === frames.length || (end > 1024 && end * 2 > frames.length)) this.#drop(end);
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

  /** Forgets the first `n` positions of the queue (all written). */
  #drop(n: number): void {
    if (n === this.#frames.length) {
      this.#frames = [];
      if (this.monotonic) this.#keys = [];
    } else {
      this.#frames = this.#frames.slice(n);
      if (this.monotonic) this.#keys = this.#keys.slice(n);
    }
    this.#base += n;
    this.#head = 0;
  }

  #wake(): void {
    if (this.#drained !== undefined && this.#bytes <= this.#limits.sendQueueHighWaterBytes) {
      this.#drained.resolve();
      this.#drained = undefined;
    }
    while (this.#waiters.length > 0 && this.#bytes < this.#limits.sendQueueBytesMax) {
      this.#waiters.shift()!.resolve();
    }
  }

  /** Resolves once everything queued now has been written (or the link closed). */
  flush(): Promise<void> {
    if (this.closed || (!this.#writing && this.#head >= this.#frames.length)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #settleIdle(): void {
    const idle = this.#idle;
    this.#idle = [];
    for (const r of idle) r();
  }

  #whenClosed: PromiseWithResolvers<void> | undefined;

  /** Resolves once the link is closed (by this node or the peer). */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return (this.#whenClosed ??= Promise.withResolvers<void>()).promise;
  }

  close(reason: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.#whenClosed?.resolve();
    this.conn.close();
    this.#frames = [];
    this.#keys = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#byKey.clear();
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w.reject(reason);
    this.#drained?.resolve();
    this.#drained = undefined;
    this.#settleIdle();
    this.#onClosed?.();
  }
}
