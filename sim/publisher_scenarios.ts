/**
 * The simulator's publisher scenarios on HyParView: `presence` (every node
 * tracks 10 presences; how long until every view equals the truth) and
 * `presence-churn` (then 10% of the nodes crash and as many join over 30 s,
 * each joiner tracking 10 presences). Each measures `convergedMs` (virtual ms
 * from the last change until every live node's view equals the truth),
 * `staleEntries` (entries of dead nodes still shown at the end) and
 * `bytesPerNodePerSec` (every frame, membership included, per live node over
 * 20 idle seconds, 10 s after convergence). The same seed gives the same result,
 * but for `wallMs`.
 *
 * @example
 * ```ts
 * import { runPublisherScenario } from "@murmur/murmur/protocol";
 * const r = runPublisherScenario("presence", 50, 1);
 * console.log(r.staleEntries, r.convergedMs < 10_000); // 0 true
 * ```
 *
 * @module
 */

import { seededRandom } from "../base/clock.ts";
import type { ScenarioResult } from "./scenarios.ts";
import { Simulation } from "./simulation.ts";

/** Kinds of publisher scenario. */
export type PublisherScenarioKind = "presence" | "presence-churn";

/** A publisher scenario's outcome: the usual fields (see below) and its own. */
export interface PublisherScenarioResult extends ScenarioResult {
  /** Virtual ms from the last change until every live node's view equals the truth (-1: never). */
  convergedMs: number;
  /** The churn scenario: the same after the initial tracking. */
  convergedInitialMs?: number;
  /** Entries of dead nodes still shown, over every live node's view, at the end. */
  staleEntries: number;
  /** Bytes per live node per second over 20 idle seconds, every frame counted. */
  bytesPerNodePerSec: number;
}

/** Options of {@linkcode runPublisherScenario}. */
export interface PublisherScenarioOptions {
  /**
   * How many of the first nodes track presences (every node holds every
   * presence: at 10,000 nodes, all tracking would hold 10^9 entries). Joiners
   * in the churn always track.
   *
   * @default every node
   */
  trackers?: number;
}

/** Presences each tracking node tracks. */
const TRACKS = 10;
const JOIN_GAP_MS = 10;
const SETTLE_MS = 20_000;
/** Longest wait for convergence after the last change. */
const CONVERGE_MAX_MS = 60_000;
/** Resolution of the convergence measure. */
const STEP_MS = 100;
const IDLE_MS = 20_000;
/** Wait after convergence before the idle window. */
const QUIET_MS = 10_000;
/** The churn: this share of the nodes crash, as many join, over this long. */
const CHURN_SHARE = 0.1;
const CHURN_MS = 30_000;

/**
 * Runs a publisher scenario on `nodes` HyParView nodes with `seed`. In the
 * usual fields, `broadcasts` counts updates, `messages` publisher frames, and
 * `missed` the live nodes whose view differs from the truth at the end.
 */
export function runPublisherScenario(
  kind: PublisherScenarioKind,
  nodes: number,
  seed: number,
  options: PublisherScenarioOptions = {},
): PublisherScenarioResult {
  const trackers = options.trackers ?? nodes;
  if (!Number.isInteger(trackers) || trackers < 1 || trackers > nodes) {
    throw new RangeError(`trackers must be an integer from 1 to ${nodes}, got ${trackers}`);
  }
  const t0 = performance.now();
  const sim = new Simulation({ seed, strategy: "hyparview", publishers: {} });
  const rnd = seededRandom(seed * 31 + 11);
  let updates = 0;
  const track = (name: string) => {
    sim.publish(name, {
      add: Array.from({ length: TRACKS }, (_, k) => `${name}/${k}`),
      remove: [],
    });
    updates++;
  };
  for (let i = 0; i < nodes; i++) {
    sim.addNode();
    sim.runFor(JOIN_GAP_MS);
  }
  sim.runFor(SETTLE_MS);
  for (const name of sim.liveNodes().slice(0, trackers)) {
    track(name);
    sim.runFor(1);
  }
  const initial = converge(sim, sim.now - 1);
  let converged = initial;
  if (kind === "presence-churn") {
    const victims = Math.round(nodes * CHURN_SHARE);
    const gap = CHURN_MS / victims;
    for (let i = 0; i < victims; i++) {
      const live = sim.liveNodes();
      sim.kill([live[1 + Math.floor(rnd.next() * (live.length - 1))]!]);
      const joined = sim.addNode();
      sim.runFor(gap / 2);
      track(joined);
      sim.runFor(gap / 2);
    }
    converged = converge(sim, sim.now - gap / 2);
  }
  const { differing, stale } = sim.publisherState();
  // Idle: once what the last changes set off has died down.
  sim.runFor(QUIET_MS);
  const bytes0 = sim.counters.bytes;
  sim.measureBytes = true;
  sim.runFor(IDLE_MS);
  const live = sim.liveNodes().length;
  return {
    scenario: `${kind}-${nodes}${trackers < nodes ? `-t${trackers}` : ""}`,
    strategy: "hyparview",
    nodes,
    seed,
    broadcasts: updates,
    messages: sim.counters.publisherFrames,
    delivered: 0,
    missed: differing,
    rmr: 0,
    ldh: 0,
    ldhMax: 0,
    frames: sim.counters.frames,
    staleNeighbours: sim.staleNeighbours(),
    reliability3s: 1,
    connectedMs: 0,
    virtualMs: Math.round(sim.now),
    wallMs: Math.round(performance.now() - t0),
    convergedMs: converged,
    ...(kind === "presence-churn" ? { convergedInitialMs: initial } : {}),
    staleEntries: stale,
    bytesPerNodePerSec: Math.round((sim.counters.bytes - bytes0) / live / (IDLE_MS / 1000)),
  };
}

/**
 * Virtual ms from `since` (the last change) until every live node's view
 * equals the truth; -1 past `CONVERGE_MAX_MS`.
 */
function converge(sim: Simulation, since: number): number {
  for (let t = 0; t <= CONVERGE_MAX_MS; t += STEP_MS) {
    if (sim.publisherState().differing === 0) return Math.round(sim.now - since);
    sim.runFor(STEP_MS);
  }
  return -1;
}
