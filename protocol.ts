/**
 * The protocol, for people who build shells or simulators: the node wire and
 * its handshake, the value codec, the membership CRDT, the membership
 * strategies as pure state machines with the one interpreter of their effects,
 * Plumtree's pure core with the one dispatch of its messages, the data
 * publishers' core over a partial view with its wire, and the simulator that
 * runs them for thousands of nodes in virtual time.
 *
 * @example The simulator: 20 HyParView nodes, one broadcast
 * ```ts
 * import { Simulation } from "@murmur/murmur/protocol";
 * const sim = new Simulation({ seed: 1, strategy: "hyparview" });
 * for (let i = 0; i < 20; i++) sim.addNode();
 * sim.runFor(10_000);
 * const id = sim.broadcast(sim.liveNodes()[0]!);
 * sim.runFor(5_000);
 * console.log(sim.report(id).missed); // 0
 * ```
 *
 * @module
 */

export {
  BIGINT_BYTES_MAX,
  checkSendable,
  DECODE_DEPTH_MAX,
  decodeValue,
  encodeForWire,
  encodeValue,
} from "./base/codec.ts";
export { isSchema, validate, type Validated } from "./base/schema.ts";
export {
  decodeMessage,
  ENDPOINT_NAME_BYTES_MAX,
  Tag,
  type WireMessage,
} from "./membership/wire.ts";
export {
  type Accepted,
  clientHandshake,
  DEFAULT_HANDSHAKE_FRAME_BYTES_MAX,
  type HandshakeConfig,
  INSTANCE_BYTES,
  PROTOCOL_VERSION,
  type Refusal,
  serverHandshake,
  type ServerHandshakeHooks,
  type ServerHello,
} from "./membership/handshake.ts";
export { type NodeSpec, validateSpec } from "./membership/spec.ts";
export {
  entriesForWire,
  initialState,
  type MemberEntry,
  members,
  type MembershipEvent,
  type MembershipState,
  step,
  type StepOptions,
  type StepResult,
  supersedes,
  type ValidatedEntries,
  validateEntries,
} from "./membership/membership_state.ts";
export {
  applyEffects,
  type EffectsHost,
  type MembershipStrategy,
  newStrategyStats,
  noEffects,
  type StrategyEffects,
  type StrategyStats,
} from "./membership/strategy.ts";
export { FullMesh, type FullMeshConfig } from "./membership/full_mesh.ts";
export { HyParView } from "./membership/hyparview.ts";
export {
  HPV,
  type HyParViewConfig,
  type HyParViewOptions,
} from "./membership/hyparview_options.ts";
export { PlumtreeCore, type PlumtreeCoreOptions } from "./broadcast/plumtree_core.ts";
export {
  type IHaveGroup,
  ihaveGroups,
  type PlumtreeMessage,
  type PlumtreeStats,
  PT,
  type Send,
} from "./broadcast/wire.ts";
export { idKey } from "./broadcast/_recent.ts";
export {
  type BroadcastMessage,
  parsePlumtreeMessage,
  type PlumtreeHandlers,
  type Received,
  receivePlumtree,
} from "./broadcast/dispatch.ts";
export {
  type ProbeAnswer,
  PublisherCore,
  type PublisherCoreOptions,
  type PublisherCoreStats,
  type PublisherEffects,
} from "./publisher/core.ts";
export {
  type AntiEntropy,
  type Body,
  BUCKETS,
  BYE_LIFE,
  type Entry,
  type FullItem,
  isAntiEntropy,
  isPushId,
  isPushPayload,
  type PushId,
  type PushKind,
  type PushPayload,
} from "./publisher/overlay_wire.ts";
export {
  type BroadcastReport,
  type CrashKind,
  type OverlayShape,
  Simulation,
  type SimulationCounters,
  type SimulationOptions,
} from "./sim/simulation.ts";
export {
  runScenario,
  type Scenario,
  scenario,
  type ScenarioKind,
  type ScenarioResult,
  standardScenarios,
} from "./sim/scenarios.ts";
export {
  type SimCore,
  type SimKeys,
  simKeysModule,
  type SimKeysUpdate,
  type SimPublisherOptions,
} from "./sim/_publishers.ts";
export {
  type PublisherScenarioKind,
  type PublisherScenarioOptions,
  type PublisherScenarioResult,
  runPublisherScenario,
} from "./sim/publisher_scenarios.ts";
export { type Clock, type Random, seededRandom, SimulatedClock } from "./base/clock.ts";
