// Discovery: a seed that starts 10 s after the node that needs it is joined
// (retried with backoff, not given up on); a DNS name served by a real DNS
// server (UDP, started here) whose SRV records change while the cluster runs:
// each new address is joined; a failed lookup is logged naming the name.

import assert from "node:assert/strict";
import type { Node } from "../mod.ts";
import { eventually, freePort, JsonProcess, startNode } from "./_helpers.ts";
import { type DnsTable, startDnsServer } from "./_dns_server.ts";

Deno.test("discovery: a seed started 10 s after the joiner is joined (retried with backoff, never given up)", async () => {
  const port = freePort();
  const logs: string[] = [];
  const a = await startNode("disc-a", {
    discovery: { seeds: [`127.0.0.1:${port}`], retryMinMs: 200, retryMaxMs: 2000 },
    logger: (r) => logs.push(`${r.level} ${r.msg}`),
  });
  let seed: Node | undefined;
  try {
    await new Promise((r) => setTimeout(r, 10_000)); // the seed is simply not there yet
    assert.deepEqual(a.members(), ["disc-a"]);
    const t0 = Date.now();
    seed = await startNode("disc-seed", { listen: { hostname: "127.0.0.1", port } });
    await eventually(() => a.connectedMembers().includes("disc-seed"), "a joined the seed", 5000);
    const ms = Date.now() - t0;
    console.log(`  joined ${ms} ms after the seed started (retryMaxMs 2000)`);
    assert.ok(ms <= 2000 + 1000, `${ms} ms`);
    assert.ok(
      logs.some((l) => l.includes(`discovery: joined the cluster through 127.0.0.1:${port}`)),
    );
    assert.ok(logs.some((l) => l.includes(`discovery: 127.0.0.1:${port} not joined`)));
  } finally {
    await a.close();
    await seed?.close();
  }
});

Deno.test("discovery: DNS SRV records polled on a real DNS server; a node added to the records is joined; a failed lookup names the name", async () => {
  const table: DnsTable = { srv: new Map(), a: new Map() };
  const dns = await startDnsServer(table);
  const b = await startNode("dns-b");
  const c = await startNode("dns-c");
  const logs: string[] = [];
  const name = "_murmur._tcp.cluster.test";
  table.srv.set(name, [{ port: b.listenAddr.port, target: "127.0.0.1" }]);
  const a = await startNode("dns-a", {
    discovery: {
      dns: { name, intervalMs: 300, nameServer: { ipAddr: "127.0.0.1", port: dns.port } },
    },
    logger: (r) => logs.push(`${r.level} ${r.msg}`),
  });
  try {
    await eventually(() => a.connectedMembers().includes("dns-b"), "a joined b from DNS", 5000);
    // c appears in the records (a new pod): a joins it.
    const t0 = Date.now();
    table.srv.set(name, [
      { port: b.listenAddr.port, target: "127.0.0.1" },
      { port: c.listenAddr.port, target: "127.0.0.1" },
    ]);
    await eventually(() => a.connectedMembers().includes("dns-c"), "a joined c from DNS", 5000);
    console.log(`  a new SRV record joined after ${Date.now() - t0} ms (interval 300 ms)`);
    // The name disappears: the lookup fails, and the log names it; the cluster stays.
    table.srv.delete(name);
    await eventually(
      () =>
        logs.some((l) => l.startsWith("warn") && l.includes(`DNS lookup of SRV "${name}" failed`)),
      "a failed lookup logged",
      5000,
    );
    assert.ok(a.connectedMembers().includes("dns-b") && a.connectedMembers().includes("dns-c"));
    assert.ok(dns.queries >= 3);
  } finally {
    await a.close();
    await b.close();
    await c.close();
    await dns.close();
  }
});

Deno.test("discovery: bad options are refused by name before the node starts", async () => {
  await assert.rejects(() => startNode("disc-bad1", { discovery: {} }), /seeds or dns/);
  await assert.rejects(
    () => startNode("disc-bad2", { discovery: { seeds: ["nope"] } }),
    /discovery\.seeds\[0\]/,
  );
  await assert.rejects(
    () => startNode("disc-bad3", { discovery: { seeds: ["a:1"], retryMinMs: 0 } }),
    /retryMinMs/,
  );
  await assert.rejects(
    () => startNode("disc-bad4", { discovery: { dns: { name: "x", type: "A" } } }),
    /discovery\.dns\.port/,
  );
});

Deno.test("discovery: the CLI's --join keeps retrying a seed that is not up yet (with backoff), then joins it", async () => {
  const port = freePort();
  const p = new JsonProcess(
    new URL("../cli/mod.ts", import.meta.url),
    ["--allow-net=127.0.0.1", "--allow-env"],
    ["--name", "disc-cli", "--cookie", "test-cookie", "--json", "--join", `127.0.0.1:${port}`],
  );
  let seed: Node | undefined;
  try {
    await p.waitEvent("ready", 30_000);
    await p.waitFor(
      (e) => e.event === "join-retry" && (e.attempt as number) >= 3,
      "3 retries",
      10_000,
    );
    seed = await startNode("disc-cli-seed", { listen: { hostname: "127.0.0.1", port } });
    const joined = await p.waitEvent("joined", 10_000);
    assert.equal(joined.target, `127.0.0.1:${port}`);
    const retries = p.events.filter((e) => e.event === "join-retry");
    const waits = retries.map((e) => e.nextMs as number);
    console.log(`  joined at attempt ${joined.attempt}; waits ${waits.join(", ")} ms`);
    assert.ok(waits.every((w) => w <= 5000), "capped");
    assert.ok(waits.at(-1)! >= waits[0]!, "backing off");
  } finally {
    await p.kill();
    await seed?.close();
  }
});
