/**
 * Plumtree's broadcast trees, one per root: each root's eager peers (whom this
 * node pushes that root's payloads to) and its parent here (whom they come
 * from), at most `rootsMax` trees, the least recently used forgotten first.
 * A new root's tree is seeded from the last root's (see {@linkcode Trees.get}).
 * Module-private: {@linkcode PlumtreeCore} owns one.
 *
 * @module
 */

/**
 * A root's eager peers, in the order they became eager (a plain array: a view
 * holds a handful of peers, and a node can hold a tree per node of the cluster).
 * Every other neighbour is lazy.
 */
export type Tree = string[];

/** Removes `peer` from `t`; true when it was there. */
export function drop(t: Tree, peer: string): boolean {
  const i = t.indexOf(peer);
  if (i < 0) return false;
  t.splice(i, 1);
  return true;
}

/** The trees of one node. */
export class Trees {
  readonly #trees = new Map<string, Tree>();
  /** Per root with a tree, the neighbour its payloads came from last (its parent here). */
  readonly #parents = new Map<string, string>();
  /** The root of the last payload delivered here (its tree seeds a new root's). */
  #lastRoot: string | undefined;
  readonly #max: number;
  readonly #dropped: () => void;

  /** At most `max` trees; `dropped` counts each one forgotten past it. */
  constructor(max: number, dropped: () => void) {
    this.#max = max;
    this.#dropped = dropped;
  }

  /** Trees kept. */
  get size(): number {
    return this.#trees.size;
  }

  /** The roots, least recently used first. */
  roots(): string[] {
    return [...this.#trees.keys()];
  }

  /** The tree of `root` if there is one (its use is not recorded). */
  peek(root: string): Tree | undefined {
    return this.#trees.get(root);
  }

  /** The parent of `root`'s tree here. */
  parent(root: string): string | undefined {
    return this.#parents.get(root);
  }

  /**
   * The tree of `root`, created if needed (the least recently used goes past
   * the bound). A new root's eager peers are the links of the tree of the
   * last root delivered here, taken both ways (its eager peers and its
   * parent). Every node seeds from the same settled tree, so a new root's
   * first message travels that spanning tree: each node gets it once, where
   * starting with every link eager sends it over every link of the overlay
   * (with many senders, each new root paid that). Where nodes disagree on the
   * last root (broadcasts crossing), a gap is grafted and a duplicate pruned,
   * as on any tree. With no such tree, every neighbour is eager (the paper's start).
   */
  get(root: string, neighbours: ReadonlySet<string>): Tree {
    let t = this.#trees.get(root);
    if (t === undefined) {
      t = this.#seed(neighbours);
      if (this.#trees.size >= this.#max) {
        const old = this.#trees.keys().next().value!;
        this.#trees.delete(old);
        this.#parents.delete(old);
        if (this.#lastRoot === old) this.#lastRoot = undefined;
        this.#dropped();
      }
      this.#trees.set(root, t);
    } else if (this.#trees.size > 1) {
      // Keep the map in order of use (cheap: only when it is not already the newest).
      this.#trees.delete(root);
      this.#trees.set(root, t);
    }
    return t;
  }

  #seed(neighbours: ReadonlySet<string>): Tree {
    const root = this.#lastRoot;
    const last = root === undefined ? undefined : this.#trees.get(root);
    if (last !== undefined) {
      const t = last.filter((p) => neighbours.has(p));
      const parent = this.#parents.get(root!);
      if (parent !== undefined && neighbours.has(parent) && !t.includes(parent)) t.push(parent);
      if (t.length > 0) return t;
    }
    return [...neighbours];
  }

  /** A payload of `root` was delivered here from `from` (this node's own: `from` is itself). */
  delivered(root: string, from: string, self: string): void {
    if (from !== self && this.#parents.get(root) !== from) this.#parents.set(root, from);
    this.#lastRoot = root;
  }

  /** `from` is the parent of `root`'s tree now (a shorter path was found). */
  reparent(root: string, from: string): void {
    if (this.#trees.has(root)) this.#parents.set(root, from);
  }

  /** `peer` left: it is no tree's eager peer nor parent. */
  forget(peer: string): void {
    for (const t of this.#trees.values()) drop(t, peer);
    for (const [root, parent] of this.#parents) if (parent === peer) this.#parents.delete(root);
  }
}
