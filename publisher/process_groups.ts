/**
 * Process groups (OTP `pg` parity), built as a data publisher module. Members
 * are endpoint names registered on their node; a member whose endpoint is
 * unregistered, or whose node goes down, leaves every group on its own, and no
 * empty group lingers in `whichGroups` (OTP issue 11360).
 *
 * @module
 */

import type { Node } from "../membership/node.ts";
import { DataPublisher, type DataPublisherOptions } from "./data_publisher.ts";
import type { Listener, PublisherModule } from "./module.ts";
import { type Endpoint, endpointName } from "../membership/endpoint.ts";

/** Members as given to `join` and `leave`: endpoint names or typed endpoints, one or several. */
export type MemberIds =
  | string
  | Endpoint<unknown, unknown>
  | readonly (string | Endpoint<unknown, unknown>)[];

function idsOf(ids: MemberIds): string[] {
  return typeof ids === "string"
    ? [ids]
    : Array.isArray(ids)
    ? ids.map((x) => endpointName(x as string | Endpoint<unknown, unknown>))
    : [endpointName(ids as Endpoint<unknown, unknown>)];
}

/** A member: an endpoint on a node. */
export interface Member {
  /** The node. */
  readonly node: string;
  /** The endpoint name on that node. */
  readonly id: string;
}

/**
 * This node's groups: group name to member ids (a member may join a group
 * several times). A `Map`, here and on the wire: group names are data, any
 * string (`"__proto__"` and `""` included).
 */
export type PgLocal = Map<string, string[]>;
/** An update: joins and leaves. */
export type PgUpdate = ["join" | "leave", string, string[]][];
/** The view: group to node to member ids. */
export interface PgView {
  /** This node's name. */
  readonly self: string;
  /** Group to node to member ids. */
  readonly groups: Map<string, Map<string, string[]>>;
}
/** A join or leave, as subscribers see it. */
export interface PgEvent {
  /** `"join"` or `"leave"`. */
  type: "join" | "leave";
  /** The group. */
  group: string;
  /** The members that joined or left. */
  members: Member[];
}
/** The whole scope (`null`) or one group (its name). */
export type PgSub = string | null;

/** Longest group name, in UTF-16 code units. */
export const GROUP_NAME_LENGTH_MAX = 1024;

function multisetDiff(a: readonly string[], b: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const x of b) counts.set(x, (counts.get(x) ?? 0) + 1);
  const out: string[] = [];
  for (const x of a) {
    const c = counts.get(x) ?? 0;
    if (c > 0) counts.set(x, c - 1);
    else out.push(x);
  }
  return out;
}

/** Checks an update's shape before anything is changed (the module is atomic). */
function checkUpdate(update: unknown): asserts update is PgUpdate {
  if (!Array.isArray(update)) throw new TypeError("a pg update is a list of operations");
  for (const op of update) {
    if (
      !Array.isArray(op) || op.length !== 3 || (op[0] !== "join" && op[0] !== "leave") ||
      typeof op[1] !== "string" || op[1].length > GROUP_NAME_LENGTH_MAX ||
      !Array.isArray(op[2]) || !op[2].every((id: unknown) => typeof id === "string")
    ) {
      throw new TypeError('a pg operation is ["join" | "leave", group, ids]');
    }
  }
}

/** The `pg` publisher module (version 1). Updates are checked before anything changes. */
export const pgModule: PublisherModule<PgLocal, PgUpdate, PgView, PgSub, unknown> = {
  version: () => 1,
  atomicUpdates: true,
  initLocalData: () => new Map(),
  initGlobalView: (_scope, options) => ({ self: String(options.node ?? ""), groups: new Map() }),
  dataDiff(oldData, newData) {
    const ops: PgUpdate = [];
    for (const g of new Set([...oldData.keys(), ...newData.keys()])) {
      const o = oldData.get(g) ?? [], n = newData.get(g) ?? [];
      const joined = multisetDiff(n, o), left = multisetDiff(o, n);
      if (left.length > 0) ops.push(["leave", g, left]);
      if (joined.length > 0) ops.push(["join", g, joined]);
    }
    return ops;
  },
  updateLocalData(update, data) {
    checkUpdate(update);
    if (!(data instanceof Map)) throw new TypeError("pg local data is a Map");
    // In place: the publisher owns this data (a copy per update would be O(n) each).
    for (const [op, g, ids] of update) {
      if (op === "join") {
        const list = data.get(g);
        if (list === undefined) data.set(g, [...ids]);
        else list.push(...ids);
      } else {
        const rest = multisetDiff(data.get(g) ?? [], ids);
        if (rest.length > 0) data.set(g, rest);
        else data.delete(g);
      }
    }
    return data;
  },
  updateGlobalViewAndNotify(node, update, subs, view) {
    checkUpdate(update);
    for (const [op, g, ids] of update) {
      if (ids.length === 0) continue;
      let byNode = view.groups.get(g);
      if (op === "join") {
        if (byNode === undefined) view.groups.set(g, byNode = new Map());
        const list = byNode.get(node);
        if (list === undefined) byNode.set(node, [...ids]);
        else list.push(...ids);
      } else {
        if (byNode === undefined) continue;
        const rest = multisetDiff(byNode.get(node) ?? [], ids);
        if (rest.length > 0) byNode.set(node, rest);
        else byNode.delete(node);
        if (byNode.size === 0) view.groups.delete(g); // no empty group lingers
      }
      const event: PgEvent = { type: op, group: g, members: ids.map((id) => ({ node, id })) };
      subs.notify(g, event);
      subs.notify(null, event);
    }
    return view;
  },
  newSubscription(sub, view) {
    return sub === null ? [...view.groups.keys()].sort() : membersOf(view, sub);
  },
  stopGlobalView() {},
  translateLocalData: (_mine, _peer, data) => data,
  translateUpdate: (_mine, _peer, update) => update,
  translateMessage(msg, view) {
    // A local endpoint went away: it leaves every group it is in.
    if (!Array.isArray(msg) || msg[0] !== "unregistered" || typeof msg[1] !== "string") {
      return { type: "drop", view };
    }
    const id = msg[1];
    const update: PgUpdate = [];
    for (const [g, byNode] of view.groups) {
      const mine = (byNode.get(view.self) ?? []).filter((m) => m === id);
      if (mine.length > 0) update.push(["leave", g, mine]);
    }
    return update.length > 0 ? { type: "update", update, view } : { type: "drop", view };
  },
};

function membersOf(view: PgView, group: string): Member[] {
  const out: Member[] = [];
  for (const [node, ids] of view.groups.get(group) ?? []) {
    for (const id of ids) out.push({ node, id });
  }
  return out.sort((
    a,
    b,
  ) => (a.node < b.node ? -1 : a.node > b.node ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function checkGroup(group: unknown): asserts group is string {
  if (typeof group !== "string" || group.length > GROUP_NAME_LENGTH_MAX) {
    throw new TypeError(
      `a group name is a string of at most ${GROUP_NAME_LENGTH_MAX} characters (any string: "" too)`,
    );
  }
}

/**
 * Process groups of one scope on one node.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { ProcessGroups } from "@murmur/murmur/publisher";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using pg = await ProcessGroups.start(node, "chat");
 * node.register("worker-1", () => "hi");
 * await pg.join("workers", "worker-1");
 * console.log(pg.getMembers("workers")); // [ { node: "a", id: "worker-1" } ]
 * ```
 */
export class ProcessGroups implements AsyncDisposable {
  readonly #node: Node;
  readonly #pub: DataPublisher<PgLocal, PgUpdate, PgView, PgSub, unknown>;
  readonly #off: () => void;

  private constructor(node: Node, pub: DataPublisher<PgLocal, PgUpdate, PgView, PgSub, unknown>) {
    this.#node = node;
    this.#pub = pub;
    this.#off = node.onUnregister((id) => pub.message(["unregistered", id]));
  }

  /**
   * Starts the groups of `scope` on `node`.
   *
   * @default `"pg"`
   */
  static async start(
    node: Node,
    scope = "pg",
    options: DataPublisherOptions = {},
  ): Promise<ProcessGroups> {
    const pub = await DataPublisher.start(node, scope, pgModule, {
      ...options,
      moduleOptions: { ...options.moduleOptions, node: node.name },
    });
    return new ProcessGroups(node, pub);
  }

  /** The underlying publisher. */
  get publisher(): DataPublisher<PgLocal, PgUpdate, PgView, PgSub, unknown> {
    return this.#pub;
  }

  /**
   * Joins members (endpoints registered on this node, by name or as typed
   * endpoints) to `group`. A member may join several times; it is then a
   * member that many times.
   *
   * @throws {TypeError} a member is not a registered endpoint of this node.
   */
  async join(group: string, ids: MemberIds): Promise<void> {
    checkGroup(group);
    const list = idsOf(ids);
    for (const id of list) {
      if (!this.#node.registered(id)) {
        throw new TypeError(`"${id}" is not an endpoint registered on this node`);
      }
    }
    if (list.length > 0) await this.#pub.update([["join", group, list]]);
  }

  /** Leaves `group` (once per listed id). Returns false when none of them was a member. */
  async leave(group: string, ids: MemberIds): Promise<boolean> {
    checkGroup(group);
    const list = idsOf(ids);
    const have = this.#pub.localData.get(group) ?? [];
    const leaving = multisetDiff(list, multisetDiff(list, have));
    if (leaving.length === 0) return false;
    await this.#pub.update([["leave", group, leaving]]);
    return true;
  }

  /** Every member of `group`, on every node, sorted. */
  getMembers(group: string): Member[] {
    return membersOf(this.#pub.view, group);
  }

  /** The members of `group` on this node. */
  getLocalMembers(group: string): string[] {
    return [...(this.#pub.localData.get(group) ?? [])].sort();
  }

  /** Every group with at least one member, sorted. */
  whichGroups(): string[] {
    return [...this.#pub.view.groups.keys()].sort();
  }

  /** The groups with a member on this node, sorted. */
  whichLocalGroups(): string[] {
    return [...this.#pub.localData.keys()].sort();
  }

  /** Follows every join and leave of the scope. Returns a reference and the current groups. */
  monitorScope(listener: (event: PgEvent) => void): { ref: number; groups: string[] } {
    const { ref, result } = this.#pub.subscribe(null, listener as Listener);
    return { ref, groups: result as string[] };
  }

  /** Follows the joins and leaves of one group. Returns a reference and its current members. */
  monitor(group: string, listener: (event: PgEvent) => void): { ref: number; members: Member[] } {
    checkGroup(group);
    const { ref, result } = this.#pub.subscribe(group, listener as Listener);
    return { ref, members: result as Member[] };
  }

  /** Stops following. */
  demonitor(ref: number): boolean {
    return this.#pub.unsubscribe(ref);
  }

  /** Stops: this node's members leave every group everywhere. */
  async close(): Promise<void> {
    this.#off();
    await this.#pub.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
