/**
 * A deterministic simulator of murmur clusters: the real HyParView, full-mesh
 * and Plumtree cores for thousands of nodes in virtual time, with seeded
 * latency, loss, partitions and churn. `deno task sim` runs the standard
 * scenarios.
 *
 * @example
 * ```ts
 * import { runScenario, scenario } from "@murmur/murmur/sim";
 * console.log(runScenario(scenario("one", 20), 1).missed); // 0
 * ```
 *
 * @module
 */

export * from "./simulation.ts";
export * from "./scenarios.ts";
export type { HyParViewOptions, MembershipStrategy } from "../membership/mod.ts";
export type { PlumtreeCoreOptions } from "../broadcast/mod.ts";
