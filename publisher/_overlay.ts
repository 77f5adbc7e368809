// Data publishers over a partial view (HyParView): the pure core of one scope
// (`core.ts`) driven through the node's publisher hub (`_hub.ts`), which
// carries its pushes through the publishers' Plumtree overlay and its
// anti-entropy to neighbours. Module-private: `DataPublisher` picks this
// engine on a node that does not run the full mesh.

import { relayOf } from "../membership/relay.ts";
import type { Clock } from "../base/clock.ts";
import { mathRandom } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { Node } from "../membership/node.ts";
import { PublisherCore } from "./core.ts";
import type { PublisherEngine, PublisherStats } from "./_engine.ts";
import { hubOf, type HubScope, nextEpoch } from "./_hub.ts";
import type { Listener, PublisherModule, Version } from "./module.ts";

/** Settings of an overlay engine. */
export interface OverlaySettings {
  graceMs: number;
  clock: Clock;
  log: Logger;
  syncIntervalMs: number;
  moduleOptions: Record<string, unknown>;
}

/** How long a closing publisher waits for its neighbours to acknowledge its goodbye. */
const BYE_TIMEOUT_MS = 2000;

/** One scope's publisher on a node with a partial view. */
export class OverlayPublisher<Local, Update, View, Sub, SubResult>
  implements PublisherEngine<Local, Update, View, Sub, SubResult> {
  readonly #core: PublisherCore<Local, Update, View, Sub, SubResult>;
  readonly #hub: HubScope;
  readonly #clock: Clock;
  #closed = false;

  private constructor(
    core: PublisherCore<Local, Update, View, Sub, SubResult>,
    hub: HubScope,
    clock: Clock,
  ) {
    this.#core = core;
    this.#hub = hub;
    this.#clock = clock;
  }

  static async start<Local, Update, View, Sub, SubResult>(
    node: Node,
    scope: string,
    module: PublisherModule<Local, Update, View, Sub, SubResult>,
    o: OverlaySettings,
  ): Promise<OverlayPublisher<Local, Update, View, Sub, SubResult>> {
    const core = new PublisherCore(scope, module, {
      name: node.name,
      epoch: nextEpoch(node, scope, o.clock),
      random: mathRandom,
      downGraceMs: o.graceMs,
      moduleOptions: o.moduleOptions,
      logger: o.log,
      frameBytesMax: relayOf(node).frameBytesMax,
    });
    const hub = await hubOf(node, o.clock, o.log);
    return new OverlayPublisher(core, hub.add(core, o.clock, o.log, o.syncIntervalMs), o.clock);
  }

  get view(): View {
    return this.#core.view;
  }

  get localData(): Local {
    return this.#core.localData;
  }

  peers(): { node: string; version: Version }[] {
    return this.#core.shown().map((o) => ({ node: o.node, version: o.version }));
  }

  stats(): PublisherStats {
    const s = this.#core.stats;
    return {
      localUpdates: s.localUpdates,
      remoteUpdates: s.remoteUpdates,
      fullSyncs: s.fullSyncs,
      dropped: s.dropped,
      resyncs: s.exchanges,
      deaths: s.deaths,
      refutations: s.refutations,
    };
  }

  update(update: Update): void {
    this.#hub.run(this.#core.update(update, this.#clock.now()));
  }

  subscribe(sub: Sub, listener: Listener): { ref: number; result: SubResult } {
    return this.#core.subscribe(sub, listener);
  }

  unsubscribe(ref: number): boolean {
    return this.#core.unsubscribe(ref);
  }

  message(msg: unknown): void {
    this.#hub.run(this.#core.message(msg, this.#clock.now()));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#hub.close(BYE_TIMEOUT_MS);
    this.#core.stop();
  }
}
