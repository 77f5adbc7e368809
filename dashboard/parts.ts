/**
 * The parts of a process that a dashboard and the metrics show
 * ({@linkcode DashboardParts}), and how both name them: publishers by their
 * given name or scope, durable servers by their given name or tenant.
 *
 * @module
 */

import type { Node } from "../membership/node.ts";
import type { Plumtree } from "../broadcast/plumtree.ts";
import { Presence } from "../publisher/presence.ts";
import { ProcessGroups } from "../publisher/process_groups.ts";
import type { DataPublisher } from "../publisher/data_publisher.ts";
import type { DurableServer } from "../durable/server.ts";

/** A publisher a dashboard can show: process groups, presence, or any data publisher. */
// deno-lint-ignore no-explicit-any
export type ShownPublisher = ProcessGroups | Presence | DataPublisher<any, any, any, any, any>;

/** A durable server a dashboard can show. */
// deno-lint-ignore no-explicit-any
export type ShownDurable = DurableServer<any, any, any, any, any>;

/**
 * The parts of a process a dashboard (or the metrics) shows; all but `node`
 * optional. A dashboard reads these fields at each refresh, so parts set on
 * the object later show up; metrics register what is there when they start.
 */
export interface DashboardParts {
  /** The node. */
  node: Node;
  /** Its Plumtree server. */
  plumtree?: Plumtree;
  /** Publishers by name (the name is what the page shows), or a list shown by scope. */
  publishers?: Record<string, ShownPublisher> | readonly ShownPublisher[];
  /** Durable servers by name, or a list shown by tenant. */
  durable?: Record<string, ShownDurable> | readonly ShownDurable[];
}

/**
 * A `JSON.stringify` replacer for values CBOR allows and JSON does not:
 * bigints become `"12n"`, bytes `"bytes(N)"`.
 *
 * @example
 * ```ts
 * import { jsonSafe } from "@murmur/murmur/dashboard";
 * console.log(JSON.stringify({ n: 1n }, jsonSafe)); // {"n":"1n"}
 * ```
 */
export function jsonSafe(_key: string, v: unknown): unknown {
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  return v;
}

/** The data publisher under a shown publisher. */
// deno-lint-ignore no-explicit-any
export function publisherOf(p: ShownPublisher): DataPublisher<any, any, any, any, any> {
  return p instanceof ProcessGroups || p instanceof Presence ? p.publisher : p;
}

function named<T>(x: Record<string, T> | readonly T[] | undefined, name: (t: T) => string) {
  if (x === undefined) return [] as (readonly [string, T])[];
  if (Array.isArray(x)) return (x as readonly T[]).map((t) => [name(t), t] as const);
  return Object.entries(x as Record<string, T>);
}

/** The publishers with their names (given, or the scope). */
export function namedPublishers(parts: DashboardParts): (readonly [string, ShownPublisher])[] {
  return named(parts.publishers, (p) => publisherOf(p).scope);
}

/** The durable servers with their names (given, or the tenant as JSON). */
export function namedDurable(parts: DashboardParts): (readonly [string, ShownDurable])[] {
  return named(parts.durable, (d) => JSON.stringify(d.tenant, jsonSafe));
}
