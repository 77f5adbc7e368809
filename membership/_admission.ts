// Admission of an authenticated incoming connection: who may connect, and
// the refusal (with its handshake code) for who may not. Module-private.

import type { Accepted, Refusal } from "./handshake.ts";
import type { Peers } from "./_peers.ts";
import type { NodeSpec } from "./spec.ts";
import type { MembershipStrategy } from "./strategy.ts";

/** What admission looks at. */
export interface AdmissionContext {
  readonly self: NodeSpec;
  readonly strategy: MembershipStrategy;
  readonly peers: Peers;
  readonly failureTimeoutMs: number;
  readonly membersMax: number;
  readonly now: number;
  isPartitioned(name: string): boolean;
}

/**
 * Undefined to admit `a` (whose process has id `instance`), else why not:
 * this node left; the name is this node's or a live node's; a partition; an
 * incarnation older than the cluster knows (or a same-incarnation impostor
 * while the known one is silent); a full view.
 */
export function admit(ctx: AdmissionContext, a: Accepted, instance: string): Refusal | undefined {
  const name = a.spec.name;
  const { strategy, peers } = ctx;
  if (!strategy.active) return { code: "left", reason: "this node has left the cluster" };
  if (name === ctx.self.name) {
    return { code: "name-in-use", reason: `this node is "${name}"`, owner: ctx.self.listenAddrs };
  }
  if (ctx.isPartitioned(name)) return { code: "partitioned", reason: "partitioned" };
  const known = strategy.entry(name);
  const peer = peers.peers.get(name);
  const live = peer !== undefined && peer.up && ctx.now - peer.lastHeard <= ctx.failureTimeoutMs;
  const knownInstance = peer?.instance ?? incomingInstance(peers, name);
  if (
    known?.status === "alive" && live && knownInstance !== undefined && knownInstance !== instance
  ) {
    return {
      code: "name-in-use",
      reason: `node name "${name}" is in use by a live node`,
      owner: known.spec.listenAddrs,
    };
  }
  if (known !== undefined) {
    const k = known.spec.incarnation, c = a.spec.incarnation;
    const otherProcess = knownInstance !== undefined && knownInstance !== instance;
    if (
      (known.status !== "alive" && k >= c) || (known.status === "alive" && k > c) ||
      (known.status === "alive" && k === c && !live &&
        (otherProcess || !sameSpec(known.spec, a.spec)))
    ) {
      return {
        code: "stale",
        reason: `stale incarnation ${c}: this cluster has "${name}" ${
          known.status === "alive" ? "at" : known.status + " at"
        } incarnation ${k}`,
        known: known.spec,
      };
    }
  } else if (strategy.members().length >= ctx.membersMax) {
    return { code: "full", reason: `membersMax (${ctx.membersMax}) reached` };
  }
  return undefined;
}

function incomingInstance(peers: Peers, name: string): string | undefined {
  for (const l of peers.incoming) if (l.peer === name && !l.closed) return l.instance;
  return undefined;
}

function sameSpec(a: NodeSpec, b: NodeSpec): boolean {
  return JSON.stringify([a.listenAddrs, a.channels]) ===
    JSON.stringify([b.listenAddrs, b.channels]);
}
