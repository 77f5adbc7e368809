/**
 * See a cluster: a live dashboard of a node (members, traffic, broadcast
 * trees, publishers, durable queues) served by `Deno.serve`, and the JSON
 * snapshot behind it.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { serveDashboard } from "@murmur/murmur/dashboard";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using dash = await serveDashboard({ node }, { hostname: "127.0.0.1", port: 0 });
 * console.log(dash.url.startsWith("http://127.0.0.1:")); // true
 * ```
 *
 * @module
 */

export { type Dashboard, type DashboardOptions, serveDashboard } from "./server.ts";
export { ControlApi, type ControlOptions, MONITORS_MAX } from "./control.ts";
export {
  type ClusterState,
  gatherCluster,
  type GatherOptions,
  type NodeSummary,
  shareSummary,
  summary,
  SUMMARY_ENDPOINT,
} from "./cluster.ts";
export {
  type DashboardRates,
  type DashboardState,
  type DurableState,
  type PublisherState,
  RateHistory,
  snapshot,
  type SnapshotLimits,
} from "./state.ts";
export { type DashboardParts, jsonSafe, type ShownDurable, type ShownPublisher } from "./parts.ts";
