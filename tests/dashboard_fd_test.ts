// Issue 29, fault 1: under a low descriptor limit, idle TCP connections to
// the `--dashboard` port (no request sent, so no token needed) ended the node
// process with "Too many open files" (Deno.serve's accept loop). Now the
// dashboard has its own accept loop: at most `connectionsMax` connections
// (64), idle ones closed after the header deadline (5 s), accept errors backed
// off and logged; the node lives and the dashboard answers again after.
// (`ulimit -n 128` and 300 connections here, the attack's 1024 and ~1,000 in
// small: the same exhaustion, sooner.)

import assert from "node:assert/strict";
import { JsonProcess } from "./_helpers.ts";

Deno.test({
  name: "dashboard fd exhaustion: idle connections never kill the node; the page answers after",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const deno = Deno.execPath();
    const script = new URL("../cli/mod.ts", import.meta.url).pathname;
    const p = new JsonProcess(new URL("file:///bin/sh"), [], [], {
      prefix: [
        "sh",
        "-c",
        `ulimit -n 128 && exec "${deno}" run --allow-net=127.0.0.1 --allow-env "${script}" ` +
        `--name fd-dash --cookie test-cookie --json --log-level warn --dashboard 0`,
      ],
    });
    const conns: Deno.Conn[] = [];
    try {
      // Port 0: the agent binds one itself (a port picked here and released
      // could be taken by another test's connection before the agent binds it).
      const ready = await p.waitEvent("ready", 30_000);
      const dashPort = Number(/:(\d+)\/$/.exec(String(ready.dashboard))?.[1]);
      assert.ok(dashPort > 0, `dashboard at ${ready.dashboard}`);
      for (let i = 0; i < 300; i++) {
        try {
          conns.push(await Deno.connect({ hostname: "127.0.0.1", port: dashPort }));
        } catch { /* the backlog is full: enough */ }
      }
      console.log(`  ${conns.length} idle connections to the dashboard`);
      // Flooded past its descriptors, the process lives (on main it exited at once).
      const exited = await Promise.race([
        p.child.status.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 1500)),
      ]);
      assert.equal(exited, false, "the node process is alive");
      for (const c of conns.splice(0)) c.close();
      // Descriptors are back: the dashboard answers (within a bounded number of tries).
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        try {
          const r = await fetch(`http://127.0.0.1:${dashPort}/api/state`);
          status = r.status;
          await r.body?.cancel();
        } catch { /* still backing off */ }
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 200, "the dashboard answers again");
      // An idle connection is closed after the header deadline (5 s).
      const idle = await Deno.connect({ hostname: "127.0.0.1", port: dashPort });
      conns.push(idle);
      const t0 = Date.now();
      const n = await Promise.race([
        idle.read(new Uint8Array(16)).catch(() => null),
        new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 8000)),
      ]);
      assert.equal(n, null, "closed by the server");
      const ms = Date.now() - t0;
      console.log(`  an idle connection was closed after ${ms} ms`);
      assert.ok(ms >= 4000 && ms < 7000, `closed after ${ms} ms (deadline 5 s)`);
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
