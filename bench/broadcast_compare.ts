// `deno task bench:broadcast`: one run, side by side, for 4, 8 and 16 nodes over
// TCP in one process: Plumtree, flooding (eager push to every member) and the
// raw limit (bench/_raw.ts on plain sockets: the root encodes each message once
// with the fastest CBOR encoder (bench/_raw.ts) and writes the frames to every receiver's socket in coalesced
// 64 KiB writes; receivers read large chunks and decode). For each size:
//   - a short burst (BENCH_MESSAGES, default 2000) with window 256 (at most 256
//     messages sent and not yet delivered to every node),
//   - a sustained burst (BENCH_SUSTAINED, default 20000) with window 256,
//   - overload: the sustained burst without flow control (the root yields every
//     256 messages and may outrun the receivers; raw and Plumtree only),
//   - unloaded latency: 200 messages with window 1 (each after the previous
//     reached every node).
// Deliveries per second, RMR, p50/p99 delivery latency, lazy announcements
// dropped (Plumtree), ratios to flooding and to raw.
//
// The cost of metrics: run it again with every node's metrics on, exporting to
// a sink this process serves on the OTLP endpoint's port:
//   OTEL_DENO=true OTEL_EXPORTER_OTLP_PROTOCOL=http/json \
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_METRIC_EXPORT_INTERVAL=1000 \
//   BENCH_METRICS=1 deno task bench:broadcast
// (BENCH_METRICS=counters: counters and gauges only, no per-event histograms.)

import { flooding, percentile, plumtree, raw, run, startCluster } from "./_broadcast_fixture.ts";

const COUNT = Number(Deno.env.get("BENCH_MESSAGES") ?? 2000);
const SUSTAINED = Number(Deno.env.get("BENCH_SUSTAINED") ?? 20_000);
const PAD = Number(Deno.env.get("BENCH_PAYLOAD") ?? 100);
const SIZES = (Deno.env.get("BENCH_NODES") ?? "4,8,16").split(",").map(Number);
const METRICS = ["1", "counters"].includes(Deno.env.get("BENCH_METRICS") ?? "");
// With metrics on, a sink answers the exporter (it only counts requests).
let exports = 0;
const sink = METRICS
  ? Deno.serve({
    hostname: "127.0.0.1",
    port: Number(
      new URL(Deno.env.get("OTEL_EXPORTER_OTLP_ENDPOINT") ?? "http://127.0.0.1:4318").port,
    ),
    onListen() {},
  }, async (req) => {
    await req.arrayBuffer();
    exports++;
    return Response.json({});
  })
  : undefined;
console.log(
  `murmur broadcast comparison (${new Date().toISOString()}, Deno ${Deno.version.deno}): ` +
    `${PAD} B from one root after a warm-up of 500; short ${COUNT}, sustained ${SUSTAINED}` +
    (METRICS
      ? `; metrics ON (OpenTelemetry, every node; BENCH_METRICS=${Deno.env.get("BENCH_METRICS")})`
      : ""),
);
console.log(
  "\n| nodes | contender | burst | deliveries/s | RMR | p50 | p99 | lazy dropped | vs flooding | vs raw |",
);
console.log("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
type Row = { rate: number; rmr: number; p50: number; p99: number; dropped: number };
const kinds = ["raw", "flooding", "plumtree"] as const;
for (const n of SIZES) {
  const rows = new Map<string, Row>();
  let nextId = 0;
  for (const kind of kinds) {
    const nodes = kind === "raw" ? [] : await startCluster(n);
    const c = kind === "raw"
      ? await raw(n)
      : kind === "flooding"
      ? flooding(nodes)
      : await plumtree(nodes);
    await run(c, 500, PAD, nextId); // warm-up (and, for Plumtree, the tree settles)
    nextId += 500;
    const bursts: [string, number, number, boolean][] = [
      ["short", COUNT, 256, false],
      ["sustained", SUSTAINED, 256, false],
      ["window 1", 200, 1, false],
      ["overload", SUSTAINED, 256, true],
    ];
    for (const [burst, count, window, open] of bursts) {
      if ((burst === "sustained" || burst === "overload") && kind === "flooding") continue;
      const dropped0 = c.lazyDropped?.() ?? 0;
      const r = await run(c, count, PAD, nextId, window, Infinity, open);
      nextId += count;
      rows.set(`${kind}/${burst}`, {
        rate: (count * (n - 1)) / (r.ms / 1000),
        rmr: r.payloads / (count * (n - 1)) - 1,
        p50: percentile(r.latencies, 50),
        p99: percentile(r.latencies, 99),
        dropped: (c.lazyDropped?.() ?? 0) - dropped0,
      });
    }
    await c.close();
    for (const x of nodes) await x.close();
  }
  for (const [key, x] of rows) {
    const [kind, burst] = key.split("/") as [string, string];
    const flood = rows.get(`flooding/${burst}`);
    const base = rows.get(`raw/${burst}`)!;
    console.log(
      `| ${n} | ${kind} | ${burst} | ${Math.round(x.rate).toLocaleString("en-US")} | ${
        x.rmr.toFixed(3)
      } | ${x.p50.toFixed(1)} ms | ${x.p99.toFixed(1)} ms | ${
        kind === "plumtree" ? x.dropped : "-"
      } | ${flood ? (x.rate / flood.rate).toFixed(2) + "x" : "-"} | ${
        (x.rate / base.rate).toFixed(2)
      }x |`,
    );
  }
}
console.log(
  "\nTargets: RMR <= 0.05; Plumtree >= 0.5x raw at 8 and 16 nodes (short burst); sustained within 20% of short, lazy dropped 0 (overload is informational).",
);
if (sink) {
  await sink.shutdown();
  console.log(`metrics: ${exports} OTLP export requests received by the sink`);
}
