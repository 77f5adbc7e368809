/**
 * murmur: clusters of Deno processes. Gossip membership over TCP, Plumtree
 * broadcast, replicated data publishers and durable servers.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur";
 * await using a = await Node.start({ name: "a", cookie: "secret" });
 * await using b = await Node.start({ name: "b", cookie: "secret" });
 * a.register("echo", (msg) => msg);
 * await b.join(a.spec);
 * console.log(await b.call("a", "echo", "hi")); // hi
 * ```
 *
 * @module
 */

export * from "./membership/mod.ts";
export * from "./broadcast/mod.ts";
export * from "./publisher/mod.ts";
export * from "./durable/mod.ts";
