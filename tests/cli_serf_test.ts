// The serf-style CLI end to end, with real agent processes: members with tags
// and filters, tags set and del, join, force-leave of a SIGKILLed node, user
// events seen by a live monitor and by every agent, leave (the agent exits and
// the others see `left`), the token, and usage errors.

import assert from "node:assert/strict";
import { eventually, NodeProcess } from "./_helpers.ts";

const CLI = new URL("../cli/mod.ts", import.meta.url).pathname;
const dec = new TextDecoder();

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", "--allow-env", "--allow-read", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { MURMUR_ADDR: "", MURMUR_DASHBOARD_TOKEN: "" },
  }).output();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

/** A `monitor` process: its lines as they come. */
class Monitor {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #pump: Promise<void>;
  constructor(addr: string) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net=127.0.0.1", "--allow-env", CLI, "monitor", "--addr", addr],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const out = this.#child.stdout;
    this.#pump = (async () => {
      let buf = "";
      for await (const c of out.pipeThrough(new TextDecoderStream())) {
        buf += c;
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          this.lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      }
    })();
  }
  async stop() {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* exited */ }
    await this.#child.status;
    await this.#pump;
  }
}

Deno.test("serf-style CLI: members, tags, join, event, monitor, force-leave, leave, against real agents", async () => {
  const procs: NodeProcess[] = [];
  const start = (name: string, ...args: string[]) => {
    const p = new NodeProcess(["--name", name, "--dashboard", "0", ...args]);
    procs.push(p);
    return p.waitEvent("ready", 30_000);
  };
  let monitor: Monitor | undefined;
  try {
    const a = await start("web-1", "--tag", "role=web", "--tag", "zone=eu");
    const addrA = a.dashboard as string;
    const b = await start("db-1", "--tag", "role=db", "--join", `127.0.0.1:${a.port}`);
    const addrB = b.dashboard as string;
    const members = async (...extra: string[]) => {
      const r = await cli("members", "--addr", addrA, "--json", ...extra);
      assert.equal(r.code, 0, r.err);
      return (JSON.parse(r.out) as { name: string; state: string; tags: Record<string, string> }[]);
    };
    await eventually(async () => (await members("--status", "up")).length === 2, "two up", 10_000);
    const table = await cli("members", "--addr", addrA);
    assert.match(table.out, /^NAME\s+ADDRESS\s+STATE\s+TAGS/);
    assert.match(table.out, /web-1 \*\s+127\.0\.0\.1:\d+\s+up\s+role=web,zone=eu/);
    assert.match(table.out, /db-1\s+127\.0\.0\.1:\d+\s+up\s+role=db/);
    assert.deepEqual((await members("--tag", "role=db")).map((m) => m.name), ["db-1"]);

    // Tags changed on db-1 through its own agent: web-1 sees them.
    const set = await cli("tags", "set", "version=2", "--addr", addrB);
    assert.equal(set.code, 0, set.err);
    assert.match(set.out, /version=2/);
    await eventually(
      async () => (await members("--tag", "version=2")).map((m) => m.name).join() === "db-1",
      "web-1 sees db-1's new tag",
    );
    assert.equal((await cli("tags", "del", "version", "--addr", addrB)).code, 0);
    await eventually(async () => (await members("--tag", "version=2")).length === 0, "tag gone");

    // A monitor on web-1; an agent joined from the CLI; a user event from db-1.
    monitor = new Monitor(addrA);
    const c = await start("cache-1", "--tag", "role=cache");
    const join = await cli("join", `127.0.0.1:${a.port}`, "--addr", c.dashboard as string);
    assert.equal(join.code, 0, join.err);
    assert.match(join.out, /joined web-1/);
    await eventually(async () => (await members("--status", "up")).length === 3, "three up");
    const ev = await cli("event", "deploy", "v2.1", "--addr", addrB);
    assert.equal(ev.code, 0, ev.err);
    for (const p of procs) {
      const e = await p.waitFor((x) => x.event === "user-event", "the user event", 10_000);
      assert.deepEqual([e.name, e.payload, e.origin], ["deploy", "v2.1", "db-1"]);
    }
    await eventually(
      () => monitor!.lines.some((l) => / user name="deploy" payload="v2\.1" origin="db-1"/.test(l)),
      "the monitor shows the event",
    );
    assert.ok(monitor.lines.some((l) => / up node="cache-1"/.test(l)), monitor.lines.join("\n"));

    // force-leave: cache-1 is SIGKILLed (down), then removed by hand.
    await procs[2]!.kill();
    await eventually(async () => (await members("--status", "down")).length === 1, "cache-1 down");
    const refused = await cli("force-leave", "db-1", "--addr", addrA);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /"db-1" is up: a live member leaves by itself/);
    const fl = await cli("force-leave", "cache-1", "--addr", addrA);
    assert.equal(fl.code, 0, fl.err);
    await eventually(
      async () => (await members()).every((m) => m.name !== "cache-1" || m.state === "removed"),
      "cache-1 removed",
    );

    // leave: db-1's agent leaves and exits; web-1 sees it `left` at once.
    const t0 = performance.now();
    const lv = await cli("leave", "--addr", addrB);
    assert.equal(lv.code, 0, lv.err);
    await eventually(
      async () => (await members()).some((m) => m.name === "db-1" && m.state === "left"),
      "db-1 left",
    );
    console.log(`  db-1 seen left ${Math.round(performance.now() - t0)} ms after \`leave\``);
    assert.equal((await procs[1]!.child.status).success, true, "the agent exited");
    await eventually(() => monitor!.lines.some((l) => /member-left node="db-1"/.test(l)), "left");
  } finally {
    await monitor?.stop();
    for (const p of procs) await p.kill();
  }
});

Deno.test("serf-style CLI: the token guards the control API; usage errors are named", async () => {
  const token = "a-long-enough-dashboard-token";
  const p = new NodeProcess(["--name", "t-1", "--dashboard", "0", "--dashboard-token", token]);
  try {
    const ready = await p.waitEvent("ready", 30_000);
    const addr = (ready.dashboard as string).replace(/\?.*$/, "");
    const denied = await cli("members", "--addr", addr);
    assert.equal(denied.code, 1);
    assert.match(denied.err, /401 missing or wrong token/);
    const ok = await cli("members", "--addr", addr, "--token", token);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /t-1 \*/);
    // A command from a web page (no JSON content type) is refused.
    const form = await fetch(new URL("api/leave", addr), {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: "x=1",
    });
    assert.equal(form.status, 415);
    await form.body?.cancel();
    const noAddr = await cli("members");
    assert.equal(noAddr.code, 2);
    assert.match(noAddr.err, /no agent address: pass --addr URL or set MURMUR_ADDR/);
    const badTags = await cli("tags", "set", "novalue", "--addr", addr, "--token", token);
    assert.equal(badTags.code, 2);
    assert.match(badTags.err, /expected NAME=VALUE, got "novalue"/);
    const help = await cli("members", "--help");
    assert.equal(help.code, 0);
    assert.match(help.out, /murmur force-leave NAME/);
    const unreachable = await cli("members", "--addr", "http://127.0.0.1:9/");
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.err, /cannot reach http:\/\/127\.0\.0\.1:9/);
  } finally {
    await p.kill();
  }
});
