/**
 * For tests: the conformance suites every storage backend and transport must
 * pass, the in-process network with seeded latency, loss and partitions, and
 * the simulated clock that runs real nodes in virtual time.
 *
 * @example Real nodes on a simulated network, in virtual time
 * ```ts
 * import { Node } from "@murmur/murmur";
 * import { MemoryNetwork, SimulatedClock } from "@murmur/murmur/testing";
 * const clock = new SimulatedClock();
 * const net = new MemoryNetwork({ clock, seed: 1, latencyMs: [1, 5] });
 * const start = (name: string) =>
 *   Node.start({ name, cookie: "c", clock, transport: net.transport(name), listen: { hostname: name, port: 1 } });
 * const a = await start("a"), b = await start("b");
 * const joined = b.join(a.spec);
 * for (let i = 0; i < 100 && a.connectedMembers().length < 2; i++) await clock.advance(10);
 * await joined;
 * console.log(a.connectedMembers()); // [ "a", "b" ]
 * await a.close();
 * await b.close();
 * ```
 *
 * @module
 */

export { type StorageFixture, testStorage } from "./durable/conformance.ts";
export { testTransport, type TransportFixture } from "./membership/transport_conformance.ts";
export {
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryNetworkStats,
  MemoryTransport,
} from "./membership/memory_transport.ts";
export { seededRandom, SimulatedClock } from "./base/clock.ts";
