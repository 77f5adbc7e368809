// murmur's OpenTelemetry metrics, exported for real: a node runs under
// OTEL_DENO=true against an OTLP/HTTP (JSON) receiver started here, and the
// values that arrive are the work it did.

import assert from "node:assert/strict";
import { Node } from "../mod.ts";
import { instrumentMetrics } from "../metrics/mod.ts";
import { Plumtree } from "../mod.ts";
import { LogHandler } from "./_plumtree_fixture.ts";

interface Point {
  attributes: Record<string, unknown>;
  value: number | undefined;
  count: number | undefined;
  sum: number | undefined;
}

/** Flattens one OTLP/JSON metrics request into name -> data points. */
function points(body: unknown): Map<string, Point[]> {
  const out = new Map<string, Point[]>();
  // deno-lint-ignore no-explicit-any
  for (const rm of (body as any).resourceMetrics ?? []) {
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        const data = m.sum ?? m.gauge ?? m.histogram;
        const list: Point[] = [];
        for (const dp of data?.dataPoints ?? []) {
          const attributes: Record<string, unknown> = {};
          for (const a of dp.attributes ?? []) {
            attributes[a.key] = a.value.stringValue ?? a.value.intValue ?? a.value.boolValue;
          }
          const v = dp.asInt ?? dp.asDouble;
          list.push({
            attributes,
            value: v === undefined ? undefined : Number(v),
            count: dp.count === undefined ? undefined : Number(dp.count),
            sum: dp.sum === undefined ? undefined : Number(dp.sum),
          });
        }
        out.set(m.name, list);
      }
    }
  }
  return out;
}

const find = (ps: Point[] | undefined, attrs: Record<string, unknown> = {}) =>
  ps?.find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));

Deno.test("metrics: a node under OTEL_DENO=true exports murmur's counters and histograms over OTLP", async () => {
  let latest = new Map<string, Point[]>();
  let requests = 0;
  const changed = new EventTarget();
  await using receiver = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const body = await req.json();
      if (new URL(req.url).pathname === "/v1/metrics") {
        requests++;
        const got = points(body);
        if ([...got.keys()].some((k) => k.startsWith("murmur."))) {
          latest = got;
          changed.dispatchEvent(new Event("metrics"));
        }
      }
      return Response.json({});
    },
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-read",
      new URL("./_otel_child.ts", import.meta.url).pathname,
    ],
    env: {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.addr.port}`,
      OTEL_METRIC_EXPORT_INTERVAL: "200",
      OTEL_SERVICE_NAME: "murmur-metrics-test",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let done: Record<string, number | boolean> | undefined;
  try {
    let buf = "";
    for (let i = 0; i < 1000 && done === undefined; i++) {
      const { value, done: end } = await lines.read();
      if (end) break;
      buf += value;
      const m = buf.match(/^(\{"done".*\})$/m);
      if (m) done = JSON.parse(m[1]!).done;
    }
    assert.ok(done, "the child finished its work");
    assert.equal(done.enabled, true, "metrics are on under OTEL_DENO=true");

    // Wait (bounded) for an export that shows all of the work.
    const complete = () => {
      const calls = latest.get("murmur.call.duration");
      const total = (calls ?? []).reduce((n, p) => n + (p.count ?? 0), 0);
      const delivered = find(latest.get("murmur.broadcast.received"), {
        "murmur.broadcast.outcome": "delivered",
      })?.value;
      const queue = latest.get("murmur.durable.queue.length");
      return total === 6 && delivered === 3 && queue !== undefined;
    };
    const deadline = Date.now() + 15_000;
    while (!complete() && Date.now() < deadline) {
      await new Promise((r) => {
        const t = setTimeout(r, deadline - Date.now());
        changed.addEventListener("metrics", () => (clearTimeout(t), r(undefined)), { once: true });
      });
    }
    assert.ok(
      complete(),
      `metrics incomplete after 15 s (${requests} requests): ${[...latest.keys()].join(", ")}`,
    );

    const calls = latest.get("murmur.call.duration")!;
    const ok = find(calls, { "rpc.method": "echo", "murmur.node": "a" })!;
    assert.equal(ok.count, 5);
    assert.ok(ok.sum! > 0 && ok.sum! < 5, `5 calls took ${ok.sum} s`);
    const failed = find(calls, { "rpc.method": "nope" })!;
    assert.equal(failed.count, 1);
    assert.equal(failed.attributes["error.type"], "UnknownEndpointError");

    const frames = latest.get("murmur.node.frames")!;
    assert.ok(find(frames, { "network.io.direction": "receive" })!.value! > 0);
    assert.ok(find(frames, { "network.io.direction": "transmit" })!.value! >= 6);
    assert.ok(
      find(latest.get("murmur.node.io"), { "network.io.direction": "transmit" })!.value! > 0,
    );
    assert.equal(
      find(latest.get("murmur.node.members"), { "murmur.member.state": "up" })?.value,
      3,
    );
    assert.equal(
      find(latest.get("murmur.membership.transitions"), { "murmur.membership.transition": "up" })
        ?.value,
      1,
    );
    assert.equal(find(latest.get("murmur.node.send.drops"))?.value, 0);

    assert.equal(
      find(latest.get("murmur.broadcast.received"), { "murmur.broadcast.outcome": "delivered" })
        ?.value,
      3,
    );
    const delivery = latest.get("murmur.broadcast.delivery.duration")!;
    assert.equal(delivery.reduce((n, p) => n + p.count!, 0), 3);
    assert.equal(
      find(latest.get("murmur.publisher.updates"), { "murmur.publisher.origin": "local" })?.value,
      1,
    );
    const server = { "murmur.durable.server": "counter" };
    assert.equal(find(latest.get("murmur.durable.commits"), server)?.value, done.commits);
    assert.ok((done.commits as number) >= 2);
    assert.equal(find(latest.get("murmur.durable.conflicts"), server)?.value, 0);
    assert.equal(find(latest.get("murmur.durable.queue.length"), server)?.value, 0);
    assert.equal(find(latest.get("murmur.durable.dead_letters"), server)?.value, 0);
  } finally {
    await child.stdin.close().catch(() => {});
    await lines.cancel().catch(() => {});
    const status = await child.status;
    assert.equal(status.code, 0, "the child exits cleanly when its stdin closes");
  }
});

Deno.test("metrics: with telemetry off nothing is registered; bad options are refused by name", async () => {
  await using node = await Node.start({ name: "off", cookie: "c", logger: () => {} });
  await using m = instrumentMetrics({ node });
  assert.equal(m.enabled, false);
  assert.throws(() => instrumentMetrics({ node }, { pollMs: 1 }), RangeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => instrumentMetrics({} as any), /needs \{ node \}/);
});

/** A meter provider that keeps what is recorded, for tests in this process. */
function fakeProvider() {
  const records = new Map<string, number[]>();
  const callbacks = new Map<string, ((r: { observe(v: number, a?: unknown): void }) => void)[]>();
  const meter = {
    createHistogram: (name: string) => ({
      record: (v: number) => records.set(name, [...(records.get(name) ?? []), v]),
    }),
    createCounter: (name: string) => ({
      add: (v: number) => records.set(name, [...(records.get(name) ?? []), v]),
    }),
    createObservableCounter: (name: string) => observable(name),
    createObservableGauge: (name: string) => observable(name),
  };
  function observable(name: string) {
    return {
      addCallback: (cb: never) => callbacks.set(name, [...(callbacks.get(name) ?? []), cb]),
      removeCallback: (cb: never) =>
        callbacks.set(name, (callbacks.get(name) ?? []).filter((x) => x !== cb)),
    };
  }
  /** Runs the callbacks of `name` as a collection would; returns [value, attributes] pairs. */
  const collect = (name: string) => {
    const out: [number, Record<string, unknown>][] = [];
    for (const cb of callbacks.get(name) ?? []) {
      cb({ observe: (v, a) => out.push([v, (a ?? {}) as Record<string, unknown>]) });
    }
    return out;
  };
  return { provider: { getMeter: () => meter }, records, callbacks, collect };
}

Deno.test("metrics: histograms: false records no call or delivery duration; counters still read", async () => {
  const { metrics } = await import("@opentelemetry/api");
  const fake = fakeProvider();
  class FakeMeterProvider {
    getMeter() {
      return fake.provider.getMeter();
    }
  }
  assert.ok(metrics.setGlobalMeterProvider(new FakeMeterProvider() as never));
  try {
    await using a = await Node.start({ name: "a", cookie: "c", logger: () => {} });
    await using b = await Node.start({ name: "b", cookie: "c", logger: () => {} });
    await b.join(a.spec);
    a.register("echo", (m) => m);
    const ha = new LogHandler();
    await using pa = await Plumtree.start(a, { handlers: [ha] });
    await using pb = await Plumtree.start(b, { handlers: [new LogHandler()] });
    for (const histograms of [false, true]) {
      fake.records.clear();
      await using m = instrumentMetrics({ node: a, plumtree: pa }, { histograms });
      assert.equal(m.enabled, true);
      await a.call("a", "echo", 1);
      await pb.broadcast({ id: String(histograms), body: "x" }, "log");
      for (let i = 0; i < 300 && !ha.store.has(String(histograms)); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(ha.store.has(String(histograms)), "the broadcast reached a");
      assert.equal(fake.records.get("murmur.call.duration")?.length ?? 0, histograms ? 1 : 0);
      assert.equal(
        fake.records.get("murmur.broadcast.delivery.duration")?.length ?? 0,
        histograms ? 1 : 0,
      );
      const frames = fake.collect("murmur.node.frames");
      assert.deepEqual(frames.map(([, at]) => at["network.io.direction"]), ["receive", "transmit"]);
      assert.equal(fake.collect("murmur.node.connections")[0]?.[1]["murmur.node"], "a");
    }
    // Closed: every callback removed.
    assert.equal(fake.collect("murmur.node.frames").length, 0);
    assert.throws(() => instrumentMetrics({ node: a }, { histograms: "no" as never }), TypeError);
  } finally {
    metrics.disable();
  }
});
