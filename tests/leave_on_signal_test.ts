// A node process asked to stop (SIGTERM, as docker, systemd and Kubernetes
// do; SIGINT) leaves the cluster: the others see it `left` at once, not `down`
// after the failure timeout, and the process exits 0.

import assert from "node:assert/strict";
import type { Node } from "../mod.ts";
import { eventually, JsonProcess, startNode } from "./_helpers.ts";

function agent(name: string, membership: string): JsonProcess {
  return new JsonProcess(
    new URL("../cli/mod.ts", import.meta.url),
    ["--allow-net=127.0.0.1", "--allow-env"],
    [
      "--name",
      name,
      "--cookie",
      "test-cookie",
      "--json",
      "--membership",
      membership,
      "--failure-timeout-ms",
      "5000",
      "--log-level",
      "error",
    ],
  );
}

// Under HyParView a crash and a leave look the same from a neighbour (it drops the node
// either way): that case checks the agent's own shutdown and exit only.
const cases = [["full-mesh", "SIGTERM"], ["full-mesh", "SIGINT"], [
  "hyparview",
  "SIGTERM",
]] as const;
for (const [membership, signal] of cases) {
  Deno.test(`leave on ${signal} (${membership}): the others see the agent left at once (not down after the failure timeout), and it exits 0`, async () => {
    const hpv = membership === "hyparview";
    const a: Node = await startNode("sig-a", {
      cookie: "test-cookie",
      ...(hpv ? { membership: { strategy: "hyparview" } } : {}),
      failureTimeoutMs: 5000,
    });
    const p = agent("sig-b", membership);
    try {
      const ready = await p.waitEvent("ready", 30_000);
      await a.join(`127.0.0.1:${ready.port}`);
      await eventually(() => a.connectedMembers().includes("sig-b"), "b up at a", 10_000);
      const t0 = Date.now();
      p.child.kill(signal);
      const state = () => a.memberInfo().find((m) => m.name === "sig-b")?.state;
      await eventually(
        () =>
          state() === "left" || (hpv && state() === undefined && !a.members().includes("sig-b")),
        "b left at a",
        5000,
      ).catch((e) => {
        console.log(`  b at a: ${state()}; b's last lines: ${JSON.stringify(p.events.slice(-4))}`);
        throw e;
      });
      const ms = Date.now() - t0;
      console.log(`  ${membership}: b left ${ms} ms after ${signal} (failure timeout 5000 ms)`);
      assert.ok(ms < 2000, `seen after ${ms} ms`);
      assert.equal((await p.child.status).code, 0);
      // Its own shutdown ran (its last lines may still be on their way through the pipe).
      await p.waitEvent("stopping", 5000);
    } finally {
      await p.kill();
      await a.close();
    }
  });
}

Deno.test("leaveOnSignals: options are checked, and the listeners can be removed", async () => {
  await using node = await startNode("sig-c");
  assert.throws(() => node.leaveOnSignals({ drainMs: -1 }), /drainMs/);
  assert.throws(() => node.leaveOnSignals({ signals: [] }), /signals/);
  const off = node.leaveOnSignals({ exit: false });
  off();
});
