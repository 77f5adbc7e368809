// Plumtree's lazy side: per neighbour, the announcements it still has to be
// told (new entries, and IHAVE batches sent but not acknowledged), the ring of
// recent deliveries a new neighbour is caught up on, and what was delivered
// here that no neighbour is known to hold. Bounded throughout. Module-private:
// PlumtreeCore composes it.

import { ihaveGroups, type PlumtreeStats, PT, type Send } from "./wire.ts";

/** An id to announce. */
export interface Lazy {
  readonly handler: string;
  readonly id: unknown;
  readonly round: number;
  readonly root: string;
}

/** A delivered id, for catch-up. */
export interface Recent extends Lazy {
  readonly at: number;
}

/** What one peer still has to be told: new entries, and batches sent but not acknowledged. */
interface Outstanding {
  readonly peer: string;
  /** New entries from index `head` on (those before were dropped: O(1) per drop). */
  pending: Lazy[];
  head: number;
  unacked: Map<number, Lazy[]>;
  size: number;
}

/** The bounds of the lazy side (PlumtreeCore's options of the same meaning). */
export interface LazyLimits {
  lazyOutstandingMax: number;
  ihaveBatchMax: number;
  catchupMs: number;
  catchupIdsMax: number;
  unsharedMax: number;
}

/** The lazy queues of one node. */
export class LazyQueues {
  readonly #lazyMax: number;
  readonly #ihaveBatchMax: number;
  readonly #catchupMs: number;
  readonly #catchupMax: number;
  readonly #unsharedMax: number;
  readonly #stats: PlumtreeStats;
  /** Delivered here, held by no neighbour known (see `unsharedMax`), oldest first. */
  readonly #unshared = new Set<Lazy>();
  /** The last ids delivered here (a ring), for new neighbours. */
  readonly #delivered: Recent[];
  #deliveredAt = 0;
  /** Per neighbour (and only for neighbours), its announcements not yet acknowledged. */
  readonly #outstanding = new Map<string, Outstanding>();
  /** The values of `#outstanding`, for the per-delivery loop. */
  #outs: Outstanding[] = [];
  #batchSeq = 0;

  constructor(limits: LazyLimits, stats: PlumtreeStats) {
    this.#lazyMax = limits.lazyOutstandingMax;
    this.#ihaveBatchMax = limits.ihaveBatchMax;
    this.#catchupMs = limits.catchupMs;
    this.#catchupMax = limits.catchupIdsMax;
    this.#unsharedMax = limits.unsharedMax;
    this.#stats = stats;
    // Grown as ids are delivered, up to catchupIdsMax: a node that delivered
    // little holds little (1,000 empty slots were 8 KiB per simulated node).
    this.#delivered = [];
  }

  /** Neighbours with a queue. */
  get peers(): number {
    return this.#outs.length;
  }

  /** A new neighbour: its queue, with what nobody known holds and the recent deliveries. */
  add(peer: string, now: number): void {
    const out: Outstanding = { peer, pending: [], head: 0, unacked: new Map(), size: 0 };
    this.#outstanding.set(peer, out);
    this.#outs = [...this.#outstanding.values()];
    // What nobody known holds, however old (see `unsharedMax`), then the recent ids.
    for (const e of this.#unshared) {
      out.pending.push(e);
      if (++out.size > this.#lazyMax) this.#dropOldest(out);
    }
    const n = this.#catchupMax;
    if (n === 0) return;
    const since = now - this.#catchupMs;
    for (let k = 1; k <= n; k++) {
      const e = this.#delivered[(this.#deliveredAt - k + n) % n];
      if (e === undefined || e.at < since) break;
      if (this.#unshared.has(e)) continue;
      out.pending.push(e);
      if (++out.size > this.#lazyMax) this.#dropOldest(out);
    }
  }

  /** A neighbour went: its queue goes; when it was the last, nobody known holds what it held. */
  remove(peer: string): void {
    const out = this.#outstanding.get(peer);
    if (out === undefined) return;
    this.#outstanding.delete(peer);
    this.#outs = [...this.#outstanding.values()];
    if (this.#outs.length === 0) {
      for (const b of out.unacked.values()) for (const e of b) this.keepUnshared(e);
      for (let i = out.head; i < out.pending.length; i++) this.keepUnshared(out.pending[i]!);
    }
  }

  /** Delivered here and held by no neighbour known (past `unsharedMax` the oldest goes). */
  keepUnshared(e: Lazy): void {
    this.#unshared.add(e);
    if (this.#unshared.size > this.#unsharedMax) {
      this.#unshared.delete(this.#unshared.values().next().value!);
      this.#stats.lazyDropped++;
    }
  }

  /**
   * A delivery: into the catch-up ring, and onto every neighbour's queue but
   * `from`'s; a queue that holds a full batch sends it now (into `sends`).
   */
  delivered(entry: Recent, from: string, sends: Send[]): void {
    if (this.#catchupMax > 0) {
      this.#delivered[this.#deliveredAt] = entry;
      this.#deliveredAt = (this.#deliveredAt + 1) % this.#catchupMax;
    }
    for (const out of this.#outs) {
      if (out.peer === from) continue;
      out.pending.push(entry);
      if (++out.size > this.#lazyMax) this.#dropOldest(out);
      else if (out.pending.length - out.head >= this.#ihaveBatchMax) {
        // A full batch goes now rather than at the tick: under steady load the
        // outstanding set then holds about one batch and one round trip per
        // peer, not a whole tick of announcements (which would reach the bound).
        sends.push(this.#ihave(out.peer, out, out.pending.slice(out.head)));
        out.pending = [];
        out.head = 0;
      }
    }
  }

  /** IGNORED: `peer` processed IHAVE batch `batch`; stop announcing it. */
  acknowledged(peer: string, batch: number): void {
    const out = this.#outstanding.get(peer);
    const entries = out?.unacked.get(batch);
    if (out === undefined || entries === undefined) return;
    out.unacked.delete(batch);
    out.size -= entries.length;
    if (this.#unshared.size > 0) { for (const e of entries) this.#unshared.delete(e); }
  }

  /** Per peer, everything outstanding in IHAVE frames of at most `ihaveBatchMax` ids (into `sends`). */
  flush(sends: Send[]): void {
    for (const [peer, out] of this.#outstanding) {
      if (out.size === 0) continue;
      // Unacknowledged batches are announced again, with what is new.
      const all: Lazy[] = [];
      for (const b of out.unacked.values()) for (const e of b) all.push(e);
      for (let i = out.head; i < out.pending.length; i++) all.push(out.pending[i]!);
      out.unacked.clear();
      out.pending = [];
      out.head = 0;
      for (let at = 0; at < all.length; at += this.#ihaveBatchMax) {
        sends.push(this.#ihave(peer, out, all.slice(at, at + this.#ihaveBatchMax)));
      }
    }
  }

  /** Ids delivered here `settledMs` to `windowMs` ago, newest first, at most `max`. */
  recent(
    now: number,
    settledMs: number,
    windowMs: number,
    max: number,
  ): { handler: string; id: unknown; root: string }[] {
    const n = this.#catchupMax, out: { handler: string; id: unknown; root: string }[] = [];
    for (let k = 1; k <= n && out.length < max; k++) {
      const e = this.#delivered[(this.#deliveredAt - k + n) % n];
      if (e === undefined || now - e.at > windowMs) break;
      if (now - e.at >= settledMs) out.push({ handler: e.handler, id: e.id, root: e.root });
    }
    return out;
  }

  /** Ids delivered here that no neighbour is known to hold. */
  get unsharedCount(): number {
    return this.#unshared.size;
  }

  /** Entries waiting to be announced or acknowledged, all peers together. */
  get outstandingCount(): number {
    let n = 0;
    for (const out of this.#outstanding.values()) n += out.size;
    return n;
  }

  /** Past `lazyOutstandingMax`: forget the oldest unacknowledged batch, else the oldest pending entries. */
  #dropOldest(out: Outstanding): void {
    const first = out.unacked.keys().next();
    if (!first.done) {
      const dropped = out.unacked.get(first.value)!.length;
      out.unacked.delete(first.value);
      out.size -= dropped;
      this.#stats.lazyDropped += dropped;
      return;
    }
    const excess = out.size - this.#lazyMax;
    out.head += excess;
    out.size -= excess;
    this.#stats.lazyDropped += excess;
    // Compact now and then, so that dropped entries do not pile up (amortized O(1)).
    if (out.head >= 1024 && out.head * 2 >= out.pending.length) {
      out.pending = out.pending.slice(out.head);
      out.head = 0;
    }
  }

  /** One IHAVE frame of `chunk` to `peer`, its ids grouped by handler and root; unacknowledged until IGNORED. */
  #ihave(peer: string, out: Outstanding, chunk: Lazy[]): Send {
    const batch = ++this.#batchSeq;
    const groups = ihaveGroups(chunk);
    out.unacked.set(batch, chunk);
    this.#stats.lazy += chunk.length;
    this.#stats.ihaveFrames++;
    return { to: peer, msg: [PT.IHave, batch, groups] };
  }
}
