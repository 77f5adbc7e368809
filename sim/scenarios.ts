/**
 * The simulator's scenarios: iroh-gossip's (20, 100 and 1,000 nodes; one
 * broadcaster, several, everyone) and fault scenarios (10% loss, 30% of the
 * nodes killed at once, a partition healed, continuous churn). Each returns
 * one {@linkcode ScenarioResult}; the same scenario and seed give the same
 * result, but for `wallMs`.
 *
 * @example
 * ```ts
 * import { runScenario, scenario } from "@murmur/murmur/protocol";
 * const r = runScenario(scenario("one", 20, "hyparview"), 1);
 * console.log(r.missed, r.delivered); // 0 1881
 * ```
 *
 * @module
 */

import { seededRandom } from "../base/clock.ts";
import { Simulation, type SimulationOptions } from "./simulation.ts";

/** Kinds of scenario. */
export type ScenarioKind =
  | "one"
  | "several"
  | "all"
  | "loss10"
  | "kill30"
  | "partition"
  | "churn"
  | "massjoin"
  | "crash"
  | "isolate"
  | "multi";

/** A scenario: what runs on how many nodes with which strategy. */
export interface Scenario {
  /** Its name in tables and JSON (`kind-nodes`). */
  name: string;
  /** What happens during the run. */
  kind: ScenarioKind;
  /** Nodes started. */
  nodes: number;
  /** Membership strategy of every node. */
  strategy: "hyparview" | "full-mesh";
  /**
   * `crash`: the fraction of the nodes whose process crashes at once;
   * `isolate`: the seconds the broadcaster is cut off.
   */
  amount?: number;
  /** Extra simulation options. */
  options?: Partial<SimulationOptions>;
}

/** One scenario's measured outcome. */
export interface ScenarioResult {
  /** The scenario's name. */
  scenario: string;
  /** Membership strategy. */
  strategy: string;
  /** Nodes started. */
  nodes: number;
  /** The seed of the run. */
  seed: number;
  /** Broadcasts counted (all but the first). */
  broadcasts: number;
  /** Payload frames of those broadcasts. */
  messages: number;
  /** Deliveries of those broadcasts (origins excluded). */
  delivered: number;
  /** Expected deliveries that did not happen, over every broadcast (the first included). */
  missed: number;
  /** Relative message redundancy: messages / delivered - 1. */
  rmr: number;
  /** Last delivery hop: the mean over broadcasts of the hop of each one's last delivery. */
  ldh: number;
  /** The largest last delivery hop. */
  ldhMax: number;
  /** Frames of every kind sent during the run. */
  frames: number;
  /** Plumtree neighbours without a working link at the end, all live nodes together. */
  staleNeighbours: number;
  /**
   * The lowest fraction of the live nodes a broadcast reached within 3 s, over
   * the broadcasts sent from 0.5 s after the scenario's disruption (the
   * failure, the isolation's end, the mass join) or over every counted
   * broadcast when there is none.
   */
  reliability3s: number;
  /**
   * Virtual ms from the disruption until the live nodes formed one component
   * with no active view two or more short of full (checked every 100 ms; see
   * `OverlayShape.short`); -1 when that never held during the run, 0
   * for scenarios without a disruption.
   */
  connectedMs: number;
  /** Virtual time the run covered. */
  virtualMs: number;
  /** Wall time the run took. */
  wallMs: number;
}

/** Gap between two nodes joining. */
const JOIN_GAP_MS = 10;
/** Time for the overlay to settle after the last join. */
const SETTLE_MS = 20_000;
/** Time for the last broadcasts to spread. */
const DRAIN_MS = 15_000;
/** Overlay checks while waiting for it to be whole again. */
const CHECK_MS = 100;
/** Mass join: time from the joins to the first broadcast. */
const MASSJOIN_SETTLE_MS = 10_000;
/** Isolation: gap between the broadcaster's broadcasts. */
const ISOLATED_GAP_MS = 500;
/** GossipMulti: time per round. */
const MULTI_ROUND_MS = 1_000;

/** Builds a scenario. */
export function scenario(
  kind: ScenarioKind,
  nodes: number,
  strategy: "hyparview" | "full-mesh" = "hyparview",
  amount?: number,
): Scenario {
  if (kind === "crash" || kind === "isolate") {
    const a = amount ?? (kind === "crash" ? 0.8 : 20);
    const label = kind === "crash" ? Math.round(a * 100) : a;
    return { name: `${kind}${label}-${nodes}`, kind, nodes, strategy, amount: a };
  }
  return { name: `${kind}-${nodes}`, kind, nodes, strategy };
}

/**
 * The full set `deno task sim` runs: iroh-gossip's scenarios on HyParView,
 * the fault scenarios on 1,000 nodes, and the full mesh on 20 and 100 nodes.
 */
export function standardScenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const n of [20, 100, 1000]) {
    for (const k of ["one", "several", "all"] as const) out.push(scenario(k, n));
  }
  for (const k of ["loss10", "kill30", "partition", "churn"] as const) out.push(scenario(k, 1000));
  for (const k of ["massjoin", "crash", "isolate"] as const) out.push(scenario(k, 1000));
  out.push(scenario("multi", 100));
  for (const n of [20, 100]) out.push(scenario("one", n, "full-mesh"));
  out.push(scenario("one", 256, "full-mesh"));
  return out;
}

/** Runs a scenario with one seed. */
export function runScenario(
  s: Scenario,
  seed: number,
  options: {
    /** Called after every `progressEvery` joins (for runs that take minutes). */
    progress?: ((joined: number, virtualMs: number, wallMs: number) => void) | undefined;
    /** @default 5000 */
    progressEvery?: number;
  } = {},
): ScenarioResult {
  const t0 = performance.now();
  const every = options.progressEvery ?? 5000;
  const sim = new Simulation({
    seed,
    strategy: s.strategy,
    ...(s.kind === "loss10" ? { loss: 0.1 } : {}),
    ...s.options,
  });
  const rnd = seededRandom(seed * 31 + 7);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd.next() * a.length)]!;
  // The disruption (failure, mass join, end of an isolation) and when the
  // overlay was whole again after it.
  let disruptedAt: number | undefined;
  let connectedAt = -1;
  const run = (ms: number) => {
    const end = sim.now + ms;
    while (disruptedAt !== undefined && connectedAt < 0 && sim.now < end) {
      sim.runUntil(Math.min(end, sim.now + CHECK_MS));
      const o = sim.overlay();
      if (o.components === 1 && o.isolated === 0 && o.short === 0) connectedAt = sim.now;
    }
    sim.runUntil(end);
  };
  const disrupt = () => {
    disruptedAt = sim.now;
    connectedAt = -1;
  };
  if (s.kind === "massjoin") {
    // Everyone joins one contact at the same instant (iroh-gossip's bootstrap).
    const contact = sim.addNode();
    sim.runFor(1_000);
    disrupt();
    for (let i = 1; i < s.nodes; i++) sim.addNode(contact);
    run(MASSJOIN_SETTLE_MS);
  } else {
    for (let i = 0; i < s.nodes; i++) {
      sim.addNode();
      sim.runFor(JOIN_GAP_MS);
      if ((i + 1) % every === 0) options.progress?.(i + 1, sim.now, performance.now() - t0);
    }
    sim.runFor(SETTLE_MS);
  }
  const ids: number[] = [];
  const gap = 100;
  let from = pick(sim.liveNodes());
  if (s.kind === "kill30") {
    const live = sim.liveNodes();
    const victims = new Set<string>();
    while (victims.size < Math.floor(live.length * 0.3)) victims.add(pick(live));
    sim.kill([...victims]);
    disrupt();
    // Broadcasts start once the failure detector has spoken (failureTimeoutMs, 5 s).
    run(5_000);
    from = pick(sim.liveNodes());
  } else if (s.kind === "crash") {
    // The broadcaster survives; `amount` of the others crash (process crashes).
    const others = sim.liveNodes().filter((n) => n !== from);
    const victims = new Set<string>();
    while (victims.size < Math.floor((others.length + 1) * s.amount!)) victims.add(pick(others));
    sim.kill([...victims], "process");
    disrupt();
  } else if (s.kind === "partition") {
    const live = sim.liveNodes();
    sim.partition(live.filter(() => rnd.next() < 0.5));
    sim.runFor(30_000);
    sim.heal();
    disrupt();
    run(30_000);
  }
  const broadcast = (from: string) => ids.push(sim.broadcast(from));
  const sentAt: number[] = [];
  const send = (from: string) => {
    sentAt.push(sim.now);
    broadcast(from);
  };
  if (s.kind === "several") {
    const live = sim.liveNodes();
    const senders = Array.from({ length: 10 }, () => pick(live));
    for (let i = 0; i < 100; i++) {
      send(senders[i % 10]!);
      run(gap);
    }
  } else if (s.kind === "all") {
    for (const n of sim.liveNodes()) {
      send(n);
      run(10);
    }
  } else if (s.kind === "churn") {
    // Every 500 ms one node crashes and a new one joins, during and after the broadcasts.
    let next = 0;
    for (let i = 0; i < 100; i++) {
      if (sim.now >= next) {
        next = sim.now + 500;
        const live = sim.liveNodes();
        sim.kill([pick(live.slice(1))]);
        sim.addNode();
      }
      send(sim.liveNodes()[0]!);
      run(gap);
    }
  } else if (s.kind === "isolate") {
    // The broadcaster is cut off from everyone for `amount` seconds and keeps
    // broadcasting, then for as long again after the partition heals.
    sim.partition([from]);
    const end = sim.now + s.amount! * 1000;
    while (sim.now < end) {
      send(from);
      run(ISOLATED_GAP_MS);
    }
    sim.heal();
    disrupt();
    for (let i = 0; i < 40; i++) {
      send(from);
      run(ISOLATED_GAP_MS);
    }
  } else if (s.kind === "multi") {
    // iroh-gossip's GossipMulti: each round a random node broadcasts once.
    for (let i = 0; i < 30; i++) {
      send(pick(sim.liveNodes()));
      run(MULTI_ROUND_MS);
    }
  } else {
    for (let i = 0; i < 100; i++) {
      send(from);
      run(gap);
    }
  }
  run(s.kind === "isolate" ? 2 * DRAIN_MS : DRAIN_MS);
  let messages = 0, delivered = 0, missed = 0, ldhSum = 0, ldhMax = 0, reliability = 1;
  // Every broadcast counts for `missed`; the first builds the tree, so the
  // cost figures (messages, RMR, LDH) count from the second on.
  const since = disruptedAt === undefined ? -Infinity : disruptedAt + 500;
  for (const [i, id] of ids.entries()) {
    const r = sim.report(id);
    missed += r.missed;
    if (sentAt[i]! >= since && (disruptedAt !== undefined || i > 0)) {
      reliability = Math.min(reliability, sim.reachedWithin(id, 3_000));
    }
    if (i === 0) continue;
    messages += r.payloads;
    delivered += r.delivered;
    ldhSum += r.ldh;
    ldhMax = Math.max(ldhMax, r.ldh);
  }
  const counted = Math.max(1, ids.length - 1);
  return {
    scenario: s.name,
    strategy: s.strategy,
    nodes: s.nodes,
    seed,
    broadcasts: ids.length - 1,
    messages,
    delivered,
    missed,
    rmr: delivered === 0 ? 0 : round(messages / delivered - 1, 4),
    ldh: round(ldhSum / counted, 2),
    ldhMax,
    frames: sim.counters.frames,
    staleNeighbours: sim.staleNeighbours(),
    reliability3s: round(reliability, 4),
    connectedMs: disruptedAt === undefined
      ? 0
      : connectedAt < 0
      ? -1
      : Math.round(connectedAt - disruptedAt),
    virtualMs: Math.round(sim.now),
    wallMs: Math.round(performance.now() - t0),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
