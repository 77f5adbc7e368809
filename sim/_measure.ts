/**
 * What the simulator measures of a cluster's state at one instant: the shape
 * of its overlay, and Plumtree neighbours without a working link.
 * Module-private.
 *
 * @module
 */

import type { HyParView } from "../membership/hyparview.ts";
import type { OverlayShape, SimNode } from "./_simulation_types.ts";

/**
 * Plumtree neighbours without a working link, over the live nodes: a
 * neighbour is stale when the node has no link up to it, or the link's other
 * end is dead or does not count it (frames on it would be lost). A link whose
 * close is on its way (in `closing`: dialer index * 2^20 + target index) is
 * not counted: no node can know of it sooner.
 */
export function staleNeighbours(
  live: readonly SimNode[],
  byName: ReadonlyMap<string, SimNode>,
  closing: ReadonlyMap<number, number>,
): number {
  let stale = 0;
  for (const n of live) {
    for (const peer of n.pt.neighbours()) {
      const t = byName.get(peer);
      if (!n.up.has(peer) || t === undefined || !t.alive) stale++;
      else if (!t.inbound.has(n.name) && !closing.has(n.index * 0x100000 + t.index)) stale++;
    }
  }
  return stale;
}

/**
 * The overlay's components over the live nodes (links taken both ways: a
 * node's links up and its inbound links), and how full their active views
 * are (`viewSize` 0: not counted).
 */
export function overlayShape(
  live: readonly SimNode[],
  nodes: number,
  byName: ReadonlyMap<string, SimNode>,
  viewSize: number,
): OverlayShape {
  const seen = new Uint8Array(nodes);
  let components = 0, largest = 0, isolated = 0, notFull = 0, short = 0;
  for (const n of live) {
    if (n.up.size === 0 && n.inbound.size === 0) isolated++;
    if (viewSize > 0) {
      const k = (n.strategy as HyParView).activeView().length;
      const full = Math.min(viewSize, live.length - 1);
      if (k < full) notFull++;
      if (k < full - 1) short++;
    }
    if (seen[n.index]) continue;
    components++;
    let count = 0;
    const stack = [n];
    seen[n.index] = 1;
    while (stack.length > 0) {
      const x = stack.pop()!;
      count++;
      for (const set of [x.up, x.inbound]) {
        for (const name of set) {
          const y = byName.get(name)!;
          if (y.alive && !seen[y.index]) {
            seen[y.index] = 1;
            stack.push(y);
          }
        }
      }
    }
    if (count > largest) largest = count;
  }
  return { components, largest, isolated, notFull, short };
}
