// Validation at the edges through Standard Schema, with two real libraries
// (zod, valibot; murmur depends on neither): a message that fails an
// endpoint's schema never reaches its handler; a call is answered with a
// ValidationError naming the path; a send is dropped, counted and logged.

import assert from "node:assert/strict";
import { z } from "zod";
import * as v from "valibot";
import {
  endpoint,
  type LogRecord,
  type Node,
  RemoteHandlerError,
  ValidationError,
} from "../mod.ts";
import { converged, eventually, startNode } from "./_helpers.ts";

const Signup = z.object({ user: z.object({ name: z.string(), age: z.number().int().min(0) }) });
const SignupV = v.object({ user: v.object({ name: v.string(), age: v.number() }) });

async function pair(logs: LogRecord[] = []): Promise<[Node, Node]> {
  const a = await startNode("a", { logger: (r) => void logs.push(r) });
  const b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  return [a, b];
}

for (const [lib, schema] of [["zod", Signup], ["valibot", SignupV]] as const) {
  Deno.test(`${lib}: a call whose request fails the schema is answered with a ValidationError naming the path`, async () => {
    const [a, b] = await pair();
    try {
      let ran = 0;
      const signup = endpoint<{ user: { name: string; age: number } }, string>("signup", {
        schema,
      });
      a.register(signup, ({ user }) => {
        ran++;
        return `welcome ${user.name} (${user.age})`;
      });
      assert.equal(
        await b.call("a", signup, { user: { name: "ada", age: 36 } }),
        "welcome ada (36)",
      );
      const bad = { user: { name: "bob", age: "old" } } as unknown as {
        user: { name: string; age: number };
      };
      const e = await b.call("a", signup, bad).then(() => undefined, (e) => e);
      assert.ok(e instanceof ValidationError, `got ${e}`);
      assert.equal(e.node, "a");
      assert.equal(e.endpoint, "signup");
      assert.deepEqual(e.issues.map((i) => i.path), ["user.age"]);
      assert.match(e.message, /endpoint "signup" on node "a": invalid message: user\.age: /);
      // The same from this node to itself.
      const local = await a.call("a", signup, bad).then(() => undefined, (e) => e);
      assert.ok(local instanceof ValidationError);
      assert.deepEqual(local.issues.map((i) => i.path), ["user.age"]);
      assert.equal(ran, 1, "the handler never saw a bad request");
      assert.equal(a.stats().invalidMessages, 2);
    } finally {
      await b.close();
      await a.close();
    }
  });
}

Deno.test("a send that fails the schema is dropped, counted and logged; valid ones go through", async () => {
  const logs: LogRecord[] = [];
  const [a, b] = await pair(logs);
  try {
    const got: number[] = [];
    a.register("score", (m: number) => void got.push(m), { schema: z.number().int() });
    for (const m of [1, 2.5, "x", 3]) await b.send("a", "score", m);
    await eventually(() => got.length === 2 && a.stats().invalidMessages === 2, "2 in, 2 refused");
    assert.deepEqual(got, [1, 3]);
    const warn = logs.find((r) =>
      r.level === "warn" && /refused by the schema of "score"/.test(r.msg)
    );
    assert.ok(warn, "the refusal is logged");
    assert.equal(warn.peer, "b");
    assert.equal(
      logs.filter((r) => r.level === "error").length,
      0,
      "not logged as a handler error",
    );
  } finally {
    await b.close();
    await a.close();
  }
});

Deno.test("an asynchronous schema is awaited, and a schema that throws counts as a refusal", async () => {
  const [a, b] = await pair();
  try {
    const slow = {
      "~standard": {
        version: 1 as const,
        vendor: "test",
        validate: async (x: unknown) => {
          await Promise.resolve();
          return x === "ok"
            ? { value: "OK" }
            : { issues: [{ message: "not ok", path: [{ key: "x" }] }] };
        },
      },
    };
    const throwing = {
      "~standard": {
        version: 1 as const,
        vendor: "test",
        validate: () => {
          throw new Error("boom");
        },
      },
    };
    a.register("slow", (m: string) => m, { schema: slow });
    a.register("throws", (m: unknown) => m, { schema: throwing });
    assert.equal(await b.call("a", "slow", "ok"), "OK", "the handler gets the schema's output");
    const e = await b.call("a", "slow", "no").then(() => undefined, (e) => e);
    assert.ok(e instanceof ValidationError);
    assert.deepEqual(e.issues, [{ path: "x", message: "not ok" }]);
    const t = await b.call("a", "throws", 1).then(() => undefined, (e) => e);
    assert.ok(t instanceof ValidationError);
    assert.match(t.message, /the schema threw: boom/);
  } finally {
    await b.close();
    await a.close();
  }
});

Deno.test("a handler's own error named ValidationError stays a RemoteHandlerError; bad schemas are refused at register", async () => {
  const [a, b] = await pair();
  try {
    a.register("mine", () => {
      const e = new Error("mine");
      e.name = "ValidationError";
      throw e;
    });
    const e = await b.call("a", "mine", 1).then(() => undefined, (e) => e);
    assert.ok(e instanceof RemoteHandlerError, `got ${e}`);
    assert.equal(e.remoteName, "ValidationError");
    assert.throws(
      () => a.register("x", () => 1, { schema: {} as never }),
      /the schema of endpoint "x" must be a Standard Schema/,
    );
    assert.throws(() => endpoint("", {}), /endpoint name must be a string of 1-256 characters/);
    assert.equal(a.registered("x"), false);
  } finally {
    await b.close();
    await a.close();
  }
});
