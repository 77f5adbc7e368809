// A test module shared by the publisher tests: tags per node, whose version 2
// speaks to version 1 only through plain messages (the old protocol's
// `{set, Node, Tags}` and `{add, Node, Tags}`), as a module would whose data
// shape changed.

import type { PublisherModule, Subscriptions } from "../mod.ts";

/** A node's tags. */
export type Tags = string[];
/** Tags added and removed. */
export type Upd = { add: string[]; remove: string[] };
/** Every node's tags. */
export type View = Map<string, Set<string>>;

/**
 * Version 2 speaks version 1 to old peers only through plain messages (the old
 * protocol's `{set, Node, Tags}` and `{add, Node, Tags}`), as a module would
 * whose data shape changed.
 */
export function tags(version: 1 | 2): PublisherModule<Tags, Upd, View, string, null> {
  return {
    version: () => version,
    initLocalData: () => [],
    initGlobalView: () => new Map(),
    dataDiff: (o, n) => ({
      add: n.filter((t) => !o.includes(t)),
      remove: o.filter((t) => !n.includes(t)),
    }),
    updateLocalData: (
      u,
      d,
    ) => [...d.filter((t) => !u.remove.includes(t)), ...u.add.filter((t) => !d.includes(t))],
    updateGlobalViewAndNotify: (node, u, _s: Subscriptions<string>, view) => {
      const set = view.get(node) ?? new Set();
      for (const t of u.remove) set.delete(t);
      for (const t of u.add) set.add(t);
      if (set.size > 0) view.set(node, set);
      else view.delete(node);
      return view;
    },
    newSubscription: () => null,
    stopGlobalView: () => {},
    translateLocalData: (mine, peer, d) =>
      mine === 2 && peer === 1 ? { plainMessages: [{ v1set: d }] } : d,
    translateUpdate: (mine, peer, u) =>
      mine === 2 && peer === 1 ? { plainMessages: [{ v1add: u.add, v1remove: u.remove }] } : u,
    // The sender of a plain message is its third argument.
    translateMessage: (msg, view, from) => {
      const m = msg as { v1set?: string[]; v1add?: string[]; v1remove?: string[] };
      if (from === undefined) return { type: "drop", view };
      if (m.v1set !== undefined) {
        return { type: "localData", node: from, version: 2, data: m.v1set, view };
      }
      if (m.v1add !== undefined) {
        return {
          type: "peerUpdate",
          node: from,
          update: { add: m.v1add, remove: m.v1remove ?? [] },
          view,
        };
      }
      return { type: "drop", view };
    },
  };
}
