// One local subscriber: its handler, its schema and its queue. Messages run
// one at a time in arrival order (an async handler is awaited before the
// next); a full queue drops and counts; a handler that throws is logged and
// the next message runs. Module-private: PubSub composes it.

import { type Schema, validate, type Validated } from "../base/schema.ts";
import type { PubSubContext } from "./topic.ts";

/** What a subscriber reports to its PubSub (counters and logs). */
export interface SubscriberHost {
  /** A message refused by the subscriber's schema. */
  invalid(topic: string, from: string, error: Error): void;
  /** The handler threw or rejected. */
  failed(topic: string, from: string, error: unknown): void;
  /** A message was handed to the handler. */
  delivered(): void;
}

interface Item {
  msg: unknown;
  ctx: PubSubContext;
}

/** A subscriber of one topic on this node. */
export class Subscriber {
  readonly topic: string;
  readonly #handler: (msg: unknown, ctx: PubSubContext) => unknown;
  readonly #schema: Schema | undefined;
  readonly #queueMax: number;
  readonly #host: SubscriberHost;
  #queue: Item[] = [];
  #head = 0;
  #running = false;
  closed = false;

  constructor(
    topic: string,
    handler: (msg: unknown, ctx: PubSubContext) => unknown,
    schema: Schema | undefined,
    queueMax: number,
    host: SubscriberHost,
  ) {
    this.topic = topic;
    this.#handler = handler;
    this.#schema = schema;
    this.#queueMax = queueMax;
    this.#host = host;
  }

  /** Messages waiting. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Queues a message; false (dropped) when the queue is full or the subscriber
   * gone. An idle subscriber runs it at once when `now` (a frame from a peer:
   * the handler runs in the receive path, as an endpoint's does), else from a
   * microtask (this node's own publish returns first).
   */
  push(msg: unknown, ctx: PubSubContext, now: boolean): boolean {
    if (this.closed || this.queued >= this.#queueMax) return false;
    if (this.#running || !now) {
      this.#queue.push({ msg, ctx });
      if (!this.#running) {
        this.#running = true;
        queueMicrotask(() => void this.#drain());
      }
      return true;
    }
    // Idle, from a peer: run it here (what it publishes meanwhile waits its turn).
    this.#running = true;
    const pending = this.#run(msg, ctx);
    if (pending !== undefined) void pending.then(() => this.#drain());
    else if (this.#head < this.#queue.length) void this.#drain();
    else this.#running = false;
    return true;
  }

  /** Stops: what waits is dropped. */
  close(): void {
    this.closed = true;
    this.#queue = [];
    this.#head = 0;
  }

  /** Runs what waits, in order; synchronous until a handler (or schema) returns a promise. */
  async #drain(): Promise<void> {
    try {
      while (!this.closed && this.#head < this.#queue.length) {
        const item = this.#queue[this.#head]!;
        this.#queue[this.#head++] = undefined as unknown as Item;
        if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
        const pending = this.#run(item.msg, item.ctx);
        if (pending !== undefined) await pending;
      }
    } finally {
      this.#running = false;
    }
  }

  /** One message: undefined when it ran synchronously, else a promise of its end. */
  #run(msg: unknown, ctx: PubSubContext): Promise<void> | undefined {
    if (this.#schema === undefined) return this.#call(msg, ctx);
    const r = validate(this.#schema, msg, { endpoint: this.topic, what: "topic" });
    const go = (v: Validated<unknown>): Promise<void> | undefined => {
      if (v.ok) return this.#call(v.value, ctx);
      this.#host.invalid(this.topic, ctx.from, v.error);
      return undefined;
    };
    return r instanceof Promise ? r.then(go) : go(r);
  }

  #call(msg: unknown, ctx: PubSubContext): Promise<void> | undefined {
    this.#host.delivered();
    try {
      const out = this.#handler(msg, ctx);
      if (out instanceof Promise) {
        return out.then(() => {}, (e) => this.#host.failed(this.topic, ctx.from, e));
      }
    } catch (e) {
      this.#host.failed(this.topic, ctx.from, e);
    }
    return undefined;
  }
}
