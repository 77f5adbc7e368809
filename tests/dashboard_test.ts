// The dashboard: its JSON API and event stream on a real 3-node cluster, its
// token rule, and the page itself in headless Chromium (skipped, with the
// reason printed, where no Chromium is installed).

import assert from "node:assert/strict";
import {
  type DurableBehaviour,
  DurableServer,
  MemoryStorage,
  type Node,
  Plumtree,
  Presence,
  ProcessGroups,
} from "../mod.ts";
import { type DashboardState, serveDashboard } from "../dashboard/mod.ts";
import { converged, JsonProcess, nextEvent, NodeProcess, startNode } from "./_helpers.ts";

const CLI = new URL("../cli/mod.ts", import.meta.url).pathname;
import { LogHandler } from "./_plumtree_fixture.ts";
import { Chromium, findChromium } from "./_chromium.ts";

/** Rejects with an instance of `type` whose message includes `text`. */
function rejects(fn: () => Promise<unknown>, type: new (...a: never[]) => Error, text: string) {
  return assert.rejects(fn, (e) => {
    assert.ok(e instanceof type, `${e} is not a ${type.name}`);
    assert.ok((e as Error).message.includes(text), `"${(e as Error).message}" lacks "${text}"`);
    return true;
  });
}

const Counter: DurableBehaviour<number, "get", number, never, number> = {
  init: () => ({ state: 0 }),
  handleCall: (_m, _from, n) => ({ reply: n, state: n }),
  handleCast: (add, n) => ({ state: n + add }),
};

interface Cluster extends AsyncDisposable {
  nodes: Node[];
  trees: Plumtree[];
  handlers: LogHandler[];
  pg: ProcessGroups;
  presence: Presence;
  server: DurableServer<number, "get", number, never, number>;
  storage: MemoryStorage;
}

/** Three nodes a, b, c, Plumtree on each; groups, presence and a durable server on a. */
async function cluster(): Promise<Cluster> {
  const nodes = [await startNode("a"), await startNode("b"), await startNode("c")];
  await nodes[1]!.join(nodes[0]!.spec);
  await nodes[2]!.join(nodes[0]!.spec);
  await converged(nodes, ["a", "b", "c"]);
  const handlers = nodes.map(() => new LogHandler());
  const trees = await Promise.all(
    nodes.map((n, i) => Plumtree.start(n, { handlers: [handlers[i]!], lazyTickMs: 100 })),
  );
  const a = nodes[0]!;
  a.register("worker-1", () => "ok");
  const pg = await ProcessGroups.start(a, "jobs");
  await pg.join("resize", "worker-1");
  const presence = await Presence.start(a, "users");
  await presence.track("lobby", "alice", { since: 1 });
  const storage = new MemoryStorage();
  const server = await DurableServer.start(Counter, null, { storage, tenant: ["counter"] });
  await server.cast(1);
  const close = async () => {
    await server.stop().catch(() => {});
    await storage.close();
    await pg.close();
    await presence.close();
    for (const t of trees) await t.close();
    for (const n of nodes) await n.close();
  };
  return {
    nodes,
    trees,
    handlers,
    pg,
    presence,
    server,
    storage,
    [Symbol.asyncDispose]: close,
  };
}

async function getState(url: string, path = "api/state"): Promise<DashboardState> {
  const res = await fetch(new URL(path, url));
  assert.deepEqual(res.status, 200, await res.clone().text());
  return await res.json();
}

Deno.test("dashboard JSON: members, traffic, trees, groups, presence, durable queue; a closed node is down", async () => {
  await using c = await cluster();
  const [a, , nodeC] = c.nodes as [Node, Node, Node];
  await using dash = await serveDashboard(
    {
      node: a,
      plumtree: c.trees[0]!,
      publishers: { jobs: c.pg, users: c.presence },
      durable: { counter: c.server },
    },
    { port: 0, intervalMs: 200 },
  );
  assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);

  let st = await getState(dash.url);
  assert.deepEqual(st.node.name, "a");
  assert.deepEqual(st.members.map((m) => [m.name, m.state]), [["a", "up"], ["b", "up"], [
    "c",
    "up",
  ]]);
  const b = st.members.find((m) => m.name === "b")!;
  assert((b.connections.default ?? 0) >= 1, `b has connections: ${JSON.stringify(b.connections)}`);
  assert(b.address?.startsWith("127.0.0.1:"), b.address);
  assert.deepEqual(st.publishers.map((p) => [p.name, p.kind]), [["jobs", "process-groups"], [
    "users",
    "presence",
  ]]);
  assert.deepEqual(st.publishers[0]!.groups.resize, ["a/worker-1"]);
  assert.deepEqual(st.publishers[1]!.groups.lobby, ["alice @ a"]);
  const d = st.durable[0]!;
  assert.deepEqual(d.name, "counter");
  assert(!("error" in d.status), JSON.stringify(d.status));

  // A broadcast from b moves a's counters and shows b's tree.
  const before = st.plumtree!.stats.deliveries;
  await c.trees[1]!.broadcast({ id: "m1", body: "hello" }, "log");
  await c.trees[1]!.broadcast({ id: "m2", body: "hello" }, "log");
  for (let i = 0; i < 200 && c.handlers[0]!.delivered.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  st = await getState(dash.url);
  assert.deepEqual(st.plumtree!.stats.deliveries - before, 2);
  assert(st.plumtree!.trees.some((t) => t.root === "b"), JSON.stringify(st.plumtree!.trees));
  assert(st.stats.framesIn > 0 && st.stats.bytesIn > 0 && st.stats.bytesOut > 0);

  // c closes: a's next snapshot shows it down.
  const down = nextEvent(a, "down", "c", 2000);
  const t0 = Date.now();
  await nodeC.close();
  await down;
  st = await getState(dash.url);
  assert.deepEqual(st.members.find((m) => m.name === "c")?.state, "down");
  assert(Date.now() - t0 < 2000, `down shown after ${Date.now() - t0} ms`);
});

Deno.test("dashboard event stream: a snapshot at once, then on every change", async () => {
  await using c = await cluster();
  await using dash = await serveDashboard({ node: c.nodes[0]!, plumtree: c.trees[0]! }, {
    intervalMs: 60_000, // only events push here
  });
  const res = await fetch(new URL("events", dash.url));
  assert.deepEqual(res.headers.get("content-type"), "text/event-stream");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const next = async (): Promise<DashboardState> => {
    let buf = "";
    for (let i = 0; i < 100; i++) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stream ended");
      buf += value;
      const m = buf.match(/^data: (.*)$/m);
      if (m && buf.includes("\n\n", buf.indexOf("data: "))) return JSON.parse(m[1]!);
    }
    throw new Error("no event in 100 chunks");
  };
  const first = await next();
  assert.deepEqual(first.members.length, 3);
  await c.nodes[2]!.close();
  let st = await next();
  for (let i = 0; i < 5 && st.members.find((m) => m.name === "c")?.state !== "down"; i++) {
    st = await next();
  }
  assert.deepEqual(st.members.find((m) => m.name === "c")?.state, "down");
  await reader.cancel();
});

Deno.test("dashboard: off loopback only with a token, which the page, stream and API check", async () => {
  await using node = await startNode("solo");
  await rejects(
    () => serveDashboard({ node }, { hostname: "0.0.0.0" }),
    TypeError,
    "needs a token",
  );
  await rejects(() => serveDashboard({ node }, { token: "short" }), TypeError, "16 characters");
  await rejects(() => serveDashboard({ node }, { port: 70000 }), RangeError, "port");
  await rejects(() => serveDashboard({ node }, { intervalMs: 1 }), RangeError, "intervalMs");
  // deno-lint-ignore no-explicit-any
  await rejects(() => serveDashboard({} as any), TypeError, "needs { node }");
  const token = "0123456789abcdef-secret";
  await using dash = await serveDashboard({ node }, { token });
  assert(dash.url.endsWith(`?token=${token}`), dash.url);
  const bare = dash.url.replace(/\?.*$/, "");
  for (const path of ["", "api/state", "events"]) {
    const res = await fetch(new URL(path, bare));
    assert.deepEqual(res.status, 401, path);
    await res.body?.cancel();
  }
  const wrong = await fetch(new URL("api/state?token=0123456789abcdef-wrong", bare));
  assert.deepEqual(wrong.status, 401);
  await wrong.body?.cancel();
  const withHeader = await fetch(new URL("api/state", bare), {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.deepEqual(withHeader.status, 200);
  assert.deepEqual((await withHeader.json()).node.name, "solo");
  const page = await fetch(dash.url);
  assert.deepEqual(page.status, 200);
  assert.match(await page.text(), /<title>murmur dashboard<\/title>/);
  const post = await fetch(dash.url, { method: "POST" });
  assert.deepEqual(post.status, 405);
  await post.body?.cancel();
});

const chromium = await findChromium();
if ("reason" in chromium) console.log(`dashboard browser test skipped: ${chromium.reason}`);

Deno.test({
  name:
    "dashboard in headless Chromium: three members, one down within 2 s of close, counters move",
  ignore: "reason" in chromium,
  async fn() {
    await using c = await cluster();
    const [a, , nodeC] = c.nodes as [Node, Node, Node];
    await using dash = await serveDashboard({
      node: a,
      plumtree: c.trees[0]!,
      publishers: { jobs: c.pg, users: c.presence },
      durable: { counter: c.server },
    }, { intervalMs: 250 });
    await using browser = await Chromium.launch((chromium as { path: string }).path);
    const page = await browser.open(dash.url);
    const row = (name: string) => `document.querySelector('tr[data-member="${name}"]')`;
    await page.waitFor(
      `["a", "b", "c"].every((n) =>
        document.querySelector('tr[data-member="' + n + '"]')?.dataset.state === "up")`,
      10_000,
      "all three members up",
    );
    const deliveries = () =>
      `Number([...document.querySelectorAll("#broadcast tr")].find((r) => r.firstChild.textContent === "deliveries")?.lastChild.textContent.replace(/,/g, ""))`;
    const before = await page.evaluate(deliveries()) as number;
    await c.trees[1]!.broadcast({ id: "x1", body: "hi" }, "log");
    await page.waitFor(`${deliveries()} >= ${before + 1}`, 5000, "the deliveries counter to move");
    await page.waitFor(`document.querySelector('svg[data-root="b"]')`, 5000, "b's tree drawn");

    const t0 = performance.now();
    await nodeC.close();
    await page.waitFor(`${row("c")}?.dataset.state === "down"`, 2000, "c shown down");
    const ms = performance.now() - t0;
    console.log(`c shown down in the page ${Math.round(ms)} ms after close()`);
    assert(ms < 2000, `${ms} ms`);

    const dir = await Deno.makeTempDir({ prefix: "murmur-dashboard-" });
    const png = await page.screenshot();
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    await Deno.writeFile(`${dir}/dashboard.png`, png);
    console.log(`screenshot: ${dir}/dashboard.png (${png.length} bytes)`);
    const out = Deno.env.get("MURMUR_DASHBOARD_PNG");
    if (out) await Deno.writeFile(out, png);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("node CLI: --dashboard serves the page, `status` prints members and counters, bad flags are named", async () => {
  const a = new NodeProcess(["--name", "cli-a", "--dashboard", "0"]);
  let b: NodeProcess | undefined;
  try {
    const ready = await a.waitEvent("ready");
    const url = ready.dashboard as string;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    b = new NodeProcess(["--name", "cli-b", "--join", `127.0.0.1:${ready.port}`]);
    await b.waitEvent("joined");
    const run = async (...args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net=127.0.0.1", "--allow-env", "--allow-read", CLI, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
    };
    let r = await run("status", url);
    for (let i = 0; i < 50 && !/cli-b\s+up/.test(r.out); i++) r = await run("status", url);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^node cli-a \(full-mesh\)/);
    assert.match(r.out, /MEMBER\s+STATE\s+INCARNATION\s+ADDRESS\s+CONNECTIONS\s+LAST HEARD/);
    assert.match(r.out, /cli-b\s+up\s+\d+\s+127\.0\.0\.1:\d+\s+default:1/);
    assert.match(r.out, /connections\s+\d+/);
    const json = await run("status", "--json", url);
    assert.equal(JSON.parse(json.out).node.name, "cli-a");
    const nobody = await run("status", "http://127.0.0.1:9/");
    assert.equal(nobody.code, 1);
    assert.match(nobody.err, /cannot reach http:\/\/127\.0\.0\.1:9/);
    const bad = await run("--name", "x", "--cookie", "c", "--dashboard", "many");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--dashboard must be a port number, got many/);
    const open = await run(
      "--name",
      "x",
      "--cookie",
      "c",
      "--dashboard",
      "0",
      "--dashboard-host",
      "0.0.0.0",
    );
    assert.equal(open.code, 2);
    assert.match(open.err, /needs a token/);
  } finally {
    await a.kill("SIGTERM");
    await b?.kill("SIGTERM");
  }
});

Deno.test("node CLI: --tls-cert/--tls-key/--tls-ca form a TLS cluster; a half-given pair is refused", async () => {
  const dir = new URL("./fixtures/", import.meta.url).pathname;
  const tls = ["--tls-cert", `${dir}node.pem`, "--tls-key", `${dir}node-key.pem`];
  const perms = ["--allow-net=127.0.0.1", "--allow-env", "--allow-read"];
  const start = (args: string[]) =>
    new JsonProcess(new URL(CLI, "file:///"), perms, ["--json", "--cookie", "tls", ...args]);
  const a = start(["--name", "tls-a", ...tls, "--tls-ca", `${dir}ca.pem`]);
  let b: JsonProcess | undefined;
  try {
    const port = (await a.waitEvent("ready")).port as number;
    b = start([
      "--name",
      "tls-b",
      ...tls,
      "--tls-ca",
      `${dir}ca.pem`,
      "--join",
      `127.0.0.1:${port}`,
    ]);
    await b.waitEvent("joined");
    await a.waitEvent("up");
    // a's port speaks TLS with the CA's certificate (a plain listener would fail the handshake).
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port,
      caCerts: [await Deno.readTextFile(`${dir}ca.pem`)],
    });
    await conn.handshake();
    conn.close();
    const half = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...perms, CLI, "--name", "x", "--cookie", "c", "--tls-cert", `${dir}node.pem`],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(half.code, 2);
    assert.match(new TextDecoder().decode(half.stderr), /--tls-cert and --tls-key go together/);
  } finally {
    await a.kill("SIGTERM");
    await b?.kill("SIGTERM");
  }
});

Deno.test("dashboard: at most clientsMax event streams; a closed one frees its place", async () => {
  await using node = await startNode("streams");
  await using dash = await serveDashboard({ node }, { clientsMax: 1, intervalMs: 60_000 });
  const first = await fetch(new URL("events", dash.url));
  assert.equal(first.status, 200);
  const reader = first.body!.getReader();
  await reader.read(); // the stream is open
  const second = await fetch(new URL("events", dash.url));
  assert.equal(second.status, 503);
  assert.match(await second.text(), /too many event streams \(clientsMax 1\)/);
  await reader.cancel();
  let third: Response | undefined;
  for (let i = 0; i < 100; i++) {
    third = await fetch(new URL("events", dash.url));
    if (third.status === 200) break;
    await third.body?.cancel();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(third!.status, 200);
  await third!.body!.cancel();
  await rejects(() => serveDashboard({ node }, { clientsMax: 0 }), RangeError, "clientsMax");
});

Deno.test({
  name: "headless Chromium leaves nothing in the system's temporary directory",
  ignore: "reason" in chromium,
  async fn() {
    const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
    const leftovers = async () => {
      const out = new Set<string>();
      for await (const e of Deno.readDir(tmp)) {
        if (e.name.startsWith("org.chromium.") || e.name.startsWith("murmur-chromium-")) {
          out.add(e.name);
        }
      }
      return out;
    };
    const before = await leftovers();
    const browser = await Chromium.launch((chromium as { path: string }).path);
    await browser.close();
    const left = [...await leftovers()].filter((n) => !before.has(n));
    // Its singleton socket went to the system's TMPDIR (two directories per run) before.
    assert.deepEqual(left, [], `left in ${tmp}: ${left.join(", ")}`);
  },
});
