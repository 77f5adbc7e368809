// An ordered map from byte strings to values: a skip list with O(log n) insert,
// delete and seek, doubly linked at the bottom level for reverse scans.
// Module-private to the memory backend.

import { compareBytes } from "./keys.ts";

const LEVELS_MAX = 24;

interface SkipNode<V> {
  key: Uint8Array;
  value: V;
  next: (SkipNode<V> | undefined)[];
  prev: SkipNode<V> | undefined;
}

export class SkipList<V> {
  readonly #head: SkipNode<V> = {
    key: new Uint8Array(0),
    value: undefined as V,
    next: [],
    prev: undefined,
  };
  #level = 1;
  #size = 0;
  #seed = 0x9e3779b9;

  get size(): number {
    return this.#size;
  }

  #randomLevel(): number {
    let level = 1;
    for (;;) {
      // xorshift32: internal structure randomness, not a protocol decision.
      this.#seed ^= this.#seed << 13;
      this.#seed ^= this.#seed >>> 17;
      this.#seed ^= this.#seed << 5;
      if ((this.#seed & 3) !== 0 || level >= LEVELS_MAX) return level;
      level++;
    }
  }

  /** The rightmost node with key < `key` at each level. */
  #predecessors(key: Uint8Array): SkipNode<V>[] {
    const update: SkipNode<V>[] = new Array(this.#level);
    let x = this.#head;
    for (let i = this.#level - 1; i >= 0; i--) {
      for (let n = x.next[i]; n !== undefined && compareBytes(n.key, key) < 0; n = x.next[i]) x = n;
      update[i] = x;
    }
    return update;
  }

  get(key: Uint8Array): V | undefined {
    const n = this.#predecessors(key)[0]!.next[0];
    return n !== undefined && compareBytes(n.key, key) === 0 ? n.value : undefined;
  }

  set(key: Uint8Array, value: V): void {
    const update = this.#predecessors(key);
    const found = update[0]!.next[0];
    if (found !== undefined && compareBytes(found.key, key) === 0) {
      found.value = value;
      return;
    }
    const level = this.#randomLevel();
    for (let i = this.#level; i < level; i++) update[i] = this.#head;
    this.#level = Math.max(this.#level, level);
    const node: SkipNode<V> = {
      key,
      value,
      next: new Array(level),
      prev: update[0] === this.#head ? undefined : update[0],
    };
    for (let i = 0; i < level; i++) {
      node.next[i] = update[i]!.next[i];
      update[i]!.next[i] = node;
    }
    if (node.next[0] !== undefined) node.next[0].prev = node;
    this.#size++;
  }

  delete(key: Uint8Array): boolean {
    const update = this.#predecessors(key);
    const node = update[0]!.next[0];
    if (node === undefined || compareBytes(node.key, key) !== 0) return false;
    for (let i = 0; i < node.next.length; i++) {
      if (update[i]!.next[i] === node) update[i]!.next[i] = node.next[i];
    }
    if (node.next[0] !== undefined) node.next[0].prev = node.prev;
    while (this.#level > 1 && this.#head.next[this.#level - 1] === undefined) this.#level--;
    this.#size--;
    return true;
  }

  /** Entries with lo <= key < hi, ascending or descending, at most `limit`. */
  range(lo: Uint8Array, hi: Uint8Array, limit: number, reverse: boolean): [Uint8Array, V][] {
    const out: [Uint8Array, V][] = [];
    if (!reverse) {
      for (
        let n = this.#predecessors(lo)[0]!.next[0];
        n !== undefined && out.length < limit;
        n = n.next[0]
      ) {
        if (compareBytes(n.key, hi) >= 0) break;
        out.push([n.key, n.value]);
      }
    } else {
      const before = this.#predecessors(hi)[0]!;
      for (
        let n: SkipNode<V> | undefined = before === this.#head ? undefined : before;
        n !== undefined && out.length < limit;
        n = n.prev
      ) {
        if (compareBytes(n.key, lo) < 0) break;
        out.push([n.key, n.value]);
      }
    }
    return out;
  }
}
