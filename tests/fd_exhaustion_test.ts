// Out of file descriptors (ulimit -n), a node's accept loop backs off and
// logs once per interval instead of spinning (a million "accept failed"
// warnings in 20 s at 60–97% CPU), and it accepts again once descriptors
// are free.

import assert from "node:assert/strict";
import { JsonProcess } from "./_helpers.ts";

Deno.test({
  name:
    "fd exhaustion: the accept loop backs off and logs once per interval; it accepts again after",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const deno = Deno.execPath();
    const script = new URL("../cli/mod.ts", import.meta.url).pathname;
    // The shell lowers the limit, then runs the agent in its place.
    const p = new JsonProcess(
      new URL("file:///bin/sh"),
      [],
      [],
      {
        prefix: [
          "sh",
          "-c",
          `ulimit -n 64 && exec "${deno}" run --allow-net=127.0.0.1 --allow-env "${script}" ` +
          `--name fd-a --cookie test-cookie --json --log-level warn`,
        ],
      },
    );
    const conns: Deno.Conn[] = [];
    try {
      const ready = await p.waitEvent("ready", 30_000);
      const port = ready.port as number;
      // Far more connections than the agent has descriptors left.
      for (let i = 0; i < 120; i++) {
        try {
          conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
        } catch { /* the backlog is full: enough */ }
      }
      await new Promise((r) => setTimeout(r, 3000)); // what a spinning loop logs in 3 s is plenty
      const warnings = p.events.filter((e) =>
        e.event === "log" && String(e.msg).startsWith("accept failed")
      );
      console.log(`  ${conns.length} connections; ${warnings.length} accept warnings in 3 s`);
      assert.ok(warnings.length >= 1, "the exhaustion is logged");
      assert.ok(warnings.length <= 3, `${warnings.length} warnings: logged once per interval`);
      // Descriptors come back: the node accepts again.
      for (const c of conns.splice(0)) c.close();
      await new Promise((r) => setTimeout(r, 1500));
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(c);
      await c.write(new Uint8Array([0, 0, 0, 1, 0xff])); // a bad frame: the node reads, then closes
      const n = await Promise.race([
        c.read(new Uint8Array(16)),
        new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 5000)),
      ]);
      assert.notEqual(n, "timeout", "the node accepted the connection and answered it");
    } finally {
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await p.kill();
    }
  },
});
