/**
 * Data publishers (OTP's `data_publisher`): replicated data where each node is
 * the single writer of its own part; process groups (`pg` parity) and
 * presence built on them.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { ProcessGroups } from "@murmur/murmur/publisher";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using pg = await ProcessGroups.start(node);
 * console.log(pg.whichGroups()); // []
 * ```
 *
 * @module
 */

export * from "./data_publisher.ts";
export * from "./process_groups.ts";
export * from "./presence.ts";
