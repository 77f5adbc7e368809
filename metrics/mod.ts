/**
 * OpenTelemetry metrics for a node and the parts running on it, through
 * `npm:@opentelemetry/api`: with Deno's built-in OpenTelemetry
 * (`OTEL_DENO=true`) they are exported over OTLP with no SDK to set up.
 *
 * Counters and gauges are observed from the parts' own counters when the
 * exporter collects (nothing is done per message); the two histograms (call
 * and delivery durations) are recorded per event only while telemetry is on.
 * With telemetry off, `instrumentMetrics` registers nothing.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { instrumentMetrics } from "@murmur/murmur/metrics";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using m = instrumentMetrics({ node });
 * console.log(typeof m.enabled); // boolean
 * ```
 *
 * @module
 */

import { type Attributes, metrics, type ObservableResult } from "@opentelemetry/api";
import {
  type DashboardParts,
  namedDurable,
  namedPublishers,
  publisherOf,
} from "../dashboard/parts.ts";
import type { DurableServerStatus } from "../durable/behaviour.ts";
import type { MemberState, NodeStats } from "../membership/node_types.ts";
import type { TimerId } from "../base/clock.ts";

/** Histogram bounds 1, 2.5, 5 × 10^e for e from `fromExp` to `toExp` (exact decimals). */
function steps125(fromExp: number, toExp: number): number[] {
  const out: number[] = [];
  for (let e = fromExp; e <= toExp; e++) {
    for (const m of ["1", "2.5", "5"]) out.push(Number(`${m}e${e}`));
  }
  return out;
}

/** The version reported as the instrumentation scope's. */
export const METRICS_SCOPE_VERSION = "0.1.0";

/**
 * Options of {@linkcode instrumentMetrics}. The meter comes from the global
 * provider: Deno's own under `OTEL_DENO=true`, or one an SDK registered with
 * `metrics.setGlobalMeterProvider`.
 */
export interface MetricsOptions {
  /**
   * How often durable servers' storage is read for queue length and dead letters.
   *
   * @default 10000
   */
  pollMs?: number;
  /**
   * Record the per-event histograms, call and delivery durations (default
   * true). Each record costs about 0.5 µs in Deno's exporter; without them
   * nothing is done per message, only at collection.
   */
  histograms?: boolean;
}

/** What {@linkcode instrumentMetrics} returns. */
export interface Metrics extends AsyncDisposable {
  /** False when telemetry was off: nothing was registered. */
  readonly enabled: boolean;
  /** Unregisters every callback and observer; resolves once no storage read is running. */
  close(): Promise<void>;
}

/** True when the global meter provider is a real one (not the API's no-op). */
function telemetryOn(): boolean {
  return metrics.getMeterProvider().constructor.name !== "NoopMeterProvider";
}

/** Distinct endpoints given their own attribute set in the call histogram; the rest share "other". */
const ATTR_SETS_MAX = 256;

const MEMBER_STATES: readonly MemberState[] = ["up", "down", "passive", "left", "removed"];

/**
 * Registers murmur's OpenTelemetry instruments for `parts` (a node and,
 * optionally, its Plumtree server, publishers and durable servers). Names and
 * attributes are listed in the README's metrics table; every data point
 * carries `murmur.node`.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { instrumentMetrics } from "@murmur/murmur/metrics";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * const m = instrumentMetrics({ node }, { pollMs: 5000 });
 * await m.close();
 * ```
 */
export function instrumentMetrics(parts: DashboardParts, options: MetricsOptions = {}): Metrics {
  if (typeof parts !== "object" || parts === null || typeof parts.node?.stats !== "function") {
    throw new TypeError(
      "instrumentMetrics needs { node } (a Node), and optionally plumtree, publishers, durable",
    );
  }
  const pollMs = options.pollMs ?? 10_000;
  if (typeof pollMs !== "number" || !(pollMs >= 100) || !Number.isFinite(pollMs)) {
    throw new RangeError(`metrics pollMs must be a number >= 100, got ${pollMs}`);
  }
  const histograms = options.histograms ?? true;
  if (typeof histograms !== "boolean") {
    throw new TypeError(`metrics histograms must be a boolean, got ${String(histograms)}`);
  }
  const off: (() => void)[] = [];
  let polling: Promise<void> = Promise.resolve();
  const close = async () => {
    for (const f of off.splice(0)) f();
    await polling;
  };
  if (!telemetryOn()) {
    return { enabled: false, close, [Symbol.asyncDispose]: close };
  }
  const meter = metrics.getMeter("murmur", METRICS_SCOPE_VERSION);
  const { node, plumtree } = parts;
  const base: Attributes = { "murmur.node": node.name };
  const at = (a: Attributes): Attributes => ({ ...base, ...a });
  // Values are doubles: Deno's exporter supports no other value type for these instruments.

  /** An observable instrument read at collection time; removed on close. */
  const observe = (
    kind: "counter" | "gauge",
    name: string,
    description: string,
    unit: string,
    fn: (r: ObservableResult) => void,
  ) => {
    const opts = { description, unit };
    const inst = kind === "counter"
      ? meter.createObservableCounter(name, opts)
      : meter.createObservableGauge(name, opts);
    const cb = (r: ObservableResult) => {
      try {
        fn(r);
      } catch { /* a closed part: nothing to report */ }
    };
    inst.addCallback(cb);
    off.push(() => inst.removeCallback(cb));
  };

  /**
   * One observable instrument reporting fields of one counters object read at
   * collection: each field under its own value of `attr` (or, without `attr`,
   * one field under the base attributes). Attribute sets are made once.
   */
  const observeFields = <S>(
    kind: "counter" | "gauge",
    name: string,
    description: string,
    unit: string,
    read: () => S,
    fields: readonly (readonly [keyof S & string, string])[],
    attr?: string,
  ) => {
    const sets = fields.map(([k, v]) =>
      [k, attr === undefined ? base : at({ [attr]: v })] as const
    );
    observe(kind, name, description, unit, (r) => {
      const s = read();
      for (const [k, a] of sets) r.observe(s[k] as number, a);
    });
  };

  // ---------------------------------------------------------------- the node
  const stats = () => node.stats();
  const dir = "network.io.direction";
  observeFields("counter", "murmur.node.frames", "Frames received and sent", "{frame}", stats, [
    ["framesIn", "receive"],
    ["framesOut", "transmit"],
  ], dir);
  observeFields("counter", "murmur.node.io", "Frame bytes received and sent", "By", stats, [
    ["bytesIn", "receive"],
    ["bytesOut", "transmit"],
  ], dir);
  const one = (
    kind: "counter" | "gauge",
    name: string,
    description: string,
    unit: string,
    field: keyof NodeStats & string,
  ) => observeFields(kind, name, description, unit, stats, [[field, ""]]);
  one(
    "counter",
    "murmur.node.send.drops",
    "Fire-and-forget sends dropped",
    "{message}",
    "sendDrops",
  );
  one(
    "counter",
    "murmur.node.retransmits",
    "Acknowledged messages retransmitted",
    "{message}",
    "retransmits",
  );
  one(
    "counter",
    "murmur.node.handshakes.refused",
    "Incoming handshakes refused",
    "{handshake}",
    "handshakesRefused",
  );
  one("gauge", "murmur.node.connections", "Open connections", "{connection}", "connections");
  one(
    "gauge",
    "murmur.node.connections.direct",
    "Direct connections to members that are not neighbours (HyParView)",
    "{connection}",
    "directConnections",
  );
  one("gauge", "murmur.node.queued", "Bytes waiting in send queues", "By", "queuedBytes");
  observe("gauge", "murmur.node.members", "View entries by state", "{member}", (r) => {
    const n = new Map<MemberState, number>(MEMBER_STATES.map((s) => [s, 0]));
    for (const m of node.memberInfo()) n.set(m.state, n.get(m.state)! + 1);
    for (const [state, v] of n) r.observe(v, at({ "murmur.member.state": state }));
  });

  const transitions = meter.createCounter("murmur.membership.transitions", {
    description: "Membership transitions seen by this node",
    unit: "{transition}",
  });
  const transition = (kind: string) => () =>
    transitions.add(1, at({ "murmur.membership.transition": kind }));
  off.push(node.onUp("*", transition("up")), node.onDown("*", transition("down")));
  off.push(node.onMemberChange((c) => transition(c.kind)()));

  const calls = meter.createHistogram("murmur.call.duration", {
    description: "Duration of calls made by this node, to the reply or the failure",
    unit: "s",
    advice: {
      explicitBucketBoundaries: steps125(-4, 0), // 100 µs .. 5 s
    },
  });
  // Attribute sets are made once per endpoint (at most ATTR_SETS_MAX, then one shared "other").
  const okAttrs = new Map<string, Attributes>();
  if (histograms) {
    off.push(node.observeCalls((c) => {
      if (c.error !== undefined) {
        const type = c.error instanceof Error ? c.error.name : "Error";
        calls.record(
          c.ms / 1000,
          at({ "rpc.system": "murmur", "rpc.method": c.endpoint, "error.type": type }),
        );
        return;
      }
      let a = okAttrs.get(c.endpoint);
      if (a === undefined) {
        a = at({
          "rpc.system": "murmur",
          "rpc.method": okAttrs.size < ATTR_SETS_MAX ? c.endpoint : "other",
        });
        if (okAttrs.size < ATTR_SETS_MAX) okAttrs.set(c.endpoint, a);
      }
      calls.record(c.ms / 1000, a);
    }));
  }

  // --------------------------------------------------------------- broadcast
  if (plumtree !== undefined) {
    const pt = () => plumtree.stats();
    observeFields("counter", "murmur.broadcast.sent", "Plumtree messages sent", "{message}", pt, [
      ["eager", "payload"],
      ["lazy", "announcement"],
      ["graft", "graft"],
      ["prune", "prune"],
    ], "murmur.broadcast.kind");
    observeFields(
      "counter",
      "murmur.broadcast.received",
      "Plumtree payloads received",
      "{message}",
      pt,
      [
        ["deliveries", "delivered"],
        ["duplicates", "duplicate"],
      ],
      "murmur.broadcast.outcome",
    );
    observeFields(
      "counter",
      "murmur.broadcast.dropped",
      "Plumtree entries dropped by a bound",
      "{message}",
      pt,
      [
        ["lazyDropped", "lazy_outstanding"],
        ["missingDropped", "missing"],
        ["inboxDropped", "inbox"],
        ["graftGaveUp", "graft_gave_up"],
        ["malformed", "malformed"],
      ],
      "murmur.broadcast.reason",
    );
    const delivery = meter.createHistogram("murmur.broadcast.delivery.duration", {
      description: "From a new payload's arrival at this node to the end of its handler's merge",
      unit: "s",
      advice: {
        explicitBucketBoundaries: [...steps125(-5, -2), 0.1, 0.25, 1], // 10 µs .. 1 s
      },
    });
    const handlerAttrs = new Map<string, Attributes>();
    if (histograms) {
      off.push(plumtree.observeDeliveries((d) => {
        let a = handlerAttrs.get(d.handler);
        if (a === undefined) {
          handlerAttrs.set(d.handler, a = at({ "murmur.broadcast.handler": d.handler }));
        }
        delivery.record(d.ms / 1000, a);
      }));
    }
  }

  // -------------------------------------------------------------- publishers
  const pubs = namedPublishers(parts);
  if (pubs.length > 0) {
    observe("counter", "murmur.publisher.updates", "Publisher updates applied", "{update}", (r) => {
      for (const [name, p] of pubs) {
        const s = publisherOf(p).stats();
        r.observe(
          s.localUpdates,
          at({ "murmur.publisher": name, "murmur.publisher.origin": "local" }),
        );
        r.observe(
          s.remoteUpdates,
          at({ "murmur.publisher": name, "murmur.publisher.origin": "remote" }),
        );
      }
    });
  }

  // ----------------------------------------------------------------- durable
  const servers = namedDurable(parts);
  if (servers.length > 0) {
    const counter = (
      name: string,
      description: string,
      key: "commits" | "conflicts" | "failures" | "timeouts" | "deadLettered",
    ) =>
      observe("counter", name, description, "{message}", (r) => {
        for (const [server, d] of servers) {
          r.observe(d.stats()[key], at({ "murmur.durable.server": server }));
        }
      });
    counter("murmur.durable.commits", "Commits by this handle", "commits");
    counter(
      "murmur.durable.conflicts",
      "Commits that lost a conflict and were retried",
      "conflicts",
    );
    counter("murmur.durable.retries", "Failed attempts (retried until maxAttempts)", "failures");
    counter("murmur.durable.timeouts", "Callbacks abandoned after callbackTimeoutMs", "timeouts");
    counter(
      "murmur.durable.dead_lettered",
      "Messages moved to the dead-letter queue",
      "deadLettered",
    );
    // Queue length and dead letters live in storage: read every pollMs, reported as last read.
    const last = new Map<string, DurableServerStatus>();
    let stopped = false;
    let timer: TimerId | undefined;
    const poll = async () => {
      for (const [name, d] of servers) {
        try {
          last.set(name, await d.status());
        } catch {
          last.delete(name); // a stopped server or storage: no point rather than a stale one
        }
      }
      if (!stopped) timer = node.clock.setTimeout(() => polling = poll(), pollMs);
    };
    polling = poll();
    off.push(() => {
      stopped = true;
      if (timer !== undefined) node.clock.clearTimeout(timer);
    });
    observe(
      "gauge",
      "murmur.durable.queue.length",
      "Messages waiting in the durable queue",
      "{message}",
      (r) => {
        for (const [name, s] of last) {
          r.observe(s.queueLength, at({ "murmur.durable.server": name }));
        }
      },
    );
    observe(
      "gauge",
      "murmur.durable.dead_letters",
      "Messages in the dead-letter queue",
      "{message}",
      (r) => {
        for (const [name, s] of last) {
          r.observe(s.deadLetters, at({ "murmur.durable.server": name }));
        }
      },
    );
  }

  return { enabled: true, close, [Symbol.asyncDispose]: close };
}
