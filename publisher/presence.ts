/**
 * Presence (in the manner of Phoenix.Tracker), built as a data publisher
 * module: per topic, keys with metadata tracked by their node; subscribers of
 * a topic get join/leave diffs. With `downGraceMs`, a peer that drops and
 * comes back within the grace period causes no leaves and joins at all.
 *
 * @module
 */

import { checkSendable, encodeValue } from "../base/codec.ts";
import type { Node } from "../membership/node.ts";
import { DataPublisher, type DataPublisherOptions } from "./data_publisher.ts";
import type { Listener, PublisherModule } from "./module.ts";
import { checkSchema, type Schema, validate } from "../base/schema.ts";

/**
 * This node's presences: topic to key to metadata. `Map`s, here and on the
 * wire: topics and keys are data, any string (`"__proto__"` and `""` included).
 */
export type PresenceLocal = Map<string, Map<string, unknown>>;
/** An update: tracks (with metadata) and untracks. */
export type PresenceUpdate = (["track", string, string, unknown] | ["untrack", string, string])[];
/** The view: topic to key to node to metadata. */
export type PresenceView = Map<string, Map<string, Map<string, unknown>>>;
/** One presence of a key: where, with what metadata. */
export interface PresenceMeta<Meta = unknown> {
  /** The node that tracks it. */
  node: string;
  /** Its metadata. */
  meta: Meta;
}
/**
 * What a topic's subscribers receive. `joins` and `leaves` are records
 * without a prototype: any key (`"__proto__"` too) is an own property.
 */
export interface PresenceDiff<Meta = unknown> {
  /** The topic. */
  topic: string;
  /** Keys that appeared (or whose metadata changed), with their new presences. */
  joins: Record<string, PresenceMeta<Meta>[]>;
  /** Keys that went away (or whose metadata changed), with their old presences. */
  leaves: Record<string, PresenceMeta<Meta>[]>;
}

/** Options of {@linkcode Presence.start}. */
export interface PresenceOptions<Meta = unknown> extends DataPublisherOptions {
  /**
   * Checks the metadata this node tracks (`track` rejects with a
   * `ValidationError` naming the path, and nothing changes). Other nodes'
   * metadata is theirs to check.
   */
  metaSchema?: Schema<unknown, Meta>;
}

/** Longest topic or key, in UTF-16 code units. */
export const PRESENCE_NAME_LENGTH_MAX = 1024;

function same(a: unknown, b: unknown): boolean {
  const x = encodeValue(a), y = encodeValue(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

function isName(v: unknown): v is string {
  return typeof v === "string" && v.length <= PRESENCE_NAME_LENGTH_MAX;
}

/** Checks an update's shape before anything is changed (the module is atomic). */
function checkUpdate(update: unknown): asserts update is PresenceUpdate {
  if (!Array.isArray(update)) throw new TypeError("a presence update is a list of operations");
  for (const op of update) {
    const ok = Array.isArray(op) && isName(op[1]) && isName(op[2]) &&
      ((op[0] === "track" && op.length === 4) || (op[0] === "untrack" && op.length === 3));
    if (!ok) {
      throw new TypeError(
        'a presence operation is ["track", topic, key, meta] or ["untrack", topic, key]',
      );
    }
  }
}

/** The presence publisher module (version 1). Updates are checked before anything changes. */
export const presenceModule: PublisherModule<
  PresenceLocal,
  PresenceUpdate,
  PresenceView,
  string,
  unknown
> = {
  version: () => 1,
  atomicUpdates: true,
  initLocalData: () => new Map(),
  initGlobalView: () => new Map(),
  dataDiff(oldData, newData) {
    const ops: PresenceUpdate = [];
    for (const topic of new Set([...oldData.keys(), ...newData.keys()])) {
      const o = oldData.get(topic) ?? new Map(), n = newData.get(topic) ?? new Map();
      for (const key of o.keys()) if (!n.has(key)) ops.push(["untrack", topic, key]);
      for (const [key, meta] of n) {
        if (!o.has(key) || !same(o.get(key), meta)) ops.push(["track", topic, key, meta]);
      }
    }
    return ops;
  },
  updateLocalData(update, data) {
    checkUpdate(update);
    if (!(data instanceof Map)) throw new TypeError("presence local data is a Map");
    // In place: the publisher owns this data.
    for (const op of update) {
      const [kind, topic, key] = op;
      let keys = data.get(topic);
      if (keys === undefined) data.set(topic, keys = new Map());
      if (kind === "track") keys.set(key, op[3]);
      else keys.delete(key);
      if (keys.size === 0) data.delete(topic);
    }
    return data;
  },
  updateGlobalViewAndNotify(node, update, subs, view) {
    checkUpdate(update);
    const diffs = new Map<string, PresenceDiff>();
    const diff = (topic: string) => {
      let d = diffs.get(topic);
      if (d === undefined) diffs.set(topic, d = { topic, joins: record(), leaves: record() });
      return d;
    };
    for (const op of update) {
      const [kind, topic, key] = op;
      let keys = view.get(topic);
      const before = keys?.get(key)?.get(node);
      const had = keys?.get(key)?.has(node) ?? false;
      if (kind === "track") {
        if (keys === undefined) view.set(topic, keys = new Map());
        let nodes = keys.get(key);
        if (nodes === undefined) keys.set(key, nodes = new Map());
        if (had && same(before, op[3])) continue;
        nodes.set(node, op[3]);
        if (had) (diff(topic).leaves[key] ??= []).push({ node, meta: before });
        (diff(topic).joins[key] ??= []).push({ node, meta: op[3] });
      } else if (had) {
        const nodes = keys!.get(key)!;
        nodes.delete(node);
        if (nodes.size === 0) keys!.delete(key);
        if (keys!.size === 0) view.delete(topic);
        (diff(topic).leaves[key] ??= []).push({ node, meta: before });
      }
    }
    for (const d of diffs.values()) subs.notify(d.topic, d);
    return view;
  },
  newSubscription: (topic, view) => listOf(view, topic),
  stopGlobalView() {},
  translateLocalData: (_mine, _peer, data) => data,
  translateUpdate: (_mine, _peer, update) => update,
};

function listOf(view: PresenceView, topic: string): Record<string, PresenceMeta[]> {
  const out = record<PresenceMeta[]>();
  for (const [key, nodes] of view.get(topic) ?? []) {
    out[key] = [...nodes].map(([node, meta]) => ({ node, meta })).sort((
      a,
      b,
    ) => (a.node < b.node ? -1 : 1));
  }
  return out;
}

function checkName(what: string, v: unknown): asserts v is string {
  if (!isName(v)) {
    throw new TypeError(
      `${what} must be a string of at most ${PRESENCE_NAME_LENGTH_MAX} characters`,
    );
  }
}

/**
 * Presence of one scope on one node; `Meta` types the metadata (checked at
 * run time by `metaSchema`, if given).
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { Presence } from "@murmur/murmur/publisher";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using presence = await Presence.start(node, "lobby", { downGraceMs: 2000 });
 * await presence.track("room:1", "ada", { status: "online" });
 * console.log(presence.list("room:1")); // { ada: [ { node: "a", meta: { status: "online" } } ] }
 * ```
 */
export class Presence<Meta = unknown> implements AsyncDisposable {
  readonly #pub: DataPublisher<PresenceLocal, PresenceUpdate, PresenceView, string, unknown>;
  readonly #schema: Schema<unknown, Meta> | undefined;

  private constructor(
    pub: DataPublisher<PresenceLocal, PresenceUpdate, PresenceView, string, unknown>,
    schema: Schema<unknown, Meta> | undefined,
  ) {
    this.#pub = pub;
    this.#schema = schema;
  }

  /**
   * Starts presence for `scope` on `node`.
   *
   * @default `"presence"`
   */
  static async start<Meta = unknown>(
    node: Node,
    scope = "presence",
    options: PresenceOptions<Meta> = {},
  ): Promise<Presence<Meta>> {
    const { metaSchema, ...rest } = options;
    checkSchema(metaSchema, "metaSchema");
    return new Presence<Meta>(
      await DataPublisher.start(node, scope, presenceModule, rest),
      metaSchema,
    );
  }

  /** The underlying publisher. */
  get publisher(): DataPublisher<PresenceLocal, PresenceUpdate, PresenceView, string, unknown> {
    return this.#pub;
  }

  /**
   * Tracks `key` in `topic` from this node with `meta` (tracking again updates
   * the metadata).
   *
   * @throws {TypeError} (rejects) a topic or key that is not a string, or
   *   metadata that cannot cross the wire (naming its path: `meta.cb is a
   *   function`); nothing changes then.
   * @throws {ValidationError} (rejects) metadata that `metaSchema` refuses; nothing changes then.
   */
  async track(topic: string, key: string, meta: Meta = null as Meta): Promise<void> {
    checkName("topic", topic);
    checkName("key", key);
    if (this.#schema !== undefined) {
      const r = await validate(this.#schema, meta, { endpoint: topic, what: "presence topic" });
      if (!r.ok) throw r.error;
      meta = r.value;
    }
    checkSendable(meta, "meta", `cannot track "${key}" in "${topic}"`);
    await this.#pub.update([["track", topic, key, meta]]);
  }

  /** Stops tracking `key` in `topic` from this node. Returns false when it was not tracked here. */
  async untrack(topic: string, key: string): Promise<boolean> {
    checkName("topic", topic);
    checkName("key", key);
    if (!this.#pub.localData.get(topic)?.has(key)) return false;
    await this.#pub.update([["untrack", topic, key]]);
    return true;
  }

  /** The presences of `topic`: key to the nodes that track it, with their metadata (a record without a prototype). */
  list(topic: string): Record<string, PresenceMeta<Meta>[]> {
    return listOf(this.#pub.view, topic) as Record<string, PresenceMeta<Meta>[]>;
  }

  /** The topics with at least one presence. */
  topics(): string[] {
    return [...this.#pub.view.keys()].sort();
  }

  /** Follows `topic`: join/leave diffs. Returns a reference and the current presences. */
  subscribe(topic: string, listener: (diff: PresenceDiff<Meta>) => void): {
    ref: number;
    presences: Record<string, PresenceMeta<Meta>[]>;
  } {
    const { ref, result } = this.#pub.subscribe(topic, listener as Listener);
    return { ref, presences: result as Record<string, PresenceMeta<Meta>[]> };
  }

  /** Stops following. */
  unsubscribe(ref: number): boolean {
    return this.#pub.unsubscribe(ref);
  }

  /** Stops: this node's presences leave everywhere. */
  close(): Promise<void> {
    return this.#pub.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
