// The README's multi-host recipe, for real: three node processes in three
// network namespaces joined by a bridge (in a fourth namespace) and veth pairs,
// each listening on 0.0.0.0 and advertising its own address. A call crosses
// hosts; one host's link is cut for 10 s and the views converge again after.
// Needs root and iproute2 (CI runs as root); skipped with the reason otherwise.
// Every address lives inside namespaces this test creates and deletes.

import assert from "node:assert/strict";
import { JsonProcess } from "./_helpers.ts";

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; err: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
    return { ok: out.success, err: new TextDecoder().decode(out.stderr).trim() };
  } catch (e) {
    return { ok: false, err: String(e) };
  }
}

async function ip(...args: string[]): Promise<void> {
  const r = await run("ip", args);
  if (!r.ok) throw new Error(`ip ${args.join(" ")}: ${r.err}`);
}

/** Why the test cannot run here, or undefined when it can. */
async function skipReason(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "network namespaces need Linux";
  if (Deno.uid() !== 0) return "network namespaces need root (CI runs as root)";
  const probe = `mmprobe${Math.floor(Math.random() * 1e6)}`;
  const r = await run("ip", ["netns", "add", probe]);
  if (!r.ok) return `ip netns add failed: ${r.err || "iproute2 missing?"}`;
  await run("ip", ["netns", "del", probe]);
  return undefined;
}

const reason = await skipReason();
if (reason !== undefined) console.log(`netns test skipped: ${reason}`);

const SUBNET = "10.199.77";
const COOKIE = "netns-cookie";

Deno.test({
  name:
    "multi-host recipe: 3 processes in 3 network namespaces, a call across, a 10 s link cut heals",
  ignore: reason !== undefined,
  async fn() {
    const tag = Math.floor(Math.random() * 0xffff).toString(16).padStart(4, "0");
    const bridgeNs = `mm${tag}br`;
    const names = ["a", "b", "c"];
    const ns = names.map((n) => `mm${tag}${n}`);
    const bridgePort = (i: number) => `p${tag}${names[i]}`;
    const procs: JsonProcess[] = [];
    const created: string[] = [];
    try {
      await ip("netns", "add", bridgeNs);
      created.push(bridgeNs);
      await ip("-n", bridgeNs, "link", "add", "br0", "type", "bridge");
      await ip("-n", bridgeNs, "link", "set", "br0", "up");
      for (let i = 0; i < 3; i++) {
        await ip("netns", "add", ns[i]!);
        created.push(ns[i]!);
        const dev = `v${tag}${names[i]}`;
        await ip(
          "-n",
          ns[i]!,
          "link",
          "add",
          dev,
          "type",
          "veth",
          "peer",
          "name",
          bridgePort(i),
          "netns",
          bridgeNs,
        );
        await ip("-n", ns[i]!, "addr", "add", `${SUBNET}.${i + 1}/24`, "dev", dev);
        await ip("-n", ns[i]!, "link", "set", dev, "up");
        await ip("-n", ns[i]!, "link", "set", "lo", "up");
        await ip("-n", bridgeNs, "link", "set", bridgePort(i), "master", "br0");
        await ip("-n", bridgeNs, "link", "set", bridgePort(i), "up");
      }
      // The recipe's flags, as `deno task node` runs them (plus --json/--control to observe).
      for (let i = 0; i < 3; i++) {
        const args = [
          "--name",
          names[i]!,
          "--host",
          "0.0.0.0",
          "--port",
          "7000",
          "--advertise",
          `${SUBNET}.${i + 1}:7000`,
          "--cookie",
          COOKIE,
          "--json",
          "--control",
          "--failure-timeout-ms",
          "2000",
          ...(i > 0 ? ["--join", `${SUBNET}.1:7000`] : []),
        ];
        const p = new JsonProcess(
          new URL("../cli/mod.ts", import.meta.url),
          ["--allow-net", "--allow-read", "--allow-env"],
          args,
          { prefix: ["ip", "netns", "exec", ns[i]!], stdin: true },
        );
        procs.push(p);
        await p.waitEvent("ready", 20_000);
      }
      const connected = async (p: JsonProcess) =>
        ((await p.command({ op: "members" })).value as { connected: string[] }).connected.join();
      const allConverged = async (deadlineMs: number, what: string) => {
        const deadline = performance.now() + deadlineMs;
        for (let i = 0; i < 1000; i++) {
          const views = await Promise.all(procs.map(connected));
          if (views.every((v) => v === "a,b,c")) return performance.now();
          if (performance.now() > deadline) throw new Error(`${what}: views ${views.join(" | ")}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        throw new Error(`${what}: not converged`);
      };
      await allConverged(20_000, "initial convergence");
      const across = await procs[0]!.command({
        op: "call",
        to: "c",
        endpoint: "echo",
        msg: "hi c",
      });
      assert.deepEqual([across.ok, across.value], [true, "hi c"], JSON.stringify(across));
      const info = await procs[2]!.command({ op: "call", to: "a", endpoint: "info" });
      assert.equal((info.value as { name: string }).name, "a");

      // Cut c's link for 10 s: a and b see it down, then everyone converges again.
      const cutAt = Date.now();
      await ip("-n", bridgeNs, "link", "set", bridgePort(2), "down");
      await procs[0]!.waitFor(
        (e) => e.event === "down" && e.peer === "c" && Number(e.t) >= cutAt,
        "a sees c down",
        8000,
      );
      await procs[1]!.waitFor(
        (e) => e.event === "down" && e.peer === "c" && Number(e.t) >= cutAt,
        "b sees c down",
        8000,
      );
      await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - cutAt))));
      const healAt = performance.now();
      await ip("-n", bridgeNs, "link", "set", bridgePort(2), "up");
      const converged = await allConverged(20_000, "after the cut");
      console.log(`views converged ${(converged - healAt).toFixed(0)} ms after the link came back`);
      const again = await procs[1]!.command({ op: "call", to: "c", endpoint: "echo", msg: 2 });
      assert.deepEqual([again.ok, again.value], [true, 2]);
    } finally {
      for (const p of procs) await p.kill();
      for (const n of created.reverse()) await run("ip", ["netns", "del", n]);
    }
  },
});
