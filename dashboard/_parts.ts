// Walking a DashboardParts: the named publishers and durable servers, as the
// dashboard and the metrics both name them. Module-private.

import { Presence } from "../publisher/presence.ts";
import { ProcessGroups } from "../publisher/process_groups.ts";
import type { DataPublisher } from "../publisher/data_publisher.ts";
import type { DashboardParts, ShownDurable, ShownPublisher } from "./state.ts";

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
