// `deno task bench:publisher`: process groups over TCP, nodes in one process.
//  1. update propagation: p50 / p99 time for one join to reach every node (8 and 16 nodes);
//     updates per second from one node and from all nodes, until every node has them all;
//  2. scale: 100,000 members in 1,000 groups over 8 nodes; time for a restarted node
//     to receive the full view, and the view's memory per member.

import { encodeValue } from "../protocol.ts";
import { Node, type NodeOptions, type PgEvent, ProcessGroups } from "../mod.ts";

const quiet = () => {};
const opts: Partial<NodeOptions> = { logger: quiet, sendQueueBytesMax: 64 * 1024 * 1024 };

async function cluster(n: number, prefix = "n"): Promise<Node[]> {
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await Node.start({ name: `${prefix}${i}`, cookie: "bench", ...opts }));
  }
  await Promise.all(nodes.slice(1).map((x) => x.join(nodes[0]!.spec)));
  for (let i = 0; i < 4000 && !nodes.every((x) => x.connectedMembers().length === n); i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  return nodes;
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p / 100))]!;

async function propagation(
  n: number,
): Promise<{ p50: number; p99: number; one: number; all: number }> {
  const nodes = await cluster(n);
  const pgs = await Promise.all(nodes.map((x) => ProcessGroups.start(x, "bench")));
  for (const x of nodes) x.register("m", () => 0);
  // Every node counts joins it has seen.
  const seen = nodes.map(() => 0);
  const arrivals = new Map<string, number[]>();
  pgs.forEach((p, i) =>
    p.monitorScope((e: PgEvent) => {
      if (e.type !== "join") return;
      seen[i]!++;
      arrivals.get(e.group)?.push(performance.now());
    })
  );
  await new Promise((r) => setTimeout(r, 300)); // discovery done
  const waitAll = async (count: number) => {
    for (let i = 0; i < 100_000 && !seen.every((s) => s >= count); i++) {
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  // Latency: one join at a time from node 1.
  const lat: number[] = [];
  let total = 0;
  for (let k = 0; k < 200; k++) {
    const g = `lat${k}`;
    arrivals.set(g, []);
    const t0 = performance.now();
    await pgs[1]!.join(g, "m");
    total++;
    await waitAll(total);
    const ts = arrivals.get(g)!;
    lat.push(Math.max(...ts) - t0);
  }
  // Throughput from one node.
  const N1 = 5000;
  let t = performance.now();
  for (let k = 0; k < N1; k++) await pgs[0]!.join(`one${k}`, "m");
  total += N1;
  await waitAll(total);
  const one = N1 / ((performance.now() - t) / 1000);
  // Throughput from all nodes at once.
  const per = Math.floor(5000 / n);
  t = performance.now();
  await Promise.all(pgs.map(async (p, i) => {
    for (let k = 0; k < per; k++) await p.join(`all${i}.${k}`, "m");
  }));
  total += per * n;
  await waitAll(total);
  const all = (per * n) / ((performance.now() - t) / 1000);
  for (const p of pgs) await p.close();
  for (const x of nodes) await x.close();
  return { p50: pct(lat, 50), p99: pct(lat, 99), one, all };
}

async function scale(): Promise<{ restartMs: number; bytesPerMember: number; frameBytes: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap0 = Deno.memoryUsage().heapUsed;
  const nodes = await cluster(8, "s");
  let pgs = await Promise.all(nodes.map((x) => ProcessGroups.start(x, "scale")));
  // 100,000 members: each node registers 12,500 endpoints and spreads them over 1,000 groups.
  for (const [i, x] of nodes.entries()) {
    const ids: string[] = [];
    for (let k = 0; k < 12_500; k++) {
      const id = `m${i}.${k}`;
      x.register(id, () => 0);
      ids.push(id);
    }
    for (let g = 0; g < 1000; g++) {
      const mine = ids.slice(Math.floor(g * 12.5), Math.floor((g + 1) * 12.5));
      await pgs[i]!.join(`g${g}`, mine);
    }
  }
  const count = (p: ProcessGroups) =>
    p.whichGroups().reduce((a, g) => a + p.getMembers(g).length, 0);
  for (let i = 0; i < 60_000 && !pgs.every((p) => count(p) === 100_000); i += 50) {
    await new Promise((r) => setTimeout(r, 50));
  }
  gc?.();
  const heap1 = Deno.memoryUsage().heapUsed;
  // 8 views of 100,000 members each (plus 12,500 local entries and endpoints per node).
  const bytesPerMember = (heap1 - heap0) / (8 * 100_000);
  const frameBytes = encodeValue(pgs[0]!.publisher.localData).length;
  // Restart node 7: a new process would start empty and learn the full view.
  await pgs[7]!.close();
  await nodes[7]!.close();
  const t0 = performance.now();
  const again = await Node.start({ name: "s7", cookie: "bench", ...opts });
  await again.join(nodes[0]!.spec);
  const pg7 = await ProcessGroups.start(again, "scale");
  for (let i = 0; i < 120_000 && count(pg7) !== 87_500; i += 5) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const restartMs = performance.now() - t0;
  if (count(pg7) !== 87_500) throw new Error(`restarted node has ${count(pg7)} members`);
  pgs = [...pgs.slice(0, 7), pg7];
  for (const p of pgs) await p.close();
  for (const x of [...nodes.slice(0, 7), again]) await x.close();
  return { restartMs, bytesPerMember, frameBytes };
}

const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
console.log(`murmur publisher benchmark (${new Date().toISOString()}, Deno ${Deno.version.deno})`);
console.log(
  "\n| nodes | propagation p50 | p99 | updates/s from one node | updates/s from all nodes |",
);
console.log("| ---: | ---: | ---: | ---: | ---: |");
for (const n of [8, 16]) {
  const r = await propagation(n);
  console.log(
    `| ${n} | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${fmt(r.one)} | ${fmt(r.all)} |`,
  );
}
const s = await scale();
console.log("\n| 100,000 members in 1,000 groups over 8 nodes | |");
console.log("| --- | ---: |");
console.log(
  `| a restarted node receives the full view (87,500 members of the 7 others) in | ${
    fmt(s.restartMs)
  } ms |`,
);
console.log(
  `| view memory per member (heap growth / (8 views x 100,000 members)) | ${
    fmt(s.bytesPerMember)
  } B |`,
);
console.log(`| one node's local data (12,500 members) as JSON | ${fmt(s.frameBytes)} B |`);
