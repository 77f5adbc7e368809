// SWIM on a node: the host of membership/_swim.ts over the node's peers and
// links. Module-private: the node core builds it for the full mesh.

import { encodeValue } from "../base/codec.ts";
import type { Clock, TimerId } from "../base/clock.ts";
import { Tag } from "./wire.ts";
import type { Peers } from "./_peers.ts";
import type { Endpoints } from "./_endpoints.ts";
import type { NodeConfig } from "./_config.ts";
import type { NodeStats } from "./node_types.ts";
import { Swim, SWIM_ENDPOINT, type SwimMessage, type SwimStats } from "./_swim.ts";

/** SWIM's counters under their `NodeStats` names (zeros without SWIM). */
export function swimStats(
  s: SwimStats | undefined,
): Pick<
  NodeStats,
  | "probes"
  | "indirectProbes"
  | "suspicions"
  | "suspicionsCleared"
  | "suspicionDowns"
  | "suspicionsRefuted"
> {
  return {
    probes: s?.probes ?? 0,
    indirectProbes: s?.indirect ?? 0,
    suspicions: s?.suspected ?? 0,
    suspicionsCleared: s?.cleared ?? 0,
    suspicionDowns: s?.downs ?? 0,
    suspicionsRefuted: s?.refuted ?? 0,
  };
}

/** A node's SWIM failure detector, with the timers it armed. */
export class NodeSwim {
  readonly swim: Swim;
  readonly #timers = new Set<TimerId>();
  readonly #clock: Clock;

  constructor(
    peers: Peers,
    endpoints: Endpoints,
    cfg: Pick<NodeConfig, "name" | "clock" | "random" | "pingIntervalMs" | "failureTimeoutMs">,
    isPartitioned: (name: string) => boolean,
  ) {
    this.#clock = cfg.clock;
    const deps = {
      self: cfg.name,
      clock: cfg.clock,
      random: cfg.random,
      isPartitioned,
      /** Marks a peer down (its links close) and schedules its reconnection. */
      down: (name: string, why: string) => {
        const p = peers.peers.get(name);
        if (p === undefined || !p.up) return;
        peers.markDown(p, why);
        peers.scheduleReconnect(p);
      },
    };
    const sendFrame = (name: string, frame: Uint8Array) => {
      const link = peers.control(name);
      if (link === undefined || deps.isPartitioned(name)) return;
      if (link.enqueueControl(frame)) peers.counters.framesOut++;
    };
    this.swim = new Swim(
      {
        self: deps.self,
        random: deps.random,
        up: () => {
          const out: string[] = [];
          for (const p of peers.peers.values()) if (p.up) out.push(p.name);
          return out;
        },
        lastHeard: (name) => {
          const p = peers.peers.get(name);
          return p?.up ? p.lastHeard : undefined;
        },
        partitioned: (name) => deps.isPartitioned(name),
        ping: (name) => sendFrame(name, encodeValue([Tag.Ping, Math.floor(deps.clock.now())])),
        send: (name, msg: SwimMessage) =>
          sendFrame(name, encodeValue([Tag.Msg, SWIM_ENDPOINT, msg])),
        down: (name, why) => deps.down(name, why),
        after: (ms, f) => {
          const id = deps.clock.setTimeout(() => {
            this.#timers.delete(id);
            f();
          }, ms);
          this.#timers.add(id);
          return () => {
            if (this.#timers.delete(id)) deps.clock.clearTimeout(id);
          };
        },
        watch: (name, heard) => peers.watch(name, heard),
      },
      cfg.pingIntervalMs,
      cfg.failureTimeoutMs,
    );
    endpoints.setInternal(SWIM_ENDPOINT, (msg, ctx) => {
      this.swim.receive(ctx.from, msg, deps.clock.now());
    });
  }

  /** Clears the timers SWIM armed. */
  close(): void {
    for (const id of this.#timers) this.#clock.clearTimeout(id);
    this.#timers.clear();
  }
}
