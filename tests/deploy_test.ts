// The container files (deploy/Dockerfile, deploy/compose.yaml) cannot run
// here (no container runtime); what can be checked is checked: every command
// is valid for the CLI agent, every --join and --advertise names a service of
// the file, and the image holds every file the CLI imports.

import assert from "node:assert/strict";
import { checkAgentArgs } from "../cli/agent.ts";

const root = new URL("..", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

Deno.test("deploy: compose.yaml's commands are valid agent flags; joins and advertised addresses name its services", async () => {
  const compose = JSON.parse(await read("deploy/compose.yaml")) as {
    services: Record<string, { command: string[]; environment?: string[] }>;
  };
  const names = Object.keys(compose.services);
  assert.ok(names.length >= 3, "three nodes");
  for (const [service, { command, environment }] of Object.entries(compose.services)) {
    checkAgentArgs(command);
    const flag = (f: string) => command.flatMap((a, i) => (a === f ? [command[i + 1]!] : []));
    assert.deepEqual(flag("--advertise"), [`${service}:7000`], `${service} advertises itself`);
    assert.equal(flag("--name")[0], service);
    for (const target of flag("--join")) {
      const [host, port] = target.split(":");
      assert.ok(names.includes(host!) && host !== service, `${service} joins ${target}`);
      assert.equal(port, "7000");
    }
    assert.ok(environment?.includes("MURMUR_COOKIE"), `${service} gets the cookie`);
    if (flag("--dashboard-host")[0] === "0.0.0.0") {
      assert.ok(
        environment?.includes("MURMUR_DASHBOARD_TOKEN"),
        "an exposed dashboard has a token",
      );
    }
  }
});

Deno.test("deploy: the Dockerfile runs the agent and copies every file the CLI imports", async () => {
  const docker = await read("deploy/Dockerfile");
  const entry = docker.match(/^ENTRYPOINT (\[.*\])$/m);
  assert.ok(entry, "an ENTRYPOINT");
  const argv = JSON.parse(entry[1]!) as string[];
  assert.deepEqual(argv.slice(0, 2), ["deno", "run"]);
  assert.ok(argv.includes("--allow-net"));
  assert.deepEqual(argv.slice(-2), ["cli/mod.ts", "agent"]);
  assert.match(docker, /^FROM denoland\/deno:2\.9\.6$/m, "the Deno this project is tested on");
  const copied = [...docker.matchAll(/^COPY (.+) \S+$/gm)].flatMap((m) => m[1]!.split(" "));
  // The module graph of the CLI: every local file must be in a copied file or folder.
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "cli/mod.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).output();
  const graph = JSON.parse(new TextDecoder().decode(info.stdout)) as {
    modules: { specifier: string }[];
  };
  const local = graph.modules.map((m) => m.specifier).filter((s) => s.startsWith(root.href))
    .map((s) => s.slice(root.href.length));
  assert.ok(local.length > 20, `${local.length} local modules`);
  for (const file of local) {
    assert.ok(
      copied.some((c) => file === c || file.startsWith(`${c}/`)),
      `${file} is imported by the CLI but not copied into the image`,
    );
  }
});
