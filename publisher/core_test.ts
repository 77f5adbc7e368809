// The publisher core alone, driven by hand: pushes applied in sequence (early
// ones wait), anti-entropy that repairs a lost push and stays quiet once
// converged, deaths with grace, refutation, tombstones, epochs, versions and
// probes.

import assert from "node:assert/strict";
import { seededRandom } from "../base/clock.ts";
import { type ProbeAnswer, PublisherCore, type PublisherEffects } from "./core.ts";
import type { PublisherModule } from "./module.ts";

type Tags = string[];
type Upd = { add: string[]; remove: string[] };
type View = Map<string, Set<string>>;

function tags(version = 1): PublisherModule<Tags, Upd, View, string, null> {
  return {
    version: () => version,
    initLocalData: () => [],
    initGlobalView: () => new Map(),
    dataDiff: (o, n) => ({
      add: n.filter((t) => !o.includes(t)),
      remove: o.filter((t) => !n.includes(t)),
    }),
    updateLocalData: (u, d) => [
      ...d.filter((t) => !u.remove.includes(t)),
      ...u.add.filter((t) => !d.includes(t)),
    ],
    updateGlobalViewAndNotify: (node, u, subs, view) => {
      const set = view.get(node) ?? new Set();
      for (const t of u.remove) set.delete(t);
      for (const t of u.add) set.add(t);
      if (set.size > 0) view.set(node, set);
      else view.delete(node);
      subs.notify("changes", { node, ...u });
      return view;
    },
    newSubscription: () => null,
    stopGlobalView: () => {},
    // Version 2 writes tags in upper case for version 1.
    translateLocalData: (
      mine,
      peer,
      d,
    ) => (mine === 2 && peer === 1 ? d.map((t) => t.toUpperCase()) : d),
    translateUpdate: (mine, peer, u) =>
      mine === 2 && peer === 1
        ? { add: u.add.map((t) => t.toUpperCase()), remove: u.remove.map((t) => t.toUpperCase()) }
        : u,
  };
}

type Core = PublisherCore<Tags, Upd, View, string, null>;

/**
 * Cores wired by hand: broadcasts reach every other core at once (a reliable
 * overlay) unless dropped; sends go to their destination; all synchronous.
 */
class Harness {
  readonly cores = new Map<string, Core>();
  now = 0;
  /** Drops broadcasts to these nodes. */
  readonly deaf = new Set<string>();
  sent: { from: string; to: string; kind: string }[] = [];

  add(
    name: string,
    options: { version?: number; epoch?: number; downGraceMs?: number } = {},
  ): Core {
    const core: Core = new PublisherCore("s", tags(options.version ?? 1), {
      name,
      epoch: options.epoch ?? 1,
      random: seededRandom(name.length * 7 + 1),
      downGraceMs: options.downGraceMs ?? 0,
    });
    this.cores.set(name, core);
    return core;
  }

  link(a: string, b: string): void {
    this.run(a, this.cores.get(a)!.neighbourUp(b, this.now));
    this.run(b, this.cores.get(b)!.neighbourUp(a, this.now));
  }

  run(from: string, fx: PublisherEffects): void {
    for (const b of fx.broadcasts) {
      for (const [name, c] of this.cores) {
        if (name === from || this.deaf.has(name)) continue;
        this.run(name, c.receivePush(b.id, b.payload, this.now).effects);
      }
    }
    for (const s of fx.sends) {
      this.sent.push({ from, to: s.to, kind: s.msg[0] });
      const c = this.cores.get(s.to);
      if (c !== undefined) this.run(s.to, c.receive(from, s.msg, this.now));
    }
  }

  shows(name: string): string {
    return [...this.cores.get(name)!.view].map(([n, s]) => `${n}=${[...s].sort().join("+")}`)
      .sort().join(";");
  }
}

Deno.test("core: updates apply in sequence; an early one waits for the one before it", () => {
  const a = new PublisherCore("s", tags(), { name: "a", epoch: 1, random: seededRandom(1) });
  const b = new PublisherCore("s", tags(), { name: "b", epoch: 1, random: seededRandom(2) });
  const u1 = a.update({ add: ["x"], remove: [] }, 0).broadcasts[0]!;
  const u2 = a.update({ add: ["y"], remove: ["x"] }, 0).broadcasts[0]!;
  assert.equal(b.receivePush(u2.id, u2.payload, 0).isNew, true, "kept, to be passed on");
  assert.equal(b.view.size, 0, "not applied before #1");
  assert.equal(b.isStale(u2.id), true);
  assert.equal(b.receivePush(u1.id, u1.payload, 0).isNew, true);
  assert.deepEqual([...b.view.get("a")!], ["y"]);
  assert.equal(b.receivePush(u1.id, u1.payload, 0).isNew, false, "a duplicate");
  assert.deepEqual(b.graft(u2.id), { ok: u2.payload });
});

Deno.test("core: anti-entropy repairs a lost push, and converged neighbours exchange one digest and nothing else", () => {
  const h = new Harness();
  h.add("a");
  h.add("b");
  h.add("c");
  h.link("a", "b");
  h.link("b", "c");
  h.deaf.add("c");
  h.run("a", h.cores.get("a")!.update({ add: ["x"], remove: [] }, 0));
  h.deaf.clear();
  assert.equal(h.shows("c"), "", "c missed the push");
  h.sent = [];
  h.run("c", h.cores.get("c")!.tick(1000)); // c's one neighbour is b
  assert.equal(h.shows("c"), "a=x");
  // Digest, bucket hashes, c's entries, b's full data of a, b's entries; what c
  // learnt goes on at once as a digest to its neighbours (b: equal, no answer).
  assert.deepEqual(h.sent.map((s) => s.kind), ["d", "h", "s", "f", "d", "s"]);
  // Converged: one digest, no answer.
  h.sent = [];
  h.run("c", h.cores.get("c")!.tick(2000));
  assert.deepEqual(h.sent.map((s) => s.kind), ["d"]);
  // The view hash says the same everywhere.
  const hashes = new Set([...h.cores.values()].map((c) => c.viewHash));
  assert.equal(hashes.size, 1);
});

Deno.test("core: a death stays shown for downGraceMs; the origin refutes it and nothing leaves; a real death leaves, and a late push cannot bring it back", () => {
  const h = new Harness();
  for (const n of ["a", "b", "c"]) h.add(n, { downGraceMs: 1000 });
  h.link("a", "b");
  h.link("b", "c");
  const up = h.cores.get("c")!.update({ add: ["x"], remove: [] }, 0);
  h.run("c", up);
  // b's link to c fails: b says c is dead; c hears the notice and refutes.
  h.run("b", h.cores.get("b")!.neighbourDown("c", true, 0));
  assert.equal(h.cores.get("c")!.stats.refutations, 1);
  h.now = 2000;
  for (const [n, core] of h.cores) h.run(n, core.timers(h.now));
  assert.equal(h.shows("a"), "c=x", "still shown after the grace: refuted");
  // Now c is gone for real (it hears nothing: deaf).
  h.deaf.add("c");
  h.run("b", h.cores.get("b")!.neighbourDown("c", true, 2000));
  assert.equal(h.shows("a"), "c=x", "within the grace");
  h.now = 3500;
  for (const [n, core] of h.cores) h.run(n, core.timers(h.now));
  assert.equal(h.shows("a"), "");
  assert.equal(h.shows("b"), "");
  // A copy of its old push arrives late: refused.
  assert.equal(
    h.cores.get("a")!.receivePush(up.broadcasts[0]!.id, up.broadcasts[0]!.payload, 3600).isNew,
    false,
  );
  assert.equal(h.shows("a"), "");
});

Deno.test("core: a new epoch (a restart) is shown as the change from the old one; a goodbye removes at once", () => {
  const h = new Harness();
  h.add("a", { downGraceMs: 60_000 });
  h.add("b", { epoch: 10 });
  h.link("a", "b");
  h.run("b", h.cores.get("b")!.update({ add: ["x", "y"], remove: [] }, 0));
  const events: unknown[] = [];
  h.cores.get("a")!.subscribe("changes", (e) => events.push(e));
  const b2 = h.add("b", { epoch: 11 });
  h.run("b", b2.update({ add: ["y", "z"], remove: [] }, 0));
  assert.equal(h.shows("a"), "b=y+z");
  assert.deepEqual(
    events,
    [{ node: "b", add: ["z"], remove: ["x"] }],
    "one diff, no leave-and-join",
  );
  h.run("b", b2.bye());
  assert.equal(h.shows("a"), "", "removed at once despite the grace");
});

Deno.test("core: versions: an origin translates its updates for every version it saw; a node whose version it did not know gets the data translated by a neighbour", () => {
  const h = new Harness();
  h.add("new", { version: 2 });
  h.add("old", { version: 1 });
  h.add("old2", { version: 1 });
  // "new" has not met version 1 yet: its push has no body for it.
  h.run("new", h.cores.get("new")!.update({ add: ["x"], remove: [] }, 0));
  assert.equal(h.shows("old"), "");
  assert.equal(h.cores.get("old")!.stats.dropped, 1);
  // Anti-entropy with "new" brings the data, translated.
  h.link("old", "new");
  assert.equal(h.shows("old"), "new=X");
  // "new" has seen version 1 now: its next update carries a body for it.
  h.run("new", h.cores.get("new")!.update({ add: ["y"], remove: [] }, 0));
  assert.equal(h.shows("old2"), "", "old2 missed the first");
  h.link("old2", "old");
  assert.equal(h.shows("old2"), "new=X+Y");
  assert.equal(h.shows("old"), "new=X+Y");
});

Deno.test("core: probes: an origin that does not answer dies; one that runs no such scope said goodbye; 'unknown' changes nothing", () => {
  const h = new Harness();
  for (const n of ["a", "b", "c", "d"]) h.add(n);
  for (const n of ["b", "c", "d"]) h.run(n, h.cores.get(n)!.update({ add: [n], remove: [] }, 0));
  const a = h.cores.get("a")!;
  const probed: string[] = [];
  for (let t = 4000; t <= 16_000; t += 4000) {
    const fx = a.tick(t);
    probed.push(...fx.probes.map((p) => p.origin));
  }
  assert.deepEqual([...probed.slice(0, 3)].sort(), ["b", "c", "d"], "each origin once per round");
  const answer = (origin: string, ans: ProbeAnswer) => {
    const e = a.shown().find((o) => o.node === origin)!;
    h.run("a", a.probed(origin, e.epoch, 0, ans, 20_000));
  };
  answer("b", "unknown");
  answer("c", "unreachable");
  answer("d", null);
  assert.equal(h.cores.get("c")!.stats.refutations, 1, "c, alive after all, refuted");
  assert.equal(h.shows("a"), "b=b;c=c", "d is gone, c is back");
  assert.equal(h.shows("b"), "b=b;c=c", "the notices reached b");
});

Deno.test("publisher core: a goodbye a neighbour hears directly goes on through the overlay (the origin's own push may come later, and is then not news)", () => {
  const opts = (name: string, epoch: number) => ({ name, epoch, random: seededRandom(1) });
  const o = new PublisherCore("s", tags(), opts("o", 5)) as Core;
  const n = new PublisherCore("s", tags(), opts("n", 1)) as Core;
  const up = o.update({ add: ["x"], remove: [] }, 0);
  n.receivePush(up.broadcasts[0]!.id, up.broadcasts[0]!.payload, 0);
  assert.ok(n.view.get("o")?.has("x"));
  const bye = o.bye();
  const direct = bye.sends.find((s) => s.to === "n");
  // o had no neighbour set here: build the direct goodbye as o sends it to each neighbour.
  const msg = direct?.msg ?? ["b", "s", 1, 5];
  const fx = n.receive("o", msg, 10);
  assert.equal(n.view.has("o"), false, "removed at once");
  const ids = fx.broadcasts.map((b) => b.id);
  assert.deepEqual(ids, [["s", "b", "o", 5, 0]], "the goodbye goes on, with the origin's id");
  assert.equal(n.isStale(bye.broadcasts[0]!.id), true);
});

Deno.test("publisher core: a refutation heard by push goes on by anti-entropy at once (digests to every neighbour), not only along the origin's tree", () => {
  const opts = (name: string, epoch: number) => ({
    name,
    epoch,
    random: seededRandom(1),
    downGraceMs: 3000,
  });
  const o = new PublisherCore("s", tags(), opts("o", 5)) as Core;
  const n = new PublisherCore("s", tags(), opts("n", 1)) as Core;
  n.neighbourUp("p1", 0);
  n.neighbourUp("p2", 0);
  const up = o.update({ add: ["x"], remove: [] }, 0);
  n.receivePush(up.broadcasts[0]!.id, up.broadcasts[0]!.payload, 0);
  // A neighbour of o declares it dead (its link failed); the notice reaches n and o.
  n.receivePush(["s", "x", "o", 5, 0], [], 100);
  assert.ok(n.view.get("o")?.has("x"), "shown during the grace");
  const refute = o.receivePush(["s", "x", "o", 5, 0], [], 100).effects.broadcasts[0]!;
  assert.equal(refute.id[1], "a");
  const fx = n.receivePush(refute.id, refute.payload, 1000).effects;
  const digests = fx.sends.filter((s) => s.msg[0] === "d").map((s) => s.to).sort();
  assert.deepEqual(digests, ["p1", "p2"], "the revival goes on by anti-entropy");
  // And an exchange that carries the revival (no newer data) counts as news too.
  const m = new PublisherCore("s", tags(), opts("m", 1)) as Core;
  m.neighbourUp("q", 0);
  m.receivePush(up.broadcasts[0]!.id, up.broadcasts[0]!.payload, 0);
  m.receivePush(["s", "x", "o", 5, 0], [], 100);
  const item = ["o", 5, 1, 1, 1, 0, ["x"]];
  const fx2 = m.receive("n", ["f", "s", 1, [item]], 1000);
  assert.deepEqual(fx2.sends.filter((s) => s.msg[0] === "d").map((s) => s.to), ["q"]);
  assert.ok(m.view.get("o")?.has("x"));
});
