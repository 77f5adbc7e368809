// The ids delivered here lately, per handler, for duplicate detection: with
// the sender and round of the copy kept, in a ring of `idsRememberedMax`
// entries (the oldest is forgotten in O(1)). Module-private: PlumtreeCore
// composes it.

import { encodeValue } from "../base/codec.ts";

/** The sender and round of the copy of a delivered id kept here. */
export interface Kept {
  from: string;
  round: number;
}

/** A remembered id: where it is kept, and from whom and at what round it came. */
interface RecentSlot extends Kept {
  of: Map<unknown, Kept>;
  slot: unknown;
}

/** An id's CBOR encoding as a string, one character per byte (a Map key for any id). */
function encodedKey(id: unknown): string {
  const b = encodeValue(id);
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/**
 * A stable string key for a handler's id (strings and numbers directly, other
 * ids through their CBOR encoding).
 *
 * @example
 * ```ts
 * import { idKey } from "@murmur/murmur/protocol";
 * console.log(idKey("log", "m1") === idKey("log", "m1")); // true
 * ```
 */
export function idKey(handler: string, id: unknown): string {
  if (typeof id === "string") return handler + "\u0000s" + id;
  if (typeof id === "number") return handler + "\u0000n" + id;
  return handler + "\u0000c" + encodedKey(id);
}

/** An id as a Map key within its handler: numbers and most strings as they are, others by their CBOR bytes. */
export function idSlot(id: unknown): unknown {
  if (typeof id === "number") return id;
  // Other ids are "\u0000c" + their CBOR, so a string that starts with NUL is
  // moved aside ("\u0000s" + it): no string can then meet another id's key.
  if (typeof id === "string") return id.charCodeAt(0) === 0 ? "\u0000s" + id : id;
  return "\u0000c" + encodedKey(id);
}

/** Recently delivered ids of every handler, at most `max`. */
export class RecentIds {
  readonly #max: number;
  /**
   * Per handler, the ids (keyed by {@linkcode idSlot}: a number or string id
   * is its own key, hashed without building a string) with the copy kept.
   */
  readonly #byHandler = new Map<string, Map<unknown, Kept>>();
  /**
   * The remembered ids in a ring, oldest at `#at`; each is also its map's
   * value. (A Map's first key is not O(1) in V8 when the front keeps being
   * deleted: the holes are skipped until a rehash.)
   */
  readonly #order: RecentSlot[] = [];
  #at = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Ids remembered (at most `max`). */
  get size(): number {
    return this.#order.length;
  }

  /** The kept copy of `handler`'s id in slot `slot`, if remembered. */
  kept(handler: string, slot: unknown): Kept | undefined {
    return this.#byHandler.get(handler)?.get(slot);
  }

  /** `handler`'s remembered ids by slot (undefined before its first): one lookup for many ids. */
  of(handler: string): ReadonlyMap<unknown, Kept> | undefined {
    return this.#byHandler.get(handler);
  }

  /** Remembers an id delivered here (once: a second call keeps the first copy). */
  remember(handler: string, slot: unknown, from: string, round: number): void {
    let of = this.#byHandler.get(handler);
    if (of === undefined) this.#byHandler.set(handler, of = new Map());
    if (of.has(slot)) return;
    let e: RecentSlot;
    if (this.#order.length < this.#max) {
      this.#order.push(e = { of, slot, from, round });
    } else {
      // The oldest is forgotten, and its slot object reused (no allocation per id).
      e = this.#order[this.#at]!;
      e.of.delete(e.slot);
      e.of = of;
      e.slot = slot;
      e.from = from;
      e.round = round;
      this.#at = (this.#at + 1) % this.#max;
    }
    of.set(slot, e);
  }
}
