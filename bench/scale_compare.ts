// `deno task bench:scale`: real `deno` node processes (cli/mod.ts (agent)) on
// this machine, full mesh and HyParView side by side.
//
// 1. Idle cost: N processes (--sizes, default 16,32,64) join one by one through
//    a random earlier node; once settled, their CPU time (utime + stime from
//    /proc) over --idle-s seconds (default 10) gives the cores they use idle,
//    with default timings (pings every 1 s, failure timeout 5 s, Plumtree's
//    lazy tick 1 s). Also the time to settle and the resident memory. A
//    "floor" row measures the same number of bare `deno` processes that only
//    keep a 1 s interval timer: what any Deno process costs idle here.
// 2. Failures: --kill-n processes (default 48) on HyParView; one broadcasts 20
//    messages through Plumtree, every node must have them; a third are
//    SIGKILLed; after the failure timeout one survivor broadcasts 20 more,
//    and every survivor must have them.
// 3. Presence over HyParView: --presence-n processes (default 48) each track
//    one presence (topic "bench", key = its name) once all joined; the time
//    until every process lists all of them; then a third are SIGKILLed and the
//    time until every survivor lists exactly the survivors (the agent's
//    downGraceMs is 1 s, the failure timeout 5 s); then a late joiner tracks
//    one, and the time until every process (it too) lists all. Then for each of
//    --presence-sizes (default 16,32,48) processes, presence tracked and
//    settled, the bytes each sends per second idle (node stats, every frame).
// Runs with -A: Deno guards /proc, where the CPU times are read.
import { parseArgs } from "node:util";
import { JsonProcess } from "../tests/_helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "16,32,64" },
    strategies: { type: "string", default: "full-mesh,hyparview" },
    "idle-s": { type: "string", default: "10" },
    "kill-n": { type: "string", default: "48" },
    "presence-n": { type: "string", default: "48" },
    "presence-sizes": { type: "string", default: "16,32,48" },
    seed: { type: "string", default: String(Date.now() % 100_000) },
  },
});
let rnd = Number(values.seed);
const next = () => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const CLK_TCK = 100;

class NodeProcess extends JsonProcess {
  constructor(name: string, strategy: string) {
    super(
      new URL("../cli/mod.ts", import.meta.url),
      ["--allow-net=127.0.0.1", "--allow-env"],
      [
        "--name",
        name,
        "--cookie",
        "bench",
        "--json",
        "--control",
        "--membership",
        strategy,
        "--ping-interval-ms",
        "1000",
        "--failure-timeout-ms",
        "5000",
        "--lazy-tick-ms",
        "1000",
        "--log-level",
        "error",
      ],
      { stdin: true },
    );
  }
  get port(): number {
    return this.events.find((e) => e.event === "ready")!.port as number;
  }
  async value(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const r = await this.command(cmd, 30_000);
    if (r.ok !== true) throw new Error(`${JSON.stringify(cmd)}: ${r.error}`);
    return r.value as Record<string, unknown>;
  }
}

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // utime, stime
}
function rssMiB(pid: number): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : 0;
}

async function startCluster(
  n: number,
  strategy: string,
  first = 0,
): Promise<NodeProcess[]> {
  const procs = Array.from(
    { length: n },
    (_, i) => new NodeProcess(`p${String(first + i).padStart(2, "0")}`, strategy),
  );
  for (const p of procs) await p.waitEvent("ready", 120_000);
  for (let i = 1; i < n; i++) {
    const to = procs[Math.floor(next() * i)]!;
    await procs[i]!.value({ op: "join", target: `127.0.0.1:${to.port}` });
  }
  return procs;
}

/** Settled: full mesh, every node sees all; HyParView, every node has a neighbour and the graph is connected. */
async function settled(procs: NodeProcess[], strategy: string): Promise<boolean> {
  const views = await Promise.all(procs.map((p) => p.value({ op: "members" })));
  const names = procs.map((p) => p.events[0]!.name as string);
  if (strategy === "full-mesh") {
    return views.every((v) => (v.connected as string[]).length === procs.length);
  }
  const nb = new Map(
    names.map((n, i) => [n, (views[i]!.connected as string[]).filter((x) => x !== n)]),
  );
  if ([...nb.values()].some((l) => l.length === 0)) return false;
  const seen = new Set([names[0]!]);
  const stack = [names[0]!];
  while (stack.length > 0) {
    for (const b of nb.get(stack.pop()!) ?? []) {
      if (nb.has(b) && !seen.has(b)) {
        seen.add(b);
        stack.push(b);
      }
    }
  }
  return seen.size === names.length;
}

async function waitSettled(procs: NodeProcess[], strategy: string): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < 600; i++) {
    if (await settled(procs, strategy)) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${strategy}: ${procs.length} processes did not settle in 150 s`);
}

async function stopAll(procs: NodeProcess[]): Promise<void> {
  await Promise.all(procs.map((p) => p.kill("SIGKILL")));
}

console.log(
  `murmur scale comparison (${
    new Date().toISOString()
  }, Deno ${Deno.version.deno}), seed ${values.seed}`,
);
console.log(
  "\n| strategy | processes | settle after last join | idle cores, all | idle CPU per node | RSS per node |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
const idleS = Number(values["idle-s"]);
async function idleCores(pids: number[]): Promise<number> {
  const before = pids.map(cpuTicks);
  await new Promise((r) => setTimeout(r, idleS * 1000));
  const ticks = pids.map((pid, i) => cpuTicks(pid) - before[i]!);
  return ticks.reduce((a, b) => a + b, 0) / CLK_TCK / idleS;
}
for (const n of values.sizes.split(",").filter(Boolean).map(Number)) {
  const bare = Array.from({ length: n }, () =>
    new Deno.Command(Deno.execPath(), {
      args: ["eval", "setInterval(() => {}, 1000)"],
      stdout: "null",
      stderr: "null",
    }).spawn());
  try {
    await new Promise((r) => setTimeout(r, 3000)); // started
    const pids = bare.map((c) => c.pid);
    const cores = await idleCores(pids);
    const rss = pids.map(rssMiB).reduce((a, b) => a + b, 0) / n;
    console.log(
      `| floor: bare deno | ${n} | - | ${cores.toFixed(3)} | ${
        (cores / n * 1000).toFixed(1)
      } ms/s | ${rss.toFixed(0)} MiB |`,
    );
  } finally {
    for (const c of bare) c.kill("SIGKILL");
    await Promise.all(bare.map((c) => c.status));
  }
}
for (const strategy of values.strategies.split(",")) {
  for (const n of values.sizes.split(",").filter(Boolean).map(Number)) {
    const procs = await startCluster(n, strategy);
    try {
      const settleMs = await waitSettled(procs, strategy);
      await new Promise((r) => setTimeout(r, 5000)); // the joins' traffic dies down
      const pids = procs.map((p) => p.child.pid);
      const cores = await idleCores(pids);
      const rss = pids.map(rssMiB).reduce((a, b) => a + b, 0) / n;
      console.log(
        `| ${strategy} | ${n} | ${(settleMs / 1000).toFixed(1)} s | ${cores.toFixed(3)} | ${
          (cores / n * 1000).toFixed(1)
        } ms/s | ${rss.toFixed(0)} MiB |`,
      );
    } finally {
      await stopAll(procs);
    }
  }
}

// Failures on HyParView.
const killN = Number(values["kill-n"]);
if (killN > 0) {
  const procs = await startCluster(killN, "hyparview");
  try {
    await waitSettled(procs, "hyparview");
    const say = async (p: NodeProcess, tag: string) =>
      await p.value({
        op: "call",
        to: p.events[0]!.name,
        endpoint: "chat.say",
        msg: { count: 20, tag },
      });
    const received = async (ps: NodeProcess[]) =>
      await Promise.all(
        ps.map(async (p) =>
          (await p.value({
            op: "call",
            to: p.events[0]!.name,
            endpoint: "chat.stats",
            msg: null,
          })).received as number
        ),
      );
    const waitAll = async (ps: NodeProcess[], want: number, what: string) => {
      const t0 = performance.now();
      for (let i = 0; i < 300; i++) {
        const r = await received(ps);
        if (r.every((x) => x >= want)) return performance.now() - t0;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`${what}: ${JSON.stringify(await received(ps))}`);
    };
    await say(procs[0]!, "before");
    const ms1 = await waitAll(procs, 20, "before the kill, not every node has every message");
    const victims = new Set<NodeProcess>();
    while (victims.size < Math.floor(killN / 3)) {
      victims.add(procs[1 + Math.floor(next() * (killN - 1))]!);
    }
    for (const v of victims) await v.kill("SIGKILL");
    const survivors = procs.filter((p) => !victims.has(p));
    await new Promise((r) => setTimeout(r, 5000 + 2000)); // failure timeout, and a margin
    await say(survivors[0]!, "after");
    const ms2 = await waitAll(survivors, 40, "after the kill, a survivor lacks a message");
    console.log(
      `\nHyParView, ${killN} processes: 20 broadcasts reached all in ${
        (ms1 / 1000).toFixed(1)
      } s; ` +
        `${victims.size} SIGKILLed; 20 more reached all ${survivors.length} survivors in ${
          (ms2 / 1000).toFixed(1)
        } s.`,
    );
  } finally {
    await stopAll(procs);
  }
}

// Presence over HyParView.
const nameOf = (p: NodeProcess) => p.events[0]!.name as string;
const presences = (p: NodeProcess) =>
  p.value({ op: "presences", topic: "bench" }) as unknown as Promise<string[]>;
/** Ms until every process in `ps` lists exactly `want`; throws after 60 s. */
async function presenceAgrees(ps: NodeProcess[], want: string[]): Promise<number> {
  const t0 = performance.now(), w = JSON.stringify([...want].sort());
  let seen: string[][] = [];
  for (let i = 0; i < 600 && performance.now() - t0 < 60_000; i++) {
    seen = await Promise.all(ps.map(presences));
    if (seen.every((l) => JSON.stringify(l) === w)) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  const off = seen.filter((l) => JSON.stringify(l) !== w).length;
  throw new Error(`presence: ${off} of ${ps.length} processes disagree after 60 s`);
}
const presenceN = Number(values["presence-n"]);
if (presenceN > 0) {
  const procs = await startCluster(presenceN, "hyparview");
  try {
    await waitSettled(procs, "hyparview");
    await Promise.all(procs.map((p) => p.value({ op: "track", topic: "bench", key: nameOf(p) })));
    const joined = await presenceAgrees(procs, procs.map(nameOf));
    const victims = new Set<NodeProcess>();
    while (victims.size < Math.floor(presenceN / 3)) {
      victims.add(procs[1 + Math.floor(next() * (presenceN - 1))]!);
    }
    for (const v of victims) await v.kill("SIGKILL");
    const survivors = procs.filter((p) => !victims.has(p));
    const afterKill = await presenceAgrees(survivors, survivors.map(nameOf));
    const [late] = await startCluster(1, "hyparview", presenceN);
    procs.push(late!);
    await late!.value({ op: "join", target: `127.0.0.1:${survivors[0]!.port}` });
    await late!.value({ op: "track", topic: "bench", key: nameOf(late!) });
    const all = [...survivors, late!];
    const lateMs = await presenceAgrees(all, all.map(nameOf));
    console.log(
      `\nPresence over HyParView, ${presenceN} processes: every process lists all ${presenceN} ` +
        `presences ${(joined / 1000).toFixed(1)} s after they were tracked; ${victims.size} ` +
        `SIGKILLed: every survivor lists exactly the ${survivors.length} survivors after ` +
        `${(afterKill / 1000).toFixed(1)} s (failure timeout 5 s, downGraceMs 1 s); a late ` +
        `joiner: every process lists all ${all.length} after ${(lateMs / 1000).toFixed(1)} s.`,
    );
  } finally {
    await stopAll(procs);
  }
  console.log(
    "\n| HyParView, presence tracked | processes | bytes sent per node per second, idle |",
  );
  console.log("| --- | ---: | ---: |");
  for (const n of values["presence-sizes"].split(",").map(Number)) {
    const ps = await startCluster(n, "hyparview");
    try {
      await waitSettled(ps, "hyparview");
      await Promise.all(ps.map((p) => p.value({ op: "track", topic: "bench", key: nameOf(p) })));
      await presenceAgrees(ps, ps.map(nameOf));
      await new Promise((r) => setTimeout(r, 5000)); // the tracking's traffic dies down
      const out = async () =>
        (await Promise.all(ps.map((p) => p.value({ op: "stats" })))).reduce(
          (a, s) => a + (s.bytesOut as number),
          0,
        );
      const b0 = await out();
      await new Promise((r) => setTimeout(r, idleS * 1000));
      const perNode = (await out() - b0) / n / idleS;
      console.log(`| | ${n} | ${perNode.toFixed(0)} B/s |`);
    } finally {
      await stopAll(ps);
    }
  }
}
