// Causal delivery per label (the seed's `causal_label`): messages sent with the
// same label are delivered in causal order on every node. Module-private: the
// node wraps a labelled send in an envelope for the reserved endpoint
// `murmur.causal` and hands received envelopes to this state machine.
//
// The algorithm is Schiper, Eggli and Sandoz's for point-to-point messages
// (SES, 1989), per label. Each node keeps, per label, a vector clock `clock`
// (one entry per sending process, `name@incarnation`, counting its labelled
// sends) and an order buffer `before` (per destination, the timestamp of the
// latest labelled message to it in this node's causal past). A send increments
// this node's entry, carries the clock as its timestamp and a copy of `before`,
// then records its own timestamp as `before[destination]`. A receiver may
// deliver a message once its `before[receiver]` is covered by the receiver's
// clock (everything addressed to it in the sender's causal past has been
// delivered); on delivery it merges the timestamp into its clock and the
// message's `before` into its own. Otherwise the message waits.
//
// Bounds: `causalBufferMax` waiting messages per label and `causalWaitMs` per
// message. Past either, the oldest waiting message is delivered after skipping
// what it waits for (its predecessors count as lost: `causalSkips`), and a
// skipped predecessor that arrives later is dropped (`causalLate`), never
// delivered out of order. With `ack: true` nothing is lost, so nothing is
// skipped unless a wait passes `causalWaitMs`. Labels (`causalLabelsMax`) and
// clock entries (`causalClockEntriesMax`) are bounded too.
//
// No I/O and no clock of its own: time comes in as `now`.

import { ProtocolError } from "../base/errors.ts";

/** A vector clock: per sending process (`name@incarnation`), its labelled sends. */
export type VectorClock = Record<string, number>;

/** What a labelled message carries besides its endpoint and payload. */
export interface CausalStamp {
  readonly label: string;
  /** The sender's key (`name@incarnation`). */
  readonly sender: string;
  /** The sender's clock after this send. */
  readonly ts: VectorClock;
  /** Per destination key, the latest timestamp addressed to it in the sender's causal past. */
  readonly before: Record<string, VectorClock>;
}

/** A labelled message waiting to be delivered, or delivered now. */
export interface CausalMessage<T> {
  readonly stamp: CausalStamp;
  readonly item: T;
  readonly at: number;
}

/** Limits of causal delivery. */
export interface CausalLimits {
  /**
   * Waiting messages per label; past it the oldest is delivered, its gaps skipped.
   *
   * @default 1000
   */
  causalBufferMax: number;
  /**
   * How long a message may wait for its predecessors before they are skipped.
   *
   * @default 30000
   */
  causalWaitMs: number;
  /**
   * Labels a node keeps state for; a send with one more is refused.
   *
   * @default 1024
   */
  causalLabelsMax: number;
  /**
   * Entries of one label's clock or order buffer.
   *
   * @default 1024
   */
  causalClockEntriesMax: number;
}

/** Counters of causal delivery. */
export interface CausalCounters {
  /** Labelled messages that waited for a predecessor before delivery. */
  causalWaits: number;
  /** Predecessors given up on (a wait past `causalWaitMs` or `causalBufferMax`). */
  causalSkips: number;
  /** Labelled messages dropped: a skipped predecessor arriving late, or refused by a bound. */
  causalDrops: number;
}

interface LabelState<T> {
  clock: VectorClock;
  before: Record<string, VectorClock>;
  waiting: CausalMessage<T>[];
}

/** `a <= b` component-wise (a missing entry is 0). */
function covered(a: VectorClock, b: VectorClock): boolean {
  for (const k in a) if (a[k]! > (b[k] ?? 0)) return false;
  return true;
}

/** Merges `b` into `a` (component-wise maximum). */
function mergeInto(a: VectorClock, b: VectorClock): void {
  for (const k in b) if (b[k]! > (a[k] ?? 0)) a[k] = b[k]!;
}

function isClock(v: unknown, entriesMax: number): v is VectorClock {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  let n = 0;
  for (const k in v) {
    const c = (v as Record<string, unknown>)[k];
    if (typeof c !== "number" || !Number.isSafeInteger(c) || c < 0 || ++n > entriesMax) {
      return false;
    }
  }
  return true;
}

/**
 * Checks the stamp part of a received envelope `[label, sender, ts, before]`;
 * throws `ProtocolError` when it is malformed or over the bounds.
 */
export function parseStamp(v: unknown[], limits: CausalLimits): CausalStamp {
  const [label, sender, ts, before] = v;
  if (typeof label !== "string" || label.length === 0 || label.length > 256) {
    throw new ProtocolError("causal label is not a short string");
  }
  if (typeof sender !== "string" || sender.length === 0 || sender.length > 300) {
    throw new ProtocolError("causal sender is not a short string");
  }
  const max = limits.causalClockEntriesMax;
  if (!isClock(ts, max) || !(sender in ts)) throw new ProtocolError("causal timestamp malformed");
  if (typeof before !== "object" || before === null || Array.isArray(before)) {
    throw new ProtocolError("causal order buffer malformed");
  }
  let n = 0;
  for (const k in before) {
    if (++n > max || !isClock((before as Record<string, unknown>)[k], max)) {
      throw new ProtocolError("causal order buffer malformed");
    }
  }
  return { label, sender, ts, before: before as Record<string, VectorClock> };
}

/** Causal delivery state of one node, every label. */
export class CausalOrder<T> {
  readonly #labels = new Map<string, LabelState<T>>();
  readonly #limits: CausalLimits;
  /** Counters. */
  readonly counters: CausalCounters = { causalWaits: 0, causalSkips: 0, causalDrops: 0 };
  /** This process's keys (`name@incarnation`), newest last: a refutation adds one. */
  readonly #selfKeys: string[] = [];
  #sends = 0;

  /** `selfKey`: this process's `name@incarnation`. */
  constructor(selfKey: string, limits: CausalLimits) {
    this.#selfKeys.push(selfKey);
    this.#limits = limits;
  }

  /** This process took a new incarnation: its later sends are stamped with `key`. */
  setSelfKey(key: string): void {
    if (this.#selfKeys.at(-1) !== key) this.#selfKeys.push(key);
    if (this.#selfKeys.length > 16) this.#selfKeys.shift();
  }

  /** Messages waiting, all labels together. */
  get waiting(): number {
    let n = 0;
    for (const s of this.#labels.values()) n += s.waiting.length;
    return n;
  }

  /** The earliest time a waiting message passes `causalWaitMs`, if any. */
  nextDeadline(): number | undefined {
    let at: number | undefined;
    for (const s of this.#labels.values()) {
      const first = s.waiting[0];
      if (first !== undefined && (at === undefined || first.at < at)) at = first.at;
    }
    return at === undefined ? undefined : at + this.#limits.causalWaitMs;
  }

  #state(label: string, create: boolean): LabelState<T> | undefined {
    let s = this.#labels.get(label);
    if (s === undefined && create) {
      if (this.#labels.size >= this.#limits.causalLabelsMax) return undefined;
      this.#labels.set(label, s = { clock: {}, before: {}, waiting: [] });
    }
    return s;
  }

  /**
   * Stamps a send of `label` to the process `destKey` (`name@incarnation`).
   *
   * @throws {RangeError} past `causalLabelsMax` labels or `causalClockEntriesMax` entries.
   */
  stamp(label: string, destKey: string): CausalStamp {
    const s = this.#state(label, true);
    if (s === undefined) {
      throw new RangeError(
        `causalLabelsMax (${this.#limits.causalLabelsMax}) labels in use: label ${
          JSON.stringify(label)
        } refused`,
      );
    }
    const self = this.#selfKeys.at(-1)!;
    // One counter per process, whatever its key: a refutation does not restart it.
    s.clock[self] = Math.max(s.clock[self] ?? 0, ++this.#sends);
    this.#trim(s);
    const ts = { ...s.clock };
    const before: Record<string, VectorClock> = {};
    for (const k in s.before) before[k] = s.before[k]!;
    s.before[destKey] = ts;
    return { label, sender: self, ts, before };
  }

  /**
   * A received labelled message. Returns the messages deliverable now, in
   * order (this one, maybe after others it unblocked), or none when it waits.
   * `dropped` is called for a message that cannot be delivered in order.
   */
  receive(msg: CausalMessage<T>, dropped: (why: string) => void): CausalMessage<T>[] {
    const s = this.#state(msg.stamp.label, true);
    if (s === undefined) {
      this.counters.causalDrops++;
      dropped(`causalLabelsMax (${this.#limits.causalLabelsMax}) labels in use`);
      return [];
    }
    const { sender, ts } = msg.stamp;
    // (This node's own sends are in its clock already: a send to itself is never late.)
    if (!this.#selfKeys.includes(sender) && (ts[sender] ?? 0) <= (s.clock[sender] ?? 0)) {
      // Its place in the order is gone: a later message was delivered after skipping it.
      this.counters.causalDrops++;
      dropped("a predecessor skipped earlier arrived late");
      return [];
    }
    if (!this.#ready(s, msg)) {
      this.counters.causalWaits++;
      s.waiting.push(msg);
      if (s.waiting.length > this.#limits.causalBufferMax) return this.#skipOldest(s);
      return [];
    }
    const out = [msg];
    this.#deliver(s, msg);
    this.#drain(s, out);
    return out;
  }

  /** Skips the predecessors of messages that waited past `causalWaitMs`; returns what is then deliverable. */
  expire(now: number): CausalMessage<T>[] {
    const out: CausalMessage<T>[] = [];
    for (const s of this.#labels.values()) {
      while (s.waiting.length > 0 && now - s.waiting[0]!.at >= this.#limits.causalWaitMs) {
        out.push(...this.#skipOldest(s));
      }
    }
    return out;
  }

  #ready(s: LabelState<T>, msg: CausalMessage<T>): boolean {
    for (const k of this.#selfKeys) {
      const need = msg.stamp.before[k];
      if (need !== undefined && !covered(need, s.clock)) return false;
    }
    return true;
  }

  #deliver(s: LabelState<T>, msg: CausalMessage<T>): void {
    mergeInto(s.clock, msg.stamp.ts);
    for (const k in msg.stamp.before) {
      if (this.#selfKeys.includes(k)) continue; // what was owed to this node is delivered
      const mine = s.before[k];
      if (mine === undefined) s.before[k] = { ...msg.stamp.before[k]! };
      else mergeInto(mine, msg.stamp.before[k]!);
    }
    this.#trim(s);
  }

  /** Delivers waiting messages that became ready, oldest first, until none is. */
  #drain(s: LabelState<T>, out: CausalMessage<T>[]): void {
    for (let progressed = true; progressed;) {
      progressed = false;
      for (let i = 0; i < s.waiting.length; i++) {
        const w = s.waiting[i]!;
        if (!this.#ready(s, w)) continue;
        s.waiting.splice(i, 1);
        this.#deliver(s, w);
        out.push(w);
        progressed = true;
        break;
      }
    }
  }

  /** Delivers the oldest waiting message after counting what it waits for as lost. */
  #skipOldest(s: LabelState<T>): CausalMessage<T>[] {
    const oldest = s.waiting.shift()!;
    for (const k of this.#selfKeys) {
      const need = oldest.stamp.before[k];
      if (need !== undefined && !covered(need, s.clock)) {
        mergeInto(s.clock, need);
        this.counters.causalSkips++;
      }
    }
    const out = [oldest];
    this.#deliver(s, oldest);
    this.#drain(s, out);
    return out;
  }

  /** Keeps a label's clock and order buffer within `causalClockEntriesMax`: older incarnations go first. */
  #trim(s: LabelState<T>): void {
    const max = this.#limits.causalClockEntriesMax;
    for (const map of [s.clock, s.before] as Record<string, unknown>[]) {
      let n = 0;
      for (const _ in map) n++;
      if (n <= max) continue;
      // Keys are name@incarnation: of several incarnations of a name, the newest stays.
      const newest = new Map<string, number>();
      for (const k in map) {
        const at = k.lastIndexOf("@");
        const name = k.slice(0, at), inc = Number(k.slice(at + 1));
        newest.set(name, Math.max(newest.get(name) ?? -Infinity, inc));
      }
      for (const k in map) {
        if (n <= max) break;
        const at = k.lastIndexOf("@");
        if (Number(k.slice(at + 1)) < newest.get(k.slice(0, at))!) {
          delete map[k];
          n--;
        }
      }
      // Still over: the oldest-inserted entries go (a bound, at the price of order for them).
      for (const k in map) {
        if (n <= max) break;
        delete map[k];
        n--;
      }
    }
  }
}
