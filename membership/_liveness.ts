// Liveness: a peer silent for `failureTimeoutMs` is down (its links close and
// it is reconnected with backoff); idle links get a ping every
// `pingIntervalMs`, so that silence means a failure, not an idle link.
// Module-private: Node runs it on its tick under HyParView (the full mesh
// runs SWIM instead: membership/_swim.ts).

import { encodeValue } from "../base/codec.ts";
import { Tag } from "./wire.ts";
import type { Peers } from "./_peers.ts";

/** Liveness: a silent peer is down; idle links get a ping. */
export function checkLiveness(peers: Peers, now: number): void {
  const { failureTimeoutMs, pingIntervalMs } = peers.cfg;
  for (const p of [...peers.peers.values()]) {
    if (!p.up) continue;
    if (now - p.lastHeard > failureTimeoutMs) {
      peers.markDown(p, `silent for ${Math.round(now - p.lastHeard)} ms`);
      peers.scheduleReconnect(p);
      continue;
    }
    if (peers.hooks.isPartitioned(p.name)) {
      peers.counters.partitionDrops++;
      continue;
    }
    for (const links of p.slots.values()) {
      for (const l of links) {
        if (now - l.lastSentAt >= pingIntervalMs) {
          l.lastSentAt = now;
          l.enqueueControl(encodeValue([Tag.Ping, Math.floor(now)]));
        }
      }
    }
  }
}
