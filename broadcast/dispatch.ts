/**
 * The one dispatch of Plumtree messages: checks a message from the network
 * (shape, bounds), asks the handlers what they need to know (is a payload
 * new, is an announced id stale, what to answer a graft) and feeds the
 * {@linkcode PlumtreeCore}. The {@linkcode Plumtree} server of a node and the
 * simulator both receive through it, so what the simulator shows of the
 * protocol holds for a node: it is the same code.
 *
 * @module
 */

import type { GraftResult } from "./handler.ts";
import { type IHaveGroup, type PlumtreeMessage, PT, type Send } from "./wire.ts";
import type { PlumtreeCore } from "./plumtree_core.ts";

/** What the dispatch asks of a node's broadcast handlers. */
export interface PlumtreeHandlers {
  /** True for a handler this node serves. */
  has(handler: string): boolean;
  /** Stores a payload; true when it is new here (it is delivered on). */
  merge(handler: string, id: unknown, payload: unknown): boolean | Promise<boolean>;
  /** True when an announced id is not worth a graft (held here, or superseded). */
  isStale(handler: string, id: unknown): boolean | Promise<boolean>;
  /** The answer to a graft of an id. */
  graft(handler: string, id: unknown): GraftResult<unknown> | Promise<GraftResult<unknown>>;
}

/** A Plumtree payload message. */
export type BroadcastMessage = Extract<PlumtreeMessage, [typeof PT.Broadcast, ...unknown[]]>;

/** What one received message came to. */
export interface Received {
  /** The messages to send now. */
  readonly sends: Send[];
  /** For a payload that merged: the message, and whether it was new here. */
  readonly payload?: { readonly msg: BroadcastMessage; readonly isNew: boolean };
  /** Why (part of) the message was dropped, for the log; counted in `stats.malformed`. */
  readonly dropped?: string;
}

const NOTHING: Received = { sends: [] };

/** A handler or node name on the wire. */
function isName(x: unknown): x is string {
  return typeof x === "string" && x.length > 0 && x.length <= 255;
}

/** A round or batch number on the wire. */
function isRound(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x) && x >= 0;
}

/** IHAVE groups: `[handler, root, ids, rounds]`, as many rounds as ids, each a round. */
function isIHaveGroups(v: unknown): boolean {
  if (!Array.isArray(v) || v.length > 10_000) return false;
  for (const g of v) {
    if (!Array.isArray(g) || g.length !== 4 || !isName(g[0]) || !isName(g[1])) return false;
    const ids = g[2], rounds = g[3];
    if (!Array.isArray(ids) || !Array.isArray(rounds) || ids.length !== rounds.length) return false;
    if (ids.length > 100_000) return false;
    for (let i = 0; i < rounds.length; i++) if (!isRound(rounds[i])) return false;
  }
  return true;
}

/**
 * Checks the shape of a Plumtree message from the network; undefined when malformed.
 *
 * @example
 * ```ts
 * import { parsePlumtreeMessage } from "@murmur/murmur/protocol";
 * console.log(parsePlumtreeMessage([3, "a"])); // [ 3, "a" ]
 * console.log(parsePlumtreeMessage("junk")); // undefined
 * ```
 */
export function parsePlumtreeMessage(v: unknown): PlumtreeMessage | undefined {
  if (!Array.isArray(v)) return undefined;
  switch (v[0]) {
    case PT.Broadcast:
      return v.length === 6 && isName(v[1]) && isName(v[4]) && isRound(v[5])
        ? v as PlumtreeMessage
        : undefined;
    case PT.IHave:
      return v.length === 3 && isRound(v[1]) && isIHaveGroups(v[2])
        ? v as PlumtreeMessage
        : undefined;
    case PT.Graft:
      return v.length === 5 && isName(v[1]) && isRound(v[3]) && isName(v[4])
        ? v as PlumtreeMessage
        : undefined;
    case PT.Prune:
    case PT.Adopt:
      return v.length === 2 && isName(v[1]) ? v as PlumtreeMessage : undefined;
    case PT.Ignored:
      return v.length === 2 && isRound(v[1]) ? v as PlumtreeMessage : undefined;
    case PT.Neighbor:
      return v.length === 2 && (v[1] === 0 || v[1] === 1 || v[1] === 2)
        ? v as PlumtreeMessage
        : undefined;
  }
  return undefined;
}

/**
 * Receives one Plumtree message from `from`: checks it, asks `handlers`, and
 * feeds `core`. Synchronous when the handlers answer synchronously (the
 * simulator's always do), else a promise. `now` reads the clock when the
 * core needs the time (after the handlers answered). A handler that throws drops what it
 * was asked about (counted in `core.stats.malformed`, said in `dropped`).
 *
 * @example A payload from b, new here
 * ```ts
 * import { PlumtreeCore, receivePlumtree, seededRandom } from "@murmur/murmur/protocol";
 * const core = new PlumtreeCore("a", { random: seededRandom(1) });
 * core.setMembers(["a", "b", "c"], 0);
 * const seen = new Set<unknown>();
 * const handlers = {
 *   has: () => true,
 *   merge: (_h: string, id: unknown) => !seen.has(id) && Boolean(seen.add(id)),
 *   isStale: (_h: string, id: unknown) => seen.has(id),
 *   graft: () => "stale" as const,
 * };
 * const r = receivePlumtree(core, "b", [0, "log", "m1", "hi", "b", 1], handlers, () => 0);
 * console.log(!(r instanceof Promise) && r.payload?.isNew); // true
 * ```
 */
export function receivePlumtree(
  core: PlumtreeCore,
  from: string,
  raw: unknown,
  handlers: PlumtreeHandlers,
  now: () => number,
): Received | Promise<Received> {
  const msg = parsePlumtreeMessage(raw);
  if (
    msg === undefined ||
    ((msg[0] === PT.Broadcast || msg[0] === PT.Graft) && !handlers.has(msg[1]))
  ) {
    core.stats.malformed++;
    return { sends: [], dropped: "malformed plumtree message dropped" };
  }
  switch (msg[0]) {
    case PT.Broadcast: {
      const [, name, id, payload, root, round] = msg;
      const merged = (isNew: boolean): Received => ({
        sends: core.onBroadcast(from, name, id, payload, round, root, isNew, now()),
        payload: { msg, isNew },
      });
      const failed = (e: unknown): Received => {
        core.stats.malformed++;
        return { sends: [], dropped: `merge of "${name}" threw: ${(e as Error)?.message ?? e}` };
      };
      let r: boolean | Promise<boolean>;
      try {
        r = handlers.merge(name, id, payload);
      } catch (e) {
        return failed(e);
      }
      return r instanceof Promise ? r.then(merged, failed) : merged(r);
    }
    case PT.IHave:
      return receiveIHave(core, from, msg[1], msg[2], handlers, now);
    case PT.Graft: {
      const [, name, id, round, root] = msg;
      const done = (result: GraftResult<unknown>): Received => ({
        sends: core.onGraft(from, name, id, round, root, result),
      });
      let r: GraftResult<unknown> | Promise<GraftResult<unknown>>;
      try {
        r = handlers.graft(name, id);
      } catch (e) {
        return done({ error: e });
      }
      return r instanceof Promise ? r.then(done, (e) => done({ error: e })) : done(r);
    }
    case PT.Prune:
      core.onPrune(from, msg[1]);
      return NOTHING;
    case PT.Adopt:
      core.onAdopt(from, msg[1]);
      return NOTHING;
    case PT.Ignored:
      core.onIgnored(from, msg[1]);
      return NOTHING;
    case PT.Neighbor:
      return { sends: core.onNeighbor(from, msg[1]) };
  }
}

function receiveIHave(
  core: PlumtreeCore,
  from: string,
  batch: number,
  groups: IHaveGroup[],
  handlers: PlumtreeHandlers,
  now: () => number,
): Received | Promise<Received> {
  let ids = 0;
  for (const g of groups) ids += g[2].length;
  if (core.announcerFull(from)) {
    // This peer already has as many announcements waiting as it may: shed the
    // frame without asking the handlers, and acknowledge it.
    core.stats.missingDropped += ids;
    return { sends: [{ to: from, msg: [PT.Ignored, batch] }] };
  }
  if (ids > core.ihaveIdsMax) {
    core.stats.malformed++;
    return { sends: [], dropped: `IHAVE of ${ids} ids dropped (ihaveIdsMax ${core.ihaveIdsMax})` };
  }
  const entries: { handler: string; id: unknown; round: number; root: string; stale: boolean }[] =
    [];
  let pending: Promise<void>[] | undefined;
  // ADOPT and PRUNE for announced paths much shorter than the one kept.
  const switched: Send[] = [];
  const unheld: number[] = [];
  for (const [name, root, gids, rounds] of groups) {
    if (!handlers.has(name)) {
      core.stats.malformed++;
      continue;
    }
    // Ids delivered here already (the common case) need nothing of the handler,
    // but an announcement may show a much shorter path.
    unheld.length = 0;
    core.sortAnnounced(from, name, root, gids, rounds, unheld, switched);
    for (const k of unheld) {
      const id = gids[k];
      const e = { handler: name, id, round: rounds[k]!, root, stale: true };
      entries.push(e);
      try {
        const st = handlers.isStale(name, id);
        if (st instanceof Promise) {
          (pending ??= []).push(st.then((v) => void (e.stale = v), () => {}));
        } else e.stale = st;
      } catch {
        core.stats.malformed++;
      }
    }
  }
  const done = (): Received => {
    const sends = core.onIHave(from, batch, entries, now());
    return { sends: switched.length === 0 ? sends : [...switched, ...sends] };
  };
  return pending === undefined ? done() : Promise.all(pending).then(done);
}
