/**
 * Data publishers (OTP's `data_publisher`, the generalization of `pg`): on
 * every node of a scope, a global view built from what each node published.
 * Each node is the single writer of its own local data, so the view converges
 * without conflicts.
 *
 * Two engines carry the same semantics (`updateGlobalViewAndNotify`,
 * subscriptions, versions and the translations of rolling upgrades):
 *
 * - **Full mesh** (OTP's protocol): DISCOVER, full local data, then diffs to
 *   every peer; a sequence per publisher, and a tick that reveals a lost
 *   update and asks for the full data again; a peer that goes down leaves the
 *   view after `downGraceMs`.
 * - **Partial view** (HyParView): updates travel through a Plumtree overlay of
 *   the publishers' own (one tree per origin, translated for every version in
 *   the cluster), anti-entropy with one neighbour per `syncIntervalMs`
 *   repairs what a push missed (digests, then the full data of what differs),
 *   and a node's neighbours broadcast its death, which a live node refutes.
 *   Every node ends up with every node's data without a connection to it. See
 *   {@linkcode PublisherCore} for the rules and their timing.
 *
 * @module
 */

import { relayOf } from "../membership/relay.ts";
import { type Clock, systemClock } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { Node } from "../membership/node.ts";
import type { Listener, PublisherModule, Version } from "./module.ts";
import type { PublisherEngine, PublisherStats } from "./_engine.ts";
import { MeshPublisher } from "./_mesh.ts";
import { OverlayPublisher } from "./_overlay.ts";
import { checkModule, ScopeState } from "./_scope.ts";
import { DEFAULT_SYNC_INTERVAL_MS } from "./defaults.ts";

export type { PublisherStats } from "./_engine.ts";

/** Options of {@linkcode DataPublisher.start}. */
export interface DataPublisherOptions {
  /**
   * One node, no network.
   *
   * @default false
   */
  standalone?: boolean;
  /**
   * Wait this long before removing a down peer's contribution; if the node
   * comes back within it, only the difference is applied. Under a partial
   * view, a death notice can be false (a neighbour's link failed, the node is
   * alive): the node refutes it at once, and within the grace nothing leaves
   * the view; with 0 its data leaves and comes back.
   *
   * @default 0
   */
  downGraceMs?: number;
  /** Options passed to `initLocalData` and `initGlobalView`. */
  moduleOptions?: Record<string, unknown>;
  /** Timers (default the system clock). */
  clock?: Clock;
  /**
   * Period of the sequence tick that reveals lost updates (full mesh: to
   * every peer for three periods after a local update, then to one peer per
   * period, round-robin), of the anti-entropy round with one neighbour
   * (partial view).
   *
   * @default 2000
   */
  syncIntervalMs?: number;
  /** Receives log records (default: the node's logger). */
  logger?: Logger;
}

/**
 * A data publisher of one scope on one node.
 *
 * @example
 * ```ts
 * import { DataPublisher, type PublisherModule } from "@murmur/murmur/publisher";
 * import { Node } from "@murmur/murmur/membership";
 * const Sum: PublisherModule<number, number, Map<string, number>, "total", number> = {
 *   version: () => 1,
 *   initLocalData: () => 0,
 *   initGlobalView: () => new Map(),
 *   dataDiff: (o, n) => n - o,
 *   updateLocalData: (d, n) => n + d,
 *   updateGlobalViewAndNotify: (node, d, subs, view) => {
 *     view.set(node, (view.get(node) ?? 0) + d);
 *     subs.notify("total", [...view.values()].reduce((a, b) => a + b, 0));
 *     return view;
 *   },
 *   newSubscription: (_s, view) => [...view.values()].reduce((a, b) => a + b, 0),
 *   stopGlobalView: () => {},
 *   translateLocalData: (_m, _p, n) => n,
 *   translateUpdate: (_m, _p, d) => d,
 * };
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using pub = await DataPublisher.start(node, "sums", Sum);
 * const { result } = pub.subscribe("total", (t) => console.log("total", t));
 * await pub.update(5);
 * console.log(result, pub.view.get("a")); // 0 5
 * ```
 */
export class DataPublisher<Local, Update, View, Sub, SubResult> implements AsyncDisposable {
  readonly #engine: PublisherEngine<Local, Update, View, Sub, SubResult>;
  readonly #scope: string;
  #closed = false;

  private constructor(scope: string, engine: PublisherEngine<Local, Update, View, Sub, SubResult>) {
    this.#scope = scope;
    this.#engine = engine;
  }

  /**
   * Starts the publisher of `scope` on `node` and, unless standalone,
   * discovers the scope's peers (full mesh) or joins the publishers' overlay
   * (partial view).
   *
   * @throws {TypeError} (rejects) an empty scope, a module without one of its
   *   callbacks, a scope that already runs on this node.
   * @throws {RangeError} (rejects) a negative `downGraceMs`, a `syncIntervalMs` not above 0.
   */
  static async start<Local, Update, View, Sub, SubResult>(
    node: Node,
    scope: string,
    module: PublisherModule<Local, Update, View, Sub, SubResult>,
    options: DataPublisherOptions = {},
  ): Promise<DataPublisher<Local, Update, View, Sub, SubResult>> {
    if (typeof scope !== "string" || scope.length === 0 || scope.length > 200) {
      throw new TypeError("scope must be a non-empty string of at most 200 characters");
    }
    checkModule(module);
    const graceMs = options.downGraceMs ?? 0;
    if (!(graceMs >= 0)) throw new RangeError(`downGraceMs must be >= 0, got ${graceMs}`);
    const syncIntervalMs = options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS;
    if (!(syncIntervalMs > 0)) {
      throw new RangeError(`syncIntervalMs must be > 0, got ${syncIntervalMs}`);
    }
    const clock: Clock = options.clock ?? systemClock;
    const log: Logger = options.logger ?? node.logger;
    const moduleOptions = options.moduleOptions ?? {};
    const standalone = options.standalone ?? false;
    let engine: PublisherEngine<Local, Update, View, Sub, SubResult>;
    if (node.strategy === "full-mesh" || standalone) {
      const state = new ScopeState(scope, module, moduleOptions);
      if (!standalone) state.limitTo(relayOf(node).frameBytesMax);
      engine = new MeshPublisher(node, state, { standalone, graceMs, clock, log, syncIntervalMs });
    } else {
      engine = await OverlayPublisher.start(node, scope, module, {
        graceMs,
        clock,
        log,
        syncIntervalMs,
        moduleOptions,
      });
    }
    return new DataPublisher(scope, engine);
  }

  /** The scope. */
  get scope(): string {
    return this.#scope;
  }

  /** The global view (the module's structure; read it, do not change it). */
  get view(): View {
    return this.#engine.view;
  }

  /** This node's local data. */
  get localData(): Local {
    return this.#engine.localData;
  }

  /**
   * The peers this publisher holds data of: node name and module version
   * (full mesh: those it exchanges with; partial view: every origin shown).
   */
  peers(): { node: string; version: Version }[] {
    return this.#engine.peers();
  }

  /** Counters of this publisher (see {@linkcode PublisherStats}). */
  stats(): PublisherStats {
    return this.#engine.stats();
  }

  /**
   * Applies a local update: this node's data, the view here, and every peer
   * (translated). All or nothing: an update that cannot cross the wire is
   * refused with a `TypeError` naming its path before anything changes, and a
   * module callback that throws leaves the local data and the view as they were
   * (the promise rejects with its error; no peer hears of the update).
   */
  update(update: Update): Promise<void> {
    if (this.#closed) return Promise.reject(new TypeError(`publisher "${this.#scope}" is closed`));
    try {
      this.#engine.update(update);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Subscribes `listener` to `sub` (the module decides what a subscription
   * means). Returns a reference for `unsubscribe` and the module's initial result.
   */
  subscribe(sub: Sub, listener: Listener): { ref: number; result: SubResult } {
    return this.#engine.subscribe(sub, listener);
  }

  /** Removes a subscription. Returns whether it existed. */
  unsubscribe(ref: number): boolean {
    return this.#engine.unsubscribe(ref);
  }

  /**
   * Hands a message to the module's `translateMessage` (a local event, such as
   * a member going away). A callback's error is thrown, with nothing changed.
   */
  message(msg: unknown): void {
    if (this.#closed) throw new TypeError(`publisher "${this.#scope}" is closed`);
    this.#engine.message(msg);
  }

  /** Stops: peers drop this node's contribution; subscriptions end; the view is released. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return this.#engine.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
