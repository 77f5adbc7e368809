/**
 * A durable counter on a file-backed Deno KV. Each run adds `--add` (default 1)
 * and prints the total, which survives the process:
 *
 *   deno run --unstable-kv --allow-read --allow-write examples/durable_counter.ts --path counter.sqlite
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DenoKvStorage, type DurableBehaviour, DurableServer } from "../mod.ts";

/** A counter: casts add, calls read. */
export const Counter: DurableBehaviour<number, "get", { add: number }, never, number> = {
  init: () => ({ state: 0 }),
  handleCall: (_msg, _from, n) => ({ reply: n, state: n }),
  handleCast: (msg, n) => ({ state: n + msg.add }),
};

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      path: { type: "string", default: "counter.sqlite" },
      add: { type: "string", default: "1" },
    },
  });
  await using storage = await DenoKvStorage.open(values.path);
  await using counter = await DurableServer.start(Counter, null, {
    storage,
    tenant: ["demo", "counter"],
  });
  const before = await counter.call("get");
  for (let i = 0; i < Number(values.add); i++) await counter.cast({ add: 1 });
  const after = await counter.call("get");
  console.log(JSON.stringify({ event: "counter", before, after, pid: Deno.pid }));
}
