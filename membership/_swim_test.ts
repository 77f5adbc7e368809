import assert from "node:assert/strict";
import { seededRandom } from "../base/clock.ts";
import { INDIRECT_PENDING_MAX, Swim, type SwimHost, type SwimMessage } from "./_swim.ts";

/** A host over a fixed set of peers heard from at `heard`; records what SWIM does. */
function host(peers: string[]) {
  const heard = new Map(peers.map((p) => [p, 0]));
  const log = {
    pings: [] as string[],
    sent: [] as [string, SwimMessage][],
    downs: [] as string[],
    timers: [] as (() => void)[],
  };
  const h: SwimHost = {
    self: "me",
    random: seededRandom(1),
    up: () => [...heard.keys()],
    lastHeard: (n) => heard.get(n),
    partitioned: () => false,
    ping: (n) => void log.pings.push(n),
    send: (n, m) => void log.sent.push([n, m]),
    down: (n) => {
      log.downs.push(n);
      heard.delete(n);
    },
    after: (_ms, f) => {
      log.timers.push(f);
      return () => {};
    },
  };
  return { h, heard, log };
}

Deno.test("swim: malformed messages are ignored", () => {
  const { h, log } = host(["a", "b"]);
  const swim = new Swim(h, 1000, 5000);
  for (const m of [null, 3, [], [1], ["req"], ["req", 5], ["suspect", {}], ["nope", "a"]]) {
    swim.receive("a", m, 10);
  }
  assert.deepEqual(log.sent, []);
  assert.deepEqual(log.pings, []);
});

Deno.test("swim: requests to probe for others are bounded; a node refutes a suspicion once per probe timeout", () => {
  const { h, log } = host(["a", "b", "c"]);
  const swim = new Swim(h, 1000, 5000);
  for (let i = 0; i < INDIRECT_PENDING_MAX + 50; i++) swim.receive("a", ["req", "b"], 10_000);
  assert.equal(log.pings.length, INDIRECT_PENDING_MAX, "pings for others are bounded");
  for (let t = 0; t < 10; t++) swim.receive("a", ["suspect", "me"], 20_000 + t);
  assert.equal(swim.stats.refuted, 1);
  assert.deepEqual(log.sent.filter(([, m]) => m[0] === "alive").map(([n]) => n).sort(), [
    "a",
    "b",
    "c",
  ]);
  swim.receive("a", ["suspect", "me"], 20_000 + 400);
  assert.equal(swim.stats.refuted, 2, "again after the probe timeout (400 ms)");
});

Deno.test("swim: a suspicion cleared by a frame keeps the peer; one nothing clears makes it down after the timeout", () => {
  const { h, heard, log } = host(["a", "b", "c"]);
  const swim = new Swim(h, 1000, 5000);
  swim.receive("b", ["suspect", "a"], 10_000);
  swim.receive("b", ["suspect", "c"], 10_000);
  assert.deepEqual(swim.suspects().sort(), ["a", "c"]);
  for (let t = 11_000; t <= 15_000; t += 1000) {
    heard.set("a", t - 500); // a and b keep sending; c is silent
    heard.set("b", t - 500);
    swim.tick(t);
  }
  assert.deepEqual(log.downs, ["c"]);
  assert.equal(swim.stats.cleared, 1);
  assert.deepEqual(swim.suspects(), []);
});

Deno.test("swim: a probe's timeout is handed to the host's watch, which cancels it when the target is heard", () => {
  const { h, heard, log } = host(["a", "b"]);
  let cancelled = 0;
  let watched: [string, () => void] | undefined;
  h.after = (_ms, f) => {
    log.timers.push(f);
    return () => void cancelled++;
  };
  h.watch = (name, onHeard) => void (watched = [name, onHeard]);
  const swim = new Swim(h, 1000, 5000);
  heard.set("a", -5000); // not heard within the period: both are probed in turn
  heard.set("b", -5000);
  swim.tick(0);
  assert.equal(log.pings.length, 1);
  assert.equal(watched?.[0], log.pings[0], "the probe's target is watched");
  watched![1](); // its pong arrived
  assert.equal(cancelled, 1, "the timeout is cancelled");
});
