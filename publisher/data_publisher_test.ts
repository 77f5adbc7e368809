import assert from "node:assert/strict";
import { Node } from "../membership/mod.ts";
import { DataPublisher, ProcessGroups, type PublisherModule } from "./mod.ts";

// A counter per node; the view keeps each node's count.
const Count: PublisherModule<number, number, Map<string, number>, string, number> = {
  version: () => 1,
  initLocalData: () => 0,
  initGlobalView: () => new Map(),
  dataDiff: (o, n) => n - o,
  updateLocalData: (d, n) => n + d,
  updateGlobalViewAndNotify: (node, d, subs, view) => {
    const v = (view.get(node) ?? 0) + d;
    if (v === 0) view.delete(node);
    else view.set(node, v);
    subs.notify("changes", { node, d });
    return view;
  },
  newSubscription: (_s, view) => view.size,
  stopGlobalView: (view) => view.clear(),
  translateLocalData: (_m, _p, n) => n,
  translateUpdate: (_m, _p, d) => d,
};

Deno.test("standalone: the same API on one node with no network", async () => {
  await using node = await Node.start({ name: "solo", cookie: "c", logger: () => {} });
  const pub = await DataPublisher.start(node, "count", Count, { standalone: true });
  const seen: unknown[] = [];
  const { ref, result } = pub.subscribe("changes", (e) => seen.push(e));
  assert.equal(result, 0);
  await pub.update(3);
  await pub.update(-1);
  assert.deepEqual(seen, [{ node: "solo", d: 3 }, { node: "solo", d: -1 }]);
  assert.equal(pub.unsubscribe(ref), true);
  assert.equal(pub.unsubscribe(ref), false);
  await pub.update(5);
  assert.equal(seen.length, 2, "no notification after unsubscribe");
  assert.equal(pub.localData, 7);
  assert.equal(pub.view.get("solo"), 7);
  await pub.close();
  assert.equal(pub.view.size, 0, "stopGlobalView ran");
  await assert.rejects(() => pub.update(1), TypeError);
});

Deno.test("two nodes: malformed messages are dropped; a restarted publisher's data replaces its old data", async () => {
  await using a = await Node.start({ name: "a", cookie: "c", logger: () => {} });
  await using b = await Node.start({ name: "b", cookie: "c", logger: () => {} });
  await b.join(a.spec);
  const pa = await DataPublisher.start(a, "count", Count, { logger: () => {} });
  let pb = await DataPublisher.start(b, "count", Count, { logger: () => {} });
  const until = async (f: () => boolean) => {
    for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(f());
  };
  await pb.update(4);
  await until(() => pa.view.get("b") === 4);
  for (const junk of ["x", [], ["update"], ["update", "nope", 1, 2], ["local_data", 1], { a: 1 }]) {
    await b.send("a", "murmur.pub.count", junk);
  }
  await pb.update(1);
  await until(() => pa.view.get("b") === 5);
  // b's publisher restarts (new instance, data starts over): a ends up with the new data only.
  await pb.close();
  await until(() => !pa.view.has("b"));
  pb = await DataPublisher.start(b, "count", Count, { logger: () => {} });
  await pb.update(2);
  await until(() => pa.view.get("b") === 2);
  assert.deepEqual(pa.peers(), [{ node: "b", version: 1 }]);
  await pa.close();
  await pb.close();
});

Deno.test("process groups: arguments are checked", async () => {
  await using node = await Node.start({ name: "a", cookie: "c", logger: () => {} });
  await using pg = await ProcessGroups.start(node, "args");
  await assert.rejects(() => pg.join(42 as unknown as string, "x"), TypeError);
  await assert.rejects(() => pg.join("g", "unregistered"), TypeError);
  await assert.rejects(() => DataPublisher.start(node, "", Count), TypeError);
  await assert.rejects(
    () => ProcessGroups.start(node, "args"),
    TypeError,
    "one publisher per scope and node",
  );
});
