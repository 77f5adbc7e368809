// What one node knows of the origins of one scope, with the digest that
// summarizes it: per origin its epoch, life, sequence, version, status and
// data; per bucket the XOR of the live origins' hashes, kept up to date as
// entries change; the down origins waiting for removal; the bound on
// origins. Module-private (the publisher core's table).

import type { Version } from "./module.ts";
import { type Body, bucketOf, BUCKETS, type Entry, entryHash } from "./overlay_wire.ts";

/** What a node knows of one origin. */
export interface Origin<Local> {
  name: string;
  epoch: number;
  life: number;
  seq: number;
  version: Version;
  /** 0 alive, 1 down (shown until `removeAt`), 2 removed (a tombstone since `removeAt`). */
  status: 0 | 1 | 2;
  /** Its data as shown in the view (empty when removed). */
  data: Local;
  /** The data shown is an older epoch's: the next full data is diffed against it. */
  fromOld: boolean;
  removeAt: number;
  /** Updates that came early, by sequence: `[life, bodies]`. */
  future: Map<number, [number, Body[]]> | undefined;
  /** Its share of the digest (0, 0 unless alive with a sequence). */
  h1: number;
  h2: number;
  /** Its share of the hash of what the view shows. */
  vh: number;
  /** Its digest bucket. */
  readonly bucket: number;
}

/** The origins of one scope and their digest. */
export class OriginTable<Local> {
  readonly #origins = new Map<string, Origin<Local>>();
  /** Two hashes per bucket. */
  readonly buckets = new Uint32Array(BUCKETS * 2);
  /** XOR of the shown origins' view hashes. */
  visible = 0;
  /** Down origins still shown, with when they are removed. */
  readonly #pending = new Map<string, number>();
  /** The origins of each bucket. */
  readonly #byBucket: Set<Origin<Local>>[] = Array.from({ length: BUCKETS }, () => new Set());
  /** Tombstones kept (status 2). */
  #tombstones = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.#origins.size;
  }

  get(name: string): Origin<Local> | undefined {
    return this.#origins.get(name);
  }

  values(): IterableIterator<Origin<Local>> {
    return this.#origins.values();
  }

  /** A new entry, if there is room (the oldest tombstone goes if needed); undefined otherwise. */
  add(
    name: string,
    epoch: number,
    life: number,
    version: Version,
    status: 0 | 2,
    data: Local,
    now: number,
  ): Origin<Local> | undefined {
    if (this.#origins.size >= this.max && !this.#evictTombstone()) return undefined;
    const e: Origin<Local> = {
      name,
      epoch,
      life,
      seq: 0,
      version,
      status,
      data,
      fromOld: false,
      removeAt: now,
      future: undefined,
      h1: 0,
      h2: 0,
      vh: 0,
      bucket: bucketOf(name),
    };
    this.#origins.set(name, e);
    this.#byBucket[e.bucket]!.add(e);
    if (status === 2) this.#tombstones++;
    return e;
  }

  #evictTombstone(): boolean {
    let oldest: Origin<Local> | undefined;
    for (const e of this.#origins.values()) {
      if (e.status === 2 && (oldest === undefined || e.removeAt < oldest.removeAt)) oldest = e;
    }
    if (oldest === undefined) return false;
    this.#delete(oldest);
    return true;
  }

  #delete(e: Origin<Local>): void {
    this.#origins.delete(e.name);
    this.#byBucket[e.bucket]!.delete(e);
    if (e.status === 2) this.#tombstones--;
  }

  /** Tombstones older than `ms` go. */
  expire(now: number, ms: number): void {
    if (this.#tombstones === 0) return;
    for (const e of this.#origins.values()) {
      if (e.status === 2 && now - e.removeAt > ms) this.#delete(e);
    }
  }

  setStatus(e: Origin<Local>, status: 0 | 1 | 2): void {
    if (status === 1) this.#pending.set(e.name, e.removeAt);
    else this.#pending.delete(e.name);
    if (e.status === 2) this.#tombstones--;
    if (status === 2) this.#tombstones++;
    e.status = status;
  }

  /** The down origins whose removal time has come. */
  due(now: number): Origin<Local>[] {
    const out: Origin<Local>[] = [];
    for (const [name, at] of this.#pending) if (at <= now) out.push(this.#origins.get(name)!);
    return out;
  }

  /** The earliest removal time, if any. */
  nextDeadline(): number | undefined {
    if (this.#pending.size === 0) return undefined;
    let at = Infinity;
    for (const t of this.#pending.values()) if (t < at) at = t;
    return at;
  }

  /** Brings an origin's shares of the digest and of the view hash up to date. */
  rehash(e: Origin<Local>): void {
    const b = 2 * e.bucket, bk = this.buckets;
    bk[b] = bk[b]! ^ e.h1;
    bk[b + 1] = bk[b + 1]! ^ e.h2;
    if (e.status === 0 && e.seq > 0) [e.h1, e.h2] = entryHash(e.name, e.epoch, e.life, e.seq);
    else e.h1 = e.h2 = 0;
    bk[b] = bk[b]! ^ e.h1;
    bk[b + 1] = bk[b + 1]! ^ e.h2;
    this.visible ^= e.vh;
    e.vh = e.status !== 2 && e.seq > 0 ? visibleHash(e.name, e.epoch, e.seq) : 0;
    this.visible ^= e.vh;
  }

  /** XORs `h1`, `h2` into the bucket of `name` (an entry kept outside the table: this node's). */
  toggle(name: string, h1: number, h2: number): void {
    const b = 2 * bucketOf(name), bk = this.buckets;
    bk[b] = bk[b]! ^ h1;
    bk[b + 1] = bk[b + 1]! ^ h2;
  }

  /** One of the two digest hashes, over every bucket. */
  top(k: 0 | 1): number {
    let h = 0;
    for (let b = 0; b < BUCKETS; b++) h ^= this.buckets[2 * b + k]!;
    return h >>> 0;
  }

  /** The buckets whose hashes differ from `hashes` (a neighbour's). */
  differing(hashes: readonly number[]): number[] {
    const out: number[] = [];
    for (let i = 0; i < BUCKETS; i++) {
      if (hashes[2 * i] !== this.buckets[2 * i] || hashes[2 * i + 1] !== this.buckets[2 * i + 1]) {
        out.push(i);
      }
    }
    return out;
  }

  /** The entries of the origins in `buckets`. */
  entries(buckets: Iterable<number>): Entry[] {
    const out: Entry[] = [];
    for (const e of this.inBuckets(buckets)) {
      out.push([e.name, e.epoch, e.life, e.seq, e.status, e.version]);
    }
    return out;
  }

  /** The origins of `buckets`. */
  *inBuckets(buckets: Iterable<number>): Iterable<Origin<Local>> {
    for (const b of buckets) yield* this.#byBucket[b]!;
  }

  /** The data of every origin shown, but `except`. */
  *contributions(except?: string): Iterable<[string, Local]> {
    for (const e of this.#origins.values()) {
      if (e.status !== 2 && e.name !== except) yield [e.name, e.data];
    }
  }
}

/** An origin's share of the view hash. */
export function visibleHash(origin: string, epoch: number, seq: number): number {
  return entryHash(origin, epoch, 0, seq)[0];
}

/** True when a neighbour's entry `t` is older than alive `(epoch, life, seq)`, or missing. */
export function behind(t: Entry | undefined, epoch: number, life: number, seq: number): boolean {
  if (t === undefined || t[1] < epoch) return true;
  if (t[1] > epoch) return false;
  if (t[4] !== 0) return t[2] < life; // dead at a lower life: refuted since
  return t[3] < seq || t[2] < life;
}
