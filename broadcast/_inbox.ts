// Plumtree's inbox: messages are handled one at a time, in arrival order.
// Handlers that answer synchronously are served as the message arrives; a
// promise holds the queue until it settles. Module-private.

/** Handles one message; a promise holds the inbox until it settles. */
export type InboxHandler = (
  from: string,
  raw: unknown,
  at: number,
  frame: Uint8Array | undefined,
) => void | Promise<void>;

/** A serial inbox bounded at `max` waiting messages. */
export class SerialInbox {
  /** Waiting messages, flat, four slots each: from, message, arrival time, frame. */
  #queue: unknown[] = [];
  #head = 0;
  #draining = false;
  #settled: Promise<void> = Promise.resolve();

  constructor(
    private readonly max: number,
    private readonly handle: InboxHandler,
    private readonly failed: (from: string, error: unknown) => void,
  ) {}

  /** Messages waiting. */
  get size(): number {
    return (this.#queue.length - this.#head) / 4;
  }

  /** Resolves when the message a handler's promise holds is done. */
  get settled(): Promise<void> {
    return this.#settled;
  }

  /** Takes a message; false when it was dropped (the inbox is full). */
  push(from: string, raw: unknown, at: number, frame: Uint8Array | undefined): boolean {
    if (!this.#draining) {
      // Nothing queued: handle it now, without a trip through the queue.
      this.#draining = true;
      if (this.#one(from, raw, at, frame)) this.#drain();
      return true;
    }
    if (this.size >= this.max) return false;
    this.#queue.push(from, raw, at, frame);
    return true;
  }

  /** Handles one message; false when its promise now holds the queue (it drains on). */
  #one(from: string, raw: unknown, at: number, frame: Uint8Array | undefined): boolean {
    let r: void | Promise<void>;
    try {
      r = this.handle(from, raw, at, frame);
    } catch (e) {
      this.failed(from, e);
      return true;
    }
    if (r instanceof Promise) {
      this.#settled = r.catch((e) => this.failed(from, e)).then(() => this.#drain());
      return false;
    }
    return true;
  }

  #drain(): void {
    this.#draining = true;
    const q = this.#queue;
    while (this.#head < q.length) {
      const h = this.#head;
      const from = q[h] as string, raw = q[h + 1], at = q[h + 2] as number;
      const frame = q[h + 3] as Uint8Array | undefined;
      this.#head += 4;
      if (this.#head === q.length) {
        q.length = 0;
        this.#head = 0;
      } else if (this.#head > 4096 && this.#head * 2 > q.length) {
        q.splice(0, this.#head);
        this.#head = 0;
      }
      if (!this.#one(from, raw, at, frame)) return;
    }
    this.#draining = false;
  }
}
