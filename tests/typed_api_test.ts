// Types at the edges: typed endpoints, topics and presence metadata are
// checked by the compiler. Each `@ts-expect-error` line must NOT compile:
// `deno check` (and `deno test`, which checks this file) fails on a line that
// does ("Unused '@ts-expect-error' directive"), so these assertions cannot
// pass by accident. The test also runs the calls that must compile.

import assert from "node:assert/strict";
import { z } from "zod";
import { endpoint, Node, Presence, ProcessGroups, PubSub, topic } from "../mod.ts";

const add = endpoint<{ a: number; b: number }, number>("add");
const news = topic<{ headline: string }>("news");

/** Calls that must not compile (never run: only checked). */
function mustNotCompile(node: Node, ps: PubSub, presence: Presence<{ status: "online" | "away" }>) {
  // @ts-expect-error the request of `add` is { a, b }, not a string
  void node.call("b", add, "1 + 2");
  // @ts-expect-error the reply of `add` is a number
  void node.call("b", add, { a: 1, b: 2 }).then((r: string) => r);
  // @ts-expect-error a handler of `add` answers a number
  node.register(add, ({ a, b }) => `${a + b}`);
  // @ts-expect-error the handler's message is { a, b }: no field c
  node.register(add, (m) => m.c);
  // @ts-expect-error a send to `add` carries its request type
  void node.send("b", add, { a: "1" });
  // @ts-expect-error a typed topic's message is { headline }
  void ps.publish(news, { title: "x" });
  // @ts-expect-error a subscriber of `news` gets { headline }: no field body
  void ps.subscribe(news, (m) => m.body);
  // @ts-expect-error presence metadata of this scope is { status }
  void presence.track("room", "ada", { status: "gone" });
  // @ts-expect-error a schema's output types the handler: a number has no length
  node.register("n", (m) => m.length, { schema: z.number() });
}

Deno.test("typed endpoints, topics and presence metadata: what compiles works", async () => {
  await using a = await Node.start({ name: "a", cookie: "c", logger: () => {} });
  a.register(add, ({ a, b }) => a + b);
  const sum: number = await a.call("a", add, { a: 2, b: 3 });
  assert.equal(sum, 5);
  // String endpoints work beside typed ones; the schema types the handler.
  a.register("len", (m) => m.length, { schema: z.string() });
  assert.equal(await a.call("a", "len", "four"), 4);
  await using ps = await PubSub.start(a);
  const { promise, resolve } = Promise.withResolvers<string>();
  await ps.subscribe(news, (m) => resolve(m.headline));
  await ps.publish(news, { headline: "typed" });
  assert.equal(await promise, "typed");
  await using presence = await Presence.start<{ status: "online" | "away" }>(a, "lobby");
  await presence.track("room", "ada", { status: "online" });
  const status: "online" | "away" = presence.list("room")["ada"]![0]!.meta.status;
  assert.equal(status, "online");
  await using pg = await ProcessGroups.start(a, "typed");
  await pg.join("adders", add); // a typed endpoint is a member too
  assert.deepEqual(pg.getMembers("adders"), [{ node: "a", id: "add" }]);
  assert.equal(typeof mustNotCompile, "function");
});
