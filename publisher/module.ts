/**
 * What a data publisher's module is (OTP's `data_publisher` behaviour): the
 * callbacks that build a node's local data and the global view, the
 * subscriptions they notify, and the version translation of rolling upgrades.
 *
 * @module
 */

import { encodeValue } from "../base/codec.ts";

/** A subscriber's callback. */
export type Listener = (event: unknown) => void;

/**
 * The subscriptions of a scope, given to `updateGlobalViewAndNotify` so that a
 * module can notify the subscribers an update concerns.
 */
export class Subscriptions<Sub> {
  readonly #bySub = new Map<string, { sub: Sub; listeners: Map<number, Listener> }>();

  /** @internal */
  static key(sub: unknown): string {
    return typeof sub === "string" ? "s" + sub : "c" + Array.from(encodeValue(sub)).join(",");
  }

  /** @internal */
  _add(sub: Sub, ref: number, listener: Listener): void {
    const k = Subscriptions.key(sub);
    let e = this.#bySub.get(k);
    if (e === undefined) this.#bySub.set(k, e = { sub, listeners: new Map() });
    e.listeners.set(ref, listener);
  }

  /** @internal */
  _remove(sub: Sub, ref: number): boolean {
    const k = Subscriptions.key(sub);
    const e = this.#bySub.get(k);
    if (e === undefined || !e.listeners.delete(ref)) return false;
    if (e.listeners.size === 0) this.#bySub.delete(k);
    return true;
  }

  /** Whether anybody subscribed to `sub`. */
  has(sub: Sub): boolean {
    return this.#bySub.has(Subscriptions.key(sub));
  }

  /** Sends `event` to every listener of `sub`; a listener that throws is skipped. */
  notify(sub: Sub, event: unknown): void {
    const e = this.#bySub.get(Subscriptions.key(sub));
    if (e === undefined) return;
    for (const l of [...e.listeners.values()]) {
      try {
        l(event);
      } catch { /* a subscriber's failure is its own */ }
    }
  }

  /** Every subscription with its number of listeners. */
  entries(): [Sub, number][] {
    return [...this.#bySub.values()].map((e) => [e.sub, e.listeners.size]);
  }

  /** Number of listeners, all subscriptions together. */
  get size(): number {
    let n = 0;
    for (const e of this.#bySub.values()) n += e.listeners.size;
    return n;
  }
}

/**
 * A module's version: any value compared with `===` (a number or a string,
 * such as `2` or `"2.1"`; booleans work too).
 */
export type Version = number | string | boolean;

/**
 * What `translateMessage` may return: the five forms of the seed's
 * `translate_message/2`.
 */
export type TranslatedMessage<Update, View, Local> =
  /** A local update (as if `update()` were called here): `{update, Update, View}`. */
  | { type: "update"; update: Update; view: View }
  /** Nothing to do: `{drop, View}`. */
  | { type: "drop"; view: View }
  /** An update from a peer of an old protocol: `{update, Pid, Update, View}`. */
  | { type: "peerUpdate"; node: string; update: Update; view: View }
  /** Full local data from a peer of an old protocol: `{local_data, Pid, Version, LocalData, View}`. */
  | { type: "localData"; node: string; version: Version; data: Local; view: View }
  /**
   * A discover from a peer of an old protocol: `{discover, Pid, Version, View}`.
   * The publisher answers as to a discover: it takes `node` as a peer of
   * `version` and sends it this node's local data, translated.
   */
  | { type: "discover"; node: string; version: Version; view: View };

/** A plain message for a peer of an old protocol, instead of translated data. */
export interface PlainMessages {
  /** The messages to send as they are; the peer's `translateMessage` reads them. */
  plainMessages: unknown[];
}

/**
 * The callbacks of a publisher module (OTP's `data_publisher` behaviour).
 *
 * @example A counter per node; the view is their sum
 * ```ts
 * import type { PublisherModule } from "@murmur/murmur/publisher";
 * const Sum: PublisherModule<number, number, Map<string, number>, "total", number> = {
 *   version: () => 1,
 *   initLocalData: () => 0,
 *   initGlobalView: () => new Map(),
 *   dataDiff: (oldN, newN) => newN - oldN,
 *   updateLocalData: (delta, n) => n + delta,
 *   updateGlobalViewAndNotify: (node, delta, subs, view) => {
 *     view.set(node, (view.get(node) ?? 0) + delta);
 *     subs.notify("total", [...view.values()].reduce((a, b) => a + b, 0));
 *     return view;
 *   },
 *   newSubscription: (_sub, view) => [...view.values()].reduce((a, b) => a + b, 0),
 *   stopGlobalView: () => {},
 *   translateLocalData: (_mine, _peer, n) => n,
 *   translateUpdate: (_mine, _peer, delta) => delta,
 * };
 * console.log(Sum.dataDiff(1, 5)); // 4
 * ```
 */
export interface PublisherModule<Local, Update, View, Sub, SubResult> {
  /** This module's version (any value compared with `===`: a number or a string); peers of other versions translate. */
  version(): Version;
  /** The local data of a node that published nothing. */
  initLocalData(options: Record<string, unknown>): Local;
  /** The global view of an empty scope. */
  initGlobalView(scope: string, options: Record<string, unknown>): View;
  /** The update that turns `oldData` into `newData` (old data may come from older versions). */
  dataDiff(oldData: Local, newData: Local): Update;
  /**
   * Applies an update to local data (updates of older versions too). It may
   * change `data` in place and return it: the publisher owns it.
   */
  updateLocalData(update: Update, data: Local): Local;
  /**
   * Declares that `updateLocalData` and `updateGlobalViewAndNotify` check an
   * update before they change anything, and that an update one of them
   * accepts the other accepts too. Then `update()` takes no snapshot of the
   * local data (default false: a snapshot is taken, so that a callback that
   * throws halfway changes nothing).
   */
  readonly atomicUpdates?: boolean;
  /** Applies `node`'s update to the view and notifies the subscribers it concerns. */
  updateGlobalViewAndNotify(
    node: string,
    update: Update,
    subscriptions: Subscriptions<Sub>,
    view: View,
  ): View;
  /** The initial result for a new subscriber. */
  newSubscription(sub: Sub, view: View): SubResult;
  /** Releases the view when the publisher stops. */
  stopGlobalView(view: View): void;
  /** Local data for a peer of version `peerVersion` (or plain messages for an old protocol). */
  translateLocalData(myVersion: Version, peerVersion: Version, data: Local): Local | PlainMessages;
  /** An update for a peer of version `peerVersion` (or plain messages for an old protocol). */
  translateUpdate(myVersion: Version, peerVersion: Version, update: Update): Update | PlainMessages;
  /**
   * Reads a plain message: from a peer of an old protocol (`from` is its node
   * name), or a local event (`message()`; `from` is undefined).
   */
  translateMessage?(
    msg: unknown,
    view: View,
    from?: string,
  ): TranslatedMessage<Update, View, Local>;
}

/** True for a version value (compared with `===`). */
export function isVersion(v: unknown): v is Version {
  return (typeof v === "number" && !Number.isNaN(v)) || typeof v === "string" ||
    typeof v === "boolean";
}
