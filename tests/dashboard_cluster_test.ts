// The cluster-wide dashboard: any node's page shows the whole cluster (every
// member's counters gathered through the cluster, per-node rows with tags,
// sums, the overlay as a graph, a root's broadcast tree assembled from every
// node's eager links), the first HTML response already holds that state, and
// the header shows the advertised address. Five real agent processes under
// HyParView, in headless Chromium (skipped, with the reason printed, where
// none is installed); the screenshot is docs/dashboard-cluster.png.

import assert from "node:assert/strict";
import type { Node } from "../mod.ts";
import { gatherCluster, serveDashboard, shareSummary } from "../dashboard/mod.ts";
import { Plumtree } from "../broadcast/mod.ts";
import { eventually, JsonProcess, NodeProcess, startNode } from "./_helpers.ts";
import { Chromium, findChromium } from "./_chromium.ts";

const chromium = await findChromium();
if ("reason" in chromium) console.log(`cluster dashboard browser test skipped: ${chromium.reason}`);

Deno.test({
  name: "cluster dashboard in headless Chromium: 5 processes, rows with tags, sums, overlay, tree",
  ignore: "reason" in chromium,
  async fn() {
    const procs: JsonProcess[] = [];
    try {
      const first = new NodeProcess([
        "--name",
        "n1",
        "--membership",
        "hyparview",
        "--dashboard",
        "0",
        "--tag",
        "role=web",
      ]);
      procs.push(first);
      const ready = await first.waitEvent("ready", 30_000);
      const url = ready.dashboard as string;
      for (let i = 2; i <= 5; i++) {
        // n2 takes commands on stdin (`--control`): it broadcasts below.
        const p = new JsonProcess(
          new URL("../cli/mod.ts", import.meta.url),
          ["--allow-net=127.0.0.1", "--allow-env"],
          [
            "--json",
            "--cookie",
            "test-cookie",
            "--name",
            `n${i}`,
            "--membership",
            "hyparview",
            "--tag",
            `role=${i % 2 === 0 ? "db" : "web"}`,
            "--join",
            `127.0.0.1:${ready.port}`,
            ...(i === 2 ? ["--control"] : []),
          ],
          { stdin: i === 2 },
        );
        procs.push(p);
        await p.waitEvent("joined", 30_000);
      }
      // A burst of broadcasts from n2: there is a tree to draw.
      const said = await procs[1]!.command({
        op: "call",
        to: "n2",
        endpoint: "chat.say",
        msg: { count: 5, tag: "t" },
      });
      assert.equal(said.ok, true, String(said.error));
      const api = async () => await (await fetch(new URL("api/state", url))).json();
      await eventually(
        async () => (await api()).cluster?.nodes.length === 5,
        "the dashboard gathered 5 nodes",
        20_000,
        200,
      );
      await procs[2]!.kill(); // n3 goes: the rest must still add up
      await eventually(
        async () => (await api()).cluster?.nodes.length === 4,
        "4 nodes once n3 is gone",
        20_000,
        200,
      );
      // The first HTML already holds the state (no "connecting…" page): 4 nodes and their tags.
      const html = await (await fetch(url)).text();
      const initial = JSON.parse(
        html.match(/<script id="initial" type="application\/json">(.*?)<\/script>/s)![1]!,
      );
      assert.deepEqual(initial.cluster.nodes.map((n: { name: string }) => n.name), [
        "n1",
        "n2",
        "n4",
        "n5",
      ]);
      assert.deepEqual(initial.cluster.nodes[1].tags, { role: "db" });

      await using browser = await Chromium.launch((chromium as { path: string }).path);
      const page = await browser.open(url);
      await page.waitFor(
        `document.querySelectorAll('#cluster tr[data-node]').length === 5`,
        10_000,
        "4 node rows and the sum",
      );
      const rowText = (n: string) =>
        page.evaluate(`document.querySelector('#cluster tr[data-node="${n}"]').textContent`);
      assert.match(String(await rowText("n2")), /role=db/);
      assert.match(String(await rowText("(sum)")), /^sum/);
      await page.waitFor(
        `document.querySelector('svg[data-cluster-root="n2"]')`,
        10_000,
        "n2's tree",
      );
      const links = await page.evaluate(
        `document.querySelectorAll('svg[data-graph="overlay"] line').length`,
      ) as number;
      assert.ok(links >= 3, `${links} overlay links drawn`);
      assert.match(
        String(await page.evaluate(`document.getElementById("sub").textContent`)),
        /hyparview · 127\.0\.0\.1:\d+/,
      );
      const png = await page.screenshot();
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
      const out = Deno.env.get("MURMUR_CLUSTER_PNG");
      if (out) await Deno.writeFile(out, png);
      console.log(`  screenshot of ${png.length} bytes${out ? `: ${out}` : ""}`);
    } finally {
      for (const p of procs) await p.kill();
    }
  },
});

Deno.test("cluster view in one process: trees assembled from every node's eager links; the advertised address", async () => {
  const nodes: Node[] = [];
  const trees: Plumtree[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const n = await startNode(`c${i}`, {
        tags: { i: String(i) },
        ...(i === 0 ? { advertise: [{ hostname: "localhost", port: 0 }] } : {}),
      });
      if (i > 0) await n.join(nodes[0]!.spec);
      nodes.push(n);
    }
    await eventually(() => nodes.every((n) => n.connectedMembers().length === 4), "a full mesh");
    const handler = (name: string) => {
      const seen = new Set<string>();
      return {
        name,
        broadcastData: (m: { id: string }) => ({ id: m.id, payload: 1 }),
        merge: (id: string) => (seen.has(id) ? false : (seen.add(id), true)),
        isStale: (id: string) => seen.has(id),
        graft: () => ({ ok: 1 }),
        exchange: () => "ignore" as const,
      };
    };
    for (const n of nodes) trees.push(await Plumtree.start(n, { handlers: [handler("h")] }));
    // Every node answers its summary (the agent does this on every node).
    const offs = nodes.slice(1).map((node, i) => shareSummary({ node, plumtree: trees[i + 1]! }));
    await using dash = await serveDashboard({ node: nodes[0]!, plumtree: trees[0]! }, {
      intervalMs: 100,
    });
    for (let k = 0; k < 5; k++) await trees[2]!.broadcast({ id: `m${k}` }, "h");
    const c = await eventually(async () => {
      const s = await gatherCluster({ node: nodes[0]!, plumtree: trees[0]! });
      return s.nodes.length === 4 && s.trees.some((t) => t.root === "c2") ? s : undefined;
    }, "c2's tree seen");
    const t = c.trees.find((x) => x.root === "c2")!;
    console.log(`  c2's tree: ${t.edges.map((e) => e.join("-")).join(" ")}`);
    // A spanning tree of 4 nodes at least (the lazy links settle to it after the burst).
    const touched = new Set(t.edges.flat());
    assert.equal(touched.size, 4, "the tree reaches every node");
    assert.equal(c.sums.connections, c.nodes.reduce((a, n) => a + n.stats.connections, 0));
    assert.deepEqual(c.nodes.map((n) => n.tags.i), ["0", "1", "2", "3"]);
    const st = await dash.state();
    assert.match(st.node.address, /^localhost:\d+$/, "the advertised address, not the bound one");
    for (const off of offs) off();
  } finally {
    for (const t of trees) await t.close();
    await Promise.all(nodes.map((n) => n.close()));
  }
});
