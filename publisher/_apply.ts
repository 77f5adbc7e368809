// How an overlay publisher core applies what it learns of an origin: the
// entry brought to a newer epoch or life, an update in sequence, full data in
// place of what was shown, early updates drained, a removal, and a plain
// message of an older protocol handed to `translateMessage`. Module-private.

import type { Logger } from "../base/logger.ts";
import type { PublisherCoreStats } from "./_core_types.ts";
import type { Origin, OriginTable } from "./_origins.ts";
import type { ScopeState } from "./_scope.ts";
import type { VersionBook } from "./_versions.ts";
import type { Version } from "./module.ts";
import type { Body } from "./overlay_wire.ts";

/** Applies origins' data to the table and the view of one core. */
export class Apply<Local, Update, View, Sub, SubResult> {
  constructor(
    readonly s: ScopeState<Local, Update, View, Sub, SubResult>,
    readonly t: OriginTable<Local>,
    readonly v: VersionBook<Local, Update>,
    readonly stats: PublisherCoreStats,
    readonly name: string,
    readonly log: Logger | undefined,
    /** This node's own update (a translated message may ask for one). */
    readonly local: (update: Update, now: number) => void,
  ) {}

  /**
   * The entry of `origin`, brought to `epoch` and `life` by a message that
   * carries its data; undefined when the message is older than what is known.
   */
  live(
    origin: string,
    epoch: number,
    life: number,
    version: Version,
    now: number,
  ): Origin<Local> | undefined {
    const e = this.t.get(origin);
    if (
      e !== undefined &&
      (e.epoch > epoch || (e.epoch === epoch && e.status !== 0 && life <= e.life))
    ) {
      return undefined; // an older epoch, or dead at this life
    }
    this.v.saw(version, now);
    if (e === undefined) return this.t.add(origin, epoch, life, version, 0, this.s.empty(), now);
    if (e.epoch < epoch) {
      // A new epoch (a restart): its first data is diffed against what is shown.
      if (e.status === 1) this.t.setStatus(e, 0);
      e.fromOld = e.status === 0;
      if (e.status === 2) this.t.setStatus(e, 0);
      e.epoch = epoch;
      e.seq = 0;
      e.future = undefined;
    } else if (e.status !== 0) {
      // Refuted: alive again (removed data comes back with its next full data).
      if (e.status === 2) e.seq = 0;
      this.t.setStatus(e, 0);
    }
    e.life = Math.max(e.life, life);
    e.version = version;
    this.t.rehash(e);
    return e;
  }

  /** An update in sequence. */
  delta(e: Origin<Local>, seq: number, body: Body): void {
    const m = this.s.module;
    e.seq = seq;
    if (body[1] === 1) {
      for (const msg of body[2] as unknown[]) this.translate(msg, e, 0);
    } else if (e.fromOld) {
      // The first update of a new epoch: from empty data, shown as a change from the old epoch's.
      e.data = this.s.replace(e.name, e.data, m.updateLocalData(body[2] as Update, this.s.empty()));
      e.fromOld = false;
    } else {
      this.s.notify(e.name, body[2] as Update);
      e.data = m.updateLocalData(body[2] as Update, e.data);
    }
    this.stats.remoteUpdates++;
    this.t.rehash(e);
  }

  /** Full data at `seq`, shown in place of what was. */
  full(e: Origin<Local>, seq: number, plain: 0 | 1, value: unknown): void {
    e.seq = seq;
    if (plain === 1) {
      for (const msg of value as unknown[]) this.translate(msg, e, 0);
    } else {
      e.data = this.s.replace(e.name, e.data, value as Local);
    }
    e.fromOld = false;
    if (e.future !== undefined) {
      for (const s of e.future.keys()) if (s <= seq) e.future.delete(s);
    }
    this.stats.fullSyncs++;
    this.t.rehash(e);
    this.drain(e);
  }

  /** Applies the early updates that are now in sequence. */
  drain(e: Origin<Local>): void {
    for (let next = e.future?.get(e.seq + 1); next !== undefined; next = e.future?.get(e.seq + 1)) {
      e.future!.delete(e.seq + 1);
      const body = this.v.bodyFor(next[1]);
      if (body === undefined) break;
      this.delta(e, e.seq + 1, body);
    }
    if (e.future?.size === 0) e.future = undefined;
  }

  /** `e`'s data leaves the view; its entry stays as a tombstone. */
  remove(e: Origin<Local>, now: number): void {
    if (e.status !== 2) {
      try {
        this.s.replace(e.name, e.data, this.s.empty());
      } catch (err) {
        this.threw(e.name, err);
        this.s.rebuild(this.name, this.t.contributions(e.name), this.log);
      }
      this.stats.removed++;
    }
    e.removeAt = now;
    this.t.setStatus(e, 2);
    e.data = this.s.empty();
    e.seq = 0;
    e.fromOld = false;
    this.t.rehash(e);
  }

  /**
   * A message for the module's `translateMessage`: a plain message of an older
   * protocol about origin `from`, or a local one.
   */
  translate(msg: unknown, from: Origin<Local> | undefined, now: number): void {
    const t = this.s.module.translateMessage?.(msg, this.s.view, from?.name);
    if (t === undefined) return;
    this.s.view = t.view;
    if (t.type === "update") return this.local(t.update, now);
    if (t.type !== "peerUpdate" && t.type !== "localData") return; // drop; a discover needs no answer here
    if (from !== undefined && from.name !== t.node) return;
    const e = from ?? this.t.get(t.node);
    if (e === undefined || e.status === 2) return;
    if (t.type === "peerUpdate") {
      this.s.notify(e.name, t.update);
      e.data = this.s.module.updateLocalData(t.update, e.data);
    } else {
      e.data = this.s.replace(e.name, e.data, t.data);
      e.version = t.version;
    }
  }

  /** Logs a module callback that threw. */
  threw(peer: string, error: unknown): void {
    this.log?.({
      level: "error",
      node: this.name,
      peer,
      msg: `publisher "${this.s.scope}": callback threw`,
      error,
    });
  }
}
