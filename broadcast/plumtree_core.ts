/**
 * The Plumtree protocol as a pure state machine: no I/O and no clock of its
 * own. Each input returns the messages to send; time comes in as `now`, and
 * the caller arms a timer for {@linkcode PlumtreeCore.nextDeadline}.
 *
 * Beyond the paper and Partisan: IHAVE ids are batched into one frame per peer
 * per lazy tick; an IHAVE starts a graft timer, so that a message that arrives
 * eagerly soon after is not grafted; the outstanding lazy set and the ids
 * remembered for duplicate detection are bounded; membership changes are
 * folded into the existing trees (new neighbours join them as lazy links)
 * rather than resetting every tree; eager links are directed per root and a
 * duplicate prunes the longer of the two paths (by round), which keeps trees
 * stable when many messages are in flight (the paper's symmetric rule lets a
 * child push back to its parent and get cut off under load).
 *
 * @module
 */

import type { Random } from "../base/clock.ts";
import { type PlumtreeMessage, type PlumtreeStats, PT, type Send } from "./wire.ts";
import { LazyQueues, type Recent } from "./_lazy.ts";
import { idKey, idSlot, type Kept, RecentIds } from "./_recent.ts";
import { MissingIds } from "./_missing.ts";
import { drop, Trees } from "./_trees.ts";
import { type PlumtreeCoreOptions, resolveCoreOptions } from "./plumtree_options.ts";

export type { PlumtreeCoreOptions } from "./plumtree_options.ts";

/** Non-members remembered as having taken this node as a neighbour (see `onNeighbor`). */
const EARLY_MAX = 64;

/**
 * The protocol state of one node.
 *
 * @example Two nodes, one broadcast
 * ```ts
 * import { PlumtreeCore } from "@murmur/murmur/protocol";
 * import { seededRandom } from "@murmur/murmur/membership";
 * const a = new PlumtreeCore("a", { random: seededRandom(1) });
 * a.setMembers(["a", "b"]);
 * const sends = a.broadcast("log", "m1", "hello", 0);
 * console.log(sends.map((s) => s.to)); // [ "b" ]
 * ```
 */
export class PlumtreeCore {
  /** This node's name. */
  readonly self: string;
  readonly #fanout: number;
  readonly #graftTimeoutMs: number;
  readonly #graftRetryMs: number;
  readonly #graftRetriesMax: number;
  readonly #idsMax: number;
  readonly #ihaveIdsMax: number;
  readonly #missingMax: number;
  readonly #missingPerPeerMax: number;
  readonly #rootsMax: number;
  readonly #optimize: number;
  readonly #random: Random;
  /** The latest time any input carried. */
  #now = 0;
  #members: string[] = [];
  readonly #memberSet = new Set<string>();
  /** Non-members that took this node as a neighbour (their membership may come later), oldest first. */
  readonly #early = new Set<string>();
  readonly #picked = new Set<string>();
  readonly #inbound = new Set<string>();
  readonly #neighbours = new Set<string>();
  readonly #trees: Trees;
  /** Per neighbour, what it still has to be told; the catch-up ring; what nobody else holds. */
  readonly #lazy: LazyQueues;
  /** Ids delivered here lately, with the copy kept (duplicate detection). */
  readonly #recent: RecentIds;
  /** Ids announced here but not received yet (graft timers). */
  readonly #missing: MissingIds;
  /** Peers that sent this node any Plumtree message (so they know it as a neighbour). */
  readonly #heard = new Set<string>();
  /** The IHAVE flush's pace: steady, and while trees repair after a neighbour change. */
  readonly lazyTickMs: number;
  readonly #repairTickMs: number;
  readonly #repairWindowMs: number;
  /** When a neighbour last went or came, and when IHAVEs were last flushed. */
  #changedAt = -Infinity;
  /**
   * False once a lazy tick found nothing to announce or repeat: the next tick
   * then waits until something is queued (`nextLazyTickAt` is Infinity), so an
   * idle node does not wake for it.
   */
  #lazyBusy = true;
  #flushedAt = -Infinity;
  /** Protocol counters. */
  readonly stats: PlumtreeStats = {
    eager: 0,
    lazy: 0,
    ihaveFrames: 0,
    graft: 0,
    prune: 0,
    deliveries: 0,
    duplicates: 0,
    malformed: 0,
    lazyDropped: 0,
    graftGaveUp: 0,
    missingDropped: 0,
    rootsDropped: 0,
  };

  /** Creates the state of node `self`. */
  constructor(self: string, options: PlumtreeCoreOptions) {
    this.self = self;
    const o = resolveCoreOptions(options);
    this.#fanout = o.fanout;
    this.#graftTimeoutMs = o.graftTimeoutMs;
    this.#graftRetryMs = o.graftRetryMs;
    this.#graftRetriesMax = o.graftRetriesMax;
    this.#idsMax = o.idsRememberedMax;
    this.#ihaveIdsMax = o.ihaveIdsMax;
    this.#missingMax = o.missingMax;
    this.#missingPerPeerMax = o.missingPerPeerMax;
    this.#rootsMax = o.rootsMax;
    this.#optimize = o.optimizeThreshold;
    this.#random = o.random;
    this.lazyTickMs = o.lazyTickMs;
    this.#repairTickMs = o.repairTickMs;
    this.#repairWindowMs = o.repairWindowMs;
    this.#lazy = new LazyQueues(o, this.stats);
    this.#recent = new RecentIds(this.#idsMax);
    this.#trees = new Trees(this.#rootsMax, () => void this.stats.rootsDropped++);
    this.#missing = new MissingIds({
      graftTimeoutMs: this.#graftTimeoutMs,
      graftRetryMs: this.#graftRetryMs,
      graftRetriesMax: this.#graftRetriesMax,
      missingMax: this.#missingMax,
      missingPerPeerMax: this.#missingPerPeerMax,
    }, this.stats);
  }

  /** The members Plumtree broadcasts to (connected members, self included). */
  get members(): readonly string[] {
    return this.#members;
  }

  /** The overlay neighbours. */
  neighbours(): string[] {
    return [...this.#neighbours].sort();
  }

  /** Eager and lazy peers of the tree rooted at `root`. */
  peers(root: string): { eager: string[]; lazy: string[] } {
    const t = this.#trees.peek(root);
    if (t === undefined) return { eager: this.neighbours(), lazy: [] };
    return {
      eager: [...t].sort(),
      lazy: [...this.#neighbours].filter((p) => !t.includes(p)).sort(),
    };
  }

  /**
   * The roots this node holds a tree for, most recently used last (at most
   * `limit`, the newest kept), with each tree's eager and lazy peers.
   */
  trees(limit = Infinity): { root: string; eager: string[]; lazy: string[] }[] {
    const roots = this.#trees.roots();
    const from = Math.max(0, roots.length - limit);
    return roots.slice(from).map((root) => ({ root, ...this.peers(root) }));
  }

  /**
   * Folds a membership change in. The overlay is the two ring neighbours (in
   * name order) plus `fanout` random members, made symmetric by NEIGHBOR
   * messages. New neighbours join existing trees as lazy links and are
   * announced the ids delivered in the last `catchupMs`; departed members
   * leave every set.
   */
  setMembers(members: readonly string[], now?: number): Send[] {
    if (now !== undefined) this.#now = now;
    const next = [...new Set(members)].sort();
    if (!next.includes(this.self)) next.push(this.self), next.sort();
    // Neighbours that are not members any more go too, those added because
    // they sent something (they would be announced to forever).
    const gone = [...new Set([...this.#members, ...this.#neighbours])].filter((m) =>
      !next.includes(m)
    );
    this.#members = next;
    this.#memberSet.clear();
    for (const m of next) this.#memberSet.add(m);
    for (const g of gone) this.#forget(g);
    for (const p of this.#early) {
      if (this.#memberSet.has(p)) {
        this.#early.delete(p);
        this.#inbound.add(p);
        this.#addNeighbour(p);
      }
    }
    const others = next.filter((m) => m !== this.self);
    const want = new Set<string>();
    if (others.length > 0) {
      const i = next.indexOf(this.self);
      want.add(next[(i + 1) % next.length]!);
      want.add(next[(i - 1 + next.length) % next.length]!);
    }
    for (const p of this.#picked) if (others.includes(p)) want.add(p);
    const candidates = others.filter((m) => !want.has(m));
    let randomPicks = [...this.#picked].filter((p) => others.includes(p)).length;
    while (randomPicks < this.#fanout && candidates.length > 0) {
      const j = Math.floor(this.#random.next() * candidates.length);
      want.add(candidates.splice(j, 1)[0]!);
      randomPicks++;
    }
    const sends: Send[] = [];
    for (const p of want) {
      if (p === this.self) continue;
      if (!this.#picked.has(p)) {
        this.#picked.add(p);
        this.#lazyBusy = true;
        sends.push({ to: p, msg: [PT.Neighbor, 1] });
      }
      this.#addNeighbour(p);
    }
    return sends;
  }

  #forget(peer: string): void {
    if (this.#neighbours.has(peer)) this.#changedAt = this.#now;
    this.#picked.delete(peer);
    this.#inbound.delete(peer);
    this.#neighbours.delete(peer);
    // The last neighbour went without acknowledging its queue: nobody known holds those.
    this.#lazy.remove(peer);
    this.#heard.delete(peer);
    this.#trees.forget(peer);
    this.#missing.forget(peer);
  }

  #addNeighbour(peer: string): void {
    if (peer === this.self || this.#neighbours.has(peer)) return;
    this.#neighbours.add(peer);
    this.#changedAt = this.#now;
    // Existing trees take the new link as lazy (not eager there): they stay as they are.
    // It is announced recent deliveries (it grafts what it lacks).
    this.#lazyBusy = true;
    this.#lazy.add(peer, this.#now);
  }

  /**
   * Ids delivered here at least `settledMs` and at most `windowMs` ago (from
   * the catch-up ring, newest first, at most `max`): what a neighbour of this
   * node should have by now.
   */
  recentDeliveries(
    now: number,
    settledMs: number,
    windowMs: number,
    max: number,
  ): { handler: string; id: unknown; root: string }[] {
    return this.#lazy.recent(now, settledMs, windowMs, max);
  }

  /** True when `handler`'s `id` was delivered here recently (cheaper than asking the handler). */
  seen(handler: string, id: unknown): boolean {
    return this.#recent.kept(handler, idSlot(id)) !== undefined;
  }

  /** Ids remembered for duplicate detection (at most `idsRememberedMax`). */
  get rememberedCount(): number {
    return this.#recent.size;
  }

  /** A broadcast from this node, already merged locally. */
  broadcast(handler: string, id: unknown, payload: unknown, now: number): Send[] {
    this.#now = now;
    this.#recent.remember(handler, idSlot(id), this.self, 0);
    this.stats.deliveries++;
    const sends = this.#push(handler, id, payload, 0, this.self, this.self);
    this.#trees.delivered(this.self, this.self, this.self);
    return sends;
  }

  #push(
    handler: string,
    id: unknown,
    payload: unknown,
    round: number,
    root: string,
    from: string,
  ): Send[] {
    const t = this.#trees.get(root, this.#neighbours);
    const sends: Send[] = [];
    // One message object for every destination: the caller can encode it once.
    const msg: PlumtreeMessage = [PT.Broadcast, handler, id, payload, root, round + 1];
    for (const p of t) {
      if (p === from || p === this.self) continue;
      sends.push({ to: p, msg });
      this.stats.eager++;
    }
    // One entry object for the catch-up ring and every peer's lazy set.
    const entry: Recent = { handler, id, round: round + 1, root, at: this.#now };
    // Broadcast here with no neighbour to tell: nobody else holds it.
    if (this.#lazy.peers === 0 && from === this.self) this.#lazy.keepUnshared(entry);
    // Lazy announcements go to every neighbour but the sender, eager ones too:
    // an eager push can be lost (a dropped connection, a lossy network), and on
    // a new tree every link starts eager. A peer that has the id just
    // acknowledges the batch.
    if (this.#lazy.peers > 0) this.#lazyBusy = true;
    this.#lazy.delivered(entry, from, sends);
    return sends;
  }

  /**
   * A payload from `from`, after the handler's merge said whether it is new.
   *
   * Edges are directed per root: a node's eager set is whom it pushes to. A
   * duplicate means one of the two pushes that reached this node is redundant:
   * the one on the longer path (higher round; ties by name) is pruned, so that
   * two copies crossing under load can never cut both of a node's inbound paths.
   * `now`: when it arrived (a delivery's time, for catch-up and eclipse checks).
   */
  onBroadcast(
    from: string,
    handler: string,
    id: unknown,
    payload: unknown,
    round: number,
    root: string,
    isNew: boolean,
    now?: number,
  ): Send[] {
    // The delivery's time: eclipse checks and catch-up read it, and a parked lazy tick
    // tells the core nothing for seconds.
    if (now !== undefined) this.#now = now;
    const slot = idSlot(id);
    this.#hear(from);
    if (isNew) {
      this.#recent.remember(handler, slot, from, round);
      if (this.#missing.size > 0) this.#missing.received(idKey(handler, id));
      this.stats.deliveries++;
      const sends = this.#push(handler, id, payload, round, root, from);
      this.#trees.delivered(root, from, this.self);
      return sends;
    }
    this.stats.duplicates++;
    const kept = this.#recent.kept(handler, slot);
    let prune = from;
    if (kept !== undefined && kept.from !== this.self && kept.from !== from) {
      const shorter = round < kept.round || (round === kept.round && from < kept.from);
      if (shorter) {
        // This copy came the shorter way: keep it, prune the path of the first one.
        // The old parent has this root's messages by a path of its own, so this
        // node's eager link to it (never used while it was the parent: nobody
        // pushes back to the sender) would carry nothing but duplicates from
        // now on: it becomes lazy here too (a GRAFT makes it eager again).
        prune = kept.from;
        const t = this.#trees.peek(root);
        if (t !== undefined) drop(t, prune);
        kept.from = from;
        kept.round = round;
        this.#trees.reparent(root, from);
      }
    } else if (kept === undefined) this.#recent.remember(handler, slot, from, round);
    this.stats.prune++;
    return [{ to: prune, msg: [PT.Prune, root] }];
  }

  /**
   * A PRUNE: `from` moves to the lazy set of `root`'s tree. A PRUNE for a root
   * this node has no tree of is ignored: there is nothing to prune (the next
   * duplicate would prune again), and a flood of made-up roots creates nothing.
   */
  onPrune(from: string, root: string): void {
    this.#hear(from);
    const t = this.#trees.peek(root);
    if (t === undefined) return;
    drop(t, from);
  }

  /**
   * An ADOPT: `from` takes this node as its parent in `root`'s tree (the link
   * becomes eager there). Ignored for a root without a tree, as a PRUNE.
   */
  onAdopt(from: string, root: string): void {
    this.#hear(from);
    const t = this.#trees.peek(root);
    if (t !== undefined && this.#neighbours.has(from) && !t.includes(from)) t.push(from);
  }

  /**
   * An announcement of an id already delivered here (the dispatch skips the
   * handler for those). When `from`'s path is shorter by `optimizeThreshold`
   * rounds than the one the payload came by, `from` becomes the parent in the
   * root's tree: ADOPT to it, PRUNE to the old parent. Undefined otherwise
   * (the common case, with no allocation).
   */
  onHeldAnnounced(
    from: string,
    handler: string,
    id: unknown,
    round: number,
    root: string,
  ): Send[] | undefined {
    if (this.#optimize === 0) return undefined;
    const kept = this.#recent.kept(handler, idSlot(id));
    if (kept === undefined) return undefined;
    const sends: Send[] = [];
    this.#heldAnnounced(from, kept, round, root, sends);
    return sends.length === 0 ? undefined : sends;
  }

  /**
   * One IHAVE group's ids (`handler`'s, in `root`'s tree, from `from`), sorted
   * with one lookup each: the index of every id not delivered here goes on
   * `unheld` (for the handler's `isStale`); an id delivered here may show a
   * shorter path, as in {@linkcode onHeldAnnounced} (its ADOPT and PRUNE go on
   * `sends`). The announcement path's hot loop: at 16 nodes every delivery is
   * announced by 14 neighbours.
   */
  sortAnnounced(
    from: string,
    handler: string,
    root: string,
    ids: readonly unknown[],
    rounds: readonly number[],
    unheld: number[],
    sends: Send[],
  ): void {
    const of = this.#recent.of(handler);
    for (let k = 0; k < ids.length; k++) {
      const kept = of?.get(idSlot(ids[k]));
      if (kept === undefined) unheld.push(k);
      else if (this.#optimize !== 0) this.#heldAnnounced(from, kept, rounds[k]!, root, sends);
    }
  }

  #heldAnnounced(from: string, kept: Kept, round: number, root: string, sends: Send[]): void {
    // Callers check that the optimisation is on (optimizeThreshold > 0).
    if (round + this.#optimize > kept.round) return;
    const old = kept.from;
    if (old === this.self || old === from || root === this.self) return;
    if (!this.#neighbours.has(from) || this.#trees.parent(root) !== old) return;
    kept.from = from;
    kept.round = round;
    this.#trees.reparent(root, from);
    // The old parent's copies would now be duplicates: it leaves the tree's eager set here too.
    const t = this.#trees.peek(root);
    if (t !== undefined) drop(t, old);
    this.stats.prune++;
    sends.push({ to: from, msg: [PT.Adopt, root] }, { to: old, msg: [PT.Prune, root] });
  }

  /**
   * A NEIGHBOR message: `from` takes (1) or drops (0) this node as an overlay
   * neighbour, or acknowledges (2) being taken. A take is acknowledged, so that
   * the taker stops repeating it.
   */
  onNeighbor(from: string, kind: 0 | 1 | 2): Send[] {
    this.#hear(from);
    if (kind === 1) {
      if (this.#memberSet.has(from)) this.#inbound.add(from);
      else {
        // Its membership here may come later: it becomes a neighbour then.
        this.#early.delete(from);
        this.#early.add(from);
        if (this.#early.size > EARLY_MAX) this.#early.delete(this.#early.values().next().value!);
      }
      return [{ to: from, msg: [PT.Neighbor, 2] }];
    }
    if (kind === 0) {
      this.#inbound.delete(from);
      this.#early.delete(from);
    }
    return [];
  }

  /**
   * Any Plumtree message from `from`: if it is a member, it is a neighbour
   * and it knows this node. A non-member is not made one: its frame may have
   * been sent before its link here closed, and a neighbour without a link
   * would be announced to (and its frames lost) until the next membership change.
   */
  #hear(from: string): void {
    if (!this.#memberSet.has(from)) return;
    this.#addNeighbour(from);
    this.#heard.add(from);
  }

  /**
   * An IHAVE batch, each entry with the handler's `isStale` answer. Missing
   * ids start a graft timer; the batch is acknowledged as a whole (IGNORED).
   */
  onIHave(
    from: string,
    batch: number,
    entries: readonly {
      handler: string;
      id: unknown;
      round: number;
      root: string;
      stale: boolean;
    }[],
    now: number,
  ): Send[] {
    this.#now = now;
    this.#hear(from);
    for (const e of entries) {
      if (e.stale || this.#recent.kept(e.handler, idSlot(e.id)) !== undefined) continue;
      this.#missing.announced(idKey(e.handler, e.id), e, from, now);
    }
    return [{ to: from, msg: [PT.Ignored, batch] }];
  }

  /** The largest number of ids accepted in one IHAVE frame. */
  get ihaveIdsMax(): number {
    return this.#ihaveIdsMax;
  }

  /**
   * True when an IHAVE from `from` can add nothing: the peer is at
   * `missingPerPeerMax`. Its announcements of ids already missing only add an
   * announcer, which its other entries give; the caller may skip the
   * handler's `isStale` calls and just acknowledge (the ids are counted as dropped).
   */
  announcerFull(from: string): boolean {
    return this.#missing.full(from);
  }

  /** IGNORED: `from` processed IHAVE batch `batch`; stop announcing it. */
  onIgnored(from: string, batch: number): void {
    this.#hear(from);
    this.#lazy.acknowledged(from, batch);
  }

  /** A GRAFT from `from`, with the handler's answer: the link becomes eager, the payload goes back. */
  onGraft(
    from: string,
    handler: string,
    id: unknown,
    round: number,
    root: string,
    result: { ok: unknown } | "stale" | { error: unknown },
  ): Send[] {
    this.#hear(from);
    const t = this.#trees.get(root, this.#neighbours);
    if (!t.includes(from)) t.push(from);
    if (typeof result === "object" && "ok" in result) {
      this.stats.eager++;
      return [{ to: from, msg: [PT.Broadcast, handler, id, result.ok, root, round] }];
    }
    return [];
  }

  /**
   * The lazy tick: per peer, one IHAVE frame (more past `ihaveBatchMax` ids)
   * with the ids grouped by handler and root. Entries stay outstanding until
   * their batch is acknowledged, and are announced again at the next tick.
   */
  lazyTick(now?: number): Send[] {
    if (now !== undefined) this.#now = now;
    this.#flushedAt = this.#now;
    const sends: Send[] = [];
    // A NEIGHBOR can be lost (sent while the peer's Plumtree was not running yet):
    // repeat it to picked neighbours that have not sent anything back since.
    for (const p of this.#picked) {
      if (!this.#heard.has(p)) sends.push({ to: p, msg: [PT.Neighbor, 1] });
    }
    this.#lazy.flush(sends);
    this.#lazyBusy = sends.length > 0;
    return sends;
  }

  /**
   * How often a shell that polls would call `lazyTickDue`: the shorter of
   * `lazyTickMs` and `repairTickMs` (half of it is the slack `lazyTickDue`
   * allows a timer that fires early).
   */
  get lazyTickPeriodMs(): number {
    return Math.min(this.lazyTickMs, this.#repairTickMs);
  }

  /**
   * The lazy tick when it is due at `now` (see `nextLazyTickAt`), else
   * nothing. A shell calls it when the timer it armed at `nextLazyTickAt`
   * fires (or polls every `lazyTickPeriodMs`).
   */
  lazyTickDue(now: number): Send[] {
    this.#now = now;
    // Half a shell period of slack: a timer that fires a little early still counts.
    if (now < this.nextLazyTickAt() - this.lazyTickPeriodMs / 2) return [];
    return this.lazyTick(now);
  }

  /**
   * When the next lazy tick is due: `repairTickMs` after the last when that
   * falls within `repairWindowMs` of the last neighbour change (so at once
   * when a neighbour changes after a quiet spell), else `lazyTickMs` after
   * it. The orphans of a failed node learn what they missed from these
   * IHAVEs. For a shell that schedules each tick rather than polling
   * `lazyTickDue`; it moves earlier when a neighbour goes or comes, and is
   * Infinity once a tick found nothing to announce or repeat, until something
   * is queued again (a shell asks again after each call into the core).
   */
  nextLazyTickAt(): number {
    if (!this.#lazyBusy) return Infinity;
    const fast = this.#flushedAt + this.#repairTickMs;
    return fast < this.#changedAt + this.#repairWindowMs ? fast : this.#flushedAt + this.lazyTickMs;
  }

  /** The earliest graft deadline, if any (possibly a little early). */
  nextDeadline(): number | undefined {
    return this.#missing.nextDeadline();
  }

  /** Fires graft timers due at `now`. */
  timers(now: number): Send[] {
    this.#now = now;
    return this.#missing.timers(now);
  }

  /** Ids delivered here that no neighbour is known to hold (see `unsharedMax`). */
  get unsharedCount(): number {
    return this.#lazy.unsharedCount;
  }

  /** Ids announced but not received yet. */
  get missingCount(): number {
    return this.#missing.size;
  }

  /** Trees kept (one per root). */
  get rootCount(): number {
    return this.#trees.size;
  }

  /** Lazy entries waiting to be announced or acknowledged, all peers together. */
  get outstandingCount(): number {
    return this.#lazy.outstandingCount;
  }
}
