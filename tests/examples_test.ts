import assert from "node:assert/strict";
import { DurableServer, MemoryStorage } from "../mod.ts";
import { bank } from "../examples/bank.ts";

Deno.test("bank example: concurrent transfers conserve money and never overdraw", async () => {
  await using storage = new MemoryStorage();
  const audit: string[] = [];
  await using b = await DurableServer.start(bank((l) => audit.push(l)), null, {
    storage,
    tenant: ["bank"],
    consumeBatch: 8,
  });
  const names = ["a", "b", "c", "d"];
  for (const n of names) await b.call({ open: n, deposit: 100 });
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      b.call({
        transfer: { from: names[i % 4]!, to: names[(i * 3 + 1) % 4]!, amount: 1 + (i % 37) },
      })),
  );
  let total = 0;
  for (const n of names) {
    const r = await b.call({ balance: n });
    assert.ok(r.ok && r.balance !== undefined && r.balance >= 0, `${n} never overdrawn`);
    total += r.ok ? r.balance ?? 0 : 0;
  }
  assert.equal(total, 400, "money is conserved");
  assert.equal(
    audit.length,
    results.filter((r) => r.ok).length,
    "one audit line per committed transfer",
  );
});
