// `deno task bench:gossipsub` (on demand, not in CI): murmur's Plumtree against
// js-libp2p gossipsub, the peer users would otherwise pick, in one run, with the
// same nodes, payloads and window, at 4, 8 and 16 nodes in one process on
// 127.0.0.1. Prints deliveries/s, RMR and p50/p99 delivery latency for both.
//
// gossipsub is built as its users would: libp2p with TCP, Noise and Yamux,
// identify, and gossipsub with its defaults (mesh degree 6, flood publishing,
// 1 s heartbeat) except signing, which is off (StrictNoSign) as murmur does not
// sign either, and two per-host rules are lifted because all nodes share
// 127.0.0.1: the inbound connection rate limit, and the IP colocation penalty of
// the peer score (past 10 peers on one IP every peer scores below zero and no
// mesh forms: what left the 16-node meshes empty until 2026-11-22). Every node
// dials every node before it (a full mesh, as murmur's cluster;
// BENCH_GOSSIPSUB_DIALS=k dials only the k nearest); the run starts once every
// node has a mesh for the topic and two heartbeats passed. Message ids are the
// content's (each payload carries a unique id). RMR counts the messages carried
// by the RPCs each node receives (duplicates included), as Plumtree's counts
// payload messages sent. A run waits at most BENCH_DEADLINE_MS (20 s) for its
// deliveries; those still missing are reported (and the rate counts the
// deliveries made). Window 256 is flow control, as in bench:broadcast (at most
// 256 messages sent and not yet delivered everywhere); window 1 sends each
// message once the previous one is everywhere. murmur: bench/_broadcast_fixture.ts's
// cluster (the same one bench:broadcast uses). Both get a warm-up of 500 messages.

import { createLibp2p, type Libp2p } from "npm:libp2p@3.3.11";
import { tcp } from "npm:@libp2p/tcp@11.0.28";
import { noise } from "npm:@chainsafe/libp2p-noise@17.0.0";
import { yamux } from "npm:@chainsafe/libp2p-yamux@8.0.1";
import { gossipsub } from "npm:@libp2p/gossipsub@17.1.1";
import { identify } from "npm:@libp2p/identify@4.1.14";
import {
  type Contender,
  DeliveryLog,
  percentile,
  plumtree,
  run,
  startCluster,
} from "./_broadcast_fixture.ts";

// libp2p's own background dials (after identify) can lose a race with an inbound
// connection and reject with no one awaiting (EPIPE in Noise): count them, go on.
let strayRejections = 0;
addEventListener("unhandledrejection", (e) => {
  if ((e.reason as Error)?.name === "EncryptionFailedError") {
    strayRejections++;
    e.preventDefault();
  }
});

const COUNT = Number(Deno.env.get("BENCH_MESSAGES") ?? 2000);
const PAD = Number(Deno.env.get("BENCH_PAYLOAD") ?? 100);
const SIZES = (Deno.env.get("BENCH_NODES") ?? "4,8,16").split(",").map(Number);
const TOPIC = "bench";
/** Each node dials this many nodes before it (default all: a full mesh, as murmur's cluster). */
const DIALS = Number(Deno.env.get("BENCH_GOSSIPSUB_DIALS") ?? Infinity);
/** A run waits this long at most for deliveries that may never come (gossipsub can lose some). */
const DEADLINE_MS = Number(Deno.env.get("BENCH_DEADLINE_MS") ?? 20_000);

// deno-lint-ignore no-explicit-any
type Pubsub = any;
// deno-lint-ignore no-explicit-any
type Node2p = Libp2p<{ pubsub: Pubsub; identify: any }>;

async function libp2pNode(): Promise<Node2p> {
  return await createLibp2p({
    addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
    // Every node is on 127.0.0.1: lift the per-host inbound rate limit (5 a second by
    // default), which would otherwise refuse most of a cluster's dials.
    connectionManager: { inboundConnectionThreshold: 10_000, maxIncomingPendingConnections: 100 },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      pubsub: gossipsub({
        globalSignaturePolicy: "StrictNoSign",
        emitSelf: false,
        // Every node is on 127.0.0.1: without this, past 10 peers on one IP (more than 11
        // nodes) gossipsub's score penalises each of them below zero and grafts none.
        scoreParams: { IPColocationFactorWeight: 0 },
      }),
    },
  }) as Node2p;
}

/** n gossipsub nodes, subscribed, meshed; a Contender for bench/_broadcast_fixture.ts's run(). */
async function gossipsubCluster(n: number): Promise<Contender> {
  const nodes: Node2p[] = [];
  for (let i = 0; i < n; i++) nodes.push(await libp2pNode());
  const logs = nodes.map(() => new DeliveryLog());
  let received = 0;
  nodes.forEach((node, i) => {
    const ps = node.services.pubsub;
    // Count every message each RPC carries, duplicates included (for RMR).
    const orig = ps.handleReceivedRpc.bind(ps);
    ps.handleReceivedRpc = (from: unknown, rpc: { messages?: unknown[] }) => {
      received += rpc.messages?.length ?? 0;
      return orig(from, rpc);
    };
    ps.addEventListener("message", (e: { detail: { data: Uint8Array } }) => {
      const d = e.detail.data;
      const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
      logs[i]!.merge(v.getFloat64(0), [v.getFloat64(8), d.subarray(16)]);
    });
    ps.subscribe(TOPIC);
  });
  for (let i = 1; i < n; i++) {
    // Each node dials up to DIALS earlier nodes (the nearest ones).
    for (let j = Math.max(0, i - DIALS); j < i; j++) {
      // A dial can lose a race with the peer's own (EPIPE in Noise): bounded retries.
      for (let attempt = 1;; attempt++) {
        try {
          if (nodes[i]!.getConnections().some((c) => c.remotePeer.equals(nodes[j]!.peerId))) break;
          await nodes[i]!.dial(nodes[j]!.getMultiaddrs()[0]!, {
            signal: AbortSignal.timeout(5000),
          });
          break;
        } catch (e) {
          if (attempt >= 5) {
            console.log(`(gossipsub: node ${i} could not dial node ${j}: ${(e as Error).message})`);
            break;
          }
          await new Promise((r) => setTimeout(r, 50 * attempt));
        }
      }
    }
  }
  // Bounded wait for every node's mesh, then two heartbeats.
  const ready = () =>
    nodes[0]!.services.pubsub.getSubscribers(TOPIC).length === Math.min(n - 1, DIALS) &&
    nodes.every((x) => x.services.pubsub.getMeshPeers(TOPIC).length > 0);
  for (let t = 0; t < 600 && !ready(); t++) await new Promise((r) => setTimeout(r, 50));
  if (!ready()) {
    console.log(
      `(gossipsub at ${n} nodes not ready after 30 s: the root has ${
        nodes[0]!.getConnections().length
      } connections, ${nodes[0]!.services.pubsub.getSubscribers(TOPIC).length} subscribers; ` +
        `mesh sizes ${nodes.map((x) => x.services.pubsub.getMeshPeers(TOPIC).length).join(",")})`,
    );
  }
  await new Promise((r) => setTimeout(r, 2000));
  return {
    logs,
    send: async (m) => {
      const data = new Uint8Array(16 + m.pad.length);
      const v = new DataView(data.buffer);
      v.setFloat64(0, m.id);
      v.setFloat64(8, m.sentAt);
      data.set(m.pad, 16);
      logs[0]!.merge(m.id, [m.sentAt, m.pad]); // the publisher has it (emitSelf is off)
      await nodes[0]!.services.pubsub.publish(TOPIC, data);
    },
    payloads: () => received,
    close: async () => {
      for (const x of nodes) await x.stop();
    },
  };
}

console.log(
  `murmur Plumtree vs js-libp2p gossipsub (${
    new Date().toISOString()
  }, Deno ${Deno.version.deno}): ` +
    `${COUNT} messages of ${PAD} B from one root with window 256 (flow control), 200 with window 1`,
);
console.log(
  "\n| nodes | contender | window | deliveries/s | missed | RMR | p50 | p99 | Plumtree vs gossipsub |",
);
console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const n of SIZES) {
  const rows: Record<
    string,
    { rate: number; rmr: number; p50: number; p99: number; missing: number }
  > = {};
  for (const kind of ["gossipsub", "plumtree"] as const) {
    const nodes = kind === "plumtree" ? await startCluster(n) : [];
    const c = kind === "plumtree" ? await plumtree(nodes) : await gossipsubCluster(n);
    let id = 0;
    await run(c, 500, PAD, id, 256, DEADLINE_MS); // warm-up (Plumtree's tree settles, as in bench:broadcast)
    id += 500;
    for (const [count, window] of [[COUNT, 256], [200, 1]] as const) {
      // Flow control (at most `window` messages not yet everywhere), as bench:broadcast: open
      // loop, gossipsub at 16 nodes fell so far behind that libp2p's connection monitor
      // aborted every connection of the root.
      const r = await run(c, count, PAD, id, window, DEADLINE_MS);
      id += count;
      rows[`${kind}/${window}`] = {
        missing: r.missing,
        rate: (count * (n - 1) - r.missing) / (r.ms / 1000),
        rmr: r.payloads / (count * (n - 1)) - 1,
        p50: percentile(r.latencies, 50),
        p99: percentile(r.latencies, 99),
      };
    }
    await c.close();
    for (const x of nodes) await x.close();
  }
  for (const window of [256, 1]) {
    for (const kind of ["gossipsub", "plumtree"]) {
      const x = rows[`${kind}/${window}`]!;
      const g = rows[`gossipsub/${window}`]!;
      console.log(
        `| ${n} | ${kind} | ${window} | ${
          Math.round(x.rate).toLocaleString("en-US")
        } | ${x.missing} | ${x.rmr.toFixed(3)} | ${x.p50.toFixed(1)} ms | ${
          x.p99.toFixed(1)
        } ms | ${kind === "plumtree" ? (x.rate / g.rate).toFixed(1) + "x" : "-"} |`,
      );
    }
  }
}
console.log(
  `\nlibp2p background dials that failed (EPIPE in Noise) and were ignored: ${strayRejections}`,
);
console.log(
  "\nTargets: Plumtree >= 20x gossipsub deliveries/s at 16 nodes (window 256), RMR <= 0.05.",
);
