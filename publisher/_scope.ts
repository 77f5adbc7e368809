// What a publisher of one scope holds on one node whatever carries its
// messages: the module, this node's local data, the global view and the
// subscriptions; local updates all or nothing, the view rebuilt after a
// callback threw halfway. The full-mesh engine and the overlay core both keep
// one. Module-private.

import type { Logger } from "../base/logger.ts";
import { encodeValue } from "../base/codec.ts";
import { FrameTooLargeError } from "../membership/errors.ts";

/** Bytes kept free in a frame for what wraps a publisher's data (its message, ids, versions). */
export const ENVELOPE_BYTES = 1024;
import {
  isVersion,
  type Listener,
  type PublisherModule,
  Subscriptions,
  type Version,
} from "./module.ts";

/** The callbacks every module must have. */
const CALLBACKS = [
  "version",
  "initLocalData",
  "initGlobalView",
  "dataDiff",
  "updateLocalData",
  "updateGlobalViewAndNotify",
  "newSubscription",
  "stopGlobalView",
  "translateLocalData",
  "translateUpdate",
] as const;

/** Throws a `TypeError` naming the first callback `module` lacks. */
export function checkModule(module: unknown): void {
  for (const f of CALLBACKS) {
    if (typeof (module as Record<string, unknown>)?.[f] !== "function") {
      throw new TypeError(`module.${f} must be a function`);
    }
  }
}

/** The module, the local data, the view and the subscriptions of one scope. */
export class ScopeState<Local, Update, View, Sub, SubResult> {
  readonly version: Version;
  /**
   * The largest encoded update or local data (the node's frame limit less
   * `ENVELOPE_BYTES`): past it, an update is refused with nothing changed.
   */
  bytesMax = Infinity;
  /** The node's frame limit the bound comes from (named in the error). */
  frameBytesMax = Infinity;
  /** The local data's size, as last measured plus the updates since (NaN: not measured yet). */
  #localBytes = NaN;
  view: View;
  local: Local;
  readonly subs = new Subscriptions<Sub>();
  readonly #subRefs = new Map<number, Sub>();
  #nextRef = 1;

  constructor(
    readonly scope: string,
    readonly module: PublisherModule<Local, Update, View, Sub, SubResult>,
    readonly options: Record<string, unknown>,
  ) {
    this.version = module.version();
    if (!isVersion(this.version)) {
      throw new TypeError(
        `module.version() must return a number, a string or a boolean, got ${typeof this.version}`,
      );
    }
    this.view = module.initGlobalView(scope, options);
    this.local = module.initLocalData(options);
  }

  /** The local data of a node that published nothing. */
  empty(): Local {
    return this.module.initLocalData(this.options);
  }

  subscribe(sub: Sub, listener: Listener): { ref: number; result: SubResult } {
    if (typeof listener !== "function") throw new TypeError("listener must be a function");
    const ref = this.#nextRef++;
    const result = this.module.newSubscription(sub, this.view);
    this.subs._add(sub, ref, listener);
    this.#subRefs.set(ref, sub);
    return { ref, result };
  }

  unsubscribe(ref: number): boolean {
    const sub = this.#subRefs.get(ref);
    if (sub === undefined) return false;
    this.#subRefs.delete(ref);
    return this.subs._remove(sub, ref);
  }

  /** `node`'s update into the view (its subscribers notified). */
  notify(node: string, update: Update): void {
    this.view = this.module.updateGlobalViewAndNotify(node, update, this.subs, this.view);
  }

  /** Takes `node`'s data from `from` to `to` in the view; returns `to`. */
  replace(node: string, from: Local, to: Local): Local {
    this.notify(node, this.module.dataDiff(from, to));
    return to;
  }

  /**
   * This node's update, all or nothing: local data (from a snapshot on
   * failure, unless the module declares `atomicUpdates`), then the view
   * (restored from a snapshot, or rebuilt from `contributions`, on failure).
   * Throws the callback's error with nothing changed.
   */
  applyLocal(
    self: string,
    update: Update,
    contributions: () => Iterable<[string, Local]>,
    updateBytes = 0,
  ): void {
    const m = this.module;
    const snapshot = m.atomicUpdates === true ? undefined : structuredClone(this.local);
    let viewSnapshot: { view: View } | undefined;
    if (m.atomicUpdates !== true) {
      try {
        viewSnapshot = { view: structuredClone(this.view) };
      } catch { /* not cloneable: rebuilt on failure */ }
    }
    const oldLocal = this.local;
    let local: Local, localBytes: number;
    try {
      local = m.updateLocalData(update, this.local);
      // The local data travels whole to a node that (re)discovers this one: it must fit. Its
      // size is estimated (last measured, plus the updates since) and measured only when the
      // estimate is past the bound, so that an update does not encode all of the data.
      localBytes = this.#localBytes + updateBytes;
      if (!(localBytes <= this.bytesMax)) localBytes = this.checkSize(local, "local data");
    } catch (e) {
      if (snapshot !== undefined) this.local = snapshot;
      throw e;
    }
    try {
      this.view = m.updateGlobalViewAndNotify(self, update, this.subs, this.view);
    } catch (e) {
      this.local = snapshot ?? oldLocal;
      if (viewSnapshot !== undefined) this.view = viewSnapshot.view;
      else this.rebuild(self, contributions(), undefined);
      throw e;
    }
    this.local = local;
    this.#localBytes = localBytes;
  }

  /**
   * The encoded size of `value` (0 without a bound); throws a
   * `FrameTooLargeError` naming the limit when it is past `bytesMax`.
   */
  checkSize(value: unknown, what: string): number {
    if (this.bytesMax === Infinity) return 0;
    const bytes = encodeValue(value).length;
    if (bytes <= this.bytesMax) return bytes;
    throw new FrameTooLargeError(
      bytes,
      this.bytesMax,
      `publisher "${this.scope}": the ${what} encodes to ${bytes} bytes, over the ${this.bytesMax} ` +
        `a message can carry (the node's frameBytesMax, ${this.frameBytesMax}, less ` +
        `${ENVELOPE_BYTES} for its envelope); nothing changed`,
    );
  }

  /** Sets the size bound from a node's `frameBytesMax`. */
  limitTo(frameBytesMax: number): void {
    this.frameBytesMax = frameBytesMax;
    this.bytesMax = frameBytesMax - ENVELOPE_BYTES;
  }

  /**
   * Rebuilds the view from every node's data (this node's and `others`),
   * with subscribers not notified: after a module callback threw halfway
   * through a view update.
   */
  rebuild(self: string, others: Iterable<[string, Local]>, log: Logger | undefined): void {
    const m = this.module;
    const muted = new Subscriptions<Sub>();
    try {
      m.stopGlobalView(this.view);
    } catch { /* the view is being replaced anyway */ }
    let view = m.initGlobalView(this.scope, this.options);
    const add = (node: string, data: Local) => {
      view = m.updateGlobalViewAndNotify(node, m.dataDiff(this.empty(), data), muted, view);
    };
    try {
      add(self, this.local);
      for (const [node, data] of others) add(node, data);
    } catch (e) {
      log?.({
        level: "error",
        node: self,
        msg: `publisher "${this.scope}": the view could not be rebuilt`,
        error: e,
      });
    }
    this.view = view;
  }

  /** Ends the subscriptions and releases the view. */
  stop(): void {
    this.#subRefs.clear();
    this.module.stopGlobalView(this.view);
  }
}
