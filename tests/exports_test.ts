// The public surface: the root entry is the user's API, within its budget of
// 120 symbols and with no protocol internals, backend hooks or test suites;
// `./protocol` and `./testing` hold those.

import assert from "node:assert/strict";

/** The symbols an entry exports (values and types), from `deno doc --json`. */
async function symbols(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", new URL(`../${entry}`, import.meta.url).pathname],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const doc = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    nodes: Record<string, { symbols: { name: string }[] }>;
  };
  return Object.values(doc.nodes).flatMap((n) => n.symbols.map((s) => s.name)).sort();
}

Deno.test("the root entry is the user's API: at most 120 symbols, no internals", async () => {
  const root = await symbols("mod.ts");
  console.log(`the root exports ${root.length} symbols`);
  assert.ok(root.length <= 120, `the root exports ${root.length} symbols (budget 120)`);
  for (
    const internal of [
      "clientHandshake",
      "Tag",
      "step",
      "PlumtreeCore",
      "encodeKey",
      "testStorage",
      "MemoryNetwork",
      "applyEffects",
      "receivePlumtree",
    ]
  ) {
    assert.ok(!root.includes(internal), `${internal} is not the user's API`);
  }
  for (
    const user of [
      "Node",
      "Plumtree",
      "DataPublisher",
      "ProcessGroups",
      "Presence",
      "DurableServer",
      "MemoryStorage",
      "DenoKvStorage",
      "PubSub",
      "topic",
      "endpoint",
      "ValidationError",
    ]
  ) {
    assert.ok(root.includes(user), `${user} is in the root`);
  }
});

Deno.test("./protocol holds the wire and the pure cores; ./testing the suites and the simulated network", async () => {
  const protocol = await symbols("protocol.ts");
  for (
    const s of [
      "Tag",
      "decodeMessage",
      "clientHandshake",
      "step",
      "PlumtreeCore",
      "receivePlumtree",
      "applyEffects",
      "Simulation",
      "HyParView",
      "FullMesh",
      "PublisherCore",
      "runPublisherScenario",
    ]
  ) {
    assert.ok(protocol.includes(s), `./protocol exports ${s}`);
  }
  const testing = await symbols("testing.ts");
  for (const s of ["testStorage", "testTransport", "MemoryNetwork", "SimulatedClock"]) {
    assert.ok(testing.includes(s), `./testing exports ${s}`);
  }
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(config.exports["./protocol"], "./protocol.ts");
  assert.equal(config.exports["./testing"], "./testing.ts");
});
