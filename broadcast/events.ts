/**
 * User events (serf's `serf event`): a name and a small payload broadcast
 * through Plumtree to every node, handed to `onEvent` callbacks once per node.
 * Fire and forget; a node that is down when an event is sent does not get it
 * later (events are not stored past the duplicate window).
 *
 * @module
 */

import type { BroadcastHandler, BroadcastServer, GraftResult } from "./handler.ts";

/** Longest event name. */
export const EVENT_NAME_LENGTH_MAX = 128;
/** Largest event payload, in UTF-16 code units (serf's limit is 512 bytes; this is a string). */
export const EVENT_PAYLOAD_LENGTH_MAX = 1024;
/** Events remembered to drop duplicates and answer grafts (the oldest go first). */
export const EVENTS_REMEMBERED_MAX = 4096;

/** One user event, as `onEvent` callbacks receive it. */
export interface UserEvent {
  /** Unique id (origin node, a random part and a sequence). */
  readonly id: string;
  /** The event's name. */
  readonly name: string;
  /** Its payload. */
  readonly payload: string;
  /** The node that sent it. */
  readonly origin: string;
  /** Wall-clock time at the origin (ms since the epoch). */
  readonly at: number;
}

/** A user event on the wire: name, payload, origin, time. */
export type UserEventPayload = [name: string, payload: string, origin: string, at: number];
type Payload = UserEventPayload;

function isPayload(v: unknown): v is Payload {
  return Array.isArray(v) && v.length === 4 && typeof v[0] === "string" &&
    v[0].length <= EVENT_NAME_LENGTH_MAX && typeof v[1] === "string" &&
    v[1].length <= EVENT_PAYLOAD_LENGTH_MAX && typeof v[2] === "string" &&
    typeof v[3] === "number";
}

/**
 * User events over a Plumtree server: register it in the server's handlers
 * on every node, then `send` from any node and `onEvent` on every node.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur";
 * import { Plumtree, UserEvents } from "@murmur/murmur/broadcast";
 * await using a = await Node.start({ name: "a", cookie: "c" });
 * const events = new UserEvents(a.name);
 * await using pt = await Plumtree.start(a, { handlers: [events] });
 * const got = Promise.withResolvers<string>();
 * events.onEvent((e) => got.resolve(`${e.name}: ${e.payload}`));
 * await events.send("deploy", "v2.1");
 * console.log(await got.promise); // deploy: v2.1
 * ```
 */
export class UserEvents implements BroadcastHandler<UserEvent, string, UserEventPayload> {
  /** The handler's name on every node. */
  readonly name = "murmur.events";
  readonly #self: string;
  readonly #seen = new Map<string, Payload>();
  readonly #fns = new Set<(e: UserEvent) => void>();
  readonly #prefix = crypto.randomUUID().slice(0, 8);
  #server: BroadcastServer | undefined;
  #seq = 0;
  /** Events delivered here (sent here or received). */
  delivered = 0;

  /** `self`: this node's name (the origin of what it sends). */
  constructor(self: string) {
    this.#self = self;
  }

  /**
   * Broadcasts an event to every node (this one included).
   *
   * @throws {TypeError} (rejects) a name or payload over its limit, or a handler not started in a Plumtree server.
   */
  async send(name: string, payload = ""): Promise<string> {
    if (typeof name !== "string" || name.length === 0 || name.length > EVENT_NAME_LENGTH_MAX) {
      throw new TypeError(`an event name is a string of 1-${EVENT_NAME_LENGTH_MAX} characters`);
    }
    if (typeof payload !== "string" || payload.length > EVENT_PAYLOAD_LENGTH_MAX) {
      throw new TypeError(
        `an event payload is a string of at most ${EVENT_PAYLOAD_LENGTH_MAX} characters`,
      );
    }
    if (this.#server === undefined) {
      throw new TypeError("UserEvents is not started: pass it in a Plumtree server's handlers");
    }
    const e: UserEvent = {
      id: `${this.#self}/${this.#prefix}/${++this.#seq}`,
      name,
      payload,
      origin: this.#self,
      at: Date.now(),
    };
    await this.#server.broadcast(e, this.name);
    return e.id;
  }

  /** Calls `fn` for each event, once per node. Returns a function that removes it. */
  onEvent(fn: (e: UserEvent) => void): () => void {
    if (typeof fn !== "function") throw new TypeError("an event callback is a function");
    const entry = (e: UserEvent) => fn(e);
    this.#fns.add(entry);
    return () => void this.#fns.delete(entry);
  }

  /** @internal */
  start(server: BroadcastServer): void {
    this.#server = server;
  }

  /** @internal */
  stop(): void {
    this.#server = undefined;
  }

  /** @internal */
  broadcastData(e: UserEvent): { id: string; payload: Payload } {
    return { id: e.id, payload: [e.name, e.payload, e.origin, e.at] };
  }

  /** @internal */
  merge(id: string, p: Payload): boolean {
    if (typeof id !== "string" || !isPayload(p) || this.#seen.has(id)) return false;
    this.#seen.set(id, p);
    if (this.#seen.size > EVENTS_REMEMBERED_MAX) {
      this.#seen.delete(this.#seen.keys().next().value!);
    }
    this.delivered++;
    const e: UserEvent = { id, name: p[0], payload: p[1], origin: p[2], at: p[3] };
    for (const fn of [...this.#fns]) {
      try {
        fn(e);
      } catch { /* a callback's error is its own */ }
    }
    return true;
  }

  /** @internal */
  isStale(id: string): boolean {
    return this.#seen.has(id);
  }

  /** @internal */
  graft(id: string): GraftResult<Payload> {
    const p = this.#seen.get(id);
    return p === undefined ? { error: "unknown" } : { ok: p };
  }

  /** @internal */
  exchange(): "ignore" {
    return "ignore";
  }
}
