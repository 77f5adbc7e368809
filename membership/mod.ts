/**
 * Membership: nodes that find each other, authenticate, stay connected and
 * carry messages and calls between named endpoints, over pluggable transports.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * await using a = await Node.start({ name: "a", cookie: "secret" });
 * await using b = await Node.start({ name: "b", cookie: "secret" });
 * await b.join(a.spec);
 * console.log(a.members()); // [ "a", "b" ]
 * ```
 *
 * @module
 */

export * from "../base/clock.ts";
export * from "../base/logger.ts";
export * from "./options.ts";
export * from "./messaging.ts";
export * from "./strategy.ts";
export * from "./full_mesh.ts";
export * from "./hyparview.ts";
export * from "../base/errors.ts";
export * from "./errors.ts";
export * from "./transport.ts";
export * from "./tcp_transport.ts";
export * from "./memory_transport.ts";
export * from "../base/codec.ts";
export * from "./wire.ts";
export * from "./membership_state.ts";
export * from "./spec.ts";
export * from "./handshake.ts";
export * from "./node.ts";
export * from "./node_types.ts";
export * from "./transport_conformance.ts";
