// deno bench: what metrics cost per call. `deno task bench` runs it with
// telemetry off (instrumentMetrics registers nothing: the same path as no
// metrics at all); under OTEL_DENO=true the third case records the histogram.
//   OTEL_DENO=true OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 deno bench -A bench/metrics_bench.ts
import { Node } from "../mod.ts";
import { instrumentMetrics } from "../metrics/mod.ts";

const quiet = () => {};
const a = await Node.start({ name: "a", cookie: "bench", logger: quiet });
const b = await Node.start({ name: "b", cookie: "bench", logger: quiet });
b.register("echo", (m) => m);
await a.join(b.spec);
const CALLS = 200;
const calls = async () => {
  for (let i = 0; i < CALLS; i++) await a.call("b", "echo", i);
};
// Warm up the connection and the JIT before the first case.
for (let i = 0; i < 20; i++) await calls();

Deno.bench(`${CALLS} calls over TCP, no metrics`, { group: "call", baseline: true }, calls);
const off = instrumentMetrics({ node: a });
Deno.bench(
  `${CALLS} calls over TCP, instrumentMetrics with telemetry ${off.enabled ? "ON" : "off"}`,
  { group: "call" },
  calls,
);
Deno.bench(`${CALLS} calls over TCP, with a call observer`, { group: "call" }, async () => {
  const stop = a.observeCalls(() => {});
  await calls();
  stop();
});
addEventListener("unload", () => {
  void off.close();
  void a.close();
  void b.close();
});
