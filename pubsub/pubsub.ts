/**
 * Topic publish/subscribe across the cluster, after Phoenix.PubSub's PG
 * adapter: a node with subscribers of a topic is a member of that topic's
 * process group (one member per node, however many subscribers it has); a
 * publish sends one frame to each such node, which hands the message to its
 * local subscribers. Nodes without a subscriber get nothing.
 *
 * @module
 */

import { checkSendable, decodeValue, encodeForWire } from "../base/codec.ts";
import type { LogLevel } from "../base/logger.ts";
import { numberOption, timeoutOption } from "../base/options.ts";
import { checkSchema, type Schema } from "../base/schema.ts";
import type { Node } from "../membership/node.ts";
import { ProcessGroups } from "../publisher/process_groups.ts";
import type { DataPublisherOptions } from "../publisher/data_publisher.ts";
import { Subscriber } from "./_subscriber.ts";
import { type PubSubContext, type Topic, topicName } from "./topic.ts";

/** Default bound of each subscriber's queue (`PubSubOptions.queueMax`). */
export const DEFAULT_PUBSUB_QUEUE_MAX = 10_000;
/** Default timeout of an acknowledged publish (`PublishOptions.timeoutMs`). */
export const DEFAULT_PUBLISH_ACK_TIMEOUT_MS = 10_000;

/** Options of {@linkcode PubSub.start}. */
export interface PubSubOptions {
  /**
   * Messages waiting per subscriber (a slow or hung handler holds its own
   * queue only); past it a message is dropped for that subscriber and counted
   * in `stats().drops`.
   *
   * @default {10000}
   */
  queueMax?: number;
  /**
   * Channel publishes travel on.
   *
   * @default `"default"`
   */
  channel?: string;
  /** Options of the process groups that track the subscriptions (its publisher's bounds and intervals). */
  groups?: DataPublisherOptions;
}

/** Options of {@linkcode PubSub.publish}. */
export interface PublishOptions {
  /**
   * Resolve once every node with subscribers has the message (retransmitted
   * until acknowledged; see `SendOptions.ack`). Without it a publish is at
   * most once, like `send`.
   */
  ack?: boolean;
  /** With `ack`: give up on a node after this long (its failure is reported). @default {10000} */
  timeoutMs?: number;
}

/** What a publish reached. */
export interface PublishResult {
  /** Nodes the message was sent to (this node included when it has subscribers). */
  nodes: number;
  /** Nodes it could not be sent to (or, with `ack`, that did not acknowledge), with why. */
  failed: { node: string; error: unknown }[];
}

/** Options of {@linkcode PubSub.subscribe}. */
export interface SubscribeOptions<T> {
  /** Checks each message before the handler runs (a typed topic's schema otherwise). Failures are counted and logged. */
  schema?: Schema<unknown, T>;
}

/** Counters of one PubSub. */
export interface PubSubStats {
  /** Messages published from this node. */
  published: number;
  /** Frames received from other nodes (one per message and node, however many subscribers). */
  received: number;
  /** Messages handed to local handlers. */
  delivered: number;
  /** Messages dropped for a subscriber whose queue was full. */
  drops: number;
  /** Messages refused by a subscriber's schema. */
  invalid: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
  /** Frames from peers that were not `[topic, message]`. */
  malformed: number;
  /** Local subscribers, all topics. */
  subscribers: number;
}

/** Handles a topic's messages. */
export type TopicHandler<T> = (msg: T, ctx: PubSubContext) => unknown;

/**
 * Topic publish/subscribe of one scope on one node.
 *
 * Each subscriber gets every message once, in order per publisher and topic
 * (a topic's messages from one node travel on one connection); its handler
 * runs one message at a time (an async one is awaited first). Subscribers on
 * one node share the decoded message: treat it as read-only.
 *
 * @example
 * ```ts
 * import { Node, PubSub } from "@murmur/murmur";
 * await using a = await Node.start({ name: "a", cookie: "c" });
 * await using ps = await PubSub.start(a);
 * const { promise, resolve } = Promise.withResolvers<unknown>();
 * await ps.subscribe("news", (msg) => resolve(msg));
 * await ps.publish("news", { headline: "hi" });
 * console.log(await promise); // { headline: "hi" }
 * ```
 */
export class PubSub implements AsyncDisposable {
  readonly #node: Node;
  readonly #pg: ProcessGroups;
  readonly #endpoint: string;
  readonly #queueMax: number;
  readonly #channel: string | undefined;
  readonly #topics = new Map<string, Set<Subscriber>>();
  readonly #joined = new Set<string>();
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #lastLog = new Map<string, number>();
  readonly #stats: PubSubStats = {
    published: 0,
    received: 0,
    delivered: 0,
    drops: 0,
    invalid: 0,
    handlerErrors: 0,
    malformed: 0,
    subscribers: 0,
  };
  readonly #host = {
    invalid: (topic: string, from: string, e: Error) => {
      this.#stats.invalid++;
      this.#logLimited("invalid", "warn", `message on "${topic}" refused (${e.message})`, from);
    },
    failed: (topic: string, from: string, e: unknown) => {
      this.#stats.handlerErrors++;
      this.#logLimited("failed", "error", `a subscriber of "${topic}" threw`, from, e);
    },
    delivered: () => void this.#stats.delivered++,
  };

  private constructor(node: Node, pg: ProcessGroups, endpoint: string, options: PubSubOptions) {
    this.#node = node;
    this.#pg = pg;
    this.#endpoint = endpoint;
    this.#queueMax = numberOption("queueMax", options.queueMax, DEFAULT_PUBSUB_QUEUE_MAX);
    this.#channel = options.channel;
  }

  /**
   * Starts the pubsub of `scope` on `node` (every node that takes part starts
   * the same scope). Works on full mesh and HyParView nodes alike.
   *
   * @throws {TypeError} (rejects) a scope that already runs on this node, bad options.
   */
  static async start(node: Node, scope = "pubsub", options: PubSubOptions = {}): Promise<PubSub> {
    if (typeof scope !== "string" || scope.length === 0 || scope.length > 180) {
      throw new TypeError("a pubsub scope is a non-empty string of at most 180 characters");
    }
    numberOption("queueMax", options.queueMax, DEFAULT_PUBSUB_QUEUE_MAX);
    const endpoint = `murmur.pubsub:${scope}`;
    if (node.registered(endpoint)) {
      throw new TypeError(`pubsub "${scope}" already runs on node "${node.name}"`);
    }
    const pg = await ProcessGroups.start(node, `murmur.pubsub:${scope}`, options.groups);
    const ps = new PubSub(node, pg, endpoint, options);
    node.register(endpoint, (raw, ctx) => ps.#receive(raw, ctx.from));
    return ps;
  }

  /**
   * Subscribes `handler` to `topic` on this node. Resolves once this node is
   * listed as a subscriber (other nodes learn it by gossip, within the groups'
   * propagation time), with a function that unsubscribes.
   *
   * @throws {TypeError} a bad topic, handler or schema; a closed pubsub.
   */
  async subscribe<T>(
    topic: Topic<T>,
    handler: TopicHandler<T>,
    options?: SubscribeOptions<T>,
  ): Promise<() => Promise<void>>;
  /** Subscribes to the topic named `topic`, its messages checked by `options.schema`. */
  async subscribe<T>(
    topic: string,
    handler: TopicHandler<T>,
    options: SubscribeOptions<T> & { schema: Schema<unknown, T> },
  ): Promise<() => Promise<void>>;
  /** Subscribes to the topic named `topic` (messages are `unknown`). */
  async subscribe(
    topic: string,
    handler: TopicHandler<unknown>,
    options?: SubscribeOptions<unknown>,
  ): Promise<() => Promise<void>>;
  async subscribe(
    t: string | Topic<unknown>,
    handler: TopicHandler<unknown>,
    options: SubscribeOptions<unknown> = {},
  ): Promise<() => Promise<void>> {
    const name = topicName(t);
    if (typeof handler !== "function") throw new TypeError("a subscriber's handler is a function");
    const schema = options.schema ?? (typeof t === "string" ? undefined : t.schema);
    checkSchema(schema, `the schema of a subscriber of "${name}"`);
    this.#checkOpen();
    const sub = new Subscriber(name, handler, schema, this.#queueMax, this.#host);
    let set = this.#topics.get(name);
    if (set === undefined) this.#topics.set(name, set = new Set());
    set.add(sub);
    this.#stats.subscribers++;
    await this.#sync(name);
    let done: Promise<void> | undefined;
    return () => done ??= this.#unsubscribe(sub);
  }

  async #unsubscribe(sub: Subscriber): Promise<void> {
    sub.close();
    const set = this.#topics.get(sub.topic);
    if (set === undefined || !set.delete(sub)) return;
    this.#stats.subscribers--;
    if (set.size === 0) this.#topics.delete(sub.topic);
    if (!this.#closed) await this.#sync(sub.topic);
  }

  /**
   * Publishes `msg` to every subscriber of `topic` in the cluster: one frame
   * to each node with subscribers, this node's own subscribers from a copy.
   * Resolves with what it reached; never rejects for delivery reasons.
   *
   * @throws {TypeError} (rejects) a bad topic or a message that cannot cross
   *   the wire, naming its path; no subscriber got it then.
   */
  publish<T>(topic: Topic<T>, msg: T, options?: PublishOptions): Promise<PublishResult>;
  /** Publishes `msg` to the topic named `topic` (as above). */
  publish(topic: string, msg: unknown, options?: PublishOptions): Promise<PublishResult>;
  async publish(
    t: string | Topic<unknown>,
    msg: unknown,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    const topic = topicName(t);
    this.#checkOpen();
    const ack = options.ack === true;
    const timeoutMs = timeoutOption("timeoutMs", options.timeoutMs, DEFAULT_PUBLISH_ACK_TIMEOUT_MS);
    const byNode = this.#pg.publisher.view.groups.get(topic);
    const remote: string[] = [];
    let local = false;
    if (byNode !== undefined) {
      for (const n of byNode.keys()) {
        if (n === this.#node.name) local = true;
        else remote.push(n);
      }
    }
    const context = `cannot publish on "${topic}"`;
    // This node's own subscribers (what it has now, not what gossip said) get a copy.
    if (this.#topics.has(topic)) {
      local = true;
      const copy = decodeValue(encodeForWire(msg, "msg", context));
      this.#fanOut(topic, copy, this.#node.name, false);
    } else if (remote.length === 0) {
      checkSendable(msg, "msg", context);
    }
    this.#stats.published++;
    const nodes = remote.length + (local ? 1 : 0);
    if (remote.length === 0) return { nodes, failed: [] };
    const frame = [topic, msg];
    const base = { partitionKey: topic, ...(this.#channel ? { channel: this.#channel } : {}) };
    // Under a partial view a node with subscribers may be no neighbour: the
    // frame is routed hop by hop through the overlay (`transitive`).
    const partial = this.#node.strategy !== "full-mesh";
    try {
      if (!ack && !partial) {
        return { nodes, failed: await this.#node.sendMany(remote, this.#endpoint, frame, base) };
      }
      // Under a partial view frames are acknowledged end to end either way: a routed frame
      // can be lost while the overlay changes. Without `ack` the publish does not wait.
      const opts = { ...base, transitive: partial, ack: true, timeoutMs };
      const sent = remote.map((node) =>
        this.#node.send(node, this.#endpoint, frame, opts).then(
          () => undefined,
          (error: unknown) => ({ node, error }),
        )
      );
      if (!ack) return { nodes, failed: [] }; // failures are counted in the node's ackFailures
      return { nodes, failed: (await Promise.all(sent)).filter((x) => x !== undefined) };
    } catch (e) {
      // A message that cannot cross the wire: named from the user's side.
      if (e instanceof TypeError) checkSendable(msg, "msg", context);
      throw e;
    }
  }

  /**
   * Hands `msg` to this node's subscribers of `topic` only (Phoenix's
   * `local_broadcast`). Returns how many subscribers it was queued for.
   *
   * @throws {TypeError} a bad topic or a message that cannot cross the wire.
   */
  localBroadcast<T>(topic: Topic<T>, msg: T): number;
  /** Hands `msg` to this node's subscribers of the topic named `topic` (as above). */
  localBroadcast(topic: string, msg: unknown): number;
  localBroadcast(t: string | Topic<unknown>, msg: unknown): number {
    const topic = topicName(t);
    this.#checkOpen();
    if (!this.#topics.has(topic)) return 0;
    const copy = decodeValue(encodeForWire(msg, "msg", `cannot publish on "${topic}"`));
    return this.#fanOut(topic, copy, this.#node.name, false);
  }

  /** The nodes with at least one subscriber of `topic` (as this node knows them), sorted. */
  subscribers(t: string | Topic<unknown>): string[] {
    const topic = topicName(t);
    const nodes = new Set(this.#pg.publisher.view.groups.get(topic)?.keys() ?? []);
    if (this.#topics.has(topic)) nodes.add(this.#node.name);
    return [...nodes].sort();
  }

  /** How many subscribers `topic` has on this node. */
  localSubscribers(t: string | Topic<unknown>): number {
    return this.#topics.get(topicName(t))?.size ?? 0;
  }

  /** The topics with a subscriber somewhere in the cluster, sorted. */
  topics(): string[] {
    return this.#pg.whichGroups();
  }

  /** Counters (see {@linkcode PubSubStats}). */
  stats(): PubSubStats {
    return { ...this.#stats };
  }

  /** Stops: this node's subscriptions leave everywhere; what waits in queues is dropped. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const set of this.#topics.values()) for (const s of set) s.close();
    this.#topics.clear();
    this.#stats.subscribers = 0;
    await this.#chain;
    this.#node.unregister(this.#endpoint);
    await this.#pg.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #receive(raw: unknown, from: string): void {
    if (!Array.isArray(raw) || raw.length !== 2 || typeof raw[0] !== "string") {
      this.#stats.malformed++;
      this.#logLimited("malformed", "warn", "malformed pubsub frame dropped", from);
      return;
    }
    this.#stats.received++;
    if (!this.#closed) this.#fanOut(raw[0], raw[1], from, true);
  }

  #fanOut(topic: string, msg: unknown, from: string, now: boolean): number {
    const set = this.#topics.get(topic);
    if (set === undefined) return 0;
    const ctx: PubSubContext = Object.freeze({ topic, from });
    let n = 0;
    for (const s of set) {
      if (s.push(msg, ctx, now)) n++;
      else {
        this.#stats.drops++;
        this.#logLimited("drop", "warn", `a subscriber of "${topic}" is full: message dropped`);
      }
    }
    return n;
  }

  /** Brings this node's membership of `topic`'s group in line with its subscribers, one change at a time. */
  #sync(topic: string): Promise<void> {
    const step = this.#chain.then(async () => {
      if (this.#closed) return;
      const want = this.#topics.has(topic), have = this.#joined.has(topic);
      if (want && !have) {
        await this.#pg.join(topic, this.#endpoint);
        this.#joined.add(topic);
      } else if (!want && have) {
        await this.#pg.leave(topic, this.#endpoint);
        this.#joined.delete(topic);
      }
    });
    this.#chain = step.catch(() => {});
    return step;
  }

  #checkOpen(): void {
    if (this.#closed) throw new TypeError("this pubsub is closed");
  }

  /** Logs at most once a second per kind (a flood cannot flood the log). */
  #logLimited(kind: string, level: LogLevel, msg: string, peer?: string, error?: unknown): void {
    const now = this.#node.clock.now();
    if (now - (this.#lastLog.get(kind) ?? -Infinity) < 1000) return;
    this.#lastLog.set(kind, now);
    this.#node.logger({
      level,
      node: this.#node.name,
      msg,
      ...(peer !== undefined ? { peer } : {}),
      ...(error !== undefined ? { error } : {}),
    });
  }
}
