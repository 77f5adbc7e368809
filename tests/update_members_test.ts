// Declarative membership (the seed's update_members/1): one call joins the
// listed nodes and removes the unlisted ones that are down; a live member is
// kept (it leaves by itself), this node is never touched.

import assert from "node:assert/strict";
import { eventually, freePort, JsonProcess, startNode } from "./_helpers.ts";

Deno.test("updateMembers: joins the listed, removes the unlisted that are down, keeps the live, reports failures", async () => {
  const a = await startNode("um-a"), b = await startNode("um-b"), c = await startNode("um-c");
  const d = await startNode("um-d");
  try {
    await b.join(a.spec);
    await c.join(a.spec);
    // d is told the list: a by spec, b by address, and one that answers nothing.
    const nobody = `127.0.0.1:${freePort()}`;
    const r1 = await d.updateMembers([a.spec, `127.0.0.1:${b.listenAddr.port}`, nobody], {
      timeoutMs: 3000,
    });
    assert.deepEqual(r1.joined, ["um-a", "um-b"]);
    assert.equal(r1.failed.length, 1);
    assert.equal(r1.failed[0]!.target, nobody);
    await eventually(() => d.connectedMembers().length === 4, "d sees everyone", 5000);
    // c crashes; the new list leaves c out and b too (b is alive: kept).
    await c.close();
    await eventually(
      () => d.memberInfo().find((m) => m.name === "um-c")?.state === "down",
      "c down at d",
      10_000,
    );
    const r2 = await d.updateMembers([a.spec]);
    assert.deepEqual(r2, { joined: [], removed: ["um-c"], kept: ["um-b"], failed: [] });
    assert.equal(d.memberInfo().find((m) => m.name === "um-c")?.state, "removed");
    // Listing only members that are up changes nothing.
    assert.deepEqual(await d.updateMembers([a.spec, b.spec]), {
      joined: [],
      removed: [],
      kept: [],
      failed: [],
    });
    await assert.rejects(() => d.updateMembers("nope" as never), TypeError);
    await assert.rejects(() => d.updateMembers([42 as never]), /neither a spec nor host:port/);
  } finally {
    for (const n of [d, c, b, a]) await n.close();
  }
});

Deno.test("updateMembers: the CLI's --members-file is applied at start and again when it changes", async () => {
  const a = await startNode("mf-a"), b = await startNode("mf-b");
  const file = await Deno.makeTempFile({ suffix: ".members" });
  await Deno.writeTextFile(file, `# the cluster\n127.0.0.1:${a.listenAddr.port}\n`);
  const p = new JsonProcess(
    new URL("../cli/mod.ts", import.meta.url),
    ["--allow-net=127.0.0.1", "--allow-env", `--allow-read=${file}`],
    ["--name", "mf-cli", "--cookie", "test-cookie", "--json", "--members-file", file],
  );
  try {
    const first = await p.waitEvent("members-file", 30_000);
    assert.deepEqual(first.joined, ["mf-a"]);
    await Deno.writeTextFile(
      file,
      `127.0.0.1:${a.listenAddr.port}\n127.0.0.1:${b.listenAddr.port}\n`,
    );
    const second = await p.waitFor(
      (e) =>
        e.event === "members-file" && (e.joined as string[] | undefined)?.includes("mf-b") === true,
      "b joined from the changed file",
      10_000,
    );
    assert.deepEqual(second.failed, []);
    await eventually(() => b.connectedMembers().includes("mf-cli"), "b sees the agent", 5000);
  } finally {
    await p.kill();
    await a.close();
    await b.close();
    await Deno.remove(file);
  }
});
