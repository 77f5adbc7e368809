// Every command line answers `--help` with its usage (exit 0) and refuses an
// unknown option or scenario by name (exit 2), without starting anything.

import assert from "node:assert/strict";

async function run(script: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "--allow-net=127.0.0.1", script, ...args],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("cli: agent and status answer --help with their usage; an unknown option is named", async () => {
  for (const args of [["--help"], ["agent", "--help"], ["agent", "-h"]]) {
    const r = await run("cli/mod.ts", args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /usage: murmur agent --name NAME --cookie SECRET/);
  }
  const s = await run("cli/mod.ts", ["status", "--help"]);
  assert.equal(s.code, 0);
  assert.match(s.stdout, /usage: murmur status/);
  const bad = await run("cli/mod.ts", ["agent", "--nme", "a"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown option '--nme'/);
  assert.match(bad.stderr, /usage: murmur agent/);
  const shuffle = await run("cli/mod.ts", [
    "agent",
    "--name",
    "a",
    "--cookie",
    "c",
    "--shuffle-interval-ms",
    "500",
  ]);
  assert.equal(shuffle.code, 2);
  assert.match(shuffle.stderr, /--shuffle-interval-ms must be .* with --membership hyparview/);
  const badStatus = await run("cli/mod.ts", ["status", "--jsn", "8080"]);
  assert.equal(badStatus.code, 2);
  assert.match(badStatus.stderr, /unknown option --jsn/);
});

Deno.test("cli: the simulator answers --help, and refuses an unknown scenario with the known ones", async () => {
  const h = await run("sim/main.ts", ["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /usage: deno task sim/);
  const r = await run("sim/main.ts", ["--scenario", "nope"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no scenario starts with "nope"; known: one-20, .*presence-churn-1000/);
  const o = await run("sim/main.ts", ["--sede", "1"]);
  assert.equal(o.code, 2);
  assert.match(o.stderr, /Unknown option '--sede'/);
});
