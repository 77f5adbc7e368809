/**
 * The pure core of a data publisher over a partial view (HyParView): one
 * scope on one node, driven by its host with the time and what arrives, and
 * answering with what to broadcast and what to send. A node's publisher hub
 * and the simulator both drive it.
 *
 * Per origin it holds an epoch (one per publisher start), a life (raised by
 * a refutation), a sequence, a version, data, and a state: alive, down
 * (shown for `downGraceMs`) or removed (a tombstone for `tombstoneMs`).
 *
 * **Updates** travel as pushes through a Plumtree overlay, one tree per
 * origin; each carries the update for every module version the origin knows
 * (`translateUpdate`). An update applies in sequence; one that arrives early
 * waits (`futureMax` per origin) for the ones before it.
 *
 * **Anti-entropy** repairs what a lost push or a partition missed: every
 * `syncIntervalMs`, and at once with each new neighbour, a node sends one
 * neighbour a digest (two hashes of every live origin's epoch, life and
 * sequence). Equal digests end the exchange (idle cost: one small message per
 * node per period, whatever the cluster's size); otherwise the 64 bucket
 * hashes find the entries that differ, and each side sends the full data of
 * the origins the other lacks or holds older, translated for its version.
 *
 * **Departures.** Only an origin's neighbours see it fail. A neighbour whose
 * link to it fails (not one that moved to the passive view) broadcasts a
 * death notice for the origin's epoch and life; every node then removes the
 * origin's contribution after `downGraceMs` (at once when 0). A live origin
 * that hears a notice about itself refutes it: it takes the next life and
 * broadcasts its full data, which cancels the removal (or restores what was
 * removed); deaths and revivals also travel by anti-entropy. A publisher that
 * closes broadcasts a goodbye, removed everywhere at once.
 *
 * @example
 * ```ts
 * import { PublisherCore } from "@murmur/murmur/protocol";
 * import { presenceModule } from "@murmur/murmur/publisher";
 * import { seededRandom } from "@murmur/murmur/testing";
 * const core = new PublisherCore("lobby", presenceModule, {
 *   name: "a", epoch: 1, random: seededRandom(1),
 * });
 * const fx = core.update([["track", "room", "ada", null]], 0);
 * console.log(fx.broadcasts.length, core.view.get("room")?.get("ada")?.has("a")); // 1 true
 * ```
 *
 * @module
 */

import { checkSendable } from "../base/codec.ts";
import type { Random } from "../base/clock.ts";
import type { Logger } from "../base/logger.ts";
import type { Listener, PublisherModule, Version } from "./module.ts";
import { ScopeState } from "./_scope.ts";
import { behind, OriginTable, visibleHash } from "./_origins.ts";
import {
  type AntiEntropy,
  type Body,
  bucketOf,
  BYE_LIFE,
  type Entry,
  entryHash,
  type FullItem,
  isAntiEntropy,
  isPushId,
  isPushPayload,
  type PushId,
  type PushPayload,
} from "./overlay_wire.ts";
import {
  type Limits,
  newStats,
  noEffects,
  type ProbeAnswer,
  type PublisherCoreOptions,
  type PublisherCoreStats,
  type PublisherEffects,
  readLimits,
} from "./_core_types.ts";
import { RecentPushes } from "./_recent.ts";
import { VersionBook } from "./_versions.ts";
import { Apply } from "./_apply.ts";

export type {
  ProbeAnswer,
  PublisherCoreOptions,
  PublisherCoreStats,
  PublisherEffects,
} from "./_core_types.ts";

/** The shortest time between two rounds of digests after learning from a neighbour. */
const CASCADE_MS = 500;

/** One scope's publisher over a partial view, as a pure state machine (see the module doc). */
export class PublisherCore<Local, Update, View, Sub, SubResult> {
  readonly #s: ScopeState<Local, Update, View, Sub, SubResult>;
  readonly #name: string;
  #epoch: number;
  #life = 0;
  #seq = 0;
  readonly #o: Limits;
  readonly #random: Random;
  readonly #log: Logger | undefined;
  readonly #t: OriginTable<Local>;
  readonly #neighbours = new Set<string>();
  /** Versions seen (origins, neighbours): updates are translated for each. */
  readonly #v: VersionBook<Local, Update>;
  readonly #a: Apply<Local, Update, View, Sub, SubResult>;
  /** Pushes kept for grafts. */
  readonly #recent: RecentPushes;
  /** What the call in progress asks of the host. */
  #fx: PublisherEffects = noEffects();
  #lastCascade = -Infinity;
  #lastProbe = -Infinity;
  #selfHash: [number, number] = [0, 0];
  readonly #selfBucket: number;
  /** Origins still to probe this round, in a random order. */
  #probeOrder: string[] = [];
  #cascadeAt: number | undefined;
  /** Counters. */
  readonly stats: PublisherCoreStats = newStats();

  /** A core for `scope` with `module`. Throws on a bad option or module version. */
  constructor(
    readonly scope: string,
    module: PublisherModule<Local, Update, View, Sub, SubResult>,
    options: PublisherCoreOptions,
  ) {
    this.#o = readLimits(options);
    if (!Number.isFinite(options.epoch)) {
      throw new RangeError(`epoch must be a finite number, got ${options.epoch}`);
    }
    this.#s = new ScopeState(scope, module, options.moduleOptions ?? {});
    if (options.frameBytesMax !== undefined) this.#s.limitTo(options.frameBytesMax);
    this.#name = options.name;
    this.#selfBucket = bucketOf(options.name);
    this.#epoch = options.epoch;
    this.#random = options.random;
    this.#log = options.logger;
    this.#t = new OriginTable(this.#o.originsMax);
    this.#recent = new RecentPushes(this.#o.recentMax);
    this.#v = new VersionBook(this.#s, this.#o.versionsMax);
    this.#a = new Apply(
      this.#s,
      this.#t,
      this.#v,
      this.stats,
      this.#name,
      this.#log,
      (u, now) => this.#local(u, now),
    );
  }

  /** This node's module version. */
  get version(): Version {
    return this.#s.version;
  }
  /** The global view (the module's structure; read it, do not change it). */
  get view(): View {
    return this.#s.view;
  }
  /** This node's local data. */
  get localData(): Local {
    return this.#s.local;
  }
  /** This node's epoch, life and sequence. */
  get self(): { epoch: number; life: number; seq: number } {
    return { epoch: this.#epoch, life: this.#life, seq: this.#seq };
  }
  /**
   * A hash of what the view shows: every origin shown with its epoch and
   * sequence (this node too, once it published). Nodes that show the same
   * thing have the same hash; the simulator compares it with the truth.
   */
  get viewHash(): number {
    const mine = this.#seq > 0 ? visibleHash(this.#name, this.#epoch, this.#seq) : 0;
    return (this.#t.visible ^ mine) >>> 0;
  }
  /** This node's own share of `viewHash` (XOR every live node's for the truth). */
  get selfViewHash(): number {
    return this.#seq > 0 ? visibleHash(this.#name, this.#epoch, this.#seq) : 0;
  }

  /** The origins shown in the view (alive, or down within their grace). */
  shown(): { node: string; version: Version; epoch: number; seq: number }[] {
    const out = [];
    for (const e of this.#t.values()) {
      if (e.status !== 2) {
        out.push({ node: e.name, version: e.version, epoch: e.epoch, seq: e.seq });
      }
    }
    return out.sort((a, b) => (a.node < b.node ? -1 : 1));
  }
  /** The earliest time a down origin is due for removal (call `timers` then). */
  nextDeadline(): number | undefined {
    const at = this.#t.nextDeadline();
    if (this.#cascadeAt === undefined) return at;
    return at === undefined ? this.#cascadeAt : Math.min(at, this.#cascadeAt);
  }

  /** Subscribes `listener` to `sub` (the module says what it means). */
  subscribe(sub: Sub, listener: Listener): { ref: number; result: SubResult } {
    return this.#s.subscribe(sub, listener);
  }
  /** Removes a subscription; false when there was none. */
  unsubscribe(ref: number): boolean {
    return this.#s.unsubscribe(ref);
  }

  /**
   * This node's update: applied here all or nothing (a callback's error, or an
   * update or translation that cannot cross the wire, is thrown with nothing
   * changed), then broadcast with one body per module version known.
   */
  update(update: Update, now: number): PublisherEffects {
    return this.#guarded(() => this.#local(update, now));
  }

  /** A local message for the module's `translateMessage` (its error is thrown). */
  message(msg: unknown, now: number): PublisherEffects {
    return this.#guarded(() => this.#a.translate(msg, undefined, now));
  }

  /** A neighbour came up: exchange with it at once. */
  neighbourUp(peer: string, _now: number): PublisherEffects {
    this.#neighbours.add(peer);
    this.#digestTo(peer);
    return this.#take();
  }

  /**
   * A neighbour went away. `failed`: its link failed (it did not move to the
   * passive view, it did not leave): a death notice goes out for it.
   */
  neighbourDown(peer: string, failed: boolean, now: number): PublisherEffects {
    this.#neighbours.delete(peer);
    const e = this.#t.get(peer);
    if (failed && e !== undefined && e.status === 0) {
      this.#learnDeath(peer, e.epoch, e.life, now, "detected");
    }
    return this.#take();
  }

  /** Periodic work: anti-entropy with one random neighbour; old tombstones and versions go. */
  tick(now: number): PublisherEffects {
    this.#t.expire(now, this.#o.tombstoneMs);
    this.#v.expire(now, this.#o.tombstoneMs);
    const peers = [...this.#neighbours];
    const peer = peers[Math.floor(this.#random.next() * peers.length)];
    if (peer !== undefined) this.#digestTo(peer);
    if (now - this.#lastProbe >= this.#o.probeIntervalMs) {
      this.#lastProbe = now;
      this.#probeNext();
    }
    return this.#take();
  }

  /** The next shown origin that is not a neighbour, in a random round robin. */
  #probeNext(): void {
    for (let round = 0; round < 2; round++) {
      while (this.#probeOrder.length > 0) {
        const e = this.#t.get(this.#probeOrder.pop()!);
        if (e === undefined || e.status !== 0 || this.#neighbours.has(e.name)) continue;
        this.#fx.probes.push({ origin: e.name, epoch: e.epoch, life: e.life });
        return;
      }
      const order: string[] = [];
      for (const e of this.#t.values()) if (e.status === 0) order.push(e.name);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(this.#random.next() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      this.#probeOrder = order;
    }
  }

  /**
   * What a probe of `origin` (at `epoch` and `life`) found: no answer is a
   * death (as a neighbour's detection), a node that runs no such scope said
   * goodbye, a newer epoch ends the old one.
   */
  probed(
    origin: string,
    epoch: number,
    life: number,
    answer: ProbeAnswer,
    now: number,
  ): PublisherEffects {
    const e = this.#t.get(origin);
    if (e === undefined || e.status !== 0 || e.epoch !== epoch || answer === "unknown") {
      return this.#take();
    }
    if (answer === "unreachable") {
      this.#learnDeath(origin, epoch, Math.max(life, e.life), now, "detected");
    } else if (answer === null) this.#learnDeath(origin, epoch, BYE_LIFE, now, "detected");
    else if (answer.epoch > epoch) this.#learnDeath(origin, epoch, e.life, now, "detected");
    return this.#take();
  }

  /** Removes the down origins whose grace ended. */
  timers(now: number): PublisherEffects {
    if (this.#cascadeAt !== undefined && this.#cascadeAt <= now) this.#cascade(now, true);
    for (const e of this.#t.due(now)) this.#a.remove(e, now);
    return this.#take();
  }

  /**
   * A goodbye (a publisher that closes, a node that leaves): removed
   * everywhere at once. Broadcast, and sent to each neighbour (the host sends
   * those acknowledged, so that a node leaving knows they went out).
   */
  bye(): PublisherEffects {
    this.#push("b", 0, []);
    for (const to of this.#neighbours) {
      this.#fx.sends.push({ to, msg: ["b", this.scope, this.#s.version, this.#epoch] });
    }
    return this.#take();
  }

  /**
   * Takes a new epoch (a node that left joins again): what others hold of the
   * old one is dead; this node's data reaches them again by anti-entropy.
   */
  renew(epoch: number): void {
    if (!(epoch > this.#epoch)) throw new RangeError(`a new epoch must be above ${this.#epoch}`);
    this.#epoch = epoch;
    this.#life = 0;
    this.#rehashSelf();
  }

  /** Stops: ends the subscriptions and releases the view. */
  stop(): void {
    this.#s.stop();
  }

  #local(update: Update, _now: number): void {
    checkSendable(update, "update", `cannot update publisher "${this.scope}"`);
    const bodies = this.#v.bodies("update", update);
    const bytes = this.#s.checkSize(bodies, "update");
    this.#s.applyLocal(this.#name, update, () => this.#t.contributions(), bytes);
    this.#seq++;
    this.#rehashSelf();
    this.stats.localUpdates++;
    this.#push("u", this.#seq, [this.#s.version, this.#life, bodies]);
  }

  /** True when this node holds push `id` or something newer (an IHAVE of it needs no graft). */
  isStale(id: unknown): boolean {
    if (!isPushId(id)) return true;
    const [, kind, origin, epoch, n] = id;
    if (origin === this.#name) return true;
    const e = this.#t.get(origin);
    if (e === undefined) return false;
    if (e.epoch !== epoch) return e.epoch > epoch;
    if (kind === "u") return e.status !== 0 || e.seq >= n || (e.future?.has(n) ?? false);
    if (kind === "x") return e.life > n || (e.life === n && e.status !== 0);
    if (kind === "b") return e.status !== 0 && e.life === BYE_LIFE;
    return e.life >= n;
  }

  /** The payload of push `id`, for a neighbour that grafts. */
  graft(id: unknown): { ok: PushPayload } | "stale" | { error: unknown } {
    if (!isPushId(id)) return { error: "not a publisher push" };
    const p = this.#recent.get(id);
    if (p !== undefined) return { ok: p };
    return this.isStale(id) ? "stale" : { error: "not held" };
  }

  /**
   * A push arrived (Plumtree's merge): applied; `isNew` when it was new here
   * (it is then kept for grafts and goes on along the tree), with what it
   * caused (a refutation, a death passed on).
   */
  receivePush(
    id: unknown,
    payload: unknown,
    now: number,
  ): { isNew: boolean; effects: PublisherEffects } {
    if (!isPushId(id) || id[0] !== this.scope || !isPushPayload(id[1], payload)) {
      this.stats.dropped++;
      return { isNew: false, effects: this.#take() };
    }
    const [, kind, origin, epoch, n] = id;
    let isNew = false;
    try {
      isNew = this.#onPush(kind, origin, epoch, n, payload, now);
    } catch (e) {
      this.#a.threw(origin, e);
    }
    if (isNew) this.#recent.keep(id, payload);
    return { isNew, effects: this.#take() };
  }

  #onPush(
    kind: PushId[1],
    origin: string,
    epoch: number,
    n: number,
    payload: PushPayload,
    now: number,
  ): boolean {
    if (origin === this.#name) {
      // A death notice of this node's current life: refute it.
      if (kind === "x" && epoch === this.#epoch && n >= this.#life && n !== BYE_LIFE) {
        this.#refute(n);
        return true;
      }
      return false;
    }
    // What this node holds already (or something newer) is not news: not passed on.
    if (this.isStale([this.scope, kind, origin, epoch, n])) return false;
    if (kind === "x" || kind === "b") {
      return this.#learnDeath(origin, epoch, kind === "b" ? BYE_LIFE : n, now, "push");
    }
    const [version, m, bodies] = payload as [Version, number, Body[]];
    const life = kind === "u" ? m : n, seq = kind === "u" ? n : m;
    const wasDown = (this.#t.get(origin)?.status ?? 0) !== 0;
    const e = this.#a.live(origin, epoch, life, version, now);
    if (e === undefined) return false;
    const body = this.#v.bodyFor(bodies);
    if (kind === "a") {
      if (body !== undefined && (e.fromOld || seq >= e.seq)) this.#a.full(e, seq, body[1], body[2]);
      if (wasDown) this.#cascade(now); // also by anti-entropy: the tree may go through the cut link
      return true;
    }
    if (seq <= e.seq) return false;
    if (body === undefined) {
      this.stats.dropped++; // no body for this version: anti-entropy brings it, translated
      return true;
    }
    if (seq !== e.seq + 1) {
      e.future ??= new Map();
      if (e.future.size < this.#o.futureMax) e.future.set(seq, [life, bodies]);
      else this.stats.dropped++;
      return true;
    }
    this.#a.delta(e, seq, body);
    this.#a.drain(e);
    return true;
  }

  /**
   * A death of `origin` at `epoch` and `life` (this node's detection, a
   * notice, an anti-entropy entry): its data stays shown for `downGraceMs`,
   * then goes (at once for an older epoch or a goodbye). True when it was news
   * here. This node's own detection goes out as a notice for every node (and
   * the origin, if it is alive, refutes it); a goodbye heard from the origin
   * itself goes on as its own push (same id: whichever copy comes first goes
   * on, the other is not news); one learnt from a neighbour's entries goes on
   * by anti-entropy at once (`#cascade`): the notice is most often on its way
   * already.
   */
  #learnDeath(
    origin: string,
    epoch: number,
    life: number,
    now: number,
    source: "detected" | "push" | "entry" | "bye",
  ): boolean {
    if (origin === this.#name) {
      if (epoch === this.#epoch && life >= this.#life && life !== BYE_LIFE) this.#refute(life);
      return false;
    }
    const e = this.#t.get(origin);
    if (e !== undefined && (e.epoch > epoch || (e.epoch === epoch && e.life > life))) return false;
    if (e !== undefined && e.epoch === epoch && e.life === life && e.status !== 0) return false;
    this.stats.deaths++;
    if (e === undefined) {
      if (
        this.#t.add(origin, epoch, life, this.#s.version, 2, this.#s.empty(), now) === undefined
      ) {
        this.stats.dropped++;
        return false;
      }
    } else {
      const older = e.epoch < epoch;
      e.epoch = epoch;
      e.life = life;
      e.future = undefined;
      if (older || life === BYE_LIFE || this.#o.downGraceMs === 0) this.#a.remove(e, now);
      else if (e.status === 0) {
        e.removeAt = now + this.#o.downGraceMs;
        this.#t.setStatus(e, 1);
      }
      this.#t.rehash(e);
    }
    if (source === "detected") {
      this.#fx.broadcasts.push(this.#recent.keep([this.scope, "x", origin, epoch, life], []));
    } else if (source === "bye") {
      this.#fx.broadcasts.push(this.#recent.keep([this.scope, "b", origin, epoch, 0], []));
    } else if (source === "entry") this.#cascade(now);
    return true;
  }

  /** A death notice about this node at `life`: the next life, and the full data for everyone. */
  #refute(life: number): void {
    this.#life = life + 1;
    this.#rehashSelf();
    this.stats.refutations++;
    let bodies: Body[];
    try {
      bodies = this.#v.bodies("local_data", this.#s.local);
    } catch (e) {
      this.#a.threw(this.#name, e);
      bodies = [];
    }
    this.#push("a", this.#life, [this.#s.version, this.#seq, bodies]);
  }

  /** An anti-entropy message from neighbour `from`. */
  receive(from: string, msg: unknown, now: number): PublisherEffects {
    if (!isAntiEntropy(msg) || msg[1] !== this.scope) {
      this.stats.dropped++;
      this.#log?.({
        level: "warn",
        node: this.#name,
        peer: from,
        msg: `publisher "${this.scope}": malformed anti-entropy message dropped`,
      });
      return this.#take();
    }
    this.#v.saw(msg[2], now);
    const me = this.#s.version;
    try {
      switch (msg[0]) {
        case "d":
          if (msg[3] !== this.#t.top(0) || msg[4] !== this.#t.top(1)) {
            this.#fx.sends.push({ to: from, msg: ["h", this.scope, me, [...this.#t.buckets]] });
          }
          break;
        case "h":
          this.stats.exchanges++;
          this.#summaryTo(from, this.#t.differing(msg[3]));
          break;
        case "s": {
          const [, , version, reply, idxs, entries, rest] = msg;
          this.#compare(from, version, idxs, entries, now);
          if (reply === 0) {
            const mine = this.#entries(new Set(idxs));
            this.#fx.sends.push({ to: from, msg: ["s", this.scope, me, 1, idxs, mine, rest] });
          } else this.#summaryTo(from, rest);
          break;
        }
        case "f": {
          let learnt = false;
          for (const item of msg[3]) learnt = this.#fullItem(item, now) || learnt;
          if (learnt) this.#cascade(now);
          break;
        }
        case "b":
          this.#learnDeath(from, msg[3], BYE_LIFE, now, "bye");
          break;
      }
    } catch (e) {
      this.#a.threw(from, e);
    }
    return this.#take();
  }

  #digestTo(peer: string): void {
    const msg: AntiEntropy = ["d", this.scope, this.#s.version, this.#t.top(0), this.#t.top(1)];
    this.#fx.sends.push({ to: peer, msg });
  }

  /** Asks `peer` to compare buckets: a batch now, the rest carried along. */
  #summaryTo(peer: string, buckets: number[]): void {
    if (buckets.length === 0) return;
    const now = buckets.slice(0, this.#o.summaryBucketsMax);
    const rest = buckets.slice(this.#o.summaryBucketsMax);
    const msg: AntiEntropy = [
      "s",
      this.scope,
      this.#s.version,
      0,
      now,
      this.#entries(new Set(now)),
      rest,
    ];
    this.#fx.sends.push({ to: peer, msg });
  }

  /** What this node knows of the origins in `buckets`, itself included once it published. */
  #entries(buckets: ReadonlySet<number>): Entry[] {
    const out = this.#t.entries(buckets);
    if (this.#seq > 0 && buckets.has(this.#selfBucket)) {
      out.push([this.#name, this.#epoch, this.#life, this.#seq, 0, this.#s.version]);
    }
    return out;
  }

  /**
   * Compares a neighbour's entries of `buckets` with this node's: the deaths
   * it knows are learnt (a death of this node is refuted), and it is sent the
   * full data of the origins it lacks or holds older, translated for it.
   */
  #compare(peer: string, peerVersion: Version, buckets: number[], entries: Entry[], now: number) {
    const want = new Set(buckets);
    const theirs = new Map<string, Entry>();
    for (const t of entries) if (want.has(bucketOf(t[0]))) theirs.set(t[0], t);
    for (const t of theirs.values()) {
      if (t[4] !== 0) this.#learnDeath(t[0], t[1], t[2], now, "entry");
    }
    const items: FullItem[] = [];
    const add = (
      e: { name: string; epoch: number; life: number; seq: number; version: Version },
      data: Local,
    ) => {
      try {
        const [plain, value] = this.#v.translated(peerVersion, data);
        items.push([e.name, e.epoch, e.life, e.seq, e.version, plain, value]);
      } catch (err) {
        this.#a.threw(e.name, err);
      }
    };
    if (this.#seq > 0 && want.has(this.#selfBucket)) {
      if (behind(theirs.get(this.#name), this.#epoch, this.#life, this.#seq)) {
        const self = { name: this.#name, epoch: this.#epoch, life: this.#life, seq: this.#seq };
        add({ ...self, version: this.#s.version }, this.#s.local);
      }
    }
    for (const e of this.#t.inBuckets(want)) {
      if (e.status !== 0 || e.seq === 0 || e.fromOld) continue;
      if (behind(theirs.get(e.name), e.epoch, e.life, e.seq)) add(e, e.data);
    }
    for (let i = 0; i < items.length; i += this.#o.fullBatchMax) {
      const batch = items.slice(i, i + this.#o.fullBatchMax);
      this.#fx.sends.push({ to: peer, msg: ["f", this.scope, this.#s.version, batch] });
    }
  }

  /** A neighbour's full data of one origin, translated for this node. */
  #fullItem(item: FullItem, now: number): boolean {
    const [origin, epoch, life, seq, version, plain, data] = item;
    if (origin === this.#name) return false;
    const wasDown = (this.#t.get(origin)?.status ?? 0) !== 0;
    const e = this.#a.live(origin, epoch, life, version, now);
    if (e === undefined) return false;
    if (!e.fromOld && seq <= e.seq) return wasDown; // a revival is news: it goes on
    try {
      this.#a.full(e, seq, plain, data);
    } catch (err) {
      this.#a.threw(origin, err);
    }
    return true;
  }

  /**
   * What a neighbour's full data taught this node goes on at once: a digest to
   * every neighbour (those that lack it too start an exchange), at most one
   * round per `CASCADE_MS`; one that falls within it runs at its end
   * (`timers`). Data a push missed so spreads at network speed rather than one
   * hop per anti-entropy period.
   */
  #cascade(now: number, due = false): void {
    if (!due && now - this.#lastCascade < CASCADE_MS) {
      this.#cascadeAt ??= this.#lastCascade + CASCADE_MS;
      return;
    }
    this.#lastCascade = now;
    this.#cascadeAt = undefined;
    for (const peer of this.#neighbours) this.#digestTo(peer);
  }

  /** This node's own share of the digest (its entry, once it published). */
  #rehashSelf(): void {
    const [h1, h2] = this.#selfHash;
    this.#t.toggle(this.#name, h1, h2);
    this.#selfHash = this.#seq > 0
      ? entryHash(this.#name, this.#epoch, this.#life, this.#seq)
      : [0, 0];
    this.#t.toggle(this.#name, ...this.#selfHash);
  }

  /** Runs a local event; on a throw, nothing it gathered goes out. */
  #guarded(fn: () => void): PublisherEffects {
    try {
      fn();
    } catch (e) {
      this.#take();
      throw e;
    }
    return this.#take();
  }

  /** A push of this node's. */
  #push(kind: PushId[1], n: number, payload: PushPayload): void {
    this.#fx.broadcasts.push(
      this.#recent.keep([this.scope, kind, this.#name, this.#epoch, n], payload),
    );
  }

  /** The effects gathered since the last call, handed to the host. */
  #take(): PublisherEffects {
    const fx = this.#fx;
    this.#fx = noEffects();
    return fx;
  }
}
