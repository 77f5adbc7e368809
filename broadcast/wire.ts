/**
 * The Plumtree wire: the messages Plumtree servers exchange, and the counters
 * of the protocol. Every node and the simulator speak it.
 *
 * @module
 */

/** Wire tags of Plumtree messages. */
export const PT = {
  /** `[PT.Broadcast, handler, id, payload, root, round]` (the round last: a relay patches it in the bytes) */
  Broadcast: 0,
  /** `[PT.IHave, batch, [[handler, root, [id, ...], [round, ...]], ...]]` (ids and their rounds side by side) */
  IHave: 1,
  /** `[PT.Graft, handler, id, round, root]` */
  Graft: 2,
  /** `[PT.Prune, root]` */
  Prune: 3,
  /** `[PT.Ignored, batch]`: the IHAVE batch was processed (missing ids are grafted separately). */
  Ignored: 4,
  /**
   * `[PT.Neighbor, 1 | 0 | 2]`: the sender takes (1) or drops (0) this node as
   * an overlay neighbour, or acknowledges (2) that it was taken.
   */
  Neighbor: 5,
  /**
   * `[PT.Adopt, root]`: the sender takes this node as its parent in `root`'s
   * tree (a GRAFT without a payload: the Plumtree paper's optimization, sent
   * when this node's announcements show a path shorter by
   * `optimizeThreshold` rounds). A node of an older version drops it as
   * malformed; the tree then just stays as it was.
   */
  Adopt: 6,
} as const;

/** A Plumtree message on the wire. */
export type PlumtreeMessage =
  | [typeof PT.Broadcast, string, unknown, unknown, string, number]
  | [typeof PT.IHave, number, IHaveGroup[]]
  | [typeof PT.Graft, string, unknown, number, string]
  | [typeof PT.Prune, string]
  | [typeof PT.Ignored, number]
  | [typeof PT.Neighbor, 0 | 1 | 2]
  | [typeof PT.Adopt, string];

/** The ids of one handler and root in an IHAVE: `[handler, root, ids, rounds]`, `rounds[i]` the round of `ids[i]`. */
export type IHaveGroup = [string, string, unknown[], number[]];

/** One message to send. */
export interface Send {
  /** Destination node. */
  to: string;
  /** The message. */
  msg: PlumtreeMessage;
}

/** Counters of the protocol. */
export interface PlumtreeStats {
  /** Payload messages sent (eager pushes and graft answers). */
  eager: number;
  /** Ids announced lazily (IHAVE entries). */
  lazy: number;
  /** IHAVE frames sent. */
  ihaveFrames: number;
  /** Grafts sent. */
  graft: number;
  /** Prunes sent. */
  prune: number;
  /** Messages new here (delivered to the application). */
  deliveries: number;
  /** Payloads received that were not new. */
  duplicates: number;
  /** Malformed messages dropped. */
  malformed: number;
  /** Lazy entries dropped by `lazyOutstandingMax`. */
  lazyDropped: number;
  /** Missing ids given up after `graftRetriesMax`. */
  graftGaveUp: number;
  /** Announced ids dropped by `missingMax` or `missingPerPeerMax`. */
  missingDropped: number;
  /** Trees forgotten by `rootsMax`. */
  rootsDropped: number;
}

/**
 * The IHAVE form of announcements: grouped by handler and root, ids and
 * their rounds side by side.
 *
 * @example
 * ```ts
 * import { ihaveGroups } from "@murmur/murmur/protocol";
 * console.log(ihaveGroups([{ handler: "log", root: "a", id: "m1", round: 2 }])); // [ [ "log", "a", [ "m1" ], [ 2 ] ] ]
 * ```
 */
export function ihaveGroups(
  chunk: readonly { handler: string; root: string; id: unknown; round: number }[],
): IHaveGroup[] {
  const groups: IHaveGroup[] = [];
  // Runs of one handler and root (the common case: one of each) need no lookup.
  let g: IHaveGroup | undefined;
  let byHandler: Map<string, Map<string, IHaveGroup>> | undefined;
  for (const e of chunk) {
    if (g === undefined || g[0] !== e.handler || g[1] !== e.root) {
      if (byHandler === undefined) {
        byHandler = new Map();
        for (const x of groups) group(byHandler, x[0]).set(x[1], x);
      }
      const roots = group(byHandler, e.handler);
      g = roots.get(e.root);
      if (g === undefined) {
        groups.push(g = [e.handler, e.root, [], []]);
        roots.set(e.root, g);
      }
    }
    g[2].push(e.id);
    g[3].push(e.round);
  }
  return groups;
}

function group(byHandler: Map<string, Map<string, IHaveGroup>>, handler: string) {
  let m = byHandler.get(handler);
  if (m === undefined) byHandler.set(handler, m = new Map());
  return m;
}
