// `deno task bench:broadcast`: one run, side by side, for 4, 8 and 16 nodes over
// TCP in one process: Plumtree, flooding (eager push to every member: the
// baseline) and the raw limit (the root writing the same frames straight to
// every node). Deliveries per second, RMR, p50/p99 delivery latency, ratios.

import { flooding, percentile, plumtree, raw, run, startCluster } from "./_broadcast_fixture.ts";

const COUNT = Number(Deno.env.get("BENCH_MESSAGES") ?? 3000);
const PAD = Number(Deno.env.get("BENCH_PAYLOAD") ?? 100);
console.log(
  `murmur broadcast comparison (${new Date().toISOString()}, Deno ${Deno.version.deno}): ` +
    `${COUNT} messages of ${PAD} B from one root, after a warm-up of 500`,
);
console.log(
  "\n| nodes | contender | deliveries/s | RMR | p50 latency | p99 latency | vs flooding | vs raw |",
);
console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const n of [4, 8, 16]) {
  const results: Record<string, { rate: number; rmr: number; p50: number; p99: number }> = {};
  for (const kind of ["raw", "flooding", "plumtree"] as const) {
    const nodes = kind === "raw" ? [] : await startCluster(n);
    const c = kind === "raw"
      ? await raw(n)
      : kind === "flooding"
      ? flooding(nodes)
      : await plumtree(nodes);
    await run(c, 500, PAD, 0); // warm-up (and, for Plumtree, the tree settles)
    const r = await run(c, COUNT, PAD, 1_000_000);
    results[kind] = {
      rate: (COUNT * (n - 1)) / (r.ms / 1000),
      rmr: r.payloads / (COUNT * (n - 1)) - 1,
      p50: percentile(r.latencies, 50),
      p99: percentile(r.latencies, 99),
    };
    await c.close();
    for (const x of nodes) await x.close();
  }
  for (const kind of ["raw", "flooding", "plumtree"]) {
    const x = results[kind]!;
    console.log(
      `| ${n} | ${kind} | ${Math.round(x.rate).toLocaleString("en-US")} | ${x.rmr.toFixed(3)} | ` +
        `${x.p50.toFixed(1)} ms | ${x.p99.toFixed(1)} ms | ${
          (x.rate / results.flooding!.rate).toFixed(2)
        }x | ` +
        `${(x.rate / results.raw!.rate).toFixed(2)}x |`,
    );
  }
}
console.log(
  "\nTargets (stable cluster, after warm-up): RMR <= 0.05; at 16 nodes Plumtree >= 2x flooding; Plumtree >= 0.3x raw.",
);
